//! What drift verification and repair report: serde types that a CLI and
//! the HTTP server render as they are.
//!
//! Only chain data appears here (profiles, records, grants, the audit
//! anchor: public by design, since they are on chain): no secret and no
//! DB-only value (extras, notifications, sessions, the access log) is ever
//! read by the comparison, so none can reach a report.

use healthledger_core::{
    AccessGrant, AuditAnchor, BlockRef, HhNumber, MedicalRecord, Profile, RecordId,
};
use serde::{Deserialize, Serialize};

/// The key of a chain entity, as a report names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum EntityKey {
    /// A profile, by HH number.
    Profile {
        /// The HH number.
        hh: HhNumber,
    },
    /// A record, by id.
    Record {
        /// The record id.
        id: RecordId,
    },
    /// A grant, by (patient, grantee).
    Grant {
        /// The patient who granted.
        patient: HhNumber,
        /// The grantee.
        grantee: HhNumber,
    },
    /// The latest audit anchor (there is one).
    Anchor,
}

/// A chain entity's value, as read on chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "value", rename_all = "kebab-case")]
pub enum ChainValue {
    /// A profile.
    Profile(Profile),
    /// A record.
    Record(MedicalRecord),
    /// A grant, in its current state.
    Grant(AccessGrant),
    /// The latest audit anchor.
    Anchor(AuditAnchor),
}

impl ChainValue {
    /// The value's key.
    pub fn key(&self) -> EntityKey {
        match self {
            Self::Profile(p) => EntityKey::Profile { hh: p.hh() },
            Self::Record(r) => EntityKey::Record { id: r.id },
            Self::Grant(g) => EntityKey::Grant {
                patient: g.patient,
                grantee: g.grantee,
            },
            Self::Anchor(_) => EntityKey::Anchor,
        }
    }
}

/// One field that differs between the chain and the cache: its path in
/// the value's serde form (`name`, `meta.test_name`, `role`) and both
/// values, as JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldDiff {
    /// The field's path, dotted for nested fields.
    pub field: String,
    /// The value on chain (`null` when the chain's version lacks the
    /// field, e.g. after a role change).
    pub chain: serde_json::Value,
    /// The value in the cache.
    pub cache: serde_json::Value,
}

/// A cached entity that differs from the chain's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StaleEntry {
    /// The fields that differ, in path order.
    pub fields: Vec<FieldDiff>,
    /// The chain's version, which repair writes.
    pub chain: ChainValue,
}

/// How many entities of each kind the chain holds at the compared block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ChainCounts {
    /// Registered profiles (all roles).
    pub profiles: u64,
    /// Records.
    pub records: u64,
    /// Grants ever made.
    pub grants: u64,
    /// Whether the chain has an audit anchor.
    pub anchor: bool,
}

/// The drift between the chain at one block and the cache.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DriftReport {
    /// The block the chain was read at (every read pinned to its hash).
    pub at: BlockRef,
    /// The cache's checkpoint when the comparison ran: repair refuses to
    /// apply the report once the cache has moved on.
    pub cache_checkpoint: Option<BlockRef>,
    /// What the chain holds at `at`.
    pub chain: ChainCounts,
    /// On chain, not in the cache (the chain's values).
    pub missing: Vec<ChainValue>,
    /// In both, with different values.
    pub stale: Vec<StaleEntry>,
    /// In the cache, not on chain.
    pub extra: Vec<EntityKey>,
}

impl DriftReport {
    /// Whether the cache equals the chain.
    pub fn is_clean(&self) -> bool {
        self.missing.is_empty() && self.stale.is_empty() && self.extra.is_empty()
    }

    /// How many entities drifted.
    pub fn len(&self) -> usize {
        self.missing.len() + self.stale.len() + self.extra.len()
    }

    /// Whether nothing drifted (as [`Self::is_clean`]).
    pub fn is_empty(&self) -> bool {
        self.is_clean()
    }
}

/// What a repair did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct RepairReport {
    /// Entities written with the chain's value (missing or stale).
    pub upserted: u64,
    /// Entities removed (extra).
    pub removed: u64,
    /// Reported entities the cache already had right (a second repair
    /// reports everything here).
    pub unchanged: u64,
}

impl RepairReport {
    /// Whether the repair changed nothing.
    pub fn is_noop(&self) -> bool {
        self.upserted == 0 && self.removed == 0
    }
}
