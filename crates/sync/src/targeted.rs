//! Targeted sync: one profile or one record, read from the ledger at the
//! head and written into the cache (`sync patient 555555`).

use healthledger_core::{
    B256, BlockRef, ChainSource, HhNumber, MedicalRecord, ReadAt, RecordId, Role,
};
use serde::{Deserialize, Serialize};

use crate::{Result, SyncEngine};

/// What a targeted sync found and did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// The entity was not cached; now it is.
    Created,
    /// The cache held another version; now it holds the chain's.
    Updated,
    /// The cache already held the chain's version.
    Unchanged,
    /// The chain does not have it, nor does the cache: nothing was written.
    NotOnChain,
    /// The HH number is registered on chain with another role: nothing was
    /// written.
    OtherRole(Role),
    /// The cache holds it but the chain does not (it came from a dropped
    /// fork or another chain); `removed` says whether it was removed, as
    /// asked.
    Gone {
        /// Whether the cache row was removed.
        removed: bool,
    },
}

/// What to do with a cache row whose chain entry is gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Stale {
    /// Report it and leave it.
    #[default]
    Report,
    /// Report it and remove it.
    Remove,
}

impl SyncEngine {
    /// Syncs the patient `hh`.
    pub async fn sync_patient(&self, hh: HhNumber, stale: Stale) -> Result<Outcome> {
        self.sync_profile(hh, Role::Patient, stale).await
    }

    /// Syncs the doctor `hh`.
    pub async fn sync_doctor(&self, hh: HhNumber, stale: Stale) -> Result<Outcome> {
        self.sync_profile(hh, Role::Doctor, stale).await
    }

    /// Syncs the diagnostic center `hh`.
    pub async fn sync_diagnostic(&self, hh: HhNumber, stale: Stale) -> Result<Outcome> {
        self.sync_profile(hh, Role::DiagnosticCenter, stale).await
    }

    /// Syncs the profile `hh` registered with `role`. Every read is pinned
    /// to the head seen first, so the profile and the role check come from
    /// one block.
    pub async fn sync_profile(&self, hh: HhNumber, role: Role, stale: Stale) -> Result<Outcome> {
        let head = self.ledger.head().await?;
        let at = ReadAt::Block(head);
        let cached = self.cache.profile(hh).await?;
        let Some(on_chain) = self.ledger.profile(hh, role, at).await? else {
            for other in [Role::Patient, Role::Doctor, Role::DiagnosticCenter] {
                if other != role && self.ledger.profile(hh, other, at).await?.is_some() {
                    return Ok(Outcome::OtherRole(other));
                }
            }
            return self
                .gone(cached.is_some(), stale, || self.cache.remove_profile(hh))
                .await;
        };
        let outcome = changed(cached.as_ref(), &on_chain);
        if outcome != Outcome::Unchanged {
            self.cache
                .upsert_profile(&on_chain, state_read(&head))
                .await?;
        }
        Ok(outcome)
    }

    /// Syncs the record `id`.
    pub async fn sync_record(&self, id: RecordId, stale: Stale) -> Result<Outcome> {
        let head = self.ledger.head().await?;
        let cached = self.cache.record(id).await?;
        let Some(on_chain) = self.ledger.record(id, ReadAt::Block(head)).await? else {
            return self
                .gone(cached.is_some(), stale, || self.cache.remove_record(id))
                .await;
        };
        let outcome = changed::<MedicalRecord>(cached.as_ref(), &on_chain);
        if outcome != Outcome::Unchanged {
            self.cache
                .upsert_record(&on_chain, state_read(&head))
                .await?;
        }
        Ok(outcome)
    }

    async fn gone<F, Fut>(&self, cached: bool, stale: Stale, remove: F) -> Result<Outcome>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = healthledger_core::CacheResult<bool>>,
    {
        if !cached {
            return Ok(Outcome::NotOnChain);
        }
        let removed = match stale {
            Stale::Report => false,
            Stale::Remove => remove().await?,
        };
        Ok(Outcome::Gone { removed })
    }
}

fn changed<T: PartialEq>(cached: Option<&T>, on_chain: &T) -> Outcome {
    match cached {
        None => Outcome::Created,
        Some(c) if c == on_chain => Outcome::Unchanged,
        Some(_) => Outcome::Updated,
    }
}

/// The source of a value read from state at `head` (no transaction).
pub(crate) fn state_read(head: &BlockRef) -> ChainSource {
    ChainSource {
        block_number: head.number,
        tx_hash: B256::ZERO,
    }
}
