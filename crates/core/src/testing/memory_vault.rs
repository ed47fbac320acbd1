//! [`InMemoryVault`]: a [`VaultPort`] test double in memory that seals like
//! the real vault, so a test that passes on it means the same thing there.
//!
//! # Sealing
//!
//! Every object gets a fresh random 256-bit data key and is encrypted with
//! AES-256-GCM-SIV in 64 KiB segments, in the same STREAM layout as
//! `healthledger-vault`'s format: a 16-byte header (magic `HLMV` — its own,
//! so the two formats are never confused —, version `1`, the segment size as
//! a big-endian `u32` and a random 7-byte nonce prefix), then every segment
//! as ciphertext ‖ 16-byte tag, sealed under the nonce
//! `prefix ‖ index (u32) ‖ last` with the header as associated data. A
//! reordered, dropped, duplicated, truncated or damaged segment fails its
//! tag. Stored sizes are therefore exactly the real vault's:
//! `16 + n + 16 · max(1, ⌈n / 65 536⌉)` for `n` plaintext bytes.
//!
//! The data key is wrapped under a random key-encryption key held by the
//! vault (AES-256-GCM-SIV, with the object's CID as associated data) into a
//! 60-byte key record, `nonce (12) ‖ wrapped key (32) ‖ tag (16)`, kept apart
//! from the object. The real record also carries a magic, a version and the
//! KEK id (a few bytes longer); here there is one KEK per vault and no
//! rotation.
//!
//! # Addresses
//!
//! An object's CID is the CIDv1 (raw codec, sha2-256) of its whole stored
//! object. That is the real vault's Kubo CIDv1 with raw leaves for stored
//! objects up to one 256 KiB chunk; above that the real vault addresses a
//! UnixFS dag-pb tree of 256 KiB leaves, a CID with another codec and digest.
//! CIDv0 is not offered.
//!
//! # Reads
//!
//! As in the real vault, `get` releases nothing unless the key record
//! unwraps, every segment authenticates and the CID matches; `get_stream`
//! unwraps the key record up front, then releases each segment as soon as
//! its tag verifies, ends with `Integrity` at the first segment that does
//! not (after the earlier segments' chunks), and checks the CID at the end;
//! `verify` checks the CID and the key record without decrypting content.
//!
//! Tests reach the stored bytes through its [`VaultBackdoor`] implementation
//! (and [`InMemoryVault::corrupt`]).

use std::{
    collections::HashMap,
    fmt,
    sync::{Arc, Mutex, MutexGuard},
};

use aes_gcm_siv::aead::{Aead, KeyInit, Payload};
use aes_gcm_siv::{Aes256GcmSiv, Nonce};
use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use futures::{StreamExt, stream};
use sha2::{Digest, Sha256};

use super::vault::{StoredBytes, VaultBackdoor};
use crate::{
    ByteStream, Cid, ObjectStatus, SealedObject, VaultError, VaultHealth, VaultPort, VaultResult,
};

/// Plaintext bytes per segment, as in the real vault.
const SEGMENT_SIZE: usize = 64 * 1024;
const HEADER_LEN: usize = 16;
const TAG_LEN: usize = 16;
const PREFIX_LEN: usize = 7;
const MAGIC: &[u8; 4] = b"HLMV";
const FORMAT_VERSION: u8 = 1;
const NONCE_LEN: usize = 12;
const KEY_LEN: usize = 32;
const RECORD_LEN: usize = NONCE_LEN + KEY_LEN + TAG_LEN;
const WRAP_DOMAIN: &[u8] = b"healthledger-core/in-memory-vault/key/v1";
const KEY_ID: &str = "in-memory-test-kek";

/// What is kept for one sealed object.
#[derive(Clone)]
struct Stored {
    object: Bytes,
    key_record: Vec<u8>,
}

#[derive(Clone)]
enum Slot {
    Stored(Stored),
    Shredded,
}

/// An in-memory [`VaultPort`] that really encrypts (see the module
/// documentation for its format). Cloning gives another handle on the same
/// objects and key.
#[derive(Clone)]
pub struct InMemoryVault {
    objects: Arc<Mutex<HashMap<Cid, Slot>>>,
    kek: Arc<[u8; KEY_LEN]>,
}

impl fmt::Debug for InMemoryVault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The KEK is a secret, even in a test double.
        f.debug_struct("InMemoryVault")
            .field("objects", &self.lock().len())
            .field("kek", &KEY_ID)
            .finish()
    }
}

impl Default for InMemoryVault {
    fn default() -> Self {
        Self::new()
    }
}

fn address(object: &[u8]) -> Cid {
    let digest = Sha256::digest(object);
    match cid::multihash::Multihash::<64>::wrap(0x12, &digest) {
        Ok(mh) => Cid::from_inner(cid::Cid::new_v1(0x55, mh)),
        Err(e) => unreachable!("a 32-byte digest fits a 64-byte multihash: {e}"),
    }
}

fn segment_nonce(prefix: &[u8], index: u32, last: bool) -> Nonce {
    let mut n = [0u8; NONCE_LEN];
    n[..PREFIX_LEN].copy_from_slice(prefix);
    n[PREFIX_LEN..11].copy_from_slice(&index.to_be_bytes());
    n[11] = u8::from(last);
    Nonce::from(n)
}

fn wrap_aad(cid: &Cid) -> Vec<u8> {
    [WRAP_DOMAIN, &cid.inner().to_bytes()].concat()
}

fn integrity(cid: &Cid, why: impl fmt::Display) -> VaultError {
    VaultError::Integrity(format!("object {cid} failed an integrity check: {why}"))
}

/// Seals `plaintext` under a fresh data key: the object and the key.
fn seal(plaintext: &[u8]) -> VaultResult<(Bytes, [u8; KEY_LEN])> {
    let key: [u8; KEY_LEN] = rand::random();
    let prefix: [u8; PREFIX_LEN] = rand::random();
    let mut header = Vec::with_capacity(HEADER_LEN);
    header.extend_from_slice(MAGIC);
    header.push(FORMAT_VERSION);
    header.extend_from_slice(&(SEGMENT_SIZE as u32).to_be_bytes());
    header.extend_from_slice(&prefix);
    let cipher = Aes256GcmSiv::new(&key.into());
    let segments: Vec<&[u8]> = if plaintext.is_empty() {
        vec![&[]]
    } else {
        plaintext.chunks(SEGMENT_SIZE).collect()
    };
    let mut object = header.clone();
    for (i, segment) in segments.iter().enumerate() {
        let index = u32::try_from(i)
            .map_err(|_| VaultError::Invalid("the object exceeds 2^32 segments".into()))?;
        let sealed = cipher
            .encrypt(
                &segment_nonce(&prefix, index, i + 1 == segments.len()),
                Payload {
                    msg: segment,
                    aad: &header,
                },
            )
            .map_err(|_| VaultError::other(format!("sealing segment {i} failed")))?;
        object.extend_from_slice(&sealed);
    }
    Ok((object.into(), key))
}

/// Opens one object a segment at a time, as `get_stream` releases it.
struct Opener {
    cid: Cid,
    cipher: Aes256GcmSiv,
    object: Bytes,
    /// Start of the next sealed segment in `object`.
    at: usize,
    index: u32,
    done: bool,
}

impl Opener {
    fn new(cid: Cid, cipher: Aes256GcmSiv, object: Bytes) -> Self {
        Self {
            cid,
            cipher,
            object,
            at: HEADER_LEN,
            index: 0,
            done: false,
        }
    }

    fn check_header(&self) -> VaultResult<()> {
        let header = self
            .object
            .get(..HEADER_LEN)
            .ok_or_else(|| integrity(&self.cid, "the object is shorter than its header"))?;
        if &header[..4] != MAGIC || header[4] != FORMAT_VERSION {
            return Err(integrity(&self.cid, "the object has no HLMV v1 header"));
        }
        if header[5..9] != (SEGMENT_SIZE as u32).to_be_bytes() {
            return Err(integrity(
                &self.cid,
                "the header names another segment size",
            ));
        }
        Ok(())
    }

    /// The next segment's plaintext, the final CID check (`Ok(None)` once
    /// both are behind), or the first failure. After a failure it yields
    /// nothing more.
    fn next_segment(&mut self) -> Option<VaultResult<Bytes>> {
        if self.done {
            return None;
        }
        let step = self.step();
        if !matches!(step, Some(Ok(_))) {
            self.done = true;
        }
        step
    }

    fn step(&mut self) -> Option<VaultResult<Bytes>> {
        if self.index == 0
            && self.at == HEADER_LEN
            && let Err(e) = self.check_header()
        {
            return Some(Err(e));
        }
        if self.at >= self.object.len() {
            if self.index == 0 {
                return Some(Err(integrity(&self.cid, "the object has no segment")));
            }
            // Every segment authenticated and the last one said so: the CID
            // is the one check left.
            return (address(&self.object) != self.cid).then(|| {
                Err(integrity(
                    &self.cid,
                    "its stored bytes do not hash to its CID",
                ))
            });
        }
        let end = (self.at + SEGMENT_SIZE + TAG_LEN).min(self.object.len());
        let last = end == self.object.len();
        let nonce = segment_nonce(&self.object[9..HEADER_LEN], self.index, last);
        let opened = self.cipher.decrypt(
            &nonce,
            Payload {
                msg: &self.object[self.at..end],
                aad: &self.object[..HEADER_LEN],
            },
        );
        match opened {
            Ok(plaintext) => {
                self.at = end;
                self.index = self.index.wrapping_add(1);
                Some(Ok(plaintext.into()))
            }
            Err(_) => Some(Err(integrity(
                &self.cid,
                format!(
                    "segment {} failed authentication (damaged, reordered, dropped, \
                     duplicated, truncated or extended)",
                    self.index
                ),
            ))),
        }
    }
}

impl InMemoryVault {
    /// An empty vault with a fresh random key-encryption key.
    pub fn new() -> Self {
        Self {
            objects: Arc::default(),
            kek: Arc::new(rand::random()),
        }
    }

    /// Test hook: flips one bit of the stored object, as bit rot would.
    /// Does nothing for an unknown or shredded CID.
    pub fn corrupt(&self, cid: &Cid) {
        if let Some(Slot::Stored(stored)) = self.lock().get_mut(cid) {
            stored.object = flip(&stored.object, 0).into();
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<Cid, Slot>> {
        // Each operation leaves the map consistent, so a poisoned lock is safe.
        self.objects.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn kek_cipher(&self) -> Aes256GcmSiv {
        Aes256GcmSiv::new(&(*self.kek).into())
    }

    fn wrap(&self, key: &[u8; KEY_LEN], cid: &Cid) -> VaultResult<Vec<u8>> {
        let nonce: [u8; NONCE_LEN] = rand::random();
        let wrapped = self
            .kek_cipher()
            .encrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: key,
                    aad: &wrap_aad(cid),
                },
            )
            .map_err(|_| VaultError::other("wrapping the data key failed"))?;
        Ok([&nonce[..], &wrapped].concat())
    }

    /// The cipher under the data key of `cid`, from its key record.
    fn unwrap(&self, cid: &Cid, record: &[u8]) -> VaultResult<Aes256GcmSiv> {
        if record.len() != RECORD_LEN {
            return Err(integrity(
                cid,
                format!("its key record is {} bytes, not {RECORD_LEN}", record.len()),
            ));
        }
        let (nonce, wrapped) = record.split_at(NONCE_LEN);
        let nonce = Nonce::try_from(nonce)
            .map_err(|_| integrity(cid, "its key record nonce has the wrong length"))?;
        let key = self
            .kek_cipher()
            .decrypt(
                &nonce,
                Payload {
                    msg: wrapped,
                    aad: &wrap_aad(cid),
                },
            )
            .map_err(|_| {
                integrity(
                    cid,
                    "its data key does not unwrap: the key record is damaged or \
                     was not written for this CID",
                )
            })?;
        Aes256GcmSiv::new_from_slice(&key)
            .map_err(|_| integrity(cid, "its unwrapped data key has the wrong length"))
    }

    /// The stored bytes of a readable `cid`, or why it is not readable.
    fn stored(&self, cid: &Cid) -> VaultResult<Stored> {
        match self.lock().get(cid) {
            None => Err(VaultError::NotFound(format!("no object {cid}"))),
            Some(Slot::Shredded) => Err(VaultError::NotFound(format!(
                "object {cid} was shredded and can never be read again"
            ))),
            Some(Slot::Stored(stored)) => Ok(stored.clone()),
        }
    }

    /// An opener over `cid`, once its key record unwrapped.
    fn opener(&self, cid: &Cid) -> VaultResult<Opener> {
        let stored = self.stored(cid)?;
        let cipher = self.unwrap(cid, &stored.key_record)?;
        Ok(Opener::new(*cid, cipher, stored.object))
    }

    /// Applies `damage` to the stored bytes of `cid`; panics when there are
    /// none, since a test that damages nothing proves nothing.
    fn damage(&self, cid: &Cid, damage: impl FnOnce(&mut Stored)) {
        match self.lock().get_mut(cid) {
            Some(Slot::Stored(stored)) => damage(stored),
            _ => panic!("InMemoryVault backdoor: no stored object {cid}"),
        }
    }
}

/// `bytes` with the lowest bit of byte `offset` flipped; panics when
/// `offset` is outside `bytes`.
fn flip(bytes: &[u8], offset: usize) -> Vec<u8> {
    assert!(
        offset < bytes.len(),
        "offset {offset} is outside the {} stored bytes",
        bytes.len()
    );
    let mut flipped = bytes.to_vec();
    flipped[offset] ^= 1;
    flipped
}

#[async_trait]
impl VaultPort for InMemoryVault {
    async fn put(&self, plaintext: Bytes) -> VaultResult<SealedObject> {
        let (object, key) = seal(&plaintext)?;
        let cid = address(&object);
        let key_record = self.wrap(&key, &cid)?;
        let stored_size = object.len() as u64;
        self.lock()
            .insert(cid, Slot::Stored(Stored { object, key_record }));
        Ok(SealedObject {
            cid,
            size: plaintext.len() as u64,
            stored_size,
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
        let mut opener = self.opener(cid)?;
        let mut plaintext = BytesMut::new();
        // Nothing is returned unless every segment and the CID verified.
        while let Some(segment) = opener.next_segment() {
            plaintext.extend_from_slice(&segment?);
        }
        Ok(plaintext.freeze())
    }

    async fn get_stream(&self, cid: &Cid) -> VaultResult<ByteStream> {
        let opener = self.opener(cid)?;
        Ok(stream::unfold(opener, |mut opener| async move {
            loop {
                match opener.next_segment()? {
                    // The empty last segment of an empty object has nothing
                    // to release.
                    Ok(segment) if segment.is_empty() => continue,
                    item => return Some((item, opener)),
                }
            }
        })
        .boxed())
    }

    async fn verify(&self, cid: &Cid) -> VaultResult<ObjectStatus> {
        let stored = match self.lock().get(cid) {
            None => return Ok(ObjectStatus::Missing),
            Some(Slot::Shredded) => return Ok(ObjectStatus::Shredded),
            Some(Slot::Stored(stored)) => stored.clone(),
        };
        if address(&stored.object) != *cid {
            return Ok(ObjectStatus::Corrupt(
                "its stored bytes do not hash to its CID".into(),
            ));
        }
        // The key record is checked by unwrapping it; no content is
        // decrypted.
        Ok(match self.unwrap(cid, &stored.key_record) {
            Ok(_) => ObjectStatus::Intact,
            Err(e) => ObjectStatus::Corrupt(e.to_string()),
        })
    }

    async fn shred(&self, cid: &Cid) -> VaultResult<()> {
        match self.lock().get_mut(cid) {
            None => Err(VaultError::NotFound(format!("no object {cid}"))),
            Some(slot) => {
                // The key record and the ciphertext go together.
                *slot = Slot::Shredded;
                Ok(())
            }
        }
    }

    async fn health(&self) -> VaultResult<VaultHealth> {
        Ok(VaultHealth {
            backend: "memory://".into(),
            key_id: KEY_ID.into(),
        })
    }
}

#[async_trait]
impl VaultBackdoor for InMemoryVault {
    async fn stored_bytes(&self, cid: &Cid) -> StoredBytes {
        match self.lock().get(cid) {
            Some(Slot::Stored(stored)) => StoredBytes {
                object: stored.object.to_vec(),
                key_record: stored.key_record.clone(),
            },
            _ => panic!("InMemoryVault backdoor: no stored object {cid}"),
        }
    }

    async fn flip_object_byte(&self, cid: &Cid, offset: usize) {
        self.damage(cid, |stored| {
            stored.object = flip(&stored.object, offset).into();
        });
    }

    async fn flip_key_byte(&self, cid: &Cid, offset: usize) {
        self.damage(cid, |stored| {
            stored.key_record = flip(&stored.key_record, offset);
        });
    }
}
