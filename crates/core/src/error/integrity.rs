//! What a [`crate::VaultError::Integrity`] carries: the typed reason stored
//! vault data failed a check, so callers match on it, never on message
//! text.

use serde::{Deserialize, Serialize};

/// Why a sealed object or its keys failed an integrity check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum IntegrityReason {
    /// Stored bytes failed authentication: a segment, the header or a key
    /// record was damaged, reordered, truncated or moved.
    Tampered,
    /// A key record names a key-encryption key the vault holds, but does not
    /// unwrap under it (another key configured under that id).
    WrongKek,
    /// A key record names a key-encryption key the vault does not hold.
    MissingKek,
    /// A key record is wrapped under a key-encryption key of a rotation
    /// under way that the vault does not hold: give it both keys until the
    /// rotation is done.
    RotationInProgress,
    /// The stored bytes do not hash to the object's CID.
    CidMismatch,
    /// The object is stored without its data key record (a crash between
    /// the two writes, or a lost record): it can never be decrypted.
    MissingKey,
}

/// A failed integrity check: its [`IntegrityReason`] and a message naming
/// the object (never key material).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct IntegrityFailure {
    /// What failed.
    pub reason: IntegrityReason,
    /// What failed, for people: which object or record, and how.
    pub message: String,
}

impl IntegrityFailure {
    /// A failure for `reason`, explained by `message`.
    pub fn new(reason: IntegrityReason, message: impl Into<String>) -> Self {
        Self {
            reason,
            message: message.into(),
        }
    }
}
