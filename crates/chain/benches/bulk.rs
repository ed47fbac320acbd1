//! Benchmark of the bulk reads a full sync or a drift check makes: every
//! profile, record and grant at one pinned block, through a counting
//! loopback proxy, so the figures are HTTP requests per entity (the aim is
//! at most 1 per 100) and entities/s, beside the one-by-one reads of the
//! same entities measured in the same run, and the `eth_call` gas of one
//! full page of each kind beside the budget the page sizes keep to.
//!
//! The chain is the scale by default, 10,000 patients (each
//! granting a doctor access) and 100,000 records
//! (`HL_BULK_PATIENTS`, `HL_BULK_RECORDS` change it), built once and kept
//! under `bench-data/` by `healthledger_chain::testing::bench_chain` (whose
//! docs say how; the sync engine's drift bench reads the same chain). Later
//! runs load it in seconds; delete the file to rebuild.
//!
//! Run with `cargo bench -p healthledger-chain --bench bulk` (or `cargo xtask bench`).

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::time::Instant;

use alloy::{
    eips::BlockId,
    network::TransactionBuilder as _,
    primitives::U256,
    providers::{Provider, ProviderBuilder},
    rpc::types::TransactionRequest,
    sol_types::SolCall,
};
use healthledger_chain::{
    CALL_GAS_BUDGET, EvmLedger, EvmLedgerConfig, GRANT_PAGE, PROFILE_PAGE, RECORD_PAGE,
    testing::{
        FaultProxy, Faults,
        bench_chain::{BenchChain, BenchChainSpec, FIRST_PATIENT},
    },
};
use healthledger_core::{HhNumber, LedgerPort, ReadAt, Role};

alloy::sol! {
    function patientsPage(uint256 offset, uint256 limit);
    function recordsPage(uint256 offset, uint256 limit);
    function grantsPage(uint256 offset, uint256 limit);
}

/// The gas of one bulk page call at block `at` (the state the reads see).
async fn page_gas(chain: &BenchChain, at: u64, input: Vec<u8>) -> u64 {
    let provider = ProviderBuilder::new().connect_http(chain.anvil.endpoint_url());
    let tx = TransactionRequest::default()
        .with_to(chain.contract)
        .with_input(input);
    provider
        .estimate_gas(tx)
        .block(BlockId::number(at))
        .await
        .unwrap()
}

fn page(offset: u64, limit: u64) -> (U256, U256) {
    (U256::from(offset), U256::from(limit))
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let spec = BenchChainSpec::from_env(10_000, 100_000);
    let chain = BenchChain::open(spec).await.unwrap();
    println!(
        "chain/bulk: loaded the saved chain {} in {:.1} s",
        chain.saved.display(),
        chain.load_time.as_secs_f64()
    );

    // Read everything at one pinned block through the counting proxy.
    let proxy = FaultProxy::start(chain.anvil.endpoint(), Faults::NONE)
        .await
        .unwrap();
    let reader = EvmLedger::connect(EvmLedgerConfig::new(
        proxy.url(),
        chain.contract,
        chain.key(2).unwrap(),
    ))
    .await
    .unwrap();
    let head = reader.head().await.unwrap();
    let at = ReadAt::Block(head);
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
    drop(got);
    entities += n;
    let n = reader.grant_count(at).await.unwrap();
    let got = reader.grants(0, n, at).await.unwrap();
    assert_eq!(got.len() as u64, n);
    entities += n;
    let secs = started.elapsed().as_secs_f64();
    let requests = proxy.tally().received;
    println!(
        "chain/bulk read at a pinned block: {entities} entities (profiles, records, grants) in {secs:.2} s = {:.0} entities/s; {requests} HTTP requests = {:.4} requests/entity (aim: at most 0.01)",
        entities as f64 / secs,
        requests as f64 / entities as f64
    );

    // The gas of one full page of each kind, beside the budget.
    let (offset, limit) = page(0, PROFILE_PAGE);
    let patients = page_gas(
        &chain,
        head.number,
        patientsPageCall { offset, limit }.abi_encode(),
    )
    .await;
    let (offset, limit) = page(0, RECORD_PAGE);
    let records = page_gas(
        &chain,
        head.number,
        recordsPageCall { offset, limit }.abi_encode(),
    )
    .await;
    let (offset, limit) = page(0, GRANT_PAGE);
    let grants = page_gas(
        &chain,
        head.number,
        grantsPageCall { offset, limit }.abi_encode(),
    )
    .await;
    println!(
        "chain/bulk page gas on this chain's values: {PROFILE_PAGE} patients {patients}, {RECORD_PAGE} records {records}, {GRANT_PAGE} grants {grants} (budget per eth_call: {CALL_GAS_BUDGET}, met by the largest values the contract accepts)"
    );

    // The same entities one by one (a sample), for the rate beside it.
    let sample = 500u32.min(spec.patients);
    proxy.reset_tally();
    let started = Instant::now();
    for i in 0..sample {
        let hh = HhNumber::new(FIRST_PATIENT + i).unwrap();
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
