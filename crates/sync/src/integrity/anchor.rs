//! The anchoring job: every `interval`, once at least `min_batch` entries
//! were appended since the chain's latest anchor, the access log's head
//! hash is anchored on chain (`LedgerPort::anchor_audit`). The application
//! layer schedules it ([`AnchorJob::run`] on a task) and stops it with its
//! [`Stopper`].
//!
//! A log that fails its audit is never anchored: anchoring would vouch for
//! a tampered log. Each round audits the whole log (one pass over it, a page
//! at a time), which is what makes the anchor worth having.

use std::{
    sync::{Arc, atomic::AtomicBool},
    time::Duration,
};

use healthledger_core::B256;
use serde::{Deserialize, Serialize};

use super::access_audit::AccessLogAudit;
use crate::{Result, Stopper, SyncEngine};

/// When the job anchors. Nothing here has a default: the interval is a
/// cost (one transaction each) the operator chooses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnchorConfig {
    /// Time between rounds.
    pub interval: Duration,
    /// The fewest new entries worth a transaction (at least 1 is needed
    /// in any case: the anchored seq must grow).
    pub min_batch: u64,
}

/// What one anchoring round did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum AnchorOutcome {
    /// The digest of entries `1..=last_seq` was anchored.
    Anchored {
        /// The last entry covered.
        last_seq: u64,
        /// The anchored digest (entry `last_seq`'s hash).
        digest: B256,
        /// The anchoring transaction.
        tx_hash: B256,
    },
    /// Fewer than `min_batch` entries since the latest anchor.
    TooFew {
        /// Entries not yet anchored.
        pending: u64,
    },
    /// The log failed its audit; nothing was anchored.
    Broken(Box<AccessLogAudit>),
}

impl SyncEngine {
    /// One anchoring round (see the module docs). The ledger's signer must
    /// be a registrar.
    pub async fn anchor_access_log(&self, min_batch: u64) -> Result<AnchorOutcome> {
        let audit = self.audit_access_log().await?;
        if audit.first_broken.is_some() || audit.anchor_holds == Some(false) {
            return Ok(AnchorOutcome::Broken(Box::new(audit)));
        }
        let anchored = audit.chain_anchor.map_or(0, |a| a.last_seq);
        let pending = audit.entries.saturating_sub(anchored);
        if pending == 0 || pending < min_batch {
            return Ok(AnchorOutcome::TooFew { pending });
        }
        // The audit found entries 1..=entries in place, so the last is
        // entry `entries`.
        let last_seq = audit.entries;
        let digest = self.cache.access_log_digest(last_seq).await?;
        let receipt = self.ledger.anchor_audit(digest, last_seq).await?;
        tracing::info!(last_seq, %digest, tx = %receipt.tx_hash, "anchored the access log");
        Ok(AnchorOutcome::Anchored {
            last_seq,
            digest,
            tx_hash: receipt.tx_hash,
        })
    }
}

/// The periodic anchoring job over one engine's ledger and cache.
#[derive(Debug, Clone)]
pub struct AnchorJob {
    engine: SyncEngine,
    config: AnchorConfig,
    stop: Arc<AtomicBool>,
}

impl AnchorJob {
    /// A job anchoring through `engine`'s ledger (whose signer must be a
    /// registrar) from its cache.
    pub fn new(engine: SyncEngine, config: AnchorConfig) -> Self {
        Self {
            engine,
            config,
            stop: Arc::default(),
        }
    }

    /// The handle that ends [`Self::run`] after the round in progress.
    pub fn stopper(&self) -> Stopper {
        Stopper(self.stop.clone())
    }

    /// Runs a round every `interval` until stopped. A broken log is logged
    /// as an error and not anchored (the job keeps auditing, so it reports
    /// the break every round); a failure that a retry may fix is logged and
    /// retried next round; any other failure ends the job with it.
    pub async fn run(&self) -> Result<()> {
        while !self.stopped() {
            match self.engine.anchor_access_log(self.config.min_batch).await {
                Ok(AnchorOutcome::Broken(audit)) => tracing::error!(
                    first_broken = ?audit.first_broken,
                    anchor_holds = ?audit.anchor_holds,
                    "the access log failed its audit; not anchoring it"
                ),
                Ok(_) => {}
                Err(e) if e.is_retryable() => {
                    tracing::warn!(error = %e, "anchoring failed; retrying next round");
                }
                Err(e) => return Err(e),
            }
            self.sleep().await;
        }
        Ok(())
    }

    fn stopped(&self) -> bool {
        self.stop.load(std::sync::atomic::Ordering::Relaxed)
    }

    async fn sleep(&self) {
        let slice = Duration::from_millis(50);
        let mut left = self.config.interval;
        while !left.is_zero() && !self.stopped() {
            let d = left.min(slice);
            tokio::time::sleep(d).await;
            left -= d;
        }
    }
}
