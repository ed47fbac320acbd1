//! [`SqlCache`]: the [`CachePort`] over a sea-orm connection, and
//! [`SqlCacheBuilder`], which connects and migrates.

use std::{
    collections::{HashMap, HashSet},
    fmt,
    time::Duration,
};

use async_trait::async_trait;
use healthledger_core::{
    AccessGrant, AccessLogEntry, AuditAnchor, B256, BlockAdmission, BlockRef, CacheCounts,
    CacheError, CachePort, CacheResult, ChainEvent, ChainSource, DateOfBirth,
    DiagnosticCenterProfile, DoctorProfile, HhNumber, LedgerEvent, LogVerification, MedicalRecord,
    NewAccessLogEntry, NewNotification, Notification, NotificationKind, PatientProfile,
    PhoneNumber, Profile, ProfileExtras, RecordId, RecordQuery, Role, Session, SessionTokenHash,
    Timestamp, WalletAddress, admit_block, search_words,
};
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DatabaseTransaction, DbBackend,
    QueryResult, SqliteTransactionMode, Statement, TransactionOptions, TransactionTrait as _,
    Value,
};
use serde::{Deserialize, Serialize};

use crate::convert::{
    clamp, date_col, date_of, get, hash_col, hash_of, hh_col, hh_of, int, parse, prefix_bounds,
    record_id_of, role_col, role_of, serial_key, ts_col, ts_of, uint, words_doc,
};
use crate::error::{Error, Result, redact};
use crate::migration::Migrator;

/// How many PostgreSQL connections a cache opens unless told otherwise.
const DEFAULT_PG_CONNECTIONS: u32 = 10;
/// How many read-only connections a SQLite file gets unless told otherwise.
const DEFAULT_SQLITE_READERS: u32 = 4;
/// How long connecting may take unless told otherwise.
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How many records one multi-row statement writes at most, and how many
/// bytes of undo images: small enough that a statement's parameters stay
/// well under 16 KiB. (sqlx writes larger messages to PostgreSQL in several
/// pieces without `TCP_NODELAY`, and Nagle's algorithm then meets delayed
/// ACKs: every such statement stalled for about 40 ms.)
const BATCH_ROWS: usize = 20;
/// See [`BATCH_ROWS`].
const BATCH_BYTES: usize = 8 * 1024;
/// How many journal rows one statement writes at most (about 80 bytes of
/// parameters each, so a statement stays under [`BATCH_BYTES`]).
const JOURNAL_ROWS: usize = 100;
/// How many access-log rows verification reads per query.
const VERIFY_PAGE: i64 = 1_000;
/// No record's search word is longer than this many bytes (a name is at
/// most 128 characters of at most 4 bytes), so a longer query word matches
/// nothing; checking it first keeps PostgreSQL's lexeme limit out of reach.
const MAX_WORD_BYTES: usize = 512;

/// Builds `vec![Value, ...]` from anything convertible into [`Value`].
macro_rules! vals {
    ($($v:expr),* $(,)?) => { vec![$(Value::from($v)),*] };
}

/// Connects a [`SqlCache`] to a database URL and migrates it.
#[derive(Clone)]
pub struct SqlCacheBuilder {
    url: String,
    schema: Option<String>,
    max_connections: Option<u32>,
    idle_timeout: Option<Duration>,
    connect_timeout: Duration,
}

impl fmt::Debug for SqlCacheBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqlCacheBuilder")
            .field("url", &redact(&self.url))
            .field("schema", &self.schema)
            .field("max_connections", &self.max_connections)
            .field("idle_timeout", &self.idle_timeout)
            .field("connect_timeout", &self.connect_timeout)
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
        }
    }

    /// How long connecting (and later, waiting for a pooled connection)
    /// may take before the cache reports the database unavailable
    /// (default 10 s; the driver retries a refused connection until then).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
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
                opts.max_connections(self.max_connections.unwrap_or(DEFAULT_PG_CONNECTIONS))
                    // sqlx keeps prepared statements per connection; a
                    // generic plan made while a table was small (a seq
                    // scan) would otherwise stay as the table grows. Our
                    // statements are cheap to plan, so plan each execution.
                    .map_sqlx_postgres_opts(|o| {
                        o.options([("plan_cache_mode", "force_custom_plan")])
                    });
                if let Some(schema) = &self.schema {
                    if !valid_schema_name(schema) {
                        return Err(Error::InvalidSchemaName(schema.clone()));
                    }
                    create_schema(&self.url, &shown, schema, self.connect_timeout).await?;
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
async fn create_schema(url: &str, shown: &str, schema: &str, timeout: Duration) -> Result<()> {
    let mut opts = ConnectOptions::new(url.to_owned());
    opts.sqlx_logging(false)
        .max_connections(1)
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
    db: DatabaseConnection,
    /// Reads go here: on a SQLite file a pool of read-only WAL connections,
    /// so that reads never queue behind the writer's transaction; otherwise
    /// the same pool as `db`.
    read: DatabaseConnection,
    backend: DbBackend,
}

impl fmt::Debug for SqlCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqlCache")
            .field("backend", &self.backend)
            .finish_non_exhaustive()
    }
}

/// The value a block's event replaced: the before-image the undo log keeps
/// (as JSON) so that a rollback can put it back. `None` means there was no
/// row, so undoing deletes it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "table", rename_all = "snake_case")]
enum Before {
    Profile {
        hh: HhNumber,
        row: Option<(Profile, ChainSource)>,
    },
    Record {
        id: RecordId,
        row: Option<(MedicalRecord, ChainSource)>,
    },
    Grant {
        patient: HhNumber,
        grantee: HhNumber,
        row: Option<(AccessGrant, ChainSource)>,
    },
    Anchor {
        row: Option<(AuditAnchor, ChainSource)>,
    },
}

/// Numbered statement parameters (`$1`, `$2`, …; SQLite accepts the same
/// form).
#[derive(Default)]
struct Params(Vec<Value>);

impl Params {
    fn push(&mut self, v: impl Into<Value>) -> String {
        self.0.push(v.into());
        format!("${}", self.0.len())
    }
}

const PROFILE_SQL: &str = "SELECT u.role, u.wallet, u.source_block, u.source_tx,
        p.name AS p_name, p.date_of_birth AS p_dob, p.gender AS p_gender,
        p.blood_group AS p_blood, p.home_address AS p_address, p.email AS p_email,
        d.name AS d_name, d.specialization AS d_spec, d.hospital AS d_hospital,
        d.email AS d_email,
        c.name AS c_name, c.location AS c_location, c.email AS c_email
    FROM users u
    LEFT JOIN patients p ON p.hh = u.hh
    LEFT JOIN doctors d ON d.hh = u.hh
    LEFT JOIN diagnostic_centers c ON c.hh = u.hh
    WHERE u.hh = $1";

const ACCESS_LOG_COLS: &str =
    "seq, at, actor, patient, record_id, action, allowed, prev_hash, hash";

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

    fn pg(&self) -> bool {
        self.backend == DbBackend::Postgres
    }

    fn st(&self, sql: &str, values: Vec<Value>) -> Statement {
        Statement::from_sql_and_values(self.backend, sql, values)
    }

    /// A JSON-valued parameter placeholder.
    fn json_param(&self, p: &str) -> String {
        if self.pg() {
            format!("CAST({p} AS JSONB)")
        } else {
            p.to_owned()
        }
    }

    /// A JSON column read back as text.
    fn json_out(&self, col: &str) -> String {
        if self.pg() {
            format!("{col}::text AS {}", col.rsplit('.').next().unwrap_or(col))
        } else {
            col.to_owned()
        }
    }

    fn record_cols(&self) -> String {
        format!(
            "r.patient, r.serial_key, r.creator, r.cid, {}, r.created_at, r.block_number, r.tx_hash",
            self.json_out("r.metadata")
        )
    }

    async fn exec<C: ConnectionTrait>(
        &self,
        c: &C,
        context: &str,
        sql: &str,
        values: Vec<Value>,
    ) -> Result<u64> {
        c.execute_raw(self.st(sql, values))
            .await
            .map(|r| r.rows_affected())
            .map_err(|e| Error::db(context, e))
    }

    async fn one<C: ConnectionTrait>(
        &self,
        c: &C,
        context: &str,
        sql: &str,
        values: Vec<Value>,
    ) -> Result<Option<QueryResult>> {
        c.query_one_raw(self.st(sql, values))
            .await
            .map_err(|e| Error::db(context, e))
    }

    async fn all<C: ConnectionTrait>(
        &self,
        c: &C,
        context: &str,
        sql: &str,
        values: Vec<Value>,
    ) -> Result<Vec<QueryResult>> {
        c.query_all_raw(self.st(sql, values))
            .await
            .map_err(|e| Error::db(context, e))
    }

    /// Begins a write transaction (`BEGIN IMMEDIATE` on SQLite, so that a
    /// writer never has to upgrade a read lock).
    async fn begin(&self) -> Result<DatabaseTransaction> {
        let opts = TransactionOptions {
            sqlite_transaction_mode: (!self.pg()).then_some(SqliteTransactionMode::Immediate),
            ..Default::default()
        };
        self.db
            .begin_with_options(opts)
            .await
            .map_err(|e| Error::db("beginning a transaction", e))
    }

    /// Commits `tx` when `result` is a success, rolls it back otherwise.
    async fn finish<T>(&self, tx: DatabaseTransaction, result: CacheResult<T>) -> CacheResult<T> {
        match result {
            Ok(v) => {
                tx.commit()
                    .await
                    .map_err(|e| Error::db("committing a transaction", e))?;
                Ok(v)
            }
            Err(err) => {
                if let Err(e) = tx.rollback().await {
                    tracing::warn!(error = %e, "rolling back a failed cache transaction failed");
                }
                Err(err)
            }
        }
    }

    /// Serializes chain writers across connections (and processes) on
    /// PostgreSQL; SQLite's `BEGIN IMMEDIATE` already did.
    async fn lock_chain(&self, tx: &DatabaseTransaction) -> Result<()> {
        if self.pg() {
            self.exec(
                tx,
                "locking the sync state",
                "SELECT id FROM sync_state WHERE id = 1 FOR UPDATE",
                vec![],
            )
            .await?;
        }
        Ok(())
    }

    // ----- profiles -----

    async fn load_profile<C: ConnectionTrait>(
        &self,
        c: &C,
        hh: HhNumber,
    ) -> Result<Option<(Profile, ChainSource)>> {
        let Some(row) = self
            .one(c, "reading a profile", PROFILE_SQL, vals![hh_col(hh)])
            .await?
        else {
            return Ok(None);
        };
        let t = "users";
        let role = role_of(t, get(&row, t, "role")?)?;
        let wallet: WalletAddress = parse(t, get::<String>(&row, t, "wallet")?)?;
        let source = source_of(&row, t, "source_block", "source_tx")?;
        let profile = match role {
            Role::Patient => {
                let t = "patients";
                let dob = date_of(t, get(&row, t, "p_dob")?)?;
                Profile::Patient(PatientProfile {
                    hh,
                    wallet,
                    name: parse(t, get::<String>(&row, t, "p_name")?)?,
                    date_of_birth: DateOfBirth::new(dob).map_err(|e| Error::corrupt(t, e))?,
                    gender: parse(t, get::<String>(&row, t, "p_gender")?)?,
                    blood_group: parse(t, get::<String>(&row, t, "p_blood")?)?,
                    home_address: parse(t, get::<String>(&row, t, "p_address")?)?,
                    email: parse(t, get::<String>(&row, t, "p_email")?)?,
                })
            }
            Role::Doctor => {
                let t = "doctors";
                Profile::Doctor(DoctorProfile {
                    hh,
                    wallet,
                    name: parse(t, get::<String>(&row, t, "d_name")?)?,
                    specialization: parse(t, get::<String>(&row, t, "d_spec")?)?,
                    hospital: parse(t, get::<String>(&row, t, "d_hospital")?)?,
                    email: parse(t, get::<String>(&row, t, "d_email")?)?,
                })
            }
            Role::DiagnosticCenter => {
                let t = "diagnostic_centers";
                Profile::DiagnosticCenter(DiagnosticCenterProfile {
                    hh,
                    wallet,
                    name: parse(t, get::<String>(&row, t, "c_name")?)?,
                    location: parse(t, get::<String>(&row, t, "c_location")?)?,
                    email: parse(t, get::<String>(&row, t, "c_email")?)?,
                })
            }
        };
        Ok(Some((profile, source)))
    }

    /// Checks ownership rules, then writes the profile.
    async fn put_profile<C: ConnectionTrait>(
        &self,
        c: &C,
        profile: &Profile,
        source: ChainSource,
    ) -> CacheResult<()> {
        let hh = profile.hh();
        let wallet = profile.wallet();
        if let Some(row) = self
            .one(
                c,
                "checking the wallet's owner",
                "SELECT hh FROM users WHERE wallet = $1 AND hh <> $2",
                vals![wallet.to_string(), hh_col(hh)],
            )
            .await?
        {
            let owner = hh_of("users", get(&row, "users", "hh")?)?;
            return Err(CacheError::Conflict(format!(
                "wallet {wallet} already belongs to HH number {owner}"
            )));
        }
        if let Some(row) = self
            .one(
                c,
                "checking the user's role",
                "SELECT role FROM users WHERE hh = $1",
                vals![hh_col(hh)],
            )
            .await?
        {
            let role = role_of("users", get(&row, "users", "role")?)?;
            if role != profile.role() {
                return Err(CacheError::Conflict(format!(
                    "HH number {hh} is cached as a {role}, not a {}",
                    profile.role()
                )));
            }
        }
        // The check above reads without a lock: a concurrent writer may
        // have cached the HH number with another role since, and then the
        // guarded upsert writes nothing.
        if !self.write_profile(c, profile, source).await? {
            return Err(CacheError::Conflict(format!(
                "HH number {hh} is cached with another role than {}",
                profile.role()
            )));
        }
        Ok(())
    }

    /// Writes the user row and the role's profile row; `false` (and
    /// nothing written) when the HH number is cached with another role.
    /// The role is compared inside the upsert (`ON CONFLICT … WHERE`), so
    /// two concurrent writers of one HH number with different roles cannot
    /// both succeed: PostgreSQL makes the second wait for the first's
    /// commit and then evaluates the condition against its row.
    async fn write_profile<C: ConnectionTrait>(
        &self,
        c: &C,
        profile: &Profile,
        source: ChainSource,
    ) -> Result<bool> {
        let hh = hh_col(profile.hh());
        let block = int("block number", source.block_number)?;
        let tx = hash_col(source.tx_hash);
        let written = self
            .exec(
                c,
                "writing a user",
                "INSERT INTO users (hh, role, wallet, source_block, source_tx)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (hh) DO UPDATE SET wallet = excluded.wallet,
                source_block = excluded.source_block, source_tx = excluded.source_tx
             WHERE users.role = excluded.role",
                vals![
                    hh,
                    role_col(profile.role()),
                    profile.wallet().to_string(),
                    block,
                    tx.clone()
                ],
            )
            .await?;
        if written == 0 {
            return Ok(false);
        }
        match profile {
            Profile::Patient(p) => {
                self.exec(
                    c,
                    "writing a patient profile",
                    "INSERT INTO patients (hh, name, name_lower, date_of_birth, gender,
                        blood_group, home_address, email, source_block, source_tx)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
                     ON CONFLICT (hh) DO UPDATE SET name = excluded.name,
                        name_lower = excluded.name_lower,
                        date_of_birth = excluded.date_of_birth, gender = excluded.gender,
                        blood_group = excluded.blood_group,
                        home_address = excluded.home_address, email = excluded.email,
                        source_block = excluded.source_block, source_tx = excluded.source_tx",
                    vals![
                        hh,
                        p.name.as_str(),
                        p.name.as_str().to_lowercase(),
                        date_col(p.date_of_birth.date()),
                        p.gender.as_str(),
                        p.blood_group.as_str(),
                        p.home_address.as_str(),
                        p.email.as_str(),
                        block,
                        tx
                    ],
                )
                .await?;
            }
            Profile::Doctor(d) => {
                self.exec(
                    c,
                    "writing a doctor profile",
                    "INSERT INTO doctors (hh, name, specialization, hospital, email,
                        source_block, source_tx)
                     VALUES ($1, $2, $3, $4, $5, $6, $7)
                     ON CONFLICT (hh) DO UPDATE SET name = excluded.name,
                        specialization = excluded.specialization,
                        hospital = excluded.hospital, email = excluded.email,
                        source_block = excluded.source_block, source_tx = excluded.source_tx",
                    vals![
                        hh,
                        d.name.as_str(),
                        d.specialization.as_str(),
                        d.hospital.as_str(),
                        d.email.as_str(),
                        block,
                        tx
                    ],
                )
                .await?;
            }
            Profile::DiagnosticCenter(dc) => {
                self.exec(
                    c,
                    "writing a diagnostic-center profile",
                    "INSERT INTO diagnostic_centers (hh, name, location, email,
                        source_block, source_tx)
                     VALUES ($1, $2, $3, $4, $5, $6)
                     ON CONFLICT (hh) DO UPDATE SET name = excluded.name,
                        location = excluded.location, email = excluded.email,
                        source_block = excluded.source_block, source_tx = excluded.source_tx",
                    vals![
                        hh,
                        dc.name.as_str(),
                        dc.location.as_str(),
                        dc.email.as_str(),
                        block,
                        tx
                    ],
                )
                .await?;
            }
        }
        Ok(true)
    }

    async fn delete_profile<C: ConnectionTrait>(&self, c: &C, hh: HhNumber) -> Result<()> {
        for table in ["patients", "doctors", "diagnostic_centers", "users"] {
            self.exec(
                c,
                "deleting a profile",
                &format!("DELETE FROM {table} WHERE hh = $1"),
                vals![hh_col(hh)],
            )
            .await?;
        }
        Ok(())
    }

    // ----- records -----

    fn record_of_row(&self, row: &QueryResult) -> Result<(MedicalRecord, ChainSource)> {
        let t = "records";
        let id = record_id_of(t, get(row, t, "patient")?, get(row, t, "serial_key")?)?;
        let meta: String = get(row, t, "metadata")?;
        let meta = serde_json::from_str(&meta)
            .map_err(|e| Error::corrupt(t, format!("metadata of {id}: {e}")))?;
        let record = MedicalRecord {
            id,
            patient: id.patient(),
            creator: hh_of(t, get(row, t, "creator")?)?,
            cid: parse(t, get::<String>(row, t, "cid")?)?,
            meta,
            created_at: ts_of(get(row, t, "created_at")?),
        };
        Ok((record, source_of(row, t, "block_number", "tx_hash")?))
    }

    async fn load_record<C: ConnectionTrait>(
        &self,
        c: &C,
        id: RecordId,
    ) -> Result<Option<(MedicalRecord, ChainSource)>> {
        let sql = format!(
            "SELECT {} FROM records r WHERE r.patient = $1 AND r.serial_key = $2",
            self.record_cols()
        );
        self.one(
            c,
            "reading a record",
            &sql,
            vals![hh_col(id.patient()), serial_key(id.serial())],
        )
        .await?
        .map(|row| self.record_of_row(&row))
        .transpose()
    }

    async fn records_where(&self, filter: &str, value: HhNumber) -> Result<Vec<MedicalRecord>> {
        let sql = format!(
            "SELECT {} FROM records r WHERE {filter} = $1
             ORDER BY r.test_date DESC, r.patient, r.serial_key",
            self.record_cols()
        );
        self.all(&self.read, "listing records", &sql, vals![hh_col(value)])
            .await?
            .iter()
            .map(|row| self.record_of_row(row).map(|(r, _)| r))
            .collect()
    }

    /// Pushes one record's column values and returns its `VALUES` tuple.
    fn record_values(
        &self,
        p: &mut Params,
        r: &MedicalRecord,
        source: ChainSource,
    ) -> CacheResult<String> {
        if r.patient != r.id.patient() {
            return Err(CacheError::Invalid(format!(
                "record {} names patient {}, but its id belongs to patient {}",
                r.id,
                r.patient,
                r.id.patient()
            )));
        }
        let meta = serde_json::to_string(&r.meta).map_err(CacheError::other)?;
        let cols = [
            p.push(r.id.to_string()),
            p.push(hh_col(r.id.patient())),
            p.push(serial_key(r.id.serial())),
            p.push(hh_col(r.creator)),
            p.push(r.cid.to_string()),
            p.push(r.meta.record_type.as_str().to_lowercase()),
            p.push(date_col(r.meta.date)),
            self.json_param(&p.push(meta)),
            p.push(words_doc(&r.meta.search_words())),
            p.push(ts_col(r.created_at)),
            p.push(hash_col(source.tx_hash)),
            p.push(int("block number", source.block_number)?),
        ];
        Ok(format!("({})", cols.join(", ")))
    }

    /// Inserts or replaces records, given as `VALUES` tuples.
    async fn upsert_records<C: ConnectionTrait>(
        &self,
        c: &C,
        tuples: &[String],
        p: Params,
    ) -> Result<()> {
        let sql = format!(
            "INSERT INTO records (record_id, patient, serial_key, creator, cid,
                record_type_lower, test_date, metadata, search_text, created_at,
                tx_hash, block_number)
             VALUES {}
             ON CONFLICT (patient, serial_key) DO UPDATE SET record_id = excluded.record_id,
                creator = excluded.creator, cid = excluded.cid,
                record_type_lower = excluded.record_type_lower,
                test_date = excluded.test_date, metadata = excluded.metadata,
                search_text = excluded.search_text, created_at = excluded.created_at,
                tx_hash = excluded.tx_hash, block_number = excluded.block_number",
            tuples.join(", ")
        );
        self.exec(c, "writing records", &sql, p.0).await.map(drop)
    }

    async fn put_record<C: ConnectionTrait>(
        &self,
        c: &C,
        r: &MedicalRecord,
        source: ChainSource,
    ) -> CacheResult<()> {
        let mut p = Params::default();
        let tuple = self.record_values(&mut p, r, source)?;
        Ok(self.upsert_records(c, &[tuple], p).await?)
    }

    /// Writes a run of record creations with distinct ids (see
    /// [`record_run`]) and returns their before-images in event order.
    async fn put_record_run(
        &self,
        tx: &DatabaseTransaction,
        events: &[ChainEvent],
    ) -> CacheResult<Vec<Before>> {
        let records: Vec<(&MedicalRecord, ChainSource)> = events
            .iter()
            .filter_map(|e| match &e.event {
                LedgerEvent::RecordCreated(r) => Some((r, source_of_event(e))),
                _ => None,
            })
            .collect();
        let mut before: HashMap<RecordId, (MedicalRecord, ChainSource)> = HashMap::new();
        for chunk in records.chunks(BATCH_ROWS) {
            let mut p = Params::default();
            let keys: Vec<String> = chunk
                .iter()
                .map(|(r, _)| {
                    format!(
                        "(r.patient = {} AND r.serial_key = {})",
                        p.push(hh_col(r.id.patient())),
                        p.push(serial_key(r.id.serial()))
                    )
                })
                .collect();
            // An OR of key lookups: both backends answer it from the key's
            // index (SQLite scans the table for a row-value IN list).
            let sql = format!(
                "SELECT {} FROM records r WHERE {}",
                self.record_cols(),
                keys.join(" OR ")
            );
            for row in self.all(tx, "reading records", &sql, p.0).await? {
                let (r, s) = self.record_of_row(&row)?;
                before.insert(r.id, (r, s));
            }
            let mut p = Params::default();
            let tuples = chunk
                .iter()
                .map(|(r, s)| self.record_values(&mut p, r, *s))
                .collect::<CacheResult<Vec<_>>>()?;
            self.upsert_records(tx, &tuples, p).await?;
        }
        Ok(records
            .iter()
            .map(|(r, _)| Before::Record {
                id: r.id,
                row: before.remove(&r.id),
            })
            .collect())
    }

    async fn insert_undo(
        &self,
        tx: &DatabaseTransaction,
        tuples: &[String],
        p: Params,
    ) -> Result<()> {
        self.exec(
            tx,
            "writing the undo log",
            &format!(
                "INSERT INTO undo_log (block_number, step, image) VALUES {}",
                tuples.join(", ")
            ),
            p.0,
        )
        .await
        .map(drop)
    }

    /// Appends blocks' before-images to the undo log, in order, in
    /// multi-row statements of about [`BATCH_BYTES`].
    async fn write_undo(
        &self,
        tx: &DatabaseTransaction,
        blocks: &[(i64, Vec<Before>)],
    ) -> CacheResult<()> {
        let mut p = Params::default();
        let mut tuples = Vec::new();
        let mut bytes = 0;
        for (number, befores) in blocks {
            for (step, before) in befores.iter().enumerate() {
                let step = i64::try_from(step).map_err(CacheError::other)?;
                let image = serde_json::to_string(before).map_err(CacheError::other)?;
                bytes += image.len();
                tuples.push(format!(
                    "({}, {}, {})",
                    p.push(*number),
                    p.push(step),
                    self.json_param(&p.push(image))
                ));
                if bytes >= BATCH_BYTES {
                    self.insert_undo(tx, &tuples, std::mem::take(&mut p))
                        .await?;
                    tuples.clear();
                    bytes = 0;
                }
            }
        }
        if !tuples.is_empty() {
            self.insert_undo(tx, &tuples, p).await?;
        }
        Ok(())
    }

    /// Journals applied blocks in multi-row statements of at most
    /// [`JOURNAL_ROWS`] rows.
    async fn write_journal(&self, tx: &DatabaseTransaction, blocks: &[BlockRef]) -> Result<()> {
        for chunk in blocks.chunks(JOURNAL_ROWS) {
            let mut p = Params::default();
            let mut tuples = Vec::with_capacity(chunk.len());
            for b in chunk {
                tuples.push(format!(
                    "({}, {}, {}, {})",
                    p.push(int("block number", b.number)?),
                    p.push(hash_col(b.hash)),
                    p.push(hash_col(b.parent_hash)),
                    p.push(ts_col(b.timestamp))
                ));
            }
            self.exec(
                tx,
                "journaling blocks",
                &format!(
                    "INSERT INTO journal (number, hash, parent_hash, block_time) VALUES {}",
                    tuples.join(", ")
                ),
                p.0,
            )
            .await?;
        }
        Ok(())
    }

    async fn delete_record<C: ConnectionTrait>(&self, c: &C, id: RecordId) -> Result<()> {
        self.exec(
            c,
            "deleting a record",
            "DELETE FROM records WHERE patient = $1 AND serial_key = $2",
            vals![hh_col(id.patient()), serial_key(id.serial())],
        )
        .await
        .map(drop)
    }

    // ----- grants -----

    fn grant_of_row(row: &QueryResult) -> Result<(AccessGrant, ChainSource)> {
        let t = "grants";
        let opt_ts = |col: &str| -> Result<Option<Timestamp>> {
            Ok(get::<Option<i64>>(row, t, col)?.map(ts_of))
        };
        let grant = AccessGrant {
            patient: hh_of(t, get(row, t, "patient")?)?,
            grantee: hh_of(t, get(row, t, "grantee")?)?,
            granted_at: ts_of(get(row, t, "granted_at")?),
            expires_at: opt_ts("expires_at")?,
            revoked_at: opt_ts("revoked_at")?,
        };
        Ok((grant, source_of(row, t, "source_block", "source_tx")?))
    }

    async fn load_grant<C: ConnectionTrait>(
        &self,
        c: &C,
        patient: HhNumber,
        grantee: HhNumber,
    ) -> Result<Option<(AccessGrant, ChainSource)>> {
        self.one(
            c,
            "reading a grant",
            "SELECT * FROM grants WHERE patient = $1 AND grantee = $2",
            vals![hh_col(patient), hh_col(grantee)],
        )
        .await?
        .map(|row| Self::grant_of_row(&row))
        .transpose()
    }

    async fn put_grant<C: ConnectionTrait>(
        &self,
        c: &C,
        g: &AccessGrant,
        source: ChainSource,
    ) -> Result<()> {
        self.exec(
            c,
            "writing a grant",
            "INSERT INTO grants (patient, grantee, granted_at, expires_at, revoked_at,
                source_block, source_tx)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (patient, grantee) DO UPDATE SET granted_at = excluded.granted_at,
                expires_at = excluded.expires_at, revoked_at = excluded.revoked_at,
                source_block = excluded.source_block, source_tx = excluded.source_tx",
            vals![
                hh_col(g.patient),
                hh_col(g.grantee),
                ts_col(g.granted_at),
                g.expires_at.map(ts_col),
                g.revoked_at.map(ts_col),
                int("block number", source.block_number)?,
                hash_col(source.tx_hash)
            ],
        )
        .await
        .map(drop)
    }

    async fn delete_grant<C: ConnectionTrait>(
        &self,
        c: &C,
        patient: HhNumber,
        grantee: HhNumber,
    ) -> Result<()> {
        self.exec(
            c,
            "deleting a grant",
            "DELETE FROM grants WHERE patient = $1 AND grantee = $2",
            vals![hh_col(patient), hh_col(grantee)],
        )
        .await
        .map(drop)
    }

    // ----- audit anchor -----

    async fn load_anchor<C: ConnectionTrait>(
        &self,
        c: &C,
    ) -> Result<Option<(AuditAnchor, ChainSource)>> {
        let Some(row) = self
            .one(
                c,
                "reading the audit anchor",
                "SELECT * FROM audit_anchor WHERE id = 1",
                vec![],
            )
            .await?
        else {
            return Ok(None);
        };
        let t = "audit_anchor";
        let anchor = AuditAnchor {
            digest: hash_of(t, &get::<Vec<u8>>(&row, t, "digest")?)?,
            last_seq: uint(t, "seq", get(&row, t, "last_seq")?)?,
            anchored_at: ts_of(get(&row, t, "anchored_at")?),
        };
        Ok(Some((
            anchor,
            source_of(&row, t, "source_block", "source_tx")?,
        )))
    }

    async fn put_anchor<C: ConnectionTrait>(
        &self,
        c: &C,
        a: &AuditAnchor,
        source: ChainSource,
    ) -> Result<()> {
        self.exec(
            c,
            "writing the audit anchor",
            "INSERT INTO audit_anchor (id, digest, last_seq, anchored_at, source_block, source_tx)
             VALUES (1, $1, $2, $3, $4, $5)
             ON CONFLICT (id) DO UPDATE SET digest = excluded.digest,
                last_seq = excluded.last_seq, anchored_at = excluded.anchored_at,
                source_block = excluded.source_block, source_tx = excluded.source_tx",
            vals![
                hash_col(a.digest),
                int("access-log seq", a.last_seq)?,
                ts_col(a.anchored_at),
                int("block number", source.block_number)?,
                hash_col(source.tx_hash)
            ],
        )
        .await
        .map(drop)
    }

    // ----- blocks -----

    /// Applies one event and returns the before-image to journal, if the
    /// event changed anything.
    async fn apply_event(
        &self,
        tx: &DatabaseTransaction,
        e: &ChainEvent,
    ) -> CacheResult<Option<Before>> {
        let src = source_of_event(e);
        let profile = match &e.event {
            LedgerEvent::ProfileUpdated(p) => Some(p.clone()),
            other => other.registered_profile(),
        };
        if let Some(p) = profile {
            let before = self.load_profile(tx, p.hh()).await?;
            self.put_profile(tx, &p, src).await?;
            return Ok(Some(Before::Profile {
                hh: p.hh(),
                row: before,
            }));
        }
        Ok(match &e.event {
            LedgerEvent::RecordCreated(r) => {
                let before = self.load_record(tx, r.id).await?;
                self.put_record(tx, r, src).await?;
                Some(Before::Record {
                    id: r.id,
                    row: before,
                })
            }
            LedgerEvent::AccessGranted(g) => {
                let before = self.load_grant(tx, g.patient, g.grantee).await?;
                self.put_grant(tx, g, src).await?;
                Some(Before::Grant {
                    patient: g.patient,
                    grantee: g.grantee,
                    row: before,
                })
            }
            LedgerEvent::AccessRevoked {
                patient,
                grantee,
                revoked_at,
            } => {
                // A revoke of a grant this cache never saw has nothing to
                // update; a full sync restores the grant from the chain.
                match self.load_grant(tx, *patient, *grantee).await? {
                    Some((g, s)) => {
                        let revoked = AccessGrant {
                            revoked_at: Some(*revoked_at),
                            ..g.clone()
                        };
                        self.put_grant(tx, &revoked, src).await?;
                        Some(Before::Grant {
                            patient: *patient,
                            grantee: *grantee,
                            row: Some((g, s)),
                        })
                    }
                    None => None,
                }
            }
            LedgerEvent::AuditAnchored(a) => {
                let before = self.load_anchor(tx).await?;
                self.put_anchor(tx, a, src).await?;
                Some(Before::Anchor { row: before })
            }
            _ => None,
        })
    }

    /// Puts a before-image back.
    async fn restore(&self, tx: &DatabaseTransaction, before: Before) -> Result<()> {
        match before {
            Before::Profile { hh, row: None } => self.delete_profile(tx, hh).await,
            Before::Profile {
                row: Some((p, s)), ..
            } => match self.write_profile(tx, &p, s).await? {
                true => Ok(()),
                false => Err(Error::corrupt(
                    "undo_log",
                    format!("restoring profile {}: cached with another role", p.hh()),
                )),
            },
            Before::Record { id, row: None } => self.delete_record(tx, id).await,
            Before::Record {
                row: Some((r, s)), ..
            } => self
                .put_record(tx, &r, s)
                .await
                .map_err(|e| Error::corrupt("undo_log", format!("restoring record {}: {e}", r.id))),
            Before::Grant {
                patient,
                grantee,
                row: None,
            } => self.delete_grant(tx, patient, grantee).await,
            Before::Grant {
                row: Some((g, s)), ..
            } => self.put_grant(tx, &g, s).await,
            Before::Anchor { row: None } => self
                .exec(
                    tx,
                    "deleting the audit anchor",
                    "DELETE FROM audit_anchor",
                    vec![],
                )
                .await
                .map(drop),
            Before::Anchor { row: Some((a, s)) } => self.put_anchor(tx, &a, s).await,
        }
    }

    async fn read_sync_state<C: ConnectionTrait>(&self, c: &C) -> Result<SyncState> {
        let row = self
            .one(
                c,
                "reading the sync state",
                "SELECT * FROM sync_state WHERE id = 1",
                vec![],
            )
            .await?
            .ok_or_else(|| Error::corrupt("sync_state", "its single row is missing"))?;
        Ok(SyncState {
            checkpoint: block_of(&row, "checkpoint")?,
            pruned: block_of(&row, "pruned")?,
        })
    }

    async fn set_checkpoint(&self, tx: &DatabaseTransaction, b: Option<BlockRef>) -> Result<()> {
        let values = match b {
            Some(b) => vals![
                Some(int("block number", b.number)?),
                Some(hash_col(b.hash)),
                Some(hash_col(b.parent_hash)),
                Some(ts_col(b.timestamp))
            ],
            None => vals![None::<i64>, None::<Vec<u8>>, None::<Vec<u8>>, None::<i64>],
        };
        self.exec(
            tx,
            "moving the checkpoint",
            "UPDATE sync_state SET checkpoint_number = $1, checkpoint_hash = $2,
                checkpoint_parent = $3, checkpoint_time = $4 WHERE id = 1",
            values,
        )
        .await
        .map(drop)
    }

    /// The hashes journaled at heights `from..=to`.
    async fn journaled_hashes(
        &self,
        tx: &DatabaseTransaction,
        from: i64,
        to: i64,
    ) -> Result<HashMap<u64, B256>> {
        let rows = self
            .all(
                tx,
                "reading the journal",
                "SELECT number, hash FROM journal WHERE number >= $1 AND number <= $2",
                vals![from, to],
            )
            .await?;
        let mut hashes = HashMap::with_capacity(rows.len());
        for row in rows {
            let n = uint("journal", "block number", get(&row, "journal", "number")?)?;
            hashes.insert(
                n,
                hash_of("journal", &get::<Vec<u8>>(&row, "journal", "hash")?)?,
            );
        }
        Ok(hashes)
    }

    /// Applies a block's events and returns their before-images.
    async fn apply_events(
        &self,
        tx: &DatabaseTransaction,
        events: &[ChainEvent],
    ) -> CacheResult<Vec<Before>> {
        // Runs of record creations (the bulk of a busy block) are written
        // with a few multi-row statements; everything else event by event.
        let mut befores: Vec<Before> = Vec::new();
        let mut i = 0;
        while i < events.len() {
            let run = record_run(&events[i..]);
            if run > 1 {
                befores.extend(self.put_record_run(tx, &events[i..i + run]).await?);
                i += run;
            } else {
                befores.extend(self.apply_event(tx, &events[i]).await?);
                i += 1;
            }
        }
        Ok(befores)
    }

    /// Applies a batch of blocks inside `tx`: linkage is checked in memory
    /// block by block ([`admit_block`], the checkpoint advancing through
    /// the batch), then the undo images of the blocks above `finalized`
    /// and the journal rows are written together and the checkpoint moves
    /// once. Blocks at or below `finalized` keep no undo rows; the highest
    /// of them becomes the final block (the `pruned_*` columns), below
    /// which rolling back is refused.
    async fn apply_blocks_in(
        &self,
        tx: &DatabaseTransaction,
        batch: &[(BlockRef, Vec<ChainEvent>)],
        finalized: Option<u64>,
    ) -> CacheResult<()> {
        let (Some(first), Some(last)) = (batch.first(), batch.last()) else {
            return Ok(());
        };
        let mut low = first.0.number;
        let mut high = last.0.number;
        for (b, _) in batch {
            int("block number", b.number)?;
            low = low.min(b.number);
            high = high.max(b.number);
        }
        self.lock_chain(tx).await?;
        let state = self.read_sync_state(tx).await?;
        let mut checkpoint = state.checkpoint();
        let mut journaled = self
            .journaled_hashes(tx, int("block number", low)?, int("block number", high)?)
            .await?;
        let mut applied: Vec<BlockRef> = Vec::with_capacity(batch.len());
        let mut undo: Vec<(i64, Vec<Before>)> = Vec::new();
        let mut final_block: Option<BlockRef> = None;
        for (block, events) in batch {
            let hash = journaled.get(&block.number).copied();
            if admit_block(block, events, hash, checkpoint.as_ref())?
                == BlockAdmission::AlreadyApplied
            {
                continue;
            }
            let befores = self.apply_events(tx, events).await?;
            if finalized.is_some_and(|f| block.number <= f) {
                final_block = Some(*block);
            } else if !befores.is_empty() {
                undo.push((int("block number", block.number)?, befores));
            }
            journaled.insert(block.number, block.hash);
            checkpoint = Some(*block);
            applied.push(*block);
        }
        let Some(top) = applied.last().copied() else {
            return Ok(());
        };
        self.write_undo(tx, &undo).await?;
        self.write_journal(tx, &applied).await?;
        self.set_checkpoint(tx, Some(top)).await?;
        if let Some(f) = final_block.filter(|f| state.pruned.is_none_or(|p| p.number < f.number)) {
            self.set_final(tx, f).await?;
        }
        Ok(())
    }

    /// Records `b` as the final block: nothing below it can be rolled back.
    async fn set_final(&self, tx: &DatabaseTransaction, b: BlockRef) -> Result<()> {
        self.exec(
            tx,
            "recording the final block",
            "UPDATE sync_state SET pruned_number = $1, pruned_hash = $2, pruned_parent = $3,
                pruned_time = $4 WHERE id = 1",
            vals![
                int("block number", b.number)?,
                hash_col(b.hash),
                hash_col(b.parent_hash),
                ts_col(b.timestamp)
            ],
        )
        .await
        .map(drop)
    }

    async fn rollback_in(&self, tx: &DatabaseTransaction, number: u64) -> CacheResult<()> {
        self.lock_chain(tx).await?;
        let state = self.read_sync_state(tx).await?;
        if let Some(p) = state.pruned.filter(|p| p.number > number) {
            return Err(CacheError::Conflict(format!(
                "cannot roll back to {number}: block {} is final (pruned, or applied at or below the finalized height)",
                p.number
            )));
        }
        let target = clamp(number);
        let blocks = self
            .all(
                tx,
                "reading the journal",
                "SELECT number FROM journal WHERE number > $1 ORDER BY number DESC",
                vals![target],
            )
            .await?;
        let images_sql = format!(
            "SELECT {} FROM undo_log WHERE block_number = $1 ORDER BY step DESC",
            self.json_out("image")
        );
        for row in blocks {
            let n: i64 = get(&row, "journal", "number")?;
            for img in self
                .all(tx, "reading the undo log", &images_sql, vals![n])
                .await?
            {
                let image: String = get(&img, "undo_log", "image")?;
                let before: Before = serde_json::from_str(&image)
                    .map_err(|e| Error::corrupt("undo_log", format!("block {n}: {e}")))?;
                self.restore(tx, before).await?;
            }
            self.exec(
                tx,
                "dropping undo data",
                "DELETE FROM undo_log WHERE block_number = $1",
                vals![n],
            )
            .await?;
            self.exec(
                tx,
                "dropping a journal entry",
                "DELETE FROM journal WHERE number = $1",
                vals![n],
            )
            .await?;
        }
        let top = self
            .one(
                tx,
                "reading the journal",
                "SELECT number, hash, parent_hash, block_time FROM journal ORDER BY number DESC LIMIT 1",
                vec![],
            )
            .await?
            .map(|row| block_of(&row, "journal"))
            .transpose()?
            .flatten();
        self.set_checkpoint(tx, top.or(state.pruned)).await?;
        Ok(())
    }

    async fn prune_in(&self, tx: &DatabaseTransaction, below: u64) -> CacheResult<u64> {
        self.lock_chain(tx).await?;
        let below = clamp(below);
        let Some(top) = self
            .one(
                tx,
                "reading the journal",
                "SELECT number, hash, parent_hash, block_time FROM journal WHERE number < $1
                 ORDER BY number DESC LIMIT 1",
                vals![below],
            )
            .await?
        else {
            return Ok(0);
        };
        let top = block_of(&top, "journal")?
            .ok_or_else(|| Error::corrupt("journal", "an entry without a number"))?;
        self.exec(
            tx,
            "pruning the undo log",
            "DELETE FROM undo_log WHERE block_number < $1",
            vals![below],
        )
        .await?;
        let pruned = self
            .exec(
                tx,
                "pruning the journal",
                "DELETE FROM journal WHERE number < $1",
                vals![below],
            )
            .await?;
        // Blocks applied as final may sit above the pruned ones: the final
        // block only ever moves up.
        let state = self.read_sync_state(tx).await?;
        if state.pruned.is_none_or(|p| p.number < top.number) {
            self.set_final(tx, top).await?;
        }
        Ok(pruned)
    }

    // ----- access log -----

    fn log_entry_of_row(row: &QueryResult) -> Result<AccessLogEntry> {
        let t = "access_log";
        let action: i64 = get(row, t, "action")?;
        let record: Option<String> = get(row, t, "record_id")?;
        Ok(AccessLogEntry {
            seq: uint(t, "seq", get(row, t, "seq")?)?,
            entry: NewAccessLogEntry {
                at: ts_of(get(row, t, "at")?),
                actor: hh_of(t, get(row, t, "actor")?)?,
                patient: hh_of(t, get(row, t, "patient")?)?,
                record: record.map(|r| parse(t, r)).transpose()?,
                action: u8::try_from(action)
                    .ok()
                    .and_then(healthledger_core::AccessAction::from_code)
                    .ok_or_else(|| Error::corrupt(t, format!("invalid action code {action}")))?,
                allowed: get(row, t, "allowed")?,
            },
            prev_hash: hash_of(t, &get::<Vec<u8>>(row, t, "prev_hash")?)?,
            hash: hash_of(t, &get::<Vec<u8>>(row, t, "hash")?)?,
        })
    }

    async fn append_in(
        &self,
        tx: &DatabaseTransaction,
        entry: &NewAccessLogEntry,
    ) -> CacheResult<AccessLogEntry> {
        if self.pg() {
            // Appends serialize on this lock, so seqs have no gaps; plain
            // reads (ACCESS SHARE) go on.
            self.exec(
                tx,
                "locking the access log",
                "LOCK TABLE access_log IN EXCLUSIVE MODE",
                vec![],
            )
            .await?;
        }
        let last = self
            .one(
                tx,
                "reading the access log's head",
                "SELECT seq, hash FROM access_log ORDER BY seq DESC LIMIT 1",
                vec![],
            )
            .await?;
        let (seq, prev) = match last {
            Some(row) => (
                uint("access_log", "seq", get(&row, "access_log", "seq")?)? + 1,
                hash_of("access_log", &get::<Vec<u8>>(&row, "access_log", "hash")?)?,
            ),
            None => (1, B256::ZERO),
        };
        let linked = AccessLogEntry::link(seq, entry.clone(), prev);
        self.exec(
            tx,
            "appending to the access log",
            &format!("INSERT INTO access_log ({ACCESS_LOG_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"),
            vals![
                int("access-log seq", seq)?,
                ts_col(entry.at),
                hh_col(entry.actor),
                hh_col(entry.patient),
                entry.record.map(|r| r.to_string()),
                i64::from(entry.action.code()),
                entry.allowed,
                hash_col(prev),
                hash_col(linked.hash)
            ],
        )
        .await?;
        Ok(linked)
    }
}

/// The checkpoint and the highest pruned block.
struct SyncState {
    checkpoint: Option<BlockRef>,
    pruned: Option<BlockRef>,
}

impl SyncState {
    fn checkpoint(&self) -> Option<BlockRef> {
        self.checkpoint.or(self.pruned)
    }
}

fn source_of(row: &QueryResult, table: &'static str, block: &str, tx: &str) -> Result<ChainSource> {
    Ok(ChainSource {
        block_number: uint(table, "block number", get(row, table, block)?)?,
        tx_hash: hash_of(table, &get::<Vec<u8>>(row, table, tx)?)?,
    })
}

/// The block a row holds: a journal row (`number`, `hash`, `parent_hash`,
/// `block_time`) or the sync state's `checkpoint_*` / `pruned_*` columns.
/// A block journaled before migration 5 has no time: it reads as 0.
fn block_of(row: &QueryResult, columns: &str) -> Result<Option<BlockRef>> {
    let t = "journal";
    let [number, hash, parent, time] = match columns {
        "journal" => ["number", "hash", "parent_hash", "block_time"].map(String::from),
        prefix => ["number", "hash", "parent", "time"].map(|c| format!("{prefix}_{c}")),
    };
    let Some(n) = get::<Option<i64>>(row, t, &number)? else {
        return Ok(None);
    };
    let h: Option<Vec<u8>> = get(row, t, &hash)?;
    let p: Option<Vec<u8>> = get(row, t, &parent)?;
    let time: Option<i64> = get(row, t, &time)?;
    let (Some(h), Some(p)) = (h, p) else {
        return Err(Error::corrupt(t, format!("block {n} without its hashes")));
    };
    Ok(Some(BlockRef {
        number: uint(t, "block number", n)?,
        hash: hash_of(t, &h)?,
        parent_hash: hash_of(t, &p)?,
        timestamp: time.map_or(Timestamp(0), ts_of),
    }))
}

/// The number of leading events that create records with distinct ids:
/// such a run can be written in bulk with the same outcome as one by one.
fn record_run(events: &[ChainEvent]) -> usize {
    let mut ids = HashSet::new();
    events
        .iter()
        .take_while(|e| matches!(&e.event, LedgerEvent::RecordCreated(r) if ids.insert(r.id)))
        .count()
}

fn source_of_event(e: &ChainEvent) -> ChainSource {
    ChainSource {
        block_number: e.at.block_number,
        tx_hash: e.at.tx_hash,
    }
}

fn fts5_query(words: &[String]) -> String {
    words
        .iter()
        .map(|w| format!("\"{}\"", w.replace('"', "\"\"")))
        .collect::<Vec<_>>()
        .join(" ")
}

fn tsquery(words: &[String]) -> String {
    words
        .iter()
        .map(|w| format!("'{}'", w.replace('\\', "\\\\").replace('\'', "''")))
        .collect::<Vec<_>>()
        .join(" & ")
}

fn patient_of_row(row: &QueryResult) -> Result<PatientProfile> {
    let t = "patients";
    let dob = date_of(t, get(row, t, "date_of_birth")?)?;
    Ok(PatientProfile {
        hh: hh_of(t, get(row, t, "hh")?)?,
        wallet: parse(t, get::<String>(row, t, "wallet")?)?,
        name: parse(t, get::<String>(row, t, "name")?)?,
        date_of_birth: DateOfBirth::new(dob).map_err(|e| Error::corrupt(t, e))?,
        gender: parse(t, get::<String>(row, t, "gender")?)?,
        blood_group: parse(t, get::<String>(row, t, "blood_group")?)?,
        home_address: parse(t, get::<String>(row, t, "home_address")?)?,
        email: parse(t, get::<String>(row, t, "email")?)?,
    })
}

#[async_trait]
impl CachePort for SqlCache {
    async fn upsert_profile(&self, profile: &Profile, source: ChainSource) -> CacheResult<()> {
        let tx = self.begin().await?;
        let result = self.put_profile(&tx, profile, source).await;
        self.finish(tx, result).await
    }

    async fn upsert_record(&self, record: &MedicalRecord, source: ChainSource) -> CacheResult<()> {
        self.put_record(&self.db, record, source).await
    }

    async fn upsert_grant(&self, grant: &AccessGrant, source: ChainSource) -> CacheResult<()> {
        Ok(self.put_grant(&self.db, grant, source).await?)
    }

    async fn apply_block(&self, block: &BlockRef, events: &[ChainEvent]) -> CacheResult<()> {
        let tx = self.begin().await?;
        let result = self
            .apply_blocks_in(&tx, &[(*block, events.to_vec())], None)
            .await;
        self.finish(tx, result).await
    }

    async fn apply_blocks(
        &self,
        batch: &[(BlockRef, Vec<ChainEvent>)],
        finalized: u64,
    ) -> CacheResult<()> {
        let tx = self.begin().await?;
        let result = self.apply_blocks_in(&tx, batch, Some(finalized)).await;
        self.finish(tx, result).await
    }

    async fn rollback_to(&self, number: u64) -> CacheResult<()> {
        let tx = self.begin().await?;
        let result = self.rollback_in(&tx, number).await;
        self.finish(tx, result).await
    }

    async fn checkpoint(&self) -> CacheResult<Option<BlockRef>> {
        Ok(self.read_sync_state(&self.read).await?.checkpoint())
    }

    async fn journal(&self, from: u64, to: u64) -> CacheResult<Vec<BlockRef>> {
        if from > to {
            return Ok(Vec::new());
        }
        self.all(
            &self.read,
            "reading the journal",
            "SELECT number, hash, parent_hash, block_time FROM journal
             WHERE number >= $1 AND number <= $2 ORDER BY number",
            vals![clamp(from), clamp(to)],
        )
        .await?
        .iter()
        .filter_map(|row| block_of(row, "journal").transpose())
        .collect::<Result<Vec<_>>>()
        .map_err(Into::into)
    }

    async fn prune_journal(&self, below: u64) -> CacheResult<u64> {
        let tx = self.begin().await?;
        let result = self.prune_in(&tx, below).await;
        self.finish(tx, result).await
    }

    async fn profile(&self, hh: HhNumber) -> CacheResult<Option<Profile>> {
        Ok(self.load_profile(&self.read, hh).await?.map(|(p, _)| p))
    }

    async fn account_of(&self, wallet: WalletAddress) -> CacheResult<Option<(Role, HhNumber)>> {
        let row = self
            .one(
                &self.read,
                "looking up a wallet",
                "SELECT hh, role FROM users WHERE wallet = $1",
                vals![wallet.to_string()],
            )
            .await?;
        Ok(row
            .map(|row| -> Result<_> {
                Ok((
                    role_of("users", get(&row, "users", "role")?)?,
                    hh_of("users", get(&row, "users", "hh")?)?,
                ))
            })
            .transpose()?)
    }

    async fn record(&self, id: RecordId) -> CacheResult<Option<MedicalRecord>> {
        Ok(self.load_record(&self.read, id).await?.map(|(r, _)| r))
    }

    async fn records_of_patient(&self, patient: HhNumber) -> CacheResult<Vec<MedicalRecord>> {
        Ok(self.records_where("r.patient", patient).await?)
    }

    async fn records_by_creator(&self, creator: HhNumber) -> CacheResult<Vec<MedicalRecord>> {
        Ok(self.records_where("r.creator", creator).await?)
    }

    async fn grants_of_patient(&self, patient: HhNumber) -> CacheResult<Vec<AccessGrant>> {
        self.all(
            &self.read,
            "listing grants",
            "SELECT * FROM grants WHERE patient = $1 ORDER BY grantee",
            vals![hh_col(patient)],
        )
        .await?
        .iter()
        .map(|row| Self::grant_of_row(row).map(|(g, _)| g))
        .collect::<Result<Vec<_>>>()
        .map_err(Into::into)
    }

    async fn patients_of_doctor(
        &self,
        doctor: HhNumber,
        now: Timestamp,
    ) -> CacheResult<Vec<HhNumber>> {
        self.all(
            &self.read,
            "listing a doctor's patients",
            "SELECT patient FROM grants
             WHERE grantee = $1 AND revoked_at IS NULL
               AND (expires_at IS NULL OR expires_at > $2)
             ORDER BY patient",
            vals![hh_col(doctor), ts_col(now)],
        )
        .await?
        .iter()
        .map(|row| hh_of("grants", get(row, "grants", "patient")?))
        .collect::<Result<Vec<_>>>()
        .map_err(Into::into)
    }

    async fn search_patients(&self, prefix: &str, limit: u64) -> CacheResult<Vec<PatientProfile>> {
        let prefix = prefix.to_lowercase();
        if prefix.contains('\0') {
            // Names hold no control characters, so nothing matches (and
            // PostgreSQL text cannot carry NUL).
            return Ok(Vec::new());
        }
        let mut p = Params::default();
        let mut sql = String::from(
            "SELECT p.*, u.wallet FROM patients p JOIN users u ON u.hh = p.hh WHERE 1 = 1",
        );
        if !prefix.is_empty() {
            sql += &format!(" AND p.name_lower >= {}", p.push(prefix.clone()));
            if let Some(high) = prefix_bounds(&prefix) {
                sql += &format!(" AND p.name_lower < {}", p.push(high));
            }
        }
        sql += &format!(
            " ORDER BY p.name_lower, p.hh LIMIT {}",
            p.push(clamp(limit))
        );
        self.all(&self.read, "searching patients", &sql, p.0)
            .await?
            .iter()
            .map(patient_of_row)
            .collect::<Result<Vec<_>>>()
            .map_err(Into::into)
    }

    async fn search_records(&self, q: &RecordQuery) -> CacheResult<Vec<MedicalRecord>> {
        let mut p = Params::default();
        let mut sql = format!("SELECT {} FROM records r WHERE 1 = 1", self.record_cols());
        if let Some(patient) = q.patient {
            sql += &format!(" AND r.patient = {}", p.push(hh_col(patient)));
        }
        if let Some(t) = &q.record_type {
            if t.contains('\0') {
                return Ok(Vec::new());
            }
            sql += &format!(" AND r.record_type_lower = {}", p.push(t.to_lowercase()));
        }
        if let Some(d) = q.date_from {
            sql += &format!(" AND r.test_date >= {}", p.push(date_col(d)));
        }
        if let Some(d) = q.date_to {
            sql += &format!(" AND r.test_date <= {}", p.push(date_col(d)));
        }
        let words = q.text.as_deref().map(search_words).unwrap_or_default();
        if words.iter().any(|w| w.len() > MAX_WORD_BYTES) {
            return Ok(Vec::new());
        }
        if !words.is_empty() {
            if self.pg() {
                sql += &format!(
                    " AND r.search_tsv @@ CAST({} AS tsquery)",
                    p.push(tsquery(&words))
                );
            } else {
                sql += &format!(
                    " AND r.id IN (SELECT rowid FROM records_fts WHERE records_fts MATCH {})",
                    p.push(fts5_query(&words))
                );
            }
        }
        sql += &format!(
            " ORDER BY r.test_date DESC, r.patient, r.serial_key LIMIT {}",
            p.push(clamp(q.limit))
        );
        self.all(&self.read, "searching records", &sql, p.0)
            .await?
            .iter()
            .map(|row| self.record_of_row(row).map(|(r, _)| r))
            .collect::<Result<Vec<_>>>()
            .map_err(Into::into)
    }

    async fn latest_audit_anchor(&self) -> CacheResult<Option<AuditAnchor>> {
        Ok(self.load_anchor(&self.read).await?.map(|(a, _)| a))
    }

    async fn counts(&self) -> CacheResult<CacheCounts> {
        let row = self
            .one(
                &self.read,
                "counting rows",
                "SELECT (SELECT COUNT(*) FROM patients) AS patients,
                    (SELECT COUNT(*) FROM doctors) AS doctors,
                    (SELECT COUNT(*) FROM diagnostic_centers) AS diagnostic_centers,
                    (SELECT COUNT(*) FROM records) AS records,
                    (SELECT COUNT(*) FROM grants) AS grants,
                    (SELECT COUNT(*) FROM access_log) AS access_log,
                    (SELECT COUNT(*) FROM journal) AS journal",
                vec![],
            )
            .await?
            .ok_or_else(|| Error::corrupt("counts", "no row"))?;
        let n = |col: &str| -> Result<u64> { uint("counts", col, get(&row, "counts", col)?) };
        Ok(CacheCounts {
            patients: n("patients")?,
            doctors: n("doctors")?,
            diagnostic_centers: n("diagnostic_centers")?,
            records: n("records")?,
            grants: n("grants")?,
            access_log: n("access_log")?,
            journal: n("journal")?,
        })
    }

    async fn set_extras(&self, hh: HhNumber, extras: &ProfileExtras) -> CacheResult<()> {
        let known = self
            .one(
                &self.db,
                "checking the user",
                "SELECT hh FROM users WHERE hh = $1",
                vals![hh_col(hh)],
            )
            .await?;
        if known.is_none() {
            return Err(CacheError::NotFound(format!(
                "HH number {hh} is not cached"
            )));
        }
        self.exec(
            &self.db,
            "writing extras",
            "INSERT INTO extras (hh, phone, emergency_contact, allergies, notes)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (hh) DO UPDATE SET phone = excluded.phone,
                emergency_contact = excluded.emergency_contact,
                allergies = excluded.allergies, notes = excluded.notes",
            vals![
                hh_col(hh),
                extras.phone.as_ref().map(|v| v.as_str().to_owned()),
                extras
                    .emergency_contact
                    .as_ref()
                    .map(|v| v.as_str().to_owned()),
                extras.allergies.as_ref().map(|v| v.as_str().to_owned()),
                extras.notes.as_ref().map(|v| v.as_str().to_owned())
            ],
        )
        .await?;
        Ok(())
    }

    async fn extras(&self, hh: HhNumber) -> CacheResult<Option<ProfileExtras>> {
        let Some(row) = self
            .one(
                &self.read,
                "reading extras",
                "SELECT * FROM extras WHERE hh = $1",
                vals![hh_col(hh)],
            )
            .await?
        else {
            return Ok(None);
        };
        let t = "extras";
        let text = |col: &str| get::<Option<String>>(&row, t, col);
        Ok(Some(ProfileExtras {
            phone: text("phone")?
                .map(|v| PhoneNumber::new(&v).map_err(|e| Error::corrupt(t, e)))
                .transpose()?,
            emergency_contact: text("emergency_contact")?
                .map(|v| parse(t, v))
                .transpose()?,
            allergies: text("allergies")?.map(|v| parse(t, v)).transpose()?,
            notes: text("notes")?.map(|v| parse(t, v)).transpose()?,
        }))
    }

    async fn add_notification(&self, n: &NewNotification) -> CacheResult<Notification> {
        let row = self
            .one(
                &self.db,
                "storing a notification",
                "INSERT INTO notifications (user_hh, kind, title, message, related_record,
                    created_at, is_read)
                 VALUES ($1, $2, $3, $4, $5, $6, FALSE) RETURNING id",
                vals![
                    hh_col(n.user),
                    n.kind.as_str(),
                    n.title.as_str(),
                    n.message.as_str(),
                    n.related_record.map(|r| r.to_string()),
                    ts_col(n.created_at)
                ],
            )
            .await?
            .ok_or_else(|| Error::corrupt("notifications", "the insert returned no id"))?;
        Ok(Notification {
            id: uint("notifications", "id", get(&row, "notifications", "id")?)?,
            body: n.clone(),
            read: false,
        })
    }

    async fn notifications(
        &self,
        user: HhNumber,
        unread_only: bool,
    ) -> CacheResult<Vec<Notification>> {
        let sql = format!(
            "SELECT * FROM notifications WHERE user_hh = $1{}
             ORDER BY created_at DESC, id DESC",
            if unread_only {
                " AND is_read = FALSE"
            } else {
                ""
            }
        );
        let t = "notifications";
        self.all(
            &self.read,
            "listing notifications",
            &sql,
            vals![hh_col(user)],
        )
        .await?
        .iter()
        .map(|row| -> Result<Notification> {
            let kind: String = get(row, t, "kind")?;
            Ok(Notification {
                id: uint(t, "id", get(row, t, "id")?)?,
                body: NewNotification {
                    user: hh_of(t, get(row, t, "user_hh")?)?,
                    kind: NotificationKind::parse(&kind).ok_or_else(|| {
                        Error::corrupt(t, format!("unknown notification kind {kind:?}"))
                    })?,
                    title: parse(t, get::<String>(row, t, "title")?)?,
                    message: parse(t, get::<String>(row, t, "message")?)?,
                    related_record: get::<Option<String>>(row, t, "related_record")?
                        .map(|r| parse(t, r))
                        .transpose()?,
                    created_at: ts_of(get(row, t, "created_at")?),
                },
                read: get(row, t, "is_read")?,
            })
        })
        .collect::<Result<Vec<_>>>()
        .map_err(Into::into)
    }

    async fn mark_notification_read(&self, id: u64) -> CacheResult<()> {
        let changed = match i64::try_from(id) {
            Ok(id) => {
                self.exec(
                    &self.db,
                    "marking a notification read",
                    "UPDATE notifications SET is_read = TRUE WHERE id = $1",
                    vals![id],
                )
                .await?
            }
            Err(_) => 0,
        };
        if changed == 0 {
            return Err(CacheError::NotFound(format!("notification {id}")));
        }
        Ok(())
    }

    async fn put_session(&self, session: &Session) -> CacheResult<()> {
        let inserted = self
            .exec(
                &self.db,
                "storing a session",
                "INSERT INTO sessions (token_hash, hh, wallet, created_at, expires_at)
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (token_hash) DO NOTHING",
                vals![
                    hash_col(session.token_hash.0),
                    hh_col(session.hh),
                    session.wallet.to_string(),
                    ts_col(session.created_at),
                    ts_col(session.expires_at)
                ],
            )
            .await?;
        if inserted == 0 {
            return Err(CacheError::AlreadyExists(
                "a session with this token hash is already stored".into(),
            ));
        }
        Ok(())
    }

    async fn session(&self, token_hash: SessionTokenHash) -> CacheResult<Option<Session>> {
        let t = "sessions";
        self.one(
            &self.read,
            "reading a session",
            "SELECT * FROM sessions WHERE token_hash = $1",
            vals![hash_col(token_hash.0)],
        )
        .await?
        .map(|row| -> Result<Session> {
            Ok(Session {
                token_hash: SessionTokenHash(hash_of(t, &get::<Vec<u8>>(&row, t, "token_hash")?)?),
                hh: hh_of(t, get(&row, t, "hh")?)?,
                wallet: parse(t, get::<String>(&row, t, "wallet")?)?,
                created_at: ts_of(get(&row, t, "created_at")?),
                expires_at: ts_of(get(&row, t, "expires_at")?),
            })
        })
        .transpose()
        .map_err(Into::into)
    }

    async fn delete_session(&self, token_hash: SessionTokenHash) -> CacheResult<bool> {
        Ok(self
            .exec(
                &self.db,
                "deleting a session",
                "DELETE FROM sessions WHERE token_hash = $1",
                vals![hash_col(token_hash.0)],
            )
            .await?
            > 0)
    }

    async fn purge_expired_sessions(&self, now: Timestamp) -> CacheResult<u64> {
        Ok(self
            .exec(
                &self.db,
                "purging expired sessions",
                "DELETE FROM sessions WHERE expires_at <= $1",
                vals![ts_col(now)],
            )
            .await?)
    }

    async fn append_access_log(&self, entry: &NewAccessLogEntry) -> CacheResult<AccessLogEntry> {
        let tx = self.begin().await?;
        let result = self.append_in(&tx, entry).await;
        self.finish(tx, result).await
    }

    async fn access_log(
        &self,
        patient: Option<HhNumber>,
        after_seq: u64,
        limit: u64,
    ) -> CacheResult<Vec<AccessLogEntry>> {
        let mut p = Params::default();
        let mut sql = format!(
            "SELECT {ACCESS_LOG_COLS} FROM access_log WHERE seq > {}",
            p.push(clamp(after_seq))
        );
        if let Some(patient) = patient {
            sql += &format!(" AND patient = {}", p.push(hh_col(patient)));
        }
        sql += &format!(" ORDER BY seq LIMIT {}", p.push(clamp(limit)));
        self.all(&self.read, "reading the access log", &sql, p.0)
            .await?
            .iter()
            .map(Self::log_entry_of_row)
            .collect::<Result<Vec<_>>>()
            .map_err(Into::into)
    }

    async fn verify_access_log(&self) -> CacheResult<LogVerification> {
        let page_sql = format!(
            "SELECT {ACCESS_LOG_COLS} FROM access_log WHERE seq > $1 ORDER BY seq LIMIT $2"
        );
        // The anchor is read before the walk: entries it covers were
        // appended before it was, so a later anchor cannot cover entries
        // this walk has not seen.
        let anchor = self.load_anchor(&self.read).await?.map(|(a, _)| a);
        let mut anchored_hash = None;
        let mut expected: u64 = 1;
        let mut prev = B256::ZERO;
        let mut after: i64 = i64::MIN;
        let mut first_broken = None;
        'pages: loop {
            let rows = self
                .all(
                    &self.read,
                    "verifying the access log",
                    &page_sql,
                    vals![after, VERIFY_PAGE],
                )
                .await?;
            if rows.is_empty() {
                break;
            }
            for row in &rows {
                let raw_seq: i64 = get(row, "access_log", "seq")?;
                after = raw_seq;
                let stored_seq = u64::try_from(raw_seq).unwrap_or(0);
                // A row that no longer decodes was edited: it is the break.
                match Self::log_entry_of_row(row) {
                    Ok(e) if e.seq == expected && e.prev_hash == prev && e.is_self_consistent() => {
                        if anchor.is_some_and(|a| a.last_seq == e.seq) {
                            anchored_hash = Some(e.hash);
                        }
                        prev = e.hash;
                        expected += 1;
                    }
                    _ => {
                        first_broken = Some(expected.min(stored_seq.max(1)));
                        break 'pages;
                    }
                }
            }
        }
        let count = self
            .one(
                &self.read,
                "counting the access log",
                "SELECT COUNT(*) AS n FROM access_log",
                vec![],
            )
            .await?
            .ok_or_else(|| Error::corrupt("access_log", "no count"))?;
        let walked = LogVerification {
            entries: uint("access_log", "count", get(&count, "access_log", "n")?)?,
            first_broken,
        };
        Ok(walked.verify_against_anchor(anchored_hash, anchor.as_ref()))
    }

    async fn access_log_digest(&self, up_to_seq: u64) -> CacheResult<B256> {
        let row = match i64::try_from(up_to_seq) {
            Ok(seq) => {
                self.one(
                    &self.read,
                    "reading an access-log digest",
                    "SELECT hash FROM access_log WHERE seq = $1",
                    vals![seq],
                )
                .await?
            }
            Err(_) => None,
        };
        let row =
            row.ok_or_else(|| CacheError::NotFound(format!("access-log entry {up_to_seq}")))?;
        Ok(hash_of(
            "access_log",
            &get::<Vec<u8>>(&row, "access_log", "hash")?,
        )?)
    }
}
