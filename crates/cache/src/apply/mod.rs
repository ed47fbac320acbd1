//! Block application, set-based: a batch of blocks is checked for linkage
//! in memory ([`admit_block`]), the rows its events touch are read with one
//! statement per table, the events are folded in memory into net row
//! changes (`fold`, the same rules event by event as ever, keeping the
//! before-image of every change in a non-final block), and the changes,
//! undo images and journal rows are written with one statement per table
//! (`bulk`); the checkpoint moves once.

mod bulk;
mod fold;

use healthledger_core::{BlockAdmission, BlockRef, CacheResult, ChainEvent, admit_block};
use sea_orm::DatabaseTransaction;

pub(crate) use bulk::{RECORD_COLS, push_record};

use crate::SqlCache;
use crate::convert::int;
use crate::undo::Before;

impl SqlCache {
    /// Applies a batch of blocks inside `tx`: linkage is checked in memory
    /// block by block ([`admit_block`], the checkpoint advancing through
    /// the batch), then the events are folded and written, the undo images
    /// of the blocks above `finalized` and the journal rows are written
    /// and the checkpoint moves once. Blocks at or below `finalized` keep
    /// no undo rows; the highest of them becomes the final block (the
    /// `pruned_*` columns), below which rolling back is refused.
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
        if self.pg() {
            // The checkpoint commits with the data it covers, so a commit
            // lost in a crash only makes the sync engine apply those blocks
            // again from the older checkpoint: chain data can skip the wait
            // for the WAL flush. DB-only data (access log, sessions,
            // notifications) is written in other transactions and keeps
            // full durability.
            self.exec(
                tx,
                "relaxing the batch's commit",
                "SET LOCAL synchronous_commit = off",
                vec![],
            )
            .await?;
        }
        self.lock_chain(tx).await?;
        let state = self.read_sync_state(tx).await?;
        let mut checkpoint = state.checkpoint();
        let mut journaled = self
            .journaled_hashes(tx, int("block number", low)?, int("block number", high)?)
            .await?;
        let is_final = |b: &BlockRef| finalized.is_some_and(|f| b.number <= f);
        let mut applied: Vec<&(BlockRef, Vec<ChainEvent>)> = Vec::with_capacity(batch.len());
        let mut keys = fold::Keys::default();
        for entry in batch {
            let (block, events) = entry;
            let hash = journaled.get(&block.number).copied();
            if admit_block(block, events, hash, checkpoint.as_ref())?
                == BlockAdmission::AlreadyApplied
            {
                continue;
            }
            keys.add(events, !is_final(block));
            journaled.insert(block.number, block.hash);
            checkpoint = Some(*block);
            applied.push(entry);
        }
        let Some(top) = applied.last().map(|(b, _)| *b) else {
            return Ok(());
        };
        keys.dedup();
        let mut fold = self.read_for_fold(tx, &keys).await?;
        let mut undo: Vec<(i64, Vec<Before>)> = Vec::new();
        let mut final_block: Option<BlockRef> = None;
        for (block, events) in &applied {
            let keep = !is_final(block);
            let mut befores = Vec::new();
            for e in events {
                befores.extend(fold.apply(e, keep)?);
            }
            if !keep {
                final_block = Some(*block);
            } else if !befores.is_empty() {
                undo.push((int("block number", block.number)?, befores));
            }
        }
        self.write_fold(tx, &fold).await?;
        self.insert_undo(tx, &undo).await?;
        let blocks: Vec<BlockRef> = applied.iter().map(|(b, _)| *b).collect();
        self.insert_journal(tx, &blocks).await?;
        self.set_checkpoint(tx, Some(top)).await?;
        if let Some(f) = final_block.filter(|f| state.pruned.is_none_or(|p| p.number < f.number)) {
            self.set_final(tx, f).await?;
        }
        Ok(())
    }
}
