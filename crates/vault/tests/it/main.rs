//! Integration tests of the vault: the core conformance suite on every
//! backend, property tests of the sealed format, tampering, shredding and
//! key rotation.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod conformance;
mod orderings;
mod properties;
#[cfg(feature = "s3")]
mod s3;
mod support;
mod tampering;

use std::sync::Arc;

use healthledger_vault::{CidOptions, Kek, Vault};
use object_store::memory::InMemory;
use object_store::path::Path;

/// A fixed test KEK.
pub fn kek() -> Kek {
    Kek::new("test-kek-1", [7; 32]).unwrap()
}

/// Another fixed test KEK.
pub fn other_kek() -> Kek {
    Kek::new("test-kek-2", [9; 32]).unwrap()
}

/// A vault on a fresh in-memory store, with the store for tampering.
pub fn memory_vault(kek: Kek) -> (Vault, Arc<InMemory>) {
    let store = Arc::new(InMemory::new());
    let vault = Vault::with_store(
        store.clone(),
        Path::from("vault"),
        "memory://",
        kek,
        CidOptions::KUBO_V1,
    )
    .unwrap();
    (vault, store)
}
