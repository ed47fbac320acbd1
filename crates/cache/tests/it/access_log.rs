//! The access log: tampering is located, and concurrent appends get
//! gapless seqs on every backend.

use std::sync::Arc;

use healthledger_cache::SqlCache;
use healthledger_core::{
    AccessAction, CachePort, HhNumber, NewAccessLogEntry, RecordId, Timestamp,
};
use sea_orm::{ConnectionTrait as _, DatabaseConnection};

use crate::support::{PgSchemas, SqliteFiles, skip_postgres, sqlite_memory, sqlite_raw};

fn entry(i: u64) -> NewAccessLogEntry {
    let patient = HhNumber::new(400_000 + (i % 3) as u32).unwrap();
    NewAccessLogEntry {
        at: Timestamp(1_750_000_000 + i),
        actor: HhNumber::new(400_100).unwrap(),
        patient,
        record: i.is_multiple_of(2).then(|| RecordId::new(patient, i)),
        action: AccessAction::ReadContent,
        allowed: true,
    }
}

async fn append(c: &SqlCache, n: u64) {
    for i in 1..=n {
        c.append_access_log(&entry(i)).await.unwrap();
    }
    let v = c.verify_access_log().await.unwrap();
    assert_eq!((v.entries, v.first_broken), (n, None));
}

/// Edits rows behind the cache's back and checks that verification points
/// at the first edited one.
async fn tampering_is_located(c: &SqlCache, raw: &DatabaseConnection) {
    append(c, 6).await;
    raw.execute_unprepared("UPDATE access_log SET allowed = NOT allowed WHERE seq = 4")
        .await
        .unwrap();
    let v = c.verify_access_log().await.unwrap();
    assert_eq!((v.entries, v.first_broken), (6, Some(4)), "edited flag");

    raw.execute_unprepared("UPDATE access_log SET actor = 999999 WHERE seq = 2")
        .await
        .unwrap();
    assert_eq!(c.verify_access_log().await.unwrap().first_broken, Some(2));

    raw.execute_unprepared("UPDATE access_log SET action = 77 WHERE seq = 1")
        .await
        .unwrap();
    assert_eq!(
        c.verify_access_log().await.unwrap().first_broken,
        Some(1),
        "a row that no longer decodes is a broken link"
    );
}

async fn a_deleted_row_is_located(c: &SqlCache, raw: &DatabaseConnection) {
    append(c, 5).await;
    raw.execute_unprepared("DELETE FROM access_log WHERE seq = 3")
        .await
        .unwrap();
    let v = c.verify_access_log().await.unwrap();
    assert_eq!((v.entries, v.first_broken), (4, Some(3)));
}

async fn concurrent_appends_have_no_gaps(c: SqlCache) {
    let c = Arc::new(c);
    let tasks: Vec<_> = (1..=50u64)
        .map(|i| {
            let c = Arc::clone(&c);
            tokio::spawn(async move { c.append_access_log(&entry(i)).await.unwrap().seq })
        })
        .collect();
    let mut seqs = Vec::new();
    for t in tasks {
        seqs.push(t.await.unwrap());
    }
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=50).collect::<Vec<_>>());
    let v = c.verify_access_log().await.unwrap();
    assert_eq!((v.entries, v.first_broken), (50, None));
    let all = c.access_log(None, 0, 100).await.unwrap();
    assert_eq!(all.len(), 50);
    assert_eq!(c.access_log_digest(50).await.unwrap(), all[49].hash);
}

#[tokio::test]
async fn tampering_is_located_on_sqlite() {
    let files = SqliteFiles::new();
    let (c, url) = files.fresh().await;
    let raw = sqlite_raw(&url).await;
    tampering_is_located(&c, &raw).await;
    let (c, url) = files.fresh().await;
    let raw = sqlite_raw(&url).await;
    a_deleted_row_is_located(&c, &raw).await;
}

#[tokio::test]
async fn tampering_is_located_on_postgres() {
    if skip_postgres() {
        return;
    }
    let pg = PgSchemas::new();
    let (c, schema) = pg.fresh().await;
    tampering_is_located(&c, &pg.raw(&schema).await).await;
    let (c, schema) = pg.fresh().await;
    a_deleted_row_is_located(&c, &pg.raw(&schema).await).await;
    pg.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_appends_on_sqlite() {
    concurrent_appends_have_no_gaps(sqlite_memory().await).await;
    let files = SqliteFiles::new();
    concurrent_appends_have_no_gaps(files.fresh().await.0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_appends_on_postgres() {
    if skip_postgres() {
        return;
    }
    let pg = PgSchemas::new();
    concurrent_appends_have_no_gaps(pg.fresh().await.0).await;
    pg.cleanup().await;
}

#[tokio::test]
async fn two_sqlite_handles_on_one_file_share_the_log() {
    // Two caches (two pools, as two processes would have) append to one
    // file in turn; the chain stays linked across them.
    let files = SqliteFiles::new();
    let (a, url) = files.fresh().await;
    let b = SqlCache::connect(&url).await.unwrap();
    for i in 1..=10 {
        let c = if i % 2 == 0 { &a } else { &b };
        assert_eq!(c.append_access_log(&entry(i)).await.unwrap().seq, i);
    }
    let v = a.verify_access_log().await.unwrap();
    assert_eq!((v.entries, v.first_broken), (10, None));
}
