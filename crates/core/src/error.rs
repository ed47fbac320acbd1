//! Errors: [`ValidationError`] for values that break a domain rule, and one
//! semantic error enum per port ([`LedgerError`], [`CacheError`],
//! [`VaultError`]) that every adapter maps its failures into.

mod integrity;

use std::fmt;

pub use integrity::{IntegrityFailure, IntegrityReason};

/// The longest excerpt of an offending value quoted in an error message.
const QUOTE_LIMIT: usize = 80;

/// A value that breaks a domain rule: names the kind of value, the value
/// itself (truncated) and the rule it broke.
///
/// Displayed as `invalid HH number "5555": expected exactly 6 decimal digits`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {what} {value:?}: {rule}")]
pub struct ValidationError {
    /// What kind of value was being parsed, e.g. `"HH number"`.
    pub what: &'static str,
    /// The offending value, truncated to a readable length.
    pub value: String,
    /// The rule it broke, e.g. `"expected exactly 6 decimal digits"`.
    pub rule: String,
}

impl ValidationError {
    /// Builds an error for `value` of kind `what` breaking `rule`.
    pub fn new(what: &'static str, value: impl fmt::Display, rule: impl Into<String>) -> Self {
        let value = value.to_string();
        let value = if value.chars().count() > QUOTE_LIMIT {
            let mut cut: String = value.chars().take(QUOTE_LIMIT).collect();
            cut.push('…');
            cut
        } else {
            value
        };
        Self {
            what,
            value,
            rule: rule.into(),
        }
    }
}

/// A boxed source error carried by the `Other` variants.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Defines one port's error enum. The three ports share the same semantic
/// variants (the object_store `Error` model), so the enum is written once;
/// only what its `Integrity` variant carries differs (`$integrity`: a
/// message, or the vault's typed [`IntegrityFailure`]).
macro_rules! port_error {
    (
        $(#[$doc:meta])* $name:ident, $port:literal, $integrity:ty
        $(, $(#[$edoc:meta])* $extra:ident => $what:literal)?
    ) => {
        $(#[$doc])*
        #[derive(Debug, thiserror::Error)]
        #[non_exhaustive]
        pub enum $name {
            /// The thing asked for does not exist.
            #[error("{}: not found: {}", $port, .0)]
            NotFound(String),
            /// A create found the thing already there.
            #[error("{}: already exists: {}", $port, .0)]
            AlreadyExists(String),
            /// The caller is not authorized to do this.
            #[error("{}: access denied: {}", $port, .0)]
            AccessDenied(String),
            /// The input breaks a rule; retrying the same input fails again.
            #[error("{}: invalid input: {}", $port, .0)]
            Invalid(String),
            /// The write conflicts with the current state (a unique key, a
            /// stale parent, a concurrent writer).
            #[error("{}: conflict: {}", $port, .0)]
            Conflict(String),
            /// The backend is unreachable or overloaded; retrying may succeed.
            #[error("{}: unavailable (retryable): {}", $port, .0)]
            Unavailable(String),
            /// Stored data failed an integrity check (hash, tag, chain link).
            #[error("{}: integrity violation: {}", $port, .0)]
            Integrity($integrity),
            /// Any other failure, with its source.
            #[error("{}: {}", $port, .0)]
            Other(#[source] BoxError),
            $(
                $(#[$edoc])*
                #[error("{}: {}: {}", $port, $what, .0)]
                $extra(String),
            )?
        }

        impl $name {
            /// Whether retrying the same call may succeed.
            pub fn is_retryable(&self) -> bool {
                matches!(self, Self::Unavailable(_))
            }

            /// Wraps any error as [`Self::Other`].
            pub fn other(source: impl Into<BoxError>) -> Self {
                Self::Other(source.into())
            }
        }

        impl From<ValidationError> for $name {
            fn from(err: ValidationError) -> Self {
                Self::Invalid(err.to_string())
            }
        }
    };
}

port_error!(
    /// Errors of a [`crate::LedgerPort`].
    LedgerError,
    "ledger",
    String
);
port_error!(
    /// Errors of a [`crate::CachePort`].
    CacheError,
    "cache",
    String,
    /// The search indexes are dropped for an initial backfill
    /// ([`crate::CachePort::begin_backfill_mode`]) and not rebuilt yet: a
    /// search would miss rows, so it answers this instead. Retry once the
    /// backfill ends.
    IndexBuilding => "search index building"
);
port_error!(
    /// Errors of a [`crate::VaultPort`]. Its `Integrity` variant says what
    /// failed as an [`IntegrityReason`].
    VaultError,
    "vault",
    IntegrityFailure,
    /// A read named another patient than the one the object belongs to:
    /// nothing was read. The message names the CID and the patient the
    /// caller expected, never the owner (that would tell a reader of one
    /// patient who else has an object).
    WrongPatient => "object of another patient"
);

impl VaultError {
    /// An [`Self::Integrity`] error for `reason`, explained by `message`.
    pub fn integrity(reason: IntegrityReason, message: impl Into<String>) -> Self {
        Self::Integrity(IntegrityFailure::new(reason, message))
    }

    /// Why stored data failed an integrity check, for an
    /// [`Self::Integrity`] error.
    pub fn integrity_reason(&self) -> Option<IntegrityReason> {
        match self {
            Self::Integrity(failure) => Some(failure.reason),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_error_names_value_and_rule() {
        let err = ValidationError::new("HH number", "5555", "expected exactly 6 decimal digits");
        assert_eq!(
            err.to_string(),
            r#"invalid HH number "5555": expected exactly 6 decimal digits"#
        );
    }

    #[test]
    fn long_values_are_truncated() {
        let err = ValidationError::new("name", "x".repeat(500), "too long");
        assert!(err.value.chars().count() <= QUOTE_LIMIT + 1);
    }

    #[test]
    fn port_errors_convert_and_classify() {
        let err: CacheError = ValidationError::new("email", "a@", "bad").into();
        assert!(matches!(err, CacheError::Invalid(_)));
        assert!(LedgerError::Unavailable("429".into()).is_retryable());
        let tampered = VaultError::integrity(IntegrityReason::Tampered, "segment 3: tag");
        assert!(!tampered.is_retryable());
        assert_eq!(tampered.integrity_reason(), Some(IntegrityReason::Tampered));
        assert_eq!(
            tampered.to_string(),
            "vault: integrity violation: segment 3: tag"
        );
        assert_eq!(VaultError::NotFound("x".into()).integrity_reason(), None);
        assert!(
            VaultError::NotFound("x".into())
                .to_string()
                .starts_with("vault: not found")
        );
    }
}
