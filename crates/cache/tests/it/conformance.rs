//! The core `CachePort` conformance suite, unchanged, on every backend.

use healthledger_core::testing::cache;

use crate::support::{PgSchemas, SqliteFiles, sqlite_memory};

#[tokio::test]
async fn conformance_on_sqlite_in_memory() {
    cache::all(sqlite_memory).await;
}

#[tokio::test]
async fn conformance_on_sqlite_file() {
    let files = SqliteFiles::new();
    cache::all(|| async { files.fresh().await.0 }).await;
}

#[tokio::test]
async fn conformance_on_postgres() {
    let pg = PgSchemas::new();
    cache::all(|| async { pg.fresh().await.0 }).await;
    pg.cleanup().await;
}
