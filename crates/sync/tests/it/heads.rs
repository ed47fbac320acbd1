//! Follow mode woken by new heads: with a poll interval of an hour, a
//! follower still applies each new block within moments, because the
//! ledger announces it (the in-memory fake's subscription, and anvil's
//! `newHeads` over WebSocket). Polling alone could not pass these tests.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use healthledger_cache::SqlCache;
use healthledger_chain::{EvmLedger, EvmLedgerConfig};
use healthledger_core::{CachePort, LedgerPort};
use healthledger_sync::{SyncConfig, SyncEngine, plan::Start};

use crate::{
    anvil::{node, wait_for_head},
    fakes::{BUSY, small_config, world},
    support::{Op, Script, assert_cache_matches},
};

const AN_HOUR: Duration = Duration::from_secs(3600);

/// Follows with an hour between polls, writes, and checks each write's
/// block reaches the cache long before any poll could have fetched it;
/// then stops, which must not wait for the poll either.
async fn follow_on_announcements(
    ledger: Arc<dyn LedgerPort>,
    cache: Arc<dyn CachePort>,
    config: SyncConfig,
    base: u32,
) {
    let config = SyncConfig {
        poll_interval: AN_HOUR,
        ..config
    };
    let engine = SyncEngine::new(ledger.clone(), cache.clone(), config);
    let follower = {
        let engine = engine.clone();
        tokio::spawn(async move { engine.follow().await })
    };
    let mut script = Script::new(base);
    for op in BUSY.iter().chain(&[Op::Patient, Op::Update(0)]) {
        script.run(&*ledger, *op).await;
        let took = wait_for_head(&*cache, &*ledger).await;
        assert!(took < Duration::from_secs(30), "woken, not polled");
    }
    assert_cache_matches(&*cache, &*ledger).await;
    let stopping = Instant::now();
    engine.stopper().stop();
    follower.await.expect("join").expect("follow");
    assert!(
        stopping.elapsed() < Duration::from_secs(30),
        "a stop interrupts the wait for the next head"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn announced_heads_wake_a_follower_on_the_fakes() {
    let w = world(small_config(Start::Events));
    let config = small_config(Start::Events);
    follow_on_announcements(Arc::new(w.ledger.clone()), w.cache.clone(), config, 610_000).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn announced_heads_wake_a_follower_on_anvil_over_websocket() {
    let node = node().await;
    let mut config = EvmLedgerConfig::new(
        node.anvil.endpoint(),
        node.contract,
        healthledger_chain::SignerKey::from_bytes(&alloy::primitives::B256::from_slice(
            &node.anvil.keys()[0].to_bytes(),
        ))
        .expect("key"),
    );
    config.ws_url = Some(node.anvil.ws_endpoint());
    let ledger = Arc::new(EvmLedger::connect(config).await.expect("connect"));
    assert!(
        ledger.new_heads().await.expect("subscribe").is_some(),
        "anvil answers newHeads over WebSocket"
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("cache.db").display()
    );
    let cache = SqlCache::connect(&url).await.expect("SQLite cache");
    let config = SyncConfig {
        start: Start::Events,
        ..SyncConfig::default()
    };
    follow_on_announcements(ledger, Arc::new(cache), config, 620_000).await;
}
