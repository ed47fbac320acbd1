//! Benchmark of the sync engine on a real node and real caches: a backfill
//! of a generated chain (the cache issue's mix: 10 % registrations, 80 %
//! record creations, 8 % grants, 2 % revocations and updates; anvil mining
//! once a second under pipelined writes, so blocks hold from one to a few
//! hundred events) from a local anvil into a SQLite file and into
//! PostgreSQL, in events/s from start to "checkpoint at head", printed
//! beside the two limits measured in the same run on the same chain: the
//! raw `eth_getLogs` fetch-and-decode rate and the cache's bulk ingestion
//! rate (`apply_blocks` of the pre-fetched events as final batches). Then
//! HTTP requests per entity of a full sync (through a counting proxy) and
//! the time from an `anvil_reorg` of depth 10 to a cache equal to the new
//! chain, in follow mode. (Drift verification and repair have their own
//! bench, `drift.rs`, at the 10,000 profiles and 100,000 records.)
//!
//! `HL_SYNC_EVENTS` sets the chain's size (default 20,000 events: anvil's
//! state-root work per block grows with the contract's storage, so 100,000
//! takes long to build). Run with `cargo bench -p healthledger-sync` (or
//! `cargo xtask bench`).

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::{
    path::PathBuf,
    sync::Arc,
    time::{Duration, Instant},
};

use alloy::{
    node_bindings::Anvil,
    primitives::B256,
    providers::{Provider, ProviderBuilder},
};
use futures::{StreamExt, TryStreamExt, stream};
use healthledger_cache::SqlCache;
use healthledger_chain::{
    EvmLedger, EvmLedgerConfig, SignerKey,
    testing::{FaultProxy, Faults},
};
use healthledger_core::{
    Authorization, BlockRef, CachePort, ChainEvent, ConsentAction, LedgerPort, Name, Profile,
    RelayedSignature, Timestamp,
    testing::fixtures::{self, TestWallet, date},
};
use healthledger_sync::{SyncConfig, SyncEngine, plan::Start};
use sea_orm::{ConnectOptions, ConnectionTrait as _, Database};

const IN_FLIGHT: usize = 256;

fn tools_dir() -> PathBuf {
    std::env::var_os("HEALTHLEDGER_TOOLS")
        .map(PathBuf::from)
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.tools"))
}

fn pg_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

struct Chain {
    anvil: alloy::node_bindings::AnvilInstance,
    contract: alloy::primitives::Address,
    ledger: Arc<EvmLedger>,
}

fn key(anvil: &alloy::node_bindings::AnvilInstance, i: usize) -> SignerKey {
    SignerKey::from_bytes(&B256::from_slice(&anvil.keys()[i].to_bytes())).unwrap()
}

/// Builds a chain of about `events` events of the mix.
async fn build(events: u64) -> Chain {
    let anvil_path = tools_dir().join("bin").join("anvil");
    assert!(
        anvil_path.is_file(),
        "anvil is not installed at {}: run `cargo xtask setup`",
        anvil_path.display()
    );
    let anvil = Anvil::at(anvil_path)
        .block_time(1)
        .args(["--gas-limit", "1000000000"])
        .try_spawn()
        .expect("anvil starts");
    let contract = EvmLedger::deploy(&anvil.endpoint(), &key(&anvil, 0))
        .await
        .unwrap();
    let ledger = Arc::new(
        EvmLedger::connect(EvmLedgerConfig::new(
            anvil.endpoint(),
            contract,
            key(&anvil, 0),
        ))
        .await
        .unwrap(),
    );
    let started = Instant::now();
    let registrations = (events / 10).max(10);
    let providers = (registrations / 20).max(2);
    let patients = registrations - providers;
    let base = 200_000u32;
    // Doctors (they are granted access), and one diagnostic center, anvil's
    // funded account 1, that creates every record itself: consent nonces
    // are per wallet, so relayed signatures of one creator would race.
    let center_key = key(&anvil, 1);
    let center_wallet = healthledger_core::WalletAddress::new(center_key.address()).unwrap();
    let center = fixtures::diagnostic_center(base, center_wallet, "Bench Labs");
    let provider_profiles: Vec<(Profile, TestWallet)> = (1..providers as u32)
        .map(|i| {
            let hh = base + i;
            let w = TestWallet::from_seed(u64::from(hh));
            (fixtures::doctor(hh, w.address(), "Dr. Bench"), w)
        })
        .collect();
    let first_patient = base + providers as u32;
    let patient_profiles: Vec<(Profile, TestWallet)> = (0..patients as u32)
        .map(|i| {
            let hh = first_patient + i;
            let w = TestWallet::from_seed(u64::from(hh));
            (fixtures::patient(hh, w.address(), "Bench Patient"), w)
        })
        .collect();
    let all: Vec<Profile> = std::iter::once(&(center.clone(), TestWallet::from_seed(0)))
        .chain(&provider_profiles)
        .chain(&patient_profiles)
        .map(|(p, _)| p.clone())
        .collect();
    stream::iter(all)
        .map(|p| {
            let l = ledger.clone();
            async move { l.register(&p).await.unwrap() }
        })
        .buffer_unordered(IN_FLIGHT)
        .collect::<Vec<_>>()
        .await;
    let deadline = Timestamp(Timestamp::now().0 + 86_400);
    let records = events * 8 / 10;
    let grants = events * 8 / 100;
    let as_center = Arc::new(
        EvmLedger::connect(EvmLedgerConfig::new(anvil.endpoint(), contract, center_key))
            .await
            .unwrap(),
    );
    let doctors: Vec<&(Profile, TestWallet)> = provider_profiles.iter().collect();
    let patient_of = |i: u64| &patient_profiles[(i % patients) as usize];
    // Records (by the center itself) and grants (relayed by the registrar
    // with the patient's signature) interleaved.
    stream::iter(0..records + grants)
        .map(|i| {
            let l = ledger.clone();
            let c = as_center.clone();
            let (patient, pw) = patient_of(i).clone();
            let grant = i % 10 == 9 && i / 10 < grants;
            let center_hh = center.hh().get();
            let doctor = doctors[(i as usize) % doctors.len()].0.hh();
            async move {
                if grant {
                    let action = ConsentAction::GrantAccess {
                        patient: patient.hh(),
                        grantee: doctor,
                        expires_at: None,
                    };
                    let digest = l.signing_digest(&action, deadline).await.unwrap();
                    let auth = Authorization::Relayed(RelayedSignature {
                        signature: pw.sign(digest),
                        deadline,
                    });
                    // Two grants of one pair may race for the patient's
                    // nonce: the loser is refused, which the count allows.
                    let _ = l.grant_access(patient.hh(), doctor, None, &auth).await;
                } else {
                    let new = fixtures::record(
                        patient.hh().get(),
                        i,
                        center_hh,
                        "Bench panel",
                        "lab-result",
                        date(2026, 1, 1 + (i % 28) as u32),
                    );
                    c.create_record(&new, &Authorization::Signer).await.unwrap();
                }
            }
        })
        .buffer_unordered(IN_FLIGHT)
        .collect::<Vec<()>>()
        .await;
    // Revocations and updates (2 %), one per patient at most.
    let tail = (events / 50).min(patients);
    stream::iter(0..tail)
        .map(|i| {
            let l = ledger.clone();
            let (patient, pw) = patient_profiles[i as usize].clone();
            async move {
                let Profile::Patient(mut p) = patient else {
                    return;
                };
                p.name = Name::new("Bench Patient Renamed").unwrap();
                let updated = Profile::Patient(p);
                let action = ConsentAction::UpdateProfile(updated.clone());
                let digest = l.signing_digest(&action, deadline).await.unwrap();
                let auth = Authorization::Relayed(RelayedSignature {
                    signature: pw.sign(digest),
                    deadline,
                });
                let _ = l.update_profile(&updated, &auth).await;
            }
        })
        .buffer_unordered(IN_FLIGHT)
        .collect::<Vec<()>>()
        .await;
    println!(
        "sync/bench chain: {} blocks built in {:.1} s",
        ledger.head().await.unwrap().number,
        started.elapsed().as_secs_f64()
    );
    Chain {
        anvil,
        contract,
        ledger,
    }
}

async fn fresh_sqlite(dir: &tempfile::TempDir, name: &str) -> SqlCache {
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join(format!("{name}.db")).display()
    );
    SqlCache::connect(&url).await.expect("SQLite")
}

async fn fresh_pg(schema: &str) -> SqlCache {
    drop_schema(schema).await;
    SqlCache::builder(pg_url())
        .postgres_schema(schema.to_owned())
        .max_connections(4)
        .connect()
        .await
        .expect("PostgreSQL (cargo xtask setup starts it)")
}

async fn drop_schema(schema: &str) {
    let mut opts = ConnectOptions::new(pg_url());
    opts.max_connections(1).sqlx_logging(false);
    let db = Database::connect(opts).await.unwrap();
    db.execute_unprepared(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
        .await
        .unwrap();
}

/// The raw fetch-and-decode limit: every log of the chain in ranges
/// fetched as the engine does (same range size and concurrency).
async fn fetch_limit(l: &EvmLedger, config: &SyncConfig) -> (Vec<ChainEvent>, f64) {
    let head = l.head().await.unwrap().number;
    let from = l.deployment_block();
    let step = config.max_range.min(10_000);
    let started = Instant::now();
    let batches: Vec<_> = stream::iter((from..=head).step_by(step as usize))
        .map(|a| l.events(a, (a + step - 1).min(head)))
        .buffered(config.ranges_in_flight)
        .try_collect()
        .await
        .unwrap();
    let secs = started.elapsed().as_secs_f64();
    let events: Vec<ChainEvent> = batches.into_iter().flat_map(|b| b.events).collect();
    let rate = events.len() as f64 / secs;
    (events, rate)
}

/// The cache's bulk ingestion limit: the pre-fetched events applied as
/// final batches of `batch_events`, each ending at its last event's block.
async fn ingest_limit(cache: &dyn CachePort, events: &[ChainEvent], batch_events: usize) -> f64 {
    let mut blocks: Vec<(BlockRef, Vec<ChainEvent>)> = Vec::new();
    for e in events {
        match blocks.last_mut() {
            Some((b, evs)) if b.number == e.at.block_number => evs.push(e.clone()),
            prev => {
                // The parent is known when the block before is in the list
                // (as the engine infers it for final blocks).
                let parent_hash = prev
                    .filter(|(b, _)| b.number + 1 == e.at.block_number)
                    .map_or(B256::ZERO, |(b, _)| b.hash);
                blocks.push((
                    BlockRef {
                        number: e.at.block_number,
                        hash: e.at.block_hash,
                        parent_hash,
                        timestamp: Timestamp(0),
                    },
                    vec![e.clone()],
                ));
            }
        }
    }
    let top = blocks.last().map_or(0, |(b, _)| b.number);
    let started = Instant::now();
    let mut batch = Vec::new();
    let mut n = 0;
    for b in blocks {
        n += b.1.len();
        batch.push(b);
        if n >= batch_events {
            cache.apply_blocks(&batch, top).await.unwrap();
            batch.clear();
            n = 0;
        }
    }
    cache.apply_blocks(&batch, top).await.unwrap();
    events.len() as f64 / started.elapsed().as_secs_f64()
}

async fn backfill(chain: &Chain, cache: Arc<dyn CachePort>, config: &SyncConfig) -> (u64, f64) {
    let engine = SyncEngine::new(chain.ledger.clone(), cache, config.clone());
    let started = Instant::now();
    let applied = engine.sync().await.unwrap();
    (applied, applied as f64 / started.elapsed().as_secs_f64())
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let events: u64 = std::env::var("HL_SYNC_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let chain = build(events).await;
    let config = SyncConfig {
        start: Start::Events,
        backfill_mode_blocks: None,
        ..SyncConfig::default()
    };
    // The same backfill in the cache's initial backfill mode (indexes
    // dropped, rebuilt at the end, the rebuild inside the clock).
    let mode_config = SyncConfig {
        backfill_mode_blocks: Some(1),
        ..config.clone()
    };
    let (all, fetch_rate) = fetch_limit(&chain.ledger, &config).await;
    println!(
        "sync/limit raw eth_getLogs fetch+decode: {} events at {fetch_rate:.0} events/s",
        all.len()
    );
    let dir = tempfile::tempdir().unwrap();

    for backend in ["SQLite file", "PostgreSQL"] {
        let (limit_cache, engine_cache, mode_cache): (SqlCache, SqlCache, SqlCache) =
            if backend == "PostgreSQL" {
                (
                    fresh_pg("hl_sync_bench_limit").await,
                    fresh_pg("hl_sync_bench_engine").await,
                    fresh_pg("hl_sync_bench_mode").await,
                )
            } else {
                (
                    fresh_sqlite(&dir, "limit").await,
                    fresh_sqlite(&dir, "engine").await,
                    fresh_sqlite(&dir, "mode").await,
                )
            };
        let ingest_rate = ingest_limit(&limit_cache, &all, config.batch_events).await;
        let (applied, rate) = backfill(&chain, Arc::new(engine_cache), &config).await;
        let smaller = fetch_rate.min(ingest_rate);
        println!(
            "sync/backfill {backend}: {applied} events to checkpoint-at-head at {rate:.0} events/s \
             = {:.0} % of the smaller limit (same run: fetch+decode {fetch_rate:.0} events/s, \
             cache bulk ingestion {ingest_rate:.0} events/s)",
            100.0 * rate / smaller
        );
        let (applied, rate) = backfill(&chain, Arc::new(mode_cache), &mode_config).await;
        println!(
            "sync/backfill {backend} in backfill mode (index rebuild included): {applied} events \
             to checkpoint-at-head at {rate:.0} events/s = {:.0} % of the smaller limit (same \
             run: fetch+decode {fetch_rate:.0} events/s, cache bulk ingestion {ingest_rate:.0} \
             events/s)",
            100.0 * rate / smaller
        );
    }

    // Full sync through the counting proxy: requests per entity.
    let proxy = FaultProxy::start(chain.anvil.endpoint(), Faults::NONE)
        .await
        .unwrap();
    let reader = Arc::new(
        EvmLedger::connect(EvmLedgerConfig::new(
            proxy.url(),
            chain.contract,
            key(&chain.anvil, 2),
        ))
        .await
        .unwrap(),
    );
    let cache = Arc::new(fresh_sqlite(&dir, "full").await);
    let engine = SyncEngine::new(reader.clone(), cache.clone(), SyncConfig::default());
    let head = reader.head().await.unwrap().number;
    proxy.reset_tally();
    let started = Instant::now();
    let entities = engine.full_sync_at(head).await.unwrap();
    let secs = started.elapsed().as_secs_f64();
    println!(
        "sync/full sync at a pinned block: {entities} entities in {secs:.2} s = {:.0} entities/s; {} HTTP requests = {:.4} requests/entity",
        entities as f64 / secs,
        proxy.tally().received,
        proxy.tally().received as f64 / entities as f64
    );

    // Reorg recovery in follow mode: anvil_reorg of depth 10 (its blocks
    // replaced by empty ones) to a cache at the new head.
    let follow_config = SyncConfig {
        poll_interval: Duration::from_millis(20),
        start: Start::Events,
        ..SyncConfig::default()
    };
    let cache = Arc::new(fresh_sqlite(&dir, "follow").await);
    let engine = SyncEngine::new(chain.ledger.clone(), cache.clone(), follow_config);
    engine.sync().await.unwrap();
    let follower = {
        let engine = engine.clone();
        tokio::spawn(async move { engine.follow().await })
    };
    let provider = ProviderBuilder::new().connect_http(chain.anvil.endpoint_url());
    let _: serde_json::Value = provider
        .raw_request(
            "anvil_reorg".into(),
            (10u64, Vec::<serde_json::Value>::new()),
        )
        .await
        .unwrap();
    let started = Instant::now();
    loop {
        let head = chain.ledger.head().await.unwrap();
        if cache.checkpoint().await.unwrap() == Some(head) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    println!(
        "sync/reorg of depth 10 to a cache at the new head: {:.0} ms (follow polls every 20 ms)",
        started.elapsed().as_secs_f64() * 1000.0
    );
    engine.stopper().stop();
    follower.await.unwrap().unwrap();
    drop_schema("hl_sync_bench_limit").await;
    drop_schema("hl_sync_bench_engine").await;
    drop_schema("hl_sync_bench_mode").await;
}
