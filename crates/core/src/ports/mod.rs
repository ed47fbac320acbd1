//! The three ports, what the application needs from the ledger, the cache
//! and the vault, and the cache's writer lease. Each is an object-safe
//! async trait, `Send + Sync + Debug`, used as `Arc<dyn …>`; every adapter
//! implements one and passes the conformance suite of the same name in
//! [`crate::testing`].

pub mod cache;
pub mod lease;
pub mod ledger;
pub mod vault;
