//! HealthLedger's core: the domain model and the three ports.
//!
//! Health records live in three layers, each doing what it is good at:
//! the **ledger** (an EVM contract, the source of truth for profiles, grants,
//! record pointers and the audit trail), the **cache** (a SQL database
//! synchronized from the chain, plus DB-only data) and the **vault**
//! (confidential files, encrypted and content-addressed). This crate defines
//! the types they exchange and the ports ([`LedgerPort`], [`CachePort`],
//! [`VaultPort`]) that adapters implement. It does no I/O.
//!
//! Every domain value is valid by construction: constructors and `FromStr`
//! return a [`ValidationError`] naming the bad value and the rule it broke.
//!
//! With the `testing` feature, [`testing`] adds in-memory adapters, mockall
//! mocks of the ports and the conformance suites every adapter must pass.

mod access;
mod chain;
mod error;
mod ids;
mod profile;
mod record;

pub mod ports;
// The testing module holds assertion suites: panicking on a failed
// expectation is how they report, as in any test.
#[cfg(feature = "testing")]
#[allow(clippy::expect_used, clippy::unwrap_used)]
pub mod testing;

pub use access::{
    AccessAction, AccessGrant, AccessLogEntry, LogVerification, NewAccessLogEntry, NewNotification,
    Notification, NotificationKind, Session, SessionTokenHash, first_broken_link,
};
pub use alloy_primitives::{B256, Signature};
pub use chain::{
    AuditAnchor, BlockRef, ChainEvent, EventBatch, LedgerEvent, LogPosition, QuarantinedLog,
    TxReceipt,
};
pub use error::{
    BoxError, CacheError, IntegrityFailure, IntegrityReason, LedgerError, ValidationError,
    VaultError,
};
pub use ids::{Cid, HhNumber, RecordId, Role, Timestamp, WalletAddress};
pub use ports::cache::{
    BlockAdmission, CacheCounts, CachePort, CacheResult, ChainSnapshot, ChainSource, RecordQuery,
    admit_block, check_branch,
};
pub use ports::cache::{QuarantinedLogs, check_quarantined};
pub use ports::lease::WriterLease;
pub use ports::ledger::{
    AdminRole, Authorization, ConsentAction, LedgerPort, LedgerResult, ReadAt, RelayedSignature,
};
pub use ports::vault::{
    ByteStream, ObjectStatus, SealedObject, StoredObject, VaultHealth, VaultPort, VaultResult,
};
pub use profile::{
    BloodGroup, DateOfBirth, DiagnosticCenterProfile, DoctorProfile, Email, Label, Line, Name,
    Note, PatientProfile, PhoneNumber, Profile, ProfileExtras,
};
pub use record::{ContentType, MedicalRecord, NewRecord, RecordMeta, search_words};
