//! Conformance of the initial backfill mode: searches refuse with
//! `IndexBuilding` while it is on, every other read and write keeps its
//! meaning, and leaving it makes searches answer for every row written,
//! removed or rolled back in the mode.

use super::{block, hh, in_block, record, wallet};
use crate::testing::fixtures::{self, date};
use crate::{BlockRef, CacheError, CachePort, ChainEvent, LedgerEvent, MedicalRecord, RecordQuery};

fn text(words: &str) -> RecordQuery {
    RecordQuery {
        text: Some(words.into()),
        limit: 10,
        ..RecordQuery::default()
    }
}

async fn found(c: &dyn CachePort, words: &str) -> Vec<MedicalRecord> {
    c.search_records(&text(words))
        .await
        .expect("search records")
}

fn registered(p: crate::Profile) -> LedgerEvent {
    LedgerEvent::registration(p, fixtures::registrar())
}

fn at(n: u64, events: Vec<LedgerEvent>) -> (BlockRef, Vec<ChainEvent>) {
    let b = block(n, 0);
    (b, in_block(&b, events))
}

/// In the mode searches are `IndexBuilding` and other reads answer; blocks,
/// removals and rollbacks apply; leaving it (twice is fine) makes searches
/// see exactly the rows there are, and writes after it are searchable.
pub async fn backfill_mode_refuses_searches_until_it_ends(c: &dyn CachePort) {
    let (early, late, doctor) = (450_001, 450_002, 450_100);
    let r1 = record(early, 1, doctor, "Early Scan", "MRI", date(2024, 1, 2));
    let r2 = record(late, 2, doctor, "Late Xray", "XRAY", date(2024, 2, 3));
    let r3 = record(early, 3, doctor, "Undone Scan", "MRI", date(2024, 3, 4));
    let r4 = record(late, 4, doctor, "After Scan", "MRI", date(2024, 4, 5));
    assert!(!c.in_backfill_mode().await.expect("mode"), "off at first");
    c.apply_blocks(
        &[at(
            1,
            vec![
                registered(fixtures::patient(early, wallet(450_001), "Mode Early")),
                registered(fixtures::doctor(doctor, wallet(450_100), "Dr. Mode")),
                LedgerEvent::RecordCreated(r1.clone()),
            ],
        )],
        1,
    )
    .await
    .expect("block 1");

    c.begin_backfill_mode().await.expect("begin");
    c.begin_backfill_mode().await.expect("begin again");
    assert!(c.in_backfill_mode().await.expect("mode"), "on");
    let err = c
        .search_records(&text("scan"))
        .await
        .expect_err("record search in the mode");
    assert!(
        matches!(err, CacheError::IndexBuilding(_)),
        "records: {err}"
    );
    let err = c
        .search_patients("mode", 10)
        .await
        .expect_err("patient search in the mode");
    assert!(
        matches!(err, CacheError::IndexBuilding(_)),
        "patients: {err}"
    );
    assert!(c.profile(hh(early)).await.expect("profile").is_some());
    assert_eq!(
        c.records_of_patient(hh(early)).await.expect("records"),
        vec![r1.clone()]
    );

    // Writes in the mode: a block, a removal and a rolled-back block.
    c.apply_blocks(
        &[
            at(
                2,
                vec![
                    registered(fixtures::patient(late, wallet(450_002), "Mode Late")),
                    LedgerEvent::RecordCreated(r2.clone()),
                ],
            ),
            at(3, vec![LedgerEvent::RecordCreated(r3.clone())]),
        ],
        1,
    )
    .await
    .expect("blocks 2 and 3 in the mode");
    assert!(
        c.remove_record(r1.id).await.expect("remove"),
        "r1 was there"
    );
    c.rollback_to(2).await.expect("roll back block 3");
    assert_eq!(
        c.records_by_creator(hh(doctor)).await.expect("by creator"),
        vec![r2.clone()],
        "ordered reads answer in the mode"
    );

    c.end_backfill_mode().await.expect("end");
    c.end_backfill_mode().await.expect("end again");
    assert!(!c.in_backfill_mode().await.expect("mode"), "off again");
    assert_eq!(found(c, "scan").await, vec![], "removed and undone rows");
    assert_eq!(found(c, "xray").await, vec![r2.clone()]);
    let names: Vec<String> = c
        .search_patients("mode", 10)
        .await
        .expect("patients")
        .into_iter()
        .map(|p| p.name.to_string())
        .collect();
    assert_eq!(names, ["Mode Early", "Mode Late"]);
    let mut b3 = block(3, 1);
    b3.parent_hash = block(2, 0).hash;
    c.apply_block(
        &b3,
        &in_block(&b3, vec![LedgerEvent::RecordCreated(r4.clone())]),
    )
    .await
    .expect("block 3 after the mode");
    assert_eq!(found(c, "scan").await, vec![r4], "writes after the mode");
}
