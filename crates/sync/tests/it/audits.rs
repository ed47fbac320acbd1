//! The access-log audit (rows edited, deleted and relinked with raw SQL on
//! SQLite and PostgreSQL; an anchored digest differing from the cache's),
//! the anchoring job, and the vault audit (missing, corrupt and shredded
//! objects per record; orphans listed and shredded after a grace period).

use std::{sync::Arc, time::Duration};

use bytes::Bytes;
use healthledger_cache::SqlCache;
use healthledger_core::{
    AccessAction, B256, CachePort, ConsentAction, HhNumber, LedgerPort, NewAccessLogEntry,
    ObjectStatus, ReadAt, Timestamp, VaultPort,
    testing::{InMemoryCache, InMemoryLedger, InMemoryVault, fixtures, ledger::consent},
};
use healthledger_sync::{
    SyncEngine,
    integrity::{AnchorConfig, AnchorJob, AnchorOutcome, VaultAuditConfig},
    plan::Start,
};
use sea_orm::{ConnectionTrait, DatabaseConnection, Statement, Value};

use crate::{
    anvil::{drop_schema, pg_url, postgres},
    fakes::small_config,
    integrity::raw,
    support::{Op, Script},
};

fn entry(i: u64) -> NewAccessLogEntry {
    NewAccessLogEntry {
        at: Timestamp(1_750_000_000 + i),
        actor: HhNumber::new(640_001).unwrap(),
        patient: HhNumber::new(640_000).unwrap(),
        record: None,
        action: AccessAction::ViewProfile,
        allowed: i.is_multiple_of(2),
    }
}

fn engine_over(ledger: &InMemoryLedger, cache: Arc<dyn CachePort>) -> SyncEngine {
    SyncEngine::new(
        Arc::new(ledger.clone()),
        cache,
        small_config(Start::Snapshot),
    )
}

/// Five access-log entries, entry 3 anchored on chain and synced into the
/// cache: an audit finds it all intact.
async fn anchored_log(cache: Arc<dyn CachePort>) -> (InMemoryLedger, SyncEngine) {
    let ledger = InMemoryLedger::new(fixtures::registrar());
    let engine = engine_over(&ledger, cache.clone());
    for i in 1..=5 {
        cache.append_access_log(&entry(i)).await.unwrap();
    }
    let digest = cache.access_log_digest(3).await.unwrap();
    ledger.anchor_audit(digest, 3).await.unwrap();
    engine.sync().await.unwrap();
    let audit = engine.audit_access_log().await.unwrap();
    assert!(audit.is_clean(), "{audit:#?}");
    assert_eq!((audit.entries, audit.anchor_holds), (5, Some(true)));
    (ledger, engine)
}

async fn run(db: &DatabaseConnection, sql: &str, values: Vec<Value>) {
    let n = db
        .execute_raw(Statement::from_sql_and_values(
            db.get_database_backend(),
            sql,
            values,
        ))
        .await
        .expect(sql)
        .rows_affected();
    assert!(n >= 1, "{sql} changed nothing");
}

/// Each tampering on a fresh cache from `fresh`, with its raw connection.
async fn access_log_tampering<F, Fut>(fresh: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = (Arc<dyn CachePort>, DatabaseConnection)>,
{
    // An edit that was not relinked breaks the chain at that entry.
    let (cache, db) = fresh().await;
    let (_, engine) = anchored_log(cache).await;
    run(
        &db,
        "UPDATE access_log SET allowed = NOT allowed WHERE seq = 4",
        vec![],
    )
    .await;
    let audit = engine.audit_access_log().await.unwrap();
    assert_eq!(audit.first_broken, Some(4), "{audit:#?}");

    // A deleted entry is reported where it is missing.
    let (cache, db) = fresh().await;
    let (_, engine) = anchored_log(cache).await;
    run(&db, "DELETE FROM access_log WHERE seq = 2", vec![]).await;
    assert_eq!(
        engine.audit_access_log().await.unwrap().first_broken,
        Some(2)
    );

    // An edit relinked to the end passes the chain walk; the chain's
    // anchor catches it, at the anchored entry.
    let (cache, db) = fresh().await;
    let (_, engine) = anchored_log(cache.clone()).await;
    let mut entries = cache.access_log(None, 0, 10).await.unwrap();
    entries[1].entry.allowed = !entries[1].entry.allowed;
    let mut prev = entries[0].hash;
    for e in entries.iter_mut().skip(1) {
        *e = healthledger_core::AccessLogEntry::link(e.seq, e.entry.clone(), prev);
        prev = e.hash;
        run(
            &db,
            "UPDATE access_log SET allowed = $1, prev_hash = $2, hash = $3 WHERE seq = $4",
            vec![
                e.entry.allowed.into(),
                e.prev_hash.to_vec().into(),
                e.hash.to_vec().into(),
                (e.seq as i64).into(),
            ],
        )
        .await;
    }
    let audit = engine.audit_access_log().await.unwrap();
    assert_eq!(
        (audit.first_broken, audit.anchor_holds),
        (Some(3), Some(false)),
        "{audit:#?}"
    );

    // An anchor on chain whose digest is not the cache's entry's.
    let (cache, _db) = fresh().await;
    let (ledger, engine) = anchored_log(cache).await;
    ledger.anchor_audit(B256::repeat_byte(9), 5).await.unwrap();
    let audit = engine.audit_access_log().await.unwrap();
    assert_eq!(
        (audit.first_broken, audit.anchor_holds),
        (Some(5), Some(false))
    );
    assert_ne!(audit.chain_anchor, audit.cached_anchor);
    assert!(!audit.is_clean());
}

#[tokio::test]
async fn access_log_tampering_on_sqlite_is_reported_at_the_right_entry() {
    let dir = tempfile::tempdir().unwrap();
    let n = std::sync::atomic::AtomicU64::new(0);
    access_log_tampering(|| async {
        let i = n.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let url = format!(
            "sqlite://{}?mode=rwc",
            dir.path().join(format!("cache{i}.db")).display()
        );
        let cache: Arc<dyn CachePort> = Arc::new(SqlCache::connect(&url).await.unwrap());
        (cache, raw(&url, None).await)
    })
    .await;
}

#[tokio::test]
async fn access_log_tampering_on_postgres_is_reported_at_the_right_entry() {
    let schemas = std::sync::Mutex::new(Vec::new());
    access_log_tampering(|| async {
        let (cache, schema) = postgres().await;
        let db = raw(&pg_url(), Some(&schema)).await;
        schemas.lock().unwrap().push(schema);
        (Arc::new(cache) as Arc<dyn CachePort>, db)
    })
    .await;
    for s in schemas.into_inner().unwrap() {
        drop_schema(&s).await;
    }
}

#[tokio::test]
async fn anchoring_waits_for_a_batch_refuses_a_broken_log_and_runs_until_stopped() {
    let ledger = InMemoryLedger::new(fixtures::registrar());
    let cache = Arc::new(InMemoryCache::new());
    let engine = engine_over(&ledger, cache.clone());
    for i in 1..=3 {
        cache.append_access_log(&entry(i)).await.unwrap();
    }
    assert_eq!(
        engine.anchor_access_log(5).await.unwrap(),
        AnchorOutcome::TooFew { pending: 3 }
    );
    for i in 4..=5 {
        cache.append_access_log(&entry(i)).await.unwrap();
    }
    let digest = cache.access_log_digest(5).await.unwrap();
    let AnchorOutcome::Anchored {
        last_seq,
        digest: anchored,
        ..
    } = engine.anchor_access_log(5).await.unwrap()
    else {
        panic!("expected an anchor")
    };
    assert_eq!((last_seq, anchored), (5, digest));
    let on_chain = ledger.latest_audit_anchor(ReadAt::Latest).await.unwrap();
    assert_eq!(on_chain.map(|a| (a.digest, a.last_seq)), Some((digest, 5)));
    engine.sync().await.unwrap();
    assert!(engine.audit_access_log().await.unwrap().is_clean());

    // The job anchors new entries every round until stopped.
    let job = AnchorJob::new(
        engine.clone(),
        AnchorConfig {
            interval: Duration::from_millis(10),
            min_batch: 1,
        },
    );
    let stop = job.stopper();
    let task = tokio::spawn(async move { job.run().await });
    for i in 6..=8 {
        cache.append_access_log(&entry(i)).await.unwrap();
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while ledger
        .latest_audit_anchor(ReadAt::Latest)
        .await
        .unwrap()
        .map(|a| a.last_seq)
        != Some(8)
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the job did not anchor"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stop.stop();
    task.await.unwrap().unwrap();

    // A tampered log is never anchored.
    cache.tamper_access_log(7);
    cache.append_access_log(&entry(9)).await.unwrap();
    let AnchorOutcome::Broken(audit) = engine.anchor_access_log(1).await.unwrap() else {
        panic!("a broken log must not be anchored")
    };
    assert_eq!(audit.first_broken, Some(7));
}

#[tokio::test]
async fn vault_audit_reports_per_record_and_removes_old_orphans() {
    let ledger = InMemoryLedger::new(fixtures::registrar());
    let cache = Arc::new(InMemoryCache::new());
    let vault = InMemoryVault::new();
    let engine = engine_over(&ledger, cache.clone());
    let mut script = Script::new(650_000);
    script.run(&ledger, Op::Patient).await;
    script.run(&ledger, Op::Center).await;
    let patient = script.patients[0].0.hh();
    let (center, center_wallet) = script.providers[0].clone();
    let mut cids = Vec::new();
    for serial in 1..=4u64 {
        let mut new = fixtures::record(
            patient.get(),
            serial,
            center.hh().get(),
            "Scan",
            "imaging",
            fixtures::date(2026, 1, serial as u32),
        );
        // Record 4 points to an object the vault never stored (deleted).
        if serial < 4 {
            new.cid = vault
                .put(patient, Bytes::from(format!("scan {serial}")))
                .await
                .unwrap()
                .cid;
        }
        cids.push((new.id, new.cid));
        let auth = consent(
            &ledger,
            &center_wallet,
            &ConsentAction::CreateRecord(new.clone()),
        )
        .await;
        ledger.create_record(&new, &auth).await.unwrap();
    }
    let orphan = vault
        .put(patient, Bytes::from("left behind"))
        .await
        .unwrap();
    engine.sync().await.unwrap();
    vault.corrupt(&cids[1].1);
    vault.shred(&cids[2].1).await.unwrap();

    let config = |grace_secs, remove_orphans| VaultAuditConfig {
        grace: Duration::from_secs(grace_secs),
        remove_orphans,
        concurrency: 2,
    };
    let audit = engine
        .audit_vault(&vault, config(3600, true))
        .await
        .unwrap();
    assert_eq!((audit.records, audit.intact), (4, 1));
    let mut found: Vec<_> = audit
        .problems
        .iter()
        .map(|p| (p.record, p.cid, p.status.clone()))
        .collect();
    found.sort_by_key(|(id, _, _)| *id);
    assert_eq!(found.len(), 3, "{found:?}");
    assert_eq!((found[0].0, found[0].1), cids[1]);
    assert!(matches!(found[0].2, ObjectStatus::Corrupt(_)), "{found:?}");
    assert_eq!(
        (found[1].0, found[1].1, found[1].2.clone()),
        (cids[2].0, cids[2].1, ObjectStatus::Shredded)
    );
    assert_eq!(
        (found[2].0, found[2].1, found[2].2.clone()),
        (cids[3].0, cids[3].1, ObjectStatus::Missing)
    );
    // Younger than the grace period: listed, not removed.
    assert_eq!(audit.orphans.len(), 1, "{:#?}", audit.orphans);
    assert_eq!(audit.orphans[0].cid, orphan.cid);
    assert!(!audit.orphans[0].removed);

    let audit = engine.audit_vault(&vault, config(0, false)).await.unwrap();
    assert!(!audit.orphans[0].removed, "removal was not asked for");
    let audit = engine.audit_vault(&vault, config(0, true)).await.unwrap();
    assert!(audit.orphans[0].removed);
    assert_eq!(
        vault.verify(&orphan.cid).await.unwrap(),
        ObjectStatus::Shredded
    );
    let audit = engine.audit_vault(&vault, config(0, true)).await.unwrap();
    assert!(audit.orphans.is_empty(), "{:#?}", audit.orphans);
    assert_eq!(audit.problems.len(), 3);
}
