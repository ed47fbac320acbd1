//! Benchmark of the sync engine on a real node and real caches: a backfill
//! of a generated chain of 100,000 events (the cache issue's mix: 10 %
//! registrations, 80 % record creations, 8 % grants, 1 % revocations, 1 %
//! profile updates, interleaved, in blocks of 1 to 100 events) from a local
//! anvil into a SQLite file and into PostgreSQL, in events/s from start to "checkpoint at head", printed
//! beside the two limits measured in the same run on the same chain: the
//! raw `eth_getLogs` fetch-and-decode rate and the cache's bulk ingestion
//! rate (`apply_blocks` of the pre-fetched events as final batches). Then
//! HTTP requests per entity of a full sync (through a counting proxy) and
//! the time from an `anvil_reorg` of depth 10 to a cache equal to the new
//! chain, in follow mode. (Drift verification and repair have their own
//! bench, `drift.rs`, at the 10,000 profiles and 100,000 records.)
//!
//! The chain is `healthledger_chain::testing::bench_chain`'s event mix
//! (`BenchChain::open_event_mix`): built once (about 2,000 blocks; anvil
//! recomputes the state root at every block, so the first run takes a
//! quarter of an hour or so), saved under the git-ignored `bench-data/`,
//! and loaded by later runs in seconds. The reorg runs on blocks mined on
//! top of the loaded node, which is discarded at the end: the saved chain
//! is never changed. `HL_SYNC_EVENTS` sets the chain's size (default
//! 100,000 events; each size is saved apart). Run with
//! `cargo bench -p healthledger-sync --bench backfill` (or
//! `cargo xtask bench`).

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use alloy::{
    primitives::B256,
    providers::{Provider, ProviderBuilder},
};
use futures::{StreamExt, TryStreamExt, stream};
use healthledger_cache::SqlCache;
use healthledger_chain::{
    EvmLedger, EvmLedgerConfig,
    testing::{
        FaultProxy, Faults,
        bench_chain::{BenchChain, EventMixSpec},
    },
};
use healthledger_core::{BlockRef, CachePort, ChainEvent, LedgerPort, Timestamp};
use healthledger_sync::{SyncConfig, SyncEngine, plan::Start};

fn pg_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// The loaded chain and a reader of it (anvil's account 2, which writes
/// nothing).
struct Chain {
    saved: BenchChain<EventMixSpec>,
    ledger: Arc<EvmLedger>,
}

async fn fresh_sqlite(dir: &tempfile::TempDir, name: &str) -> SqlCache {
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join(format!("{name}.db")).display()
    );
    SqlCache::connect(&url).await.expect("SQLite")
}

async fn fresh_pg(schema: &str) -> SqlCache {
    healthledger_cache::drop_schema(&pg_url(), schema)
        .await
        .unwrap();
    SqlCache::builder(pg_url())
        .postgres_schema(schema.to_owned())
        .max_connections(4)
        .connect()
        .await
        .expect("PostgreSQL (cargo xtask setup starts it)")
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
    let spec = EventMixSpec::from_env(100_000);
    let saved = BenchChain::open_event_mix(spec).await.unwrap();
    println!(
        "sync/bench chain: loaded {} ({} events planned: {:?}) in {:.1} s",
        saved.saved.display(),
        spec.events,
        spec.counts(),
        saved.load_time.as_secs_f64()
    );
    let ledger = Arc::new(
        EvmLedger::connect(EvmLedgerConfig::new(
            saved.anvil.endpoint(),
            saved.contract,
            saved.key(2).unwrap(),
        ))
        .await
        .unwrap(),
    );
    let chain = Chain { saved, ledger };
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
    let proxy = FaultProxy::start(chain.saved.anvil.endpoint(), Faults::NONE)
        .await
        .unwrap();
    let reader = Arc::new(
        EvmLedger::connect(EvmLedgerConfig::new(
            proxy.url(),
            chain.saved.contract,
            chain.saved.key(2).unwrap(),
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
    // replaced by empty ones) to a cache at the new head. The node keeps no
    // states of the loaded blocks, so the reorg takes blocks mined on top
    // of them (12 blocks of 50 record creations): the loaded node is
    // discarded afterwards, the saved chain is untouched.
    let extra = chain.saved.extend_with_records(12, 50).await.unwrap();
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
    let provider = ProviderBuilder::new().connect_http(chain.saved.anvil.endpoint_url());
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
        "sync/reorg of depth 10 (of {extra} events in 12 blocks on the loaded chain) to a cache \
         at the new head: {:.0} ms (follow polls every 20 ms)",
        started.elapsed().as_secs_f64() * 1000.0
    );
    engine.stopper().stop();
    follower.await.unwrap().unwrap();
    healthledger_cache::drop_schema(&pg_url(), "hl_sync_bench_limit")
        .await
        .unwrap();
    healthledger_cache::drop_schema(&pg_url(), "hl_sync_bench_engine")
        .await
        .unwrap();
    healthledger_cache::drop_schema(&pg_url(), "hl_sync_bench_mode")
        .await
        .unwrap();
}
