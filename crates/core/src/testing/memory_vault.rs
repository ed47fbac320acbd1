//! [`InMemoryVault`]: a [`VaultPort`] test double in memory.
//!
//! It does not encrypt (the real sealing lives in `healthledger-vault`); it
//! keeps each object with a random 16-byte salt and addresses it by the
//! CIDv1 (raw, sha2-256) of salt ‖ content, so two puts of the same bytes get
//! different CIDs, reads are verified against the CID, and shredding forgets
//! the content for good — the behaviours the conformance suite checks.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, MutexGuard},
};

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use futures::{StreamExt, stream};
use sha2::{Digest, Sha256};

use crate::{
    ByteStream, Cid, ObjectStatus, SealedObject, VaultError, VaultHealth, VaultPort, VaultResult,
};

#[derive(Debug, Clone)]
enum Slot {
    Stored { salt: [u8; 16], content: Bytes },
    Shredded,
}

/// An in-memory [`VaultPort`]. Cloning gives another handle on the same
/// objects.
#[derive(Debug, Clone, Default)]
pub struct InMemoryVault {
    objects: Arc<Mutex<HashMap<Cid, Slot>>>,
}

fn address(salt: &[u8; 16], content: &[u8]) -> Cid {
    let digest = Sha256::new()
        .chain_update(salt)
        .chain_update(content)
        .finalize();
    match cid::multihash::Multihash::<64>::wrap(0x12, &digest) {
        Ok(mh) => Cid::from_inner(cid::Cid::new_v1(0x55, mh)),
        Err(e) => unreachable!("a 32-byte digest fits a 64-byte multihash: {e}"),
    }
}

impl InMemoryVault {
    /// An empty vault.
    pub fn new() -> Self {
        Self::default()
    }

    /// Test hook: flips one bit of the stored object, as bit rot would.
    pub fn corrupt(&self, cid: &Cid) {
        if let Some(Slot::Stored { content, .. }) = self.lock().get_mut(cid) {
            let mut bytes = content.to_vec();
            match bytes.first_mut() {
                Some(b) => *b ^= 1,
                None => bytes.push(0),
            }
            *content = Bytes::from(bytes);
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<Cid, Slot>> {
        // Each operation leaves the map consistent, so a poisoned lock is safe.
        self.objects.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn checked(&self, cid: &Cid) -> VaultResult<Bytes> {
        match self.lock().get(cid) {
            None => Err(VaultError::NotFound(format!("no object {cid}"))),
            Some(Slot::Shredded) => Err(VaultError::NotFound(format!(
                "object {cid} was shredded and can never be read again"
            ))),
            Some(Slot::Stored { salt, content }) if address(salt, content) == *cid => {
                Ok(content.clone())
            }
            Some(Slot::Stored { .. }) => Err(VaultError::Integrity(format!(
                "object {cid} does not match its CID"
            ))),
        }
    }
}

#[async_trait]
impl VaultPort for InMemoryVault {
    async fn put(&self, plaintext: Bytes) -> VaultResult<SealedObject> {
        let salt: [u8; 16] = rand::random();
        let cid = address(&salt, &plaintext);
        let size = plaintext.len() as u64;
        self.lock().insert(
            cid,
            Slot::Stored {
                salt,
                content: plaintext,
            },
        );
        Ok(SealedObject {
            cid,
            size,
            stored_size: size + 16,
        })
    }

    async fn put_stream(&self, mut plaintext: ByteStream) -> VaultResult<SealedObject> {
        let mut buf = BytesMut::new();
        while let Some(chunk) = plaintext.next().await {
            buf.extend_from_slice(&chunk?);
        }
        self.put(buf.freeze()).await
    }

    async fn get(&self, cid: &Cid) -> VaultResult<Bytes> {
        self.checked(cid)
    }

    async fn get_stream(&self, cid: &Cid) -> VaultResult<ByteStream> {
        let content = self.checked(cid)?;
        let chunks: Vec<VaultResult<Bytes>> = content
            .chunks(64 * 1024)
            .map(|c| Ok(content.slice_ref(c)))
            .collect();
        Ok(stream::iter(chunks).boxed())
    }

    async fn verify(&self, cid: &Cid) -> VaultResult<ObjectStatus> {
        Ok(match self.checked(cid) {
            Ok(_) => ObjectStatus::Intact,
            Err(VaultError::Integrity(why)) => ObjectStatus::Corrupt(why),
            Err(_) if matches!(self.lock().get(cid), Some(Slot::Shredded)) => {
                ObjectStatus::Shredded
            }
            Err(_) => ObjectStatus::Missing,
        })
    }

    async fn shred(&self, cid: &Cid) -> VaultResult<()> {
        let mut objects = self.lock();
        match objects.get_mut(cid) {
            None => Err(VaultError::NotFound(format!("no object {cid}"))),
            Some(slot) => {
                *slot = Slot::Shredded;
                Ok(())
            }
        }
    }

    async fn health(&self) -> VaultResult<VaultHealth> {
        Ok(VaultHealth {
            backend: "memory://".into(),
            key_id: "none (test double, not encrypted)".into(),
        })
    }
}
