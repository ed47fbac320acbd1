//! Output buffers that sealing and opening write into without zero-filling
//! them first, and that come back for the next batch once whoever they were
//! handed to (the store, a reader of `get_stream`) has let go of them.
//!
//! Encryption and decryption write every output byte from an input buffer
//! (`in → out`), so filling the output with zeros beforehand only costs a
//! pass over memory, and that pass is serial while the cipher runs on every
//! core. A reused buffer's bytes are already initialized: [`Output::slot`]
//! fills only bytes the buffer never held.
//!
//! A whole object read into memory ([`Output::for_object`]) lives in an
//! anonymous mapping that asks for transparent huge pages: its memory is
//! fresh, and faulting it in 4 KiB at a time took about a fifth of `get`'s
//! CPU time, against one fault per 2 MiB with huge pages. Where the kernel
//! compacts memory for advised mappings (`defrag` set to `madvise`, the
//! default), such a fault may wait for that; where no huge page is to be
//! had, the kernel falls back to 4 KiB pages.

use std::collections::VecDeque;

use bytes::{Buf as _, Bytes, BytesMut};

/// Whole objects of at least this many bytes are read into a huge-page
/// mapping ([`Output::for_object`]); the size of one huge page on x86-64
/// and aarch64, and the length the mapping is rounded up to, so that the
/// kernel can place it on huge-page boundaries.
const HUGE_PAGE: usize = 2 * 1024 * 1024;
/// The boundary an [`Output::aligned`] buffer starts on: a page, the most
/// that direct I/O asks of memory on common devices.
const PAGE: usize = 4096;

/// Where an [`Output`]'s bytes live.
#[derive(Debug)]
enum Buf {
    /// On the heap: growable, and reusable once frozen and let go of.
    Heap(BytesMut),
    /// An anonymous mapping of a fixed length (zeroed by the kernel as it
    /// is faulted in), for a whole object.
    Mapped(memmap2::MmapMut),
}

impl Default for Buf {
    fn default() -> Self {
        Self::Heap(BytesMut::new())
    }
}

impl Buf {
    fn bytes(&self) -> &[u8] {
        match self {
            Self::Heap(b) => b,
            Self::Mapped(m) => m,
        }
    }

    fn bytes_mut(&mut self) -> &mut [u8] {
        match self {
            Self::Heap(b) => b,
            Self::Mapped(m) => m,
        }
    }
}

/// A growable output: the first `len` bytes are in use, `buf` holds at
/// least that many initialized bytes (more when it was reused).
#[derive(Debug, Default)]
pub(crate) struct Output {
    buf: Buf,
    len: usize,
}

impl Output {
    /// An empty output of `len` zeroed bytes, ready to be overwritten. The
    /// allocator hands large zeroed blocks straight from the kernel (its
    /// pages are zero already), so no pass over memory fills them: each
    /// page is faulted in when the cipher first writes it, on whichever core
    /// that is.
    pub(crate) fn zeroed(len: usize) -> Self {
        Self {
            buf: Buf::Heap(BytesMut::zeroed(len)),
            len: 0,
        }
    }

    /// As [`Output::zeroed`], with the first byte on a [`PAGE`] boundary,
    /// so that the disk can read or write it directly (`vault::direct`).
    /// The alignment stays as the buffer is recycled; only growing it past
    /// its capacity may lose it, which costs a direct write a copy, no more.
    pub(crate) fn aligned(len: usize) -> Self {
        let mut buf = BytesMut::zeroed(len + PAGE);
        let skip = buf.as_ptr().align_offset(PAGE);
        buf.advance(skip);
        buf.truncate(len);
        Self {
            buf: Buf::Heap(buf),
            len: 0,
        }
    }

    /// An empty output for a whole object of about `len` bytes: from
    /// [`HUGE_PAGE`] bytes on, an anonymous mapping advised to use
    /// transparent huge pages (on Linux), so faulting it in takes one
    /// fault per 2 MiB instead of one per 4 KiB; smaller, or where the
    /// mapping fails, as [`Output::zeroed`]. It is never recycled.
    pub(crate) fn for_object(len: usize) -> Self {
        if len < HUGE_PAGE {
            return Self::zeroed(len);
        }
        let mapped = memmap2::MmapOptions::new()
            .len(len.div_ceil(HUGE_PAGE) * HUGE_PAGE)
            .map_anon();
        match mapped {
            Ok(map) => {
                // Advice only: without huge pages the mapping still works.
                #[cfg(target_os = "linux")]
                if let Err(e) = map.advise(memmap2::Advice::HugePage) {
                    tracing::debug!(error = %e, "transparent huge pages refused");
                }
                Self {
                    buf: Buf::Mapped(map),
                    len: 0,
                }
            }
            Err(e) => {
                tracing::debug!(error = %e, len, "an anonymous mapping failed; using the heap");
                Self::zeroed(len)
            }
        }
    }

    /// Bytes in use.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The bytes in use.
    pub(crate) fn as_slice(&self) -> &[u8] {
        &self.buf.bytes()[..self.len]
    }

    /// The bytes in use, to overwrite.
    pub(crate) fn as_mut_slice(&mut self) -> &mut [u8] {
        &mut self.buf.bytes_mut()[..self.len]
    }

    /// The next `n` bytes, now in use, for the caller to overwrite; only the
    /// part beyond what the buffer ever held is zero-filled (a mapping too
    /// short is moved to the heap first).
    pub(crate) fn slot(&mut self, n: usize) -> &mut [u8] {
        let start = self.len;
        let end = start + n;
        if self.buf.bytes().len() < end {
            match &mut self.buf {
                Buf::Heap(b) => b.resize(end, 0),
                Buf::Mapped(m) => {
                    let mut heap = BytesMut::with_capacity(end);
                    heap.extend_from_slice(&m[..start]);
                    heap.resize(end, 0);
                    self.buf = Buf::Heap(heap);
                }
            }
        }
        self.len = end;
        &mut self.buf.bytes_mut()[start..end]
    }

    /// Appends `bytes`.
    pub(crate) fn extend_from_slice(&mut self, bytes: &[u8]) {
        self.slot(bytes.len()).copy_from_slice(bytes);
    }

    /// Keeps the first `len` bytes in use (nothing if `len` is larger).
    pub(crate) fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }

    /// The bytes in use, without copying.
    pub(crate) fn freeze(self) -> Bytes {
        match self.buf {
            Buf::Heap(mut buf) => {
                buf.truncate(self.len);
                buf.freeze()
            }
            Buf::Mapped(map) => Bytes::from_owner(map).slice(..self.len),
        }
    }
}

/// Hands out [`Output`]s and takes back the ones whose [`Bytes`] nobody
/// holds any more, so a stream of batches reuses a few allocations instead
/// of faulting in fresh memory for each.
#[derive(Debug)]
pub(crate) struct Recycler {
    /// Batches handed out, oldest first (one reference each, kept here).
    out: VecDeque<Bytes>,
    /// How many batches are followed at most: beyond that the oldest is
    /// forgotten (freed when its holder drops it), so the recycler never
    /// keeps memory alive that the holders would not.
    limit: usize,
    capacity: usize,
    /// New buffers are [`Output::aligned`].
    aligned: bool,
}

impl Recycler {
    /// Follows up to `limit` batches of about `capacity` bytes.
    pub(crate) fn new(limit: usize, capacity: usize) -> Self {
        Self {
            out: VecDeque::with_capacity(limit),
            limit,
            capacity,
            aligned: false,
        }
    }

    /// As [`Recycler::new`], with new buffers made by [`Output::aligned`].
    pub(crate) fn aligned(limit: usize, capacity: usize) -> Self {
        Self {
            aligned: true,
            ..Self::new(limit, capacity)
        }
    }

    /// An empty output: the oldest batch handed out if nobody else holds it
    /// now, else a new buffer.
    pub(crate) fn take(&mut self) -> Output {
        if let Some(oldest) = self.out.front()
            && oldest.is_unique()
            && let Some(oldest) = self.out.pop_front()
            && let Ok(buf) = oldest.try_into_mut()
        {
            return Output {
                buf: Buf::Heap(buf),
                len: 0,
            };
        }
        if self.aligned {
            Output::aligned(self.capacity)
        } else {
            Output::zeroed(self.capacity)
        }
    }

    /// Hands `output` out as `Bytes`, following it to take it back later.
    pub(crate) fn hand_out(&mut self, output: Output) -> Bytes {
        let bytes = output.freeze();
        if self.out.len() == self.limit {
            self.out.pop_front();
        }
        self.out.push_back(bytes.clone());
        bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_buffer_comes_back_once_its_holder_drops_it_and_is_not_refilled() {
        let mut recycler = Recycler::new(2, 16);
        let mut first = recycler.take();
        first.extend_from_slice(b"0123456789");
        let bytes = recycler.hand_out(first);
        let ptr = bytes.as_ptr();
        // Still held: a new buffer.
        let held = recycler.take();
        assert_ne!(held.buf.bytes().as_ptr(), ptr);
        drop(bytes);
        let mut again = recycler.take();
        assert_eq!(again.buf.bytes().as_ptr(), ptr);
        assert_eq!(again.len(), 0);
        // The reused bytes are only overwritten, never zero-filled first:
        // a slot within what the buffer held still shows the old bytes.
        assert_eq!(again.slot(4), b"0123");
        again.truncate(2);
        again.extend_from_slice(b"ab");
        assert_eq!(again.as_slice(), b"01ab");
        assert_eq!(&again.freeze()[..], b"01ab");
    }

    #[test]
    fn an_aligned_buffer_starts_on_a_page_and_still_does_once_recycled() {
        let mut recycler = Recycler::aligned(2, 3 * PAGE);
        let mut first = recycler.take();
        assert!(first.slot(3 * PAGE).as_ptr().addr().is_multiple_of(PAGE));
        let bytes = recycler.hand_out(first);
        let ptr = bytes.as_ptr();
        drop(bytes);
        let mut again = recycler.take();
        let slot = again.slot(PAGE);
        assert_eq!(slot.as_ptr(), ptr, "the same buffer, from its start");
        assert!(ptr.addr().is_multiple_of(PAGE));
    }

    #[test]
    fn at_most_limit_batches_are_followed() {
        let mut recycler = Recycler::new(2, 8);
        let held: Vec<Bytes> = (0..3)
            .map(|i| {
                let mut out = recycler.take();
                out.extend_from_slice(&[i; 8]);
                recycler.hand_out(out)
            })
            .collect();
        assert_eq!(recycler.out.len(), 2);
        // The first batch is no longer followed: only its holder has it.
        assert!(held[0].is_unique());
        assert!(!held[2].is_unique());
    }

    #[test]
    fn a_whole_object_output_is_mapped_frozen_without_copying_and_moves_to_the_heap_to_grow() {
        // Small: the heap.
        assert!(matches!(
            Output::for_object(HUGE_PAGE - 1).buf,
            Buf::Heap(_)
        ));
        let mut out = Output::for_object(HUGE_PAGE + 1);
        let Buf::Mapped(map) = &out.buf else {
            panic!("a large object's output is not mapped");
        };
        // Rounded up to whole huge pages, and zeroed by the kernel.
        assert_eq!(map.len(), 2 * HUGE_PAGE);
        assert!(out.slot(HUGE_PAGE + 1).iter().all(|b| *b == 0));
        out.truncate(3);
        out.extend_from_slice(b"abc");
        let ptr = out.as_slice().as_ptr();
        let frozen = out.freeze();
        assert_eq!(&frozen[..], b"\0\0\0abc");
        assert_eq!(frozen.as_ptr(), ptr, "frozen without a copy");
        // Beyond the mapping: the bytes in use move to the heap.
        let mut out = Output::for_object(HUGE_PAGE);
        out.extend_from_slice(&[7; HUGE_PAGE]);
        out.extend_from_slice(b"x");
        assert!(matches!(out.buf, Buf::Heap(_)));
        let frozen = out.freeze();
        assert_eq!(frozen.len(), HUGE_PAGE + 1);
        assert!(frozen[..HUGE_PAGE].iter().all(|b| *b == 7));
        assert_eq!(frozen[HUGE_PAGE], b'x');
    }
}
