//! Incremental sync from the checkpoint to the head, as a pipeline.
//!
//! Final blocks (at or below the finalized head): `eth_getLogs` ranges are
//! fetched ahead of the writer on spawned tasks (at most
//! `ranges_in_flight`, sized adaptively toward `events_per_range`), taken
//! in block order, cut into batches of about `batch_events` events and
//! applied with one `apply_blocks` each, without undo. Only the block that
//! ends a batch is read as a header: it becomes the checkpoint with its
//! real parent hash and time. The other blocks of a final batch are known
//! from their logs alone: their hash is the logs' block hash, their parent
//! hash is inferred where the block before them is known (in the batch, or
//! the checkpoint) and zero otherwise, and their time is zero (unknown).
//! They can never be reorganized, so nothing compares them again.
//!
//! Blocks above the finalized head: every header is read (concurrently),
//! the headers must link from the checkpoint, every log must belong to its
//! header, and every block is applied, events or not, with exact undo, so
//! the journal holds an unbroken chain to compare against after a reorg.

use std::{
    collections::VecDeque,
    sync::atomic::{AtomicBool, Ordering},
    time::Instant,
};

use futures::{StreamExt as _, TryStreamExt as _, stream};
use healthledger_core::{
    B256, BlockRef, ChainEvent, EventBatch, LedgerResult, LogPosition, QuarantinedLog, Timestamp,
};
use tokio::task::JoinHandle;

use crate::{Error, Result, SyncEngine, status::Phase};

/// Blocks per tail batch: bounds the headers held at once.
const TAIL_BATCH_BLOCKS: u64 = 1_000;

/// Blocks with their events, and the logs of those blocks that did not
/// decode: what one cache transaction applies.
pub(crate) type Branch = (Vec<(BlockRef, Vec<ChainEvent>)>, Vec<QuarantinedLog>);

/// A fetch running ahead of the writer.
struct Fetch {
    to: u64,
    task: JoinHandle<LedgerResult<EventBatch>>,
}

/// Aborts the fetches still running when the pipeline ends early.
struct InFlight(VecDeque<Fetch>);

impl Drop for InFlight {
    fn drop(&mut self) {
        for f in &self.0 {
            f.task.abort();
        }
    }
}

impl SyncEngine {
    /// Applies blocks `from..=to` (the head is `head`); those up to
    /// `final_to` are final. Returns the events applied.
    pub(crate) async fn backfill(
        &self,
        from: u64,
        head: BlockRef,
        to: u64,
        final_to: u64,
    ) -> Result<u64> {
        let mut applied = 0;
        let to = to.min(head.number);
        let final_end = final_to.min(to);
        if from <= final_end {
            let mode = self.enter_backfill_mode(from, final_end).await?;
            applied += self.backfill_final(from, final_end, final_to).await?;
            let done = self
                .cache
                .checkpoint()
                .await?
                .is_some_and(|c| c.number >= final_end);
            if mode && done {
                self.finish_backfill_mode().await?;
            }
        } else {
            self.finish_backfill_mode().await?;
        }
        if self.stopping() {
            return Ok(applied);
        }
        let tail_from = from.max(final_to.saturating_add(1));
        if tail_from <= to {
            applied += self.apply_tail(tail_from, to, final_to).await?;
        }
        Ok(applied)
    }

    /// Whether final blocks `from..=to` are applied in the cache's initial
    /// backfill mode: it is on already (a first backfill that stopped or
    /// crashed), or this is a first backfill (no checkpoint) of at least
    /// [`crate::SyncConfig::backfill_mode_blocks`] blocks, and then enters it.
    async fn enter_backfill_mode(&self, from: u64, to: u64) -> Result<bool> {
        if self.cache.in_backfill_mode().await? {
            return Ok(true);
        }
        let large = self
            .config
            .backfill_mode_blocks
            .is_some_and(|min| to - from + 1 >= min);
        if !large || self.cache.checkpoint().await?.is_some() {
            return Ok(false);
        }
        tracing::info!(
            from,
            to,
            "first backfill: dropping the cache's search indexes until it ends"
        );
        self.cache.begin_backfill_mode().await?;
        Ok(true)
    }

    /// Leaves the cache's initial backfill mode if it is on (the backfill
    /// it was entered for is done, or a restart finds it left behind),
    /// rebuilding the indexes.
    pub(crate) async fn finish_backfill_mode(&self) -> Result<()> {
        if self.cache.in_backfill_mode().await? {
            let since = Instant::now();
            self.cache.end_backfill_mode().await?;
            tracing::info!(
                seconds = since.elapsed().as_secs_f64(),
                "rebuilt the cache's search indexes after the first backfill"
            );
        }
        Ok(())
    }

    pub(crate) fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    async fn backfill_final(&self, from: u64, to: u64, finalized: u64) -> Result<u64> {
        let since = Instant::now();
        let total = to - from + 1;
        let mut checkpoint = self.cache.checkpoint().await?;
        let mut size = self
            .config
            .initial_range
            .clamp(1, self.config.max_range.max(1));
        let target = self.config.events_per_range.max(1);
        let mut next = from;
        let mut in_flight = InFlight(VecDeque::new());
        let mut pending: Vec<ChainEvent> = Vec::new();
        let mut pending_quarantined: Vec<QuarantinedLog> = Vec::new();
        let mut applied = 0u64;
        loop {
            while in_flight.0.len() < self.config.ranges_in_flight.max(1) && next <= to {
                let end = next.saturating_add(size - 1).min(to);
                let ledger = self.ledger.clone();
                let start = next;
                in_flight.0.push_back(Fetch {
                    to: end,
                    task: tokio::spawn(async move { ledger.events(start, end).await }),
                });
                next = end + 1;
            }
            let Some(fetch) = in_flight.0.pop_front() else {
                break;
            };
            let batch = fetch
                .task
                .await
                .map_err(|e| Error::Inconsistent(format!("a log fetch task failed: {e}")))??;
            let n = batch.events.len() as u64;
            // Adapt the size of the ranges not yet started.
            if n < target / 2 {
                size = size.saturating_mul(2).min(self.config.max_range.max(1));
            } else if n > target.saturating_mul(2) {
                size = (size / 2).max(1);
            }
            self.quarantine(&batch.quarantined);
            pending.extend(batch.events);
            pending_quarantined.extend(batch.quarantined);
            let last = in_flight.0.is_empty() && next > to;
            if pending.len() >= self.config.batch_events || last || self.stopping() {
                let events = std::mem::take(&mut pending);
                let quarantined = std::mem::take(&mut pending_quarantined);
                applied += events.len() as u64;
                let top = self
                    .apply_final_batch(events, quarantined, fetch.to, finalized, checkpoint)
                    .await?;
                checkpoint = Some(top);
                self.report(Phase::Backfill, fetch.to - from + 1, total, applied, since);
                if self.stopping() {
                    break;
                }
            }
        }
        Ok(applied)
    }

    /// Applies final events up to block `end` as one batch ending at
    /// `end`'s header, storing the batch's quarantined logs with it;
    /// returns that header (the new checkpoint).
    async fn apply_final_batch(
        &self,
        events: Vec<ChainEvent>,
        quarantined: Vec<QuarantinedLog>,
        end: u64,
        finalized: u64,
        checkpoint: Option<BlockRef>,
    ) -> Result<BlockRef> {
        let header =
            self.ledger.block(end).await?.ok_or_else(|| {
                Error::Inconsistent(format!("final block {end} is not on the chain"))
            })?;
        // Every block with a decoded or a quarantined log, in order: a
        // block whose logs all failed to decode is applied (empty) too, so
        // its quarantined logs have their block.
        let mut marks: Vec<(u64, B256)> = events
            .iter()
            .map(|e| (e.at.block_number, e.at.block_hash))
            .chain(
                quarantined
                    .iter()
                    .map(|q| (q.at.block_number, q.at.block_hash)),
            )
            .collect();
        marks.sort_by_key(|(n, _)| *n);
        marks.dedup();
        let mut batch: Vec<(BlockRef, Vec<ChainEvent>)> = Vec::with_capacity(marks.len());
        for (number, hash) in marks {
            let prev = batch.last().map(|(b, _)| *b);
            if let Some(p) = prev.filter(|p| p.number == number) {
                return Err(Error::Inconsistent(format!(
                    "logs of block {number} name two hashes, {} and {hash}",
                    p.hash
                )));
            }
            let known = prev.or(checkpoint).filter(|p| p.number + 1 == number);
            let block = BlockRef {
                number,
                hash,
                parent_hash: known.map_or(B256::ZERO, |p| p.hash),
                timestamp: Timestamp(0),
            };
            batch.push((block, Vec::new()));
        }
        for e in events {
            // Events come in chain order, and every block is in the batch.
            let i = batch.partition_point(|(b, _)| b.number < e.at.block_number);
            match batch.get_mut(i) {
                Some((b, evs)) if b.number == e.at.block_number => evs.push(e),
                _ => {
                    return Err(Error::Inconsistent(format!(
                        "an event of block {} came out of order",
                        e.at.block_number
                    )));
                }
            }
        }
        match batch.last_mut() {
            Some((b, _)) if b.number == end => {
                if b.hash != header.hash {
                    return Err(Error::Inconsistent(format!(
                        "final block {end} is {} by its header but {} by its logs",
                        header.hash, b.hash
                    )));
                }
                *b = header;
            }
            _ => batch.push((header, Vec::new())),
        }
        self.cache
            .apply_blocks_quarantining(&batch, &quarantined, finalized)
            .await?;
        Ok(header)
    }

    /// Applies non-final blocks `from..=to` with their headers, in batches.
    async fn apply_tail(&self, from: u64, to: u64, finalized: u64) -> Result<u64> {
        let since = Instant::now();
        let mut applied = 0;
        let mut start = from;
        while start <= to {
            let end = start.saturating_add(TAIL_BATCH_BLOCKS - 1).min(to);
            let parent = self.cache.checkpoint().await?;
            let (batch, quarantined) = self.fetch_branch(start, end, parent).await?;
            applied += batch.iter().map(|(_, e)| e.len() as u64).sum::<u64>();
            self.cache
                .apply_blocks_quarantining(&batch, &quarantined, finalized)
                .await?;
            self.report(Phase::Tail, end - from + 1, to - from + 1, applied, since);
            if self.stopping() {
                break;
            }
            start = end + 1;
        }
        Ok(applied)
    }

    /// Blocks `from..=to` with their headers and events, checked to link
    /// from `parent` (when it is the block before `from`) and among
    /// themselves, with every log (decoded or quarantined) in its header's
    /// block.
    pub(crate) async fn fetch_branch(
        &self,
        from: u64,
        to: u64,
        parent: Option<BlockRef>,
    ) -> Result<Branch> {
        let ledger = &self.ledger;
        let headers: Vec<BlockRef> = stream::iter(from..=to)
            .map(|n| async move {
                ledger.block(n).await?.ok_or_else(|| {
                    Error::Inconsistent(format!("block {n} is no longer on the chain"))
                })
            })
            .buffered(self.config.ranges_in_flight.max(1) * 4)
            .try_collect()
            .await?;
        let mut prev = parent.filter(|p| p.number + 1 == from);
        for h in &headers {
            if let Some(p) = prev
                && h.parent_hash != p.hash
            {
                return Err(Error::Inconsistent(format!(
                    "block {} has parent {}, not block {}'s hash {}: the chain moved",
                    h.number, h.parent_hash, p.number, p.hash
                )));
            }
            prev = Some(*h);
        }
        let events = self.ledger.events(from, to).await?;
        self.quarantine(&events.quarantined);
        let mut batch: Vec<(BlockRef, Vec<ChainEvent>)> =
            headers.into_iter().map(|h| (h, Vec::new())).collect();
        // The slot of a log's block among the headers read, if it is one
        // of them (same number and hash).
        let slot = |batch: &[(BlockRef, Vec<ChainEvent>)], at: &LogPosition| {
            at.block_number
                .checked_sub(from)
                .and_then(|i| usize::try_from(i).ok())
                .filter(|&i| batch.get(i).is_some_and(|(h, _)| h.hash == at.block_hash))
                .ok_or_else(|| {
                    Error::Inconsistent(format!(
                        "a log of block {} ({}) matches no header read for {from}..={to}: the \
                         chain moved",
                        at.block_number, at.block_hash
                    ))
                })
        };
        for q in &events.quarantined {
            slot(&batch, &q.at)?;
        }
        for e in events.events {
            let i = slot(&batch, &e.at)?;
            batch[i].1.push(e);
        }
        Ok((batch, events.quarantined))
    }
}

/// Asks a running engine to stop after its current batch.
#[derive(Debug, Clone)]
pub struct Stopper(pub(crate) std::sync::Arc<AtomicBool>);

impl Stopper {
    /// Requests the stop; the engine finishes the batch it is writing.
    pub fn stop(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    /// Withdraws a stop request, so the engine syncs again.
    pub fn resume(&self) {
        self.0.store(false, Ordering::Relaxed);
    }
}
