//! The writer lease on each backend: the core lease suite, and a holder
//! that dies (its handle dropped, as a killed process's would be) frees the
//! lease for a standby.

use std::time::{Duration, Instant};

use healthledger_cache::SqlLease;
use healthledger_core::{CacheError, WriterLease, testing::lease};

use crate::support::{PgSchemas, SqliteFiles, pg_url};

async fn taken_over_after_drop(a: SqlLease, b: &SqlLease) {
    assert!(a.try_acquire().await.unwrap());
    assert!(!b.try_acquire().await.unwrap());
    drop(a);
    let since = Instant::now();
    while !b.try_acquire().await.unwrap() {
        assert!(
            since.elapsed() < Duration::from_secs(10),
            "the standby took over a dead holder's lease"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(b.is_held().await.unwrap());
}

#[tokio::test]
async fn sqlite_file_lease() {
    let files = SqliteFiles::new();
    let (_cache, url) = files.fresh().await;
    let a = SqlLease::connect(&url, None).await.unwrap();
    let b = SqlLease::connect(&url, None).await.unwrap();
    lease::all(&a, &b).await;
    assert!(a.describe().ends_with(".lease"), "{}", a.describe());
    taken_over_after_drop(a, &b).await;
    let err = SqlLease::connect("sqlite::memory:", None)
        .await
        .expect_err("no lease for an in-memory database");
    assert!(matches!(err, CacheError::Invalid(_)), "{err}");
}

#[tokio::test]
async fn postgres_lease() {
    let schemas = PgSchemas::new();
    let (_cache, schema) = schemas.fresh().await;
    let a = SqlLease::connect(&pg_url(), Some(&schema)).await.unwrap();
    let b = SqlLease::connect(&pg_url(), Some(&schema)).await.unwrap();
    lease::all(&a, &b).await;
    // Another schema's lease is another lock.
    let other = SqlLease::connect(&pg_url(), Some("hl_some_other_schema"))
        .await
        .unwrap();
    assert!(a.try_acquire().await.unwrap());
    assert!(other.try_acquire().await.unwrap());
    other.release().await.unwrap();
    a.release().await.unwrap();
    // A password in the URL (trust auth ignores it) never shows.
    let with_password = pg_url().replacen("://postgres@", "://postgres:s3cret-pw@", 1);
    let shown = SqlLease::connect(&with_password, Some(&schema))
        .await
        .unwrap()
        .describe();
    assert!(
        with_password.contains("s3cret-pw") && !shown.contains("s3cret-pw"),
        "{shown}"
    );
    taken_over_after_drop(a, &b).await;
    schemas.cleanup().await;
}
