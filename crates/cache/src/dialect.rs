//! What differs between the backends, and the statement plumbing every
//! other module uses: numbered parameters, JSON columns, running a
//! statement with the cache's context on failure, and write transactions
//! (`BEGIN IMMEDIATE` on SQLite, a row lock of `sync_state` serializing
//! chain writers on PostgreSQL).

use healthledger_core::CacheResult;
use sea_orm::{
    ConnectionTrait, DatabaseTransaction, DbBackend, QueryResult, SqliteTransactionMode, Statement,
    TransactionOptions, TransactionTrait as _, Value,
};

use crate::SqlCache;
use crate::error::{Error, Result};

/// Builds `vec![Value, ...]` from anything convertible into [`Value`].
macro_rules! vals {
    ($($v:expr),* $(,)?) => { vec![$(sea_orm::Value::from($v)),*] };
}
pub(crate) use vals;

/// Numbered statement parameters (`$1`, `$2`, …; SQLite accepts the same
/// form).
#[derive(Default)]
pub(crate) struct Params(pub(crate) Vec<Value>);

impl Params {
    /// Adds a value and returns its placeholder.
    pub(crate) fn push(&mut self, v: impl Into<Value>) -> String {
        self.0.push(v.into());
        format!("${}", self.0.len())
    }
}

impl SqlCache {
    pub(crate) fn pg(&self) -> bool {
        self.backend == DbBackend::Postgres
    }

    pub(crate) fn st(&self, sql: &str, values: Vec<Value>) -> Statement {
        Statement::from_sql_and_values(self.backend, sql, values)
    }

    /// A JSON-valued parameter placeholder.
    pub(crate) fn json_param(&self, p: &str) -> String {
        if self.pg() {
            format!("CAST({p} AS JSONB)")
        } else {
            p.to_owned()
        }
    }

    /// A JSON column read back as text.
    pub(crate) fn json_out(&self, col: &str) -> String {
        if self.pg() {
            format!("{col}::text AS {}", col.rsplit('.').next().unwrap_or(col))
        } else {
            col.to_owned()
        }
    }

    pub(crate) async fn exec<C: ConnectionTrait>(
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

    pub(crate) async fn one<C: ConnectionTrait>(
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

    pub(crate) async fn all<C: ConnectionTrait>(
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
    pub(crate) async fn begin(&self) -> Result<DatabaseTransaction> {
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
    pub(crate) async fn finish<T>(
        &self,
        tx: DatabaseTransaction,
        result: CacheResult<T>,
    ) -> CacheResult<T> {
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
    pub(crate) async fn lock_chain(&self, tx: &DatabaseTransaction) -> Result<()> {
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
}
