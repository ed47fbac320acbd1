//! Error paths on mocks that delegate to the fakes: a ledger that fails in
//! the middle of a backfill, a cache whose write fails in the middle. The
//! cache is never half-applied, and the next run completes.

use std::sync::{
    Arc,
    atomic::{AtomicU32, Ordering},
};

use futures::executor::block_on;
use healthledger_core::{
    CacheError, CachePort, LedgerError, LedgerPort,
    testing::{InMemoryCache, InMemoryLedger, MockCachePort, MockLedgerPort, fixtures},
};
use healthledger_sync::{Error, SyncEngine, plan::Start};

use crate::{
    fakes::{BUSY, small_config},
    support::{Script, assert_cache_matches, project},
};

async fn busy_chain(base: u32) -> InMemoryLedger {
    let l = InMemoryLedger::new(fixtures::registrar());
    l.set_finality_depth(3);
    let mut s = Script::new(base);
    for op in BUSY.iter().chain(BUSY) {
        s.run(&l, *op).await;
    }
    l
}

/// The cache's chain rows equal the projection of the chain up to its
/// checkpoint, whatever that is: nothing half-applied.
async fn assert_consistent_prefix(cache: &InMemoryCache, l: &InMemoryLedger) {
    let Some(cp) = cache.checkpoint().await.unwrap() else {
        assert_eq!(cache.counts().await.unwrap().patients, 0);
        return;
    };
    let events = l.events(0, cp.number).await.unwrap().events;
    let registered = events
        .iter()
        .filter(|e| e.event.registered_profile().is_some())
        .count() as u64;
    let records = events
        .iter()
        .filter(|e| matches!(e.event, healthledger_core::LedgerEvent::RecordCreated(_)))
        .count() as u64;
    let c = cache.counts().await.unwrap();
    assert_eq!(
        (c.patients + c.doctors + c.diagnostic_centers, c.records),
        (registered, records),
        "the cache holds exactly the blocks up to its checkpoint {}",
        cp.number
    );
}

#[tokio::test]
async fn a_ledger_failing_mid_backfill_leaves_a_resumable_cache() {
    let inner = busy_chain(600_000).await;
    let mut mock = MockLedgerPort::new();
    let l = inner.clone();
    mock.expect_deployment_block()
        .returning(move || l.deployment_block());
    let l = inner.clone();
    mock.expect_head().returning(move || block_on(l.head()));
    let l = inner.clone();
    mock.expect_finalized()
        .returning(move || block_on(l.finalized()));
    let l = inner.clone();
    mock.expect_block().returning(move |n| block_on(l.block(n)));
    let l = inner.clone();
    let calls = Arc::new(AtomicU32::new(0));
    let c = calls.clone();
    mock.expect_events().returning(move |from, to| {
        if c.fetch_add(1, Ordering::SeqCst) == 4 {
            Err(LedgerError::Unavailable("the node went away".into()))
        } else {
            block_on(l.events(from, to))
        }
    });
    let cache = Arc::new(InMemoryCache::new());
    let engine = SyncEngine::new(
        Arc::new(mock),
        cache.clone() as Arc<dyn CachePort>,
        small_config(Start::Events),
    );
    let err = engine.sync().await.expect_err("the fifth fetch fails");
    assert!(
        matches!(err, Error::Ledger(LedgerError::Unavailable(_))),
        "{err}"
    );
    assert!(err.is_retryable());
    assert_consistent_prefix(&cache, &inner).await;
    let status = engine.status().await.expect("status");
    assert!(
        status
            .last_error
            .is_some_and(|e| e.contains("the node went away"))
    );

    let again = SyncEngine::new(
        Arc::new(inner.clone()),
        cache.clone() as Arc<dyn CachePort>,
        small_config(Start::Events),
    );
    again.sync().await.unwrap();
    assert_cache_matches(&*cache, &inner).await;
}

#[tokio::test]
async fn a_cache_write_failing_mid_backfill_applies_nothing_of_its_batch() {
    let ledger = busy_chain(610_000).await;
    let inner = Arc::new(InMemoryCache::new());
    let mut mock = MockCachePort::new();
    let c = inner.clone();
    mock.expect_checkpoint()
        .returning(move || block_on(c.checkpoint()));
    let writes = Arc::new(AtomicU32::new(0));
    let w = writes.clone();
    let c = inner.clone();
    mock.expect_in_backfill_mode()
        .returning(move || block_on(c.in_backfill_mode()));
    let c = inner.clone();
    mock.expect_begin_backfill_mode()
        .returning(move || block_on(c.begin_backfill_mode()));
    let c = inner.clone();
    mock.expect_end_backfill_mode()
        .returning(move || block_on(c.end_backfill_mode()));
    let c = inner.clone();
    mock.expect_apply_blocks_quarantining()
        .returning(move |batch, quarantined, finalized| {
            if w.fetch_add(1, Ordering::SeqCst) == 2 {
                Err(CacheError::Unavailable("disk full".into()))
            } else {
                block_on(c.apply_blocks_quarantining(batch, quarantined, finalized))
            }
        });
    let engine = SyncEngine::new(
        Arc::new(ledger.clone()),
        Arc::new(mock),
        small_config(Start::Events),
    );
    let err = engine.sync().await.expect_err("the third write fails");
    assert!(
        matches!(err, Error::Cache(CacheError::Unavailable(_))),
        "{err}"
    );
    assert_eq!(writes.load(Ordering::SeqCst), 3);
    assert_consistent_prefix(&inner, &ledger).await;
    assert!(inner.checkpoint().await.unwrap().is_some());

    let again = SyncEngine::new(
        Arc::new(ledger.clone()),
        inner.clone() as Arc<dyn CachePort>,
        small_config(Start::Events),
    );
    again.sync().await.unwrap();
    assert_cache_matches(&*inner, &ledger).await;
    assert_eq!(project(&ledger).await.profiles.len(), 10);
}
