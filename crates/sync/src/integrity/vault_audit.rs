//! Vault audit: every record the cache indexes has its CID checked in the
//! vault (`VaultPort::verify`: presence and integrity, no decryption), and
//! sealed objects no record on chain points to (orphans, left by a write
//! that failed after sealing) are listed with their age and, when asked,
//! shredded once older than a grace period.
//!
//! The cache's records are walked a page at a time. Orphans need the
//! chain's CIDs as a set: they are read at the head through the bulk
//! record reads (one request per page) and kept sorted, about 100 bytes a
//! record (10 MB for 100,000 records); the vault's listing is then paged
//! through against them.

use std::time::Duration;

use futures::{StreamExt as _, TryStreamExt as _, stream};
use healthledger_core::{
    BlockRef, Cid, HhNumber, ObjectStatus, ReadAt, RecordId, Timestamp, VaultPort,
};
use serde::{Deserialize, Serialize};

use crate::{Error, Result, SyncEngine};

/// Records (and vault objects) per page of the audit.
const PAGE: u64 = 1_000;

/// How the vault audit runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct VaultAuditConfig {
    /// Orphans younger than this are listed but never removed: a write may
    /// have sealed its object and not yet created its record.
    pub grace: Duration,
    /// Whether to shred orphans older than `grace`.
    pub remove_orphans: bool,
    /// `verify` calls in flight.
    pub concurrency: usize,
}

/// A record whose object is not intact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordProblem {
    /// The record.
    pub record: RecordId,
    /// Its patient.
    pub patient: HhNumber,
    /// The CID it points to.
    pub cid: Cid,
    /// What the vault said: missing, corrupt (and how) or shredded.
    pub status: ObjectStatus,
}

/// A sealed object no record on chain points to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Orphan {
    /// Its CID.
    pub cid: Cid,
    /// Stored (ciphertext) size in bytes.
    pub stored_size: u64,
    /// When it was sealed.
    pub sealed_at: Timestamp,
    /// Its age in seconds when the audit listed it.
    pub age_secs: u64,
    /// Whether this audit shredded it.
    pub removed: bool,
}

/// What the vault audit found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VaultAudit {
    /// The block whose records decided what is an orphan (the head).
    pub at: BlockRef,
    /// Records checked (those the cache indexes).
    pub records: u64,
    /// Of them, those whose object is intact.
    pub intact: u64,
    /// The others, by record id.
    pub problems: Vec<RecordProblem>,
    /// Objects the vault lists.
    pub objects: u64,
    /// Those no record on chain points to, in CID order.
    pub orphans: Vec<Orphan>,
}

impl VaultAudit {
    /// Whether every record's object is intact and no orphan is left.
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty() && self.orphans.iter().all(|o| o.removed)
    }
}

impl SyncEngine {
    /// Audits `vault` against the cache's records and the chain's (see the
    /// module docs).
    pub async fn audit_vault(
        &self,
        vault: &dyn VaultPort,
        config: VaultAuditConfig,
    ) -> Result<VaultAudit> {
        let at = self.ledger.head().await?;
        let mut audit = VaultAudit {
            at,
            records: 0,
            intact: 0,
            problems: Vec::new(),
            objects: 0,
            orphans: Vec::new(),
        };
        self.verify_cached_records(vault, config.concurrency, &mut audit)
            .await?;
        let chain_cids = self.chain_cids(&at).await?;
        let now = Timestamp::now();
        let mut after = None;
        loop {
            let page = vault.objects(after, PAGE as usize).await?;
            let Some(last) = page.last().map(|o| o.cid) else {
                break;
            };
            audit.objects += page.len() as u64;
            for o in page {
                if chain_cids.binary_search(&o.cid).is_ok() {
                    continue;
                }
                let age_secs = now.secs().saturating_sub(o.sealed_at.secs());
                let removed = config.remove_orphans && age_secs >= config.grace.as_secs();
                if removed {
                    vault.shred(&o.cid).await?;
                    tracing::info!(cid = %o.cid, age_secs, "shredded an orphaned vault object");
                }
                audit.orphans.push(Orphan {
                    cid: o.cid,
                    stored_size: o.stored_size,
                    sealed_at: o.sealed_at,
                    age_secs,
                    removed,
                });
            }
            after = Some(last);
        }
        Ok(audit)
    }

    async fn verify_cached_records(
        &self,
        vault: &dyn VaultPort,
        concurrency: usize,
        audit: &mut VaultAudit,
    ) -> Result<()> {
        let mut after = None;
        loop {
            let ids = self.cache.record_keys(after, PAGE).await?;
            let Some(last) = ids.last().copied() else {
                return Ok(());
            };
            let records = self.cache.records_by_id(&ids).await?;
            let checked: Vec<_> = stream::iter(records)
                .map(|r| async move {
                    let status = vault.verify(&r.cid).await?;
                    Ok::<_, Error>((r, status))
                })
                .buffered(concurrency.max(1))
                .try_collect()
                .await?;
            for (r, status) in checked {
                audit.records += 1;
                if status == ObjectStatus::Intact {
                    audit.intact += 1;
                } else {
                    audit.problems.push(RecordProblem {
                        record: r.id,
                        patient: r.patient,
                        cid: r.cid,
                        status,
                    });
                }
            }
            after = Some(last);
        }
    }

    /// Every CID a record on chain points to at `at`, sorted.
    async fn chain_cids(&self, at: &BlockRef) -> Result<Vec<Cid>> {
        let pin = ReadAt::Block(*at);
        let count = self.ledger.record_count(pin).await?;
        let page = self.config.page_size.max(1);
        let mut cids = Vec::new();
        let mut offset = 0;
        while offset < count {
            let want = page.min(count - offset);
            let records = self.ledger.records(offset, want, pin).await?;
            if records.len() as u64 != want {
                return Err(Error::Inconsistent(format!(
                    "a page at offset {offset} held {} records, not {want}",
                    records.len()
                )));
            }
            cids.extend(records.into_iter().map(|r| r.cid));
            offset += want;
        }
        cids.sort_unstable();
        Ok(cids)
    }
}
