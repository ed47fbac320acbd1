//! Test support: fresh caches on each backend, and raw SQL access for
//! tampering.

use std::sync::{
    Mutex,
    atomic::{AtomicU64, Ordering},
};

use healthledger_cache::SqlCache;
use sea_orm::{ConnectOptions, Database, DatabaseConnection};
use tempfile::TempDir;

/// The PostgreSQL URL the tests use.
pub(crate) fn pg_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// A fresh in-memory SQLite cache.
pub(crate) async fn sqlite_memory() -> SqlCache {
    SqlCache::connect("sqlite::memory:")
        .await
        .expect("in-memory SQLite cache")
}

/// Fresh SQLite database files in one temporary directory.
pub(crate) struct SqliteFiles {
    dir: TempDir,
    next: AtomicU64,
}

impl SqliteFiles {
    pub(crate) fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("temp dir"),
            next: AtomicU64::new(0),
        }
    }

    /// The URL of a new database file.
    pub(crate) fn url(&self) -> String {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        format!(
            "sqlite://{}?mode=rwc",
            self.dir.path().join(format!("cache-{n}.db")).display()
        )
    }

    /// A fresh cache on a new file.
    pub(crate) async fn fresh(&self) -> (SqlCache, String) {
        let url = self.url();
        let cache = SqlCache::connect(&url).await.expect("SQLite file cache");
        (cache, url)
    }
}

static SCHEMA_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Fresh PostgreSQL schemas, dropped again by [`PgSchemas::cleanup`].
pub(crate) struct PgSchemas {
    url: String,
    created: Mutex<Vec<String>>,
}

impl PgSchemas {
    pub(crate) fn new() -> Self {
        Self {
            url: pg_url(),
            created: Mutex::new(Vec::new()),
        }
    }

    /// A cache in a new schema, and the schema's name.
    pub(crate) async fn fresh(&self) -> (SqlCache, String) {
        let schema = format!(
            "hl_cache_test_{}_{}",
            std::process::id(),
            SCHEMA_COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        self.created.lock().unwrap().push(schema.clone());
        let cache = SqlCache::builder(self.url.clone())
            .postgres_schema(schema.clone())
            .max_connections(4)
            .connect()
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "PostgreSQL is not usable at TEST_DATABASE_URL={}: {e}. Start it with \
                     `cargo xtask setup` (or point TEST_DATABASE_URL at a running server)",
                    self.url
                )
            });
        (cache, schema)
    }

    /// Drops `schema` too on cleanup.
    pub(crate) fn adopt(&self, schema: &str) {
        self.created.lock().unwrap().push(schema.to_owned());
    }

    /// A raw connection whose `search_path` is `schema`.
    pub(crate) async fn raw(&self, schema: &str) -> DatabaseConnection {
        let mut opts = ConnectOptions::new(self.url.clone());
        opts.max_connections(1)
            .sqlx_logging(false)
            .set_schema_search_path(schema.to_owned());
        Database::connect(opts)
            .await
            .expect("raw PostgreSQL connection")
    }

    /// Drops every schema this value created.
    pub(crate) async fn cleanup(&self) {
        let schemas: Vec<String> = std::mem::take(&mut *self.created.lock().unwrap());
        for s in schemas {
            healthledger_cache::drop_schema(&self.url, &s)
                .await
                .expect("drop test schema");
        }
    }
}

/// A raw connection to a SQLite file URL.
pub(crate) async fn sqlite_raw(url: &str) -> DatabaseConnection {
    let mut opts = ConnectOptions::new(url.to_owned());
    opts.max_connections(1).sqlx_logging(false);
    Database::connect(opts)
        .await
        .expect("raw SQLite connection")
}
