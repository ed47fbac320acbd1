//! Follow mode: sync to the head, prune the undo data of blocks that became
//! final, wait for the next head, repeat, until asked to stop.

use std::time::Duration;

use futures::stream::BoxStream;
use futures::{FutureExt as _, StreamExt as _};

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
        let mut heads = Heads::default();
        while !self.stopping() {
            if !self.lead().await {
                self.sleep(self.config.poll_interval).await;
                continue;
            }
            // Subscribed before syncing, so a block mined while the sync
            // runs is announced, not missed until the next poll.
            self.subscribe_heads(&mut heads).await;
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
            self.wait_for_head(&mut heads, wait).await;
        }
        Ok(())
    }

    /// Subscribes to the ledger's new heads unless subscribed already or
    /// the ledger has none; a failure is logged, and polling covers it.
    async fn subscribe_heads(&self, heads: &mut Heads) {
        if heads.stream.is_some() || heads.unsupported {
            return;
        }
        match self.ledger.new_heads().await {
            Ok(Some(stream)) => heads.stream = Some(stream),
            Ok(None) => heads.unsupported = true,
            Err(e) => tracing::warn!(error = %e, "subscribing to new heads failed; polling"),
        }
    }

    /// Waits `total`, or less when the ledger announces a new head (its
    /// [`LedgerPort::new_heads`](healthledger_core::LedgerPort::new_heads),
    /// e.g. a WebSocket subscription), or when a stop is requested. Without
    /// a subscription this is the poll interval. A subscription that fails
    /// or ends is asked for again before the next sync, polling meanwhile.
    async fn wait_for_head(&self, heads: &mut Heads, total: Duration) {
        let Some(stream) = heads.stream.as_mut() else {
            self.sleep(total).await;
            return;
        };
        tokio::select! {
            announced = stream.next() => match announced {
                Some(number) => {
                    tracing::debug!(number, "new head announced");
                    // One sync covers every block announced so far.
                    while let Some(next) = stream.next().now_or_never() {
                        if next.is_none() {
                            heads.stream = None;
                            break;
                        }
                    }
                }
                None => {
                    tracing::warn!("the new-heads subscription ended; polling until it is renewed");
                    heads.stream = None;
                    self.sleep(total).await;
                }
            },
            () = self.sleep(total) => {}
        }
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

/// Follow mode's subscription to new heads, if the ledger offers one.
#[derive(Default)]
struct Heads {
    stream: Option<BoxStream<'static, u64>>,
    /// The ledger has no push channel: never ask again.
    unsupported: bool,
}
