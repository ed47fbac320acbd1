//! The sync engine's error: what the ledger or the cache refused, or why the
//! engine cannot go on by itself.

use healthledger_core::{CacheError, LedgerError, VaultError};

/// Shorthand for sync results.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a sync step failed. Every step either completes or leaves the cache
/// as it was (its writes are single cache transactions), so a failed step
/// can simply be run again.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The ledger failed (retryable when [`LedgerError::is_retryable`]).
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    /// The cache failed.
    #[error(transparent)]
    Cache(#[from] CacheError),
    /// The cache's checkpoint is on a fork the chain no longer has, and no
    /// block the cache can still roll back to is canonical: the reorg is
    /// deeper than the journal, or reaches below the cache's final block.
    #[error(
        "reorg deeper than the cache can undo: the checkpoint {checkpoint} is not canonical and \
         none of the {journaled} journaled blocks above the final block {} is (depth at least \
         {depth}); run a full sync",
        final_block.map_or_else(|| "(none)".to_owned(), |n| n.to_string())
    )]
    ReorgTooDeep {
        /// The cache's checkpoint.
        checkpoint: u64,
        /// How many blocks at least were reorganized.
        depth: u64,
        /// How many journaled blocks were compared.
        journaled: u64,
        /// The cache's final block (nothing below it can be rolled back).
        final_block: Option<u64>,
    },
    /// The ledger answered inconsistently (logs of a block whose hash is
    /// not the canonical one, a header that does not link): the chain moved
    /// under the read, or the provider is faulty. Retrying usually succeeds.
    #[error("the ledger answered inconsistently: {0}")]
    Inconsistent(String),
    /// The cache holds chain data but no checkpoint to continue from, or a
    /// checkpoint below the contract's deployment: incremental sync cannot
    /// start; a full sync can.
    #[error("incremental sync cannot start: {0}; run a full sync")]
    NeedsFullSync(String),
    /// The vault failed (during a vault audit).
    #[error(transparent)]
    Vault(#[from] VaultError),
    /// An integrity check or repair cannot compare the chain with the
    /// cache as asked: the cache's checkpoint is not canonical, or moved
    /// since the report being repaired. Sync, then verify again.
    #[error("integrity check cannot proceed: {0}")]
    NotComparable(String),
}

impl Error {
    /// Whether running the same step again may succeed without anyone
    /// changing anything.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Ledger(e) => e.is_retryable(),
            Self::Cache(e) => e.is_retryable(),
            Self::Vault(e) => e.is_retryable(),
            Self::Inconsistent(_) | Self::NotComparable(_) => true,
            Self::ReorgTooDeep { .. } | Self::NeedsFullSync(_) => false,
        }
    }
}
