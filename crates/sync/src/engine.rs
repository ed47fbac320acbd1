//! [`SyncEngine`]: the ledger and the cache, the engine's settings, and its
//! status. The operations live in their own modules (`targeted`, `full`,
//! `backfill`, `reorg`, `follow`).

use std::{
    fmt,
    sync::{Arc, Mutex, MutexGuard, atomic::AtomicBool},
    time::{Duration, Instant},
};

use healthledger_core::{CachePort, LedgerPort, QuarantinedLog, Timestamp, WriterLease};

use crate::{
    Result,
    plan::{Facts, Plan, Start, plan},
    status::{LeaseStatus, Phase, Progress, ProgressFn, RECENT_QUARANTINED, SyncStatus},
};

/// Tuning of the engine. [`SyncConfig::default`] suits a local node and a
/// public RPC alike; nothing in it names a network or a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncConfig {
    /// Blocks per `eth_getLogs` range to start with.
    pub initial_range: u64,
    /// The largest range the adaptive sizing may reach.
    pub max_range: u64,
    /// The events a range aims at: ranges grow while they return fewer and
    /// shrink when they return more.
    pub events_per_range: u64,
    /// Ranges fetched concurrently (ahead of the writer).
    pub ranges_in_flight: usize,
    /// A batch is applied once it holds this many events (or at the end).
    pub batch_events: usize,
    /// Entities per bulk-read page of a full sync or a drift check. The
    /// default, 750, is a whole number of the EVM adapter's pages (150
    /// profiles, 250 records; 1,000 grants), so no call is short.
    pub page_size: u64,
    /// Pages read concurrently during a full sync.
    pub pages_in_flight: usize,
    /// How an empty cache starts.
    pub start: Start,
    /// How often follow mode polls the head.
    pub poll_interval: Duration,
    /// How long follow mode waits after a failed step before the next.
    pub retry_delay: Duration,
    /// A first backfill (into a cache without a checkpoint) of at least
    /// this many final blocks runs in the cache's initial backfill mode
    /// (indexes dropped, rebuilt at the end; searches refused meanwhile);
    /// `None` never uses it.
    pub backfill_mode_blocks: Option<u64>,
}

impl Default for SyncConfig {
    fn default() -> Self {
        Self {
            initial_range: 2_000,
            max_range: 100_000,
            events_per_range: 2_000,
            ranges_in_flight: 4,
            batch_events: 10_000,
            page_size: 750,
            pages_in_flight: 4,
            start: Start::Snapshot,
            poll_interval: Duration::from_secs(2),
            retry_delay: Duration::from_secs(1),
            backfill_mode_blocks: Some(10_000),
        }
    }
}

/// What the engine remembers between steps (the cache remembers the rest).
#[derive(Debug, Default)]
pub(crate) struct Memory {
    pub(crate) is_syncing: bool,
    pub(crate) last_sync_time: Option<Timestamp>,
    pub(crate) last_error: Option<String>,
    pub(crate) leader: bool,
}

/// The sync engine: reconciles the ledger into the cache through the ports.
///
/// Every write it makes is one cache transaction that moves the checkpoint
/// with the data, so a crash or an error at any point leaves the cache at a
/// checkpoint it can resume from; running the same step again is safe.
/// One engine writes to one cache at a time (see the crate docs on the
/// lease).
#[derive(Clone)]
pub struct SyncEngine {
    pub(crate) ledger: Arc<dyn LedgerPort>,
    pub(crate) cache: Arc<dyn CachePort>,
    pub(crate) config: SyncConfig,
    pub(crate) memory: Arc<Mutex<Memory>>,
    pub(crate) progress: Option<ProgressFn>,
    pub(crate) stop: Arc<AtomicBool>,
    pub(crate) lease: Option<Arc<dyn WriterLease>>,
}

impl fmt::Debug for SyncEngine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SyncEngine")
            .field("ledger", &self.ledger)
            .field("cache", &self.cache)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// What one [`SyncEngine::step`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StepReport {
    /// The plan carried out.
    pub plan: Plan,
    /// Events (or snapshot entities) applied.
    pub applied: u64,
}

impl SyncEngine {
    /// An engine over `ledger` and `cache`.
    pub fn new(ledger: Arc<dyn LedgerPort>, cache: Arc<dyn CachePort>, config: SyncConfig) -> Self {
        Self {
            ledger,
            cache,
            config,
            memory: Arc::default(),
            progress: None,
            stop: Arc::default(),
            lease: None,
        }
    }

    /// Calls `progress` with every progress event.
    pub fn with_progress(mut self, progress: ProgressFn) -> Self {
        self.progress = Some(progress);
        self
    }

    /// Makes [`Self::follow`] write only while it holds `lease`, and stand
    /// by (polling for it) while another follower does.
    pub fn with_lease(mut self, lease: Arc<dyn WriterLease>) -> Self {
        self.lease = Some(lease);
        self
    }

    /// The engine's settings.
    pub fn config(&self) -> &SyncConfig {
        &self.config
    }

    pub(crate) fn memory(&self) -> MutexGuard<'_, Memory> {
        // A panic while the lock was held left plain counters behind:
        // still usable.
        self.memory
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn report(&self, phase: Phase, done: u64, total: u64, events: u64, since: Instant) {
        if let Some(f) = &self.progress {
            let secs = since.elapsed().as_secs_f64();
            f(&Progress {
                phase,
                done,
                total,
                events,
                per_second: if secs > 0.0 {
                    events as f64 / secs
                } else {
                    0.0
                },
            });
        }
    }

    /// Logs quarantined logs as they are fetched; the cache stores them
    /// with their block batch, and [`Self::status`] reads them back.
    pub(crate) fn quarantine(&self, logs: &[QuarantinedLog]) {
        for log in logs {
            tracing::warn!(
                block = log.at.block_number,
                log_index = log.at.log_index,
                tx = %log.at.tx_hash,
                topic = %log.topic,
                reason = %log.reason,
                "quarantined a ledger log that does not decode"
            );
        }
    }

    /// The facts the planner needs, read now.
    pub async fn facts(&self) -> Result<Facts> {
        let checkpoint = self.cache.checkpoint().await?;
        let (head, finalized) = (self.ledger.head().await?, self.ledger.finalized().await?);
        let canonical_at_checkpoint = match checkpoint {
            Some(cp) => self.ledger.block(cp.number).await?,
            None => None,
        };
        Ok(Facts {
            checkpoint,
            canonical_at_checkpoint,
            head,
            finalized,
            deployment_block: self.ledger.deployment_block(),
        })
    }

    /// Plans and carries out one step toward the head: a snapshot for an
    /// empty cache, a backfill, or a branch switch after a reorg. `Idle`
    /// when the cache is at the head.
    pub async fn step(&self) -> Result<StepReport> {
        self.memory().is_syncing = true;
        let result = self.step_inner().await;
        let mut m = self.memory();
        m.is_syncing = false;
        match &result {
            Ok(r) => {
                m.last_error = None;
                if matches!(r.plan, Plan::Idle | Plan::Backfill { .. }) {
                    m.last_sync_time = Some(Timestamp::now());
                }
            }
            Err(e) => m.last_error = Some(e.to_string()),
        }
        result
    }

    async fn step_inner(&self) -> Result<StepReport> {
        let facts = self.facts().await?;
        let plan = plan(&facts, self.config.start);
        if !matches!(plan, Plan::Backfill { .. }) {
            self.finish_backfill_mode().await?;
        }
        let applied = match plan {
            Plan::Idle => 0,
            Plan::Full { at } => self.full_sync_at(at).await?,
            Plan::Backfill { from, to, final_to } => {
                self.backfill(from, facts.head, to, final_to).await?
            }
            Plan::Reorg { checkpoint } => self.recover_reorg(checkpoint, &facts).await?,
        };
        Ok(StepReport { plan, applied })
    }

    /// Steps until the cache is at the head it saw last (auto sync): full
    /// when there is nothing to continue from, incremental otherwise, and
    /// a branch switch after a reorg. Returns the events applied. A stop
    /// requested through [`Self::stopper`] ends it after the batch being
    /// written.
    pub async fn sync(&self) -> Result<u64> {
        let mut applied = 0;
        while !self.stopping() {
            let r = self.step().await?;
            applied += r.applied;
            if r.plan == Plan::Idle {
                break;
            }
        }
        Ok(applied)
    }

    /// The engine's status, read now from the cache and the ledger.
    pub async fn status(&self) -> Result<SyncStatus> {
        let checkpoint = self.cache.checkpoint().await?;
        let counts = self.cache.counts().await?;
        let quarantined = self.cache.quarantined_logs(RECENT_QUARANTINED).await?;
        let (head, finalized) = (self.ledger.head().await?, self.ledger.finalized().await?);
        let lease = match &self.lease {
            Some(l) => Some(LeaseStatus {
                held: l.is_held().await?,
                lease: l.describe(),
            }),
            None => None,
        };
        let m = self.memory();
        let (lag_blocks, lag_seconds) = match checkpoint {
            Some(cp) => (
                head.number.saturating_sub(cp.number),
                head.timestamp.0.saturating_sub(cp.timestamp.0),
            ),
            None => (
                head.number
                    .saturating_sub(self.ledger.deployment_block().saturating_sub(1)),
                0,
            ),
        };
        Ok(SyncStatus {
            is_syncing: m.is_syncing,
            last_sync_time: m.last_sync_time,
            checkpoint,
            head,
            finalized,
            lag_blocks,
            lag_seconds,
            counts,
            quarantined: quarantined.total,
            recent_quarantined: quarantined.newest,
            last_error: m.last_error.clone(),
            lease,
        })
    }
}
