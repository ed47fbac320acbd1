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

/// How a column travels in a JSON row parameter (see
/// [`SqlCache::json_rows`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Col {
    /// A 64-bit integer (a JSON number).
    Int,
    /// Text (a JSON string).
    Text,
    /// Bytes, as a JSON string of lowercase hex digits.
    Bytes,
    /// A JSON document, stored as `JSONB` on PostgreSQL and as text on
    /// SQLite.
    Json,
}

/// Lowercase hex of `bytes`, as [`Col::Bytes`] columns carry them.
pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    s
}

impl SqlCache {
    /// A `SELECT` of the rows in the JSON array parameter `p` (objects
    /// keyed by column name), one output column per `cols` entry, named as
    /// it. A whole table's worth of rows thus travels as one parameter:
    /// statements have no row limit and are prepared once per shape.
    /// PostgreSQL expands it with `json_to_recordset`, SQLite with
    /// `json_each`. It ends in `WHERE true`, which SQLite needs before an
    /// `ON CONFLICT` clause of an `INSERT … SELECT`.
    pub(crate) fn json_rows(&self, p: &str, cols: &[(&str, Col)]) -> String {
        let exprs: Vec<String>;
        let source;
        if self.pg() {
            exprs = cols
                .iter()
                .map(|(n, t)| match t {
                    Col::Bytes => format!("decode(x.{n}, 'hex') AS {n}"),
                    _ => format!("x.{n} AS {n}"),
                })
                .collect();
            let defs: Vec<String> = cols
                .iter()
                .map(|(n, t)| {
                    let ty = match t {
                        Col::Int => "bigint",
                        Col::Text | Col::Bytes => "text",
                        Col::Json => "jsonb",
                    };
                    format!("{n} {ty}")
                })
                .collect();
            source = format!(
                "json_to_recordset(CAST({p} AS json)) AS x({})",
                defs.join(", ")
            );
        } else {
            exprs = cols
                .iter()
                .map(|(n, t)| match t {
                    Col::Bytes => format!("unhex(x.value ->> '{n}') AS {n}"),
                    Col::Json => format!("x.value -> '{n}' AS {n}"),
                    Col::Int | Col::Text => format!("x.value ->> '{n}' AS {n}"),
                })
                .collect();
            source = format!("json_each({p}) AS x");
        }
        format!("SELECT {} FROM {source} WHERE true", exprs.join(", "))
    }

    /// A subquery of the values in the JSON array parameter `p` (numbers
    /// for [`Col::Int`], strings for [`Col::Text`]), for `IN (…)`.
    pub(crate) fn json_list(&self, p: &str, ty: Col) -> String {
        match (self.pg(), ty) {
            (true, Col::Int) => format!(
                "SELECT CAST(value AS bigint) FROM json_array_elements_text(CAST({p} AS json))"
            ),
            (true, _) => format!("SELECT value FROM json_array_elements_text(CAST({p} AS json))"),
            (false, _) => format!("SELECT value FROM json_each({p})"),
        }
    }

    /// Inserts the JSON `rows` into `table` in one statement; with a `key`,
    /// rows whose key exists replace it (`ON CONFLICT … DO UPDATE`, only
    /// where `guard` holds, if given). Returns how many rows were written.
    pub(crate) async fn insert_json_rows<C: ConnectionTrait>(
        &self,
        c: &C,
        context: &str,
        table: &str,
        cols: &[(&str, Col)],
        key: Option<(&[&str], Option<&str>)>,
        rows: Vec<serde_json::Value>,
    ) -> Result<u64> {
        if rows.is_empty() {
            return Ok(0);
        }
        let names: Vec<&str> = cols.iter().map(|(n, _)| *n).collect();
        let mut sql = format!(
            "INSERT INTO {table} ({}) {}",
            names.join(", "),
            self.json_rows("$1", cols)
        );
        if let Some((key, guard)) = key {
            let set: Vec<String> = names
                .iter()
                .filter(|n| !key.contains(n))
                .map(|n| format!("{n} = excluded.{n}"))
                .collect();
            sql += &format!(
                " ON CONFLICT ({}) DO UPDATE SET {}",
                key.join(", "),
                set.join(", ")
            );
            if let Some(g) = guard {
                sql += &format!(" WHERE {g}");
            }
        }
        let doc = serde_json::Value::Array(rows).to_string();
        self.exec(c, context, &sql, vals![doc]).await
    }
}
