//! Integration tests of the vault: the core conformance suite on every
//! backend, property tests of the sealed format, tampering, shredding and
//! key rotation.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod car;
mod conformance;
mod gc;
mod orderings;
mod properties;
#[cfg(feature = "s3")]
mod s3;
mod support;
mod tampering;

use std::sync::Arc;

use std::time::Duration;

use healthledger_core::HhNumber;
use healthledger_vault::{CidOptions, Kek, StoreAt, Vault, VaultBuilder};
use object_store::ObjectStore;
use object_store::memory::InMemory;

/// A fixed test KEK.
pub fn kek() -> Kek {
    Kek::new("test-kek-1", [7; 32]).unwrap()
}

/// Another fixed test KEK.
pub fn other_kek() -> Kek {
    Kek::new("test-kek-2", [9; 32]).unwrap()
}

/// The patient of most test objects.
pub fn patient() -> HhNumber {
    HhNumber::new(555_555).unwrap()
}

/// The erasure horizon the tests configure.
pub const HORIZON: Duration = Duration::from_secs(35 * 24 * 3600);

/// A builder for a vault at `url` with its key store at `key_url`, the
/// test KEK and [`HORIZON`].
pub fn builder(url: &str, key_url: &str) -> VaultBuilder {
    Vault::builder(url)
        .key_store(key_url)
        .erasure_horizon(HORIZON)
        .kek(kek())
}

/// A vault keeping content under `vault/` and keys under `keys/` of one
/// store (so a test reaches both through it), under `keys`.
pub fn vault_on(store: Arc<dyn ObjectStore>, keys: Kek) -> Vault {
    Vault::with_stores(
        StoreAt::new(Arc::clone(&store), "vault", "test://content"),
        StoreAt::new(store, "keys", "test://keys"),
        Arc::new(keys),
        HORIZON,
        CidOptions::KUBO_V1,
    )
    .unwrap()
}

/// A vault on a fresh in-memory store, with the store for tampering.
pub fn memory_vault(kek: Kek) -> (Vault, Arc<InMemory>) {
    let store = Arc::new(InMemory::new());
    (vault_on(store.clone(), kek), store)
}
