//! Integrity: is the cache what the chain says, is the vault holding what
//! the records point to, and is the access log what was anchored?
//!
//! - drift verification ([`SyncEngine::verify_drift`](crate::SyncEngine::verify_drift), `drift`): the chain
//!   at one pinned block compared field by field with the cache, a page at
//!   a time, into a [`DriftReport`];
//! - repair ([`SyncEngine::repair`](crate::SyncEngine::repair), `repair`): exactly the reported drift
//!   fixed through the targeted upserts and removals, a no-op the second
//!   time, DB-only data never touched;
//! - the access-log audit ([`SyncEngine::audit_access_log`](crate::SyncEngine::audit_access_log),
//!   `access_audit`) against the chain's latest anchor, and the anchoring
//!   job ([`AnchorJob`], `anchor`);
//! - the vault audit ([`SyncEngine::audit_vault`](crate::SyncEngine::audit_vault), `vault_audit`): every
//!   indexed record's object verified, orphans listed and shredded after a
//!   grace period.
//!
//! Everything goes through the ports; the reports are serde types a CLI
//! and the HTTP server render as they are.

mod access_audit;
mod anchor;
mod drift;
mod repair;
mod report;
mod vault_audit;

pub use access_audit::AccessLogAudit;
pub use anchor::{AnchorConfig, AnchorJob, AnchorOutcome};
pub use report::{
    ChainCounts, ChainValue, DriftReport, EntityKey, FieldDiff, RepairReport, StaleEntry,
};
pub use vault_audit::{Orphan, RecordProblem, VaultAudit, VaultAuditConfig};
