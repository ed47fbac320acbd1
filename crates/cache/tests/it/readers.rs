//! SQLite's connections: an in-memory database outlives any idle timeout,
//! and on a file reads go to a read-only WAL pool, so that they never
//! queue behind the writer's transaction.

use std::time::Duration;

use healthledger_cache::SqlCache;
use healthledger_core::testing::{TestWallet, cache, fixtures};
use healthledger_core::{BlockRef, CachePort, ChainEvent, HhNumber, LedgerEvent};

use crate::support::SqliteFiles;

fn patient(n: u32) -> healthledger_core::Profile {
    fixtures::patient(
        n,
        TestWallet::from_seed(u64::from(n)).address(),
        "Reader Patient",
    )
}

/// Blocks `first..=last`, each registering one patient.
fn registrations(first: u64, last: u64) -> Vec<(BlockRef, Vec<ChainEvent>)> {
    (first..=last)
        .map(|n| {
            let b = cache::block(n, 0);
            let p = patient(400_000 + n as u32);
            (
                b,
                cache::in_block(
                    &b,
                    vec![LedgerEvent::registration(p, fixtures::registrar())],
                ),
            )
        })
        .collect()
}

#[tokio::test]
async fn memory_database_outlives_the_idle_timeout() {
    let c = SqlCache::builder("sqlite::memory:")
        .idle_timeout(Duration::from_millis(50))
        .connect()
        .await
        .unwrap();
    let b = cache::block(1, 0);
    c.apply_block(
        &b,
        &cache::in_block(
            &b,
            vec![LedgerEvent::registration(
                patient(410_000),
                fixtures::registrar(),
            )],
        ),
    )
    .await
    .unwrap();
    // Well past the idle timeout (and sqlx's reaper interval): a closed
    // connection would take the database with it.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert!(
        c.profile(HhNumber::new(410_000).unwrap())
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(c.checkpoint().await.unwrap(), Some(b));
}

#[tokio::test]
async fn file_readers_reconnect_after_the_idle_timeout() {
    let files = SqliteFiles::new();
    let c = SqlCache::builder(files.url())
        .idle_timeout(Duration::from_millis(50))
        .max_connections(2)
        .connect()
        .await
        .unwrap();
    c.apply_blocks(&registrations(1, 3), 0).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert_eq!(c.counts().await.unwrap().patients, 3);
    c.apply_blocks(&registrations(4, 5), 0).await.unwrap();
    assert_eq!(
        c.counts().await.unwrap().patients,
        5,
        "readers see each commit"
    );
}

/// While a long batch is being written, reads answer at once, from the
/// last commit (before the batch), instead of waiting for the writer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_do_not_wait_for_the_writer_on_a_file() {
    let files = SqliteFiles::new();
    let c = SqlCache::connect(&files.url()).await.unwrap();
    c.apply_blocks(&registrations(1, 1), 0).await.unwrap();
    let writer = c.clone();
    let batch = registrations(2, 3_000);
    let write = tokio::spawn(async move { writer.apply_blocks(&batch, 0).await });
    // Let the writer begin its transaction.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let seen = c.checkpoint().await.unwrap();
    let patients = c.counts().await.unwrap().patients;
    assert!(!write.is_finished(), "the batch is still being written");
    assert_eq!(
        seen,
        Some(cache::block(1, 0)),
        "a read sees the last commit"
    );
    assert_eq!(patients, 1);
    write.await.unwrap().unwrap();
    assert_eq!(c.counts().await.unwrap().patients, 3_000);
}
