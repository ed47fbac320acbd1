//! Races between separate pools and processes: concurrent upserts of one
//! HH number with different roles, and concurrent connects to one new
//! SQLite file.

use healthledger_cache::SqlCache;
use healthledger_core::testing::{TestWallet, fixtures};
use healthledger_core::{B256, CacheError, CachePort, ChainSource, HhNumber, Role};

use crate::support::{PgSchemas, SqliteFiles, pg_url};

fn src() -> ChainSource {
    ChainSource {
        block_number: 1,
        tx_hash: B256::repeat_byte(1),
    }
}

/// Upserts HH number `n` as a patient on `a` and as a doctor on `b` at
/// once, many times over: exactly one of each pair succeeds, the other is
/// `Conflict`, and the cached role is the winner's.
async fn role_race(a: &SqlCache, b: &SqlCache) {
    for i in 0..40u32 {
        let n = 500_000 + i;
        let patient = fixtures::patient(n, TestWallet::from_seed(u64::from(n)).address(), "Racer");
        let doctor = fixtures::doctor(
            n,
            TestWallet::from_seed(u64::from(n) + 1_000).address(),
            "Dr. Racer",
        );
        let (pa, pb) = tokio::join!(
            a.upsert_profile(&patient, src()),
            b.upsert_profile(&doctor, src())
        );
        let role = a
            .profile(HhNumber::new(n).unwrap())
            .await
            .unwrap()
            .map(|p| p.role());
        match (&pa, &pb) {
            (Ok(()), Err(CacheError::Conflict(_))) => assert_eq!(role, Some(Role::Patient)),
            (Err(CacheError::Conflict(_)), Ok(())) => assert_eq!(role, Some(Role::Doctor)),
            other => panic!("round {i}: expected one success and one Conflict, got {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_upserts_with_different_roles_on_postgres() {
    let pg = PgSchemas::new();
    let (a, schema) = pg.fresh().await;
    let b = SqlCache::builder(pg_url())
        .postgres_schema(schema)
        .connect()
        .await
        .unwrap();
    role_race(&a, &b).await;
    pg.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_upserts_with_different_roles_on_sqlite() {
    let files = SqliteFiles::new();
    let (a, url) = files.fresh().await;
    let b = SqlCache::connect(&url).await.unwrap();
    role_race(&a, &b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_connects_to_one_new_sqlite_file_all_succeed() {
    for _ in 0..5 {
        let files = SqliteFiles::new();
        let url = files.url();
        let connects: Vec<_> = (0..4)
            .map(|_| {
                let url = url.clone();
                tokio::spawn(async move { SqlCache::connect(&url).await })
            })
            .collect();
        let mut caches = Vec::new();
        for c in connects {
            caches.push(c.await.unwrap().unwrap());
        }
        for c in &caches {
            assert_eq!(c.checkpoint().await.unwrap(), None);
        }
    }
}
