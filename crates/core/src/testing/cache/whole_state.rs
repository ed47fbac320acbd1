//! Conformance of the whole-state writes: a reorg's branch switch, a full
//! sync's snapshot, and the removal of rows whose chain entry is gone.

use super::{apply, block, grant, hh, in_block, record, wallet};
use crate::testing::fixtures::{self, date};
use crate::{
    AccessAction, AuditAnchor, B256, BlockRef, CacheError, CachePort, ChainEvent, ChainSnapshot,
    LedgerEvent, NewAccessLogEntry, Note, Profile, ProfileExtras, Timestamp,
};

/// Blocks `first..=last` on `fork`, block `n` registering patient
/// `base + n`; the first block's parent is `parent`.
pub(super) fn branch(
    first: u64,
    last: u64,
    fork: u8,
    base: u32,
    parent: &BlockRef,
) -> Vec<(BlockRef, Vec<ChainEvent>)> {
    (first..=last)
        .map(|n| {
            let mut b = block(n, fork);
            if n == first {
                b.parent_hash = parent.hash;
            }
            (b, in_block(&b, vec![registration(base, n)]))
        })
        .collect()
}

fn registration(base: u32, n: u64) -> LedgerEvent {
    let hh_number = base + n as u32;
    LedgerEvent::registration(
        fixtures::patient(hh_number, wallet(u64::from(hh_number)), "Branch Patient"),
        fixtures::registrar(),
    )
}

async fn cached(c: &dyn CachePort, base: u32, n: u64) -> bool {
    c.profile(hh(base + n as u32))
        .await
        .expect("read profile")
        .is_some()
}

/// `switch_branch` replaces the blocks above the fork point with the new
/// branch in one step; a refused switch (a rule broken in the new branch, a
/// block not above the fork point, a fork point below the final block)
/// leaves the old branch applied, untouched.
pub async fn switch_branch_swaps_branches_atomically(c: &dyn CachePort) {
    let (old, new) = (400_000, 410_000);
    let genesis = block(0, 0);
    c.apply_blocks(&branch(1, 5, 0, old, &genesis), 1)
        .await
        .expect("old branch");
    let fork_point = block(2, 0);
    let new_branch = branch(3, 6, 1, new, &fork_point);
    c.switch_branch(2, &new_branch, 1)
        .await
        .expect("switch to the new branch");
    for n in 1..=2 {
        assert!(cached(c, old, n).await, "block {n} below the fork stays");
    }
    for n in 3..=5 {
        assert!(!cached(c, old, n).await, "old block {n} is undone");
    }
    for n in 3..=6 {
        assert!(cached(c, new, n).await, "new block {n} is applied");
    }
    assert_eq!(
        c.checkpoint().await.expect("checkpoint"),
        Some(new_branch[3].0)
    );
    let journal: Vec<u64> = c
        .journal(0, 10)
        .await
        .expect("journal")
        .iter()
        .map(|b| b.number)
        .collect();
    assert_eq!(journal, vec![1, 2, 3, 4, 5, 6]);
    assert_eq!(
        c.final_block().await.expect("final block"),
        Some(block(1, 0)),
        "block 1 was applied as final"
    );

    // A third branch whose block 5 registers a doctor with the wallet of
    // the patient of block 1: refused, and the second branch stays.
    let third = 420_000;
    let mut bad = branch(4, 6, 2, third, &new_branch[0].0);
    let clash = fixtures::doctor(third + 90, wallet(u64::from(old) + 1), "Dr. Clash");
    bad[1].1 = in_block(
        &bad[1].0,
        vec![LedgerEvent::registration(clash, fixtures::registrar())],
    );
    let err = c
        .switch_branch(3, &bad, 1)
        .await
        .expect_err("wallet clash in the new branch");
    assert!(matches!(err, CacheError::Conflict(_)), "clash: {err}");
    let err = c
        .switch_branch(3, &branch(3, 4, 2, third, &new_branch[0].0), 1)
        .await
        .expect_err("block 3 is not above fork point 3");
    assert!(matches!(err, CacheError::Invalid(_)), "at the fork: {err}");
    let err = c
        .switch_branch(0, &branch(1, 2, 2, third, &genesis), 1)
        .await
        .expect_err("block 1 is final");
    assert!(matches!(err, CacheError::Conflict(_)), "below final: {err}");
    for n in 3..=6 {
        assert!(cached(c, new, n).await, "new block {n} still applied");
    }
    for n in 4..=6 {
        assert!(!cached(c, third, n).await, "nothing of a refused switch");
    }
    assert_eq!(
        c.checkpoint().await.expect("checkpoint"),
        Some(new_branch[3].0)
    );
}

/// `replace_chain_state` installs a snapshot: rows it lacks are gone, its
/// rows read back, the journal is empty, the checkpoint is its block and
/// final, DB-only data stays, and blocks apply on top of it. A snapshot
/// breaking a rule changes nothing.
pub async fn replace_chain_state_installs_a_snapshot(c: &dyn CachePort) {
    let stale = fixtures::patient(430_001, wallet(430_001), "Stale Patient");
    let kept = fixtures::patient(430_002, wallet(430_002), "Kept Patient");
    let doctor = fixtures::doctor(430_100, wallet(430_100), "Dr. Kept");
    let stale_record = record(430_001, 1, 430_100, "Old Scan", "MRI", date(2024, 1, 2));
    apply(
        c,
        1,
        vec![
            LedgerEvent::registration(stale.clone(), fixtures::registrar()),
            LedgerEvent::registration(kept.clone(), fixtures::registrar()),
            LedgerEvent::registration(doctor.clone(), fixtures::registrar()),
            LedgerEvent::RecordCreated(stale_record.clone()),
            LedgerEvent::AccessGranted(grant(430_001, 430_100, None)),
        ],
    )
    .await;
    let extras = ProfileExtras {
        notes: Some(Note::new("kept through a full sync").expect("note")),
        ..Default::default()
    };
    c.set_extras(stale.hh(), &extras).await.expect("extras");
    let entry = c
        .append_access_log(&NewAccessLogEntry {
            at: Timestamp(1_750_000_000),
            actor: doctor.hh(),
            patient: stale.hh(),
            record: Some(stale_record.id),
            action: AccessAction::ReadContent,
            allowed: true,
        })
        .await
        .expect("access log");

    let Profile::Patient(mut renamed) = kept.clone() else {
        unreachable!("fixtures::patient makes a patient")
    };
    renamed.name = crate::Name::new("Kept Patient Renamed").expect("name");
    let fresh_record = record(430_002, 7, 430_100, "Blood Panel", "Lab", date(2025, 3, 4));
    let anchor = AuditAnchor {
        digest: B256::repeat_byte(9),
        last_seq: 1,
        anchored_at: Timestamp(1_750_000_100),
    };
    let snapshot = ChainSnapshot {
        profiles: vec![Profile::Patient(renamed.clone()), doctor.clone()],
        records: vec![fresh_record.clone()],
        grants: vec![grant(430_002, 430_100, Some(1_900_000_000))],
        anchor: Some(anchor),
    };
    let at = block(40, 0);

    // Refused snapshots first: nothing of them shows.
    let twice = ChainSnapshot {
        profiles: vec![doctor.clone(), doctor.clone()],
        ..snapshot.clone()
    };
    let err = c
        .replace_chain_state(&at, &twice)
        .await
        .expect_err("one HH number twice");
    assert!(matches!(err, CacheError::Conflict(_)), "twice: {err}");
    let mut wrong_patient = fresh_record.clone();
    wrong_patient.patient = stale.hh();
    let foreign = ChainSnapshot {
        records: vec![wrong_patient],
        ..snapshot.clone()
    };
    let err = c
        .replace_chain_state(&at, &foreign)
        .await
        .expect_err("a record of another patient");
    assert!(matches!(err, CacheError::Invalid(_)), "foreign: {err}");
    assert!(c.profile(stale.hh()).await.expect("read").is_some());
    assert_eq!(c.checkpoint().await.expect("checkpoint"), Some(block(1, 0)));

    c.replace_chain_state(&at, &snapshot)
        .await
        .expect("install the snapshot");
    assert_eq!(c.profile(stale.hh()).await.expect("read"), None);
    assert_eq!(
        c.profile(kept.hh()).await.expect("read"),
        Some(Profile::Patient(renamed))
    );
    assert_eq!(c.record(stale_record.id).await.expect("read"), None);
    assert_eq!(
        c.record(fresh_record.id).await.expect("read"),
        Some(fresh_record)
    );
    assert_eq!(
        c.grants_of_patient(stale.hh()).await.expect("grants"),
        vec![]
    );
    assert_eq!(
        c.grants_of_patient(kept.hh()).await.expect("grants"),
        vec![grant(430_002, 430_100, Some(1_900_000_000))]
    );
    assert_eq!(c.latest_audit_anchor().await.expect("anchor"), Some(anchor));
    assert_eq!(c.checkpoint().await.expect("checkpoint"), Some(at));
    assert_eq!(c.journal(0, 100).await.expect("journal"), vec![]);
    assert_eq!(c.final_block().await.expect("final block"), Some(at));
    let err = c
        .rollback_to(39)
        .await
        .expect_err("the snapshot's block is final");
    assert!(matches!(err, CacheError::Conflict(_)), "rollback: {err}");
    assert_eq!(
        c.extras(stale.hh()).await.expect("extras"),
        Some(extras),
        "DB-only data stays"
    );
    assert_eq!(
        c.access_log(None, 0, 10).await.expect("access log"),
        vec![entry]
    );

    // Incremental sync continues on top of the snapshot.
    let mut next = block(41, 0);
    next.parent_hash = at.hash;
    let late = fixtures::patient(430_003, wallet(430_003), "Late Patient");
    c.apply_block(
        &next,
        &in_block(
            &next,
            vec![LedgerEvent::registration(
                late.clone(),
                fixtures::registrar(),
            )],
        ),
    )
    .await
    .expect("a block after the snapshot");
    assert_eq!(c.profile(late.hh()).await.expect("read"), Some(late));
    c.rollback_to(40).await.expect("back to the snapshot");
    assert_eq!(c.checkpoint().await.expect("checkpoint"), Some(at));
}

/// `remove_profile` and `remove_record` remove one row each and say
/// whether it was there; other rows and DB-only data stay.
pub async fn removals_remove_one_row(c: &dyn CachePort) {
    let p = fixtures::patient(440_001, wallet(440_001), "Gone Patient");
    let other = fixtures::patient(440_002, wallet(440_002), "Other Patient");
    let r = record(440_001, 1, 440_100, "X-Ray", "Imaging", date(2024, 5, 6));
    let r2 = record(440_002, 2, 440_100, "X-Ray", "Imaging", date(2024, 5, 7));
    apply(
        c,
        1,
        vec![
            LedgerEvent::registration(p.clone(), fixtures::registrar()),
            LedgerEvent::registration(other.clone(), fixtures::registrar()),
            LedgerEvent::RecordCreated(r.clone()),
            LedgerEvent::RecordCreated(r2.clone()),
        ],
    )
    .await;
    let extras = ProfileExtras {
        notes: Some(Note::new("stays").expect("note")),
        ..Default::default()
    };
    c.set_extras(p.hh(), &extras).await.expect("extras");
    assert!(c.remove_profile(p.hh()).await.expect("remove"));
    assert!(!c.remove_profile(p.hh()).await.expect("remove again"));
    assert_eq!(c.profile(p.hh()).await.expect("read"), None);
    assert_eq!(c.profile(other.hh()).await.expect("read"), Some(other));
    assert_eq!(c.extras(p.hh()).await.expect("extras"), Some(extras));
    assert!(c.remove_record(r.id).await.expect("remove"));
    assert!(!c.remove_record(r.id).await.expect("remove again"));
    assert_eq!(c.record(r.id).await.expect("read"), None);
    assert_eq!(c.record(r2.id).await.expect("read"), Some(r2));
}
