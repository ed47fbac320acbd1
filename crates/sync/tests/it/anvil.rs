//! The engine against a real node and real caches: anvil with the
//! HealthLedger contract, and the SQL cache on a SQLite file and on
//! PostgreSQL. Flows, then follow mode through `anvil_reorg` of depths 1 to
//! 10 (the reorganized transactions are dropped), then a targeted and a
//! full sync; the cache must equal the canonical chain after each.

use std::{
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use alloy::{
    node_bindings::{Anvil, AnvilInstance},
    primitives::B256,
    providers::{Provider, ProviderBuilder},
};
use healthledger_cache::SqlCache;
use healthledger_chain::{EvmLedger, EvmLedgerConfig, SignerKey};
use healthledger_core::{CachePort, LedgerPort};
use healthledger_sync::{Outcome, Stale, SyncConfig, SyncEngine, plan::Start};

use crate::{
    fakes::BUSY,
    support::{Op, Script, assert_cache_matches},
};

fn anvil_path() -> PathBuf {
    let tools = std::env::var_os("HEALTHLEDGER_TOOLS")
        .map(PathBuf::from)
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.tools"));
    let path = tools.join("bin").join("anvil");
    assert!(
        path.is_file(),
        "anvil is not installed at {}: run `cargo xtask setup`",
        path.display()
    );
    path
}

pub(crate) struct Node {
    pub(crate) anvil: AnvilInstance,
    pub(crate) contract: alloy::primitives::Address,
    pub(crate) ledger: Arc<EvmLedger>,
}

pub(crate) async fn node() -> Node {
    let anvil = Anvil::at(anvil_path())
        .try_spawn()
        .unwrap_or_else(|e| panic!("anvil failed to start: {e}; run `cargo xtask setup`"));
    let key = SignerKey::from_bytes(&B256::from_slice(&anvil.keys()[0].to_bytes())).unwrap();
    let contract = EvmLedger::deploy(&anvil.endpoint(), &key)
        .await
        .expect("deploy HealthLedger");
    let mut config = EvmLedgerConfig::new(anvil.endpoint(), contract, key);
    // The writes after each `anvil_reorg` (which drops the reorganized
    // transactions, so the node's nonce goes back) must land promptly; a
    // write that stalls fails the test in seconds, not minutes.
    config.rebroadcast_after = Duration::from_millis(300);
    config.receipt_timeout = Duration::from_secs(20);
    let ledger = EvmLedger::connect(config).await.expect("connect");
    Node {
        anvil,
        contract,
        ledger: Arc::new(ledger),
    }
}

impl Node {
    /// The registrar's key as hex, for a child process.
    pub(crate) fn key_hex(&self) -> String {
        format!("{:#x}", B256::from_slice(&self.anvil.keys()[0].to_bytes()))
    }

    /// `anvil_reorg`: the last `depth` blocks replaced by empty ones.
    async fn reorg(&self, depth: u64) {
        let provider = ProviderBuilder::new().connect_http(self.anvil.endpoint_url());
        let _: serde_json::Value = provider
            .raw_request(
                "anvil_reorg".into(),
                (depth, Vec::<serde_json::Value>::new()),
            )
            .await
            .expect("anvil_reorg");
    }
}

pub(crate) fn pg_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

static SCHEMAS: AtomicU64 = AtomicU64::new(0);

pub(crate) async fn postgres() -> (SqlCache, String) {
    let schema = format!(
        "hl_sync_test_{}_{}",
        std::process::id(),
        SCHEMAS.fetch_add(1, Ordering::Relaxed)
    );
    let cache = SqlCache::builder(pg_url())
        .postgres_schema(schema.clone())
        .max_connections(4)
        .connect()
        .await
        .unwrap_or_else(|e| {
            panic!(
                "PostgreSQL is not usable at TEST_DATABASE_URL={}: {e}; `cargo xtask setup` starts it",
                pg_url()
            )
        });
    (cache, schema)
}

pub(crate) async fn drop_schema(schema: &str) {
    healthledger_cache::drop_schema(&pg_url(), schema)
        .await
        .expect("drop schema");
}

pub(crate) async fn wait_for_head(cache: &dyn CachePort, l: &dyn LedgerPort) -> Duration {
    let since = Instant::now();
    loop {
        let head = l.head().await.expect("head");
        if cache.checkpoint().await.expect("checkpoint") == Some(head) {
            return since.elapsed();
        }
        assert!(
            since.elapsed() < Duration::from_secs(30),
            "the follower did not reach the head {head}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn flows_and_reorgs(cache: Arc<dyn CachePort>) {
    let node = node().await;
    let l = &*node.ledger;
    let mut script = Script::new(800_000);
    for op in BUSY {
        script.run(l, *op).await;
    }
    let config = SyncConfig {
        poll_interval: Duration::from_millis(20),
        start: Start::Events,
        ..SyncConfig::default()
    };
    let engine = SyncEngine::new(node.ledger.clone(), cache.clone(), config);
    engine.sync().await.expect("backfill");
    assert_cache_matches(&*cache, l).await;

    let follower = {
        let engine = engine.clone();
        tokio::spawn(async move { engine.follow().await })
    };
    for depth in 1..=10u64 {
        for op in [
            Op::Patient,
            Op::Record(depth as usize, 0),
            Op::Grant(depth as usize, 1, depth % 2 == 0),
            Op::Update(0),
        ] {
            script.run(l, op).await;
        }
        wait_for_head(&*cache, l).await;
        node.reorg(depth).await;
        let took = wait_for_head(&*cache, l).await;
        eprintln!("anvil_reorg of depth {depth}: cache at the new head after {took:?}");
        assert_cache_matches(&*cache, l).await;
        // The script's view of who exists may have lost the dropped ones.
        script = Script::new(800_000 + 1_000 * depth as u32);
        // The same adapter writes on: `anvil_reorg` dropped its
        // transactions, and it must not wait behind the nonces it lost.
        for op in [Op::Patient, Op::Doctor, Op::Center] {
            script.run(l, op).await;
        }
    }
    wait_for_head(&*cache, l).await;
    engine.stopper().stop();
    follower.await.expect("join").expect("follow");
    assert_cache_matches(&*cache, l).await;

    // A targeted sync of what is already there changes nothing.
    let hh = script.patients[0].0.hh();
    assert_eq!(
        engine
            .sync_patient(hh, Stale::Report)
            .await
            .expect("targeted"),
        Outcome::Unchanged
    );
    // A full sync at the head's finalized block, then catching up, gives
    // the same cache.
    engine.full_sync().await.expect("full sync");
    assert_cache_matches(&*cache, l).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anvil_and_sqlite_follow_reorgs_exactly() {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("cache.db").display()
    );
    let cache = SqlCache::connect(&url).await.expect("SQLite cache");
    flows_and_reorgs(Arc::new(cache)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anvil_and_postgres_follow_reorgs_exactly() {
    let (cache, schema) = postgres().await;
    flows_and_reorgs(Arc::new(cache)).await;
    drop_schema(&schema).await;
}
