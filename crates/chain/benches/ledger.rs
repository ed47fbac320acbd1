//! Benchmark of the chain adapter on a local anvil (from `cargo xtask setup`):
//! registrations per second pipelined from one key, and `events()`
//! throughput over 10,000 `RecordCreated` events, printed beside the raw
//! `eth_getLogs` rate of the same node measured in the same run. Anvil mines
//! a block every second (interval mining), so writes are pipelined into
//! shared blocks as on a real chain.
//!
//! The end-to-end write rate includes waiting for blocks, so it says more
//! about anvil's block time than about the adapter. The adapter's own send
//! rate (simulate, sign, nonce, `eth_sendRawTransaction`) is measured apart
//! on a second anvil that does not mine at all: the clock stops when the
//! node's pool holds every transaction, before one block is mined.
//!
//! Run with `cargo bench -p healthledger-chain` (or `cargo xtask bench`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    path::PathBuf,
    sync::Arc,
    time::{Duration, Instant},
};

use alloy::{
    node_bindings::Anvil,
    primitives::B256,
    providers::{Provider, ProviderBuilder},
    rpc::types::Filter,
};
use futures::{StreamExt, stream};
use healthledger_chain::{EvmLedger, EvmLedgerConfig, SignerKey};
use healthledger_core::{
    Authorization, LedgerPort,
    testing::fixtures::{self, TestWallet, date},
};

const REGISTRATIONS: u32 = 1_000;
const RECORDS: u64 = 10_000;
const IN_FLIGHT: usize = 512;

fn tools_dir() -> PathBuf {
    std::env::var_os("HEALTHLEDGER_TOOLS")
        .map(PathBuf::from)
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.tools"))
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn anvil_path_of() -> PathBuf {
    let anvil_path = tools_dir().join("bin").join("anvil");
    assert!(
        anvil_path.is_file(),
        "anvil is not installed at {}: run `cargo xtask setup`",
        anvil_path.display()
    );
    anvil_path
}

/// The adapter's own send rate: registrations sent from one key to an
/// anvil that never mines on its own, timed until the node's pool holds all
/// of them; then one `evm_mine` includes them and every write returns.
async fn send_rate_without_mining(anvil_path: &std::path::Path) {
    let anvil = Anvil::at(anvil_path)
        .args(["--no-mining", "--gas-limit", "1000000000"])
        .try_spawn()
        .expect("anvil starts");
    let admin = SignerKey::from_bytes(&B256::from_slice(&anvil.keys()[0].to_bytes())).unwrap();
    // Deployment waits for its receipt, so mine it from the side.
    let provider = ProviderBuilder::new().connect_http(anvil.endpoint_url());
    let miner = {
        let provider = provider.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(50)).await;
                let _: serde_json::Value =
                    provider.raw_request("evm_mine".into(), ()).await.unwrap();
            }
        })
    };
    let contract = EvmLedger::deploy(&anvil.endpoint(), &admin).await.unwrap();
    let ledger = Arc::new(
        EvmLedger::connect(EvmLedgerConfig::new(anvil.endpoint(), contract, admin))
            .await
            .unwrap(),
    );
    miner.abort();
    let _ = miner.await;

    let started = Instant::now();
    let writes = tokio::spawn({
        let ledger = Arc::clone(&ledger);
        async move {
            stream::iter(0..REGISTRATIONS)
                .map(|i| {
                    let ledger = Arc::clone(&ledger);
                    async move {
                        let hh = 800_000 + i;
                        let p = fixtures::patient(
                            hh,
                            TestWallet::from_seed(u64::from(hh)).address(),
                            "Send Patient",
                        );
                        ledger.register(&p).await.unwrap();
                    }
                })
                .buffer_unordered(IN_FLIGHT)
                .collect::<Vec<()>>()
                .await
        }
    });
    let pooled = loop {
        let status: serde_json::Value = provider
            .raw_request("txpool_status".into(), ())
            .await
            .unwrap();
        let pending = status["pending"]
            .as_str()
            .and_then(|h| u64::from_str_radix(h.trim_start_matches("0x"), 16).ok())
            .or_else(|| status["pending"].as_u64())
            .unwrap_or(0);
        if pending >= u64::from(REGISTRATIONS) {
            break started.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let _: serde_json::Value = provider.raw_request("evm_mine".into(), ()).await.unwrap();
    writes.await.unwrap();
    let included = started.elapsed();
    println!(
        "chain/send (adapter only): {REGISTRATIONS} registrations sent in {:.2} s = {:.0} sends/s ({IN_FLIGHT} in flight, one key, node not mining); all included by one evm_mine after {:.2} s",
        pooled.as_secs_f64(),
        f64::from(REGISTRATIONS) / pooled.as_secs_f64(),
        included.as_secs_f64(),
    );
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let anvil_path = anvil_path_of();
    // Interval mining (one block a second, room for many transactions per
    // block), as on a real chain: with automine anvil mines a block inside
    // every eth_sendRawTransaction and its per-block cost dominates.
    let anvil = Anvil::at(anvil_path)
        .block_time(1)
        .args(["--gas-limit", "1000000000"])
        .try_spawn()
        .expect("anvil starts");
    let key_of =
        |i: usize| SignerKey::from_bytes(&B256::from_slice(&anvil.keys()[i].to_bytes())).unwrap();
    let admin = key_of(0);
    let contract = EvmLedger::deploy(&anvil.endpoint(), &admin).await.unwrap();
    let ledger = Arc::new(
        EvmLedger::connect(EvmLedgerConfig::new(anvil.endpoint(), contract, admin))
            .await
            .unwrap(),
    );

    // 1. Registrations, pipelined from one key.
    let started = Instant::now();
    let mut latencies: Vec<Duration> = stream::iter(0..REGISTRATIONS)
        .map(|i| {
            let ledger = Arc::clone(&ledger);
            async move {
                let hh = 600_000 + i;
                let p = fixtures::patient(
                    hh,
                    TestWallet::from_seed(u64::from(hh)).address(),
                    "Bench Patient",
                );
                let t = Instant::now();
                ledger.register(&p).await.unwrap();
                t.elapsed()
            }
        })
        .buffer_unordered(IN_FLIGHT)
        .collect()
        .await;
    let secs = started.elapsed().as_secs_f64();
    latencies.sort();
    println!(
        "chain/register: {REGISTRATIONS} registrations in {secs:.2} s = {:.0} registrations/s ({IN_FLIGHT} in flight, one key); latency p50 {:.1} ms, p99 {:.1} ms",
        f64::from(REGISTRATIONS) / secs,
        percentile(&latencies, 0.50).as_secs_f64() * 1e3,
        percentile(&latencies, 0.99).as_secs_f64() * 1e3,
    );

    send_rate_without_mining(&anvil_path_of()).await;

    // 2. 10,000 RecordCreated events, written by a diagnostic center's key.
    let center_key = key_of(1);
    let center = fixtures::diagnostic_center(
        699_999,
        healthledger_core::WalletAddress::new(center_key.address()).unwrap(),
        "Bench Labs",
    );
    ledger.register(&center).await.unwrap();
    let as_center = Arc::new(
        EvmLedger::connect(EvmLedgerConfig::new(anvil.endpoint(), contract, center_key))
            .await
            .unwrap(),
    );
    let first_block = ledger.head().await.unwrap().number + 1;
    let started = Instant::now();
    stream::iter(0..RECORDS)
        .map(|i| {
            let l = Arc::clone(&as_center);
            async move {
                let patient = 600_000 + (i % u64::from(REGISTRATIONS)) as u32;
                let rec = fixtures::record(
                    patient,
                    i,
                    699_999,
                    "Bench panel",
                    "lab-result",
                    date(2026, 1, 1),
                );
                l.create_record(&rec, &Authorization::Signer).await.unwrap();
            }
        })
        .buffer_unordered(IN_FLIGHT)
        .collect::<Vec<()>>()
        .await;
    let write_secs = started.elapsed().as_secs_f64();
    let last_block = ledger.head().await.unwrap().number;
    println!(
        "chain/create_record: {RECORDS} records in {write_secs:.2} s = {:.0} writes/s over blocks {first_block}..={last_block}",
        RECORDS as f64 / write_secs
    );

    // 3. events() against raw eth_getLogs over the same blocks, best of 3.
    let provider = ProviderBuilder::new().connect_http(anvil.endpoint_url());
    let span = 2_000u64;
    let mut raw_best = f64::MAX;
    let mut raw_count = 0usize;
    for _ in 0..3 {
        let t = Instant::now();
        let mut n = 0;
        let mut from = first_block;
        while from <= last_block {
            let to = last_block.min(from + span - 1);
            let filter = Filter::new()
                .address(contract)
                .from_block(from)
                .to_block(to);
            n += provider.get_logs(&filter).await.unwrap().len();
            from = to + 1;
        }
        raw_best = raw_best.min(t.elapsed().as_secs_f64());
        raw_count = n;
    }
    let mut ours_best = f64::MAX;
    let mut ours_count = 0usize;
    for _ in 0..3 {
        let t = Instant::now();
        ours_count = ledger
            .events(first_block, last_block)
            .await
            .unwrap()
            .events
            .len();
        ours_best = ours_best.min(t.elapsed().as_secs_f64());
    }
    assert_eq!(raw_count, ours_count);
    println!(
        "chain/events: {ours_count} RecordCreated events decoded in {ours_best:.3} s = {:.0} events/s",
        ours_count as f64 / ours_best
    );
    println!(
        "chain/eth_getLogs raw: {raw_count} logs in {raw_best:.3} s = {:.0} logs/s ({span}-block requests, no decoding)",
        raw_count as f64 / raw_best
    );
}
