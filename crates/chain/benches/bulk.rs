//! Benchmark of the bulk reads a full sync or a drift check makes: every
//! profile, record and grant at one pinned block, through a counting
//! loopback proxy, so the figures are HTTP requests per entity (the aim is
//! at most 1 per 100) and entities/s, beside the one-by-one reads of the
//! same entities measured in the same run.
//!
//! The chain is built on a local anvil (interval mining, writes pipelined):
//! 2,000 patients, 10,000 records and 2,000 grants by default; set
//! `HL_BULK_PATIENTS`, `HL_BULK_RECORDS` to change the sizes (building
//! 100,000 records takes minutes on anvil, whose state-root work grows with
//! the contract's storage).
//!
//! Run with `cargo bench -p healthledger-chain --bench bulk` (or `cargo xtask bench`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Instant,
};

use alloy::{node_bindings::Anvil, primitives::B256};
use futures::{StreamExt, stream};
use healthledger_chain::{EvmLedger, EvmLedgerConfig, SignerKey};
use healthledger_core::{
    Authorization, ConsentAction, LedgerPort, ReadAt, RelayedSignature, Role, Timestamp,
    testing::fixtures::{self, TestWallet, date},
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
};

const IN_FLIGHT: usize = 256;

fn size(var: &str, default: u64) -> u64 {
    std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn tools_dir() -> PathBuf {
    std::env::var_os("HEALTHLEDGER_TOOLS")
        .map(PathBuf::from)
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.tools"))
}

/// A loopback HTTP forwarder that counts the requests it forwards. It reads
/// one request at a time per connection (headers, then a Content-Length
/// body), which is all a JSON-RPC client sends.
async fn counting_proxy(upstream: String, count: Arc<AtomicU64>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let client = reqwest::Client::new();
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            // Small JSON-RPC answers would otherwise wait on Nagle's
            // algorithm and delayed ACKs (~40 ms each).
            let _ = socket.set_nodelay(true);
            let (client, upstream, count) = (client.clone(), upstream.clone(), Arc::clone(&count));
            tokio::spawn(async move {
                let mut buf = Vec::new();
                loop {
                    let found = loop {
                        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            break Some(end);
                        }
                        let mut chunk = [0u8; 65536];
                        match socket.read(&mut chunk).await {
                            Ok(0) | Err(_) => break None,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    };
                    let Some(end) = found else {
                        return;
                    };
                    let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                    let len: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .and_then(|v| v.trim().parse().ok())
                        .unwrap_or(0);
                    while buf.len() < end + 4 + len {
                        let mut chunk = [0u8; 65536];
                        match socket.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let body = buf[end + 4..end + 4 + len].to_vec();
                    buf.drain(..end + 4 + len);
                    count.fetch_add(1, Ordering::Relaxed);
                    let reply = client
                        .post(&upstream)
                        .header("content-type", "application/json")
                        .body(body)
                        .send()
                        .await
                        .unwrap()
                        .bytes()
                        .await
                        .unwrap();
                    let head = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
                        reply.len()
                    );
                    if socket.write_all(head.as_bytes()).await.is_err()
                        || socket.write_all(&reply).await.is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
    url
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let patients = size("HL_BULK_PATIENTS", 2_000) as u32;
    let records = size("HL_BULK_RECORDS", 10_000);
    let anvil_path = tools_dir().join("bin").join("anvil");
    assert!(
        anvil_path.is_file(),
        "anvil is not installed at {}: run `cargo xtask setup`",
        anvil_path.display()
    );
    let anvil = Anvil::at(anvil_path)
        .block_time(1)
        // No --prune-history: the reads are pinned to a block, whose state
        // the node must keep.
        .args(["--gas-limit", "1000000000"])
        .try_spawn()
        .expect("anvil starts");
    let key_of =
        |i: usize| SignerKey::from_bytes(&B256::from_slice(&anvil.keys()[i].to_bytes())).unwrap();
    let contract = EvmLedger::deploy(&anvil.endpoint(), &key_of(0))
        .await
        .unwrap();
    let ledger = Arc::new(
        EvmLedger::connect(EvmLedgerConfig::new(anvil.endpoint(), contract, key_of(0)))
            .await
            .unwrap(),
    );

    // Build: patients, one doctor and one center, records by the center,
    // and a grant from every patient to the doctor.
    let built = Instant::now();
    let center_key = key_of(1);
    let center_wallet = healthledger_core::WalletAddress::new(center_key.address()).unwrap();
    let center = fixtures::diagnostic_center(999_998, center_wallet, "Bulk Labs");
    let doctor = fixtures::doctor(
        999_997,
        TestWallet::from_seed(999_997).address(),
        "Dr. Bulk",
    );
    ledger.register(&center).await.unwrap();
    ledger.register(&doctor).await.unwrap();
    let base = 300_000u32;
    stream::iter(fixtures::patients(base, patients, "Bulk Patient"))
        .map(|p| {
            let l = Arc::clone(&ledger);
            async move { l.register(&p).await.unwrap() }
        })
        .buffer_unordered(IN_FLIGHT)
        .collect::<Vec<_>>()
        .await;
    let as_center = Arc::new(
        EvmLedger::connect(EvmLedgerConfig::new(anvil.endpoint(), contract, center_key))
            .await
            .unwrap(),
    );
    stream::iter(0..records)
        .map(|i| {
            let l = Arc::clone(&as_center);
            async move {
                let patient = base + (i % u64::from(patients)) as u32;
                let rec = fixtures::record(
                    patient,
                    i,
                    999_998,
                    "Bulk panel",
                    "lab-result",
                    date(2026, 1, 1),
                );
                l.create_record(&rec, &Authorization::Signer).await.unwrap();
            }
        })
        .buffer_unordered(IN_FLIGHT)
        .collect::<Vec<()>>()
        .await;
    let deadline = Timestamp(Timestamp::now().0 + 86_400);
    stream::iter(0..patients)
        .map(|i| {
            let l = Arc::clone(&ledger);
            let d = doctor.hh();
            async move {
                let hh = base + i;
                let patient = healthledger_core::HhNumber::new(hh).unwrap();
                let action = ConsentAction::GrantAccess {
                    patient,
                    grantee: d,
                    expires_at: None,
                };
                let digest = l.signing_digest(&action, deadline).await.unwrap();
                let auth = Authorization::Relayed(RelayedSignature {
                    signature: TestWallet::from_seed(u64::from(hh)).sign(digest),
                    deadline,
                });
                l.grant_access(patient, d, None, &auth).await.unwrap();
            }
        })
        .buffer_unordered(IN_FLIGHT)
        .collect::<Vec<()>>()
        .await;
    println!(
        "chain/bulk: built {patients} patients, {records} records, {patients} grants in {:.1} s",
        built.elapsed().as_secs_f64()
    );

    // Read everything at one pinned block through the counting proxy.
    let count = Arc::new(AtomicU64::new(0));
    let proxy = counting_proxy(anvil.endpoint(), Arc::clone(&count)).await;
    let reader = EvmLedger::connect(EvmLedgerConfig::new(proxy, contract, key_of(2)))
        .await
        .unwrap();
    let at = ReadAt::Block(reader.head().await.unwrap());
    count.store(0, Ordering::Relaxed);
    let started = Instant::now();
    let mut entities = 0u64;
    for role in [Role::Patient, Role::Doctor, Role::DiagnosticCenter] {
        let n = reader.registered_count(role, at).await.unwrap();
        let got = reader.profiles(role, 0, n, at).await.unwrap();
        assert_eq!(got.len() as u64, n);
        entities += n;
    }
    let n = reader.record_count(at).await.unwrap();
    let got = reader.records(0, n, at).await.unwrap();
    assert_eq!(got.len() as u64, n);
    entities += n;
    let n = reader.grant_count(at).await.unwrap();
    let got = reader.grants(0, n, at).await.unwrap();
    assert_eq!(got.len() as u64, n);
    entities += n;
    let secs = started.elapsed().as_secs_f64();
    let requests = count.load(Ordering::Relaxed);
    println!(
        "chain/bulk read at a pinned block: {entities} entities (profiles, records, grants) in {secs:.2} s = {:.0} entities/s; {requests} HTTP requests = {:.4} requests/entity",
        entities as f64 / secs,
        requests as f64 / entities as f64
    );

    // The same entities one by one (a sample), for the rate beside it.
    let sample = 500u32.min(patients);
    count.store(0, Ordering::Relaxed);
    let started = Instant::now();
    for i in 0..sample {
        let hh = healthledger_core::HhNumber::new(base + i).unwrap();
        reader
            .profile(hh, Role::Patient, at)
            .await
            .unwrap()
            .unwrap();
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "chain/one-by-one profile reads (the limit the bulk reads beat): {sample} in {secs:.2} s = {:.0} entities/s; {:.1} requests/entity",
        f64::from(sample) / secs,
        count.load(Ordering::Relaxed) as f64 / f64::from(sample)
    );
}
