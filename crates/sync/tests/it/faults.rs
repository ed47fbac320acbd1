//! The engine through a faulty provider: anvil behind the chain crate's
//! loopback fault proxy (`healthledger_chain::testing::FaultProxy`: 20 %
//! server errors, 429s, `eth_getLogs` refused above a few blocks, dropped
//! connections), a backfill and then follow mode into a SQLite file. The
//! cache must equal the chain's projection, and what a direct sync of the
//! same chain gives, after each.

use std::{sync::Arc, time::Duration};

use healthledger_cache::SqlCache;
use healthledger_chain::{
    EvmLedger, EvmLedgerConfig, LogRangePolicy, RetryPolicy, SignerKey,
    testing::{FaultProxy, Faults},
};
use healthledger_core::{CachePort, LedgerPort};
use healthledger_sync::{SyncConfig, SyncEngine, plan::Start};

use crate::{
    anvil::{node, wait_for_head},
    fakes::BUSY,
    support::{Op, Script, assert_cache_matches},
};

async fn sqlite(dir: &tempfile::TempDir, name: &str) -> Arc<dyn CachePort> {
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join(format!("{name}.db")).display()
    );
    Arc::new(SqlCache::connect(&url).await.expect("SQLite cache"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_through_a_faulty_provider_equals_a_direct_sync() {
    let node = node().await;
    let l = &*node.ledger;
    let mut script = Script::new(850_000);
    for op in BUSY {
        script.run(l, *op).await;
    }

    let proxy = FaultProxy::start(
        node.anvil.endpoint(),
        Faults {
            seed: 20,
            max_log_span: 3,
            rate_drop: 0.05,
            rate_error: 0.2,
            rate_429: 0.1,
            ..Faults::NONE
        },
    )
    .await
    .expect("proxy");
    let key = SignerKey::from_bytes(&alloy::primitives::B256::from_slice(
        &node.anvil.keys()[1].to_bytes(),
    ))
    .unwrap();
    let mut config = EvmLedgerConfig::new(proxy.url(), node.contract, key);
    // Enough attempts that a third of requests failing never spends them;
    // short waits so the test stays quick.
    config.retry = RetryPolicy {
        max_attempts: 40,
        base_delay: Duration::from_millis(2),
        max_delay: Duration::from_millis(40),
    };
    config.log_ranges = LogRangePolicy {
        initial_span: 1_000,
        max_span: 1_000,
        grow_after: 2,
    };
    let faulty: Arc<dyn LedgerPort> = Arc::new(EvmLedger::connect(config).await.expect("connect"));

    let dir = tempfile::tempdir().expect("temp dir");
    let sync_config = SyncConfig {
        initial_range: 4,
        max_range: 64,
        events_per_range: 8,
        batch_events: 16,
        poll_interval: Duration::from_millis(20),
        retry_delay: Duration::from_millis(20),
        start: Start::Events,
        ..SyncConfig::default()
    };
    let direct_cache = sqlite(&dir, "direct").await;
    let direct = SyncEngine::new(
        node.ledger.clone(),
        direct_cache.clone(),
        sync_config.clone(),
    );
    let faulty_cache = sqlite(&dir, "faulty").await;
    let through = SyncEngine::new(faulty.clone(), faulty_cache.clone(), sync_config);

    // Backfill.
    direct.sync().await.expect("direct backfill");
    through.sync().await.expect("backfill through faults");
    assert_cache_matches(&*direct_cache, l).await;
    assert_cache_matches(&*faulty_cache, l).await;

    // Follow while the chain grows.
    let follower = {
        let through = through.clone();
        tokio::spawn(async move { through.follow().await })
    };
    for round in 0..4usize {
        for op in [
            Op::Patient,
            Op::Record(round, round),
            Op::Grant(round, 1, round % 2 == 0),
            Op::Revoke(0, 0),
            Op::Update(round),
            Op::Anchor,
        ] {
            script.run(l, op).await;
        }
        wait_for_head(&*faulty_cache, l).await;
    }
    through.stopper().stop();
    follower.await.expect("join").expect("follow");
    direct.sync().await.expect("direct catch-up");
    assert_cache_matches(&*direct_cache, l).await;
    assert_cache_matches(&*faulty_cache, l).await;

    let t = proxy.tally();
    assert!(
        t.server_errors > 0 && t.too_many > 0 && t.range_refusals > 0 && t.dropped > 0,
        "faults injected: {t:?}"
    );
    eprintln!("through the fault proxy: {t:?}");
}
