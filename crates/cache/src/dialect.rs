//! What differs between the backends, and the statement plumbing every
//! other module uses: numbered parameters, JSON columns, running a
//! statement with the cache's context on failure, and write transactions
//! (`BEGIN IMMEDIATE` on SQLite, a row lock of `sync_state` serializing
//! chain writers on PostgreSQL).

use healthledger_core::CacheResult;
use sea_orm::sea_query::ArrayType;
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

/// A column's type, as rows travel to the database: in a JSON row
/// parameter (see [`SqlCache::json_rows`]), or as bound values
/// ([`Rows`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Col {
    /// A 64-bit integer (a JSON number).
    Int,
    /// A 64-bit integer that may be `NULL` (never in a JSON row).
    IntOrNull,
    /// Text (a JSON string).
    Text,
    /// Bytes; in a JSON row, a string of lowercase hex digits.
    Bytes,
    /// A JSON document, stored as `JSONB` on PostgreSQL and as text on
    /// SQLite; bound as its text.
    Json,
}

/// Rows to write into one table, row after row, each holding a value per
/// column of `cols` in order ([`SqlCache::insert_rows`]).
pub(crate) struct Rows<'a> {
    cols: &'a [(&'a str, Col)],
    values: Vec<Value>,
}

impl<'a> Rows<'a> {
    /// No rows yet, room for `n`.
    pub(crate) fn with_capacity(cols: &'a [(&'a str, Col)], n: usize) -> Self {
        Self {
            cols,
            values: Vec::with_capacity(n * cols.len()),
        }
    }

    /// Appends a row: one value per column.
    pub(crate) fn push<const N: usize>(&mut self, row: [Value; N]) {
        debug_assert_eq!(N, self.cols.len(), "a row of {N} values");
        self.values.extend(row);
    }

    /// How many rows there are.
    pub(crate) fn len(&self) -> usize {
        self.values.len() / self.cols.len().max(1)
    }
}

/// SQLite's limit on a statement's parameters (`SQLITE_MAX_VARIABLE_NUMBER`
/// of the bundled build).
const SQLITE_PARAMS: usize = 32_766;

/// The most rows one SQLite statement of `width` columns carries: the
/// largest power of two whose parameters stay within [`SQLITE_PARAMS`].
/// Large statements matter on SQLite: every upsert (and every insert into
/// `records`, whose FTS5 trigger writes a virtual table) runs in a
/// statement transaction, so each statement journals every page it first
/// touches and FTS5 flushes its pending terms at its end. A batch in
/// statements of 2,048 records instead of 256 journals and flushes about
/// an eighth as often (measured: 10 % more events/s).
fn sqlite_rows(width: usize) -> usize {
    1 << (SQLITE_PARAMS / width.max(1)).max(1).ilog2()
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
                        Col::Int | Col::IntOrNull => "bigint",
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
                    Col::Int | Col::IntOrNull | Col::Text => {
                        format!("x.value ->> '{n}' AS {n}")
                    }
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

    /// Inserts `rows` into `table`; with a `key`, rows whose key exists
    /// replace it (`ON CONFLICT … DO UPDATE`, only where `guard` holds, if
    /// given). Returns how many rows were written.
    ///
    /// PostgreSQL gets one statement: each column travels as one binary
    /// array parameter, expanded by `unnest`, so the statement's text and
    /// plan do not grow with the rows and nothing is parsed as text.
    /// SQLite gets multi-row `VALUES` statements of bound parameters, of
    /// [`sqlite_rows`] rows and then of descending powers of two for the
    /// rest: a few shapes per table, each prepared once and kept in the
    /// connection's statement cache.
    pub(crate) async fn insert_rows<C: ConnectionTrait>(
        &self,
        c: &C,
        context: &str,
        table: &str,
        key: Option<(&[&str], Option<&str>)>,
        rows: Rows<'_>,
    ) -> Result<u64> {
        let n = rows.len();
        if n == 0 {
            return Ok(0);
        }
        let cols = rows.cols;
        let names: Vec<&str> = cols.iter().map(|(n, _)| *n).collect();
        let mut conflict = String::new();
        if let Some((key, guard)) = key {
            let set: Vec<String> = names
                .iter()
                .filter(|n| !key.contains(n))
                .map(|n| format!("{n} = excluded.{n}"))
                .collect();
            conflict = format!(
                " ON CONFLICT ({}) DO UPDATE SET {}",
                key.join(", "),
                set.join(", ")
            );
            if let Some(g) = guard {
                conflict += &format!(" WHERE {g}");
            }
        }
        let head = format!("INSERT INTO {table} ({})", names.join(", "));
        if self.pg() {
            let (sql, values) = pg_unnest(&head, cols, rows.values, &conflict);
            return self.exec(c, context, &sql, values).await;
        }
        let width = cols.len();
        let tuple = format!("({})", vec!["?"; width].join(", "));
        let mut values = rows.values.into_iter();
        let (mut done, mut written) = (0, 0);
        let mut size = sqlite_rows(width);
        while done < n {
            while size > n - done {
                size /= 2;
            }
            let sql = format!(
                "{head} VALUES {}{conflict}",
                vec![tuple.as_str(); size].join(", ")
            );
            let chunk: Vec<Value> = values.by_ref().take(size * width).collect();
            written += self.exec(c, context, &sql, chunk).await?;
            done += size;
        }
        Ok(written)
    }
}

/// PostgreSQL's statement for [`SqlCache::insert_rows`]: `head`, then a
/// `SELECT` from `unnest` of one array parameter per column, then
/// `conflict`. A nullable integer column travels as text (`''` for `NULL`):
/// sea-query's arrays hold no `NULL` elements.
fn pg_unnest(
    head: &str,
    cols: &[(&str, Col)],
    values: Vec<Value>,
    conflict: &str,
) -> (String, Vec<Value>) {
    let width = cols.len();
    let n = values.len() / width;
    let mut columns: Vec<Vec<Value>> = (0..width).map(|_| Vec::with_capacity(n)).collect();
    for (i, v) in values.into_iter().enumerate() {
        let (_, ty) = cols[i % width];
        let v = match (ty, v) {
            (Col::IntOrNull, Value::BigInt(v)) => {
                Value::from(v.map(|v| v.to_string()).unwrap_or_default())
            }
            (_, v) => v,
        };
        columns[i % width].push(v);
    }
    let mut params = Vec::with_capacity(width);
    let mut exprs = Vec::with_capacity(width);
    let mut args = Vec::with_capacity(width);
    for (((name, ty), column), i) in cols.iter().zip(columns).zip(1..) {
        let (array, sql_ty, expr) = match ty {
            Col::Int => (ArrayType::BigInt, "bigint[]", format!("x.{name}")),
            Col::IntOrNull => (
                ArrayType::String,
                "text[]",
                format!("CAST(NULLIF(x.{name}, '') AS bigint)"),
            ),
            Col::Text => (ArrayType::String, "text[]", format!("x.{name}")),
            Col::Bytes => (ArrayType::Bytes, "bytea[]", format!("x.{name}")),
            Col::Json => (
                ArrayType::String,
                "text[]",
                format!("CAST(x.{name} AS jsonb)"),
            ),
        };
        params.push(Value::Array(array, Some(Box::new(column))));
        args.push(format!("CAST(${i} AS {sql_ty})"));
        exprs.push(expr);
    }
    let names: Vec<&str> = cols.iter().map(|(n, _)| *n).collect();
    let sql = format!(
        "{head} SELECT {} FROM unnest({}) AS x({}){conflict}",
        exprs.join(", "),
        args.join(", "),
        names.join(", ")
    );
    (sql, params)
}
