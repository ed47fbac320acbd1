//! [`VaultPort`]: confidential content, sealed (encrypted) and addressed by
//! the CID of its ciphertext.

use std::fmt::Debug;

use async_trait::async_trait;
use auto_impl::auto_impl;
use bytes::Bytes;
use futures::stream::BoxStream;
use serde::{Deserialize, Serialize};

use crate::{Cid, VaultError};

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
    /// The id of the key-encryption key in use.
    pub key_id: String,
}

/// The vault.
///
/// Guarantees every implementation gives (checked by
/// [`crate::testing::vault`]):
/// - `put` stores only ciphertext and returns once the object is durable;
///   sealing the same plaintext twice gives two different CIDs (each object
///   has its own random data key), both readable;
/// - `get` releases plaintext only after verifying it; any mismatch is
///   `Integrity`, an unknown CID `NotFound`;
/// - after `shred`, the content can never be read again (`get` fails with
///   `NotFound`), and `verify` says `Shredded`; shredding twice is fine.
#[cfg_attr(feature = "testing", mockall::automock)]
#[async_trait]
#[auto_impl(&, Arc, Box)]
pub trait VaultPort: Send + Sync + Debug {
    /// Seals and stores `plaintext`.
    async fn put(&self, plaintext: Bytes) -> VaultResult<SealedObject>;

    /// Seals and stores a stream, in constant memory.
    async fn put_stream(&self, plaintext: ByteStream) -> VaultResult<SealedObject>;

    /// The verified plaintext of `cid`.
    async fn get(&self, cid: &Cid) -> VaultResult<Bytes>;

    /// The plaintext of `cid` as a stream, in constant memory. Each chunk is
    /// released only after it is authenticated, but truncation and the CID
    /// can only be checked at the end: a damaged object ends the stream with
    /// an `Integrity` error, which invalidates every chunk already yielded.
    /// A consumer that must never see unverified bytes uses [`Self::get`].
    async fn get_stream(&self, cid: &Cid) -> VaultResult<ByteStream>;

    /// Whether `cid` is present and intact, without decrypting.
    async fn verify(&self, cid: &Cid) -> VaultResult<ObjectStatus>;

    /// Destroys the key of `cid` so it can never be decrypted again;
    /// `NotFound` for an unknown CID; shredding a shredded object is `Ok`.
    async fn shred(&self, cid: &Cid) -> VaultResult<()>;

    /// Whether the backend answers, and with which key.
    async fn health(&self) -> VaultResult<VaultHealth>;
}
