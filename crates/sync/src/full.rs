//! Full sync: the whole chain state read at one pinned block through the
//! bulk reads (a page per request, never a call per entity), installed in
//! the cache in one transaction that also sets the checkpoint to that
//! block, so incremental sync continues from there with no gap and no
//! double.

use std::{future::Future, time::Instant};

use futures::TryStreamExt as _;
use healthledger_core::{BlockRef, ChainSnapshot, LedgerResult, ReadAt, Role};

use crate::{Error, Result, SyncEngine, status::Phase};

impl SyncEngine {
    /// Reads the chain at block `number` and makes the cache equal to it.
    /// Returns the entities installed.
    pub async fn full_sync_at(&self, number: u64) -> Result<u64> {
        let at =
            self.ledger.block(number).await?.ok_or_else(|| {
                Error::Inconsistent(format!("block {number} is not on the chain"))
            })?;
        let snapshot = self.snapshot(&at).await?;
        let n = (snapshot.profiles.len() + snapshot.records.len() + snapshot.grants.len()) as u64;
        let since = Instant::now();
        self.report(Phase::Install, 0, n, 0, since);
        self.cache.replace_chain_state(&at, &snapshot).await?;
        self.report(Phase::Install, n, n, n, since);
        Ok(n)
    }

    /// Syncs everything at the chain's finalized block (or the deployment
    /// block while nothing after it is final), then catches up to the head.
    pub async fn full_sync(&self) -> Result<u64> {
        let (head, finalized) = (self.ledger.head().await?, self.ledger.finalized().await?);
        let at = finalized
            .number
            .min(head.number)
            .max(self.ledger.deployment_block())
            .min(head.number);
        let installed = self.full_sync_at(at).await?;
        Ok(installed + self.sync().await?)
    }

    /// The chain state at `at`, read in pages.
    pub async fn snapshot(&self, at: &BlockRef) -> Result<ChainSnapshot> {
        let pin = ReadAt::Block(*at);
        let l = &self.ledger;
        let since = Instant::now();
        let counts = [
            l.registered_count(Role::Patient, pin).await?,
            l.registered_count(Role::Doctor, pin).await?,
            l.registered_count(Role::DiagnosticCenter, pin).await?,
            l.record_count(pin).await?,
            l.grant_count(pin).await?,
        ];
        let total: u64 = counts.iter().sum();
        let done = std::sync::atomic::AtomicU64::new(0);
        let tick = |n: usize| {
            let d = done.fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed) + n as u64;
            self.report(Phase::Snapshot, d, total, d, since);
        };
        let mut profiles = Vec::new();
        for (role, count) in [Role::Patient, Role::Doctor, Role::DiagnosticCenter]
            .into_iter()
            .zip(counts)
        {
            profiles.extend(
                self.pages(count, |o, n| l.profiles(role, o, n, pin), &tick)
                    .await?,
            );
        }
        let records = self
            .pages(counts[3], |o, n| l.records(o, n, pin), &tick)
            .await?;
        let grants = self
            .pages(counts[4], |o, n| l.grants(o, n, pin), &tick)
            .await?;
        let anchor = l.latest_audit_anchor(pin).await?;
        Ok(ChainSnapshot {
            profiles,
            records,
            grants,
            anchor,
        })
    }

    /// `count` items read `page_size` at a time, `pages_in_flight` pages
    /// at once, in order ([`Self::chain_pages`], which refuses a short
    /// page), collected.
    async fn pages<T, F, Fut>(
        &self,
        count: u64,
        read: F,
        tick: &(dyn Fn(usize) + Sync),
    ) -> Result<Vec<T>>
    where
        F: Fn(u64, u64) -> Fut,
        Fut: Future<Output = LedgerResult<Vec<T>>>,
    {
        let pages: Vec<Vec<T>> = self
            .chain_pages(count, read)
            .inspect_ok(|items| tick(items.len()))
            .try_collect()
            .await?;
        Ok(pages.into_iter().flatten().collect())
    }
}
