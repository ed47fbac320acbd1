//! Access-log audit: the log's hash chain walked a page at a time and
//! checked against the latest `AuditAnchored` read from the chain itself,
//! not only against the cache's copy of it.

use healthledger_core::{AccessLogEntry, AuditAnchor, B256, BlockRef, LogVerification, ReadAt};
use serde::{Deserialize, Serialize};

use crate::{Result, SyncEngine};

/// Access-log entries read per page of the walk.
const LOG_PAGE: u64 = 2_000;

/// What the access-log audit found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessLogAudit {
    /// The block the chain's anchor was read at (the head).
    pub at: BlockRef,
    /// Stored entries.
    pub entries: u64,
    /// The first entry that is missing, out of place, not a valid link,
    /// or (when the chain's anchor does not hold) at the latest the
    /// anchor's last entry; see [`LogVerification::verify_against_anchor`].
    pub first_broken: Option<u64>,
    /// The latest anchor on chain.
    pub chain_anchor: Option<AuditAnchor>,
    /// The cache's copy of it.
    pub cached_anchor: Option<AuditAnchor>,
    /// Whether the cache's entry `chain_anchor.last_seq` hashes to the
    /// anchored digest; `None` without an anchor on chain.
    pub anchor_holds: Option<bool>,
}

impl AccessLogAudit {
    /// Whether the log is intact, holds the chain's anchor, and the cache's
    /// copy of the anchor equals the chain's.
    pub fn is_clean(&self) -> bool {
        self.first_broken.is_none()
            && self.anchor_holds != Some(false)
            && self.cached_anchor == self.chain_anchor
    }
}

impl SyncEngine {
    /// Walks the whole access log (a page at a time, in seq order) and
    /// checks it against the chain's latest anchor.
    pub async fn audit_access_log(&self) -> Result<AccessLogAudit> {
        let at = self.ledger.head().await?;
        let chain_anchor = self.ledger.latest_audit_anchor(ReadAt::Block(at)).await?;
        let cached_anchor = self.cache.latest_audit_anchor().await?;
        let anchored_seq = chain_anchor.map(|a| a.last_seq);
        let mut walk = Walk::default();
        let mut after = 0;
        loop {
            let page = self.cache.access_log(None, after, LOG_PAGE).await?;
            let Some(last) = page.last().map(|e| e.seq) else {
                break;
            };
            for e in &page {
                walk.step(e);
                if Some(e.seq) == anchored_seq {
                    walk.anchored_hash = Some(e.hash);
                }
            }
            after = last;
        }
        let walked = LogVerification {
            entries: walk.entries,
            first_broken: walk.first_broken,
        };
        let verified = walked.verify_against_anchor(walk.anchored_hash, chain_anchor.as_ref());
        Ok(AccessLogAudit {
            at,
            entries: verified.entries,
            first_broken: verified.first_broken,
            chain_anchor,
            cached_anchor,
            anchor_holds: chain_anchor
                .filter(|a| a.last_seq > 0)
                .map(|a| walk.anchored_hash == Some(a.digest)),
        })
    }
}

/// The walk of [`healthledger_core::first_broken_link`], one entry at a
/// time so that the log is read in pages rather than held whole.
#[derive(Default)]
struct Walk {
    entries: u64,
    prev: B256,
    first_broken: Option<u64>,
    anchored_hash: Option<B256>,
}

impl Walk {
    fn step(&mut self, e: &AccessLogEntry) {
        self.entries += 1;
        let expected = self.entries;
        if self.first_broken.is_none()
            && (e.seq != expected || e.prev_hash != self.prev || !e.is_self_consistent())
        {
            self.first_broken = Some(expected.min(e.seq));
        }
        self.prev = e.hash;
    }
}
