//! Quarantined logs (`quarantined_logs`): the ledger logs that did not
//! decode, stored in the transaction of the block batch they came in, one
//! row per position (block number, log index, tx hash), and removed with
//! their block when a rollback or a snapshot takes it away.

use healthledger_core::{
    BlockRef, CacheResult, ChainEvent, LogPosition, QuarantinedLog, QuarantinedLogs,
    check_quarantined,
};
use sea_orm::{DatabaseTransaction, Value};

use crate::SqlCache;
use crate::convert::{clamp, get, hash_col, hash_of, int, uint};
use crate::dialect::{Col, Rows, vals};
use crate::error::{Error, Result};

const TABLE: &str = "quarantined_logs";

impl SqlCache {
    /// Applies a batch and stores its quarantined logs inside `tx`.
    pub(crate) async fn apply_quarantining_in(
        &self,
        tx: &DatabaseTransaction,
        batch: &[(BlockRef, Vec<ChainEvent>)],
        quarantined: &[QuarantinedLog],
        finalized: u64,
    ) -> CacheResult<()> {
        check_quarantined(batch, quarantined)?;
        self.apply_blocks_in(tx, batch, Some(finalized)).await?;
        self.insert_quarantined(tx, quarantined).await?;
        Ok(())
    }

    /// Rolls back to `fork_point`, applies the new branch and stores its
    /// quarantined logs inside `tx`.
    pub(crate) async fn switch_quarantining_in(
        &self,
        tx: &DatabaseTransaction,
        fork_point: u64,
        batch: &[(BlockRef, Vec<ChainEvent>)],
        quarantined: &[QuarantinedLog],
        finalized: u64,
    ) -> CacheResult<()> {
        check_quarantined(batch, quarantined)?;
        self.switch_branch_in(tx, fork_point, batch, finalized)
            .await?;
        self.insert_quarantined(tx, quarantined).await?;
        Ok(())
    }

    /// Stores quarantined logs in one statement; a position already stored
    /// is overwritten with the same log.
    async fn insert_quarantined(
        &self,
        tx: &DatabaseTransaction,
        logs: &[QuarantinedLog],
    ) -> Result<()> {
        const COLS: &[(&str, Col)] = &[
            ("block_number", Col::Int),
            ("log_index", Col::Int),
            ("tx_hash", Col::Bytes),
            ("block_hash", Col::Bytes),
            ("topic", Col::Bytes),
            ("reason", Col::Text),
        ];
        let mut rows = Rows::with_capacity(COLS, logs.len());
        for q in logs {
            rows.push([
                Value::from(int("block number", q.at.block_number)?),
                Value::from(int("log index", q.at.log_index)?),
                Value::from(hash_col(q.at.tx_hash)),
                Value::from(hash_col(q.at.block_hash)),
                Value::from(hash_col(q.topic)),
                Value::from(q.reason.clone()),
            ]);
        }
        self.insert_rows(
            tx,
            "storing quarantined logs",
            TABLE,
            Some((&["block_number", "log_index", "tx_hash"], None)),
            rows,
        )
        .await
        .map(drop)
    }

    /// Removes the quarantined logs of blocks above `number` (their blocks
    /// are being undone or replaced).
    pub(crate) async fn delete_quarantined_above(
        &self,
        tx: &DatabaseTransaction,
        number: u64,
    ) -> Result<()> {
        self.exec(
            tx,
            "removing quarantined logs of undone blocks",
            "DELETE FROM quarantined_logs WHERE block_number > $1",
            vals![clamp(number)],
        )
        .await
        .map(drop)
    }

    /// The newest `limit` quarantined logs and the count of all.
    pub(crate) async fn load_quarantined(&self, limit: u64) -> CacheResult<QuarantinedLogs> {
        let total = self
            .one(
                &self.read,
                "counting quarantined logs",
                "SELECT COUNT(*) AS n FROM quarantined_logs",
                vec![],
            )
            .await?
            .ok_or_else(|| Error::corrupt(TABLE, "no count"))?;
        let total = uint(TABLE, "count", get(&total, TABLE, "n")?)?;
        let rows = self
            .all(
                &self.read,
                "reading quarantined logs",
                "SELECT block_number, log_index, tx_hash, block_hash, topic, reason
                 FROM quarantined_logs ORDER BY block_number DESC, log_index DESC, tx_hash DESC
                 LIMIT $1",
                vals![clamp(limit)],
            )
            .await?;
        let newest = rows
            .iter()
            .map(|row| -> Result<QuarantinedLog> {
                let bytes =
                    |col: &str| -> Result<_> { hash_of(TABLE, &get::<Vec<u8>>(row, TABLE, col)?) };
                Ok(QuarantinedLog {
                    at: LogPosition {
                        block_number: uint(
                            TABLE,
                            "block number",
                            get(row, TABLE, "block_number")?,
                        )?,
                        log_index: uint(TABLE, "log index", get(row, TABLE, "log_index")?)?,
                        block_hash: bytes("block_hash")?,
                        tx_hash: bytes("tx_hash")?,
                    },
                    topic: bytes("topic")?,
                    reason: get(row, TABLE, "reason")?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(QuarantinedLogs { total, newest })
    }
}
