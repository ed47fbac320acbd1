//! Reorgs without a gap: find the fork point by comparing the journal with
//! the chain, fetch the canonical branch first, then switch to it in one
//! cache transaction ([`healthledger_core::CachePort::switch_branch_quarantining`],
//! which also stores the new branch's quarantined logs), so readers see the
//! old branch until the new one is in place.

use std::time::Instant;

use futures::{StreamExt as _, TryStreamExt as _, stream};
use healthledger_core::BlockRef;

use crate::{
    Error, Result, SyncEngine,
    plan::{Facts, fork_point},
    status::Phase,
};

/// Journaled blocks compared with the chain per round, from the top down.
const WALK_WINDOW: u64 = 32;

impl SyncEngine {
    /// Recovers from a reorg below the checkpoint `checkpoint`: returns the
    /// events of the new branch applied.
    pub(crate) async fn recover_reorg(&self, checkpoint: u64, facts: &Facts) -> Result<u64> {
        let since = Instant::now();
        let fork = self.find_fork(checkpoint).await?;
        let to = facts.head.number;
        tracing::warn!(
            checkpoint,
            fork_point = fork.number,
            depth = checkpoint - fork.number,
            "reorg: switching the cache to the canonical branch"
        );
        let (batch, quarantined) = if fork.number < to {
            self.fetch_branch(fork.number + 1, to, Some(fork)).await?
        } else {
            (Vec::new(), Vec::new())
        };
        let applied = batch.iter().map(|(_, e)| e.len() as u64).sum();
        self.cache
            .switch_branch_quarantining(fork.number, &batch, &quarantined, facts.finalized.number)
            .await?;
        self.report(
            Phase::Reorg,
            to - fork.number,
            to - fork.number,
            applied,
            since,
        );
        Ok(applied)
    }

    /// The highest block the cache can roll back to that is still
    /// canonical, walking the journal down from the checkpoint a window at
    /// a time (a reorg is usually a few blocks deep).
    async fn find_fork(&self, checkpoint: u64) -> Result<BlockRef> {
        let final_block = self.cache.final_block().await?;
        let floor = final_block.map_or(0, |f| f.number + 1);
        let final_pair = match final_block {
            Some(f) => Some((f, self.ledger.block(f.number).await?)),
            None => None,
        };
        let mut hi = checkpoint;
        let mut compared = 0u64;
        loop {
            let lo = hi.saturating_sub(WALK_WINDOW - 1).max(floor);
            let rows = if lo <= hi {
                self.cache.journal(lo, hi).await?
            } else {
                Vec::new()
            };
            compared += rows.len() as u64;
            let ledger = &self.ledger;
            let pairs: Vec<(BlockRef, Option<BlockRef>)> = stream::iter(rows)
                .map(|j| async move { Ok::<_, Error>((j, ledger.block(j.number).await?)) })
                .buffered(8)
                .try_collect()
                .await?;
            let found = pairs
                .iter()
                .filter(|(j, c)| c.is_some_and(|c| c.hash == j.hash))
                .map(|(j, _)| *j)
                .max_by_key(|j| j.number);
            if let Some(j) = found {
                return Ok(j);
            }
            if lo <= floor || lo == 0 {
                // Nothing journaled above the final block is canonical:
                // the final block is the last candidate.
                let n = fork_point(checkpoint, &[], final_pair).map_err(|e| match e {
                    Error::ReorgTooDeep {
                        checkpoint,
                        depth,
                        final_block,
                        ..
                    } => Error::ReorgTooDeep {
                        checkpoint,
                        depth,
                        journaled: compared,
                        final_block,
                    },
                    other => other,
                })?;
                return final_block
                    .filter(|f| f.number == n)
                    .ok_or_else(|| Error::Inconsistent(format!("fork point {n} was not read")));
            }
            hi = lo - 1;
        }
    }
}
