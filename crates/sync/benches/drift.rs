//! Benchmark of drift verification and repair at the scale: a
//! chain of 10,000 patients (each granting a doctor access), a doctor, a
//! center and 100,000 records (`HL_BULK_PATIENTS`, `HL_BULK_RECORDS` change
//! it), the one `healthledger_chain::testing::bench_chain` builds once and
//! keeps under `bench-data/` (the chain crate's bulk bench reads the same).
//!
//! On a SQLite file and on PostgreSQL, through a counting proxy in front of
//! the node:
//!
//! - a full sync (time, ledger requests per entity);
//! - verification of the full-synced cache: time and ledger requests per
//!   entity (aim: at most 0.01), beside the same-run time of the bulk reads
//!   alone (the floor of any comparison), and the peak heap it needs (a
//!   counting allocator, `peak_alloc`, all threads) beside the heap the bulk reads need to
//!   hold the whole chain at once (what a comparison that does not stream
//!   holds);
//! - `HL_DRIFT` (default 100) records removed from the cache, as many
//!   patients renamed in it and as many grants the chain never made added,
//!   then verification (the extras walk included), repair (time, requests),
//!   a second repair that must change nothing, and a clean verification.
//!
//! Run with `cargo bench -p healthledger-sync --bench drift` (or
//! `cargo xtask bench`).

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::{sync::Arc, time::Instant};

use alloy::primitives::B256;
use healthledger_cache::SqlCache;
use healthledger_chain::{
    EvmLedger, EvmLedgerConfig,
    testing::{
        FaultProxy, Faults,
        bench_chain::{BenchChain, BenchChainSpec},
    },
};
use healthledger_core::{
    AccessGrant, CachePort, ChainSource, HhNumber, LedgerPort, Name, Profile, RecordId, Timestamp,
};
use healthledger_sync::{SyncConfig, SyncEngine};
use peak_alloc::PeakAlloc;

const SCHEMA: &str = "hl_sync_bench_drift";

fn pg_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

async fn fresh_cache(backend: &str, dir: &tempfile::TempDir) -> Arc<dyn CachePort> {
    if backend == "PostgreSQL" {
        healthledger_cache::drop_schema(&pg_url(), SCHEMA)
            .await
            .unwrap();
        Arc::new(
            SqlCache::builder(pg_url())
                .postgres_schema(SCHEMA.to_owned())
                .max_connections(4)
                .connect()
                .await
                .expect("PostgreSQL (cargo xtask setup starts it)"),
        )
    } else {
        let url = format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("drift.db").display()
        );
        Arc::new(SqlCache::connect(&url).await.expect("SQLite"))
    }
}

/// Counts the heap bytes live and their peak, resettable per phase.
#[global_allocator]
static HEAP: PeakAlloc = PeakAlloc;

/// Runs `f`, returning its value, its time in seconds and how far the
/// process's live heap rose above its level at the start (all threads: the
/// node's proxy and the cache's pool included).
async fn measured<T>(f: impl std::future::Future<Output = T>) -> (T, f64, u64) {
    HEAP.reset_peak_usage();
    let base = HEAP.current_usage();
    let started = Instant::now();
    let value = f.await;
    let secs = started.elapsed().as_secs_f64();
    (value, secs, HEAP.peak_usage().saturating_sub(base) as u64)
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1_000_000.0
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let spec = BenchChainSpec::from_env(10_000, 100_000);
    let drift: usize = std::env::var("HL_DRIFT")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    let chain = BenchChain::open(spec).await.unwrap();
    println!(
        "sync/drift: loaded the saved chain {} ({} patients, {} records, {} grants) in {:.1} s",
        chain.saved.display(),
        spec.patients,
        spec.records,
        spec.patients,
        chain.load_time.as_secs_f64()
    );
    let proxy = FaultProxy::start(chain.anvil.endpoint(), Faults::NONE)
        .await
        .unwrap();
    let reader = Arc::new(
        EvmLedger::connect(EvmLedgerConfig::new(
            proxy.url(),
            chain.contract,
            chain.key(2).unwrap(),
        ))
        .await
        .unwrap(),
    );
    let dir = tempfile::tempdir().unwrap();
    for backend in ["SQLite file", "PostgreSQL"] {
        let cache = fresh_cache(backend, &dir).await;
        let engine = SyncEngine::new(reader.clone(), cache.clone(), SyncConfig::default());
        let head = reader.head().await.unwrap();
        proxy.reset_tally();
        let started = Instant::now();
        let synced = engine.full_sync_at(head.number).await.unwrap();
        let sync_secs = started.elapsed().as_secs_f64();
        println!(
            "sync/drift {backend}: full sync of {synced} entities in {sync_secs:.1} s; {} ledger requests = {:.4} requests/entity",
            proxy.tally().received,
            proxy.tally().received as f64 / synced as f64
        );

        // The limits: the bulk reads alone, holding the whole chain.
        let (snapshot, read_secs, whole_chain) = measured(engine.snapshot(&head)).await;
        let snapshot = snapshot.unwrap();
        let records: Vec<RecordId> = snapshot.records.iter().take(drift).map(|r| r.id).collect();
        let patients: Vec<Profile> = snapshot
            .profiles
            .iter()
            .filter(|p| matches!(p, Profile::Patient(_)))
            .take(drift)
            .cloned()
            .collect();
        drop(snapshot);

        proxy.reset_tally();
        let (report, verify_secs, verify_memory) = measured(engine.verify_drift()).await;
        let report = report.unwrap();
        let requests = proxy.tally().received;
        assert!(report.is_clean(), "a full-synced cache drifted: {report:?}");
        let entities = report.chain.profiles + report.chain.records + report.chain.grants;
        println!(
            "sync/drift {backend}: verify {entities} entities ({} profiles, {} records, {} grants) \
             in {verify_secs:.2} s = {:.0} entities/s (same run: the bulk reads alone {read_secs:.2} s); \
             {requests} ledger requests = {:.4} requests/entity (aim: at most 0.01); \
             peak heap +{:.1} MB (same run: holding the whole chain +{:.1} MB)",
            report.chain.profiles,
            report.chain.records,
            report.chain.grants,
            entities as f64 / verify_secs,
            requests as f64 / entities as f64,
            mb(verify_memory),
            mb(whole_chain)
        );

        // Inject drift through the cache port: records removed, patients
        // renamed, grants the chain never made.
        let src = ChainSource {
            block_number: head.number,
            tx_hash: B256::ZERO,
        };
        for id in &records {
            cache.remove_record(*id).await.unwrap();
        }
        for p in &patients {
            let Profile::Patient(mut edited) = p.clone() else {
                continue;
            };
            edited.name = Name::new("Bench Drift").unwrap();
            cache
                .upsert_profile(&Profile::Patient(edited), src)
                .await
                .unwrap();
        }
        for i in 0..drift {
            let grant = AccessGrant {
                patient: patients[0].hh(),
                grantee: HhNumber::new(900_000 + i as u32).unwrap(),
                granted_at: Timestamp(1_750_000_000),
                expires_at: None,
                revoked_at: None,
            };
            cache.upsert_grant(&grant, src).await.unwrap();
        }
        proxy.reset_tally();
        let (drifted, drift_secs, drift_memory) = measured(engine.verify_drift()).await;
        let drifted = drifted.unwrap();
        let drift_requests = proxy.tally().received;
        assert_eq!(drifted.missing.len(), records.len());
        assert_eq!(drifted.stale.len(), patients.len());
        assert_eq!(drifted.extra.len(), drift);
        let started = Instant::now();
        let repaired = engine.repair(&drifted).await.unwrap();
        let repair_secs = started.elapsed().as_secs_f64();
        let repair_requests = proxy.tally().received - drift_requests;
        let again = engine.repair(&drifted).await.unwrap();
        assert!(again.is_noop(), "a second repair changed something");
        assert!(engine.verify_drift().await.unwrap().is_clean());
        println!(
            "sync/drift {backend}: {} drifted entities (missing {}, stale {}, extra {}) found in \
             {drift_secs:.2} s ({drift_requests} ledger requests = {:.4} requests/entity; peak heap \
             +{:.1} MB with the extras walk); repaired in {:.1} ms = {:.2} ms/entity \
             ({repair_requests} ledger requests; {} upserted, {} removed); a second repair changed \
             nothing (same run: clean verify {verify_secs:.2} s)",
            drifted.len(),
            drifted.missing.len(),
            drifted.stale.len(),
            drifted.extra.len(),
            drift_requests as f64 / entities as f64,
            mb(drift_memory),
            repair_secs * 1000.0,
            repair_secs * 1000.0 / drifted.len() as f64,
            repaired.upserted,
            repaired.removed
        );
    }
    healthledger_cache::drop_schema(&pg_url(), SCHEMA)
        .await
        .unwrap();
}
