//! The [`CachePort`] conformance suite. Every function expects an empty
//! cache of its own (a fresh database, schema or in-memory cache) and
//! panics on the first divergence, naming the behaviour. [`all`] runs them
//! in turn, each on a cache from the given factory.

use std::future::Future;

use alloy_primitives::{B256, keccak256};

use super::fixtures::{self, TestWallet, date};
use crate::{
    AccessAction, AccessGrant, AuditAnchor, BlockRef, CacheError, CachePort, ChainEvent,
    ChainSource, HhNumber, LedgerEvent, LogPosition, MedicalRecord, Name, NewAccessLogEntry,
    NewNotification, Note, NotificationKind, PhoneNumber, Profile, ProfileExtras, RecordQuery,
    Role, Session, SessionTokenHash, Timestamp,
};

mod backfill_mode;
mod pages;
mod quarantine;
mod whole_state;
pub use backfill_mode::backfill_mode_refuses_searches_until_it_ends;
pub use pages::{
    batch_lookups_return_cached_rows, key_walks_page_in_key_order, repair_writes_touch_one_row,
};
pub use quarantine::quarantined_logs_go_with_their_blocks;
pub use whole_state::{
    removals_remove_one_row, replace_chain_state_installs_a_snapshot,
    switch_branch_swaps_branches_atomically,
};

/// Runs every cache conformance test, each on a fresh cache from `fresh`.
pub async fn all<C, F, Fut>(fresh: F)
where
    C: CachePort,
    F: Fn() -> Fut,
    Fut: Future<Output = C>,
{
    upserts_are_idempotent(&fresh().await).await;
    ownership_conflicts_are_rejected(&fresh().await).await;
    apply_block_projects_events(&fresh().await).await;
    apply_block_is_idempotent_and_checks_linkage(&fresh().await).await;
    apply_block_is_atomic(&fresh().await).await;
    rollback_restores_earlier_versions(&fresh().await).await;
    rollback_restores_replaced_records(&fresh().await).await;
    rollback_leaves_db_only_data_untouched(&fresh().await).await;
    rollback_undoes_upserts_made_above_it(&fresh().await).await;
    pruned_blocks_are_final(&fresh().await).await;
    apply_blocks_is_atomic(&fresh().await).await;
    apply_blocks_resumes_after_a_failed_batch(&fresh().await).await;
    apply_blocks_final_blocks_cannot_be_rolled_back(&fresh().await).await;
    apply_blocks_mixes_final_and_non_final(&fresh().await).await;
    apply_blocks_skips_an_applied_prefix(&fresh().await).await;
    reads_are_ordered(&fresh().await).await;
    searches_agree(&fresh().await).await;
    extras_are_db_only(&fresh().await).await;
    notifications_round_trip(&fresh().await).await;
    sessions_round_trip(&fresh().await).await;
    expiry_at_now_is_expired(&fresh().await).await;
    timestamps_take_any_u64(&fresh().await).await;
    records_belong_to_the_patient_of_their_id(&fresh().await).await;
    access_log_is_hash_chained(&fresh().await).await;
    access_log_is_checked_against_the_anchor(&fresh().await).await;
    switch_branch_swaps_branches_atomically(&fresh().await).await;
    replace_chain_state_installs_a_snapshot(&fresh().await).await;
    removals_remove_one_row(&fresh().await).await;
    quarantined_logs_go_with_their_blocks(&fresh().await).await;
    batch_lookups_return_cached_rows(&fresh().await).await;
    key_walks_page_in_key_order(&fresh().await).await;
    repair_writes_touch_one_row(&fresh().await).await;
    backfill_mode_refuses_searches_until_it_ends(&fresh().await).await;
}

fn hh(n: u32) -> HhNumber {
    HhNumber::new(n).expect("valid test HH number")
}

fn wallet(seed: u64) -> crate::WalletAddress {
    TestWallet::from_seed(seed).address()
}

/// The block `number` on fork `fork` (fork 0 is the canonical test chain);
/// its parent is block `number - 1` on the same fork. Blocks are 12 s apart
/// from a fixed genesis time, on every fork.
pub fn block(number: u64, fork: u8) -> BlockRef {
    let hash_of = |n: u64| {
        if n == 0 {
            keccak256(b"genesis")
        } else {
            keccak256([&n.to_be_bytes()[..], &[fork]].concat())
        }
    };
    BlockRef {
        number,
        hash: hash_of(number),
        parent_hash: if number == 0 {
            B256::ZERO
        } else {
            hash_of(number - 1)
        },
        timestamp: crate::Timestamp(1_700_000_000u64.saturating_add(number.saturating_mul(12))),
    }
}

/// Places `events` in `block`, with consecutive log indexes.
pub fn in_block(block: &BlockRef, events: Vec<LedgerEvent>) -> Vec<ChainEvent> {
    events
        .into_iter()
        .enumerate()
        .map(|(i, event)| ChainEvent {
            at: LogPosition {
                block_number: block.number,
                log_index: i as u64,
                block_hash: block.hash,
                tx_hash: keccak256([block.hash.as_slice(), &(i as u64).to_be_bytes()].concat()),
            },
            event,
        })
        .collect()
}

fn src(n: u64) -> ChainSource {
    ChainSource {
        block_number: n,
        tx_hash: B256::repeat_byte(7),
    }
}

fn record(
    patient: u32,
    serial: u64,
    creator: u32,
    name: &str,
    kind: &str,
    d: chrono::NaiveDate,
) -> MedicalRecord {
    // The cache takes ids as the chain gives them; these tests pick ids
    // apart from creators (the ledger's creator namespaces do not matter
    // here), so one id can be replaced by another creator's record.
    let new = crate::NewRecord {
        id: crate::RecordId::new(hh(patient), serial),
        ..fixtures::record(
            patient,
            serial % crate::RecordId::CREATOR_SHIFT,
            creator,
            name,
            kind,
            d,
        )
    };
    MedicalRecord::from_new(new, Timestamp(1_750_000_000 + serial))
}

fn grant(patient: u32, grantee: u32, expires_at: Option<u64>) -> AccessGrant {
    AccessGrant {
        patient: hh(patient),
        grantee: hh(grantee),
        granted_at: Timestamp(1_750_000_000),
        expires_at: expires_at.map(Timestamp),
        revoked_at: None,
    }
}

async fn apply(c: &dyn CachePort, number: u64, events: Vec<LedgerEvent>) {
    let b = block(number, 0);
    c.apply_block(&b, &in_block(&b, events))
        .await
        .expect("apply block");
}

/// Upserting the same values twice leaves one copy that reads back exactly.
pub async fn upserts_are_idempotent(c: &dyn CachePort) {
    let p = fixtures::patient(210_000, wallet(210_000), "Asha Rao");
    let r = record(
        210_000,
        1,
        210_002,
        "Complete blood count",
        "lab-result",
        date(2026, 1, 2),
    );
    let g = grant(210_000, 210_001, None);
    for _ in 0..2 {
        c.upsert_profile(&p, src(5)).await.expect("upsert profile");
        c.upsert_record(&r, src(5)).await.expect("upsert record");
        c.upsert_grant(&g, src(5)).await.expect("upsert grant");
    }
    assert_eq!(c.profile(p.hh()).await.expect("read"), Some(p.clone()));
    assert_eq!(
        c.account_of(p.wallet()).await.expect("read"),
        Some((Role::Patient, p.hh()))
    );
    assert_eq!(c.record(r.id).await.expect("read"), Some(r.clone()));
    assert_eq!(
        c.grants_of_patient(hh(210_000)).await.expect("read"),
        vec![g]
    );
    let counts = c.counts().await.expect("counts");
    assert_eq!((counts.patients, counts.records, counts.grants), (1, 1, 1));
    assert_eq!(
        c.checkpoint().await.expect("checkpoint"),
        None,
        "upserts do not move the checkpoint"
    );

    let Profile::Patient(mut newer) = p.clone() else {
        unreachable!()
    };
    newer.name = Name::new("Asha Rao-Menon").expect("name");
    let newer = Profile::Patient(newer);
    c.upsert_profile(&newer, src(6))
        .await
        .expect("replace profile");
    assert_eq!(c.profile(p.hh()).await.expect("read"), Some(newer));
    assert_eq!(c.profile(hh(219_999)).await.expect("read"), None);
    assert_eq!(
        c.record(crate::RecordId::new(hh(210_000), 99))
            .await
            .expect("read"),
        None
    );
}

/// One wallet, one HH number; one HH number, one role.
pub async fn ownership_conflicts_are_rejected(c: &dyn CachePort) {
    let p = fixtures::patient(220_000, wallet(220_000), "Ravi Kumar");
    c.upsert_profile(&p, src(1)).await.expect("upsert");
    let thief = fixtures::patient(220_001, wallet(220_000), "Someone Else");
    let err = c
        .upsert_profile(&thief, src(2))
        .await
        .expect_err("wallet taken");
    assert!(
        matches!(err, CacheError::Conflict(_)),
        "wallet conflict: {err}"
    );
    let other_role = fixtures::doctor(220_000, wallet(220_000), "Dr. Ravi");
    let err = c
        .upsert_profile(&other_role, src(2))
        .await
        .expect_err("role change");
    assert!(
        matches!(err, CacheError::Conflict(_)),
        "role conflict: {err}"
    );
    assert_eq!(c.profile(hh(220_001)).await.expect("read"), None);
    assert_eq!(c.profile(hh(220_000)).await.expect("read"), Some(p));
}

/// Every event kind lands where reads find it, and the block is journaled
/// as the checkpoint.
pub async fn apply_block_projects_events(c: &dyn CachePort) {
    let p = fixtures::patient(230_000, wallet(230_000), "Meera Iyer");
    let d = fixtures::doctor(230_001, wallet(230_001), "Dr. Kavya Nair");
    let dc = fixtures::diagnostic_center(230_002, wallet(230_002), "Metro Diagnostics");
    let r = record(
        230_000,
        1,
        230_002,
        "Lipid panel",
        "lab-result",
        date(2026, 2, 2),
    );
    let g = grant(230_000, 230_001, None);
    let anchor = AuditAnchor {
        digest: B256::repeat_byte(9),
        last_seq: 12,
        anchored_at: Timestamp(1_750_000_100),
    };
    apply(
        c,
        1,
        vec![
            LedgerEvent::registration(p.clone(), fixtures::registrar()),
            LedgerEvent::registration(d.clone(), fixtures::registrar()),
            LedgerEvent::registration(dc.clone(), fixtures::registrar()),
        ],
    )
    .await;
    apply(
        c,
        2,
        vec![
            LedgerEvent::RecordCreated(r.clone()),
            LedgerEvent::AccessGranted(g.clone()),
            LedgerEvent::AuditAnchored(anchor),
        ],
    )
    .await;
    assert_eq!(c.profile(p.hh()).await.expect("read"), Some(p.clone()));
    assert_eq!(c.profile(d.hh()).await.expect("read"), Some(d));
    assert_eq!(c.profile(dc.hh()).await.expect("read"), Some(dc));
    assert_eq!(c.record(r.id).await.expect("read"), Some(r));
    assert_eq!(
        c.grants_of_patient(p.hh()).await.expect("read"),
        vec![g.clone()]
    );
    assert_eq!(c.latest_audit_anchor().await.expect("read"), Some(anchor));

    let Profile::Patient(mut moved) = p.clone() else {
        unreachable!()
    };
    moved.home_address = crate::Line::new("1 New Street").expect("line");
    let moved = Profile::Patient(moved);
    apply(
        c,
        3,
        vec![
            LedgerEvent::ProfileUpdated(moved.clone()),
            LedgerEvent::AccessRevoked {
                patient: g.patient,
                grantee: g.grantee,
                revoked_at: Timestamp(1_750_000_200),
            },
        ],
    )
    .await;
    assert_eq!(c.profile(p.hh()).await.expect("read"), Some(moved));
    let revoked = c.grants_of_patient(p.hh()).await.expect("read");
    assert_eq!(revoked[0].revoked_at, Some(Timestamp(1_750_000_200)));
    assert_eq!(c.checkpoint().await.expect("checkpoint"), Some(block(3, 0)));
    assert_eq!(
        c.journal(0, 10).await.expect("journal"),
        vec![block(1, 0), block(2, 0), block(3, 0)]
    );
    assert_eq!(c.journal(2, 2).await.expect("journal"), vec![block(2, 0)]);
    assert_eq!(c.counts().await.expect("counts").journal, 3);
}

/// A journaled block re-applies as a no-op; forks, broken parents, foreign
/// events and blocks below the checkpoint are refused.
pub async fn apply_block_is_idempotent_and_checks_linkage(c: &dyn CachePort) {
    let p = fixtures::patient(240_000, wallet(240_000), "Ravi Kumar");
    let b1 = block(1, 0);
    let events = in_block(
        &b1,
        vec![LedgerEvent::registration(p.clone(), fixtures::registrar())],
    );
    c.apply_block(&b1, &events).await.expect("apply");
    c.apply_block(&b1, &events)
        .await
        .expect("re-apply is a no-op");
    assert_eq!(c.counts().await.expect("counts").patients, 1);

    let fork = block(1, 1);
    let err = c
        .apply_block(&fork, &[])
        .await
        .expect_err("same height, other hash");
    assert!(
        matches!(err, CacheError::Conflict(_)),
        "fork at checkpoint: {err}"
    );
    let orphan = block(2, 1);
    let err = c
        .apply_block(&orphan, &[])
        .await
        .expect_err("parent mismatch");
    assert!(
        matches!(err, CacheError::Conflict(_)),
        "parent mismatch: {err}"
    );
    let b2 = block(2, 0);
    let err = c
        .apply_block(&b2, &events)
        .await
        .expect_err("events of block 1 in block 2");
    assert!(
        matches!(err, CacheError::Invalid(_)),
        "foreign events: {err}"
    );
    c.apply_block(&block(5, 0), &[])
        .await
        .expect("gaps are allowed");
    let err = c
        .apply_block(&block(4, 0), &[])
        .await
        .expect_err("below checkpoint");
    assert!(
        matches!(err, CacheError::Conflict(_)),
        "below checkpoint: {err}"
    );
    assert_eq!(c.checkpoint().await.expect("checkpoint"), Some(block(5, 0)));
}

/// A block that fails part-way leaves no trace: no rows, no journal entry,
/// no checkpoint move.
pub async fn apply_block_is_atomic(c: &dyn CachePort) {
    let p = fixtures::patient(250_000, wallet(250_000), "Asha Rao");
    apply(
        c,
        1,
        vec![LedgerEvent::registration(p.clone(), fixtures::registrar())],
    )
    .await;
    let fresh = fixtures::patient(250_001, wallet(250_001), "New Patient");
    let clash = fixtures::doctor(250_002, wallet(250_000), "Dr. Clash");
    let r = record(250_000, 3, 250_002, "ECG", "ecg", date(2026, 1, 1));
    let b2 = block(2, 0);
    let events = in_block(
        &b2,
        vec![
            LedgerEvent::registration(fresh.clone(), fixtures::registrar()),
            LedgerEvent::RecordCreated(r.clone()),
            LedgerEvent::registration(clash, fixtures::registrar()),
        ],
    );
    let err = c
        .apply_block(&b2, &events)
        .await
        .expect_err("wallet clash mid-block");
    assert!(matches!(err, CacheError::Conflict(_)), "{err}");
    assert_eq!(
        c.profile(fresh.hh()).await.expect("read"),
        None,
        "earlier event rolled back"
    );
    assert_eq!(
        c.record(r.id).await.expect("read"),
        None,
        "earlier event rolled back"
    );
    assert_eq!(c.checkpoint().await.expect("checkpoint"), Some(block(1, 0)));
    assert_eq!(c.journal(0, 10).await.expect("journal").len(), 1);
}

/// Rolling back undoes inserts and restores the earlier versions of
/// updated profiles and grants; DB-only data survives.
pub async fn rollback_restores_earlier_versions(c: &dyn CachePort) {
    let p = fixtures::patient(260_000, wallet(260_000), "Meera Iyer");
    let d = fixtures::doctor(260_001, wallet(260_001), "Dr. Sen");
    let g = grant(260_000, 260_001, None);
    apply(
        c,
        1,
        vec![
            LedgerEvent::registration(p.clone(), fixtures::registrar()),
            LedgerEvent::registration(d.clone(), fixtures::registrar()),
        ],
    )
    .await;
    let extras = ProfileExtras {
        phone: Some(PhoneNumber::new("+91 98765 43210").expect("phone")),
        ..Default::default()
    };
    c.set_extras(p.hh(), &extras).await.expect("extras");

    let Profile::Patient(mut v2) = p.clone() else {
        unreachable!()
    };
    v2.name = Name::new("Meera Iyer-Shah").expect("name");
    let v2 = Profile::Patient(v2);
    apply(
        c,
        2,
        vec![
            LedgerEvent::ProfileUpdated(v2.clone()),
            LedgerEvent::AccessGranted(g.clone()),
        ],
    )
    .await;
    let r = record(
        260_000,
        4,
        260_001,
        "X-ray chest",
        "x-ray",
        date(2026, 6, 1),
    );
    apply(
        c,
        3,
        vec![
            LedgerEvent::AccessRevoked {
                patient: g.patient,
                grantee: g.grantee,
                revoked_at: Timestamp(1_750_000_500),
            },
            LedgerEvent::RecordCreated(r.clone()),
        ],
    )
    .await;

    c.rollback_to(2).await.expect("rollback to 2");
    assert_eq!(c.record(r.id).await.expect("read"), None);
    assert_eq!(
        c.grants_of_patient(p.hh()).await.expect("read"),
        vec![g.clone()],
        "grant un-revoked"
    );
    assert_eq!(c.checkpoint().await.expect("checkpoint"), Some(block(2, 0)));
    c.rollback_to(2).await.expect("rollback is idempotent");

    c.rollback_to(1).await.expect("rollback to 1");
    assert_eq!(
        c.profile(p.hh()).await.expect("read"),
        Some(p.clone()),
        "earlier version restored"
    );
    assert!(c.grants_of_patient(p.hh()).await.expect("read").is_empty());
    assert_eq!(
        c.extras(p.hh()).await.expect("read"),
        Some(extras),
        "extras untouched"
    );

    apply(c, 2, vec![LedgerEvent::ProfileUpdated(v2.clone())]).await;
    assert_eq!(
        c.profile(p.hh()).await.expect("read"),
        Some(v2),
        "re-apply after rollback"
    );
    c.rollback_to(0).await.expect("rollback everything");
    assert_eq!(c.profile(p.hh()).await.expect("read"), None);
    assert_eq!(c.checkpoint().await.expect("checkpoint"), None);
}

/// A record row replaced by a later block (same id, new content) goes back
/// to its earlier version on rollback, in reads and in searches; it is not
/// deleted.
pub async fn rollback_restores_replaced_records(c: &dyn CachePort) {
    let v1 = record(
        265_000,
        7,
        265_001,
        "Complete blood count",
        "lab-result",
        date(2026, 3, 1),
    );
    let v2 = MedicalRecord {
        creator: hh(265_002),
        created_at: Timestamp(1_760_000_000),
        ..record(265_000, 7, 265_002, "MRI knee", "mri", date(2026, 4, 1))
    };
    assert_eq!(v1.id, v2.id);
    apply(c, 1, vec![LedgerEvent::RecordCreated(v1.clone())]).await;
    apply(c, 2, vec![LedgerEvent::RecordCreated(v2.clone())]).await;
    assert_eq!(c.record(v1.id).await.expect("read"), Some(v2.clone()));
    assert_eq!(
        c.counts().await.expect("counts").records,
        1,
        "replaced, not added"
    );

    c.rollback_to(1).await.expect("rollback to 1");
    assert_eq!(
        c.record(v1.id).await.expect("read"),
        Some(v1.clone()),
        "the earlier version is back"
    );
    assert_eq!(
        c.records_of_patient(hh(265_000)).await.expect("read"),
        vec![v1.clone()]
    );
    assert_eq!(
        c.records_by_creator(hh(265_001)).await.expect("read"),
        vec![v1.clone()]
    );
    assert!(
        c.records_by_creator(hh(265_002))
            .await
            .expect("read")
            .is_empty()
    );
    let text = |t: &str| RecordQuery {
        text: Some(t.into()),
        limit: 10,
        ..Default::default()
    };
    assert_eq!(
        c.search_records(&text("blood")).await.expect("search"),
        vec![v1.clone()],
        "the search index follows the restored version"
    );
    assert!(
        c.search_records(&text("knee"))
            .await
            .expect("search")
            .is_empty()
    );
    c.rollback_to(0).await.expect("rollback to 0");
    assert_eq!(c.record(v1.id).await.expect("read"), None);
}

/// Rollback leaves every kind of DB-only data as it is: extras (even of a
/// user whose registration is undone), notifications (read flags too),
/// sessions and the access log, whether written before or after the undone
/// blocks.
pub async fn rollback_leaves_db_only_data_untouched(c: &dyn CachePort) {
    let p = fixtures::patient(266_000, wallet(266_000), "Meera Iyer");
    let user = p.hh();
    apply(
        c,
        1,
        vec![LedgerEvent::registration(p.clone(), fixtures::registrar())],
    )
    .await;
    let extras = ProfileExtras {
        notes: Some(Note::new("prefers mornings").expect("note")),
        ..Default::default()
    };
    c.set_extras(user, &extras).await.expect("extras");
    let note = |t: u64| NewNotification {
        user,
        kind: NotificationKind::AccessGranted,
        title: Name::new("Access granted").expect("title"),
        message: Note::new("Dr. Sen may read your records.").expect("note"),
        related_record: None,
        created_at: Timestamp(t),
    };
    let session = |token: &[u8], expires: u64| Session {
        token_hash: SessionTokenHash::of(token),
        hh: user,
        wallet: p.wallet(),
        created_at: Timestamp(1_000),
        expires_at: Timestamp(expires),
    };
    let log = |i: u64| NewAccessLogEntry {
        at: Timestamp(1_750_000_000 + i),
        actor: hh(266_001),
        patient: user,
        record: None,
        action: AccessAction::ViewProfile,
        allowed: true,
    };
    let first = c.add_notification(&note(100)).await.expect("add");
    c.mark_notification_read(first.id).await.expect("mark");
    c.put_session(&session(b"before", 5_000))
        .await
        .expect("put");
    c.append_access_log(&log(1)).await.expect("append");

    let Profile::Patient(mut v2) = p.clone() else {
        unreachable!()
    };
    v2.name = Name::new("Meera Iyer-Shah").expect("name");
    apply(
        c,
        2,
        vec![
            LedgerEvent::ProfileUpdated(Profile::Patient(v2)),
            LedgerEvent::AccessGranted(grant(266_000, 266_001, None)),
            LedgerEvent::AuditAnchored(AuditAnchor {
                digest: c.access_log_digest(1).await.expect("digest"),
                last_seq: 1,
                anchored_at: Timestamp(1_750_000_100),
            }),
        ],
    )
    .await;
    c.add_notification(&note(200)).await.expect("add");
    c.put_session(&session(b"after", 6_000)).await.expect("put");
    c.append_access_log(&log(2)).await.expect("append");

    let notifications = c.notifications(user, false).await.expect("list");
    let sessions = [
        c.session(SessionTokenHash::of(b"before"))
            .await
            .expect("read"),
        c.session(SessionTokenHash::of(b"after"))
            .await
            .expect("read"),
    ];
    let entries = c.access_log(None, 0, 100).await.expect("log");
    assert_eq!((notifications.len(), entries.len()), (2, 2));
    assert!(sessions.iter().all(Option::is_some));

    for (to, why) in [(1, "an update undone"), (0, "the registration undone")] {
        c.rollback_to(to).await.expect("rollback");
        assert_eq!(
            c.notifications(user, false).await.expect("list"),
            notifications,
            "notifications, {why}"
        );
        assert_eq!(
            [
                c.session(SessionTokenHash::of(b"before"))
                    .await
                    .expect("read"),
                c.session(SessionTokenHash::of(b"after"))
                    .await
                    .expect("read"),
            ],
            sessions,
            "sessions, {why}"
        );
        assert_eq!(
            c.access_log(None, 0, 100).await.expect("log"),
            entries,
            "access log, {why}"
        );
        let v = c.verify_access_log().await.expect("verify");
        assert_eq!((v.entries, v.first_broken), (2, None), "{why}");
        assert_eq!(
            c.extras(user).await.expect("read"),
            Some(extras.clone()),
            "extras, {why}"
        );
    }
    assert_eq!(c.profile(user).await.expect("read"), None);
    assert_eq!(c.latest_audit_anchor().await.expect("read"), None);
}

/// Targeted upserts are journaled with the checkpoint block they were
/// made on: rolling back below that block puts back the values they
/// replaced (in the order they were made, interleaved with the blocks'
/// own changes), rolling back to it or above keeps them.
pub async fn rollback_undoes_upserts_made_above_it(c: &dyn CachePort) {
    let v = |name: &str| fixtures::patient(267_000, wallet(267_000), name);
    apply(
        c,
        1,
        vec![LedgerEvent::registration(
            v("Version One"),
            fixtures::registrar(),
        )],
    )
    .await;
    c.upsert_profile(&v("Version Two"), src(1))
        .await
        .expect("upsert between blocks");
    let r1 = record(267_000, 1, 267_001, "ECG", "ecg", date(2026, 1, 1));
    let r2 = MedicalRecord {
        created_at: Timestamp(1_760_000_000),
        ..record(267_000, 1, 267_001, "ECG repeat", "ecg", date(2026, 2, 1))
    };
    c.upsert_record(&r1, src(1)).await.expect("upsert record");
    apply(
        c,
        2,
        vec![
            LedgerEvent::ProfileUpdated(v("Version Three")),
            LedgerEvent::RecordCreated(r2.clone()),
        ],
    )
    .await;
    c.upsert_profile(&v("Version Four"), src(2))
        .await
        .expect("upsert after block 2");
    let untouched = grant(267_005, 267_006, Some(1_800_000_000));
    c.upsert_grant(&untouched, src(2))
        .await
        .expect("upsert grant");
    let later = record(267_005, 9, 267_001, "Later scan", "x-ray", date(2026, 5, 1));
    c.upsert_record(&later, src(2))
        .await
        .expect("upsert record");

    c.rollback_to(2).await.expect("rollback to the checkpoint");
    assert_eq!(
        c.profile(hh(267_000)).await.expect("read"),
        Some(v("Version Four")),
        "a rollback to the block an upsert was made on keeps it"
    );
    assert_eq!(
        c.grants_of_patient(hh(267_005)).await.expect("read"),
        vec![untouched.clone()]
    );

    c.rollback_to(1).await.expect("rollback");
    assert_eq!(
        c.profile(hh(267_000)).await.expect("read"),
        Some(v("Version Two")),
        "the value before block 2 changed it, the upsert made on block 1"
    );
    assert_eq!(
        c.record(r1.id).await.expect("read"),
        Some(r1.clone()),
        "a record upserted before the block that replaced it"
    );
    assert_eq!(
        c.grants_of_patient(hh(267_005)).await.expect("read"),
        vec![],
        "a row only an upsert made on block 2 wrote goes with block 2"
    );
    assert_eq!(c.record(later.id).await.expect("read"), None);

    c.rollback_to(0).await.expect("rollback to genesis");
    assert_eq!(
        c.profile(hh(267_000)).await.expect("read"),
        None,
        "the upsert made on block 1 goes with it, then the registration"
    );
    assert_eq!(c.record(r1.id).await.expect("read"), None);

    // With the checkpoint final there is nothing to roll back to: the
    // upsert is as permanent as the final block.
    let b3 = block(3, 0);
    c.apply_blocks(&[(b3, vec![])], 3)
        .await
        .expect("final block");
    c.upsert_grant(&untouched, src(3))
        .await
        .expect("upsert on a final block");
    c.rollback_to(3).await.expect("rollback to the final block");
    assert_eq!(
        c.grants_of_patient(hh(267_005)).await.expect("read"),
        vec![untouched]
    );
}

/// Pruned blocks cannot be rolled back; later ones still can.
pub async fn pruned_blocks_are_final(c: &dyn CachePort) {
    for n in 1..=4 {
        let p = fixtures::patient(270_000 + n as u32, wallet(270_000 + n), "Pruned Patient");
        apply(
            c,
            n,
            vec![LedgerEvent::registration(p, fixtures::registrar())],
        )
        .await;
    }
    assert_eq!(c.prune_journal(3).await.expect("prune"), 2);
    assert_eq!(
        c.journal(0, 10).await.expect("journal"),
        vec![block(3, 0), block(4, 0)]
    );
    let err = c.rollback_to(1).await.expect_err("below pruned");
    assert!(matches!(err, CacheError::Conflict(_)), "{err}");
    assert_eq!(
        c.counts().await.expect("counts").patients,
        4,
        "failed rollback changes nothing"
    );
    c.rollback_to(3).await.expect("rollback above pruned");
    assert_eq!(c.counts().await.expect("counts").patients, 3);
    assert_eq!(c.checkpoint().await.expect("checkpoint"), Some(block(3, 0)));
}

/// A batch of blocks `first..=last` on `fork`, block `n` registering the
/// patient `base + n`.
fn registrations(first: u64, last: u64, fork: u8, base: u32) -> Vec<(BlockRef, Vec<ChainEvent>)> {
    (first..=last)
        .map(|n| {
            let b = block(n, fork);
            let hh_number = base + n as u32;
            let p = fixtures::patient(hh_number, wallet(u64::from(hh_number)), "Batch Patient");
            (
                b,
                in_block(
                    &b,
                    vec![LedgerEvent::registration(p, fixtures::registrar())],
                ),
            )
        })
        .collect()
}

fn patient_hh(base: u32, n: u64) -> HhNumber {
    hh(base + n as u32)
}

/// A batch that fails in its middle (an event breaking a rule, or a block
/// breaking the linkage) leaves nothing of the batch: no rows, no journal
/// entries, no checkpoint move, no final block.
pub async fn apply_blocks_is_atomic(c: &dyn CachePort) {
    let base = 300_000;
    c.apply_blocks(&[], 10)
        .await
        .expect("an empty batch does nothing");
    assert_eq!(c.checkpoint().await.expect("checkpoint"), None);

    // Block 3 registers a doctor with block 1's patient's wallet.
    let mut batch = registrations(1, 5, 0, base);
    let b3 = block(3, 0);
    let clash = fixtures::doctor(base + 90, wallet(u64::from(base) + 1), "Dr. Clash");
    batch[2].1 = in_block(
        &b3,
        vec![LedgerEvent::registration(clash, fixtures::registrar())],
    );
    for finalized in [0, 2, 5] {
        let err = c
            .apply_blocks(&batch, finalized)
            .await
            .expect_err("wallet clash in block 3");
        assert!(matches!(err, CacheError::Conflict(_)), "clash: {err}");
    }
    // Block 4 of another fork does not link to block 3.
    let mut batch = registrations(1, 5, 0, base);
    batch[3].0 = block(4, 1);
    batch[3].1 = in_block(&batch[3].0, vec![]);
    let err = c
        .apply_blocks(&batch, 2)
        .await
        .expect_err("broken linkage in block 4");
    assert!(matches!(err, CacheError::Conflict(_)), "linkage: {err}");
    // Block 2 carries an event of block 1.
    let mut batch = registrations(1, 3, 0, base);
    batch[1].1 = batch[0].1.clone();
    let err = c
        .apply_blocks(&batch, 3)
        .await
        .expect_err("foreign event in block 2");
    assert!(
        matches!(err, CacheError::Invalid(_)),
        "foreign event: {err}"
    );

    assert_eq!(
        c.counts().await.expect("counts"),
        crate::CacheCounts::default(),
        "nothing of a failed batch remains"
    );
    assert_eq!(c.checkpoint().await.expect("checkpoint"), None);
    assert_eq!(c.journal(0, 10).await.expect("journal"), vec![]);
    c.rollback_to(0)
        .await
        .expect("a failed batch leaves no final block");
}

/// After a failed batch the cache resumes from where it was: the corrected
/// batch applies, and so does a single block after it.
pub async fn apply_blocks_resumes_after_a_failed_batch(c: &dyn CachePort) {
    let base = 310_000;
    c.apply_blocks(&registrations(1, 2, 0, base), 0)
        .await
        .expect("first batch");
    let mut bad = registrations(3, 5, 0, base);
    let b4 = block(4, 0);
    let clash = fixtures::doctor(base + 90, wallet(u64::from(base) + 2), "Dr. Clash");
    bad[1].1 = in_block(
        &b4,
        vec![LedgerEvent::registration(clash, fixtures::registrar())],
    );
    let err = c.apply_blocks(&bad, 4).await.expect_err("clash in block 4");
    assert!(matches!(err, CacheError::Conflict(_)), "{err}");
    assert_eq!(c.checkpoint().await.expect("checkpoint"), Some(block(2, 0)));
    assert_eq!(c.counts().await.expect("counts").patients, 2);
    assert_eq!(c.journal(0, 10).await.expect("journal").len(), 2);

    c.apply_blocks(&registrations(3, 5, 0, base), 4)
        .await
        .expect("the corrected batch");
    let b6 = block(6, 0);
    c.apply_block(&b6, &[])
        .await
        .expect("a single block after it");
    assert_eq!(c.checkpoint().await.expect("checkpoint"), Some(b6));
    assert_eq!(c.counts().await.expect("counts").patients, 5);
    for n in 1..=5 {
        assert!(
            c.profile(patient_hh(base, n))
                .await
                .expect("read")
                .is_some(),
            "patient of block {n}"
        );
    }
    assert_eq!(
        c.journal(0, 10).await.expect("journal"),
        (1..=6).map(|n| block(n, 0)).collect::<Vec<_>>()
    );
}

/// Rolling back below the highest final block of a batch is `Conflict` and
/// changes nothing; rolling back within the non-final part is exact.
pub async fn apply_blocks_final_blocks_cannot_be_rolled_back(c: &dyn CachePort) {
    let base = 320_000;
    let mut batch = registrations(1, 6, 0, base);
    // Block 5 (non-final) updates block 2's patient and grants a doctor
    // access; block 6 revokes it.
    let original = batch_patient(base, 2);
    let renamed = match original.clone() {
        Profile::Patient(mut p) => {
            p.name = Name::new("Renamed Patient").expect("name");
            Profile::Patient(p)
        }
        other => other,
    };
    let g = grant(base + 2, base + 1, None);
    let b5 = block(5, 0);
    let b6 = block(6, 0);
    let mut e5 = batch[4].1.clone();
    e5.extend(in_block(
        &b5,
        vec![
            LedgerEvent::ProfileUpdated(renamed.clone()),
            LedgerEvent::AccessGranted(g.clone()),
        ],
    ));
    batch[4].1 = reindex(&b5, e5);
    let mut e6 = batch[5].1.clone();
    e6.extend(in_block(
        &b6,
        vec![LedgerEvent::AccessRevoked {
            patient: g.patient,
            grantee: g.grantee,
            revoked_at: Timestamp(1_750_000_100),
        }],
    ));
    batch[5].1 = reindex(&b6, e6);
    c.apply_blocks(&batch, 4).await.expect("apply batch");
    assert_eq!(
        c.profile(hh(base + 2)).await.expect("read"),
        Some(renamed.clone())
    );

    for below in [0, 1, 3] {
        let err = c
            .rollback_to(below)
            .await
            .expect_err("rollback below the final block 4");
        assert!(matches!(err, CacheError::Conflict(_)), "to {below}: {err}");
    }
    assert_eq!(
        c.counts().await.expect("counts").patients,
        6,
        "a refused rollback changes nothing"
    );
    assert_eq!(c.checkpoint().await.expect("checkpoint"), Some(b6));
    assert_eq!(c.journal(0, 10).await.expect("journal").len(), 6);

    c.rollback_to(5).await.expect("rollback of block 6");
    let grants = c.grants_of_patient(hh(base + 2)).await.expect("grants");
    assert_eq!(grants, vec![g.clone()], "the revoke is undone exactly");
    c.rollback_to(4).await.expect("rollback to the final block");
    assert_eq!(c.counts().await.expect("counts").patients, 4);
    assert_eq!(
        c.profile(hh(base + 2)).await.expect("read"),
        Some(original),
        "the update is undone exactly"
    );
    assert_eq!(
        c.grants_of_patient(hh(base + 2)).await.expect("grants"),
        vec![]
    );
    assert_eq!(c.checkpoint().await.expect("checkpoint"), Some(block(4, 0)));
    assert_eq!(
        c.journal(0, 10).await.expect("journal"),
        (1..=4).map(|n| block(n, 0)).collect::<Vec<_>>(),
        "final blocks stay journaled"
    );
    let err = c.rollback_to(3).await.expect_err("still final");
    assert!(matches!(err, CacheError::Conflict(_)), "{err}");
}

/// The patient block `n` of [`registrations`] registers.
fn batch_patient(base: u32, n: u64) -> Profile {
    let hh_number = base + n as u32;
    fixtures::patient(hh_number, wallet(u64::from(hh_number)), "Batch Patient")
}

/// Renumbers the log indexes of a block's events.
fn reindex(block: &BlockRef, events: Vec<ChainEvent>) -> Vec<ChainEvent> {
    in_block(block, events.into_iter().map(|e| e.event).collect())
}

/// Batches of only non-final blocks, of final and non-final blocks, and
/// single blocks interleave; the final block only moves up (a later batch
/// with a lower `finalized`, or a prune below it, does not lower it).
pub async fn apply_blocks_mixes_final_and_non_final(c: &dyn CachePort) {
    let base = 330_000;
    c.apply_blocks(&registrations(1, 3, 0, base), 0)
        .await
        .expect("non-final batch");
    c.rollback_to(1)
        .await
        .expect("all of it can be rolled back");
    assert_eq!(c.counts().await.expect("counts").patients, 1);
    c.apply_blocks(&registrations(2, 3, 0, base), 0)
        .await
        .expect("re-apply");
    c.apply_blocks(&registrations(4, 8, 0, base), 6)
        .await
        .expect("final 4..=6, non-final 7..=8");
    let err = c.rollback_to(5).await.expect_err("below the final block 6");
    assert!(matches!(err, CacheError::Conflict(_)), "{err}");
    c.apply_blocks(&registrations(9, 10, 0, base), 2)
        .await
        .expect("a batch finalized below the final block");
    let err = c.rollback_to(5).await.expect_err("the final block stays 6");
    assert!(matches!(err, CacheError::Conflict(_)), "{err}");
    c.prune_journal(3)
        .await
        .expect("prune below the final block");
    let err = c
        .rollback_to(5)
        .await
        .expect_err("pruning does not lower the final block");
    assert!(matches!(err, CacheError::Conflict(_)), "{err}");
    let b11 = block(11, 0);
    c.apply_block(&b11, &[]).await.expect("a single block");
    c.rollback_to(6).await.expect("rollback to the final block");
    assert_eq!(c.counts().await.expect("counts").patients, 6);
    assert_eq!(c.checkpoint().await.expect("checkpoint"), Some(block(6, 0)));
    assert_eq!(
        c.journal(0, 20).await.expect("journal"),
        (3..=6).map(|n| block(n, 0)).collect::<Vec<_>>()
    );
    c.apply_blocks(&registrations(7, 8, 1, base + 50), 7)
        .await
        .expect_err("fork 1 does not link to block 6 of fork 0");
    let mut fork = registrations(7, 8, 1, base + 50);
    fork[0].0.parent_hash = block(6, 0).hash;
    fork[0].1 = in_block(
        &fork[0].0,
        fork[0].1.iter().map(|e| e.event.clone()).collect(),
    );
    c.apply_blocks(&fork, 7)
        .await
        .expect("another fork after the rollback");
    assert_eq!(c.counts().await.expect("counts").patients, 8);
    assert_eq!(c.checkpoint().await.expect("checkpoint"), Some(fork[1].0));
}

/// Re-applying a batch whose prefix is already applied skips that prefix
/// (idempotent) and applies the rest; a prefix on another fork is
/// `Conflict` and applies nothing.
pub async fn apply_blocks_skips_an_applied_prefix(c: &dyn CachePort) {
    let base = 340_000;
    c.apply_blocks(&registrations(1, 3, 0, base), 1)
        .await
        .expect("first batch");
    c.apply_blocks(&registrations(1, 3, 0, base), 3)
        .await
        .expect("the same batch again");
    c.rollback_to(1)
        .await
        .expect("re-applying does not finalize applied blocks");
    c.apply_blocks(&registrations(1, 3, 0, base), 1)
        .await
        .expect("re-apply after rollback");
    c.apply_blocks(&registrations(1, 5, 0, base), 1)
        .await
        .expect("an applied prefix and new blocks");
    assert_eq!(c.counts().await.expect("counts").patients, 5);
    assert_eq!(c.counts().await.expect("counts").journal, 5);
    c.apply_blocks(&registrations(1, 5, 0, base), 5)
        .await
        .expect("all applied: a no-op");
    assert_eq!(c.checkpoint().await.expect("checkpoint"), Some(block(5, 0)));

    let mut forked = registrations(1, 7, 0, base);
    forked[1].0 = block(2, 1);
    forked[1].1 = in_block(&forked[1].0, vec![]);
    let err = c
        .apply_blocks(&forked, 0)
        .await
        .expect_err("block 2 of another fork");
    assert!(matches!(err, CacheError::Conflict(_)), "{err}");
    assert_eq!(c.counts().await.expect("counts").patients, 5);
    assert_eq!(c.checkpoint().await.expect("checkpoint"), Some(block(5, 0)));
    c.rollback_to(1).await.expect("blocks 2..=5 are not final");
    assert_eq!(c.counts().await.expect("counts").patients, 1);
}

/// Records come newest test date first; grants by grantee; a doctor's
/// patients are those with active grants.
pub async fn reads_are_ordered(c: &dyn CachePort) {
    let r1 = record(
        280_000,
        1,
        280_009,
        "Old test",
        "lab-result",
        date(2025, 1, 1),
    );
    let r2 = record(
        280_000,
        2,
        280_008,
        "New test",
        "lab-result",
        date(2026, 1, 1),
    );
    let r3 = record(
        280_001,
        3,
        280_009,
        "Other patient",
        "x-ray",
        date(2025, 6, 1),
    );
    for r in [&r1, &r2, &r3] {
        c.upsert_record(r, src(1)).await.expect("upsert");
    }
    assert_eq!(
        c.records_of_patient(hh(280_000)).await.expect("read"),
        vec![r2.clone(), r1.clone()]
    );
    assert_eq!(
        c.records_by_creator(hh(280_009)).await.expect("read"),
        vec![r3, r1]
    );
    assert!(
        c.records_of_patient(hh(280_099))
            .await
            .expect("read")
            .is_empty()
    );

    let now = 1_760_000_000;
    for g in [
        grant(280_000, 280_008, None),
        grant(280_001, 280_008, Some(now - 1)),
        grant(280_002, 280_008, Some(now + 100)),
        AccessGrant {
            revoked_at: Some(Timestamp(now - 5)),
            ..grant(280_003, 280_008, None)
        },
        grant(280_000, 280_009, None),
    ] {
        c.upsert_grant(&g, src(1)).await.expect("upsert");
    }
    assert_eq!(
        c.patients_of_doctor(hh(280_008), Timestamp(now))
            .await
            .expect("read"),
        vec![hh(280_000), hh(280_002)]
    );
    let gs = c.grants_of_patient(hh(280_000)).await.expect("read");
    assert_eq!(
        gs.iter().map(|g| g.grantee).collect::<Vec<_>>(),
        vec![hh(280_008), hh(280_009)]
    );
}

/// Patient-name prefix and record searches give the reference answers.
pub async fn searches_agree(c: &dyn CachePort) {
    for (i, name) in [
        "Asha Rao",
        "asha Menon",
        "Ashok Kumar",
        "Bala Iyer",
        "ASHA Zed",
    ]
    .iter()
    .enumerate()
    {
        let n = 290_000 + i as u32;
        c.upsert_profile(&fixtures::patient(n, wallet(u64::from(n)), name), src(1))
            .await
            .expect("upsert");
    }
    c.upsert_profile(
        &fixtures::doctor(290_050, wallet(290_050), "Asha Doctor"),
        src(1),
    )
    .await
    .expect("upsert");
    let names = |v: Vec<crate::PatientProfile>| {
        v.into_iter()
            .map(|p| p.name.to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        names(c.search_patients("asha", 10).await.expect("search")),
        ["asha Menon", "Asha Rao", "ASHA Zed"],
        "case-insensitive prefix, by lowercase name, patients only"
    );
    assert_eq!(
        names(c.search_patients("ASH", 2).await.expect("search")),
        ["asha Menon", "Asha Rao"]
    );
    assert!(
        c.search_patients("zz", 10)
            .await
            .expect("search")
            .is_empty()
    );
    assert_eq!(c.search_patients("", 100).await.expect("search").len(), 5);

    let recs = [
        record(
            290_000,
            1,
            290_050,
            "Complete Blood Count",
            "lab-result",
            date(2026, 1, 10),
        ),
        record(
            290_000,
            2,
            290_050,
            "Chest X-ray",
            "x-ray",
            date(2026, 2, 10),
        ),
        record(
            290_001,
            3,
            290_050,
            "Blood glucose fasting",
            "lab-result",
            date(2026, 3, 10),
        ),
        record(290_001, 4, 290_050, "MRI knee", "MRI", date(2025, 12, 31)),
    ];
    for r in &recs {
        c.upsert_record(r, src(1)).await.expect("upsert");
    }
    let ids = |v: Vec<MedicalRecord>| v.into_iter().map(|r| r.id.serial()).collect::<Vec<_>>();
    let q = |f: fn(&mut RecordQuery)| {
        let mut q = RecordQuery {
            limit: 100,
            ..Default::default()
        };
        f(&mut q);
        q
    };
    assert_eq!(
        ids(c
            .search_records(&q(|q| q.record_type = Some("lab-result".into())))
            .await
            .expect("s")),
        [3, 1]
    );
    assert_eq!(
        ids(c
            .search_records(&q(|q| q.record_type = Some("mri".into())))
            .await
            .expect("s")),
        [4]
    );
    assert_eq!(
        ids(c
            .search_records(&q(|q| q.patient = Some(hh(290_000))))
            .await
            .expect("s")),
        [2, 1]
    );
    assert_eq!(
        ids(c
            .search_records(&q(|q| {
                q.date_from = Some(date(2026, 1, 10));
                q.date_to = Some(date(2026, 2, 10));
            }))
            .await
            .expect("s")),
        [2, 1],
        "date range is inclusive"
    );
    assert_eq!(
        ids(c
            .search_records(&q(|q| q.text = Some("blood".into())))
            .await
            .expect("s")),
        [3, 1]
    );
    assert_eq!(
        ids(c
            .search_records(&q(|q| q.text = Some("BLOOD count".into())))
            .await
            .expect("s")),
        [1]
    );
    assert_eq!(
        ids(c
            .search_records(&q(|q| q.text = Some("x-ray".into())))
            .await
            .expect("s")),
        [2]
    );
    assert!(
        c.search_records(&q(|q| q.text = Some("bloo".into())))
            .await
            .expect("s")
            .is_empty(),
        "whole words"
    );
    assert_eq!(
        ids(c
            .search_records(&q(|q| q.text = Some("pdf".into())))
            .await
            .expect("s"))
        .len(),
        4
    );
    assert_eq!(
        ids(c
            .search_records(&q(|q| {
                q.patient = Some(hh(290_001));
                q.text = Some("blood".into());
                q.record_type = Some("LAB-RESULT".into());
            }))
            .await
            .expect("s")),
        [3]
    );
    assert_eq!(
        ids(c
            .search_records(&RecordQuery {
                limit: 2,
                ..Default::default()
            })
            .await
            .expect("s")),
        [3, 2]
    );
}

/// Extras need a cached user, replace earlier ones, and survive profile
/// upserts.
pub async fn extras_are_db_only(c: &dyn CachePort) {
    let p = fixtures::patient(300_000, wallet(300_000), "Asha Rao");
    let extras = ProfileExtras {
        phone: Some(PhoneNumber::new("+1 555 010 9999").expect("phone")),
        emergency_contact: Some(crate::Line::new("Ravi Rao +15550108888").expect("line")),
        allergies: Some(Note::new("penicillin\nlatex").expect("note")),
        notes: None,
    };
    let err = c
        .set_extras(p.hh(), &extras)
        .await
        .expect_err("unknown user");
    assert!(matches!(err, CacheError::NotFound(_)), "{err}");
    c.upsert_profile(&p, src(1)).await.expect("upsert");
    assert_eq!(c.extras(p.hh()).await.expect("read"), None);
    c.set_extras(p.hh(), &ProfileExtras::default())
        .await
        .expect("set");
    c.set_extras(p.hh(), &extras).await.expect("replace");
    c.upsert_profile(&p, src(2)).await.expect("re-sync");
    assert_eq!(c.extras(p.hh()).await.expect("read"), Some(extras));
}

/// Notifications get ids, list newest first, and can be marked read.
pub async fn notifications_round_trip(c: &dyn CachePort) {
    let user = hh(310_000);
    let mk = |t: u64, title: &str| NewNotification {
        user,
        kind: NotificationKind::RecordCreated,
        title: Name::new(title).expect("title"),
        message: Note::new("A new lab result is available.").expect("note"),
        related_record: Some(crate::RecordId::new(user, t)),
        created_at: Timestamp(t),
    };
    let a = c.add_notification(&mk(100, "First")).await.expect("add");
    let b = c.add_notification(&mk(200, "Second")).await.expect("add");
    assert_ne!(a.id, b.id);
    assert!(!a.read);
    assert_eq!(
        c.notifications(user, false).await.expect("list"),
        vec![b.clone(), a.clone()]
    );
    c.mark_notification_read(b.id).await.expect("mark");
    c.mark_notification_read(b.id)
        .await
        .expect("mark is idempotent");
    assert_eq!(c.notifications(user, true).await.expect("list"), vec![a]);
    assert!(c.notifications(user, false).await.expect("list")[0].read);
    assert!(
        c.notifications(hh(310_001), false)
            .await
            .expect("list")
            .is_empty()
    );
    let err = c
        .mark_notification_read(999_999)
        .await
        .expect_err("unknown id");
    assert!(matches!(err, CacheError::NotFound(_)), "{err}");
}

/// Sessions are stored by token hash, unique, deletable and purgeable.
pub async fn sessions_round_trip(c: &dyn CachePort) {
    let mk = |token: &[u8], expires: u64| Session {
        token_hash: SessionTokenHash::of(token),
        hh: hh(320_000),
        wallet: wallet(320_000),
        created_at: Timestamp(1_000),
        expires_at: Timestamp(expires),
    };
    let live = mk(b"token-live", 5_000);
    let stale = mk(b"token-stale", 2_000);
    c.put_session(&live).await.expect("put");
    c.put_session(&stale).await.expect("put");
    let err = c.put_session(&live).await.expect_err("duplicate");
    assert!(matches!(err, CacheError::AlreadyExists(_)), "{err}");
    assert_eq!(
        c.session(live.token_hash).await.expect("read"),
        Some(live.clone())
    );
    assert_eq!(
        c.purge_expired_sessions(Timestamp(3_000))
            .await
            .expect("purge"),
        1
    );
    assert_eq!(c.session(stale.token_hash).await.expect("read"), None);
    assert!(c.delete_session(live.token_hash).await.expect("delete"));
    assert!(
        !c.delete_session(live.token_hash)
            .await
            .expect("delete again")
    );
    assert_eq!(
        c.session(SessionTokenHash::of(b"never"))
            .await
            .expect("read"),
        None
    );
}

/// A grant or session whose expiry equals `now` is expired, as on chain
/// (`block.timestamp < expiresAt` is active); one second later it is live.
pub async fn expiry_at_now_is_expired(c: &dyn CachePort) {
    let now = 1_760_000_000;
    for g in [
        grant(321_000, 321_009, Some(now - 1)),
        grant(321_001, 321_009, Some(now)),
        grant(321_002, 321_009, Some(now + 1)),
        grant(321_003, 321_009, None),
    ] {
        c.upsert_grant(&g, src(1)).await.expect("upsert");
    }
    let doctor = hh(321_009);
    assert_eq!(
        c.patients_of_doctor(doctor, Timestamp(now))
            .await
            .expect("read"),
        vec![hh(321_002), hh(321_003)],
        "expires_at == now is expired"
    );
    assert_eq!(
        c.patients_of_doctor(doctor, Timestamp(now - 1))
            .await
            .expect("read"),
        vec![hh(321_001), hh(321_002), hh(321_003)],
        "one second before, it is active"
    );

    let mk = |token: &[u8], expires: u64| Session {
        token_hash: SessionTokenHash::of(token),
        hh: hh(321_000),
        wallet: wallet(321_000),
        created_at: Timestamp(now - 100),
        expires_at: Timestamp(expires),
    };
    let at_now = mk(b"expires-now", now);
    let after = mk(b"expires-after", now + 1);
    c.put_session(&at_now).await.expect("put");
    c.put_session(&after).await.expect("put");
    assert_eq!(
        c.purge_expired_sessions(Timestamp(now - 1))
            .await
            .expect("purge"),
        0,
        "neither is expired a second before"
    );
    assert!(!at_now.is_valid(Timestamp(now)));
    assert_eq!(
        c.session(at_now.token_hash).await.expect("read"),
        Some(at_now.clone()),
        "session() returns an expired session until it is purged"
    );
    assert_eq!(
        c.purge_expired_sessions(Timestamp(now))
            .await
            .expect("purge"),
        1,
        "expires_at == now is purged"
    );
    assert_eq!(c.session(at_now.token_hash).await.expect("read"), None);
    assert_eq!(
        c.session(after.token_hash).await.expect("read"),
        Some(after)
    );
}

/// Every timestamp takes any `u64`, above `i64::MAX` included (the
/// contract accepts any `uint64` grant expiry): values round-trip, compare
/// with `now` as `u64`s do, order notifications, and survive rollback.
pub async fn timestamps_take_any_u64(c: &dyn CachePort) {
    const BIG: u64 = i64::MAX as u64 + 1;
    let forever = grant(322_000, 322_009, Some(u64::MAX));
    let past_sign = grant(322_001, 322_009, Some(BIG));
    c.upsert_grant(&forever, src(1))
        .await
        .expect("upsert u64::MAX expiry");
    let b1 = block(1, 0);
    c.apply_block(
        &b1,
        &in_block(&b1, vec![LedgerEvent::AccessGranted(past_sign.clone())]),
    )
    .await
    .expect("apply an expiry above i64::MAX");
    assert_eq!(
        c.grants_of_patient(hh(322_000)).await.expect("read"),
        vec![forever.clone()]
    );
    assert_eq!(
        c.grants_of_patient(hh(322_001)).await.expect("read"),
        vec![past_sign.clone()]
    );
    let doctor = hh(322_009);
    let patients = |now: u64| async move {
        c.patients_of_doctor(doctor, Timestamp(now))
            .await
            .expect("read")
    };
    assert_eq!(
        patients(1_760_000_000).await,
        vec![hh(322_000), hh(322_001)]
    );
    assert_eq!(
        patients(BIG - 1).await,
        vec![hh(322_000), hh(322_001)],
        "i64::MAX is before both"
    );
    assert_eq!(patients(BIG).await, vec![hh(322_000)], "expiry == now");
    assert_eq!(patients(u64::MAX - 1).await, vec![hh(322_000)]);
    assert!(patients(u64::MAX).await.is_empty());

    apply(
        c,
        2,
        vec![LedgerEvent::AccessRevoked {
            patient: forever.patient,
            grantee: forever.grantee,
            revoked_at: Timestamp(u64::MAX),
        }],
    )
    .await;
    assert_eq!(
        c.grants_of_patient(hh(322_000)).await.expect("read")[0].revoked_at,
        Some(Timestamp(u64::MAX))
    );
    c.rollback_to(1).await.expect("rollback");
    assert_eq!(
        c.grants_of_patient(hh(322_000)).await.expect("read"),
        vec![forever]
    );

    let r = MedicalRecord {
        created_at: Timestamp(u64::MAX),
        ..record(322_000, BIG + 5, 322_009, "ECG", "ecg", date(2026, 1, 1))
    };
    c.upsert_record(&r, src(2)).await.expect("upsert record");
    assert_eq!(c.record(r.id).await.expect("read"), Some(r));

    let anchor = AuditAnchor {
        digest: B256::repeat_byte(3),
        last_seq: 1,
        anchored_at: Timestamp(u64::MAX),
    };
    apply(c, 3, vec![LedgerEvent::AuditAnchored(anchor)]).await;
    assert_eq!(c.latest_audit_anchor().await.expect("read"), Some(anchor));

    let session = Session {
        token_hash: SessionTokenHash::of(b"forever"),
        hh: hh(322_000),
        wallet: wallet(322_000),
        created_at: Timestamp(BIG),
        expires_at: Timestamp(u64::MAX),
    };
    c.put_session(&session).await.expect("put");
    assert_eq!(
        c.purge_expired_sessions(Timestamp(u64::MAX - 1))
            .await
            .expect("purge"),
        0
    );
    assert_eq!(
        c.session(session.token_hash).await.expect("read"),
        Some(session.clone())
    );
    assert_eq!(
        c.purge_expired_sessions(Timestamp(u64::MAX))
            .await
            .expect("purge"),
        1
    );

    let user = hh(322_000);
    let note = |t: u64| NewNotification {
        user,
        kind: NotificationKind::RecordCreated,
        title: Name::new("New record").expect("title"),
        message: Note::new("A new record is available.").expect("note"),
        related_record: None,
        created_at: Timestamp(t),
    };
    let big = c.add_notification(&note(u64::MAX)).await.expect("add");
    let small = c.add_notification(&note(1_000)).await.expect("add");
    let mid = c.add_notification(&note(BIG)).await.expect("add");
    assert_eq!(
        c.notifications(user, false).await.expect("list"),
        vec![big, mid, small],
        "newest first across i64::MAX"
    );

    let entry = NewAccessLogEntry {
        at: Timestamp(u64::MAX),
        actor: hh(322_009),
        patient: user,
        record: None,
        action: AccessAction::ViewRecord,
        allowed: true,
    };
    let linked = c.append_access_log(&entry).await.expect("append");
    assert_eq!(
        c.access_log(None, 0, 10).await.expect("log"),
        vec![linked.clone()]
    );
    assert_eq!(c.access_log_digest(1).await.expect("digest"), linked.hash);
}

/// A record whose patient is not the one its id embeds
/// (`record-<HH>-<serial>`) is `Invalid`, by upsert or in a block (which
/// then leaves no trace).
pub async fn records_belong_to_the_patient_of_their_id(c: &dyn CachePort) {
    let good = record(323_000, 1, 323_009, "ECG", "ecg", date(2026, 1, 1));
    let stray = MedicalRecord {
        patient: hh(323_001),
        ..good.clone()
    };
    let err = c
        .upsert_record(&stray, src(1))
        .await
        .expect_err("patient differs from the id's");
    assert!(matches!(err, CacheError::Invalid(_)), "{err}");
    let b1 = block(1, 0);
    let err = c
        .apply_block(
            &b1,
            &in_block(
                &b1,
                vec![
                    LedgerEvent::RecordCreated(good.clone()),
                    LedgerEvent::RecordCreated(stray),
                ],
            ),
        )
        .await
        .expect_err("patient differs from the id's");
    assert!(matches!(err, CacheError::Invalid(_)), "{err}");
    assert_eq!(c.record(good.id).await.expect("read"), None, "no trace");
    assert!(
        c.records_of_patient(hh(323_001))
            .await
            .expect("read")
            .is_empty()
    );
    assert_eq!(c.checkpoint().await.expect("checkpoint"), None);
    c.upsert_record(&good, src(1)).await.expect("upsert");
    assert_eq!(c.record(good.id).await.expect("read"), Some(good));
}

/// Appends link by hash from seq 1; verification passes; digests are the
/// entry hashes; filters and paging work.
pub async fn access_log_is_hash_chained(c: &dyn CachePort) {
    assert_eq!(
        c.verify_access_log().await.expect("verify").first_broken,
        None
    );
    let mut last = B256::ZERO;
    for i in 1..=6u64 {
        let entry = NewAccessLogEntry {
            at: Timestamp(1_750_000_000 + i),
            actor: hh(330_001),
            patient: hh(if i % 2 == 0 { 330_000 } else { 330_002 }),
            record: (i % 3 == 0).then(|| crate::RecordId::new(hh(330_000), i)),
            action: AccessAction::ReadContent,
            allowed: i != 4,
        };
        let linked = c.append_access_log(&entry).await.expect("append");
        assert_eq!(
            (linked.seq, linked.prev_hash, &linked.entry),
            (i, last, &entry)
        );
        assert!(linked.is_self_consistent());
        last = linked.hash;
    }
    let v = c.verify_access_log().await.expect("verify");
    assert_eq!((v.entries, v.first_broken), (6, None));
    assert_eq!(c.access_log_digest(6).await.expect("digest"), last);
    let err = c.access_log_digest(7).await.expect_err("beyond the end");
    assert!(matches!(err, CacheError::NotFound(_)), "{err}");
    let mine = c.access_log(Some(hh(330_000)), 0, 100).await.expect("list");
    assert_eq!(mine.iter().map(|e| e.seq).collect::<Vec<_>>(), [2, 4, 6]);
    let page = c.access_log(None, 2, 3).await.expect("list");
    assert_eq!(page.iter().map(|e| e.seq).collect::<Vec<_>>(), [3, 4, 5]);
    assert_eq!(c.counts().await.expect("counts").access_log, 6);
}

/// Verification checks the latest anchored digest: an anchor of the real
/// entry holds; one whose digest is not entry `last_seq`'s hash is reported
/// at `last_seq`; one beyond the log's end at the first missing seq; and
/// rolling the bad anchors back restores a clean verification.
pub async fn access_log_is_checked_against_the_anchor(c: &dyn CachePort) {
    let append = |i: u64| NewAccessLogEntry {
        at: Timestamp(1_750_000_000 + i),
        actor: hh(340_001),
        patient: hh(340_000),
        record: None,
        action: AccessAction::ViewRecord,
        allowed: true,
    };
    for i in 1..=4 {
        c.append_access_log(&append(i)).await.expect("append");
    }
    let anchor = |digest, last_seq| {
        LedgerEvent::AuditAnchored(AuditAnchor {
            digest,
            last_seq,
            anchored_at: Timestamp(1_750_000_500 + last_seq),
        })
    };
    let digest = c.access_log_digest(4).await.expect("digest");
    apply(c, 1, vec![anchor(digest, 4)]).await;
    let v = c.verify_access_log().await.expect("verify");
    assert_eq!(
        (v.entries, v.first_broken),
        (4, None),
        "a true anchor holds"
    );
    for i in 5..=6 {
        c.append_access_log(&append(i)).await.expect("append");
    }
    let v = c.verify_access_log().await.expect("verify");
    assert_eq!(
        (v.entries, v.first_broken),
        (6, None),
        "entries after the anchor are checked by the chain alone"
    );

    let wrong = B256::repeat_byte(0xee);
    assert_ne!(c.access_log_digest(6).await.expect("digest"), wrong);
    apply(c, 2, vec![anchor(wrong, 6)]).await;
    let v = c.verify_access_log().await.expect("verify");
    assert_eq!(
        (v.entries, v.first_broken),
        (6, Some(6)),
        "an anchor that is not entry 6's hash breaks the log at 6"
    );

    apply(c, 3, vec![anchor(wrong, 9)]).await;
    let v = c.verify_access_log().await.expect("verify");
    assert_eq!(
        (v.entries, v.first_broken),
        (6, Some(7)),
        "an anchor beyond the end reports the first missing seq"
    );

    c.rollback_to(1).await.expect("rollback");
    let v = c.verify_access_log().await.expect("verify");
    assert_eq!(
        (v.entries, v.first_broken),
        (6, None),
        "rolling back restores the true anchor"
    );
}
