//! Faults: a connection dropped in the middle of `apply_block` leaves
//! nothing half-applied, the error is retryable, and a retry succeeds; a
//! unique violation that slips past the up-front checks (a concurrent
//! writer) is a `Conflict`.

use std::time::{Duration, Instant};

use healthledger_core::testing::{TestWallet, cache, fixtures};
use healthledger_core::{B256, CacheError, CachePort, ChainSource, HhNumber, LedgerEvent, Role};
use sea_orm::{ConnectionTrait as _, Statement, TransactionTrait as _};

use crate::support::PgSchemas;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_dropped_mid_block_leaves_nothing_and_a_retry_succeeds() {
    let pg = PgSchemas::new();
    let (c, schema) = pg.fresh().await;
    let hh = 700_000;
    let p = fixtures::patient(hh, TestWallet::from_seed(7).address(), "Asha Rao");
    let b1 = cache::block(1, 0);
    let events = cache::in_block(
        &b1,
        vec![LedgerEvent::registration(p.clone(), fixtures::registrar())],
    );

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
    let admin = pg.raw("public").await;
    let pid = blocked_backend(&admin, &schema, "journal", "INSERT INTO journal").await;
    admin
        .execute_unprepared(&format!("SELECT pg_terminate_backend({pid})"))
        .await
        .unwrap();

    let err = applying
        .await
        .unwrap()
        .expect_err("the connection died mid-block");
    assert!(
        matches!(err, CacheError::Unavailable(_)),
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

/// Waits until a backend of `schema` is blocked on a lock while running a
/// statement that starts with `prefix`, and returns its pid.
async fn blocked_backend(
    admin: &sea_orm::DatabaseConnection,
    schema: &str,
    table: &str,
    prefix: &str,
) -> i32 {
    let find = format!(
        "SELECT pid FROM pg_stat_activity
         WHERE wait_event_type = 'Lock' AND query LIKE '{prefix}%'
           AND pid IN (SELECT pid FROM pg_locks l JOIN pg_class t ON t.oid = l.relation
                       JOIN pg_namespace n ON n.oid = t.relnamespace
                       WHERE n.nspname = '{schema}' AND t.relname = '{table}')"
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let row = admin
            .query_one_raw(Statement::from_string(admin.get_database_backend(), &find))
            .await
            .unwrap();
        if let Some(row) = row {
            return row.try_get("", "pid").unwrap();
        }
        assert!(Instant::now() < deadline, "no backend blocked on {prefix}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_unique_violation_from_a_concurrent_writer_is_a_conflict() {
    let pg = PgSchemas::new();
    let (c, schema) = pg.fresh().await;
    let wallet = TestWallet::from_seed(71).address();

    // A concurrent writer claims the wallet for another HH number but has
    // not committed yet: the cache's up-front check cannot see it, and its
    // insert waits on the unique index.
    let raw = pg.raw(&schema).await;
    let writer = raw.begin().await.unwrap();
    writer
        .execute_unprepared(&format!(
            "INSERT INTO users (hh, role, wallet, source_block, source_tx)
             VALUES (710001, {}, '{wallet}', 1, '\\x00')",
            Role::Patient.code()
        ))
        .await
        .unwrap();
    let upserting = {
        let c = c.clone();
        tokio::spawn(async move {
            let p = fixtures::patient(710_000, wallet, "Asha Rao");
            let src = ChainSource {
                block_number: 1,
                tx_hash: B256::ZERO,
            };
            c.upsert_profile(&p, src).await
        })
    };
    let admin = pg.raw("public").await;
    blocked_backend(&admin, &schema, "users", "INSERT INTO users").await;
    writer.commit().await.unwrap();

    let err = upserting.await.unwrap().expect_err("the wallet was taken");
    assert!(matches!(err, CacheError::Conflict(_)), "{err}");
    assert_eq!(
        c.profile(HhNumber::new(710_000).unwrap()).await.unwrap(),
        None
    );

    admin.close().await.unwrap();
    raw.close().await.unwrap();
    pg.cleanup().await;
}
