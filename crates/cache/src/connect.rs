//! Connecting: [`SqlCacheBuilder`] opens the pools for a URL (SQLite's
//! writer and read-only WAL readers, or a PostgreSQL pool in an optional
//! schema), serializes concurrent migrations (an advisory lock on
//! PostgreSQL, a lock database beside a SQLite file), refuses a schema
//! newer than the code and runs the pending migrations.

use std::{fmt, time::Duration};

use sea_orm::{ConnectOptions, ConnectionTrait as _, Database, DatabaseConnection, DbBackend};

use crate::error::{Error, Result, redact};
use crate::migration::Migrator;

/// How many PostgreSQL connections a cache opens unless told otherwise.
const DEFAULT_PG_CONNECTIONS: u32 = 10;
/// How many read-only connections a SQLite file gets unless told otherwise.
const DEFAULT_SQLITE_READERS: u32 = 4;
/// How long connecting may take unless told otherwise.
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Connects a [`SqlCache`] to a database URL and migrates it.
#[derive(Clone)]
pub struct SqlCacheBuilder {
    url: String,
    schema: Option<String>,
    max_connections: Option<u32>,
    idle_timeout: Option<Duration>,
    connect_timeout: Duration,
    local_socket: bool,
}

impl fmt::Debug for SqlCacheBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqlCacheBuilder")
            .field("url", &redact(&self.url))
            .field("schema", &self.schema)
            .field("max_connections", &self.max_connections)
            .field("idle_timeout", &self.idle_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("local_socket", &self.local_socket)
            .finish()
    }
}

impl SqlCacheBuilder {
    /// A builder for `url`: `sqlite://<path>?mode=rwc`, `sqlite::memory:` or
    /// `postgres://user@host:port/database`.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            schema: None,
            max_connections: None,
            idle_timeout: None,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            local_socket: true,
        }
    }

    /// How long connecting (and later, waiting for a pooled connection)
    /// may take before the cache reports the database unavailable
    /// (default 10 s; the driver retries a refused connection until then).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// PostgreSQL on this machine (`localhost`, `127.0.0.1` or `[::1]`):
    /// whether to connect through the server's Unix socket when it has one
    /// in `/var/run/postgresql`, `/run/postgresql` or `/tmp` and accepts
    /// the URL's user there (default `true`; otherwise TCP). sqlx 0.9 does
    /// not set `TCP_NODELAY`, so on TCP every statement larger than a
    /// segment waits about 40 ms for a delayed ACK (Nagle's algorithm); a
    /// Unix socket has no such wait, which lets a batch travel as a few
    /// large statements.
    pub fn local_socket(mut self, enabled: bool) -> Self {
        self.local_socket = enabled;
        self
    }

    /// PostgreSQL only: keep every table in `schema` (created if missing)
    /// by setting the connections' `search_path`.
    pub fn postgres_schema(mut self, schema: impl Into<String>) -> Self {
        self.schema = Some(schema.into());
        self
    }

    /// PostgreSQL: the connection pool's size (default 10). A SQLite file:
    /// the size of its read-only pool (default 4), beside the one writer
    /// connection, which serializes writers in process. An in-memory
    /// SQLite database always has one connection.
    pub fn max_connections(mut self, n: u32) -> Self {
        self.max_connections = Some(n.max(1));
        self
    }

    /// How long a pooled connection may stay idle before it is closed
    /// (PostgreSQL's pool and a SQLite file's read pool; sqlx's default
    /// otherwise). The SQLite writer and an in-memory database's only
    /// connection are never closed for idleness.
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.idle_timeout = Some(timeout);
        self
    }

    /// Connects, refuses a schema newer than this code, runs pending
    /// migrations and returns the cache.
    pub async fn connect(self) -> Result<SqlCache> {
        let shown = redact(&self.url);
        let backend = if self.url.starts_with("sqlite:") {
            DbBackend::Sqlite
        } else if self.url.starts_with("postgres://") || self.url.starts_with("postgresql://") {
            DbBackend::Postgres
        } else {
            return Err(Error::UnsupportedUrl { url: shown });
        };
        let mut opts = ConnectOptions::new(self.url.clone());
        opts.sqlx_logging(false)
            .connect_timeout(self.connect_timeout)
            .acquire_timeout(self.connect_timeout);
        match backend {
            DbBackend::Sqlite => {
                if let Some(schema) = self.schema {
                    return Err(Error::SchemaNeedsPostgres(schema));
                }
                let memory = self.url.contains(":memory:") || self.url.contains("mode=memory");
                // The writer (and an in-memory database's only connection,
                // which holds the database) is never closed for idleness or
                // age: closing it would lose an in-memory database.
                opts.max_connections(1)
                    .min_connections(1)
                    .idle_timeout(None)
                    .max_lifetime(None)
                    .map_sqlx_sqlite_opts(move |o| {
                        let o = o.foreign_keys(true).busy_timeout(Duration::from_secs(10));
                        // A batch of blocks dirties pages of every index
                        // it writes; with SQLite's default 2 MiB cache the
                        // writer spills them to the WAL mid-transaction and
                        // reads them back. The writer keeps 64 MiB; the
                        // statement journal of multi-row upserts stays in
                        // memory rather than in a temporary file.
                        // The WAL is checkpointed at 10,000 pages (40 MiB)
                        // rather than SQLite's 1,000: index pages that
                        // several batches rewrite are then copied into the
                        // database once per checkpoint, not once per batch
                        // (measured: 10 % more events/s, the final
                        // checkpoint included).
                        // Multi-row writes come in a few shapes per table
                        // (`insert_rows`); the statement cache keeps them
                        // all prepared beside the other statements.
                        let o = o
                            .pragma("cache_size", "-65536")
                            .pragma("temp_store", "memory")
                            .pragma("wal_autocheckpoint", "10000")
                            .statement_cache_capacity(256);
                        if memory {
                            o
                        } else {
                            o.journal_mode(sea_orm::sqlx::sqlite::SqliteJournalMode::Wal)
                                .synchronous(sea_orm::sqlx::sqlite::SqliteSynchronous::Normal)
                        }
                    });
            }
            _ => {
                if let Some(idle) = self.idle_timeout {
                    opts.idle_timeout(idle);
                }
                let socket = match self.local_socket {
                    true => local_socket(&self.url, self.connect_timeout).await,
                    false => None,
                };
                opts.max_connections(self.max_connections.unwrap_or(DEFAULT_PG_CONNECTIONS))
                    // sqlx keeps prepared statements per connection; a
                    // generic plan made while a table was small (a seq
                    // scan) would otherwise stay as the table grows. Our
                    // statements are cheap to plan, so plan each execution.
                    .map_sqlx_postgres_opts(move |o| {
                        let o = o.options([("plan_cache_mode", "force_custom_plan")]);
                        match &socket {
                            Some(dir) => o.socket(dir),
                            None => o,
                        }
                    });
                if let Some(schema) = &self.schema {
                    if !valid_schema_name(schema) {
                        return Err(Error::InvalidSchemaName(schema.clone()));
                    }
                    create_schema(&opts, &shown, schema, self.connect_timeout).await?;
                    opts.set_schema_search_path(schema.clone());
                }
            }
        }
        if backend == DbBackend::Postgres {
            // Several processes may start on one schema at once: migrate
            // on one session holding an advisory lock, so that exactly one
            // of them migrates and the others then find nothing pending.
            let mut single = opts.clone();
            single.max_connections(1);
            let db = Database::connect(single)
                .await
                .map_err(|source| Error::Connect {
                    url: shown.clone(),
                    source,
                })?;
            let migrated = migrate_locked(&db).await;
            let closed = db.close().await;
            migrated?;
            closed.map_err(|e| Error::db("closing the migration connection", e))?;
        }
        // Several processes may create and migrate one new SQLite file at
        // once (SQLite's locks do not make "create table unless migrated"
        // atomic): they take turns on a lock file beside the database,
        // held from opening the file until its migrations are done.
        let file = (backend == DbBackend::Sqlite)
            .then(|| sqlite_path(&self.url))
            .flatten();
        let lock = match &file {
            Some(path) => lock_migrations(path, self.connect_timeout).await?,
            None => None,
        };
        let db = Database::connect(opts)
            .await
            .map_err(|source| Error::Connect {
                url: shown.clone(),
                source,
            })?;
        let mut read = db.clone();
        if backend == DbBackend::Sqlite {
            let migrated = migrate(&db).await;
            if let Some(lock) = lock {
                // Closing the lock connection rolls its transaction back
                // and releases the lock.
                if let Err(e) = lock.close().await {
                    tracing::warn!(error = %e, "closing the migration lock failed");
                }
            }
            migrated?;
            if file.is_some() {
                read = self.sqlite_readers(&shown).await?;
            }
        }
        Ok(SqlCache { db, read, backend })
    }

    /// The read-only pool of a SQLite file (opened once the writer has
    /// created and migrated it). In WAL mode readers see the last commit
    /// while the writer works, so reads never wait for it.
    async fn sqlite_readers(&self, shown: &str) -> Result<DatabaseConnection> {
        let mut opts = ConnectOptions::new(self.url.clone());
        opts.sqlx_logging(false)
            .connect_timeout(self.connect_timeout)
            .acquire_timeout(self.connect_timeout)
            .max_connections(self.max_connections.unwrap_or(DEFAULT_SQLITE_READERS));
        if let Some(idle) = self.idle_timeout {
            opts.idle_timeout(idle);
        }
        opts.map_sqlx_sqlite_opts(|o| o.read_only(true).busy_timeout(Duration::from_secs(10)));
        Database::connect(opts)
            .await
            .map_err(|source| Error::Connect {
                url: shown.to_owned(),
                source,
            })
    }
}

/// The file of a SQLite URL (`sqlite://<path>?…` or `sqlite:<path>`), or
/// `None` for an in-memory database.
fn sqlite_path(url: &str) -> Option<String> {
    if url.contains(":memory:") || url.contains("mode=memory") {
        return None;
    }
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or(rest);
    (!path.is_empty()).then(|| path.to_owned())
}

/// Takes an exclusive lock on `<path>.migrate-lock`, a small SQLite
/// database of its own (created if missing), waiting up to a minute for
/// another holder: SQLite's own file locking, portable and released by the
/// operating system if the process dies. The lock lasts until the returned
/// connection is closed. `None` when the database's directory does not
/// exist (opening the database then fails, naming it).
async fn lock_migrations(path: &str, timeout: Duration) -> Result<Option<DatabaseConnection>> {
    let lock_path = format!("{path}.migrate-lock");
    let dir = std::path::Path::new(&lock_path).parent();
    if dir.is_some_and(|d| !d.as_os_str().is_empty() && !d.exists()) {
        return Ok(None);
    }
    let fail = |source| Error::MigrationLock {
        path: lock_path.clone(),
        source,
    };
    let mut opts = ConnectOptions::new(format!("sqlite://{lock_path}?mode=rwc"));
    opts.sqlx_logging(false)
        .max_connections(1)
        .min_connections(1)
        .idle_timeout(None)
        .max_lifetime(None)
        .connect_timeout(timeout)
        .acquire_timeout(timeout)
        .map_sqlx_sqlite_opts(|o| o.busy_timeout(Duration::from_secs(60)));
    let db = Database::connect(opts).await.map_err(fail)?;
    // An exclusive transaction that is never committed: it holds the
    // lock until the connection closes.
    db.execute_unprepared("BEGIN EXCLUSIVE")
        .await
        .map_err(fail)?;
    Ok(Some(db))
}

/// The directory of the Unix socket of the PostgreSQL server a loopback
/// `url` names, if the server listens on one in a usual place and lets the
/// URL's user in through it (a `local` rule of `pg_hba.conf` may differ
/// from the `host` rule the URL would meet). `None` for other URLs, for a
/// URL that already chooses a socket (`?host=/dir`), and when the probe
/// fails (then TCP is used, as the URL says).
async fn local_socket(url: &str, timeout: Duration) -> Option<std::path::PathBuf> {
    let rest = url.split_once("://")?.1;
    let (authority, query) = match rest.find(['/', '?']) {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    if query.contains("host=") {
        return None;
    }
    let hostport = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let (host, port) = match hostport.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(':') && !p.contains(']') => (h, p.parse().ok()?),
        _ => (hostport, 5432u16),
    };
    if !matches!(host, "localhost" | "127.0.0.1" | "[::1]") {
        return None;
    }
    let dir = ["/var/run/postgresql", "/run/postgresql", "/tmp"]
        .into_iter()
        .map(std::path::PathBuf::from)
        .find(|d| d.join(format!(".s.PGSQL.{port}")).exists())?;
    let mut opts = ConnectOptions::new(url.to_owned());
    let probe_dir = dir.clone();
    opts.sqlx_logging(false)
        .max_connections(1)
        .connect_timeout(timeout)
        .acquire_timeout(timeout)
        .map_sqlx_postgres_opts(move |o| o.socket(&probe_dir));
    match Database::connect(opts).await {
        Ok(db) => {
            let ok = db.execute_unprepared("SELECT 1").await.is_ok();
            if let Err(e) = db.close().await {
                tracing::warn!(error = %e, "closing the socket probe failed");
            }
            ok.then_some(dir)
        }
        Err(e) => {
            tracing::warn!(
                error = %e,
                socket = %dir.display(),
                "PostgreSQL's Unix socket refused the URL's user; using TCP, where sqlx 0.9 stalls large statements"
            );
            None
        }
    }
}

/// Whether `name` is a plain lowercase identifier that needs no quoting.
fn valid_schema_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// Creates a PostgreSQL schema if it is missing, on a short-lived
/// connection.
async fn create_schema(
    pool: &ConnectOptions,
    shown: &str,
    schema: &str,
    timeout: Duration,
) -> Result<()> {
    let mut opts = pool.clone();
    opts.max_connections(1)
        .connect_timeout(timeout)
        .acquire_timeout(timeout);
    let db = Database::connect(opts)
        .await
        .map_err(|source| Error::Connect {
            url: shown.to_owned(),
            source,
        })?;
    // The name was checked to be a plain identifier, so quoting is safe.
    // `IF NOT EXISTS` alone races with a concurrent creator; the advisory
    // lock (released with the session) serializes them.
    let created = db
        .execute_unprepared(&format!(
            "SELECT pg_advisory_lock(hashtext('healthledger-cache schema {schema}'))"
        ))
        .await;
    let created = match created {
        Ok(_) => {
            db.execute_unprepared(&format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\""))
                .await
        }
        Err(e) => Err(e),
    };
    let closed = db.close().await;
    created.map_err(|e| Error::db(format!("creating schema {schema}"), e))?;
    closed.map_err(|e| Error::db("closing the setup connection", e))
}

/// Drops the PostgreSQL schema `schema` at `url` with everything in it (a
/// cache opened with [`SqlCacheBuilder::schema`]), if it exists: a cache's
/// whole removal, and the clean-up of tests and benchmarks that give each
/// run a schema of its own. The name must be one the builder accepts.
pub async fn drop_schema(url: &str, schema: &str) -> Result<()> {
    if !valid_schema_name(schema) {
        return Err(Error::InvalidSchemaName(schema.to_owned()));
    }
    let mut opts = ConnectOptions::new(url.to_owned());
    opts.max_connections(1)
        .connect_timeout(DEFAULT_CONNECT_TIMEOUT)
        .sqlx_logging(false);
    let db = Database::connect(opts)
        .await
        .map_err(|source| Error::Connect {
            url: redact(url),
            source,
        })?;
    // The name was checked to be a plain identifier, so quoting is safe.
    let dropped = db
        .execute_unprepared(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
        .await;
    let closed = db.close().await;
    dropped.map_err(|e| Error::db(format!("dropping schema {schema}"), e))?;
    closed.map_err(|e| Error::db("closing the connection", e))
}

/// Runs [`migrate`] under a session-level advisory lock keyed by the
/// current schema (PostgreSQL).
async fn migrate_locked(db: &DatabaseConnection) -> Result<()> {
    const KEY: &str = "hashtext('healthledger-cache migrations ' || current_schema())";
    db.execute_unprepared(&format!("SELECT pg_advisory_lock({KEY})"))
        .await
        .map_err(|e| Error::db("taking the migration lock", e))?;
    let migrated = migrate(db).await;
    let unlocked = db
        .execute_unprepared(&format!("SELECT pg_advisory_unlock({KEY})"))
        .await;
    migrated?;
    unlocked
        .map(drop)
        .map_err(|e| Error::db("releasing the migration lock", e))
}

/// Refuses a database migrated by newer code, then applies what is pending.
async fn migrate(db: &DatabaseConnection) -> Result<()> {
    use sea_orm_migration::MigratorTrait as _;
    let known: Vec<String> = Migrator::migrations()
        .iter()
        .map(|m| m.name().to_owned())
        .collect();
    let applied = Migrator::get_migration_models(db)
        .await
        .map_err(Error::Migrate)?;
    let unknown: Vec<String> = applied
        .into_iter()
        .map(|m| m.version)
        .filter(|v| !known.contains(v))
        .collect();
    if !unknown.is_empty() {
        return Err(Error::SchemaTooNew {
            unknown,
            latest_known: known.last().cloned().unwrap_or_default(),
        });
    }
    Migrator::up(db, None).await.map_err(Error::Migrate)
}

/// A [`CachePort`] on SQLite or PostgreSQL. Cloning gives another handle on
/// the same connection pool.
#[derive(Clone)]
pub struct SqlCache {
    /// Every write goes here (on SQLite: the single writer connection).
    pub(crate) db: DatabaseConnection,
    /// Reads go here: on a SQLite file a pool of read-only WAL connections,
    /// so that reads never queue behind the writer's transaction; otherwise
    /// the same pool as `db`.
    pub(crate) read: DatabaseConnection,
    pub(crate) backend: DbBackend,
}

impl fmt::Debug for SqlCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqlCache")
            .field("backend", &self.backend)
            .finish_non_exhaustive()
    }
}

impl SqlCache {
    /// Connects to `url` with default options (see [`SqlCacheBuilder`]).
    pub async fn connect(url: &str) -> Result<Self> {
        SqlCacheBuilder::new(url).connect().await
    }

    /// A builder for more options.
    pub fn builder(url: impl Into<String>) -> SqlCacheBuilder {
        SqlCacheBuilder::new(url)
    }

    /// Closes the connection pools.
    pub async fn close(self) -> Result<()> {
        let read = self.read.close().await;
        let write = self.db.close().await;
        read.and(write)
            .map_err(|e| Error::db("closing the pool", e))
    }
}
