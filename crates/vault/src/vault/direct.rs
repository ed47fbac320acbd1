//! Local uploads written past the page cache (`O_DIRECT`, on Linux).
//!
//! A buffered write copies every byte into the page cache and leaves the
//! kernel's filesystem code to track, allocate and write back each page, on
//! the same two cores that encrypt and hash: sealing 256 MiB spent about a
//! quarter of its CPU time there (the copy alone 13 %). Worse, a writer
//! thread busy copying holds a core just as the next seal job begins, and
//! the scheduler then queues the job's second rayon worker behind the
//! first: with each batch copied (into staging buffers, even), the second
//! worker took no part in 80–190 of the 256 jobs of a 256 MiB seal, which
//! then ran its cipher and its hashing one after the other. Written direct
//! from the seal's own buffers, the writer threads only submit them: 1–19
//! such jobs. Sealing 256 MiB went from 53–65 % to 61–67 % of the two-core
//! bound (the bench's best of three, three runs of each build in turn), its
//! median over some 60 seals from 1,092 to 1,196 MB/s, and sealing a 1 GiB
//! stream from 712–921 to 1,307–1,433 MB/s.
//!
//! The seal cuts its batches on [`ALIGN`] boundaries of the object, in
//! page-aligned buffers (`crate::buffer::Output::aligned`), so each batch
//! is written as it is, [`IN_FLIGHT`] writes at a time. Bytes that are not
//! so aligned (the tail, or batches from elsewhere) are gathered into
//! staging buffers of the same kind; the last partial block is written
//! padded with zeros and the file then cut to its length. A filesystem that does
//! not take direct I/O (refusing the open, or a write, with `EINVAL`) gets
//! the same bytes through the page cache. The file is fsynced at the end,
//! as before: a direct write does not by itself flush the disk's own cache,
//! nor the file's size.
//!
//! Reads stay buffered (`super::read`): an object's first read comes from
//! the disk, as it would long after the seal, and the reads of an object in
//! use (a scan opened again and again) are served from the page cache. The
//! price is a read right after the seal: a first `get` of 256 MiB ran at
//! 711–831 MB/s (the kernel's read-ahead and its copy out of the page
//! cache), where it had run at 1,354–1,455 from the pages a buffered seal
//! left behind; the reads after it at 1,457–1,577 (`get_stream`). Direct
//! reads were tried and dropped: this machine's disk serves them at about
//! 1 GB/s whatever their size or number in flight, half its rate for
//! buffered reads, and every read of an object in use would be one.

use std::fs::File;
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;
use std::sync::mpsc;

use bytes::Bytes;
use rustix::fs::OFlags;

use crate::buffer::Output;

// The alignment of a direct write's memory, offset and length.
use super::BLOCK as ALIGN;

/// A staging buffer: large enough for the disk to stream one write of it.
const CHUNK: usize = 4 * 1024 * 1024;
/// Direct writes in flight at once, each on a thread of its own.
const IN_FLIGHT: usize = 2;

/// What became of an attempt to open `file` for direct writes.
pub(super) enum Opened {
    /// Open for direct writes.
    Direct(File),
    /// The filesystem takes no direct I/O: nothing was created.
    Unsupported,
}

/// Whether `e` is `EINVAL`: what a filesystem without direct I/O, or a
/// device with larger blocks than [`ALIGN`], answers.
fn invalid(e: &io::Error) -> bool {
    e.raw_os_error() == Some(rustix::io::Errno::INVAL.raw_os_error())
}

/// Creates `file` for direct writes.
pub(super) fn create(file: &Path) -> io::Result<Opened> {
    let opened = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .custom_flags(OFlags::DIRECT.bits() as i32)
        .open(file);
    match opened {
        Ok(out) => Ok(Opened::Direct(out)),
        Err(e) if invalid(&e) => Ok(Opened::Unsupported),
        Err(e) => Err(e),
    }
}

/// Writes `data` at `offset`, direct unless the file refuses it, then
/// through the page cache from there on (the flag belongs to the open file,
/// which every clone shares).
fn write_at(out: &File, data: &[u8], offset: u64) -> io::Result<()> {
    match out.write_all_at(data, offset) {
        Err(e) if invalid(&e) => {
            let flags = rustix::fs::fcntl_getfl(out)?;
            rustix::fs::fcntl_setfl(out, flags - OFlags::DIRECT)?;
            out.write_all_at(data, offset)
        }
        written => written,
    }
}

/// One write for a writer thread.
enum Block {
    /// A batch that starts on a page and holds whole blocks, as it came.
    Batch(Bytes),
    /// A staging buffer and how many of its bytes to write.
    Staged(Output, usize),
}

/// Whether `bytes` can be written direct as it is, at an aligned offset.
fn is_aligned(bytes: &Bytes) -> bool {
    (bytes.as_ptr() as usize).is_multiple_of(ALIGN) && bytes.len().is_multiple_of(ALIGN)
}

/// The staging buffers of one upload, made as they are first needed.
struct Staging {
    freed: mpsc::Receiver<Output>,
    made: usize,
}

impl Staging {
    /// A buffer back from a writer, or a new one while fewer than one per
    /// writer and one more exist.
    fn take(&mut self) -> io::Result<Output> {
        if let Ok(buf) = self.freed.try_recv() {
            return Ok(buf);
        }
        if self.made <= IN_FLIGHT {
            self.made += 1;
            let mut buf = Output::aligned(CHUNK);
            buf.slot(CHUNK);
            return Ok(buf);
        }
        self.freed
            .recv()
            .map_err(|_| io::Error::other("a direct writer stopped"))
    }
}

/// Writes what `rx` yields to `out` (opened by [`create`]) and fsyncs it.
pub(super) fn write(out: File, mut rx: tokio::sync::mpsc::Receiver<Bytes>) -> io::Result<()> {
    let (free, freed) = mpsc::channel::<Output>();
    let mut staging = Staging { freed, made: 0 };
    let written = std::thread::scope(|scope| {
        let mut writers = Vec::with_capacity(IN_FLIGHT);
        for _ in 0..IN_FLIGHT {
            let (tx, blocks) = mpsc::sync_channel::<(Block, u64)>(1);
            let (out, free) = (out.try_clone()?, free.clone());
            let writer = scope.spawn(move || {
                for (block, offset) in blocks {
                    match block {
                        Block::Batch(bytes) => write_at(&out, &bytes, offset)?,
                        Block::Staged(buf, len) => {
                            write_at(&out, &buf.as_slice()[..len], offset)?;
                            // Gone only once the upload stopped.
                            let _ = free.send(buf);
                        }
                    }
                }
                Ok::<(), io::Error>(())
            });
            writers.push((tx, writer));
        }
        drop(free);
        let mut next = 0;
        let mut send = |block: Block, offset: u64| {
            let sent = writers[next].0.send((block, offset));
            next = (next + 1) % IN_FLIGHT;
            sent.map_err(|_| io::Error::other("a direct writer stopped"))
        };
        let gathered = (|| {
            // Bytes gathered into `buf`, which belong at `offset`.
            let (mut buf, mut fill, mut offset) = (None, 0, 0u64);
            while let Some(bytes) = rx.blocking_recv() {
                if fill == 0 && is_aligned(&bytes) {
                    let len = bytes.len() as u64;
                    send(Block::Batch(bytes), offset)?;
                    offset += len;
                    continue;
                }
                let mut data = &bytes[..];
                while !data.is_empty() {
                    let staged = match &mut buf {
                        Some(staged) => staged,
                        None => buf.insert(staging.take()?),
                    };
                    let n = (CHUNK - fill).min(data.len());
                    staged.as_mut_slice()[fill..fill + n].copy_from_slice(&data[..n]);
                    (fill, data) = (fill + n, &data[n..]);
                    if fill == CHUNK
                        && let Some(full) = buf.take()
                    {
                        send(Block::Staged(full, CHUNK), offset)?;
                        (fill, offset) = (0, offset + CHUNK as u64);
                    }
                }
            }
            // The tail, padded to a whole block, then cut off at the length.
            if let Some(mut staged) = buf.filter(|_| fill > 0) {
                let padded = fill.next_multiple_of(ALIGN);
                staged.as_mut_slice()[fill..padded].fill(0);
                send(Block::Staged(staged, padded), offset)?;
            }
            Ok::<u64, io::Error>(offset + fill as u64)
        })();
        // A writer's own error (a full disk, say) says more than the
        // gathering side's "a direct writer stopped".
        let mut stopped = Ok(());
        for (tx, writer) in writers {
            drop(tx);
            let joined = writer
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("a direct writer panicked")));
            stopped = stopped.and(joined);
        }
        stopped.and(gathered)
    })?;
    out.set_len(written)?;
    out.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::buffer::Recycler;

    /// `data` in a page-aligned buffer, as the seal hands its batches out.
    fn aligned(recycler: &mut Recycler, data: &[u8]) -> Bytes {
        let mut out = recycler.take();
        out.extend_from_slice(data);
        recycler.hand_out(out)
    }

    fn content(len: usize, seed: u8) -> Vec<u8> {
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
            .collect()
    }

    #[test]
    fn aligned_batches_unaligned_ones_and_a_tail_make_exactly_their_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("object");
        let out = match create(&path).unwrap() {
            Opened::Direct(out) => out,
            Opened::Unsupported => {
                assert!(!path.exists(), "a refused open creates nothing");
                return;
            }
        };
        let mut recycler = Recycler::aligned(8, 2 * CHUNK);
        let batches = vec![
            // Straight to the disk.
            aligned(&mut recycler, &content(3 * ALIGN, 1)),
            aligned(&mut recycler, &content(CHUNK, 2)),
            // Gathered: its length is no whole number of blocks.
            Bytes::from(content(5000, 3)),
            // Aligned, but after gathered bytes: gathered too, past a full
            // staging buffer.
            aligned(&mut recycler, &content(CHUNK + ALIGN, 4)),
            Bytes::from(content(2 * CHUNK + 17, 5)),
            // Unaligned memory.
            Bytes::from(content(ALIGN + 1, 6)).slice(1..),
            Bytes::from(content(777, 7)),
        ];
        assert!(is_aligned(&batches[0]) && is_aligned(&batches[1]));
        let expected: Vec<u8> = batches.iter().flat_map(|b| b.iter().copied()).collect();
        let (tx, rx) = tokio::sync::mpsc::channel(2);
        let writer = std::thread::spawn(move || write(out, rx));
        for batch in batches {
            tx.blocking_send(batch).unwrap();
        }
        drop(tx);
        writer.join().unwrap().unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), expected);
    }

    #[test]
    fn a_failing_write_is_reported_as_itself() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("object");
        std::fs::write(&path, b"").unwrap();
        // Open for reading only: every write fails, with `EBADF`.
        let out = File::open(&path).unwrap();
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        let writer = std::thread::spawn(move || write(out, rx));
        let mut recycler = Recycler::aligned(8, 2 * ALIGN);
        for i in 0..6 {
            // The upload stops early: later batches find nobody.
            if tx
                .blocking_send(aligned(&mut recycler, &content(ALIGN, i)))
                .is_err()
            {
                break;
            }
        }
        drop(tx);
        let failed = writer.join().unwrap().unwrap_err();
        assert_eq!(
            failed.raw_os_error(),
            Some(rustix::io::Errno::BADF.raw_os_error()),
            "{failed}"
        );
    }

    #[test]
    fn a_refused_direct_write_goes_through_the_page_cache_from_then_on() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("object");
        let Opened::Direct(out) = create(&path).unwrap() else {
            return;
        };
        // Neither the memory nor the length is aligned: `EINVAL` direct.
        let data = content(ALIGN + 100, 9);
        write_at(&out, &data[1..], 0).unwrap();
        let flags = rustix::fs::fcntl_getfl(&out).unwrap();
        assert!(!flags.contains(OFlags::DIRECT), "{flags:?}");
        write_at(&out, &data[..3], ALIGN as u64 + 99).unwrap();
        let mut expected = data[1..].to_vec();
        expected.extend_from_slice(&data[..3]);
        assert_eq!(std::fs::read(&path).unwrap(), expected);
    }
}
