//! Test support (the `testing` feature): in-memory adapters of the three
//! ports, mockall mocks, fixtures, and the conformance suites every adapter
//! must pass.
//!
//! The suites follow object_store's `integration.rs`: one `pub async fn` per
//! behaviour over `&dyn Port`, plus an `all` that runs them in turn. An
//! adapter crate runs them from its own tests:
//!
//! ```text
//! healthledger_core::testing::cache::all(&my_cache).await;
//! ```

pub mod cache;
pub mod fixtures;
pub mod heads;
pub mod lease;
pub mod ledger;
mod memory_cache;
mod memory_lease;
mod memory_ledger;
mod memory_vault;
pub mod vault;

pub use crate::ports::cache::MockCachePort;
pub use crate::ports::ledger::MockLedgerPort;
pub use crate::ports::vault::MockVaultPort;
pub use fixtures::TestWallet;
pub use memory_cache::InMemoryCache;
pub use memory_lease::InMemoryLease;
pub use memory_ledger::InMemoryLedger;
pub use memory_vault::InMemoryVault;
pub use vault::{StoredBytes, VaultBackdoor};
