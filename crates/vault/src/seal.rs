//! The sealed-object format: a STREAM construction (as in Tink's streaming
//! AEAD) over AES-256-GCM-SIV in fixed-size segments.
//!
//! Layout of a sealed object (all integers big-endian):
//!
//! | bytes            | field                                              |
//! |------------------|----------------------------------------------------|
//! | 4                | magic `HLVS`                                       |
//! | 1                | format version, `1`                                |
//! | 4                | plaintext segment size `S` (65 536)                |
//! | 7                | random nonce prefix `P`                            |
//! | `S + 16` each    | every segment but the last: ciphertext ‖ tag       |
//! | `0..=S` + 16     | the last segment (possibly empty): ciphertext ‖ tag |
//!
//! Segment `i` is sealed under the object's data key with nonce
//! `P ‖ i (u32) ‖ last` (`last` is `1` for the final segment, else `0`) and
//! the 16-byte header as associated data. Reordered, dropped or duplicated
//! segments fail their tag (wrong index), a truncated object ends on a
//! segment not sealed as last, an extended one has a segment after the one
//! sealed as last: all are detected before any of the affected plaintext is
//! released.

use aes_gcm_siv::aead::AeadInOut;
use aes_gcm_siv::aead::inout::InOutBuf;
use aes_gcm_siv::{Aes256GcmSiv, Nonce, Tag};
use rayon::prelude::*;

use crate::buffer::Output;
use crate::keys::{DataKey, fill_random};

/// Plaintext bytes per segment.
pub const SEGMENT_SIZE: usize = 64 * 1024;
/// Bytes of the object header.
pub const HEADER_LEN: usize = 16;
/// Bytes of each segment's tag.
pub const TAG_LEN: usize = 16;
const MAGIC: &[u8; 4] = b"HLVS";
const FORMAT_VERSION: u8 = 1;
const PREFIX_LEN: usize = 7;
/// Segment sizes a reader accepts, which bounds its memory.
const MIN_SEGMENT: usize = 1024;
const MAX_SEGMENT: usize = 1024 * 1024;
/// Runs of at least this many whole segments are sealed or opened on every
/// core at once (rayon's pool); shorter ones on the calling thread.
const PARALLEL_SEGMENTS: usize = 4;

/// The stored size of `plaintext_len` bytes once sealed.
pub fn sealed_len(plaintext_len: u64) -> u64 {
    let segments = plaintext_len.div_ceil(SEGMENT_SIZE as u64).max(1);
    HEADER_LEN as u64 + plaintext_len + segments * TAG_LEN as u64
}

fn nonce(prefix: &[u8; PREFIX_LEN], index: u32, last: bool) -> Nonce {
    let mut n = [0u8; 12];
    n[..PREFIX_LEN].copy_from_slice(prefix);
    n[PREFIX_LEN..11].copy_from_slice(&index.to_be_bytes());
    n[11] = u8::from(last);
    Nonce::from(n)
}

/// The index after a run of `count` segments from `first`.
fn run_end(first: u32, count: usize) -> Result<u32, String> {
    u32::try_from(count)
        .ok()
        .and_then(|n| first.checked_add(n))
        .ok_or_else(|| "the object exceeds 2^32 segments".to_owned())
}

/// Encrypts a plaintext stream into the sealed format.
///
/// Whole segments of a large input are sealed straight from it; small
/// inputs are staged until [`STAGE_SEGMENTS`] segments are in hand, so
/// that a stream of small chunks is sealed in parallel runs too. A full
/// segment is sealed only once more data shows it is not the last.
pub(crate) struct Sealer {
    cipher: Aes256GcmSiv,
    header: [u8; HEADER_LEN],
    prefix: [u8; PREFIX_LEN],
    index: u32,
    /// Staged plaintext: whole segments, then at most one partial one.
    pending: Vec<u8>,
}

/// Segments a [`Sealer`] stages from small inputs before sealing them as
/// one run.
const STAGE_SEGMENTS: usize = 16;

impl Sealer {
    /// A sealer under `key` with a fresh random nonce prefix.
    pub(crate) fn new(key: &DataKey) -> crate::Result<Self> {
        let mut prefix = [0u8; PREFIX_LEN];
        fill_random(&mut prefix)?;
        let mut header = [0u8; HEADER_LEN];
        header[..4].copy_from_slice(MAGIC);
        header[4] = FORMAT_VERSION;
        header[5..9].copy_from_slice(&(SEGMENT_SIZE as u32).to_be_bytes());
        header[9..].copy_from_slice(&prefix);
        Ok(Self {
            cipher: key.cipher(),
            header,
            prefix,
            index: 0,
            pending: Vec::with_capacity(STAGE_SEGMENTS * SEGMENT_SIZE),
        })
    }

    /// The header, to be written before any segment.
    pub(crate) fn header(&self) -> &[u8] {
        &self.header
    }

    /// Appends to `out` every segment that `data` completes.
    pub(crate) fn update(&mut self, mut data: &[u8], out: &mut Output) -> Result<(), String> {
        while !data.is_empty() {
            let staged = self.pending.len();
            if staged > 0
                && staged.is_multiple_of(SEGMENT_SIZE)
                && (staged == STAGE_SEGMENTS * SEGMENT_SIZE || data.len() > SEGMENT_SIZE)
            {
                // Whole staged segments, and more data after them: none is
                // the last.
                let pending = std::mem::take(&mut self.pending);
                let sealed = self.seal_run(&pending, out);
                self.pending = pending;
                self.pending.clear();
                sealed?;
                continue;
            }
            if staged == 0 && data.len() > SEGMENT_SIZE {
                // Whole segments with more data after them, sealed straight
                // from the input.
                let whole = (data.len() - 1) / SEGMENT_SIZE * SEGMENT_SIZE;
                let (run, rest) = data.split_at(whole);
                self.seal_run(run, out)?;
                data = rest;
                continue;
            }
            // Stage: a large input only up to the next segment boundary (the
            // rest then goes straight through), a small one up to the stage.
            let room = if data.len() > SEGMENT_SIZE {
                SEGMENT_SIZE - staged % SEGMENT_SIZE
            } else {
                STAGE_SEGMENTS * SEGMENT_SIZE - staged
            };
            let take = room.min(data.len());
            self.pending.extend_from_slice(&data[..take]);
            data = &data[take..];
        }
        Ok(())
    }

    /// Appends the staged segments to `out`, the final one sealed as the
    /// last (an empty one for an empty object).
    pub(crate) fn finish(mut self, out: &mut Output) -> Result<(), String> {
        let pending = std::mem::take(&mut self.pending);
        let before_last = pending.len().saturating_sub(1) / SEGMENT_SIZE * SEGMENT_SIZE;
        let (run, last) = pending.split_at(before_last);
        self.seal_run(run, out)?;
        self.seal_segment(last, true, out)
    }

    /// Seals `run`, whole segments none of which is the last; runs of
    /// [`PARALLEL_SEGMENTS`] or more on every core at once: each segment's
    /// nonce depends only on its index, so they are independent.
    fn seal_run(&mut self, run: &[u8], out: &mut Output) -> Result<(), String> {
        let (first, count) = (self.index, run.len() / SEGMENT_SIZE);
        if count < PARALLEL_SEGMENTS {
            for segment in run.chunks(SEGMENT_SIZE) {
                self.seal_segment(segment, false, out)?;
            }
            return Ok(());
        }
        let end = run_end(first, count)?;
        let sealed = out.slot(count * (SEGMENT_SIZE + TAG_LEN));
        let (cipher, header, prefix) = (&self.cipher, &self.header, &self.prefix);
        run.par_chunks(SEGMENT_SIZE)
            .zip(sealed.par_chunks_mut(SEGMENT_SIZE + TAG_LEN))
            .enumerate()
            .try_for_each(|(i, (segment, sealed))| {
                let index = first + i as u32;
                let (body, tag_out) = sealed.split_at_mut(SEGMENT_SIZE);
                let buf = InOutBuf::new(segment, body)
                    .map_err(|_| format!("segment {index} buffer sizes differ"))?;
                let tag = cipher
                    .encrypt_inout_detached(&nonce(prefix, index, false), header, buf)
                    .map_err(|_| format!("sealing segment {index} failed"))?;
                tag_out.copy_from_slice(tag.as_slice());
                Ok::<(), String>(())
            })?;
        self.index = end;
        Ok(())
    }

    fn seal_segment(&mut self, segment: &[u8], last: bool, out: &mut Output) -> Result<(), String> {
        // Encrypted from the input into the output in one pass; the output
        // is overwritten, never zero-filled first.
        let sealed = out.slot(segment.len() + TAG_LEN);
        let (body, tag_out) = sealed.split_at_mut(segment.len());
        let buf = InOutBuf::new(segment, body)
            .map_err(|_| format!("segment {} buffer sizes differ", self.index))?;
        let tag = self
            .cipher
            .encrypt_inout_detached(&nonce(&self.prefix, self.index, last), &self.header, buf)
            .map_err(|_| format!("sealing segment {} failed", self.index))?;
        tag_out.copy_from_slice(tag.as_slice());
        self.index = self
            .index
            .checked_add(1)
            .ok_or("the object exceeds 2^32 segments")?;
        Ok(())
    }
}

/// Decrypts a sealed stream, releasing each segment only after its tag
/// verified.
pub(crate) struct Opener {
    cipher: Aes256GcmSiv,
    header: Vec<u8>,
    prefix: [u8; PREFIX_LEN],
    segment_size: usize,
    index: u32,
    pending: Vec<u8>,
}

impl Opener {
    /// An opener under `key`; the header is read from the stream.
    pub(crate) fn new(key: &DataKey) -> Self {
        Self {
            cipher: key.cipher(),
            header: Vec::with_capacity(HEADER_LEN),
            prefix: [0; PREFIX_LEN],
            segment_size: 0,
            index: 0,
            pending: Vec::new(),
        }
    }

    /// Feeds sealed bytes; appends to `out` the plaintext of every segment
    /// known not to be the last and whose tag verified.
    pub(crate) fn update(&mut self, mut data: &[u8], out: &mut Output) -> Result<(), String> {
        if self.header.len() < HEADER_LEN {
            let take = (HEADER_LEN - self.header.len()).min(data.len());
            self.header.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.header.len() < HEADER_LEN {
                return Ok(());
            }
            self.parse_header()?;
        }
        let sealed_segment = self.segment_size + TAG_LEN;
        while !data.is_empty() {
            if self.pending.is_empty() && data.len() > PARALLEL_SEGMENTS * sealed_segment {
                // A run of whole sealed segments with more data after it:
                // opened straight from the input, on every core.
                let whole = (data.len() - 1) / sealed_segment * sealed_segment;
                let (run, rest) = data.split_at(whole);
                self.open_run(run, out)?;
                data = rest;
                continue;
            }
            if self.pending.is_empty() && data.len() > sealed_segment {
                // Fast path: a whole sealed segment with more data after it
                // is opened straight from the input, without staging it.
                let (segment, rest) = data.split_at(sealed_segment);
                self.open_segment(segment, false, out)?;
                data = rest;
                continue;
            }
            if self.pending.len() == sealed_segment {
                self.open_pending(false, out)?;
            }
            let take = (sealed_segment - self.pending.len()).min(data.len());
            self.pending.extend_from_slice(&data[..take]);
            data = &data[take..];
        }
        Ok(())
    }

    /// Opens the last segment.
    pub(crate) fn finish(mut self, out: &mut Output) -> Result<(), String> {
        if self.header.len() < HEADER_LEN {
            return Err(format!(
                "the object is {} bytes, shorter than its {HEADER_LEN}-byte header",
                self.header.len()
            ));
        }
        self.open_pending(true, out)
    }

    fn parse_header(&mut self) -> Result<(), String> {
        if &self.header[..4] != MAGIC {
            return Err("the object does not start with the HLVS header".to_owned());
        }
        if self.header[4] != FORMAT_VERSION {
            return Err(format!(
                "format version {} is not the supported version {FORMAT_VERSION}",
                self.header[4]
            ));
        }
        let size = u32::from_be_bytes([
            self.header[5],
            self.header[6],
            self.header[7],
            self.header[8],
        ]) as usize;
        if !(MIN_SEGMENT..=MAX_SEGMENT).contains(&size) {
            return Err(format!(
                "segment size {size} is outside {MIN_SEGMENT}..={MAX_SEGMENT}"
            ));
        }
        self.segment_size = size;
        self.prefix.copy_from_slice(&self.header[9..HEADER_LEN]);
        self.pending.reserve(size + TAG_LEN);
        Ok(())
    }

    fn open_pending(&mut self, last: bool, out: &mut Output) -> Result<(), String> {
        let pending = std::mem::take(&mut self.pending);
        let opened = self.open_segment(&pending, last, out);
        self.pending = pending;
        self.pending.clear();
        opened
    }

    /// Opens `run`, whole sealed segments none of which is the last, in
    /// parallel. On a failure `out` keeps the plaintext of the segments
    /// before the first one that failed, and the error names that one.
    fn open_run(&mut self, run: &[u8], out: &mut Output) -> Result<(), String> {
        let sealed_segment = self.segment_size + TAG_LEN;
        let (first, count) = (self.index, run.len() / sealed_segment);
        let end = run_end(first, count)?;
        let start = out.len();
        let size = self.segment_size;
        let plain = out.slot(count * size);
        let (cipher, header, prefix) = (&self.cipher, &self.header, &self.prefix);
        let first_bad = run
            .par_chunks(sealed_segment)
            .zip(plain.par_chunks_mut(size))
            .enumerate()
            .filter_map(|(i, (sealed, plain))| {
                let index = first + i as u32;
                let (body, tag) = sealed.split_at(size);
                let opened = Tag::try_from(tag).is_ok_and(|tag| {
                    InOutBuf::new(body, plain).is_ok_and(|buf| {
                        cipher
                            .decrypt_inout_detached(&nonce(prefix, index, false), header, buf, &tag)
                            .is_ok()
                    })
                });
                (!opened).then_some(i)
            })
            .min();
        if let Some(bad) = first_bad {
            // Never leave unauthenticated plaintext in the caller's buffer.
            out.truncate(start + bad * size);
            self.index = first + bad as u32;
            return Err(format!(
                "segment {} failed authentication (reordered, dropped, duplicated or damaged)",
                self.index
            ));
        }
        self.index = end;
        Ok(())
    }

    fn open_segment(&mut self, sealed: &[u8], last: bool, out: &mut Output) -> Result<(), String> {
        if sealed.len() < TAG_LEN {
            return Err(format!(
                "segment {} is {} bytes, shorter than its tag",
                self.index,
                sealed.len()
            ));
        }
        let body = sealed.len() - TAG_LEN;
        let tag = Tag::try_from(&sealed[body..])
            .map_err(|_| format!("segment {} has a malformed tag", self.index))?;
        let start = out.len();
        let buf = InOutBuf::new(&sealed[..body], out.slot(body))
            .map_err(|_| format!("segment {} buffer sizes differ", self.index))?;
        let opened = self.cipher.decrypt_inout_detached(
            &nonce(&self.prefix, self.index, last),
            &self.header,
            buf,
            &tag,
        );
        if opened.is_err() {
            // Never leave unauthenticated plaintext in the caller's buffer.
            out.truncate(start);
            return Err(format!(
                "segment {} failed authentication{}",
                self.index,
                if last {
                    " as the last segment (truncated, extended or damaged)"
                } else {
                    " (reordered, dropped, duplicated or damaged)"
                }
            ));
        }
        self.index = self
            .index
            .checked_add(1)
            .ok_or("the object exceeds 2^32 segments")?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seal(key: &DataKey, data: &[u8]) -> Vec<u8> {
        seal_in_pieces(key, data, data.len().max(1))
    }

    fn seal_in_pieces(key: &DataKey, data: &[u8], piece: usize) -> Vec<u8> {
        let mut sealer = Sealer::new(key).unwrap();
        let mut out = Output::default();
        out.extend_from_slice(sealer.header());
        for piece in data.chunks(piece) {
            sealer.update(piece, &mut out).unwrap();
        }
        sealer.finish(&mut out).unwrap();
        out.as_slice().to_vec()
    }

    fn open(key: &DataKey, sealed: &[u8]) -> Result<Vec<u8>, String> {
        open_in_pieces(key, sealed, 10_007)
    }

    fn open_in_pieces(key: &DataKey, sealed: &[u8], piece: usize) -> Result<Vec<u8>, String> {
        let mut opener = Opener::new(key);
        let mut out = Output::default();
        for piece in sealed.chunks(piece) {
            opener.update(piece, &mut out)?;
        }
        opener.finish(&mut out)?;
        Ok(out.as_slice().to_vec())
    }

    #[test]
    fn runs_sealed_and_opened_in_parallel_match_one_segment_at_a_time() {
        let key = DataKey::generate().unwrap();
        for len in [
            5 * SEGMENT_SIZE,
            5 * SEGMENT_SIZE + 1,
            37 * SEGMENT_SIZE - 3,
        ] {
            let data: Vec<u8> = (0..len).map(|i| (i % 253) as u8).collect();
            // Sealed in one piece (parallel runs), opened in small pieces
            // (one segment at a time), and the other way round.
            let sealed = seal(&key, &data);
            assert_eq!(open(&key, &sealed).unwrap(), data, "{len}");
            // Small pieces are staged and sealed in runs, pieces just over
            // a segment go straight through after topping up the staged
            // segment: the same segments either way, opened in one piece.
            for piece in [999, SEGMENT_SIZE + 1, 3 * SEGMENT_SIZE - 5] {
                let pieces = seal_in_pieces(&key, &data, piece);
                assert_eq!(pieces.len(), sealed.len(), "{len} in pieces of {piece}");
                let out = open_in_pieces(&key, &pieces, pieces.len()).unwrap();
                assert_eq!(out, data, "{len} in pieces of {piece}");
            }
            // A damaged segment inside a parallel run: only the segments
            // before it are released, and the error names it.
            let mut damaged = sealed.clone();
            damaged[HEADER_LEN + 3 * (SEGMENT_SIZE + TAG_LEN) + 7] ^= 1;
            let mut opener = Opener::new(&key);
            let mut out = Output::default();
            let err = opener.update(&damaged, &mut out).unwrap_err();
            assert!(err.starts_with("segment 3 "), "{err}");
            assert_eq!(out.as_slice(), &data[..3 * SEGMENT_SIZE], "{len}");
        }
    }

    #[test]
    fn sizes_at_segment_boundaries_round_trip() {
        let key = DataKey::generate().unwrap();
        for len in [
            0,
            1,
            SEGMENT_SIZE - 1,
            SEGMENT_SIZE,
            SEGMENT_SIZE + 1,
            2 * SEGMENT_SIZE,
            STAGE_SEGMENTS * SEGMENT_SIZE,
            STAGE_SEGMENTS * SEGMENT_SIZE + 1,
            2 * STAGE_SEGMENTS * SEGMENT_SIZE,
        ] {
            let data: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let sealed = seal(&key, &data);
            assert_eq!(sealed.len() as u64, sealed_len(len as u64), "len {len}");
            assert_eq!(open(&key, &sealed).unwrap(), data, "len {len}");
            // Staged from small pieces, the last segment is sealed as the
            // last just the same.
            let staged = seal_in_pieces(&key, &data, 4096);
            assert_eq!(staged.len() as u64, sealed_len(len as u64), "len {len}");
            assert_eq!(open(&key, &staged).unwrap(), data, "len {len}");
        }
    }

    #[test]
    fn truncation_at_a_segment_boundary_is_detected() {
        let key = DataKey::generate().unwrap();
        let data = vec![7u8; 3 * SEGMENT_SIZE];
        let sealed = seal(&key, &data);
        let cut = HEADER_LEN + 2 * (SEGMENT_SIZE + TAG_LEN);
        let err = open(&key, &sealed[..cut]).unwrap_err();
        assert!(err.contains("as the last segment"), "{err}");
    }
}
