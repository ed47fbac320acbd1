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
//! The key hierarchy is the real vault's: the data key is wrapped under the
//! patient's subject key (AES-256-GCM-SIV, with the object's CID and the
//! patient's HH number as associated data) into a 60-byte key record,
//! `nonce (12) ‖ wrapped key (32) ‖ tag (16)`, kept apart from the object;
//! each subject key is wrapped the same way under a random key-encryption
//! key held by the vault. Erasing a patient destroys their subject record,
//! so every one of their key records stops unwrapping at once. The real
//! records also carry a magic, a version, the patient, the CID profile and
//! the KEK id; here there is one KEK at a time, and
//! [`VaultBackdoor::rotate_key`] replaces it, re-wrapping every subject
//! record in one step.
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
//! `objects` lists the stored objects in CID string order, each with the
//! time `put` stored it.
//!
//! Tests reach the stored bytes through its [`VaultBackdoor`] implementation
//! (and [`InMemoryVault::corrupt`]).

use std::{
    collections::HashMap,
    fmt,
    sync::{Arc, Mutex, MutexGuard},
    time::Duration,
};

use aes_gcm_siv::aead::{Aead, KeyInit, Payload};
use aes_gcm_siv::{Aes256GcmSiv, Nonce};
use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use futures::{StreamExt, stream};
use sha2::{Digest, Sha256};

use super::vault::{StoredBytes, VaultBackdoor};
use crate::{
    ByteStream, Cid, HhNumber, IntegrityReason, ObjectStatus, SealedObject, StoredObject,
    Timestamp, VaultError, VaultHealth, VaultPort, VaultResult,
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
const SUBJECT_DOMAIN: &[u8] = b"healthledger-core/in-memory-vault/subject/v1";

/// What is kept for one sealed object.
#[derive(Clone)]
struct Stored {
    object: Bytes,
    key_record: Vec<u8>,
    patient: HhNumber,
    sealed_at: Timestamp,
}

#[derive(Clone)]
enum Slot {
    Stored(Stored),
    Shredded,
}

/// A patient's subject key: its record wrapped under the KEK, or erased.
#[derive(Clone)]
enum Subject {
    Live(Vec<u8>),
    Erased,
}

/// Everything the vault holds, behind one lock.
struct State {
    objects: HashMap<Cid, Slot>,
    subjects: HashMap<HhNumber, Subject>,
    kek: [u8; KEY_LEN],
    /// Bumped by every rotation; names the KEK in health.
    generation: u32,
}

impl State {
    fn key_id(&self) -> String {
        format!("in-memory-test-kek-{}", self.generation)
    }
}

/// An in-memory [`VaultPort`] that really encrypts (see the module
/// documentation for its format). Cloning gives another handle on the same
/// objects and keys.
#[derive(Clone)]
pub struct InMemoryVault {
    state: Arc<Mutex<State>>,
}

impl fmt::Debug for InMemoryVault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The KEK is a secret, even in a test double: only its id shows.
        let state = self.lock();
        f.debug_struct("InMemoryVault")
            .field("objects", &state.objects.len())
            .field("kek", &state.key_id())
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

fn wrap_aad(cid: &Cid, patient: HhNumber) -> Vec<u8> {
    [
        WRAP_DOMAIN,
        &cid.inner().to_bytes(),
        &patient.get().to_be_bytes(),
    ]
    .concat()
}

fn subject_aad(patient: HhNumber) -> Vec<u8> {
    [SUBJECT_DOMAIN, &patient.get().to_be_bytes()[..]].concat()
}

/// Wraps `key` under `wrapping` bound to `aad`: `nonce ‖ ciphertext ‖ tag`.
fn wrap_key(wrapping: &[u8; KEY_LEN], key: &[u8; KEY_LEN], aad: &[u8]) -> VaultResult<Vec<u8>> {
    let nonce: [u8; NONCE_LEN] = rand::random();
    let wrapped = Aes256GcmSiv::new(&(*wrapping).into())
        .encrypt(&Nonce::from(nonce), Payload { msg: key, aad })
        .map_err(|_| VaultError::other("wrapping a key failed"))?;
    Ok([&nonce[..], &wrapped].concat())
}

/// Unwraps what [`wrap_key`] made; `None` when it does not unwrap.
fn unwrap_key(wrapping: &[u8; KEY_LEN], record: &[u8], aad: &[u8]) -> Option<[u8; KEY_LEN]> {
    if record.len() != RECORD_LEN {
        return None;
    }
    let (nonce, wrapped) = record.split_at(NONCE_LEN);
    let nonce = Nonce::try_from(nonce).ok()?;
    let key = Aes256GcmSiv::new(&(*wrapping).into())
        .decrypt(&nonce, Payload { msg: wrapped, aad })
        .ok()?;
    key.try_into().ok()
}

/// An integrity failure of `cid` for `reason`, saying `why`.
fn failed(reason: IntegrityReason, cid: &Cid, why: impl fmt::Display) -> VaultError {
    VaultError::integrity(
        reason,
        format!("object {cid} failed an integrity check: {why}"),
    )
}

/// Stored bytes of `cid` failed authentication.
fn integrity(cid: &Cid, why: impl fmt::Display) -> VaultError {
    failed(IntegrityReason::Tampered, cid, why)
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
                Err(failed(
                    IntegrityReason::CidMismatch,
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
            state: Arc::new(Mutex::new(State {
                objects: HashMap::new(),
                subjects: HashMap::new(),
                kek: rand::random(),
                generation: 1,
            })),
        }
    }

    /// Test hook: flips one bit of the stored object, as bit rot would.
    /// Does nothing for an unknown or shredded CID.
    pub fn corrupt(&self, cid: &Cid) {
        if let Some(Slot::Stored(stored)) = self.lock().objects.get_mut(cid) {
            stored.object = flip(&stored.object, 0).into();
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Each operation leaves the state consistent, so a poisoned lock is
        // safe.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The subject key of `patient`, created if they have none;
    /// `Conflict` for an erased patient.
    fn subject_key_for_write(state: &mut State, patient: HhNumber) -> VaultResult<[u8; KEY_LEN]> {
        match state.subjects.get(&patient) {
            Some(Subject::Erased) => Err(VaultError::Conflict(format!(
                "patient {patient} was erased from the vault; nothing is sealed for them any more"
            ))),
            Some(Subject::Live(record)) => unwrap_key(&state.kek, record, &subject_aad(patient))
                .ok_or_else(|| {
                    VaultError::integrity(
                        IntegrityReason::WrongKek,
                        format!("the subject record of patient {patient} does not unwrap"),
                    )
                }),
            None => {
                let key: [u8; KEY_LEN] = rand::random();
                let record = wrap_key(&state.kek, &key, &subject_aad(patient))?;
                state.subjects.insert(patient, Subject::Live(record));
                Ok(key)
            }
        }
    }

    /// The cipher under the data key of `cid`, from its key record and its
    /// patient's subject record; `None` inside when the patient was erased.
    fn unwrap(state: &State, cid: &Cid, stored: &Stored) -> VaultResult<Option<Aes256GcmSiv>> {
        let subject = match state.subjects.get(&stored.patient) {
            Some(Subject::Live(record)) => record,
            Some(Subject::Erased) => return Ok(None),
            None => {
                return Err(integrity(
                    cid,
                    format!(
                        "the subject record of patient {} is missing",
                        stored.patient
                    ),
                ));
            }
        };
        let subject =
            unwrap_key(&state.kek, subject, &subject_aad(stored.patient)).ok_or_else(|| {
                // As in the real vault: a record that does not unwrap under
                // the KEK it names.
                failed(
                    IntegrityReason::WrongKek,
                    cid,
                    "its patient's subject key does not unwrap",
                )
            })?;
        if stored.key_record.len() != RECORD_LEN {
            return Err(integrity(
                cid,
                format!(
                    "its key record is {} bytes, not {RECORD_LEN}",
                    stored.key_record.len()
                ),
            ));
        }
        let key = unwrap_key(&subject, &stored.key_record, &wrap_aad(cid, stored.patient))
            .ok_or_else(|| {
                integrity(
                    cid,
                    "its data key does not unwrap: the key record is damaged or \
                     was not written for this CID",
                )
            })?;
        Ok(Some(Aes256GcmSiv::new(&key.into())))
    }

    /// An opener over `cid`, an object of `patient`, once its keys
    /// unwrapped; `WrongPatient` before any key is touched when the object
    /// belongs to someone else.
    fn opener(&self, patient: HhNumber, cid: &Cid) -> VaultResult<Opener> {
        let state = self.lock();
        let gone = || {
            VaultError::NotFound(format!(
                "object {cid} was shredded and can never be read again"
            ))
        };
        match state.objects.get(cid) {
            None => Err(VaultError::NotFound(format!("no object {cid}"))),
            Some(Slot::Shredded) => Err(gone()),
            Some(Slot::Stored(stored)) if stored.patient != patient => {
                Err(VaultError::WrongPatient(format!(
                    "object {cid} is not an object of patient {patient}"
                )))
            }
            Some(Slot::Stored(stored)) => match Self::unwrap(&state, cid, stored)? {
                Some(cipher) => Ok(Opener::new(*cid, cipher, stored.object.clone())),
                None => Err(gone()),
            },
        }
    }

    /// Applies `damage` to the stored bytes of `cid`; panics when there are
    /// none, since a test that damages nothing proves nothing.
    fn damage(&self, cid: &Cid, damage: impl FnOnce(&mut Stored)) {
        match self.lock().objects.get_mut(cid) {
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
    async fn put(&self, patient: HhNumber, plaintext: Bytes) -> VaultResult<SealedObject> {
        let (object, key) = seal(&plaintext)?;
        let cid = address(&object);
        let stored_size = object.len() as u64;
        let mut state = self.lock();
        let subject = Self::subject_key_for_write(&mut state, patient)?;
        let key_record = wrap_key(&subject, &key, &wrap_aad(&cid, patient))?;
        state.objects.insert(
            cid,
            Slot::Stored(Stored {
                object,
                key_record,
                patient,
                sealed_at: Timestamp::now(),
            }),
        );
        Ok(SealedObject {
            cid,
            size: plaintext.len() as u64,
            stored_size,
        })
    }

    async fn put_stream(
        &self,
        patient: HhNumber,
        mut plaintext: ByteStream,
    ) -> VaultResult<SealedObject> {
        let mut buf = BytesMut::new();
        while let Some(chunk) = plaintext.next().await {
            buf.extend_from_slice(&chunk?);
        }
        self.put(patient, buf.freeze()).await
    }

    async fn get(&self, patient: HhNumber, cid: &Cid) -> VaultResult<Bytes> {
        let mut opener = self.opener(patient, cid)?;
        let mut plaintext = BytesMut::new();
        // Nothing is returned unless every segment and the CID verified.
        while let Some(segment) = opener.next_segment() {
            plaintext.extend_from_slice(&segment?);
        }
        Ok(plaintext.freeze())
    }

    async fn get_stream(&self, patient: HhNumber, cid: &Cid) -> VaultResult<ByteStream> {
        let opener = self.opener(patient, cid)?;
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
        let state = self.lock();
        let stored = match state.objects.get(cid) {
            None => return Ok(ObjectStatus::Missing),
            Some(Slot::Shredded) => return Ok(ObjectStatus::Shredded),
            Some(Slot::Stored(stored)) => stored,
        };
        if matches!(state.subjects.get(&stored.patient), Some(Subject::Erased)) {
            return Ok(ObjectStatus::Shredded);
        }
        if address(&stored.object) != *cid {
            return Ok(ObjectStatus::Corrupt(
                "its stored bytes do not hash to its CID".into(),
            ));
        }
        // The keys are checked by unwrapping them; no content is decrypted.
        Ok(match Self::unwrap(&state, cid, stored) {
            Ok(Some(_)) => ObjectStatus::Intact,
            Ok(None) => ObjectStatus::Shredded,
            Err(e) => ObjectStatus::Corrupt(e.to_string()),
        })
    }

    async fn shred(&self, cid: &Cid) -> VaultResult<()> {
        match self.lock().objects.get_mut(cid) {
            None => Err(VaultError::NotFound(format!("no object {cid}"))),
            Some(slot) => {
                // The key record and the ciphertext go together.
                *slot = Slot::Shredded;
                Ok(())
            }
        }
    }

    async fn erase_patient(&self, patient: HhNumber) -> VaultResult<()> {
        self.lock().subjects.insert(patient, Subject::Erased);
        Ok(())
    }

    async fn health(&self) -> VaultResult<VaultHealth> {
        Ok(VaultHealth {
            backend: "memory://".into(),
            key_store: "memory://keys".into(),
            key_id: self.lock().key_id(),
            // Nothing of an erased key survives in memory.
            erasure_horizon: Duration::ZERO,
        })
    }

    async fn objects(&self, after: Option<Cid>, limit: usize) -> VaultResult<Vec<StoredObject>> {
        let after = after.map(|cid| cid.to_string());
        let mut listed: Vec<(String, StoredObject)> = self
            .lock()
            .objects
            .iter()
            .filter_map(|(cid, slot)| match slot {
                Slot::Stored(stored) => Some((cid.to_string(), *cid, stored)),
                Slot::Shredded => None,
            })
            .filter(|(name, _, _)| after.as_ref().is_none_or(|after| name > after))
            .map(|(name, cid, stored)| {
                let object = StoredObject {
                    cid,
                    stored_size: stored.object.len() as u64,
                    sealed_at: stored.sealed_at,
                };
                (name, object)
            })
            .collect();
        listed.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        Ok(listed
            .into_iter()
            .take(limit)
            .map(|(_, object)| object)
            .collect())
    }
}

#[async_trait]
impl VaultBackdoor for InMemoryVault {
    async fn stored_bytes(&self, cid: &Cid) -> StoredBytes {
        match self.lock().objects.get(cid) {
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

    async fn rotate_key(&self) {
        let mut state = self.lock();
        let old = state.kek;
        let new: [u8; KEY_LEN] = rand::random();
        let mut rewrapped = HashMap::new();
        for (patient, subject) in &state.subjects {
            let subject = match subject {
                Subject::Live(record) => {
                    let key = unwrap_key(&old, record, &subject_aad(*patient))
                        .unwrap_or_else(|| panic!("the subject key of {patient} does not unwrap"));
                    match wrap_key(&new, &key, &subject_aad(*patient)) {
                        Ok(record) => Subject::Live(record),
                        Err(e) => panic!("re-wrapping the subject key of {patient}: {e}"),
                    }
                }
                Subject::Erased => Subject::Erased,
            };
            rewrapped.insert(*patient, subject);
        }
        state.subjects = rewrapped;
        state.kek = new;
        state.generation += 1;
    }

    async fn key_material_left(&self, cid: &Cid) -> bool {
        let state = self.lock();
        match state.objects.get(cid) {
            Some(Slot::Stored(stored)) => {
                matches!(state.subjects.get(&stored.patient), Some(Subject::Live(_)))
            }
            _ => false,
        }
    }
}
