//! Benchmark of the bulk reads a full sync or a drift check makes: every
//! profile, record and grant at one pinned block, through a counting
//! loopback proxy, so the figures are HTTP requests per entity (the aim is
//! at most 1 per 100) and entities/s, beside the one-by-one reads of the
//! same entities measured in the same run.
//!
//! The chain is built on a local anvil once and kept: 2,000 patients,
//! 10,000 records and 2,000 grants by default; the scale is
//! `HL_BULK_PATIENTS=10000 HL_BULK_RECORDS=100000` (not the default: anvil
//! held 18 GB of historical state at 87,000 writes, and that build did not
//! finish on a loaded 2-core machine). Anvil recomputes the state root
//! at every mined block at a cost that grows with the contract's storage,
//! so the build mines few, full blocks (interval mining every
//! `HL_BULK_BLOCK_SECS`, 5 s by default, with thousands of writes in
//! flight) on a node that keeps no historical states (`--prune-history`),
//! then saves the node's state (`anvil_dumpState`) under
//! `target/bench-state/`, named by the sizes and the contract's bytecode.
//! Every run reads from a fresh anvil that loaded that state
//! (`anvil_loadState`, seconds); delete the file to rebuild.
//!
//! Run with `cargo bench -p healthledger-chain --bench bulk` (or `cargo xtask bench`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{path::PathBuf, sync::Arc, time::Instant};

use alloy::{
    node_bindings::{Anvil, AnvilInstance},
    primitives::{Address, B256, Bytes, keccak256},
    providers::{Provider, ProviderBuilder},
};
use futures::{StreamExt, stream};
use healthledger_chain::{
    EvmLedger, EvmLedgerConfig, SignerKey,
    testing::{FaultProxy, Faults},
};
use healthledger_core::{
    Authorization, ConsentAction, LedgerPort, ReadAt, RelayedSignature, Role, Timestamp,
    testing::fixtures::{self, TestWallet, date},
};

/// Writes in flight while building: enough to fill a block per interval.
const IN_FLIGHT: usize = 2_048;

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

/// Where the built chain of these sizes is kept, named by the sizes and a
/// hash of the contract's artifact (a changed contract builds anew).
fn state_file(patients: u32, records: u64) -> PathBuf {
    let artifact = include_bytes!("../contracts/HealthLedger.json");
    let tag = keccak256(artifact);
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    target.join("bench-state").join(format!(
        "bulk-{patients}-{records}-{}.json",
        &tag.to_string()[2..14]
    ))
}

fn key_of(anvil: &AnvilInstance, i: usize) -> SignerKey {
    SignerKey::from_bytes(&B256::from_slice(&anvil.keys()[i].to_bytes())).unwrap()
}

/// A connection to the ledger at `contract` signing with anvil's key `i`,
/// patient with receipts: a build block holds thousands of writes.
async fn connect(anvil: &AnvilInstance, contract: Address, i: usize) -> EvmLedger {
    let mut config = EvmLedgerConfig::new(anvil.endpoint(), contract, key_of(anvil, i));
    config.poll_interval = std::time::Duration::from_millis(500);
    config.receipt_timeout = std::time::Duration::from_secs(1_800);
    config.rebroadcast_after = std::time::Duration::from_secs(600);
    EvmLedger::connect(config).await.unwrap()
}

/// Deploys the contract and writes the patients, a doctor and a center,
/// records by the center, and a grant from every patient to the doctor.
async fn build(anvil: &AnvilInstance, patients: u32, records: u64) -> Address {
    let contract = EvmLedger::deploy(&anvil.endpoint(), &key_of(anvil, 0))
        .await
        .unwrap();
    let ledger = Arc::new(connect(anvil, contract, 0).await);
    let built = Instant::now();
    let center_wallet = healthledger_core::WalletAddress::new(key_of(anvil, 1).address()).unwrap();
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
    println!(
        "chain/bulk build: {patients} patients after {:.0} s",
        built.elapsed().as_secs_f64()
    );
    let as_center = Arc::new(connect(anvil, contract, 1).await);
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
    println!(
        "chain/bulk build: {records} records after {:.0} s",
        built.elapsed().as_secs_f64()
    );
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
    contract
}

/// An anvil that mines every `block_secs` and keeps no historical states
/// (`--prune-history`: building the scale with them held 18 GB), or,
/// without `block_secs`, one that mines on demand and keeps every state, for
/// the reads pinned to a block.
fn spawn_anvil(block_secs: Option<u64>) -> AnvilInstance {
    let anvil_path = tools_dir().join("bin").join("anvil");
    assert!(
        anvil_path.is_file(),
        "anvil is not installed at {}: run `cargo xtask setup`",
        anvil_path.display()
    );
    let mut anvil = Anvil::at(anvil_path).args(["--gas-limit", "1000000000"]);
    if let Some(secs) = block_secs {
        anvil = anvil.block_time(secs).arg("--prune-history");
    }
    anvil.try_spawn().expect("anvil starts")
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let patients = size("HL_BULK_PATIENTS", 2_000) as u32;
    let records = size("HL_BULK_RECORDS", 10_000);
    let saved = state_file(patients, records);
    if !saved.is_file() {
        // Built on a pruned node, saved, and then read like a saved chain
        // from a fresh node that keeps the states of its blocks.
        let anvil = spawn_anvil(Some(size("HL_BULK_BLOCK_SECS", 5)));
        let contract = build(&anvil, patients, records).await;
        let node = ProviderBuilder::new().connect_http(anvil.endpoint_url());
        let state: Bytes = node
            .raw_request("anvil_dumpState".into(), ())
            .await
            .unwrap();
        std::fs::create_dir_all(saved.parent().unwrap()).unwrap();
        let json =
            serde_json::json!({ "contract": contract.to_string(), "state": state.to_string() });
        std::fs::write(&saved, serde_json::to_vec(&json).unwrap()).unwrap();
        println!(
            "chain/bulk: saved the chain ({} MB) to {}",
            state.len() / 1_000_000,
            saved.display()
        );
    }
    let saved_state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&saved).unwrap()).unwrap();
    let contract: Address = saved_state["contract"].as_str().unwrap().parse().unwrap();
    let state: Bytes = saved_state["state"].as_str().unwrap().parse().unwrap();
    let anvil = spawn_anvil(None);
    let started = Instant::now();
    let node = ProviderBuilder::new().connect_http(anvil.endpoint_url());
    let loaded: bool = node
        .raw_request("anvil_loadState".into(), (state,))
        .await
        .unwrap();
    assert!(loaded, "anvil loads the saved state");
    println!(
        "chain/bulk: loaded the saved chain {} in {:.1} s",
        saved.display(),
        started.elapsed().as_secs_f64()
    );
    let base = 300_000u32;
    // A fresh block on top, so the pinned block is one whose state the
    // node holds.
    let _: serde_json::Value = node.raw_request("evm_mine".into(), ()).await.unwrap();

    // Read everything at one pinned block through the counting proxy.
    let proxy = FaultProxy::start(anvil.endpoint(), Faults::NONE)
        .await
        .unwrap();
    let reader = EvmLedger::connect(EvmLedgerConfig::new(
        proxy.url(),
        contract,
        key_of(&anvil, 2),
    ))
    .await
    .unwrap();
    let at = ReadAt::Block(reader.head().await.unwrap());
    proxy.reset_tally();
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
    let requests = proxy.tally().received;
    println!(
        "chain/bulk read at a pinned block: {entities} entities (profiles, records, grants) in {secs:.2} s = {:.0} entities/s; {requests} HTTP requests = {:.4} requests/entity",
        entities as f64 / secs,
        requests as f64 / entities as f64
    );

    // The same entities one by one (a sample), for the rate beside it.
    let sample = 500u32.min(patients);
    proxy.reset_tally();
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
        proxy.tally().received as f64 / f64::from(sample)
    );
}
