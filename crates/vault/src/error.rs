//! The vault's one error enum and its mapping into the port's
//! [`VaultError`].

use healthledger_core::VaultError;

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
    /// Stored bytes failed a check: CID, segment tag, key unwrap, format.
    #[error("object {cid} failed an integrity check: {reason}")]
    Integrity {
        /// The object concerned.
        cid: String,
        /// What did not match.
        reason: String,
    },
    /// A key record kept changing while a rotation tried to rewrite it
    /// (other rotations or writers on the same store); running the rotation
    /// again resumes it.
    #[error(
        "the key record of {cid} changed under the KEK rotation {attempts} times in a row; \
         run the rotation again to resume it"
    )]
    RotationContended {
        /// The object whose key record kept changing.
        cid: String,
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

    pub(crate) fn integrity(cid: impl ToString, reason: impl Into<String>) -> Self {
        Self::Integrity {
            cid: cid.to_string(),
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
            Error::Integrity { .. } => VaultError::Integrity(message),
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
            Error::Random(_) | Error::Worker(_) => VaultError::other(err),
        }
    }
}
