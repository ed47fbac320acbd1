//! The application layer's error: what a facade call, the wiring or the
//! configuration can fail with, by kind, so the CLI maps each kind to its
//! exit code and the HTTP server to its status without reading messages.

use healthledger_core::{CacheError, LedgerError, ValidationError, VaultError};

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A setting is missing or malformed. The message never quotes a
    /// secret.
    #[error("invalid setting {setting}: {rule}")]
    Config {
        /// The setting (an environment variable or a TOML key).
        setting: String,
        /// The rule it breaks.
        rule: String,
    },
    /// An input breaks a rule (an invalid HH number, an empty file…).
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    /// The thing asked for is on neither the chain nor the cache.
    #[error("not found: {0}")]
    NotFound(String),
    /// The actor may not do this; nothing was written.
    #[error("access denied: {0}")]
    AccessDenied(String),
    /// The write conflicts with the chain's state (taken HH number, record
    /// id, wallet).
    #[error("conflict: {0}")]
    Conflict(String),
    /// The file is larger than allowed.
    #[error("file too large: {size} bytes or more, the limit is {limit}")]
    TooLarge {
        /// Bytes seen before the stream was stopped.
        size: u64,
        /// The configured limit.
        limit: u64,
    },
    /// The file's content is not of an allowed type.
    #[error("unsupported content: {0}")]
    Unsupported(String),
    /// A backend is unreachable; retrying may succeed.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// The ledger failed.
    #[error(transparent)]
    Ledger(LedgerError),
    /// The cache failed.
    #[error(transparent)]
    Cache(CacheError),
    /// The vault failed.
    #[error(transparent)]
    Vault(VaultError),
    /// The sync engine failed.
    #[error(transparent)]
    Sync(#[from] healthledger_sync::Error),
    /// Starting or talking to the local chain failed.
    #[error("local chain: {0}")]
    LocalChain(String),
}

impl Error {
    /// Whether retrying may succeed (a backend was unreachable).
    pub fn is_unavailable(&self) -> bool {
        match self {
            Self::Unavailable(_) => true,
            Self::Ledger(e) => e.is_retryable(),
            Self::Cache(e) => e.is_retryable(),
            Self::Vault(e) => e.is_retryable(),
            _ => false,
        }
    }
}

/// Port errors keep their kind: a ledger's `AccessDenied` is the app's.
macro_rules! from_port {
    ($port:ident, $variant:ident) => {
        impl From<$port> for Error {
            fn from(e: $port) -> Self {
                match e {
                    $port::NotFound(m) => Self::NotFound(m),
                    $port::AccessDenied(m) => Self::AccessDenied(m),
                    $port::AlreadyExists(m) | $port::Conflict(m) => Self::Conflict(m),
                    $port::Unavailable(m) => Self::Unavailable(m),
                    other => Self::$variant(other),
                }
            }
        }
    };
}

from_port!(LedgerError, Ledger);
from_port!(CacheError, Cache);
from_port!(VaultError, Vault);

impl From<healthledger_chain::Error> for Error {
    fn from(e: healthledger_chain::Error) -> Self {
        match e {
            healthledger_chain::Error::Config { field, rule } => Self::Config {
                setting: field.into(),
                rule,
            },
            other => Self::from(LedgerError::from(other)),
        }
    }
}

impl From<healthledger_cache::Error> for Error {
    fn from(e: healthledger_cache::Error) -> Self {
        Self::from(CacheError::from(e))
    }
}

impl From<healthledger_vault::Error> for Error {
    fn from(e: healthledger_vault::Error) -> Self {
        Self::from(VaultError::from(e))
    }
}
