//! Chain positions and the events the HealthLedger contract emits, decoded
//! into domain types. Events are totally ordered by block number, then log
//! index.

use std::{fmt, str::FromStr};

use alloy_primitives::B256;
use serde::{Deserialize, Serialize};

use crate::{
    AccessGrant, DiagnosticCenterProfile, DoctorProfile, HhNumber, MedicalRecord, PatientProfile,
    Profile, Timestamp, ValidationError, WalletAddress,
};

/// A block's identity: number, hash, parent hash and timestamp. Comparing a
/// stored `BlockRef` with the chain's block at the same number detects reorgs;
/// the timestamp is the time grant expiries and registrations are judged by,
/// and what a sync's lag in seconds is measured against.
///
/// Displays (and parses) as `<number>:<hash>:<parent hash>:<timestamp>` with
/// 0x-prefixed lowercase hex and the timestamp in Unix seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct BlockRef {
    /// Block number (height).
    pub number: u64,
    /// Block hash.
    pub hash: B256,
    /// The parent block's hash.
    pub parent_hash: B256,
    /// The block's timestamp (Unix seconds).
    pub timestamp: Timestamp,
}

impl BlockRef {
    /// Whether `self` is the direct child of `parent`.
    pub fn is_child_of(&self, parent: &BlockRef) -> bool {
        self.number == parent.number.saturating_add(1) && self.parent_hash == parent.hash
    }
}

impl fmt::Display for BlockRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}:{}",
            self.number, self.hash, self.parent_hash, self.timestamp.0
        )
    }
}

impl FromStr for BlockRef {
    type Err = ValidationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || {
            ValidationError::new(
                "block ref",
                s,
                "expected <number>:<0x 64-hex hash>:<0x 64-hex parent hash>:<unix seconds>",
            )
        };
        let mut parts = s.split(':');
        let (Some(n), Some(h), Some(p), Some(t), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(err());
        };
        let decimal = |x: &str| {
            (!x.is_empty()
                && x.bytes().all(|b| b.is_ascii_digit())
                && !(x.len() > 1 && x.starts_with('0')))
            .then(|| x.parse::<u64>().ok())
            .flatten()
        };
        let hash32 = |x: &str| {
            x.strip_prefix("0x")
                .filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
                .and_then(|_| x.parse::<B256>().ok())
        };
        Ok(Self {
            number: decimal(n).ok_or_else(err)?,
            hash: hash32(h).ok_or_else(err)?,
            parent_hash: hash32(p).ok_or_else(err)?,
            timestamp: Timestamp(decimal(t).ok_or_else(err)?),
        })
    }
}

/// Where a log sits on chain. Ordered by block number, then log index (the
/// hashes only break ties between forks).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct LogPosition {
    /// Block number.
    pub block_number: u64,
    /// Index of the log within its block.
    pub log_index: u64,
    /// Block hash.
    pub block_hash: B256,
    /// Hash of the transaction that emitted the log.
    pub tx_hash: B256,
}

/// What a ledger write returns: the transaction and the block it landed in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TxReceipt {
    /// Transaction hash.
    pub tx_hash: B256,
    /// Number of the block that included it.
    pub block_number: u64,
    /// Hash of that block.
    pub block_hash: B256,
}

/// A digest of the access log anchored on chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct AuditAnchor {
    /// The access log's head hash at `last_seq`.
    pub digest: B256,
    /// The last access-log seq the digest covers.
    pub last_seq: u64,
    /// When it was anchored (block timestamp).
    pub anchored_at: Timestamp,
}

/// One contract event, decoded. Each variant carries everything needed to
/// rebuild the state it changes from logs alone.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum LedgerEvent {
    /// A patient registered: `registrar` issued the HH number, sending the
    /// registration itself, or (`attested`) signing the attestation the
    /// patient sent it with from their own wallet.
    PatientRegistered {
        /// The registered profile.
        profile: PatientProfile,
        /// The registrar that issued the HH number.
        registrar: WalletAddress,
        /// Whether the patient registered themselves with the registrar's
        /// attestation (rather than the registrar sending it).
        attested: bool,
    },
    /// A doctor registered (always by a registrar, itself).
    DoctorRegistered {
        /// The registered profile.
        profile: DoctorProfile,
        /// The registrar that sent the registration.
        registrar: WalletAddress,
    },
    /// A diagnostic center registered (always by a registrar, itself).
    DiagnosticCenterRegistered {
        /// The registered profile.
        profile: DiagnosticCenterProfile,
        /// The registrar that sent the registration.
        registrar: WalletAddress,
    },
    /// A profile was replaced by a new version.
    ProfileUpdated(Profile),
    /// A record pointer was created.
    RecordCreated(MedicalRecord),
    /// A patient granted (or re-granted) access; `revoked_at` is `None`.
    AccessGranted(AccessGrant),
    /// A patient revoked access.
    AccessRevoked {
        /// The patient.
        patient: HhNumber,
        /// The grantee who lost access.
        grantee: HhNumber,
        /// When (block timestamp).
        revoked_at: Timestamp,
    },
    /// An access-log digest was anchored.
    AuditAnchored(AuditAnchor),
    /// A registrar was added.
    RegistrarAdded(WalletAddress),
    /// A registrar was removed.
    RegistrarRemoved(WalletAddress),
    /// The admin suspended a doctor or diagnostic center: it creates no
    /// records and receives no grants until reinstated.
    ProviderSuspended(HhNumber),
    /// The admin reinstated a suspended provider.
    ProviderReinstated(HhNumber),
    /// The admin offered the admin role to `pending_admin` (the first step
    /// of a handover); it replaces any earlier offer.
    AdminTransferStarted {
        /// The admin making the offer.
        admin: WalletAddress,
        /// The wallet that becomes admin when it accepts.
        pending_admin: WalletAddress,
    },
    /// The offered wallet accepted: `admin` holds the role, `previous` lost it.
    AdminChanged {
        /// The admin before the handover.
        previous: WalletAddress,
        /// The new admin.
        admin: WalletAddress,
    },
}

impl LedgerEvent {
    /// The profile a registration event carries, if it is one.
    pub fn registered_profile(&self) -> Option<Profile> {
        match self {
            LedgerEvent::PatientRegistered { profile, .. } => {
                Some(Profile::Patient(profile.clone()))
            }
            LedgerEvent::DoctorRegistered { profile, .. } => Some(Profile::Doctor(profile.clone())),
            LedgerEvent::DiagnosticCenterRegistered { profile, .. } => {
                Some(Profile::DiagnosticCenter(profile.clone()))
            }
            _ => None,
        }
    }

    /// The registrar that issued the HH number of a registration event, and
    /// whether the patient sent it with that registrar's attestation.
    pub fn registered_by(&self) -> Option<(WalletAddress, bool)> {
        match self {
            LedgerEvent::PatientRegistered {
                registrar,
                attested,
                ..
            } => Some((*registrar, *attested)),
            LedgerEvent::DoctorRegistered { registrar, .. }
            | LedgerEvent::DiagnosticCenterRegistered { registrar, .. } => {
                Some((*registrar, false))
            }
            _ => None,
        }
    }

    /// The event of `registrar` registering `profile` itself.
    pub fn registration(profile: Profile, registrar: WalletAddress) -> Self {
        match profile {
            Profile::Patient(profile) => LedgerEvent::PatientRegistered {
                profile,
                registrar,
                attested: false,
            },
            Profile::Doctor(profile) => LedgerEvent::DoctorRegistered { profile, registrar },
            Profile::DiagnosticCenter(profile) => {
                LedgerEvent::DiagnosticCenterRegistered { profile, registrar }
            }
        }
    }

    /// The event of a patient registering from their own wallet with
    /// `registrar`'s attestation.
    pub fn attested_registration(profile: PatientProfile, registrar: WalletAddress) -> Self {
        LedgerEvent::PatientRegistered {
            profile,
            registrar,
            attested: true,
        }
    }
}

/// A log of the ledger's contract that could not be decoded into a
/// [`LedgerEvent`] (a value the domain refuses, an unknown layout). It is
/// kept, not dropped, so that one bad log never stops a range from being
/// read: the sync engine records it and reports it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct QuarantinedLog {
    /// Where the log sits.
    pub at: LogPosition,
    /// The log's first topic (the event signature hash), zero if it had none.
    pub topic: B256,
    /// Why it did not decode.
    pub reason: String,
}

/// What [`crate::LedgerPort::events`] returns for a block range: the decoded
/// events in chain order, and the logs that did not decode.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct EventBatch {
    /// Decoded events, ordered by (block number, log index).
    pub events: Vec<ChainEvent>,
    /// Logs that did not decode, in chain order.
    pub quarantined: Vec<QuarantinedLog>,
}

/// A decoded event with its position. Ordered by (block number, log index).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ChainEvent {
    /// Where the log sits.
    pub at: LogPosition,
    /// The event.
    pub event: LedgerEvent,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_refs_round_trip_and_reject_junk() {
        let b = BlockRef {
            number: 42,
            hash: B256::repeat_byte(0xab),
            parent_hash: B256::repeat_byte(0x01),
            timestamp: Timestamp(1_700_000_000),
        };
        let s = b.to_string();
        assert_eq!(s.parse::<BlockRef>().unwrap(), b);
        let three_parts = format!("{}:{}:{}", b.number, b.hash, b.parent_hash);
        let five_parts = format!("{s}:1");
        let padded_time = format!("{three_parts}:01");
        for bad in [
            "",
            "42",
            "42:0x00:0x00",
            "-1:0x:0x",
            "042:0xab:0x01",
            &three_parts,
            &five_parts,
            &padded_time,
        ] {
            assert!(bad.parse::<BlockRef>().is_err(), "{bad}");
        }
    }

    // Built from the testing fixtures, so it runs with the `testing` feature.
    #[cfg(feature = "testing")]
    #[test]
    fn registration_events_name_their_registrar() {
        let registrar: WalletAddress = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"
            .parse()
            .unwrap();
        let wallet = crate::testing::TestWallet::from_seed(1).address();
        let patient = crate::testing::fixtures::patient(100_001, wallet, "Asha Rao");
        let doctor = crate::testing::fixtures::doctor(100_002, wallet, "Dr. Sen");
        let direct = LedgerEvent::registration(patient.clone(), registrar);
        assert_eq!(direct.registered_profile(), Some(patient.clone()));
        assert_eq!(direct.registered_by(), Some((registrar, false)));
        let Profile::Patient(p) = patient.clone() else {
            unreachable!("a patient fixture")
        };
        let attested = LedgerEvent::attested_registration(p, registrar);
        assert_eq!(attested.registered_profile(), Some(patient));
        assert_eq!(attested.registered_by(), Some((registrar, true)));
        let doc = LedgerEvent::registration(doctor.clone(), registrar);
        assert_eq!(doc.registered_profile(), Some(doctor));
        assert_eq!(doc.registered_by(), Some((registrar, false)));
        let other = LedgerEvent::RegistrarAdded(registrar);
        assert_eq!(
            (other.registered_profile(), other.registered_by()),
            (None, None)
        );
    }

    #[test]
    fn events_order_by_block_then_log_index() {
        let pos = |block_number, log_index| LogPosition {
            block_number,
            log_index,
            block_hash: B256::ZERO,
            tx_hash: B256::ZERO,
        };
        let ev = |at| ChainEvent {
            at,
            event: LedgerEvent::RegistrarRemoved(
                "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"
                    .parse()
                    .unwrap(),
            ),
        };
        let mut v = [ev(pos(2, 0)), ev(pos(1, 5)), ev(pos(1, 1))];
        v.sort();
        let order: Vec<_> = v
            .iter()
            .map(|e| (e.at.block_number, e.at.log_index))
            .collect();
        assert_eq!(order, [(1, 1), (1, 5), (2, 0)]);
    }
}
