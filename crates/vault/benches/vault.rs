//! Vault benchmark: seal (`put`) and open (`get`) throughput on `file://`
//! for 1 MiB and 256 MiB objects, beside the raw AES-256-GCM-SIV and SHA-256
//! throughput of this machine measured in the same run and the same way the
//! vault runs them (after a warm-up, AES on one core while SHA-256 runs on
//! the other, inputs and outputs behind `std::hint::black_box`), the limits
//! they set (their minimum for a one-core-each split, and the
//! two-core bound `2 / (1/AES + 1/SHA)` for any split), the rate of plain
//! fsynced file writes of the same sizes (what `file://` itself allows a
//! seal) and of reads from the disk (what it allows an object's first
//! read), and the peak memory while sealing a 1 GiB stream.
//!
//! `get` returns the whole object in one buffer, so for large objects it
//! also pays for allocating (page-faulting) that buffer; `get_stream` is
//! shown beside it. On Linux the vault writes large objects past the page
//! cache, so `get`, which runs first, reads them from the disk, and
//! `get_stream`, which follows, from the page cache `get` filled.
//!
//! The machine is shared (two cores, other builds and tests may run
//! beside), so every figure, the limits included, is the best of
//! [`REPEATS`] measurements: the least disturbed one.
//!
//! Each seal and open rate also shows the cores it kept busy (the
//! process's CPU time over the wall time) and the share of that CPU time
//! that encrypting and hashing take at the raw rates per CPU second of the
//! measuring threads: a figure the other tenants of the machine disturb
//! far less than the rates, and what is left of it is the CPU spent
//! elsewhere (the kernel's I/O, thread wake-ups, memory faults).
//!
//! `HL_VAULT_BENCH_ONLY=seal|get|get_stream` runs only that operation on
//! 256 MiB objects for `HL_VAULT_BENCH_SECS` seconds, for a profiler;
//! `HL_VAULT_BENCH_DIR` puts the store under another directory (a tmpfs
//! shows the rates without the disk); `HL_VAULT_BENCH_COLD=1` has the page
//! cache let go of the objects before each round (a first read each time).
//!
//! Run with `cargo bench -p healthledger-vault` (or `cargo xtask bench`).
//! Memory is read from `/proc/self/status` (`VmHWM`, the peak resident set),
//! reset through `/proc/self/clear_refs` before the 1 GiB run.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use aes_gcm_siv::aead::inout::InOutBuf;
use aes_gcm_siv::aead::{AeadInOut, KeyInit};
use aes_gcm_siv::{Aes256GcmSiv, Nonce};
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt, stream};
use healthledger_core::{HhNumber, VaultError, VaultPort};
use healthledger_vault::{Kek, Vault};
use sha2::{Digest, Sha256};

const MIB: usize = 1024 * 1024;
/// The vault's plaintext segment.
const SEGMENT: usize = 64 * 1024;
/// The CID's leaf chunk.
const CID_CHUNK: usize = 256 * 1024;
/// Measurements of each figure; the best is printed.
const REPEATS: usize = 3;

/// The best of [`REPEATS`] rates.
fn best(mut rate: impl FnMut() -> f64) -> f64 {
    (0..REPEATS).map(|_| rate()).fold(0.0, f64::max)
}

/// The CPU time this process has used so far (user and system, every
/// thread, the finished ones too), in the kernel's 10 ms clock ticks.
fn cpu_time() -> Duration {
    cpu_time_in("/proc/self/stat")
}

/// The CPU time the calling thread has used so far.
fn thread_cpu_time() -> Duration {
    cpu_time_in("/proc/thread-self/stat")
}

/// The user and system time in a `stat` file of `/proc` (`USER_HZ` is 100
/// on Linux).
fn cpu_time_in(path: &str) -> Duration {
    let stat = std::fs::read_to_string(path).unwrap_or_default();
    // The command name may hold spaces: the fields after it are counted
    // from its closing parenthesis (utime and stime are fields 14 and 15).
    let ticks: u64 = stat
        .rsplit_once(')')
        .map(|(_, rest)| {
            rest.split_whitespace()
                .skip(11)
                .take(2)
                .filter_map(|t| t.parse::<u64>().ok())
                .sum()
        })
        .unwrap_or(0);
    Duration::from_millis(ticks * 10)
}

/// One timed run: bytes processed, the wall time and the process CPU time
/// it took.
#[derive(Clone, Copy, Default)]
struct Run {
    bytes: usize,
    wall: Duration,
    cpu: Duration,
}

impl Run {
    /// Times `work` over `bytes` bytes.
    async fn time<T>(bytes: usize, work: impl std::future::Future<Output = T>) -> (Self, T) {
        let (cpu, start) = (cpu_time(), Instant::now());
        let out = work.await;
        let run = Self {
            bytes,
            wall: start.elapsed(),
            cpu: cpu_time().saturating_sub(cpu),
        };
        (run, out)
    }

    fn rate(&self) -> f64 {
        mb_per_s(self.bytes, self.wall)
    }

    /// The faster of two runs (a run of nothing is never the faster).
    fn best(self, other: Self) -> Self {
        if self.bytes == 0 || other.rate() > self.rate() {
            other
        } else {
            self
        }
    }

    /// Cores kept busy on average (CPU time over wall time).
    fn cores(&self) -> f64 {
        self.cpu.as_secs_f64() / self.wall.as_secs_f64()
    }

    /// The CPU time that encrypting and hashing these bytes takes at the
    /// raw rates per CPU second, as a share of the CPU time the run used:
    /// what is left is everything else (copies, the kernel's file writes,
    /// allocation, scheduling, spinning).
    fn crypto_share(&self, aes: Rate, sha: Rate) -> f64 {
        let crypto = self.bytes as f64 / 1e6 * (1.0 / aes.cpu() + 1.0 / sha.cpu());
        crypto / self.cpu.as_secs_f64().max(1e-9)
    }
}

/// The patient every benchmarked object belongs to.
fn patient() -> HhNumber {
    HhNumber::new(555_555).expect("HH number")
}

fn mb_per_s(bytes: usize, elapsed: Duration) -> f64 {
    bytes as f64 / 1e6 / elapsed.as_secs_f64()
}

fn content(len: usize) -> Bytes {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31) ^ (i >> 9) as u8)
        .collect::<Vec<u8>>()
        .into()
}

/// A raw rate: MB per second of wall time, and MB per second of the
/// measuring thread's CPU time (what the rate would be had the thread had
/// its core to itself).
#[derive(Clone, Copy, Default)]
struct Rate {
    wall: f64,
    /// Bytes and CPU time over every measurement so far: the CPU clock
    /// ticks in 10 ms steps, so one measurement's CPU rate is coarse.
    bytes: usize,
    cpu_time: Duration,
}

impl Rate {
    /// Times `work` over `bytes` bytes on the calling thread.
    fn time(bytes: usize, work: impl FnOnce()) -> Self {
        let (cpu, start) = (thread_cpu_time(), Instant::now());
        work();
        let (wall, cpu_time) = (start.elapsed(), thread_cpu_time().saturating_sub(cpu));
        Self {
            wall: mb_per_s(bytes, wall),
            bytes,
            cpu_time,
        }
    }

    /// MB per CPU second over every measurement.
    fn cpu(&self) -> f64 {
        mb_per_s(self.bytes, self.cpu_time.max(Duration::from_millis(1)))
    }

    /// The best wall rate of both, the CPU rate over both.
    fn max(self, other: Self) -> Self {
        Self {
            wall: self.wall.max(other.wall),
            bytes: self.bytes + other.bytes,
            cpu_time: self.cpu_time + other.cpu_time,
        }
    }
}

/// Raw AES-256-GCM-SIV over `total` bytes in 64 KiB segments, from an input
/// buffer into an output buffer with a 16-byte header as associated data,
/// as the vault seals.
fn raw_aes(total: usize) -> Rate {
    let cipher = Aes256GcmSiv::new(&[3u8; 32].into());
    let input = vec![5u8; SEGMENT];
    let mut output = vec![0u8; SEGMENT];
    let header = [9u8; 16];
    Rate::time(total, || {
        for i in 0..total / SEGMENT {
            let mut n = [0u8; 12];
            n[..8].copy_from_slice(&(i as u64).to_be_bytes());
            let buf = InOutBuf::new(black_box(&input[..]), &mut output[..]).expect("same sizes");
            let tag = cipher
                .encrypt_inout_detached(&Nonce::from(n), &header, buf)
                .expect("encrypt");
            black_box((&output, tag));
        }
    })
}

/// Raw SHA-256 over `total` bytes in 256 KiB chunks, as the CID hashes
/// leaves.
fn raw_sha256(total: usize) -> Rate {
    let chunk = vec![7u8; CID_CHUNK];
    Rate::time(total, || {
        for _ in 0..total / CID_CHUNK {
            black_box(Sha256::digest(black_box(&chunk[..])));
        }
    })
}

/// The raw rates the way the vault runs them: AES on one core while SHA-256
/// runs on the other, after a warm-up of both (CPU frequency, caches, page
/// faults); (AES, SHA-256), each for one core with both busy.
fn raw_rates(total: usize) -> (Rate, Rate) {
    let both = |total| {
        std::thread::scope(|s| {
            let aes = s.spawn(|| raw_aes(total));
            let sha = s.spawn(|| raw_sha256(total));
            (
                aes.join().expect("AES thread"),
                sha.join().expect("SHA thread"),
            )
        })
    };
    both(total / 8);
    (0..REPEATS)
        .map(|_| both(total))
        .fold((Rate::default(), Rate::default()), |(a, s), (aes, sha)| {
            (aes.max(a), sha.max(s))
        })
}

/// The store's own limit: `rounds` new files of `len` bytes written to
/// `dir` in pieces of at most 8 MiB, each file and the directory fsynced as
/// the vault's `file://` store does before `put` returns; MB/s.
fn raw_file_writes(dir: &std::path::Path, len: usize, rounds: usize) -> f64 {
    use std::io::Write;
    let piece = vec![0x33u8; len.min(8 * MIB)];
    let start = Instant::now();
    for round in 0..rounds {
        let path = dir.join(format!("raw-{round}"));
        let mut file = std::fs::File::create(&path).expect("create");
        for _ in 0..len / piece.len() {
            file.write_all(black_box(&piece)).expect("write");
        }
        file.sync_all().expect("fsync");
        std::fs::File::open(dir)
            .expect("dir")
            .sync_all()
            .expect("fsync dir");
    }
    let rate = mb_per_s(len * rounds, start.elapsed());
    for round in 0..rounds {
        std::fs::remove_file(dir.join(format!("raw-{round}"))).expect("remove");
    }
    rate
}

/// Reads of `rounds` files of `len` bytes written as the vault writes a
/// large object (past the page cache, on Linux), in 4 MiB pieces into a
/// reused buffer, as the vault reads them: what `file://` itself allows an
/// object's first read. (Elsewhere than on Linux the files stay cached.)
fn raw_file_reads(dir: &std::path::Path, len: usize, rounds: usize) -> f64 {
    use std::os::unix::fs::{FileExt, OpenOptionsExt};
    const RANGE: usize = 4 * MIB;
    #[cfg(target_os = "linux")]
    let flags = rustix::fs::OFlags::DIRECT.bits() as i32;
    #[cfg(not(target_os = "linux"))]
    let flags = 0;
    // A direct write's memory starts on a page.
    let piece = vec![0x44u8; len.min(8 * MIB) + 4096];
    let skip = piece.as_ptr().align_offset(4096);
    let piece = &piece[skip..skip + len.min(8 * MIB)];
    let paths: Vec<_> = (0..rounds)
        .map(|round| {
            let path = dir.join(format!("raw-read-{round}"));
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .custom_flags(flags)
                .open(&path)
                .expect("create");
            for _ in 0..len / piece.len() {
                std::io::Write::write_all(&mut file, piece).expect("write");
            }
            file.sync_all().expect("fsync");
            path
        })
        .collect();
    let mut buf = vec![0u8; RANGE];
    let start = Instant::now();
    for path in &paths {
        let file = std::fs::File::open(path).expect("open");
        let mut offset = 0;
        while offset < len {
            let n = RANGE.min(len - offset);
            file.read_exact_at(black_box(&mut buf[..n]), offset as u64)
                .expect("read");
            offset += n;
        }
    }
    let rate = mb_per_s(len * rounds, start.elapsed());
    for path in paths {
        std::fs::remove_file(path).expect("remove");
    }
    rate
}

fn pieces(data: Bytes, piece: usize) -> healthledger_core::ByteStream {
    let n = data.len().div_ceil(piece);
    stream::iter((0..n).map(move |i| {
        Ok::<_, VaultError>(data.slice(i * piece..((i + 1) * piece).min(data.len())))
    }))
    .boxed()
}

/// [`seal_and_open`] [`REPEATS`] times; the fastest run of each.
async fn best_seal_and_open(v: &Vault, len: usize, rounds: usize) -> [Run; 3] {
    let mut best = [Run::default(); 3];
    for _ in 0..REPEATS {
        let runs = seal_and_open(v, len, rounds).await;
        for (best, run) in best.iter_mut().zip(runs) {
            *best = best.best(run);
        }
    }
    best
}

/// Seals `rounds` objects of `len` bytes; their CIDs.
async fn seal_all(v: &Vault, data: &Bytes, rounds: usize) -> Vec<healthledger_core::Cid> {
    let mut cids = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        cids.push(
            v.put_stream(patient(), pieces(data.clone(), MIB))
                .await
                .expect("put")
                .cid,
        );
    }
    cids
}

/// Opens every one of `cids` (each `len` bytes) with `get`.
async fn get_all(v: &Vault, cids: &[healthledger_core::Cid], len: usize) {
    for cid in cids {
        let back = v.get(patient(), cid).await.expect("get");
        assert_eq!(back.len(), len);
    }
}

/// Opens every one of `cids` (each `len` bytes) with `get_stream`.
async fn stream_all(v: &Vault, cids: &[healthledger_core::Cid], len: usize) {
    for cid in cids {
        let mut read = 0;
        let mut out = v.get_stream(patient(), cid).await.expect("get_stream");
        while let Some(b) = out.try_next().await.expect("stream") {
            read += b.len();
        }
        assert_eq!(read, len);
    }
}

/// Seals then opens `rounds` objects of `len` bytes, with `get` and with
/// `get_stream`: the (seal, get, get_stream) runs.
async fn seal_and_open(v: &Vault, len: usize, rounds: usize) -> [Run; 3] {
    let data = content(len);
    let total = len * rounds;
    let (seal, cids) = Run::time(total, seal_all(v, &data, rounds)).await;
    let (open, ()) = Run::time(total, get_all(v, &cids, len)).await;
    let (streamed, ()) = Run::time(total, stream_all(v, &cids, len)).await;
    for cid in &cids {
        v.shred(cid).await.expect("shred");
    }
    [seal, open, streamed]
}

/// `HL_VAULT_BENCH_ONLY=seal|get|get_stream`: only that operation, on
/// 256 MiB objects, over and over for `HL_VAULT_BENCH_SECS` seconds (10 by
/// default), so that a profiler (`perf record`) sees nothing else.
async fn only(v: &Vault, what: &str, dir: &std::path::Path) {
    let secs: u64 = std::env::var("HL_VAULT_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let (len, rounds) = (256 * MIB, 2);
    let data = content(len);
    let cids = if what == "seal" {
        Vec::new()
    } else {
        seal_all(v, &data, rounds).await
    };
    let until = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < until {
        #[cfg(target_os = "linux")]
        if std::env::var_os("HL_VAULT_BENCH_COLD").is_some() {
            for entry in std::fs::read_dir(dir.join("content/objects")).expect("objects") {
                let file = std::fs::File::open(entry.expect("entry").path()).expect("open");
                rustix::fs::fadvise(&file, 0, None, rustix::fs::Advice::DontNeed).expect("fadvise");
            }
        }
        let (run, sealed) = Run::time(len * rounds, async {
            match what {
                "seal" => seal_all(v, &data, rounds).await,
                "get" => {
                    get_all(v, &cids, len).await;
                    Vec::new()
                }
                "get_stream" => {
                    stream_all(v, &cids, len).await;
                    Vec::new()
                }
                other => panic!("HL_VAULT_BENCH_ONLY={other}: expected seal, get or get_stream"),
            }
        })
        .await;
        for cid in sealed {
            v.shred(&cid).await.expect("shred");
        }
        println!(
            "{what} 256 MiB: {:>7.1} MB/s, {:.2} cores busy",
            run.rate(),
            run.cores()
        );
    }
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
    let sealed = v.put_stream(patient(), input).await.expect("put 1 GiB");
    let rate = mb_per_s(total, start.elapsed());
    let peak = status_kib("VmHWM:").unwrap_or(0);
    if !reset {
        println!("note: /proc/self/clear_refs not writable; VmHWM is the peak since start");
    }
    // Reading it back as a stream stays in constant memory too.
    let mut read = 0usize;
    let mut out = v
        .get_stream(patient(), &sealed.cid)
        .await
        .expect("get_stream");
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
    // `HL_VAULT_BENCH_DIR` puts the store elsewhere (a tmpfs such as
    // /dev/shm shows the rates without the disk).
    let dir = match std::env::var_os("HL_VAULT_BENCH_DIR") {
        Some(parent) => tempfile::tempdir_in(parent),
        None => tempfile::tempdir(),
    }
    .expect("temp dir");
    let vault = Vault::builder(format!("file://{}/content", dir.path().display()))
        .key_store(format!("file://{}/keys", dir.path().display()))
        .erasure_horizon(Duration::ZERO)
        .kek(Kek::generate("bench").expect("kek"))
        .build()
        .expect("vault");

    if let Ok(what) = std::env::var("HL_VAULT_BENCH_ONLY") {
        runtime.block_on(only(&vault, &what, dir.path()));
        return;
    }

    runtime.block_on(async {
        // Memory first, while the process is small.
        let (peak, growth, rate) = peak_while_sealing(&vault, 1024 * MIB).await;

        let (aes_rate, sha_rate) = raw_rates(512 * MIB);
        let (aes, sha) = (aes_rate.wall, sha_rate.wall);
        // Sealing and opening encrypt (or decrypt) and hash every stored
        // byte. With the cipher on one core and the hashing on the other
        // they would run at most at the slower of the two; the vault runs
        // both over every core (runs of segments and leaves in parallel),
        // and no split of the same work over two cores beats
        // 2 / (1/AES + 1/SHA), the bound each figure is compared with.
        let limit = aes.min(sha);
        let bound = 2.0 / (1.0 / aes + 1.0 / sha);
        println!("vault bench (file://, 64 KiB segments, 256 KiB CID chunks, CIDv1 raw leaves)");
        println!("  every figure is the best of {REPEATS} measurements in this run");
        println!(
            "  raw AES-256-GCM-SIV        {aes:>9.1} MB/s  (one core, the other hashing; {:.1} MB per CPU second)",
            aes_rate.cpu()
        );
        println!(
            "  raw SHA-256                {sha:>9.1} MB/s  (one core, the other encrypting; {:.1} MB per CPU second)",
            sha_rate.cpu()
        );
        println!("  limit (their minimum)      {limit:>9.1} MB/s  (cipher and hashing on a core each)");
        println!("  two-core bound             {bound:>9.1} MB/s  (2 / (1/AES + 1/SHA))");
        println!(
            "  (cores: the process's CPU time over wall time; crypto: the share of that CPU \
             time that encrypting and hashing take at the raw rates per CPU second)"
        );
        for (label, len, rounds) in [("1 MiB", MIB, 64), ("256 MiB", 256 * MIB, 2)] {
            let disk = best(|| raw_file_writes(dir.path(), len, rounds));
            let disk_reads = best(|| raw_file_reads(dir.path(), len, rounds));
            let [seal, open, streamed] = best_seal_and_open(&vault, len, rounds).await;
            println!(
                "  raw file writes {label:>7}    {disk:>9.1} MB/s  (new files, each fsynced: the store's limit)"
            );
            let line = |name: &str, run: Run| {
                println!(
                    "  {name:<26} {:>9.1} MB/s  ({:>5.1} % of bound, {:>5.1} % of limit; {:.2} cores, crypto {:>3.0} %)",
                    run.rate(),
                    100.0 * run.rate() / bound,
                    100.0 * run.rate() / limit,
                    run.cores(),
                    100.0 * run.crypto_share(aes_rate, sha_rate),
                );
            };
            line(&format!("seal (put) {label}"), seal);
            println!(
                "  {:<26} {:>9.1} %     of the raw file writes",
                "",
                100.0 * seal.rate() / disk
            );
            println!(
                "  raw file reads  {label:>7}    {disk_reads:>9.1} MB/s  (written direct, read once: the store's limit for a first read)"
            );
            line(&format!("open (get) {label}"), open);
            line(&format!("open (get_stream) {label}"), streamed);
            println!(
                "  {:<26} {:>9.1} % / {:.1} %  of the raw file reads (get / get_stream)",
                "",
                100.0 * open.rate() / disk_reads,
                100.0 * streamed.rate() / disk_reads
            );
        }
        println!("  seal 1 GiB stream          {rate:>9.1} MB/s");
        println!(
            "  peak memory sealing 1 GiB  {peak:>9.1} MiB resident (VmHWM), {growth:.1} MiB above the start"
        );
    });
}
