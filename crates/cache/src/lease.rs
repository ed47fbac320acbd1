//! [`SqlLease`]: the [`WriterLease`] of a SQL cache, so one follower writes
//! and the others stand by.
//!
//! - PostgreSQL: a session-level advisory lock (`pg_try_advisory_lock`) on
//!   a connection kept for the purpose. The server releases it when the
//!   session ends, so a killed holder loses it at once; the holder checks
//!   `pg_locks` for its own session, so a lost connection shows as a lost
//!   lease.
//! - SQLite file: an OS lock (`File::try_lock`) on `<database>.lease`
//!   beside the database, released by the operating system when the
//!   holding process dies.

use std::{fs::File, sync::Mutex, time::Duration};

use async_trait::async_trait;
use healthledger_core::{CacheError, CacheResult, WriterLease};
use sea_orm::{ConnectOptions, ConnectionTrait as _, Database, DatabaseConnection, Statement};

use crate::error::redact;

/// The lease of one cache database (one PostgreSQL schema, or one SQLite
/// file).
#[derive(Debug)]
pub struct SqlLease {
    inner: Inner,
    shown: String,
}

#[derive(Debug)]
enum Inner {
    Postgres {
        /// The lease's own session (one connection, never recycled).
        db: DatabaseConnection,
        /// The advisory lock key, derived from the schema name.
        key: i64,
        held: Mutex<bool>,
    },
    Sqlite {
        path: String,
        file: Mutex<Option<File>>,
    },
}

/// An advisory-lock key for `schema`: FNV-1a of a fixed prefix and the
/// schema name, kept within 31 bits so `pg_locks` shows it as `objid`
/// with `classid` 0. Hand-written: eight lines, no crate needed.
fn lock_key(schema: &str) -> i64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in "healthledger writer lease:".bytes().chain(schema.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    i64::try_from(h & 0x7fff_ffff).unwrap_or(0)
}

impl SqlLease {
    /// The lease of the cache at `url` (the same URL the cache connects
    /// to), in `schema` on PostgreSQL (`public` when `None`). An in-memory
    /// SQLite database has a single process and no lease: `Invalid`.
    pub async fn connect(url: &str, schema: Option<&str>) -> CacheResult<Self> {
        let shown = redact(url);
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let schema = schema.unwrap_or("public");
            let mut opts = ConnectOptions::new(url.to_owned());
            // One session for the lease's whole life: a recycled
            // connection would silently drop the lock.
            opts.max_connections(1)
                .min_connections(1)
                .max_lifetime(Duration::from_secs(100 * 365 * 24 * 3600))
                .idle_timeout(Duration::from_secs(100 * 365 * 24 * 3600))
                .connect_timeout(Duration::from_secs(10))
                .sqlx_logging(false);
            let db = Database::connect(opts).await.map_err(|e| {
                CacheError::Unavailable(format!("cannot connect the lease to {shown}: {e}"))
            })?;
            return Ok(Self {
                inner: Inner::Postgres {
                    db,
                    key: lock_key(schema),
                    held: Mutex::new(false),
                },
                shown: format!(
                    "advisory lock {} on {shown} (schema {schema})",
                    lock_key(schema)
                ),
            });
        }
        let rest = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
            .ok_or_else(|| {
                CacheError::Invalid(format!(
                    "cache URL {shown}: expected postgres:// or sqlite: for a writer lease"
                ))
            })?;
        let path = rest.split('?').next().unwrap_or(rest);
        if path.is_empty() || url.contains(":memory:") || url.contains("mode=memory") {
            return Err(CacheError::Invalid(format!(
                "cache URL {shown}: an in-memory database lives in one process and takes no \
                 writer lease"
            )));
        }
        let path = format!("{path}.lease");
        Ok(Self {
            shown: format!("lock file {path}"),
            inner: Inner::Sqlite {
                path,
                file: Mutex::new(None),
            },
        })
    }

    async fn pg_held(db: &DatabaseConnection, key: i64) -> CacheResult<bool> {
        let row = db
            .query_one_raw(Statement::from_sql_and_values(
                db.get_database_backend(),
                "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' \
                 AND pid = pg_backend_pid() AND classid = 0 AND objid = $1::bigint::oid \
                 AND objsubid = 1 AND granted) AS held",
                [key.into()],
            ))
            .await
            .map_err(|e| CacheError::Unavailable(format!("checking the writer lease: {e}")))?;
        Ok(row
            .and_then(|r| r.try_get::<bool>("", "held").ok())
            .unwrap_or(false))
    }
}

fn locked<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[async_trait]
impl WriterLease for SqlLease {
    async fn try_acquire(&self) -> CacheResult<bool> {
        match &self.inner {
            Inner::Postgres { db, key, held } => {
                if *locked(held) && Self::pg_held(db, *key).await? {
                    return Ok(true);
                }
                let row = db
                    .query_one_raw(Statement::from_sql_and_values(
                        db.get_database_backend(),
                        "SELECT pg_try_advisory_lock($1) AS got",
                        [(*key).into()],
                    ))
                    .await
                    .map_err(|e| {
                        CacheError::Unavailable(format!("taking the writer lease: {e}"))
                    })?;
                let got = row
                    .and_then(|r| r.try_get::<bool>("", "got").ok())
                    .unwrap_or(false);
                *locked(held) = got;
                Ok(got)
            }
            Inner::Sqlite { path, file } => {
                let mut slot = locked(file);
                if slot.is_some() {
                    return Ok(true);
                }
                let f = File::options()
                    .create(true)
                    .truncate(false)
                    .write(true)
                    .open(path)
                    .map_err(|e| {
                        CacheError::Unavailable(format!("opening the lease file {path}: {e}"))
                    })?;
                match f.try_lock() {
                    Ok(()) => {
                        *slot = Some(f);
                        Ok(true)
                    }
                    Err(std::fs::TryLockError::WouldBlock) => Ok(false),
                    Err(std::fs::TryLockError::Error(e)) => Err(CacheError::Unavailable(format!(
                        "locking the lease file {path}: {e}"
                    ))),
                }
            }
        }
    }

    async fn is_held(&self) -> CacheResult<bool> {
        match &self.inner {
            Inner::Postgres { db, key, held } => {
                if !*locked(held) {
                    return Ok(false);
                }
                // A failed check is a lost lease: the holder must stop.
                let still = Self::pg_held(db, *key).await.unwrap_or(false);
                *locked(held) = still;
                Ok(still)
            }
            Inner::Sqlite { file, .. } => Ok(locked(file).is_some()),
        }
    }

    async fn release(&self) -> CacheResult<()> {
        match &self.inner {
            Inner::Postgres { db, key, held } => {
                if std::mem::replace(&mut *locked(held), false) {
                    db.execute_raw(Statement::from_sql_and_values(
                        db.get_database_backend(),
                        "SELECT pg_advisory_unlock($1)",
                        [(*key).into()],
                    ))
                    .await
                    .map_err(|e| {
                        CacheError::Unavailable(format!("releasing the writer lease: {e}"))
                    })?;
                }
                Ok(())
            }
            Inner::Sqlite { file, .. } => {
                // Closing the file releases the OS lock.
                drop(locked(file).take());
                Ok(())
            }
        }
    }

    fn describe(&self) -> String {
        self.shown.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_keys_differ_per_schema_and_fit_31_bits() {
        let (a, b) = (lock_key("public"), lock_key("tenant_a"));
        assert_ne!(a, b);
        assert!((0..1 << 31).contains(&a) && (0..1 << 31).contains(&b));
        assert_eq!(a, lock_key("public"));
    }
}
