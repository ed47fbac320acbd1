//! [`WriterLease`]: one writer per cache. A follower holds the lease for as
//! long as it writes; a second follower on the same cache is a standby that
//! polls for the lease and takes over when the holder dies.

use std::fmt::Debug;

use async_trait::async_trait;
use auto_impl::auto_impl;

use crate::CacheResult;

/// An exclusive lease on a cache's chain writes.
///
/// Guarantees every implementation gives: at most one handle holds the lease
/// at a time; a holder that dies (its process killed, its connection lost)
/// loses the lease without doing anything, so a standby's
/// [`Self::try_acquire`] then succeeds; [`Self::is_held`] turns false as
/// soon as the holder could no longer be sure (a lost connection), and the
/// holder stops writing then.
#[async_trait]
#[auto_impl(&, Arc, Box)]
pub trait WriterLease: Send + Sync + Debug {
    /// Takes the lease if nobody holds it; whether this handle holds it now
    /// (true again when it already did).
    async fn try_acquire(&self) -> CacheResult<bool>;

    /// Whether this handle still holds the lease.
    async fn is_held(&self) -> CacheResult<bool>;

    /// Gives the lease up (nothing when not held).
    async fn release(&self) -> CacheResult<()>;

    /// What holds leases of this kind, for status displays (a lock file's
    /// path, a database and lock key), without secrets.
    fn describe(&self) -> String;
}
