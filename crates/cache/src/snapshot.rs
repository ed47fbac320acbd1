//! Whole-state writes: a reorg's branch switch and a full sync's snapshot
//! installed in one transaction each, and the removal of a row whose chain
//! entry is gone.

use healthledger_core::{
    BlockRef, CacheError, CacheResult, ChainEvent, ChainSnapshot, ChainSource, HhNumber, RecordId,
};
use sea_orm::DatabaseTransaction;

use crate::SqlCache;
use crate::apply::{RECORD_COLS, push_record};
use crate::convert::{hh_col, serial_key};
use crate::dialect::Rows;
use crate::error::Result;

/// The tables of chain data, children before parents (the role tables
/// reference `users`). DB-only tables are not in it.
const CHAIN_TABLES: &[&str] = &[
    "grants",
    "records",
    "patients",
    "doctors",
    "diagnostic_centers",
    "users",
    "audit_anchor",
    "undo_log",
    "journal",
];

impl SqlCache {
    /// [`healthledger_core::CachePort::switch_branch`] inside one
    /// transaction: the rollback and the new branch commit together.
    pub(crate) async fn switch_branch_in(
        &self,
        tx: &DatabaseTransaction,
        fork_point: u64,
        batch: &[(BlockRef, Vec<ChainEvent>)],
        finalized: u64,
    ) -> CacheResult<()> {
        healthledger_core::check_branch(fork_point, batch)?;
        self.rollback_in(tx, fork_point).await?;
        self.apply_blocks_in(tx, batch, Some(finalized)).await
    }

    /// [`healthledger_core::CachePort::replace_chain_state`] inside one
    /// transaction. Clearing the chain tables and writing the snapshot is
    /// the same as upserting it and deleting what it lacks, in fewer
    /// statements; readers see the old state until the commit.
    pub(crate) async fn replace_chain_state_in(
        &self,
        tx: &DatabaseTransaction,
        at: &BlockRef,
        snapshot: &ChainSnapshot,
    ) -> CacheResult<()> {
        self.lock_chain(tx).await?;
        for table in CHAIN_TABLES {
            self.exec(
                tx,
                "clearing chain data for a snapshot",
                &format!("DELETE FROM {table}"),
                vec![],
            )
            .await?;
        }
        // The snapshot's block number and no transaction: the values were
        // read from state, not from logs.
        let source = ChainSource {
            block_number: at.number,
            tx_hash: healthledger_core::B256::ZERO,
        };
        let mut seen = std::collections::HashSet::new();
        for p in &snapshot.profiles {
            if !seen.insert(p.hh()) {
                return Err(CacheError::Conflict(format!(
                    "the snapshot holds HH number {} twice",
                    p.hh()
                )));
            }
            self.upsert_profile_in(tx, p, source).await?;
        }
        let mut records = Rows::with_capacity(RECORD_COLS, snapshot.records.len());
        for r in &snapshot.records {
            push_record(&mut records, r, source)?;
        }
        self.upsert_records_bulk(tx, records).await?;
        for g in &snapshot.grants {
            self.upsert_grant_in(tx, g, source).await?;
        }
        if let Some(a) = &snapshot.anchor {
            self.upsert_anchor_in(tx, a, source).await?;
        }
        self.set_checkpoint(tx, Some(*at)).await?;
        self.set_final(tx, *at).await?;
        // Quarantined logs go with their blocks: those above `at` belong
        // to blocks the snapshot replaces.
        self.delete_quarantined_above(tx, at.number).await?;
        Ok(())
    }

    /// Removes the profile of `hh` (all its role rows); whether it was there.
    pub(crate) async fn remove_profile_in(
        &self,
        tx: &DatabaseTransaction,
        hh: HhNumber,
    ) -> Result<bool> {
        let there = self
            .one(
                tx,
                "reading a profile",
                "SELECT hh FROM users WHERE hh = $1",
                vec![hh_col(hh).into()],
            )
            .await?
            .is_some();
        if there {
            self.delete_profile(tx, hh).await?;
        }
        Ok(there)
    }

    /// Removes the index row of record `id`; whether it was there.
    pub(crate) async fn remove_record_in(
        &self,
        tx: &DatabaseTransaction,
        id: RecordId,
    ) -> Result<bool> {
        let there = self
            .one(
                tx,
                "reading a record",
                "SELECT patient FROM records WHERE patient = $1 AND serial_key = $2",
                vec![hh_col(id.patient()).into(), serial_key(id.serial()).into()],
            )
            .await?
            .is_some();
        if there {
            self.delete_record(tx, id).await?;
        }
        Ok(there)
    }

    /// Removes the grant of (`patient`, `grantee`); whether it was there.
    pub(crate) async fn remove_grant_in(
        &self,
        tx: &DatabaseTransaction,
        patient: HhNumber,
        grantee: HhNumber,
    ) -> Result<bool> {
        let there = self.load_grant(tx, patient, grantee).await?.is_some();
        if there {
            self.delete_grant(tx, patient, grantee).await?;
        }
        Ok(there)
    }

    /// Removes the audit anchor; whether there was one.
    pub(crate) async fn remove_anchor_in(&self, tx: &DatabaseTransaction) -> Result<bool> {
        let removed = self
            .exec(
                tx,
                "deleting the audit anchor",
                "DELETE FROM audit_anchor",
                vec![],
            )
            .await?;
        Ok(removed > 0)
    }
}
