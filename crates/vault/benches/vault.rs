//! Vault benchmark: seal (`put`) and open (`get`) throughput on `file://`
//! for 1 MiB and 256 MiB objects, beside the raw AES-256-GCM-SIV and SHA-256
//! throughput of this machine measured in the same run (the vault does both
//! over every byte, so their minimum bounds it), and the peak memory while
//! sealing a 1 GiB stream.
//!
//! `get` returns the whole object in one buffer, so for large objects it
//! also pays for allocating (page-faulting) that buffer; `get_stream` is
//! shown beside it.
//!
//! Run with `cargo bench -p healthledger-vault` (or `cargo xtask bench`).
//! Memory is read from `/proc/self/status` (`VmHWM`, the peak resident set),
//! reset through `/proc/self/clear_refs` before the 1 GiB run.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::time::{Duration, Instant};

use aes_gcm_siv::aead::{AeadInOut, KeyInit};
use aes_gcm_siv::{Aes256GcmSiv, Nonce};
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt, stream};
use healthledger_core::{VaultError, VaultPort};
use healthledger_vault::{Kek, Vault};
use sha2::{Digest, Sha256};

const MIB: usize = 1024 * 1024;

fn mb_per_s(bytes: usize, elapsed: Duration) -> f64 {
    bytes as f64 / 1e6 / elapsed.as_secs_f64()
}

fn content(len: usize) -> Bytes {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31) ^ (i >> 9) as u8)
        .collect::<Vec<u8>>()
        .into()
}

/// Raw AES-256-GCM-SIV over 64 KiB segments, as the vault seals.
fn raw_aes(total: usize) -> f64 {
    let cipher = Aes256GcmSiv::new(&[3u8; 32].into());
    let mut segment = vec![5u8; 64 * 1024];
    let start = Instant::now();
    for i in 0..total / segment.len() {
        let mut n = [0u8; 12];
        n[..8].copy_from_slice(&(i as u64).to_be_bytes());
        let tag = cipher
            .encrypt_inout_detached(&Nonce::from(n), b"", segment.as_mut_slice().into())
            .expect("encrypt");
        std::hint::black_box(tag);
    }
    mb_per_s(total, start.elapsed())
}

/// Raw SHA-256 over 256 KiB chunks, as the CID hashes leaves.
fn raw_sha256(total: usize) -> f64 {
    let chunk = vec![7u8; 256 * 1024];
    let start = Instant::now();
    for _ in 0..total / chunk.len() {
        std::hint::black_box(Sha256::digest(&chunk));
    }
    mb_per_s(total, start.elapsed())
}

fn pieces(data: Bytes, piece: usize) -> healthledger_core::ByteStream {
    let n = data.len().div_ceil(piece);
    stream::iter((0..n).map(move |i| {
        Ok::<_, VaultError>(data.slice(i * piece..((i + 1) * piece).min(data.len())))
    }))
    .boxed()
}

/// Seals then opens `rounds` objects of `len` bytes, with `get` and with
/// `get_stream`; (seal, get, get_stream) MB/s.
async fn seal_and_open(v: &Vault, len: usize, rounds: usize) -> (f64, f64, f64) {
    let data = content(len);
    let mut cids = Vec::with_capacity(rounds);
    let start = Instant::now();
    for _ in 0..rounds {
        cids.push(
            v.put_stream(pieces(data.clone(), MIB))
                .await
                .expect("put")
                .cid,
        );
    }
    let seal = mb_per_s(len * rounds, start.elapsed());
    let start = Instant::now();
    for cid in &cids {
        let back = v.get(cid).await.expect("get");
        assert_eq!(back.len(), len);
    }
    let open = mb_per_s(len * rounds, start.elapsed());
    let start = Instant::now();
    for cid in &cids {
        let mut read = 0;
        let mut out = v.get_stream(cid).await.expect("get_stream");
        while let Some(b) = out.try_next().await.expect("stream") {
            read += b.len();
        }
        assert_eq!(read, len);
    }
    let streamed = mb_per_s(len * rounds, start.elapsed());
    for cid in &cids {
        v.shred(cid).await.expect("shred");
    }
    (seal, open, streamed)
}

fn status_kib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find(|l| l.starts_with(field))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Peak resident memory growth (MiB) while sealing `total` bytes streamed
/// in 1 MiB pieces, and the sealing rate.
async fn peak_while_sealing(v: &Vault, total: usize) -> (f64, f64, f64) {
    let piece = Bytes::from(vec![0x5au8; MIB]);
    let input =
        stream::iter((0..total / MIB).map(move |_| Ok::<_, VaultError>(piece.clone()))).boxed();
    // Writing 5 to clear_refs resets VmHWM to the current resident set.
    let reset = std::fs::write("/proc/self/clear_refs", "5").is_ok();
    let before = status_kib("VmRSS:").unwrap_or(0);
    let start = Instant::now();
    let sealed = v.put_stream(input).await.expect("put 1 GiB");
    let rate = mb_per_s(total, start.elapsed());
    let peak = status_kib("VmHWM:").unwrap_or(0);
    if !reset {
        println!("note: /proc/self/clear_refs not writable; VmHWM is the peak since start");
    }
    // Reading it back as a stream stays in constant memory too.
    let mut read = 0usize;
    let mut out = v.get_stream(&sealed.cid).await.expect("get_stream");
    while let Some(b) = out.try_next().await.expect("stream") {
        read += b.len();
    }
    assert_eq!(read, total);
    v.shred(&sealed.cid).await.expect("shred");
    (
        peak as f64 / 1024.0,
        peak.saturating_sub(before) as f64 / 1024.0,
        rate,
    )
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    let vault = Vault::builder(format!("file://{}", dir.path().display()))
        .kek(Kek::generate("bench").expect("kek"))
        .build()
        .expect("vault");

    runtime.block_on(async {
        // Memory first, while the process is small.
        let (peak, growth, rate) = peak_while_sealing(&vault, 1024 * MIB).await;

        let aes = raw_aes(512 * MIB);
        let sha = raw_sha256(512 * MIB);
        let limit = aes.min(sha);
        println!("vault bench (file://, 64 KiB segments, 256 KiB CID chunks, CIDv1 raw leaves)");
        println!("  raw AES-256-GCM-SIV        {aes:>9.1} MB/s");
        println!("  raw SHA-256                {sha:>9.1} MB/s");
        println!("  limit (their minimum)      {limit:>9.1} MB/s");
        for (label, len, rounds) in [("1 MiB", MIB, 64), ("256 MiB", 256 * MIB, 2)] {
            let (seal, open, streamed) = seal_and_open(&vault, len, rounds).await;
            println!(
                "  seal (put) {label:>7}         {seal:>9.1} MB/s  ({:>5.1} % of limit)",
                100.0 * seal / limit
            );
            println!(
                "  open (get) {label:>7}         {open:>9.1} MB/s  ({:>5.1} % of limit)",
                100.0 * open / limit
            );
            println!(
                "  open (get_stream) {label:>7}  {streamed:>9.1} MB/s  ({:>5.1} % of limit)",
                100.0 * streamed / limit
            );
        }
        println!("  seal 1 GiB stream          {rate:>9.1} MB/s");
        println!(
            "  peak memory sealing 1 GiB  {peak:>9.1} MiB resident (VmHWM), {growth:.1} MiB above the start"
        );
    });
}
