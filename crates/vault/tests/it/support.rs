//! Support shared by the integration tests: raw reads, writes and bit flips
//! of the store under a vault, and the conformance suite's
//! [`VaultBackdoor`] over them.

use async_trait::async_trait;
use healthledger_core::Cid;
use healthledger_core::testing::{StoredBytes, VaultBackdoor};
use healthledger_vault::Vault;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

/// The bytes stored at `path`.
pub(crate) async fn read<S: ObjectStore + ?Sized>(store: &S, path: &Path) -> Vec<u8> {
    store
        .get(path)
        .await
        .unwrap_or_else(|e| panic!("reading {path}: {e}"))
        .bytes()
        .await
        .unwrap_or_else(|e| panic!("reading {path}: {e}"))
        .to_vec()
}

/// Replaces the bytes stored at `path`.
pub(crate) async fn write<S: ObjectStore + ?Sized>(store: &S, path: &Path, bytes: Vec<u8>) {
    store
        .put(path, PutPayload::from(bytes))
        .await
        .unwrap_or_else(|e| panic!("writing {path}: {e}"));
}

/// `bytes` with bit `bit` (counted from the lowest bit of byte 0) flipped.
pub(crate) fn flip_bit(bytes: &[u8], bit: usize) -> Vec<u8> {
    assert!(
        bit < bytes.len() * 8,
        "bit {bit} is outside the {} stored bytes",
        bytes.len()
    );
    let mut flipped = bytes.to_vec();
    flipped[bit / 8] ^= 1 << (bit % 8);
    flipped
}

/// Flips bit `bit` of the bytes stored at `path`.
pub(crate) async fn flip_stored_bit<S: ObjectStore + ?Sized>(store: &S, path: &Path, bit: usize) {
    let original = read(store, path).await;
    write(store, path, flip_bit(&original, bit)).await;
}

/// The suite's backdoor into a [`Vault`] on any backend: the stored object
/// is `objects/<cid>` and the key record `keys/<cid>` in its object store.
pub(crate) struct StoreBackdoor<'a>(pub(crate) &'a Vault);

#[async_trait]
impl VaultBackdoor for StoreBackdoor<'_> {
    async fn stored_bytes(&self, cid: &Cid) -> StoredBytes {
        let store = self.0.store();
        StoredBytes {
            object: read(store, &self.0.object_location(cid)).await,
            key_record: read(store, &self.0.key_location(cid)).await,
        }
    }

    async fn flip_object_byte(&self, cid: &Cid, offset: usize) {
        flip_stored_bit(self.0.store(), &self.0.object_location(cid), offset * 8).await;
    }

    async fn flip_key_byte(&self, cid: &Cid, offset: usize) {
        flip_stored_bit(self.0.store(), &self.0.key_location(cid), offset * 8).await;
    }
}
