//! The engine's invariant as a property: after random chain operations,
//! reorgs of random depth (the same transactions re-mined, or a fork that
//! drops some and makes others) and syncs dropped at random await points
//! (a crash), catching up leaves the cache equal to the reference
//! projection of the canonical chain.

use std::sync::Arc;

use healthledger_core::{
    CachePort, LedgerPort,
    testing::{InMemoryCache, InMemoryLedger, fixtures},
};
use healthledger_sync::{SyncConfig, SyncEngine, plan::Start};
use proptest::prelude::*;

use crate::{
    fakes::small_config,
    support::{Op, Script, assert_cache_matches},
};

#[derive(Debug, Clone)]
enum Step {
    Chain(Op),
    EmptyBlocks(u64),
    /// The last `n` blocks re-mined under new hashes.
    Reorg(u64),
    /// The last `n` blocks dropped; new operations follow on the new fork.
    Fork(u64),
    /// A sync dropped after this many scheduler turns (`None`: run to the
    /// end).
    Sync(Option<u32>),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => Just(Op::Patient),
        1 => Just(Op::Doctor),
        1 => Just(Op::Center),
        4 => (0usize..8, 0usize..8).prop_map(|(p, c)| Op::Record(p, c)),
        2 => (0usize..8, 0usize..8, any::<bool>()).prop_map(|(p, c, e)| Op::Grant(p, c, e)),
        1 => (0usize..8, 0usize..8).prop_map(|(p, c)| Op::Revoke(p, c)),
        1 => (0usize..8).prop_map(Op::Update),
        1 => Just(Op::Anchor),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        10 => op().prop_map(Step::Chain),
        1 => (1u64..4).prop_map(Step::EmptyBlocks),
        2 => (1u64..7).prop_map(Step::Reorg),
        1 => (1u64..5).prop_map(Step::Fork),
        3 => proptest::option::of(0u32..12).prop_map(Step::Sync),
    ]
}

/// Runs `engine.sync()` but drops it after `turns` scheduler turns.
async fn crash_after(engine: &SyncEngine, turns: u32) {
    let sync = engine.sync();
    tokio::pin!(sync);
    let mut left = turns;
    loop {
        tokio::select! {
            biased;
            _ = &mut sync => return,
            () = tokio::task::yield_now() => {
                if left == 0 {
                    return;
                }
                left -= 1;
            }
        }
    }
}

async fn scenario(steps: Vec<Step>, start: Start) {
    let ledger = InMemoryLedger::new(fixtures::registrar());
    ledger.set_finality_depth(8);
    let cache = Arc::new(InMemoryCache::new());
    let config = SyncConfig {
        batch_events: 3,
        ..small_config(start)
    };
    let engine = SyncEngine::new(
        Arc::new(ledger.clone()),
        cache.clone() as Arc<dyn CachePort>,
        config,
    );
    let mut base = 700_000;
    let mut script = Script::new(base);
    for s in steps {
        match s {
            Step::Chain(op) => {
                script.run(&ledger, op).await;
            }
            Step::EmptyBlocks(n) => ledger.mine_empty(n),
            Step::Reorg(n) => ledger.reorg(n),
            Step::Fork(n) => {
                let head = ledger.head().await.expect("head").number;
                ledger.rewind(head.saturating_sub(n));
                base += 1_000;
                script = Script::new(base);
            }
            Step::Sync(None) => {
                // A reorg deeper than the cache can undo is possible when a
                // fork cuts below the final block; auto mode recovers with
                // a full sync, as an operator would.
                if let Err(e) = engine.sync().await {
                    assert!(
                        matches!(e, healthledger_sync::Error::ReorgTooDeep { .. }),
                        "sync failed: {e}"
                    );
                    engine
                        .full_sync()
                        .await
                        .expect("full sync after a deep reorg");
                }
            }
            Step::Sync(Some(turns)) => crash_after(&engine, turns).await,
        }
    }
    // A restarted engine (same cache) catches up.
    let restarted = SyncEngine::new(
        Arc::new(ledger.clone()),
        cache.clone() as Arc<dyn CachePort>,
        small_config(start),
    );
    if let Err(e) = restarted.sync().await {
        assert!(
            matches!(e, healthledger_sync::Error::ReorgTooDeep { .. }),
            "catch-up failed: {e}"
        );
        restarted.full_sync().await.expect("full sync");
    }
    assert_cache_matches(&*cache, &ledger).await;
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn the_cache_equals_the_projection_of_the_canonical_chain(
        steps in proptest::collection::vec(step(), 1..40),
        snapshot in any::<bool>(),
    ) {
        let start = if snapshot { Start::Snapshot } else { Start::Events };
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
            .block_on(scenario(steps, start));
    }
}

#[tokio::test]
async fn a_fork_below_the_final_block_is_caught_and_repaired() {
    scenario(
        vec![
            Step::Chain(Op::Patient),
            Step::Chain(Op::Doctor),
            Step::EmptyBlocks(12),
            Step::Sync(None),
            Step::Fork(11),
            Step::Chain(Op::Patient),
            Step::Sync(None),
        ],
        Start::Events,
    )
    .await;
}
