//! Targeted upserts (a targeted or full sync writing values it read from
//! chain state), safe under rollback: each takes the chain lock, so it
//! serializes with block application and rollback, and when the
//! checkpoint is a journaled block above the final one, it is journaled as
//! a change made on top of that block: its before-image joins the block's
//! undo log after the block's own steps. Undo stays one ordered history, so
//! `rollback_to(n)` below that block puts the replaced value back, and a
//! rollback to it or above keeps the upsert (see
//! [`healthledger_core::CachePort::rollback_to`]).

use healthledger_core::{
    AccessGrant, AuditAnchor, CacheError, CacheResult, ChainSource, MedicalRecord, Profile,
};
use sea_orm::DatabaseTransaction;

use crate::SqlCache;
use crate::dialect::vals;
use crate::error::Result;
use crate::undo::Before;

impl SqlCache {
    /// The block a targeted upsert made now is journaled with: the
    /// checkpoint, when it is journaled and not final. Takes the chain
    /// lock.
    async fn upsert_target(&self, tx: &DatabaseTransaction) -> Result<Option<i64>> {
        self.lock_chain(tx).await?;
        let state = self.read_sync_state(tx).await?;
        Ok(state
            .checkpoint
            .filter(|c| state.pruned.is_none_or(|p| p.number < c.number))
            .and_then(|c| i64::try_from(c.number).ok()))
    }

    /// Appends `before` as the next undo step of block `block`.
    async fn append_undo(
        &self,
        tx: &DatabaseTransaction,
        block: i64,
        before: &Before,
    ) -> CacheResult<()> {
        let image = serde_json::to_string(before).map_err(CacheError::other)?;
        let sql = format!(
            "INSERT INTO undo_log (block_number, step, image)
             SELECT $1, COALESCE(MAX(step), -1) + 1, {} FROM undo_log WHERE block_number = $1",
            if self.pg() { "CAST($2 AS JSONB)" } else { "$2" }
        );
        self.exec(
            tx,
            "journaling a targeted upsert",
            &sql,
            vals![block, image],
        )
        .await?;
        Ok(())
    }

    /// [`healthledger_core::CachePort::upsert_profile`] inside `tx`.
    pub(crate) async fn targeted_profile(
        &self,
        tx: &DatabaseTransaction,
        profile: &Profile,
        source: ChainSource,
    ) -> CacheResult<()> {
        let target = self.upsert_target(tx).await?;
        let before = match target {
            Some(_) => Some(self.load_profile(tx, profile.hh()).await?),
            None => None,
        };
        self.upsert_profile_in(tx, profile, source).await?;
        if let (Some(block), Some(row)) = (target, before) {
            let before = Before::Profile {
                hh: profile.hh(),
                row,
            };
            self.append_undo(tx, block, &before).await?;
        }
        Ok(())
    }

    /// [`healthledger_core::CachePort::upsert_record`] inside `tx`.
    pub(crate) async fn targeted_record(
        &self,
        tx: &DatabaseTransaction,
        record: &MedicalRecord,
        source: ChainSource,
    ) -> CacheResult<()> {
        let target = self.upsert_target(tx).await?;
        let before = match target {
            Some(_) => Some(self.load_record(tx, record.id).await?),
            None => None,
        };
        self.upsert_record_in(tx, record, source).await?;
        if let (Some(block), Some(row)) = (target, before) {
            let before = Before::Record { id: record.id, row };
            self.append_undo(tx, block, &before).await?;
        }
        Ok(())
    }

    /// [`healthledger_core::CachePort::upsert_grant`] inside `tx`.
    pub(crate) async fn targeted_grant(
        &self,
        tx: &DatabaseTransaction,
        grant: &AccessGrant,
        source: ChainSource,
    ) -> CacheResult<()> {
        let target = self.upsert_target(tx).await?;
        let before = match target {
            Some(_) => Some(self.load_grant(tx, grant.patient, grant.grantee).await?),
            None => None,
        };
        self.upsert_grant_in(tx, grant, source).await?;
        if let (Some(block), Some(row)) = (target, before) {
            let before = Before::Grant {
                patient: grant.patient,
                grantee: grant.grantee,
                row,
            };
            self.append_undo(tx, block, &before).await?;
        }
        Ok(())
    }

    /// [`healthledger_core::CachePort::upsert_audit_anchor`] inside `tx`.
    pub(crate) async fn targeted_anchor(
        &self,
        tx: &DatabaseTransaction,
        anchor: &AuditAnchor,
        source: ChainSource,
    ) -> CacheResult<()> {
        let target = self.upsert_target(tx).await?;
        let before = match target {
            Some(_) => Some(self.load_anchor(tx).await?),
            None => None,
        };
        self.upsert_anchor_in(tx, anchor, source).await?;
        if let (Some(block), Some(row)) = (target, before) {
            self.append_undo(tx, block, &Before::Anchor { row }).await?;
        }
        Ok(())
    }
}
