//! Output buffers that sealing and opening write into without zero-filling
//! them first, and that come back for the next batch once whoever they were
//! handed to (the store, a reader of `get_stream`) has let go of them.
//!
//! Encryption and decryption write every output byte from an input buffer
//! (`in → out`), so filling the output with zeros beforehand only costs a
//! pass over memory, and that pass is serial while the cipher runs on every
//! core. A reused buffer's bytes are already initialized: [`Output::slot`]
//! fills only bytes the buffer never held.

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};

/// A growable output: the first `len` bytes are in use, `buf` holds at
/// least that many initialized bytes (more when it was reused).
#[derive(Debug, Default)]
pub(crate) struct Output {
    buf: BytesMut,
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
            buf: BytesMut::zeroed(len),
            len: 0,
        }
    }

    /// Bytes in use.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The bytes in use.
    pub(crate) fn as_slice(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    /// The next `n` bytes, now in use, for the caller to overwrite; only the
    /// part beyond what the buffer ever held is zero-filled.
    pub(crate) fn slot(&mut self, n: usize) -> &mut [u8] {
        let start = self.len;
        let end = start + n;
        if self.buf.len() < end {
            self.buf.resize(end, 0);
        }
        self.len = end;
        &mut self.buf[start..end]
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
        let mut buf = self.buf;
        buf.truncate(self.len);
        buf.freeze()
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
}

impl Recycler {
    /// Follows up to `limit` batches of about `capacity` bytes.
    pub(crate) fn new(limit: usize, capacity: usize) -> Self {
        Self {
            out: VecDeque::with_capacity(limit),
            limit,
            capacity,
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
            return Output { buf, len: 0 };
        }
        Output::zeroed(self.capacity)
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
        assert_ne!(held.buf.as_ptr(), ptr);
        drop(bytes);
        let mut again = recycler.take();
        assert_eq!(again.buf.as_ptr(), ptr);
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
}
