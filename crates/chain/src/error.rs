//! The crate's one error enum and its mapping into the port's
//! [`LedgerError`]: contract reverts by custom error, transport failures by
//! whether a retry may help, chain data that fails validation as integrity.

use alloy::transports::TransportError;
use healthledger_core::{LedgerError, ValidationError};

use crate::{bindings::HealthLedger::HealthLedgerErrors, config::Redactor};

/// Shorthand for this crate's results.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong talking to the HealthLedger contract.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The contract rejected the call with one of its custom errors.
    #[error("the HealthLedger contract rejected {call}: {reason}")]
    Revert {
        /// The contract function that was called.
        call: &'static str,
        /// The decoded custom error, rendered with its arguments.
        reason: String,
        /// How the port sees it.
        kind: RevertKind,
    },
    /// A transaction was mined but reverted (the state changed between the
    /// simulation and the inclusion, typically a concurrent writer).
    #[error("transaction {tx} calling {call} reverted on chain in block {block}")]
    RevertedOnChain {
        /// The contract function.
        call: &'static str,
        /// Transaction hash.
        tx: alloy::primitives::B256,
        /// Block that included it.
        block: u64,
    },
    /// A JSON-RPC call failed and retrying it will not help.
    #[error("JSON-RPC {method} failed: {message}")]
    Rpc {
        /// The JSON-RPC method.
        method: &'static str,
        /// The transport's error, rendered without the RPC URL's path, query
        /// or credentials (where hosted providers put API keys).
        message: String,
    },
    /// A signed transaction could not be handed to the node (rate limits,
    /// timeouts, dropped connections until the retry budget was spent), and
    /// the node does not know it; its nonce is free again.
    #[error(
        "transaction {tx} calling {call} could not be sent after {attempts} attempt(s) (rate limit, timeout or dropped connection) and the node does not know it: {last}"
    )]
    SendFailed {
        /// The contract function.
        call: &'static str,
        /// Hash of the signed transaction.
        tx: alloy::primitives::B256,
        /// Sends tried.
        attempts: u32,
        /// The last failure, rendered without the RPC URL's secrets.
        last: String,
    },
    /// A transaction was sent but its outcome could not be learned (the
    /// node kept failing to answer for the receipt).
    #[error("transaction {tx} calling {call} was sent but its outcome is unknown: {reason}")]
    Unconfirmed {
        /// The contract function.
        call: &'static str,
        /// Transaction hash.
        tx: alloy::primitives::B256,
        /// Why, rendered without the RPC URL's secrets.
        reason: String,
    },
    /// A JSON-RPC call kept failing with retryable errors (429, timeouts,
    /// dropped connections) until the retry budget was spent.
    #[error(
        "JSON-RPC {method} still failing after {attempts} attempts (rate limit, timeout or dropped connection): {last}"
    )]
    RetriesExhausted {
        /// The JSON-RPC method.
        method: &'static str,
        /// How many attempts were made.
        attempts: u32,
        /// The last error, rendered.
        last: String,
    },
    /// The node refuses `eth_getLogs` even for a single block.
    #[error(
        "eth_getLogs over the single block {block} is refused as too large by the node: {message}"
    )]
    LogRangeUnsplittable {
        /// The block.
        block: u64,
        /// The node's message.
        message: String,
    },
    /// A value read from the chain breaks a domain rule (the contract holds
    /// something no valid write could have put there).
    #[error("chain data failed validation: {0}")]
    Integrity(String),
    /// A receipt did not arrive (with the requested confirmations) in time.
    #[error(
        "no receipt for transaction {tx} with {confirmations} confirmation(s) after {waited_secs} s"
    )]
    ReceiptTimeout {
        /// Transaction hash.
        tx: alloy::primitives::B256,
        /// Confirmations asked for.
        confirmations: u64,
        /// How long we waited.
        waited_secs: u64,
    },
    /// The adapter's configuration is unusable.
    #[error("invalid ledger configuration {field}: {rule}")]
    Config {
        /// The offending field or environment variable.
        field: &'static str,
        /// What is wrong with it (never the secret value itself).
        rule: String,
    },
    /// The caller's input breaks a rule before anything is sent.
    #[error("invalid input: {0}")]
    Invalid(String),
    /// The node keeps no state for a pinned block that is still canonical
    /// (a pruned node, or a block too far back): read at a newer block or
    /// from an archive node.
    #[error("the node keeps no state for block {number}: {message}")]
    StateUnavailable {
        /// The pinned block's number.
        number: u64,
        /// The node's answer, scrubbed.
        message: String,
    },
    /// A read pinned to a block that is no longer on the canonical chain (a
    /// reorg replaced it).
    #[error(
        "block {number} ({hash}) is no longer on the canonical chain; read at a canonical block"
    )]
    NotCanonical {
        /// The pinned block's number.
        number: u64,
        /// The pinned block's hash.
        hash: alloy::primitives::B256,
    },
}

/// How a contract revert maps onto the port's semantic variants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevertKind {
    /// Duplicate HH number, wallet or record id.
    AlreadyExists,
    /// Unknown HH number or record, or no grant to revoke.
    NotFound,
    /// Wrong sender, forged or replayed signature.
    AccessDenied,
    /// Expired deadline, bad input.
    Invalid,
}

impl Error {
    /// The error for a JSON-RPC call of `method` that failed with `source`,
    /// its text scrubbed of the RPC URL's secrets.
    pub(crate) fn rpc(method: &'static str, source: &TransportError, redact: &Redactor) -> Self {
        Self::Rpc {
            method,
            message: redact.display(source),
        }
    }

    /// The error for a decoded custom error of the contract.
    pub(crate) fn revert(call: &'static str, err: &HealthLedgerErrors) -> Self {
        use HealthLedgerErrors as E;
        let (kind, reason) = match err {
            E::AlreadyRegistered(e) => (
                RevertKind::AlreadyExists,
                format!(
                    "AlreadyRegistered: HH number {} or wallet {} is already registered",
                    e.hh, e.wallet
                ),
            ),
            E::RecordExists(e) => (
                RevertKind::AlreadyExists,
                format!(
                    "RecordExists: record-{}-{} already exists",
                    e.patientHH, e.recordId
                ),
            ),
            E::NotRegistered(e) => (
                RevertKind::NotFound,
                format!(
                    "NotRegistered: HH number {} is not registered in the needed role",
                    e.hh
                ),
            ),
            E::UnknownRecord(e) => (
                RevertKind::NotFound,
                format!(
                    "UnknownRecord: record-{}-{} does not exist",
                    e.patientHH, e.recordId
                ),
            ),
            E::NoActiveGrant(e) => (
                RevertKind::NotFound,
                format!(
                    "NoActiveGrant: patient {} has no unrevoked grant to {}",
                    e.patientHH, e.granteeHH
                ),
            ),
            E::NotAuthorized(e) => (
                RevertKind::AccessDenied,
                format!(
                    "NotAuthorized: {} may not do this (wrong sender, or not a registrar, or a patient creating a record)",
                    e.caller
                ),
            ),
            E::InvalidSignature(e) => (
                RevertKind::AccessDenied,
                format!(
                    "InvalidSignature: the signature is not by {} over this action and its current nonce (forged or replayed)",
                    e.expectedSigner
                ),
            ),
            E::Expired(e) => (
                RevertKind::Invalid,
                format!(
                    "Expired: signature deadline {} is before the block time {}",
                    e.deadline, e.blockTime
                ),
            ),
            E::InvalidInput(e) => (RevertKind::Invalid, format!("InvalidInput: {}", e.reason)),
            E::Suspended(e) => (
                RevertKind::AccessDenied,
                format!("Suspended: provider {} is suspended by the admin", e.hh),
            ),
        };
        Self::Revert { call, reason, kind }
    }

    /// Whether this error says the chain data itself is bad.
    pub(crate) fn integrity(err: ValidationError) -> Self {
        Self::Integrity(err.to_string())
    }
}

impl From<Error> for LedgerError {
    fn from(err: Error) -> Self {
        let message = err.to_string();
        match err {
            Error::Revert { kind, .. } => match kind {
                RevertKind::AlreadyExists => LedgerError::AlreadyExists(message),
                RevertKind::NotFound => LedgerError::NotFound(message),
                RevertKind::AccessDenied => LedgerError::AccessDenied(message),
                RevertKind::Invalid => LedgerError::Invalid(message),
            },
            Error::RevertedOnChain { .. } | Error::NotCanonical { .. } => {
                LedgerError::Conflict(message)
            }
            Error::RetriesExhausted { .. }
            | Error::ReceiptTimeout { .. }
            | Error::SendFailed { .. }
            | Error::Unconfirmed { .. }
            | Error::StateUnavailable { .. } => LedgerError::Unavailable(message),
            Error::Integrity(_) => LedgerError::Integrity(message),
            Error::Invalid(_) | Error::Config { .. } => LedgerError::Invalid(message),
            Error::Rpc { .. } | Error::LogRangeUnsplittable { .. } => LedgerError::other(err),
        }
    }
}
