//! The moving parts of a read and a write: [`Reader`] verifies and
//! decrypts a stored object a batch at a time, [`Batches`] cuts a stream
//! into batches, and [`on_cpu`] runs the cipher and the CID hashing of a
//! batch off the async workers. (`super::sink` takes a new object's
//! ciphertext to the store.)
//!
//! # How the work is spread over the cores
//!
//! Sealing and opening encrypt (or decrypt) and hash every stored byte.
//! Each batch is one job on rayon's pool ([`on_cpu`]) that runs both as
//! one `rayon::join`: segments are independent (each nonce names its
//! index) and so are raw leaves (one SHA-256 each), so both halves split
//! into per-segment and per-leaf tasks that rayon's work stealing spreads
//! over every core, the idle one taking tasks from the busy one, instead of
//! the cipher on one core and the hashing on the other (which would run at
//! the slower of the two). Opening hashes the ciphertext it decrypts, in the
//! same job; sealing hashes the ciphertext of the previous batch while it
//! encrypts the next, so the job never waits for its own output. Meanwhile
//! the async task keeps the store's uploads and ranged reads moving.

use bytes::Bytes;
use futures::stream::{BoxStream, Stream, StreamExt};
use healthledger_core::Cid;

use super::{BATCH, INLINE_LIMIT, READ_RANGE};
use crate::buffer::{Output, Recycler};
use crate::error::{Error, Result};
use crate::seal::Opener;
use crate::unixfs::CidHasher;

/// Runs `work`, the cipher and hashing of a batch of `bytes` bytes, on
/// rayon's pool, so that the async worker keeps driving the store's
/// requests meanwhile; inline for small batches, where the thread hop costs
/// more than it frees.
///
/// The job goes straight to a rayon worker, which wakes the async task when
/// it is done: two thread wake-ups per batch. A job on a blocking thread
/// (`spawn_blocking`) that then enters the pool costs four, and a wake-up is
/// dear on a virtual machine (an interprocessor interrupt): sealing 256 MiB
/// spent 35–45 ms of its 300 between the jobs that way, against 15–20 ms
/// this way, and its median rate over 21–29 runs rose from 766 to 915 MB/s.
pub(super) async fn on_cpu<T: Send + 'static>(
    bytes: usize,
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T> {
    if bytes <= INLINE_LIMIT {
        return Ok(work());
    }
    // A panic is caught and reported: rayon would abort the process.
    let (done, outcome) = tokio::sync::oneshot::channel();
    rayon::spawn(move || {
        let _ = done.send(std::panic::catch_unwind(std::panic::AssertUnwindSafe(work)));
    });
    match outcome.await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(_)) => Err(Error::Worker(
            "a cipher and hashing job panicked".to_owned(),
        )),
        Err(_) => Err(Error::Worker(
            "a cipher and hashing job was dropped".to_owned(),
        )),
    }
}

/// Cuts a stream of byte chunks into batches of about `limit` bytes: small
/// chunks are gathered (without copying), large ones sliced.
pub(super) struct Batches<S> {
    stream: S,
    limit: usize,
    /// The rest of a chunk larger than a batch.
    rest: Option<Bytes>,
}

impl<S, E> Batches<S>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
{
    pub(super) fn new(stream: S, limit: usize) -> Self {
        Self {
            stream,
            limit,
            rest: None,
        }
    }

    /// The next batch: its chunks, their total (`limit` bytes, or fewer if
    /// the stream ended) and whether the stream ended.
    pub(super) async fn next(&mut self) -> Result<(Vec<Bytes>, usize, bool), E> {
        let mut items = Vec::new();
        let mut total = 0;
        while total < self.limit {
            let mut item = match self.rest.take() {
                Some(rest) => rest,
                None => match self.stream.next().await {
                    Some(item) => item?,
                    None => return Ok((items, total, true)),
                },
            };
            if total + item.len() > self.limit {
                self.rest = Some(item.split_off(self.limit - total));
            }
            total += item.len();
            items.push(item);
        }
        Ok((items, total, false))
    }
}

/// What a read's jobs carry from one batch to the next.
struct OpenWork {
    opener: Opener,
    hasher: CidHasher,
}

/// Reads and verifies one object, a batch of segments at a time.
pub(super) struct Reader {
    cid: Cid,
    /// `None` once the end was verified or a failure was reported.
    work: Option<Box<OpenWork>>,
    ciphertext: Batches<BoxStream<'static, Result<Bytes>>>,
    /// A failure found after some segments of the same batch verified: those
    /// are released first, the failure on the next call.
    failed: Option<Error>,
    /// The batches `into_stream` handed out, reused once dropped.
    recycler: Recycler,
}

impl Reader {
    /// A reader of `cid` decrypting with `opener` and hashing with `hasher`.
    pub(super) fn new(
        cid: Cid,
        opener: Opener,
        hasher: CidHasher,
        ciphertext: BoxStream<'static, Result<Bytes>>,
    ) -> Self {
        Self {
            cid,
            work: Some(Box::new(OpenWork { opener, hasher })),
            ciphertext: Batches::new(ciphertext, BATCH),
            failed: None,
            recycler: Recycler::new(4, READ_RANGE as usize),
        }
    }

    /// Appends the next verified plaintext (at least [`BATCH`] bytes, unless
    /// the object ends first) to `out`; `None` once the end was verified or
    /// a failure was reported. Nothing unverified is ever left in `out`;
    /// the segments that verified before a failure are released before it.
    pub(super) async fn fill(&mut self, out: &mut Output) -> Option<Result<()>> {
        if let Some(e) = self.failed.take() {
            return Some(Err(e));
        }
        let start = out.len();
        match self.fill_batch(out).await {
            Some(Err(e)) if out.len() > start => {
                self.failed = Some(e);
                Some(Ok(()))
            }
            filled => filled,
        }
    }

    /// Everything, verified; nothing unless every segment and the CID
    /// verified. `size` is a capacity hint (the stored size, a little more
    /// than the plaintext).
    pub(super) async fn read_all(mut self, size: u64) -> Result<Bytes> {
        let mut plaintext = Output::for_object(usize::try_from(size).unwrap_or(0));
        while let Some(filled) = self.fill(&mut plaintext).await {
            filled?;
        }
        Ok(plaintext.freeze())
    }

    /// The verified plaintext as a stream of batches, ending with the first
    /// failure.
    pub(super) fn into_stream(self) -> BoxStream<'static, Result<Bytes>> {
        futures::stream::unfold(self, |mut reader| async move {
            let mut out = reader.recycler.take();
            let filled = reader.fill(&mut out).await?;
            Some((filled.map(|()| reader.recycler.hand_out(out)), reader))
        })
        .filter(|item| futures::future::ready(!matches!(item, Ok(b) if b.is_empty())))
        .boxed()
    }

    async fn fill_batch(&mut self, out: &mut Output) -> Option<Result<()>> {
        let start = out.len();
        loop {
            let work = self.work.take()?;
            let (items, bytes, ended) = match self.ciphertext.next().await {
                Ok(gathered) => gathered,
                Err(e) => return Some(Err(e)),
            };
            // Decrypted and hashed in one job; see the module docs.
            let batch = std::mem::take(out);
            let job = on_cpu(bytes, move || {
                let (mut work, mut batch) = (work, batch);
                let OpenWork { opener, hasher } = &mut *work;
                let ((), opened) = rayon::join(
                    || items.iter().for_each(|item| hasher.update(item)),
                    || {
                        items
                            .iter()
                            .try_for_each(|item| opener.update(item, &mut batch))
                    },
                );
                (work, batch, opened)
            });
            let (work, batch, opened) = match job.await {
                Ok(done) => done,
                Err(e) => return Some(Err(e)),
            };
            *out = batch;
            if let Err(reason) = opened {
                return Some(Err(Error::tampered(self.cid, reason)));
            }
            if ended {
                let OpenWork { opener, hasher } = *work;
                if let Err(reason) = opener.finish(out) {
                    return Some(Err(Error::tampered(self.cid, reason)));
                }
                let found = hasher.finish();
                if found != *self.cid.inner() {
                    return Some(Err(Error::CidMismatch {
                        cid: self.cid.to_string(),
                        found: found.to_string(),
                    }));
                }
                return Some(Ok(()));
            }
            self.work = Some(work);
            if out.len() - start >= BATCH {
                return Some(Ok(()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_job_runs_on_the_pool_and_a_panicking_one_is_an_error_not_an_abort() {
        let on_pool = on_cpu(INLINE_LIMIT + 1, || rayon::current_thread_index().is_some())
            .await
            .unwrap();
        assert!(on_pool, "a large job runs on a rayon worker");
        let inline = on_cpu(INLINE_LIMIT, || rayon::current_thread_index().is_some())
            .await
            .unwrap();
        assert!(!inline, "a small job runs on the calling task");
        let panicked = on_cpu(INLINE_LIMIT + 1, || -> u8 { panic!("boom") }).await;
        assert!(
            matches!(&panicked, Err(Error::Worker(m)) if m.contains("panicked")),
            "{panicked:?}"
        );
        // The pool still runs jobs afterwards.
        assert_eq!(on_cpu(INLINE_LIMIT + 1, || 7).await.unwrap(), 7);
    }
}
