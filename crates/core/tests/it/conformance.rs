//! The three conformance suites on the in-memory adapters.

use healthledger_core::testing::{self, InMemoryCache, InMemoryLedger, InMemoryVault, TestWallet};

#[tokio::test]
async fn in_memory_ledger_conforms() {
    let ledger = InMemoryLedger::new(TestWallet::from_seed(1).address());
    testing::ledger::all(&ledger, &ledger).await;
}

#[tokio::test]
async fn in_memory_cache_conforms() {
    testing::cache::all(|| async { InMemoryCache::new() }).await;
}

#[tokio::test]
async fn in_memory_vault_conforms() {
    let vault = InMemoryVault::new();
    testing::vault::all(&vault, &vault).await;
}
