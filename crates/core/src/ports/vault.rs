//! [`VaultPort`]: confidential content, sealed (encrypted) and addressed by
//! the CID of its ciphertext.

use std::fmt::Debug;

use async_trait::async_trait;
use auto_impl::auto_impl;
use bytes::Bytes;
use futures::stream::BoxStream;
use serde::{Deserialize, Serialize};

use std::time::Duration;

use crate::{Cid, HhNumber, Timestamp, VaultError};

/// Shorthand for vault results.
pub type VaultResult<T> = Result<T, VaultError>;

/// A stream of bytes in or out of the vault.
pub type ByteStream = BoxStream<'static, VaultResult<Bytes>>;

/// What sealing returns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedObject {
    /// The CID of the stored ciphertext; goes on chain.
    pub cid: Cid,
    /// Plaintext size in bytes.
    pub size: u64,
    /// Stored (ciphertext) size in bytes.
    pub stored_size: u64,
}

/// One sealed object as [`VaultPort::objects`] lists it: where it is and
/// when it was stored, never any key material.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredObject {
    /// The CID of the stored ciphertext.
    pub cid: Cid,
    /// Stored (ciphertext) size in bytes.
    pub stored_size: u64,
    /// When the store last wrote the ciphertext (its last-modified time):
    /// when the object was sealed.
    pub sealed_at: Timestamp,
}

/// What [`VaultPort::verify`] found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ObjectStatus {
    /// No object with that CID.
    Missing,
    /// Present and its stored bytes match the CID.
    Intact,
    /// Present but damaged; says how.
    Corrupt(String),
    /// Its key was destroyed: the content can never be decrypted again.
    Shredded,
}

/// What [`VaultPort::health`] reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VaultHealth {
    /// The backend, e.g. `file:///var/lib/healthledger` or `memory://`
    /// (never with credentials).
    pub backend: String,
    /// Where the key records live, apart from the content (never with
    /// credentials).
    pub key_store: String,
    /// The id of the key-encryption key in use.
    pub key_id: String,
    /// How long erased or shredded key material may survive after `shred`
    /// or `erase_patient` returned: the retention of the key store's
    /// backups and versions, as configured. Copies of the ciphertext never
    /// matter (they are useless without the keys); past this horizon no
    /// copy of the keys is left.
    pub erasure_horizon: Duration,
}

/// The vault.
///
/// Guarantees every implementation gives (checked by
/// [`crate::testing::vault`]):
/// - every object belongs to one patient (`put` names them); `put` stores
///   only ciphertext and returns once the object is durable; sealing the
///   same plaintext twice gives two different CIDs (each object has its own
///   random data key), both readable;
/// - `get` releases plaintext only after verifying it; any mismatch is
///   `Integrity` with its [`crate::IntegrityReason`] (damaged bytes are
///   `Tampered`), an unknown CID `NotFound`;
/// - a read names the patient the caller expects the object to belong to
///   (for a record, the patient the record names), and an object of anyone
///   else is `WrongPatient` before any of its content is decrypted: a
///   record of patient A whose CID points at patient B's object (a creator
///   may put any CID on chain) never opens B's content for A's readers;
/// - after `shred`, the content can never be read again (`get` fails with
///   `NotFound`), and `verify` says `Shredded`; shredding twice is fine;
/// - after `erase_patient`, the same holds for every object of that patient
///   at once, and `put` for them is refused (`Conflict`); erasing twice is
///   fine, and other patients' objects are untouched.
#[cfg_attr(feature = "testing", mockall::automock)]
#[async_trait]
#[auto_impl(&, Arc, Box)]
pub trait VaultPort: Send + Sync + Debug {
    /// Seals and stores `plaintext`, an object of `patient`.
    async fn put(&self, patient: HhNumber, plaintext: Bytes) -> VaultResult<SealedObject>;

    /// Seals and stores a stream, an object of `patient`, in constant
    /// memory.
    async fn put_stream(
        &self,
        patient: HhNumber,
        plaintext: ByteStream,
    ) -> VaultResult<SealedObject>;

    /// The verified plaintext of `cid`, an object of `patient`;
    /// `WrongPatient` (and nothing read) when it belongs to someone else.
    async fn get(&self, patient: HhNumber, cid: &Cid) -> VaultResult<Bytes>;

    /// The plaintext of `cid`, an object of `patient` (`WrongPatient`, and
    /// nothing read, when it belongs to someone else), as a stream, in
    /// constant memory. Each chunk is
    /// released only after it is authenticated, but truncation and the CID
    /// can only be checked at the end: a damaged object ends the stream with
    /// an `Integrity` error, which invalidates every chunk already yielded.
    /// A consumer that must never see unverified bytes uses [`Self::get`].
    async fn get_stream(&self, patient: HhNumber, cid: &Cid) -> VaultResult<ByteStream>;

    /// Whether `cid` is present and intact, without decrypting.
    async fn verify(&self, cid: &Cid) -> VaultResult<ObjectStatus>;

    /// Destroys the key of `cid` so it can never be decrypted again;
    /// `NotFound` for an unknown CID; shredding a shredded object is `Ok`.
    async fn shred(&self, cid: &Cid) -> VaultResult<()>;

    /// Erases `patient`: destroys the one key their objects' keys are
    /// wrapped under, so none of their objects can ever be decrypted again,
    /// and refuses new objects for them. Erasing a patient with no objects,
    /// or twice, is `Ok`.
    async fn erase_patient(&self, patient: HhNumber) -> VaultResult<()>;

    /// Whether the backend and the key store answer, with which key, and
    /// the erasure horizon.
    async fn health(&self) -> VaultResult<VaultHealth>;

    /// The sealed objects whose ciphertext is stored, in the order of their
    /// CIDs' strings, starting after `after` (exclusive; `None` starts at
    /// the first), at most `limit` of them. Paging on with the last CID of
    /// a page visits every object once. Objects of erased patients are
    /// listed (their ciphertext stays; [`Self::verify`] says `Shredded`),
    /// shredded objects are not once their shred finished.
    async fn objects(&self, after: Option<Cid>, limit: usize) -> VaultResult<Vec<StoredObject>>;
}
