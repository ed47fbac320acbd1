//! Conformance of the reads and writes drift verification and repair use:
//! batch lookups by key, key walks in key order, and the removals and
//! anchor upsert of a repair.

use super::{apply, grant, hh, record, src, wallet};
use crate::testing::fixtures::{self, date};
use crate::{
    AccessAction, AuditAnchor, B256, CachePort, HhNumber, LedgerEvent, NewAccessLogEntry, RecordId,
    Timestamp,
};

/// Batch lookups return exactly the cached rows among the keys asked for,
/// ascending by key, whatever the order, duplicates and uncached keys in
/// the request; an empty request is an empty answer.
pub async fn batch_lookups_return_cached_rows(c: &dyn CachePort) {
    let p1 = fixtures::patient(450_002, wallet(450_002), "Second Patient");
    let p2 = fixtures::doctor(450_001, wallet(450_001), "First Doctor");
    let r1 = record(450_002, 7, 450_001, "X-Ray", "Imaging", date(2024, 5, 6));
    let r2 = record(450_002, 3, 450_001, "MRI", "Imaging", date(2024, 5, 7));
    let g1 = grant(450_002, 450_001, Some(1_900_000_000));
    let g2 = grant(450_002, 450_003, None);
    apply(
        c,
        1,
        vec![
            LedgerEvent::registration(p1.clone(), fixtures::registrar()),
            LedgerEvent::registration(p2.clone(), fixtures::registrar()),
            LedgerEvent::RecordCreated(r1.clone()),
            LedgerEvent::RecordCreated(r2.clone()),
        ],
    )
    .await;
    c.upsert_grant(&g1, src(1)).await.expect("grant");
    c.upsert_grant(&g2, src(1)).await.expect("grant");

    let unknown = hh(450_999);
    assert_eq!(
        c.profiles_by_hh(&[p1.hh(), unknown, p2.hh(), p1.hh()])
            .await
            .expect("profiles by HH number"),
        vec![p2.clone(), p1.clone()],
        "profiles_by_hh: the cached ones, ascending"
    );
    let missing_id = RecordId::new(hh(450_002), 99);
    assert_eq!(
        c.records_by_id(&[r1.id, missing_id, r2.id])
            .await
            .expect("records by id"),
        vec![r2.clone(), r1.clone()],
        "records_by_id: the indexed ones, ascending"
    );
    assert_eq!(
        c.grants_by_pair(&[
            (g2.patient, g2.grantee),
            (unknown, g1.grantee),
            (g1.patient, g1.grantee)
        ])
        .await
        .expect("grants by pair"),
        vec![g1, g2],
        "grants_by_pair: the cached ones, ascending"
    );
    assert!(c.profiles_by_hh(&[]).await.expect("none").is_empty());
    assert!(c.records_by_id(&[]).await.expect("none").is_empty());
    assert!(c.grants_by_pair(&[]).await.expect("none").is_empty());
}

/// Key walks page through every cached key once, ascending, from after
/// the cursor; record ids order by patient, then serial, serials above
/// `i64::MAX` included.
pub async fn key_walks_page_in_key_order(c: &dyn CachePort) {
    let hhs = [460_005u32, 460_001, 460_003, 460_002, 460_004];
    for n in hhs {
        let p = fixtures::patient(n, wallet(u64::from(n)), "Walked Patient");
        c.upsert_profile(&p, src(1)).await.expect("profile");
    }
    let serials = [u64::MAX, 5, i64::MAX as u64 + 1, 0, 42];
    for (i, s) in serials.iter().enumerate() {
        let patient = if i % 2 == 0 { 460_002 } else { 460_001 };
        // Serials beyond the helper's range get their id set directly.
        let r = crate::MedicalRecord {
            id: RecordId::new(hh(patient), *s),
            ..record(
                patient,
                i as u64,
                460_100,
                "Blood Test",
                "Lab",
                date(2024, 1, 2),
            )
        };
        c.upsert_record(&r, src(1)).await.expect("record");
    }
    for (p, g) in [(460_002, 460_101), (460_001, 460_102), (460_001, 460_101)] {
        c.upsert_grant(&grant(p, g, None), src(1))
            .await
            .expect("grant");
    }

    let mut sorted: Vec<HhNumber> = hhs.iter().map(|n| hh(*n)).collect();
    sorted.sort();
    let mut walked = Vec::new();
    let mut after = None;
    loop {
        let page = c.profile_keys(after, 2).await.expect("profile keys");
        assert!(page.len() <= 2, "profile_keys honours its limit");
        let Some(last) = page.last().copied() else {
            break;
        };
        walked.extend(page);
        after = Some(last);
    }
    assert_eq!(walked, sorted, "profile_keys walks every HH number once");
    assert_eq!(
        c.profile_keys(Some(hh(460_003)), 10).await.expect("keys"),
        vec![hh(460_004), hh(460_005)],
        "profile_keys starts after the cursor"
    );

    let mut ids: Vec<RecordId> = serials
        .iter()
        .enumerate()
        .map(|(i, s)| RecordId::new(hh(if i % 2 == 0 { 460_002 } else { 460_001 }), *s))
        .collect();
    ids.sort();
    let mut walked = Vec::new();
    let mut after = None;
    loop {
        let page = c.record_keys(after, 2).await.expect("record keys");
        let Some(last) = page.last().copied() else {
            break;
        };
        walked.extend(page);
        after = Some(last);
    }
    assert_eq!(walked, ids, "record_keys walks every id once, in id order");

    let grants = c.grant_keys(None, 10).await.expect("grant keys");
    assert_eq!(
        grants,
        vec![
            (hh(460_001), hh(460_101)),
            (hh(460_001), hh(460_102)),
            (hh(460_002), hh(460_101)),
        ],
        "grant_keys in (patient, grantee) order"
    );
    assert_eq!(
        c.grant_keys(Some((hh(460_001), hh(460_102))), 10)
            .await
            .expect("grant keys"),
        vec![(hh(460_002), hh(460_101))],
        "grant_keys starts after the cursor"
    );
}

/// `remove_grant` removes one grant and says whether it was there; the
/// audit anchor is upserted (idempotently) and removed; the access log and
/// other rows stay.
pub async fn repair_writes_touch_one_row(c: &dyn CachePort) {
    let keep = grant(470_001, 470_101, None);
    let gone = grant(470_001, 470_102, Some(1_900_000_000));
    c.upsert_grant(&keep, src(1)).await.expect("grant");
    c.upsert_grant(&gone, src(1)).await.expect("grant");
    let logged = c
        .append_access_log(&NewAccessLogEntry {
            at: Timestamp(1_750_000_000),
            actor: hh(470_101),
            patient: hh(470_001),
            record: None,
            action: AccessAction::ViewProfile,
            allowed: true,
        })
        .await
        .expect("access log");

    assert!(
        c.remove_grant(gone.patient, gone.grantee)
            .await
            .expect("remove")
    );
    assert!(
        !c.remove_grant(gone.patient, gone.grantee)
            .await
            .expect("again")
    );
    assert_eq!(
        c.grants_of_patient(hh(470_001)).await.expect("grants"),
        vec![keep]
    );

    let anchor = AuditAnchor {
        digest: B256::repeat_byte(0x5a),
        last_seq: 1,
        anchored_at: Timestamp(1_750_000_100),
    };
    c.upsert_audit_anchor(&anchor, src(2))
        .await
        .expect("anchor");
    c.upsert_audit_anchor(&anchor, src(2)).await.expect("again");
    assert_eq!(c.latest_audit_anchor().await.expect("anchor"), Some(anchor));
    let later = AuditAnchor {
        last_seq: 2,
        ..anchor
    };
    c.upsert_audit_anchor(&later, src(3))
        .await
        .expect("replace");
    assert_eq!(c.latest_audit_anchor().await.expect("anchor"), Some(later));
    assert!(c.remove_audit_anchor().await.expect("remove anchor"));
    assert!(!c.remove_audit_anchor().await.expect("again"));
    assert_eq!(c.latest_audit_anchor().await.expect("anchor"), None);
    assert_eq!(
        c.access_log(None, 0, 10).await.expect("access log"),
        vec![logged],
        "the access log is DB-only: repair writes leave it"
    );
}
