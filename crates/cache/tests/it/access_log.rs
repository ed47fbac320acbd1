//! The access log: tampering is located (relinked rewrites and deleted
//! tails by the audit anchor), and concurrent appends get gapless seqs on
//! every backend.

use std::sync::Arc;

use healthledger_cache::SqlCache;
use healthledger_core::{
    AccessAction, AccessLogEntry, AuditAnchor, CachePort, HhNumber, LedgerEvent, NewAccessLogEntry,
    RecordId, Timestamp, first_broken_link,
    testing::cache::{block, in_block},
};
use sea_orm::{ConnectionTrait as _, DatabaseConnection, Statement};

use crate::support::{PgSchemas, SqliteFiles, sqlite_raw};

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

/// Anchors entry `last_seq` on chain (block 1) as a sync would project it.
async fn anchor(c: &SqlCache, last_seq: u64) {
    let b = block(1, 0);
    let a = AuditAnchor {
        digest: c.access_log_digest(last_seq).await.unwrap(),
        last_seq,
        anchored_at: Timestamp(1_750_001_000),
    };
    c.apply_block(&b, &in_block(&b, vec![LedgerEvent::AuditAnchored(a)]))
        .await
        .unwrap();
    assert_eq!(c.verify_access_log().await.unwrap().first_broken, None);
}

/// Flips entry `k`'s `allowed` flag and recomputes its hash and every later
/// one through raw SQL, as anyone with write access to the database can:
/// the chain's SHA-256 is unkeyed.
async fn rewrite_and_relink(c: &SqlCache, raw: &DatabaseConnection, k: u64) {
    raw.execute_unprepared(&format!(
        "UPDATE access_log SET allowed = NOT allowed WHERE seq = {k}"
    ))
    .await
    .unwrap();
    let tail = c.access_log(None, k - 1, 1_000).await.unwrap();
    let mut prev = tail[0].prev_hash;
    for e in tail {
        let relinked = AccessLogEntry::link(e.seq, e.entry, prev);
        raw.execute_raw(Statement::from_sql_and_values(
            raw.get_database_backend(),
            "UPDATE access_log SET prev_hash = $1, hash = $2 WHERE seq = $3",
            [
                relinked.prev_hash.to_vec().into(),
                relinked.hash.to_vec().into(),
                i64::try_from(relinked.seq).unwrap().into(),
            ],
        ))
        .await
        .unwrap();
        prev = relinked.hash;
    }
}

/// An entry at or below the anchored seq, rewritten and relinked, passes
/// the chain check but not the anchor check.
async fn a_relinked_rewrite_is_caught_by_the_anchor(c: &SqlCache, raw: &DatabaseConnection) {
    append(c, 8).await;
    anchor(c, 6).await;
    rewrite_and_relink(c, raw, 3).await;
    let all = c.access_log(None, 0, 100).await.unwrap();
    assert!(!all[2].entry.allowed, "entry 3 was rewritten");
    assert_eq!(first_broken_link(&all), None, "the chain alone is fooled");
    let v = c.verify_access_log().await.unwrap();
    assert_eq!(
        (v.entries, v.first_broken),
        (8, Some(6)),
        "break at last_seq"
    );
}

/// Deleting the tail after anchoring is reported at the first missing seq.
async fn a_deleted_tail_is_caught_by_the_anchor(c: &SqlCache, raw: &DatabaseConnection) {
    append(c, 8).await;
    anchor(c, 6).await;
    raw.execute_unprepared("DELETE FROM access_log WHERE seq > 4")
        .await
        .unwrap();
    let v = c.verify_access_log().await.unwrap();
    assert_eq!(
        (v.entries, v.first_broken),
        (4, Some(5)),
        "tail from 5 deleted"
    );
    raw.execute_unprepared("DELETE FROM access_log")
        .await
        .unwrap();
    let v = c.verify_access_log().await.unwrap();
    assert_eq!(
        (v.entries, v.first_broken),
        (0, Some(1)),
        "whole log deleted"
    );
}

/// Appends 50 entries at once, spread over `handles` (each with its own
/// connection pool), so that appends really race: on different
/// connections, not queued on one.
async fn concurrent_appends_have_no_gaps(handles: Vec<SqlCache>) {
    let handles: Vec<Arc<SqlCache>> = handles.into_iter().map(Arc::new).collect();
    let tasks: Vec<_> = (1..=50u64)
        .map(|i| {
            let c = Arc::clone(&handles[i as usize % handles.len()]);
            tokio::spawn(async move { c.append_access_log(&entry(i)).await.unwrap().seq })
        })
        .collect();
    let c = &handles[0];
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
    let pg = PgSchemas::new();
    let (c, schema) = pg.fresh().await;
    tampering_is_located(&c, &pg.raw(&schema).await).await;
    let (c, schema) = pg.fresh().await;
    a_deleted_row_is_located(&c, &pg.raw(&schema).await).await;
    pg.cleanup().await;
}

#[tokio::test]
async fn anchored_tampering_is_caught_on_sqlite() {
    let files = SqliteFiles::new();
    let (c, url) = files.fresh().await;
    a_relinked_rewrite_is_caught_by_the_anchor(&c, &sqlite_raw(&url).await).await;
    let (c, url) = files.fresh().await;
    a_deleted_tail_is_caught_by_the_anchor(&c, &sqlite_raw(&url).await).await;
}

#[tokio::test]
async fn anchored_tampering_is_caught_on_postgres() {
    let pg = PgSchemas::new();
    let (c, schema) = pg.fresh().await;
    a_relinked_rewrite_is_caught_by_the_anchor(&c, &pg.raw(&schema).await).await;
    let (c, schema) = pg.fresh().await;
    a_deleted_tail_is_caught_by_the_anchor(&c, &pg.raw(&schema).await).await;
    pg.cleanup().await;
}

/// A SQLite cache has one connection, which would queue the appends of one
/// handle; four handles on one file (four pools, as four processes would
/// have) make them contend for SQLite's write lock.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_appends_on_sqlite() {
    let files = SqliteFiles::new();
    let (first, url) = files.fresh().await;
    let mut handles = vec![first];
    for _ in 0..3 {
        handles.push(SqlCache::connect(&url).await.unwrap());
    }
    concurrent_appends_have_no_gaps(handles).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_appends_on_postgres() {
    // One pool of four connections, and a second pool on the same schema.
    let pg = PgSchemas::new();
    let (first, schema) = pg.fresh().await;
    let second = SqlCache::builder(crate::support::pg_url())
        .postgres_schema(schema)
        .max_connections(4)
        .connect()
        .await
        .unwrap();
    concurrent_appends_have_no_gaps(vec![first.clone(), first, second]).await;
    pg.cleanup().await;
}
