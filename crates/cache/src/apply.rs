//! Block application: a batch of blocks checked for linkage in memory,
//! their events applied, undo images and journal rows written together and
//! the checkpoint moved once.
use std::collections::{HashMap, HashSet};

use healthledger_core::{
    AccessGrant, BlockAdmission, BlockRef, CacheResult, ChainEvent, ChainSource, LedgerEvent,
    MedicalRecord, RecordId, admit_block,
};
use sea_orm::DatabaseTransaction;

use crate::SqlCache;
use crate::convert::{hh_col, int, serial_key};
use crate::dialect::Params;
use crate::undo::Before;

/// How many records one multi-row statement writes at most, and how many
/// bytes of undo images: small enough that a statement's parameters stay
/// well under 16 KiB. (sqlx writes larger messages to PostgreSQL in several
/// pieces without `TCP_NODELAY`, and Nagle's algorithm then meets delayed
/// ACKs: every such statement stalled for about 40 ms.)
pub(crate) const BATCH_ROWS: usize = 20;

/// The number of leading events that create records with distinct ids:
/// such a run can be written in bulk with the same outcome as one by one.
fn record_run(events: &[ChainEvent]) -> usize {
    let mut ids = HashSet::new();
    events
        .iter()
        .take_while(|e| matches!(&e.event, LedgerEvent::RecordCreated(r) if ids.insert(r.id)))
        .count()
}

pub(crate) fn source_of_event(e: &ChainEvent) -> ChainSource {
    ChainSource {
        block_number: e.at.block_number,
        tx_hash: e.at.tx_hash,
    }
}

impl SqlCache {
    /// Applies one event and returns the before-image to journal, if the
    /// event changed anything.
    pub(crate) async fn apply_event(
        &self,
        tx: &DatabaseTransaction,
        e: &ChainEvent,
    ) -> CacheResult<Option<Before>> {
        let src = source_of_event(e);
        let profile = match &e.event {
            LedgerEvent::ProfileUpdated(p) => Some(p.clone()),
            other => other.registered_profile(),
        };
        if let Some(p) = profile {
            let before = self.load_profile(tx, p.hh()).await?;
            self.upsert_profile_in(tx, &p, src).await?;
            return Ok(Some(Before::Profile {
                hh: p.hh(),
                row: before,
            }));
        }
        Ok(match &e.event {
            LedgerEvent::RecordCreated(r) => {
                let before = self.load_record(tx, r.id).await?;
                self.upsert_record_in(tx, r, src).await?;
                Some(Before::Record {
                    id: r.id,
                    row: before,
                })
            }
            LedgerEvent::AccessGranted(g) => {
                let before = self.load_grant(tx, g.patient, g.grantee).await?;
                self.upsert_grant_in(tx, g, src).await?;
                Some(Before::Grant {
                    patient: g.patient,
                    grantee: g.grantee,
                    row: before,
                })
            }
            LedgerEvent::AccessRevoked {
                patient,
                grantee,
                revoked_at,
            } => {
                // A revoke of a grant this cache never saw has nothing to
                // update; a full sync restores the grant from the chain.
                match self.load_grant(tx, *patient, *grantee).await? {
                    Some((g, s)) => {
                        let revoked = AccessGrant {
                            revoked_at: Some(*revoked_at),
                            ..g.clone()
                        };
                        self.upsert_grant_in(tx, &revoked, src).await?;
                        Some(Before::Grant {
                            patient: *patient,
                            grantee: *grantee,
                            row: Some((g, s)),
                        })
                    }
                    None => None,
                }
            }
            LedgerEvent::AuditAnchored(a) => {
                let before = self.load_anchor(tx).await?;
                self.upsert_anchor_in(tx, a, src).await?;
                Some(Before::Anchor { row: before })
            }
            _ => None,
        })
    }

    /// Applies a block's events and returns their before-images.
    pub(crate) async fn apply_events(
        &self,
        tx: &DatabaseTransaction,
        events: &[ChainEvent],
    ) -> CacheResult<Vec<Before>> {
        // Runs of record creations (the bulk of a busy block) are written
        // with a few multi-row statements; everything else event by event.
        let mut befores: Vec<Before> = Vec::new();
        let mut i = 0;
        while i < events.len() {
            let run = record_run(&events[i..]);
            if run > 1 {
                befores.extend(self.upsert_record_run(tx, &events[i..i + run]).await?);
                i += run;
            } else {
                befores.extend(self.apply_event(tx, &events[i]).await?);
                i += 1;
            }
        }
        Ok(befores)
    }

    /// Writes a run of record creations with distinct ids (see
    /// [`record_run`]) and returns their before-images in event order.
    pub(crate) async fn upsert_record_run(
        &self,
        tx: &DatabaseTransaction,
        events: &[ChainEvent],
    ) -> CacheResult<Vec<Before>> {
        let records: Vec<(&MedicalRecord, ChainSource)> = events
            .iter()
            .filter_map(|e| match &e.event {
                LedgerEvent::RecordCreated(r) => Some((r, source_of_event(e))),
                _ => None,
            })
            .collect();
        let mut before: HashMap<RecordId, (MedicalRecord, ChainSource)> = HashMap::new();
        for chunk in records.chunks(BATCH_ROWS) {
            let mut p = Params::default();
            let keys: Vec<String> = chunk
                .iter()
                .map(|(r, _)| {
                    format!(
                        "(r.patient = {} AND r.serial_key = {})",
                        p.push(hh_col(r.id.patient())),
                        p.push(serial_key(r.id.serial()))
                    )
                })
                .collect();
            // An OR of key lookups: both backends answer it from the key's
            // index (SQLite scans the table for a row-value IN list).
            let sql = format!(
                "SELECT {} FROM records r WHERE {}",
                self.record_cols(),
                keys.join(" OR ")
            );
            for row in self.all(tx, "reading records", &sql, p.0).await? {
                let (r, s) = self.record_of_row(&row)?;
                before.insert(r.id, (r, s));
            }
            let mut p = Params::default();
            let tuples = chunk
                .iter()
                .map(|(r, s)| self.record_values(&mut p, r, *s))
                .collect::<CacheResult<Vec<_>>>()?;
            self.upsert_record_rows(tx, &tuples, p).await?;
        }
        Ok(records
            .iter()
            .map(|(r, _)| Before::Record {
                id: r.id,
                row: before.remove(&r.id),
            })
            .collect())
    }

    /// Applies a batch of blocks inside `tx`: linkage is checked in memory
    /// block by block ([`admit_block`], the checkpoint advancing through
    /// the batch), then the undo images of the blocks above `finalized`
    /// and the journal rows are written together and the checkpoint moves
    /// once. Blocks at or below `finalized` keep no undo rows; the highest
    /// of them becomes the final block (the `pruned_*` columns), below
    /// which rolling back is refused.
    pub(crate) async fn apply_blocks_in(
        &self,
        tx: &DatabaseTransaction,
        batch: &[(BlockRef, Vec<ChainEvent>)],
        finalized: Option<u64>,
    ) -> CacheResult<()> {
        let (Some(first), Some(last)) = (batch.first(), batch.last()) else {
            return Ok(());
        };
        let mut low = first.0.number;
        let mut high = last.0.number;
        for (b, _) in batch {
            int("block number", b.number)?;
            low = low.min(b.number);
            high = high.max(b.number);
        }
        self.lock_chain(tx).await?;
        let state = self.read_sync_state(tx).await?;
        let mut checkpoint = state.checkpoint();
        let mut journaled = self
            .journaled_hashes(tx, int("block number", low)?, int("block number", high)?)
            .await?;
        let mut applied: Vec<BlockRef> = Vec::with_capacity(batch.len());
        let mut undo: Vec<(i64, Vec<Before>)> = Vec::new();
        let mut final_block: Option<BlockRef> = None;
        for (block, events) in batch {
            let hash = journaled.get(&block.number).copied();
            if admit_block(block, events, hash, checkpoint.as_ref())?
                == BlockAdmission::AlreadyApplied
            {
                continue;
            }
            let befores = self.apply_events(tx, events).await?;
            if finalized.is_some_and(|f| block.number <= f) {
                final_block = Some(*block);
            } else if !befores.is_empty() {
                undo.push((int("block number", block.number)?, befores));
            }
            journaled.insert(block.number, block.hash);
            checkpoint = Some(*block);
            applied.push(*block);
        }
        let Some(top) = applied.last().copied() else {
            return Ok(());
        };
        self.insert_undo(tx, &undo).await?;
        self.insert_journal(tx, &applied).await?;
        self.set_checkpoint(tx, Some(top)).await?;
        if let Some(f) = final_block.filter(|f| state.pruned.is_none_or(|p| p.number < f.number)) {
            self.set_final(tx, f).await?;
        }
        Ok(())
    }
}
