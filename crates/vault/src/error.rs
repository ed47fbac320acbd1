//! The vault's one error enum and its mapping into the port's
//! [`VaultError`]: each integrity failure keeps its kind as the port's
//! [`IntegrityReason`].

use healthledger_core::{HhNumber, IntegrityReason, VaultError};

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can go wrong in the vault. Messages never contain key material.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A configuration value breaks a rule (URL, key id, key length, …).
    #[error("invalid vault configuration {what} {value:?}: {rule}")]
    Config {
        /// Which setting.
        what: &'static str,
        /// The offending value (never a secret).
        value: String,
        /// The rule it broke.
        rule: String,
    },
    /// No object (or key record) under that CID.
    #[error("no object {0} in the vault")]
    NotFound(String),
    /// The object's key was destroyed.
    #[error("object {0} was shredded and can never be read again")]
    Shredded(String),
    /// A read named another patient than the one the object belongs to
    /// (its key record's authenticated owner): nothing was unwrapped or
    /// decrypted. Names the patient expected, never the owner.
    #[error("object {cid} is not an object of patient {expected}")]
    WrongPatient {
        /// The object's CID.
        cid: String,
        /// The patient the read named.
        expected: HhNumber,
    },
    /// Every object of this patient was erased (their subject key was
    /// destroyed); nothing more is sealed for them.
    #[error("patient {0} was erased from the vault; nothing is sealed for them any more")]
    Erased(String),
    /// Stored bytes failed authentication: a segment, the header, or a key
    /// record was damaged, reordered, truncated or moved.
    #[error("{object} is damaged: {reason}")]
    Tampered {
        /// What failed (an object's CID, a key record).
        object: String,
        /// What did not match.
        reason: String,
    },
    /// A record names a KEK this vault holds, but does not unwrap under it:
    /// another key configured under that id, or a damaged record.
    #[error("a key record does not unwrap under KEK {key_id:?}: {reason}")]
    WrongKek {
        /// The KEK's id (never the key).
        key_id: String,
        /// What failed.
        reason: String,
    },
    /// A record names a KEK this vault does not hold.
    #[error(
        "a key record is wrapped under KEK {key_id:?}, which this vault does not hold \
         (it holds {held:?}): configure it with previous_kek, or this is the wrong key"
    )]
    MissingKek {
        /// The KEK the record names.
        key_id: String,
        /// The KEKs this vault holds.
        held: Vec<String>,
    },
    /// A record names a KEK this vault does not hold, and a rotation from or
    /// to that KEK is under way on the key store.
    #[error(
        "a key record is wrapped under KEK {key_id:?} of the rotation from {from:?} to \
         {to:?} under way, and this vault holds only {held:?}: give it both KEKs \
         (previous_kek) until the rotation is done"
    )]
    RotationInProgress {
        /// The KEK the record names.
        key_id: String,
        /// The rotation's old KEK.
        from: String,
        /// The rotation's new KEK.
        to: String,
        /// The KEKs this vault holds.
        held: Vec<String>,
    },
    /// An object's stored bytes do not hash to its CID.
    #[error("object {cid} is damaged: its stored bytes hash to {found}")]
    CidMismatch {
        /// The CID asked for.
        cid: String,
        /// The CID of what is stored.
        found: String,
    },
    /// An object is stored but its data key record is not (a crash between
    /// the two writes, or a lost record), so it can never be read.
    #[error("object {0} is stored without its data key record and cannot be decrypted")]
    MissingKey(String),
    /// A key record kept changing while a rotation tried to rewrite it
    /// (other rotations or writers on the same store); running the rotation
    /// again resumes it.
    #[error(
        "the {record} changed under the KEK rotation {attempts} times in a row; \
         run the rotation again to resume it"
    )]
    RotationContended {
        /// The record that kept changing.
        record: String,
        /// How often it was read again.
        attempts: usize,
    },
    /// The operating system's random number generator failed.
    #[error("the system random number generator failed: {0}")]
    Random(String),
    /// The object store failed.
    #[error("object store {operation} of {path:?} failed: {source}")]
    Store {
        /// What was attempted.
        operation: &'static str,
        /// The path in the store.
        path: String,
        /// The store's error.
        #[source]
        source: object_store::Error,
    },
    /// A helper task (the CID hashing thread) failed.
    #[error("vault worker failed: {0}")]
    Worker(String),
    /// Reading a sealed object handed to the opener failed.
    #[error("reading the sealed object failed: {0}")]
    Read(#[source] std::io::Error),
    /// Writing a CAR export failed.
    #[error("writing the CAR file failed: {0}")]
    Car(String),
    /// The plaintext stream given to `put_stream` failed.
    #[error("the plaintext stream failed: {0}")]
    Input(#[source] VaultError),
}

impl Error {
    pub(crate) fn config(what: &'static str, value: impl Into<String>, rule: &str) -> Self {
        Self::Config {
            what,
            value: value.into(),
            rule: rule.to_owned(),
        }
    }

    pub(crate) fn tampered(object: impl ToString, reason: impl Into<String>) -> Self {
        Self::Tampered {
            object: object.to_string(),
            reason: reason.into(),
        }
    }

    pub(crate) fn store(
        operation: &'static str,
        path: &object_store::path::Path,
        source: object_store::Error,
    ) -> Self {
        Self::Store {
            operation,
            path: path.to_string(),
            source,
        }
    }
}

impl From<Error> for VaultError {
    fn from(err: Error) -> Self {
        let message = err.to_string();
        match err {
            Error::Config { .. } => VaultError::Invalid(message),
            Error::NotFound(_) | Error::Shredded(_) => VaultError::NotFound(message),
            Error::Tampered { .. } => VaultError::integrity(IntegrityReason::Tampered, message),
            Error::WrongKek { .. } => VaultError::integrity(IntegrityReason::WrongKek, message),
            Error::MissingKek { .. } => VaultError::integrity(IntegrityReason::MissingKek, message),
            Error::RotationInProgress { .. } => {
                VaultError::integrity(IntegrityReason::RotationInProgress, message)
            }
            Error::CidMismatch { .. } => {
                VaultError::integrity(IntegrityReason::CidMismatch, message)
            }
            Error::MissingKey(_) => VaultError::integrity(IntegrityReason::MissingKey, message),
            Error::Erased(_) => VaultError::Conflict(message),
            Error::WrongPatient { .. } => VaultError::WrongPatient(message),
            Error::Input(inner) => inner,
            Error::Store { source, .. } => match source {
                object_store::Error::NotFound { .. } => VaultError::NotFound(message),
                object_store::Error::AlreadyExists { .. } => VaultError::AlreadyExists(message),
                object_store::Error::Precondition { .. } => VaultError::Conflict(message),
                object_store::Error::PermissionDenied { .. }
                | object_store::Error::Unauthenticated { .. } => VaultError::AccessDenied(message),
                object_store::Error::NotSupported { .. }
                | object_store::Error::NotImplemented { .. } => VaultError::other(message),
                _ => VaultError::Unavailable(message),
            },
            Error::RotationContended { .. } => VaultError::Conflict(message),
            Error::Random(_) | Error::Worker(_) | Error::Read(_) | Error::Car(_) => {
                VaultError::other(err)
            }
        }
    }
}
