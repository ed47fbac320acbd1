//! Faults: a connection dropped in the middle of `apply_block` leaves
//! nothing half-applied, the error is retryable, and a retry succeeds.

use std::time::{Duration, Instant};

use healthledger_core::testing::{TestWallet, cache, fixtures};
use healthledger_core::{CachePort, HhNumber, LedgerEvent};
use sea_orm::{ConnectionTrait as _, Statement, TransactionTrait as _};

use crate::support::{PgSchemas, skip_postgres};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_dropped_mid_block_leaves_nothing_and_a_retry_succeeds() {
    if skip_postgres() {
        return;
    }
    let pg = PgSchemas::new();
    let (c, schema) = pg.fresh().await;
    let hh = 700_000;
    let p = fixtures::patient(hh, TestWallet::from_seed(7).address(), "Asha Rao");
    let b1 = cache::block(1, 0);
    let events = cache::in_block(&b1, vec![LedgerEvent::registration(p.clone())]);

    // Another session holds a lock that lets the block's reads and row
    // writes through but stops it at the journal insert, its last write.
    let raw = pg.raw(&schema).await;
    let blocker = raw.begin().await.unwrap();
    blocker
        .execute_unprepared("LOCK TABLE journal IN EXCLUSIVE MODE")
        .await
        .unwrap();

    let applying = {
        let c = c.clone();
        let (b1, events) = (b1, events.clone());
        tokio::spawn(async move { c.apply_block(&b1, &events).await })
    };

    // Find the cache's backend waiting on that lock, and kill it.
    let find = format!(
        "SELECT pid FROM pg_stat_activity
         WHERE wait_event_type = 'Lock' AND query LIKE 'INSERT INTO journal%'
           AND pid IN (SELECT pid FROM pg_locks l JOIN pg_class t ON t.oid = l.relation
                       JOIN pg_namespace n ON n.oid = t.relnamespace
                       WHERE n.nspname = '{schema}' AND t.relname = 'journal' AND NOT l.granted)"
    );
    let admin = pg.raw("public").await;
    let deadline = Instant::now() + Duration::from_secs(20);
    let pid: i32 = loop {
        let row = admin
            .query_one_raw(Statement::from_string(admin.get_database_backend(), &find))
            .await
            .unwrap();
        if let Some(row) = row {
            break row.try_get("", "pid").unwrap();
        }
        assert!(
            Instant::now() < deadline,
            "apply_block never reached the journal insert"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    admin
        .execute_unprepared(&format!("SELECT pg_terminate_backend({pid})"))
        .await
        .unwrap();

    let err = applying
        .await
        .unwrap()
        .expect_err("the connection died mid-block");
    assert!(
        err.is_retryable(),
        "a dropped connection is retryable: {err}"
    );
    blocker.commit().await.unwrap();

    let hh = HhNumber::new(hh).unwrap();
    assert_eq!(c.profile(hh).await.unwrap(), None, "no half-applied rows");
    assert_eq!(c.checkpoint().await.unwrap(), None);
    assert!(c.journal(0, 10).await.unwrap().is_empty());

    c.apply_block(&b1, &events)
        .await
        .expect("the retry succeeds");
    assert_eq!(c.profile(hh).await.unwrap(), Some(p));
    assert_eq!(c.checkpoint().await.unwrap(), Some(b1));
    c.rollback_to(0).await.unwrap();
    assert_eq!(c.profile(hh).await.unwrap(), None, "and it rolls back");

    admin.close().await.unwrap();
    raw.close().await.unwrap();
    pg.cleanup().await;
}
