//! The journal of applied blocks and the sync state (checkpoint and final
//! block): reading, appending, moving the checkpoint and pruning.
use std::collections::HashMap;

use healthledger_core::{B256, BlockRef, CacheResult, Timestamp};
use sea_orm::{ConnectionTrait, DatabaseTransaction, QueryResult, Value};

use crate::SqlCache;
use crate::convert::{clamp, get, hash_col, hash_of, int, ts_col, ts_of, uint};
use crate::dialect::vals;
use crate::dialect::{Col, Rows};
use crate::error::{Error, Result};

/// The checkpoint and the highest pruned block.
pub(crate) struct SyncState {
    pub(crate) checkpoint: Option<BlockRef>,
    pub(crate) pruned: Option<BlockRef>,
}

impl SyncState {
    pub(crate) fn checkpoint(&self) -> Option<BlockRef> {
        self.checkpoint.or(self.pruned)
    }
}

/// The block a row holds: a journal row (`number`, `hash`, `parent_hash`,
/// `block_time`) or the sync state's `checkpoint_*` / `pruned_*` columns.
/// A block journaled before migration 5 has no time: it reads as 0.
pub(crate) fn block_of(row: &QueryResult, columns: &str) -> Result<Option<BlockRef>> {
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

impl SqlCache {
    pub(crate) async fn read_sync_state<C: ConnectionTrait>(&self, c: &C) -> Result<SyncState> {
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

    pub(crate) async fn set_checkpoint(
        &self,
        tx: &DatabaseTransaction,
        b: Option<BlockRef>,
    ) -> Result<()> {
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
    pub(crate) async fn journaled_hashes(
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

    /// Journals applied blocks ([`SqlCache::insert_rows`]).
    pub(crate) async fn insert_journal(
        &self,
        tx: &DatabaseTransaction,
        blocks: &[BlockRef],
    ) -> Result<()> {
        const COLS: &[(&str, Col)] = &[
            ("number", Col::Int),
            ("hash", Col::Bytes),
            ("parent_hash", Col::Bytes),
            ("block_time", Col::Int),
        ];
        let mut rows = Rows::with_capacity(COLS, blocks.len());
        for b in blocks {
            rows.push([
                Value::from(int("block number", b.number)?),
                Value::from(hash_col(b.hash)),
                Value::from(hash_col(b.parent_hash)),
                Value::from(ts_col(b.timestamp)),
            ]);
        }
        self.insert_rows(tx, "journaling blocks", "journal", None, rows)
            .await
            .map(drop)
    }

    /// Records `b` as the final block: nothing below it can be rolled back.
    pub(crate) async fn set_final(&self, tx: &DatabaseTransaction, b: BlockRef) -> Result<()> {
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

    pub(crate) async fn prune_in(&self, tx: &DatabaseTransaction, below: u64) -> CacheResult<u64> {
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

    /// Journaled blocks in a range ([`CachePort::journal`](healthledger_core::CachePort::journal)).
    pub(crate) async fn journal_range(&self, from: u64, to: u64) -> CacheResult<Vec<BlockRef>> {
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
}
