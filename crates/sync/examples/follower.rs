//! A follower process: syncs a HealthLedger contract into a SQL cache and
//! follows the chain under the cache's writer lease, so several can run on
//! one cache (one writes, the others stand by). It prints `leader` or
//! `standby` whenever its role changes, and `synced <block>` after a
//! one-shot sync; SIGINT/SIGTERM stop it after the current batch.
//!
//! ```sh
//! HEALTHLEDGER_RPC_URL=http://127.0.0.1:8545 HEALTHLEDGER_CONTRACT=0x… \
//! HEALTHLEDGER_SIGNER_KEY=0x… DATABASE_URL=sqlite://cache.db?mode=rwc \
//! cargo run -p healthledger-sync --example follower [-- once]
//! ```
//!
//! `HEALTHLEDGER_SCHEMA` picks a PostgreSQL schema; `HL_BATCH_EVENTS` the
//! events per batch. With `once`, it syncs to the head and exits (the kill
//! tests kill it mid-backfill).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{sync::Arc, time::Duration};

use healthledger_cache::{SqlCache, SqlLease};
use healthledger_chain::{EvmLedger, EvmLedgerConfig, SignerKey};
use healthledger_sync::{SyncConfig, SyncEngine, plan::Start};

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set"))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let once = std::env::args().nth(1).as_deref() == Some("once");
    let key: SignerKey = env("HEALTHLEDGER_SIGNER_KEY")
        .parse()
        .expect("HEALTHLEDGER_SIGNER_KEY");
    let contract = env("HEALTHLEDGER_CONTRACT")
        .parse()
        .expect("HEALTHLEDGER_CONTRACT");
    let ledger = EvmLedger::connect(EvmLedgerConfig::new(
        env("HEALTHLEDGER_RPC_URL"),
        contract,
        key,
    ))
    .await
    .expect("connect the ledger");
    let url = env("DATABASE_URL");
    let schema = std::env::var("HEALTHLEDGER_SCHEMA").ok();
    let mut builder = SqlCache::builder(url.clone());
    if let Some(s) = &schema {
        builder = builder.postgres_schema(s.clone());
    }
    let cache = builder.connect().await.expect("connect the cache");
    let config = SyncConfig {
        start: Start::Events,
        poll_interval: Duration::from_millis(50),
        batch_events: std::env::var("HL_BATCH_EVENTS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(10_000),
        ..SyncConfig::default()
    };
    let engine = SyncEngine::new(Arc::new(ledger), Arc::new(cache), config);
    if once {
        engine.sync().await.expect("sync");
        let cp = engine.status().await.expect("status").checkpoint;
        println!("synced {}", cp.map_or(0, |b| b.number));
        return;
    }
    let lease = SqlLease::connect(&url, schema.as_deref())
        .await
        .expect("the writer lease");
    let engine = engine.with_lease(Arc::new(lease));
    let stopper = engine.stopper();
    tokio::spawn(async move {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        stopper.stop();
    });
    let watcher = engine.clone();
    tokio::spawn(async move {
        let mut last = None;
        loop {
            if let Ok(s) = watcher.status().await {
                let held = s.lease.map(|l| l.held);
                if held != last {
                    println!(
                        "{}",
                        if held == Some(true) {
                            "leader"
                        } else {
                            "standby"
                        }
                    );
                    last = held;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    engine.follow().await.expect("follow");
}
