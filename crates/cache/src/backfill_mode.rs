//! Initial backfill mode: the secondary indexes of the chain tables, the
//! free-text index (the GIN index on PostgreSQL) and the FTS5 triggers
//! (SQLite) are dropped for a first backfill and rebuilt after it, so that
//! bulk ingestion maintains only the keys and unique constraints.
//!
//! What is dropped is read from the database's own catalog
//! (`sqlite_master`, `pg_indexes`), not written out a second time: every
//! non-unique index and trigger on the chain tables. Unique indexes and
//! keys stay, so the rules they enforce (one wallet per HH number) hold in
//! the mode. Entering stores each definition in `deferred_indexes`, drops
//! it and sets `sync_state.backfill_mode`, in one transaction; leaving
//! runs the stored definitions, rebuilds the FTS5 table from `records`
//! (its triggers were not there to follow the writes), deletes the
//! definitions and clears the flag, in one transaction. A crash in the
//! mode leaves the flag and the definitions behind, and the next
//! [`CachePort::end_backfill_mode`](healthledger_core::CachePort::end_backfill_mode)
//! finishes the rebuild. Searches read the flag first and answer
//! `IndexBuilding` while it is set.

use healthledger_core::{CacheError, CacheResult};
use sea_orm::{DatabaseTransaction, Value};

use crate::SqlCache;
use crate::convert::get;
use crate::dialect::{Col, Rows, vals};
use crate::error::{Error, Result};

const TABLE: &str = "deferred_indexes";

/// The chain tables whose non-unique indexes and triggers the mode drops.
const TABLES: &str = "('users', 'patients', 'doctors', 'diagnostic_centers', 'records', 'grants')";

impl SqlCache {
    /// Whether the sync state says the mode is on.
    pub(crate) async fn backfill_flag<C: sea_orm::ConnectionTrait>(&self, c: &C) -> Result<bool> {
        let row = self
            .one(
                c,
                "reading the backfill mode",
                "SELECT backfill_mode FROM sync_state WHERE id = 1",
                vec![],
            )
            .await?
            .ok_or_else(|| Error::corrupt("sync_state", "its single row is missing"))?;
        Ok(get::<i64>(&row, "sync_state", "backfill_mode")? != 0)
    }

    /// `IndexBuilding` while the mode is on: a search would read indexes
    /// that are missing or stale.
    pub(crate) async fn refuse_while_building(&self) -> CacheResult<()> {
        if self.backfill_flag(&self.read).await? {
            return Err(CacheError::IndexBuilding(
                "the search indexes were dropped for an initial backfill and are rebuilt when it \
                 ends"
                    .into(),
            ));
        }
        Ok(())
    }

    /// Enters the mode inside `tx` (nothing to do when it is on).
    pub(crate) async fn begin_backfill_mode_in(&self, tx: &DatabaseTransaction) -> Result<()> {
        self.lock_chain(tx).await?;
        if self.backfill_flag(tx).await? {
            return Ok(());
        }
        let catalog = if self.pg() {
            format!(
                "SELECT 'INDEX'::text AS kind, indexname::text AS name, indexdef AS definition
                 FROM pg_indexes
                 WHERE schemaname = current_schema() AND tablename IN {TABLES}
                   AND indexdef NOT LIKE 'CREATE UNIQUE %'"
            )
        } else {
            format!(
                "SELECT upper(type) AS kind, name, sql AS definition FROM sqlite_master
                 WHERE type IN ('index', 'trigger') AND sql IS NOT NULL AND tbl_name IN {TABLES}
                   AND sql NOT LIKE 'CREATE UNIQUE %'"
            )
        };
        let rows = self
            .all(tx, "reading the index definitions", &catalog, vec![])
            .await?;
        let mut deferred = Vec::with_capacity(rows.len());
        for row in &rows {
            let kind: String = get(row, TABLE, "kind")?;
            let name: String = get(row, TABLE, "name")?;
            let definition: String = get(row, TABLE, "definition")?;
            deferred.push([
                Value::from(name.clone()),
                Value::from(kind.clone()),
                Value::from(definition),
            ]);
            // Names come from the catalog, quoted as identifiers.
            let drop = format!("DROP {kind} \"{}\"", name.replace('"', "\"\""));
            self.exec(tx, "dropping an index for the backfill", &drop, vec![])
                .await?;
        }
        const COLS: &[(&str, Col)] = &[
            ("name", Col::Text),
            ("kind", Col::Text),
            ("definition", Col::Text),
        ];
        let mut rows = Rows::with_capacity(COLS, deferred.len());
        for row in deferred {
            rows.push(row);
        }
        self.insert_rows(
            tx,
            "keeping the dropped index definitions",
            TABLE,
            None,
            rows,
        )
        .await?;
        self.set_backfill_flag(tx, true).await
    }

    /// Leaves the mode inside `tx`, rebuilding what it dropped (nothing to
    /// do when it is off).
    pub(crate) async fn end_backfill_mode_in(&self, tx: &DatabaseTransaction) -> Result<()> {
        self.lock_chain(tx).await?;
        if !self.backfill_flag(tx).await? {
            return Ok(());
        }
        if self.pg() {
            // Index builds sort in memory up to this limit, then on disk.
            self.exec(
                tx,
                "sizing the index build",
                "SET LOCAL maintenance_work_mem = '256MB'",
                vec![],
            )
            .await?;
        }
        let rows = self
            .all(
                tx,
                "reading the dropped index definitions",
                "SELECT definition FROM deferred_indexes ORDER BY name",
                vec![],
            )
            .await?;
        for row in &rows {
            let definition: String = get(row, TABLE, "definition")?;
            self.exec(tx, "rebuilding an index", &definition, vec![])
                .await?;
        }
        if !self.pg() {
            // The FTS5 table missed every write made without its triggers.
            self.exec(
                tx,
                "rebuilding the free-text index",
                "INSERT INTO records_fts (records_fts) VALUES ('rebuild')",
                vec![],
            )
            .await?;
        }
        self.exec(
            tx,
            "forgetting the dropped index definitions",
            "DELETE FROM deferred_indexes",
            vec![],
        )
        .await?;
        self.set_backfill_flag(tx, false).await
    }

    async fn set_backfill_flag(&self, tx: &DatabaseTransaction, on: bool) -> Result<()> {
        self.exec(
            tx,
            "setting the backfill mode",
            "UPDATE sync_state SET backfill_mode = $1 WHERE id = 1",
            vals![i64::from(on)],
        )
        .await
        .map(drop)
    }
}
