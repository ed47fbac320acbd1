//! Every engine operation against the in-memory ledger and cache.

use std::sync::{Arc, Mutex};

use healthledger_core::{
    CacheError, CachePort, HhNumber, LedgerPort, ReadAt, Role,
    testing::{InMemoryCache, InMemoryLedger, fixtures},
};
use healthledger_sync::{
    Error, Outcome, Phase, Progress, Stale, SyncConfig, SyncEngine,
    plan::{Plan, Start},
};

use crate::support::{Op, Script, assert_cache_matches};

pub(crate) struct World {
    pub(crate) ledger: InMemoryLedger,
    pub(crate) cache: Arc<InMemoryCache>,
    pub(crate) engine: SyncEngine,
}

pub(crate) fn small_config(start: Start) -> SyncConfig {
    SyncConfig {
        initial_range: 3,
        max_range: 8,
        events_per_range: 4,
        ranges_in_flight: 3,
        batch_events: 5,
        page_size: 3,
        pages_in_flight: 2,
        start,
        poll_interval: std::time::Duration::from_millis(10),
        retry_delay: std::time::Duration::from_millis(10),
        backfill_mode_blocks: Some(1),
    }
}

pub(crate) fn world(config: SyncConfig) -> World {
    let ledger = InMemoryLedger::new(fixtures::registrar());
    let cache = Arc::new(InMemoryCache::new());
    let engine = SyncEngine::new(
        Arc::new(ledger.clone()),
        cache.clone() as Arc<dyn CachePort>,
        config,
    );
    World {
        ledger,
        cache,
        engine,
    }
}

pub(crate) const BUSY: &[Op] = &[
    Op::Patient,
    Op::Patient,
    Op::Doctor,
    Op::Center,
    Op::Record(0, 0),
    Op::Record(1, 1),
    Op::Grant(0, 0, false),
    Op::Grant(1, 1, true),
    Op::Update(0),
    Op::Record(0, 1),
    Op::Revoke(0, 0),
    Op::Anchor,
    Op::Patient,
    Op::Grant(2, 0, false),
    Op::Record(2, 0),
];

async fn run(script: &mut Script, l: &dyn LedgerPort, ops: &[Op]) {
    for op in ops {
        script.run(l, *op).await;
    }
}

#[tokio::test]
async fn targeted_sync_creates_updates_and_reports() {
    let w = world(small_config(Start::Snapshot));
    let mut s = Script::new(500_000);
    run(&mut s, &w.ledger, &[Op::Patient, Op::Doctor]).await;
    let (patient, doctor) = (s.patients[0].0.hh(), s.providers[0].0.hh());
    let e = &w.engine;
    assert_eq!(
        e.sync_patient(patient, Stale::Report).await.unwrap(),
        Outcome::Created
    );
    assert_eq!(
        e.sync_patient(patient, Stale::Report).await.unwrap(),
        Outcome::Unchanged
    );
    run(&mut s, &w.ledger, &[Op::Update(0)]).await;
    assert_eq!(
        e.sync_patient(patient, Stale::Report).await.unwrap(),
        Outcome::Updated
    );
    assert_eq!(
        w.cache.profile(patient).await.unwrap(),
        w.ledger
            .profile(patient, Role::Patient, ReadAt::Latest)
            .await
            .unwrap()
    );
    // Registered as a doctor, asked as a patient: says so, writes nothing.
    assert_eq!(
        e.sync_patient(doctor, Stale::Report).await.unwrap(),
        Outcome::OtherRole(Role::Doctor)
    );
    assert_eq!(w.cache.profile(doctor).await.unwrap(), None);
    assert_eq!(
        e.sync_doctor(doctor, Stale::Report).await.unwrap(),
        Outcome::Created
    );
    // Not registered anywhere: nothing is cached (no zero-address row).
    let nobody = HhNumber::new(999_999).unwrap();
    assert_eq!(
        e.sync_diagnostic(nobody, Stale::Remove).await.unwrap(),
        Outcome::NotOnChain
    );
    assert_eq!(w.cache.profile(nobody).await.unwrap(), None);
    assert_eq!(w.cache.counts().await.unwrap().diagnostic_centers, 0);
}

#[tokio::test]
async fn targeted_sync_of_records_and_of_rows_gone_from_the_chain() {
    let w = world(small_config(Start::Snapshot));
    let mut s = Script::new(510_000);
    run(
        &mut s,
        &w.ledger,
        &[Op::Patient, Op::Center, Op::Record(0, 0)],
    )
    .await;
    let id = w.ledger.record_ids(0, 1, ReadAt::Latest).await.unwrap()[0];
    let e = &w.engine;
    assert_eq!(
        e.sync_record(id, Stale::Report).await.unwrap(),
        Outcome::Created
    );
    assert_eq!(
        e.sync_record(id, Stale::Report).await.unwrap(),
        Outcome::Unchanged
    );
    let patient = s.patients[0].0.hh();
    assert_eq!(
        e.sync_patient(patient, Stale::Report).await.unwrap(),
        Outcome::Created
    );
    // The chain forgets the record and the patient (a fork without them).
    w.ledger.rewind(0);
    assert_eq!(
        e.sync_record(id, Stale::Report).await.unwrap(),
        Outcome::Gone { removed: false }
    );
    assert!(
        w.cache.record(id).await.unwrap().is_some(),
        "reported, kept"
    );
    assert_eq!(
        e.sync_record(id, Stale::Remove).await.unwrap(),
        Outcome::Gone { removed: true }
    );
    assert_eq!(w.cache.record(id).await.unwrap(), None);
    assert_eq!(
        e.sync_patient(patient, Stale::Remove).await.unwrap(),
        Outcome::Gone { removed: true }
    );
    assert_eq!(w.cache.profile(patient).await.unwrap(), None);
}

#[tokio::test]
async fn full_sync_reads_a_snapshot_then_continues_incrementally() {
    let w = world(small_config(Start::Snapshot));
    let mut s = Script::new(520_000);
    run(&mut s, &w.ledger, BUSY).await;
    // A stale row the chain never had: a full sync removes it.
    let stranger = fixtures::patient(
        529_999,
        fixtures::TestWallet::from_seed(529_999).address(),
        "Not On Chain",
    );
    w.cache
        .upsert_profile(
            &stranger,
            healthledger_core::ChainSource {
                block_number: 1,
                tx_hash: healthledger_core::B256::ZERO,
            },
        )
        .await
        .unwrap();
    let first = w.engine.step().await.unwrap();
    let finalized = w.ledger.finalized().await.unwrap();
    assert_eq!(
        first.plan,
        Plan::Full {
            at: finalized.number
        }
    );
    assert_eq!(w.cache.checkpoint().await.unwrap(), Some(finalized));
    assert_eq!(w.cache.profile(stranger.hh()).await.unwrap(), None);
    // The rest is incremental, from the snapshot's block.
    let second = w.engine.step().await.unwrap();
    assert!(
        matches!(second.plan, Plan::Backfill { from, .. } if from == finalized.number + 1),
        "{second:?}"
    );
    assert_eq!(w.engine.step().await.unwrap().plan, Plan::Idle);
    assert_cache_matches(&*w.cache, &w.ledger).await;

    run(
        &mut s,
        &w.ledger,
        &[Op::Patient, Op::Record(3, 1), Op::Grant(3, 1, false)],
    )
    .await;
    w.engine.sync().await.unwrap();
    assert_cache_matches(&*w.cache, &w.ledger).await;
}

#[tokio::test]
async fn a_scan_from_the_deployment_block_equals_a_snapshot() {
    let by_events = world(small_config(Start::Events));
    let mut s = Script::new(530_000);
    run(&mut s, &by_events.ledger, BUSY).await;
    by_events.ledger.mine_empty(5);
    run(&mut s, &by_events.ledger, BUSY).await;
    by_events.engine.sync().await.unwrap();
    assert_cache_matches(&*by_events.cache, &by_events.ledger).await;
    let journal = by_events.cache.journal(0, u64::MAX).await.unwrap();
    let finalized = by_events.ledger.finalized().await.unwrap().number;
    assert!(
        journal.iter().filter(|b| b.number > finalized).count() > 0,
        "blocks near the head are journaled for reorgs"
    );
}

#[tokio::test]
async fn reorgs_are_followed_exactly() {
    let w = world(small_config(Start::Events));
    w.ledger.set_finality_depth(12);
    let mut s = Script::new(540_000);
    run(&mut s, &w.ledger, BUSY).await;
    w.engine.sync().await.unwrap();
    for depth in 1..=10 {
        // Same transactions under new hashes...
        w.ledger.reorg(depth);
        let r = w.engine.step().await.unwrap();
        assert!(matches!(r.plan, Plan::Reorg { .. }), "depth {depth}: {r:?}");
        w.engine.sync().await.unwrap();
        assert_cache_matches(&*w.cache, &w.ledger).await;
    }
    // ...and a fork that drops transactions and makes others.
    let head = w.ledger.head().await.unwrap().number;
    w.ledger.rewind(head - 6);
    let mut other = Script::new(545_000);
    run(
        &mut other,
        &w.ledger,
        &[
            Op::Patient,
            Op::Doctor,
            Op::Record(0, 0),
            Op::Grant(0, 0, true),
        ],
    )
    .await;
    w.engine.sync().await.unwrap();
    assert_cache_matches(&*w.cache, &w.ledger).await;
}

#[tokio::test]
async fn a_reorg_below_the_final_block_is_a_clear_error_and_auto_recovers_by_full_sync() {
    let w = world(small_config(Start::Events));
    w.ledger.set_finality_depth(2);
    let mut s = Script::new(550_000);
    run(&mut s, &w.ledger, BUSY).await;
    w.engine.sync().await.unwrap();
    // Finality broken: blocks below the cache's final block replaced.
    let head = w.ledger.head().await.unwrap().number;
    w.ledger.reorg(head - 1);
    let err = w.engine.sync().await.expect_err("below the final block");
    match &err {
        Error::ReorgTooDeep { depth, .. } => assert!(*depth >= 2, "{err}"),
        other => panic!("expected ReorgTooDeep, got {other}"),
    }
    assert!(err.to_string().contains("full sync"), "{err}");
    w.engine.full_sync().await.unwrap();
    assert_cache_matches(&*w.cache, &w.ledger).await;
}

#[tokio::test]
async fn quarantined_logs_are_reported_and_never_stop_the_sync() {
    let w = world(small_config(Start::Events));
    let mut s = Script::new(560_000);
    run(&mut s, &w.ledger, &BUSY[..6]).await;
    w.ledger
        .emit_undecodable("a blood group the domain refuses");
    run(&mut s, &w.ledger, &BUSY[6..]).await;
    w.engine.sync().await.unwrap();
    assert_cache_matches(&*w.cache, &w.ledger).await;
    let status = w.engine.status().await.unwrap();
    assert_eq!(status.quarantined, 1);
    assert_eq!(
        status.recent_quarantined[0].reason,
        "a blood group the domain refuses"
    );

    // The cache keeps them: a restarted engine over the same cache still
    // reports them.
    let restarted = SyncEngine::new(
        Arc::new(w.ledger.clone()),
        w.cache.clone() as Arc<dyn CachePort>,
        small_config(Start::Events),
    );
    let status = restarted.status().await.unwrap();
    assert_eq!(status.quarantined, 1, "quarantined logs survive a restart");
    assert_eq!(status.recent_quarantined.len(), 1);

    // A quarantined log of a non-final block goes with the block when a
    // reorg drops it, and one of the new branch is stored.
    w.ledger.set_finality_depth(10);
    let dropped = w.ledger.emit_undecodable("dropped by the reorg");
    restarted.sync().await.unwrap();
    assert_eq!(restarted.status().await.unwrap().quarantined, 2);
    w.ledger.rewind(dropped.block_number - 1);
    let kept = w.ledger.emit_undecodable("on the new branch");
    run(&mut s, &w.ledger, &BUSY[..2]).await;
    restarted.sync().await.unwrap();
    assert_cache_matches(&*w.cache, &w.ledger).await;
    let status = restarted.status().await.unwrap();
    let reasons: Vec<&str> = status
        .recent_quarantined
        .iter()
        .map(|q| q.reason.as_str())
        .collect();
    assert_eq!(
        reasons,
        ["on the new branch", "a blood group the domain refuses"]
    );
    assert_eq!(status.recent_quarantined[0].at.block_hash, kept.block_hash);
    assert_eq!(status.quarantined, 2);
}

#[tokio::test]
async fn status_and_progress_say_where_the_sync_is() {
    let seen: Arc<Mutex<Vec<Progress>>> = Arc::default();
    let sink = seen.clone();
    let w = world(small_config(Start::Events));
    let engine = w
        .engine
        .clone()
        .with_progress(Arc::new(move |p: &Progress| sink.lock().unwrap().push(*p)));
    let mut s = Script::new(570_000);
    run(&mut s, &w.ledger, BUSY).await;
    let before = engine.status().await.unwrap();
    assert_eq!(before.checkpoint, None);
    assert!(before.lag_blocks > 0);
    assert!(!before.is_syncing);
    assert_eq!(before.last_sync_time, None);
    engine.sync().await.unwrap();
    let after = engine.status().await.unwrap();
    assert_eq!(after.lag_blocks, 0);
    assert_eq!(after.lag_seconds, 0);
    assert_eq!(after.checkpoint, Some(w.ledger.head().await.unwrap()));
    assert_eq!(after.counts.patients, 3);
    assert!(after.last_sync_time.is_some());
    assert_eq!(after.last_error, None);
    let seen = seen.lock().unwrap();
    let backfill: Vec<&Progress> = seen.iter().filter(|p| p.phase == Phase::Backfill).collect();
    assert!(backfill.len() > 1, "several batches reported: {seen:?}");
    assert!(
        backfill
            .windows(2)
            .all(|w| w[0].done <= w[1].done && w[0].events <= w[1].events)
    );
    let last = backfill.last().unwrap();
    assert_eq!(last.done, last.total);
}

#[tokio::test]
async fn follow_applies_new_blocks_and_stops_when_asked() {
    let w = world(small_config(Start::Events));
    w.ledger.set_finality_depth(6);
    let mut s = Script::new(580_000);
    run(&mut s, &w.ledger, &BUSY[..5]).await;
    let engine = w.engine.clone();
    let follower = tokio::spawn(async move { engine.follow().await });
    run(&mut s, &w.ledger, &BUSY[5..]).await;
    let head = w.ledger.head().await.unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while w.cache.checkpoint().await.unwrap() != Some(head) {
        assert!(std::time::Instant::now() < deadline, "follow caught up");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    w.ledger.reorg(3);
    let head = w.ledger.head().await.unwrap();
    while w.cache.checkpoint().await.unwrap() != Some(head) {
        assert!(
            std::time::Instant::now() < deadline,
            "follow took the reorg"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    w.engine.stopper().stop();
    follower.await.unwrap().unwrap();
    assert_cache_matches(&*w.cache, &w.ledger).await;
    // Undo data of final blocks was pruned.
    let finalized = w.ledger.finalized().await.unwrap().number;
    assert!(
        w.cache
            .journal(0, finalized.saturating_sub(1))
            .await
            .unwrap()
            .is_empty()
    );
    // A stopped follow leaves the engine usable.
    run(&mut s, &w.ledger, &[Op::Patient, Op::Record(0, 0)]).await;
    w.engine.sync().await.unwrap();
    assert_cache_matches(&*w.cache, &w.ledger).await;
    // A stop requested before a sync ends it at once; resumed, the next
    // sync continues from the checkpoint.
    run(&mut s, &w.ledger, BUSY).await;
    w.engine.stopper().stop();
    assert_eq!(w.engine.sync().await.unwrap(), 0, "stopped before it began");
    w.engine.stopper().resume();
    w.engine.sync().await.unwrap();
    assert_cache_matches(&*w.cache, &w.ledger).await;
}

#[tokio::test]
async fn an_idle_cache_reads_little() {
    let w = world(small_config(Start::Snapshot));
    let mut s = Script::new(590_000);
    run(&mut s, &w.ledger, BUSY).await;
    w.engine.sync().await.unwrap();
    let report = w.engine.step().await.unwrap();
    assert_eq!(report.plan, Plan::Idle);
    assert_eq!(report.applied, 0);
}

#[tokio::test]
async fn a_standby_takes_over_when_the_leader_dies() {
    use healthledger_core::testing::InMemoryLease;
    let w = world(small_config(Start::Events));
    w.ledger.set_finality_depth(4);
    let lease = InMemoryLease::new();
    let standby_lease = lease.handle();
    let leader = w.engine.clone().with_lease(Arc::new(lease.clone()));
    let standby = SyncEngine::new(
        Arc::new(w.ledger.clone()),
        w.cache.clone() as Arc<dyn CachePort>,
        small_config(Start::Events),
    )
    .with_lease(Arc::new(standby_lease));
    let mut s = Script::new(595_000);
    run(&mut s, &w.ledger, &BUSY[..5]).await;
    let a = {
        let e = leader.clone();
        tokio::spawn(async move { e.follow().await })
    };
    let head = w.ledger.head().await.unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while w.cache.checkpoint().await.unwrap() != Some(head) {
        assert!(std::time::Instant::now() < deadline, "the leader caught up");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let b = {
        let e = standby.clone();
        tokio::spawn(async move { e.follow().await })
    };
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    assert!(leader.status().await.unwrap().lease.unwrap().held);
    assert!(
        !standby.status().await.unwrap().lease.unwrap().held,
        "a standby"
    );
    // The leader dies: its task is aborted and its lease lost.
    a.abort();
    lease.kill();
    run(&mut s, &w.ledger, &BUSY[5..]).await;
    let head = w.ledger.head().await.unwrap();
    while w.cache.checkpoint().await.unwrap() != Some(head) {
        assert!(
            std::time::Instant::now() < deadline,
            "the standby took over"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(standby.status().await.unwrap().lease.unwrap().held);
    standby.stopper().stop();
    b.await.unwrap().unwrap();
    assert_cache_matches(&*w.cache, &w.ledger).await;
}

#[tokio::test]
async fn a_first_backfill_runs_in_backfill_mode_and_a_restart_finishes_it() {
    let w = world(small_config(Start::Events));
    let mut s = Script::new(590_000);
    run(&mut s, &w.ledger, BUSY).await;
    // Stopped after its first batch, the first backfill leaves the cache
    // in the mode: searches are refused, not answered from missing rows.
    let stopper = w.engine.stopper();
    let stopping = w
        .engine
        .clone()
        .with_progress(Arc::new(move |_: &Progress| stopper.stop()));
    stopping.sync().await.unwrap();
    assert!(
        w.cache.in_backfill_mode().await.unwrap(),
        "still in the mode"
    );
    let err = w.cache.search_patients("script", 100).await.unwrap_err();
    assert!(matches!(err, CacheError::IndexBuilding(_)), "{err}");

    // A restarted engine finishes the backfill and leaves the mode.
    let restarted = SyncEngine::new(
        Arc::new(w.ledger.clone()),
        w.cache.clone() as Arc<dyn CachePort>,
        small_config(Start::Events),
    );
    restarted.sync().await.unwrap();
    assert!(!w.cache.in_backfill_mode().await.unwrap(), "the mode ended");
    assert_cache_matches(&*w.cache, &w.ledger).await;
    assert!(
        !w.cache
            .search_patients("script", 100)
            .await
            .unwrap()
            .is_empty()
    );

    // A cache with a checkpoint never enters it again.
    run(&mut s, &w.ledger, BUSY).await;
    restarted.sync().await.unwrap();
    assert!(!w.cache.in_backfill_mode().await.unwrap());
}
