//! Follow mode: sync to the head, prune the undo data of blocks that became
//! final, wait for the next head, repeat, until asked to stop.

use std::time::Duration;

use crate::{Result, SyncEngine, backfill::Stopper};

impl SyncEngine {
    /// A handle that asks this engine (and its clones) to stop after the
    /// batch it is writing: wire it to SIGINT/SIGTERM. The request holds
    /// until the [`Self::follow`] it stopped returns (or
    /// [`Stopper::resume`]), so a `sync` started meanwhile stops too.
    pub fn stopper(&self) -> Stopper {
        Stopper(self.stop.clone())
    }

    /// Follows the chain until [`Stopper::stop`]: every `poll_interval` it
    /// syncs to the head (full, incremental or a branch switch, as
    /// planned) and prunes the journal below the finalized block. A failed
    /// step is logged, kept in the status, and retried after
    /// `retry_delay`; an error no retry can fix (a reorg deeper than the
    /// cache can undo) ends the follow with that error.
    pub async fn follow(&self) -> Result<()> {
        let result = self.follow_until_stopped().await;
        if let Some(lease) = &self.lease
            && let Err(e) = lease.release().await
        {
            tracing::warn!(error = %e, "releasing the writer lease failed");
        }
        self.memory().leader = false;
        self.stopper().resume();
        result
    }

    async fn follow_until_stopped(&self) -> Result<()> {
        while !self.stopping() {
            if !self.lead().await {
                self.sleep(self.config.poll_interval).await;
                continue;
            }
            let wait = match self.sync().await {
                Ok(_) => {
                    self.prune().await?;
                    self.config.poll_interval
                }
                Err(e) if e.is_retryable() => {
                    tracing::warn!(error = %e, "sync step failed; retrying");
                    self.config.retry_delay
                }
                Err(e) => return Err(e),
            };
            self.sleep(wait).await;
        }
        Ok(())
    }

    /// Whether this engine may write now: it has no lease, or holds it (taking
    /// it when free). A lease error counts as not holding it.
    async fn lead(&self) -> bool {
        let Some(lease) = &self.lease else {
            return true;
        };
        let leader = match lease.try_acquire().await {
            Ok(held) => held,
            Err(e) => {
                tracing::warn!(error = %e, lease = %lease.describe(), "checking the writer lease failed");
                false
            }
        };
        let mut m = self.memory();
        if leader != m.leader {
            tracing::info!(lease = %lease.describe(), leader, "writer lease changed hands");
            m.leader = leader;
        }
        leader
    }

    /// Forgets the undo data of blocks at or below both the finalized
    /// block and the checkpoint.
    async fn prune(&self) -> Result<u64> {
        let finalized = self.ledger.finalized().await?;
        let Some(cp) = self.cache.checkpoint().await? else {
            return Ok(0);
        };
        let below = finalized.number.min(cp.number).saturating_add(1);
        Ok(self.cache.prune_journal(below).await?)
    }

    /// Sleeps `total`, waking early when a stop is requested.
    async fn sleep(&self, total: Duration) {
        let slice = Duration::from_millis(50);
        let mut left = total;
        while !left.is_zero() && !self.stopping() {
            let d = left.min(slice);
            tokio::time::sleep(d).await;
            left -= d;
        }
    }
}
