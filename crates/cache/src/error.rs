//! The crate's one error enum, and how database failures map onto the
//! port's semantic [`CacheError`] variants.

use std::ops::Deref as _;

use healthledger_core::CacheError;
use sea_orm::{DbErr, RuntimeErr, SqlErr, sqlx};

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can go wrong in the SQL cache.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The URL names no supported backend.
    #[error(
        "unsupported database URL {url:?}: expected sqlite://<path>?mode=rwc, sqlite::memory: or postgres://user@host:port/database"
    )]
    UnsupportedUrl {
        /// The URL, with any password redacted.
        url: String,
    },
    /// A PostgreSQL schema name that is not a plain identifier.
    #[error(
        "invalid PostgreSQL schema name {0:?}: expected 1 to 63 lowercase ASCII letters, digits or underscores, not starting with a digit"
    )]
    InvalidSchemaName(String),
    /// A schema was given for a backend that has none.
    #[error("a schema ({0:?}) can only be chosen on PostgreSQL, not on SQLite")]
    SchemaNeedsPostgres(String),
    /// The database could not be reached.
    #[error("cannot connect to {url}: {source}")]
    Connect {
        /// The URL, with any password redacted.
        url: String,
        /// What the driver said.
        #[source]
        source: DbErr,
    },
    /// The database holds migrations this code does not know: it was
    /// migrated by a newer version and must not be written by this one.
    #[error(
        "database schema is newer than this build of healthledger-cache: it has applied migration(s) {unknown:?} that this code does not know (the latest it knows is {latest_known:?}); run a newer build or point it at another database"
    )]
    SchemaTooNew {
        /// The applied migrations unknown to this code.
        unknown: Vec<String>,
        /// The newest migration this code knows.
        latest_known: String,
    },
    /// Running the migrations failed.
    #[error("migrating the cache schema failed: {0}")]
    Migrate(#[source] DbErr),
    /// A statement failed.
    #[error("{context}: {source}")]
    Db {
        /// What the cache was doing.
        context: String,
        /// What the driver said.
        #[source]
        source: DbErr,
    },
    /// The lock database that serializes migrations of a SQLite file
    /// could not be opened or locked.
    #[error("cannot lock {path} to migrate the SQLite cache: {source}")]
    MigrationLock {
        /// The lock database.
        path: String,
        /// What the driver said.
        #[source]
        source: DbErr,
    },
    /// A stored row does not decode into a domain value.
    #[error("corrupt row in table {table}: {detail}")]
    CorruptRow {
        /// The table.
        table: &'static str,
        /// What was wrong, naming the value.
        detail: String,
    },
    /// A number does not fit the database's signed 64-bit integers.
    #[error("{what} {value} is out of range: the cache stores at most {max}", max = i64::MAX)]
    OutOfRange {
        /// What kind of number.
        what: &'static str,
        /// The number.
        value: u64,
    },
}

impl Error {
    /// Wraps a driver error with what the cache was doing.
    pub(crate) fn db(context: impl Into<String>, source: DbErr) -> Self {
        Self::Db {
            context: context.into(),
            source,
        }
    }

    /// A row that does not decode.
    pub(crate) fn corrupt(table: &'static str, detail: impl std::fmt::Display) -> Self {
        Self::CorruptRow {
            table,
            detail: detail.to_string(),
        }
    }
}

/// Whether a driver error means the database was unreachable, overloaded or
/// asked the client to retry (connection loss, pool exhaustion, SQLite
/// busy/locked, PostgreSQL serialization failures and deadlocks, server
/// shutdown, resource exhaustion).
fn is_transient(err: &DbErr) -> bool {
    match err {
        DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => true,
        DbErr::Exec(RuntimeErr::SqlxError(e)) | DbErr::Query(RuntimeErr::SqlxError(e)) => {
            match e.deref() {
                sqlx::Error::Io(_)
                | sqlx::Error::Tls(_)
                | sqlx::Error::Protocol(_)
                | sqlx::Error::PoolTimedOut
                | sqlx::Error::PoolClosed
                | sqlx::Error::WorkerCrashed => true,
                sqlx::Error::Database(d) => {
                    let code = d.code().unwrap_or_default();
                    let code = code.deref();
                    // PostgreSQL SQLSTATEs: class 08 connection exception,
                    // 40001 serialization failure, 40P01 deadlock, class 53
                    // insufficient resources, class 57P admin shutdown.
                    // SQLite primary codes 5 (BUSY) and 6 (LOCKED), with
                    // their extended codes.
                    code.starts_with("08")
                        || code == "40001"
                        || code == "40P01"
                        || code.starts_with("53")
                        || code.starts_with("57P")
                        || code.parse::<i64>().is_ok_and(|c| matches!(c & 0xff, 5 | 6))
                }
                _ => false,
            }
        }
        _ => false,
    }
}

impl From<Error> for CacheError {
    fn from(err: Error) -> Self {
        match &err {
            Error::UnsupportedUrl { .. }
            | Error::InvalidSchemaName(_)
            | Error::SchemaNeedsPostgres(_)
            | Error::OutOfRange { .. } => CacheError::Invalid(err.to_string()),
            Error::Connect { .. } => CacheError::Unavailable(err.to_string()),
            Error::CorruptRow { .. } => CacheError::Integrity(err.to_string()),
            Error::Db { source, .. } => {
                if let Some(SqlErr::UniqueConstraintViolation(_)) = source.sql_err() {
                    CacheError::Conflict(err.to_string())
                } else if is_transient(source) {
                    CacheError::Unavailable(err.to_string())
                } else {
                    CacheError::other(err)
                }
            }
            Error::SchemaTooNew { .. } | Error::Migrate(_) | Error::MigrationLock { .. } => {
                CacheError::other(err)
            }
        }
    }
}

/// Hides the password of a `scheme://user:password@host/...` URL.
pub(crate) fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}{tail}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact("postgres://app:s3cret@db:5432/cache?sslmode=require"),
            "postgres://app:***@db:5432/cache?sslmode=require"
        );
        assert_eq!(
            redact("postgres://postgres@127.0.0.1:5432/test"),
            "postgres://postgres@127.0.0.1:5432/test"
        );
        assert_eq!(redact("sqlite::memory:"), "sqlite::memory:");
    }

    #[test]
    fn errors_map_to_port_variants() {
        let e: CacheError = Error::OutOfRange {
            what: "block number",
            value: u64::MAX,
        }
        .into();
        assert!(matches!(e, CacheError::Invalid(_)), "{e}");
        let e: CacheError = Error::corrupt("users", "role 9").into();
        assert!(matches!(e, CacheError::Integrity(_)), "{e}");
        let e: CacheError = Error::db(
            "reading",
            DbErr::ConnectionAcquire(sea_orm::ConnAcquireErr::Timeout),
        )
        .into();
        assert!(matches!(e, CacheError::Unavailable(_)), "{e}");
    }
}
