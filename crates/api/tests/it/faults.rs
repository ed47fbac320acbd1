//! A fault after each step of each write flow, on the in-memory fakes
//! wrapped in [`Faulty`]: the backend refuses one call, or takes a write
//! and loses its answer. After each: no readable orphan in the vault (the
//! object is shredded or was never written), the chain holds exactly what
//! it accepted, and sync brings the cache to exactly the chain's state
//! (zero drift).

use std::time::Duration;

use healthledger_api::{Error, LocalWallet};
use healthledger_core::{
    CachePort, LedgerPort, NotificationKind, ObjectStatus, ReadAt, Role, VaultPort,
};
use healthledger_sync::integrity::VaultAuditConfig;

use crate::{
    faulty::Fault::{LoseAnswer, Refuse},
    world::{self, DOCTOR, DOCTOR_GRANTED, NEWCOMER, PATIENT, World, grant, hh, revoke},
};

fn unavailable<T: std::fmt::Debug>(r: &Result<T, Error>) {
    assert!(
        r.as_ref().is_err_and(Error::is_unavailable),
        "expected an unavailable backend, got {r:?}"
    );
}

async fn notifications_of(w: &World, n: u32, kind: NotificationKind) -> usize {
    w.cache
        .inner()
        .notifications(hh(n), false)
        .await
        .unwrap()
        .iter()
        .filter(|x| x.body.kind == kind)
        .count()
}

async fn register_newcomer(w: &World) -> healthledger_api::Result<healthledger_api::Registered> {
    let p = world::patient_profile(NEWCOMER, &LocalWallet::random(), "New Comer");
    w.app
        .register_patient(&healthledger_api::Actor::Operator, p)
        .await
}

async fn on_chain(w: &World, n: u32) -> bool {
    w.ledger
        .inner()
        .profile(hh(n), Role::Patient, ReadAt::Latest)
        .await
        .unwrap()
        .is_some()
}

async fn cached(w: &World, n: u32) -> bool {
    w.cache.inner().profile(hh(n)).await.unwrap().is_some()
}

// ----- register: chain, then cache, then the welcome notification -----

#[tokio::test]
async fn register_when_the_chain_refuses_writes_nothing() {
    let w = World::new().await;
    let before = w.snapshot().await;
    w.ledger.fail("register", 1, Refuse);
    unavailable(&register_newcomer(&w).await);
    assert!(w.ledger.fired("register"));
    w.assert_unchanged(&before).await;
    w.assert_sync_repairs().await;
    assert!(!cached(&w, NEWCOMER).await);
}

#[tokio::test]
async fn register_whose_answer_is_lost_is_on_chain_and_sync_caches_it() {
    let w = World::new().await;
    w.ledger.fail("register", 1, LoseAnswer);
    unavailable(&register_newcomer(&w).await);
    assert!(on_chain(&w, NEWCOMER).await);
    assert!(!cached(&w, NEWCOMER).await);
    w.assert_sync_repairs().await;
    assert!(cached(&w, NEWCOMER).await);
    // A retry reads before it writes: the HH number is taken, by itself.
    let again = register_newcomer(&w).await;
    assert!(matches!(again, Err(Error::Conflict(_))), "{again:?}");
}

#[tokio::test]
async fn register_when_the_cache_write_fails_succeeds_and_sync_caches_it() {
    let w = World::new().await;
    w.cache.fail("upsert_profile", 1, Refuse);
    let done = register_newcomer(&w).await.unwrap();
    assert!(!done.cached, "the result says the cache missed it");
    assert!(on_chain(&w, NEWCOMER).await);
    assert!(!cached(&w, NEWCOMER).await);
    w.assert_sync_repairs().await;
    assert!(cached(&w, NEWCOMER).await);
}

#[tokio::test]
async fn register_when_the_notification_fails_succeeds_without_it() {
    let w = World::new().await;
    w.cache.fail("add_notification", 1, Refuse);
    let done = register_newcomer(&w).await.unwrap();
    assert!(done.cached);
    assert!(w.cache.fired("add_notification"));
    assert_eq!(
        notifications_of(&w, NEWCOMER, NotificationKind::Info).await,
        0
    );
    w.assert_sync_repairs().await;
}

// ----- create_record: vault, then chain, then cache, then notification -----

async fn create(w: &World) -> healthledger_api::Result<healthledger_api::CreatedRecord> {
    w.app
        .create_record(
            &w.center.actor,
            hh(PATIENT),
            world::pdf(),
            world::draft(),
            &w.center.wallet,
        )
        .await
}

async fn record_count(w: &World) -> u64 {
    w.ledger.inner().record_count(ReadAt::Latest).await.unwrap()
}

#[tokio::test]
async fn create_when_the_vault_refuses_writes_nothing() {
    let w = World::new().await;
    let before = w.snapshot().await;
    w.vault.fail("put_stream", 1, Refuse);
    unavailable(&create(&w).await);
    w.assert_unchanged(&before).await;
    w.assert_sync_repairs().await;
}

#[tokio::test]
async fn create_whose_vault_answer_is_lost_leaves_an_orphan_the_audit_removes() {
    let w = World::new().await;
    w.vault.fail("put_stream", 1, LoseAnswer);
    unavailable(&create(&w).await);
    assert_eq!(record_count(&w).await, 1, "nothing went on chain");
    // The vault stored an object whose CID the facade never learnt.
    let stored = w.vault.inner().objects(None, 10).await.unwrap();
    let orphan: Vec<_> = stored.iter().filter(|o| o.cid != w.record.cid).collect();
    assert_eq!(orphan.len(), 1, "{stored:?}");
    w.assert_sync_repairs().await;
    assert_orphan_removed_by_audit(&w, orphan[0].cid).await;
}

#[tokio::test]
async fn create_when_the_chain_refuses_shreds_the_sealed_object() {
    let w = World::new().await;
    let before = w.snapshot().await;
    w.ledger.fail("create_record", 1, Refuse);
    unavailable(&create(&w).await);
    let cid = w.vault.last_sealed().unwrap();
    assert_ne!(cid, w.record.cid, "a new object was sealed first");
    w.assert_unreadable(hh(PATIENT), &cid).await;
    w.assert_unchanged(&before).await;
    w.assert_sync_repairs().await;
}

#[tokio::test]
async fn create_when_the_chain_and_the_shred_fail_leaves_an_orphan_the_audit_removes() {
    let w = World::new().await;
    w.ledger.fail("create_record", 1, Refuse);
    w.vault.fail("shred", 1, Refuse);
    unavailable(&create(&w).await);
    let cid = w.vault.last_sealed().unwrap();
    assert_eq!(record_count(&w).await, 1);
    assert_orphan_removed_by_audit(&w, cid).await;
}

#[tokio::test]
async fn create_whose_chain_answer_is_lost_keeps_the_object_the_chain_points_at() {
    let w = World::new().await;
    w.ledger.fail("create_record", 1, LoseAnswer);
    unavailable(&create(&w).await);
    let cid = w.vault.last_sealed().unwrap();
    assert_eq!(record_count(&w).await, 2, "the chain took the record");
    // The chain points at the object: shredding it would leave a record
    // no one can ever read.
    assert_eq!(
        w.vault.inner().verify(&cid).await.unwrap(),
        ObjectStatus::Intact
    );
    w.assert_sync_repairs().await;
    let records = w
        .app
        .records_of_patient(&w.patient.actor, hh(PATIENT))
        .await
        .unwrap();
    let new = records.iter().find(|r| r.cid == cid).unwrap();
    w.app.read_record(&w.patient.actor, new.id).await.unwrap();
    let audit = w
        .app
        .sync()
        .audit_vault(w.app.vault().as_ref(), audit_config(true))
        .await
        .unwrap();
    assert!(audit.is_clean() && audit.orphans.is_empty(), "{audit:?}");
}

#[tokio::test]
async fn create_when_the_index_write_fails_succeeds_and_sync_indexes_it() {
    let w = World::new().await;
    w.cache.fail("upsert_record", 1, Refuse);
    let created = create(&w).await.unwrap();
    assert!(!created.cached);
    let id = created.record.id;
    assert!(w.cache.inner().record(id).await.unwrap().is_none());
    // The chain decides reads, whatever the cache holds.
    w.app.read_record(&w.patient.actor, id).await.unwrap();
    w.assert_sync_repairs().await;
    assert!(w.cache.inner().record(id).await.unwrap().is_some());
}

#[tokio::test]
async fn create_when_the_notification_fails_succeeds_without_it() {
    let w = World::new().await;
    let told = notifications_of(&w, PATIENT, NotificationKind::RecordCreated).await;
    w.cache.fail("add_notification", 1, Refuse);
    let created = create(&w).await.unwrap();
    assert!(created.cached);
    assert!(w.cache.fired("add_notification"));
    assert_eq!(
        notifications_of(&w, PATIENT, NotificationKind::RecordCreated).await,
        told
    );
    w.assert_sync_repairs().await;
}

#[tokio::test]
async fn a_crash_between_seal_and_chain_leaves_an_orphan_the_audit_removes() {
    let w = World::new().await;
    let sealed = w
        .app
        .seal_record(&w.center.actor, hh(PATIENT), world::pdf(), world::draft())
        .await
        .unwrap();
    let cid = sealed.record().cid;
    // The process dies here: the sealed record is never committed.
    drop(sealed);
    assert_eq!(record_count(&w).await, 1);
    w.assert_sync_repairs().await;
    assert_orphan_removed_by_audit(&w, cid).await;
}

fn audit_config(remove_orphans: bool) -> VaultAuditConfig {
    VaultAuditConfig {
        grace: Duration::ZERO,
        remove_orphans,
        concurrency: 4,
    }
}

/// `cid` is an intact object no record points at: the audit lists it,
/// removes it when asked, and then it is unreadable and the vault clean.
async fn assert_orphan_removed_by_audit(w: &World, cid: healthledger_core::Cid) {
    let vault = w.app.vault().as_ref();
    assert_eq!(vault.verify(&cid).await.unwrap(), ObjectStatus::Intact);
    let listed = w
        .app
        .sync()
        .audit_vault(vault, audit_config(false))
        .await
        .unwrap();
    assert_eq!(
        listed
            .orphans
            .iter()
            .map(|o| (o.cid, o.removed))
            .collect::<Vec<_>>(),
        vec![(cid, false)],
        "{listed:?}"
    );
    assert_eq!(
        listed.problems,
        vec![],
        "the indexed record's object is intact"
    );
    let removed = w
        .app
        .sync()
        .audit_vault(vault, audit_config(true))
        .await
        .unwrap();
    assert_eq!(
        removed
            .orphans
            .iter()
            .map(|o| (o.cid, o.removed))
            .collect::<Vec<_>>(),
        vec![(cid, true)]
    );
    w.assert_unreadable(hh(PATIENT), &cid).await;
    let after = w
        .app
        .sync()
        .audit_vault(vault, audit_config(true))
        .await
        .unwrap();
    assert!(after.is_clean() && after.orphans.is_empty(), "{after:?}");
    // The record that is on chain still reads.
    w.app
        .read_record(&w.patient.actor, w.record.id)
        .await
        .unwrap();
}

// ----- grant and revoke: chain, then cache, then a notification -----

async fn doctor_reads(w: &World) -> bool {
    match w.app.read_record(&w.doctor.actor, w.record.id).await {
        Ok(_) => true,
        Err(Error::AccessDenied(_)) => false,
        Err(e) => panic!("{e}"),
    }
}

async fn cached_grant_active(w: &World, grantee: u32) -> Option<bool> {
    let now = healthledger_core::Timestamp::now();
    w.cache
        .inner()
        .grants_by_pair(&[(hh(PATIENT), hh(grantee))])
        .await
        .unwrap()
        .first()
        .map(|g| g.is_active(now))
}

#[tokio::test]
async fn grant_when_the_chain_refuses_writes_nothing() {
    let w = World::new().await;
    let before = w.snapshot().await;
    w.ledger.fail("grant_access", 1, Refuse);
    unavailable(&grant(&w.app, &w.patient, hh(DOCTOR), None).await);
    w.assert_unchanged(&before).await;
    assert!(!doctor_reads(&w).await);
    w.assert_sync_repairs().await;
    assert_eq!(cached_grant_active(&w, DOCTOR).await, None);
}

#[tokio::test]
async fn grant_whose_answer_is_lost_holds_on_chain_and_sync_caches_it() {
    let w = World::new().await;
    w.ledger.fail("grant_access", 1, LoseAnswer);
    unavailable(&grant(&w.app, &w.patient, hh(DOCTOR), None).await);
    assert!(doctor_reads(&w).await, "the chain took the grant");
    w.assert_sync_repairs().await;
    assert_eq!(cached_grant_active(&w, DOCTOR).await, Some(true));
}

#[tokio::test]
async fn grant_when_the_cache_write_fails_succeeds_and_sync_caches_it() {
    let w = World::new().await;
    w.cache.fail("upsert_grant", 1, Refuse);
    let change = grant(&w.app, &w.patient, hh(DOCTOR), None).await.unwrap();
    assert!(!change.cached);
    assert_eq!(cached_grant_active(&w, DOCTOR).await, None);
    assert!(doctor_reads(&w).await, "the chain decides at once");
    w.assert_sync_repairs().await;
    assert_eq!(cached_grant_active(&w, DOCTOR).await, Some(true));
}

#[tokio::test]
async fn grant_when_the_notification_fails_succeeds_without_it() {
    let w = World::new().await;
    w.cache.fail("add_notification", 1, Refuse);
    let change = grant(&w.app, &w.patient, hh(DOCTOR), None).await.unwrap();
    assert!(change.cached);
    assert_eq!(
        notifications_of(&w, DOCTOR, NotificationKind::AccessGranted).await,
        0
    );
    w.assert_sync_repairs().await;
}

#[tokio::test]
async fn revoke_when_the_chain_refuses_writes_nothing() {
    let w = World::new().await;
    let before = w.snapshot().await;
    w.ledger.fail("revoke_access", 1, Refuse);
    unavailable(&revoke(&w.app, &w.patient, hh(DOCTOR_GRANTED)).await);
    w.assert_unchanged(&before).await;
    w.app
        .read_record(&w.doctor_granted.actor, w.record.id)
        .await
        .unwrap();
    w.assert_sync_repairs().await;
    assert_eq!(cached_grant_active(&w, DOCTOR_GRANTED).await, Some(true));
}

#[tokio::test]
async fn revoke_when_the_cache_write_fails_takes_effect_at_once_and_sync_catches_up() {
    let w = World::new().await;
    w.cache.fail("upsert_grant", 1, Refuse);
    let change = revoke(&w.app, &w.patient, hh(DOCTOR_GRANTED))
        .await
        .unwrap();
    assert!(!change.cached);
    // The cache still shows the grant, but reads ask the chain.
    assert_eq!(cached_grant_active(&w, DOCTOR_GRANTED).await, Some(true));
    let r = w
        .app
        .read_record(&w.doctor_granted.actor, w.record.id)
        .await;
    assert!(matches!(r, Err(Error::AccessDenied(_))), "{r:?}");
    let r = w
        .app
        .records_of_patient(&w.doctor_granted.actor, hh(PATIENT))
        .await;
    assert!(matches!(r, Err(Error::AccessDenied(_))), "{r:?}");
    // So do the listings the cache answers: the stale grant shows nothing.
    let doctor = &w.doctor_granted.actor;
    let q = healthledger_core::RecordQuery {
        patient: Some(hh(PATIENT)),
        limit: 10,
        ..Default::default()
    };
    let hits = w.app.search_records(doctor, q).await.unwrap();
    assert!(hits.is_empty(), "{hits:?}");
    let mine = w.app.patients_of_doctor(doctor, hh(DOCTOR_GRANTED)).await;
    assert_eq!(mine.unwrap(), vec![hh(world::OTHER_PATIENT)]);
    w.assert_sync_repairs().await;
    assert_eq!(cached_grant_active(&w, DOCTOR_GRANTED).await, Some(false));
    let mine = w.app.patients_of_doctor(doctor, hh(DOCTOR_GRANTED)).await;
    assert_eq!(mine.unwrap(), vec![hh(world::OTHER_PATIENT)]);
}

#[tokio::test]
async fn revoke_whose_answer_is_lost_holds_on_chain_and_sync_caches_it() {
    let w = World::new().await;
    w.ledger.fail("revoke_access", 1, LoseAnswer);
    unavailable(&revoke(&w.app, &w.patient, hh(DOCTOR_GRANTED)).await);
    let r = w
        .app
        .read_record(&w.doctor_granted.actor, w.record.id)
        .await;
    assert!(matches!(r, Err(Error::AccessDenied(_))), "{r:?}");
    w.assert_sync_repairs().await;
    assert_eq!(cached_grant_active(&w, DOCTOR_GRANTED).await, Some(false));
}

#[tokio::test]
async fn a_full_sync_after_every_fault_equals_the_chain() {
    // The faults above, one after another in one world, then a full
    // snapshot sync (not the incremental one) from scratch.
    let w = World::new().await;
    w.cache.fail("upsert_profile", 1, Refuse);
    register_newcomer(&w).await.unwrap();
    w.cache.fail("upsert_record", 1, Refuse);
    create(&w).await.unwrap();
    w.ledger.fail("create_record", 1, Refuse);
    unavailable(&create(&w).await);
    w.cache.fail("upsert_grant", 1, Refuse);
    grant(&w.app, &w.patient, hh(DOCTOR), None).await.unwrap();
    w.cache.fail("upsert_grant", 1, Refuse);
    revoke(&w.app, &w.patient, hh(DOCTOR_GRANTED))
        .await
        .unwrap();
    w.app.sync().full_sync().await.unwrap();
    let drift = w.app.sync().verify_drift().await.unwrap();
    assert!(drift.is_clean(), "{drift:?}");
    let audit = w
        .app
        .sync()
        .audit_vault(w.app.vault().as_ref(), audit_config(false))
        .await
        .unwrap();
    assert!(audit.is_clean() && audit.orphans.is_empty(), "{audit:?}");
}

#[tokio::test]
async fn grant_and_revoke_succeed_when_reading_the_new_grant_back_fails() {
    // The chain took the write; only the read of its result fails (a
    // load-balanced node that lags). The call must not report a failure
    // for a write the chain holds.
    let w = World::new().await;
    w.ledger.fail("grant", 1, Refuse);
    let change = grant(&w.app, &w.patient, hh(DOCTOR), None).await.unwrap();
    assert!(w.ledger.fired("grant"));
    assert_eq!(change.grant.expires_at, None);
    assert!(doctor_reads(&w).await);
    assert_eq!(
        notifications_of(&w, DOCTOR, NotificationKind::AccessGranted).await,
        1
    );
    // Revocation reads the grant before (does it exist?) and after.
    w.ledger.fail("grant", 2, Refuse);
    let change = revoke(&w.app, &w.patient, hh(DOCTOR)).await.unwrap();
    assert!(w.ledger.fired("grant"));
    assert!(change.grant.revoked_at.is_some());
    assert!(!doctor_reads(&w).await);
    assert_eq!(
        notifications_of(&w, DOCTOR, NotificationKind::AccessRevoked).await,
        1
    );
    w.assert_sync_repairs().await;
}

#[tokio::test]
async fn a_read_that_cannot_be_logged_releases_nothing() {
    let w = World::new().await;
    let before = w.snapshot().await;
    w.cache.fail("append_access_log", 1, Refuse);
    unavailable(&w.app.read_record(&w.patient.actor, w.record.id).await);
    w.cache.fail("append_access_log", 1, Refuse);
    unavailable(&w.app.record_meta(&w.patient.actor, w.record.id).await);
    w.assert_unchanged(&before).await;
    // Once the log answers again, the read goes through and is logged.
    w.app
        .read_record(&w.patient.actor, w.record.id)
        .await
        .unwrap();
}

#[tokio::test]
async fn an_erasure_that_fails_midway_is_finished_by_a_retry() {
    let w = World::new().await;
    let patient = &w.patient.actor;
    let extras = healthledger_core::ProfileExtras {
        allergies: Some(healthledger_core::Note::new("penicillin").unwrap()),
        ..Default::default()
    };
    w.cache
        .inner()
        .set_extras(hh(PATIENT), &extras)
        .await
        .unwrap();
    // The vault refuses: nothing is erased, the record still reads.
    let before = w.snapshot().await;
    w.vault.fail("erase_patient", 1, Refuse);
    unavailable(&w.app.erase_patient(patient, hh(PATIENT)).await);
    w.assert_unchanged(&before).await;
    // The keys are destroyed, then clearing the extras fails: the content
    // is gone already and a retry finishes the job.
    w.cache.fail("set_extras", 1, Refuse);
    unavailable(&w.app.erase_patient(patient, hh(PATIENT)).await);
    let gone = w.app.read_record(patient, w.record.id).await;
    assert!(matches!(gone, Err(Error::NotFound(_))), "{gone:?}");
    assert_eq!(
        w.vault.inner().verify(&w.record.cid).await.unwrap(),
        ObjectStatus::Shredded
    );
    let erased = w.app.erase_patient(patient, hh(PATIENT)).await.unwrap();
    assert_eq!(erased.records, 1);
    assert_eq!(
        w.cache.inner().extras(hh(PATIENT)).await.unwrap(),
        Some(Default::default())
    );
    w.assert_sync_repairs().await;
}
