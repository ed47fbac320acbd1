//! Hand-written conversions between the core domain types and the contract's
//! ABI structs and events. Everything read from the chain goes back through
//! the core constructors, so a value that breaks a domain rule becomes an
//! [`Error::Integrity`], never a panic.

use alloy::{
    primitives::{Address, Log as PrimitiveLog},
    rpc::types::Log,
    sol_types::SolValue,
};
use chrono::NaiveDate;
use healthledger_core::{
    AccessGrant, AuditAnchor, BloodGroup, ChainEvent, Cid, ContentType, DateOfBirth,
    DiagnosticCenterProfile, DoctorProfile, Email, HhNumber, Label, LedgerEvent, Line, LogPosition,
    MedicalRecord, Name, PatientProfile, Profile, QuarantinedLog, RecordId, RecordMeta, Role,
    Timestamp, ValidationError, WalletAddress,
};

use crate::{
    Error, Result,
    bindings::HealthLedger::{self, HealthLedgerEvents},
};

const DATE_FORMAT: &str = "%Y-%m-%d";

fn check<T>(r: std::result::Result<T, ValidationError>) -> Result<T> {
    r.map_err(Error::integrity)
}

pub(crate) fn hh(n: u32) -> Result<HhNumber> {
    check(HhNumber::new(n))
}

pub(crate) fn wallet(a: Address) -> Result<WalletAddress> {
    check(WalletAddress::new(a))
}

fn opt_time(t: u64) -> Option<Timestamp> {
    (t != 0).then_some(Timestamp(t))
}

/// The contract's role code of a core role.
pub(crate) fn role_code(role: Role) -> u8 {
    role.code()
}

/// A core role from the contract's code; 0 (none) is `None`.
pub(crate) fn role_from_code(code: u8) -> Result<Option<Role>> {
    if code == 0 {
        return Ok(None);
    }
    check(Role::from_code(code)).map(Some)
}

pub(crate) fn patient_to_abi(p: &PatientProfile) -> HealthLedger::Patient {
    HealthLedger::Patient {
        hh: p.hh.get(),
        wallet: p.wallet.address(),
        name: p.name.to_string(),
        dateOfBirth: p.date_of_birth.to_string(),
        gender: p.gender.to_string(),
        bloodGroup: p.blood_group.to_string(),
        homeAddress: p.home_address.to_string(),
        email: p.email.to_string(),
    }
}

pub(crate) fn doctor_to_abi(p: &DoctorProfile) -> HealthLedger::Doctor {
    HealthLedger::Doctor {
        hh: p.hh.get(),
        wallet: p.wallet.address(),
        name: p.name.to_string(),
        specialization: p.specialization.to_string(),
        hospital: p.hospital.to_string(),
        email: p.email.to_string(),
    }
}

pub(crate) fn center_to_abi(p: &DiagnosticCenterProfile) -> HealthLedger::DiagnosticCenter {
    HealthLedger::DiagnosticCenter {
        hh: p.hh.get(),
        wallet: p.wallet.address(),
        name: p.name.to_string(),
        location: p.location.to_string(),
        email: p.email.to_string(),
    }
}

pub(crate) fn patient_from_abi(p: &HealthLedger::Patient) -> Result<PatientProfile> {
    Ok(PatientProfile {
        hh: hh(p.hh)?,
        wallet: wallet(p.wallet)?,
        name: check(Name::new(p.name.clone()))?,
        date_of_birth: check(p.dateOfBirth.parse::<DateOfBirth>())?,
        gender: check(Label::new(p.gender.clone()))?,
        blood_group: check(p.bloodGroup.parse::<BloodGroup>())?,
        home_address: check(Line::new(p.homeAddress.clone()))?,
        email: check(Email::new(p.email.clone()))?,
    })
}

pub(crate) fn doctor_from_abi(p: &HealthLedger::Doctor) -> Result<DoctorProfile> {
    Ok(DoctorProfile {
        hh: hh(p.hh)?,
        wallet: wallet(p.wallet)?,
        name: check(Name::new(p.name.clone()))?,
        specialization: check(Label::new(p.specialization.clone()))?,
        hospital: check(Line::new(p.hospital.clone()))?,
        email: check(Email::new(p.email.clone()))?,
    })
}

pub(crate) fn center_from_abi(
    p: &HealthLedger::DiagnosticCenter,
) -> Result<DiagnosticCenterProfile> {
    Ok(DiagnosticCenterProfile {
        hh: hh(p.hh)?,
        wallet: wallet(p.wallet)?,
        name: check(Name::new(p.name.clone()))?,
        location: check(Line::new(p.location.clone()))?,
        email: check(Email::new(p.email.clone()))?,
    })
}

pub(crate) fn meta_to_abi(m: &RecordMeta) -> HealthLedger::RecordMeta {
    HealthLedger::RecordMeta {
        testName: m.test_name.to_string(),
        recordType: m.record_type.to_string(),
        date: m.date.format(DATE_FORMAT).to_string(),
        contentType: m.content_type.to_string(),
        size: m.size,
    }
}

fn meta_from_abi(m: &HealthLedger::RecordMeta) -> Result<RecordMeta> {
    let date = NaiveDate::parse_from_str(&m.date, DATE_FORMAT)
        .ok()
        .filter(|_| m.date.len() == 10)
        .ok_or_else(|| {
            Error::integrity(ValidationError::new(
                "record date",
                &m.date,
                "expected a date as YYYY-MM-DD",
            ))
        })?;
    Ok(RecordMeta {
        test_name: check(Name::new(m.testName.clone()))?,
        record_type: check(Label::new(m.recordType.clone()))?,
        date,
        content_type: check(ContentType::new(&m.contentType))?,
        size: m.size,
    })
}

pub(crate) fn record_from_parts(
    patient: u32,
    id: u64,
    creator: u32,
    cid: &[u8],
    meta: &HealthLedger::RecordMeta,
    created_at: u64,
) -> Result<MedicalRecord> {
    Ok(MedicalRecord {
        id: RecordId::new(hh(patient)?, id),
        patient: hh(patient)?,
        creator: hh(creator)?,
        cid: check(Cid::from_bytes(cid))?,
        meta: meta_from_abi(meta)?,
        created_at: Timestamp(created_at),
    })
}

pub(crate) fn record_from_abi(r: &HealthLedger::Record) -> Result<MedicalRecord> {
    record_from_parts(
        r.patientHH,
        r.recordId,
        r.creatorHH,
        &r.cid,
        &r.meta,
        r.createdAt,
    )
}

pub(crate) fn grant_from_abi(
    patient: HhNumber,
    grantee: HhNumber,
    g: &HealthLedger::Grant,
) -> AccessGrant {
    AccessGrant {
        patient,
        grantee,
        granted_at: Timestamp(g.grantedAt),
        expires_at: opt_time(g.expiresAt),
        revoked_at: opt_time(g.revokedAt),
    }
}

fn decode_profile(role: u8, data: &[u8]) -> Result<Profile> {
    let bad = |e: alloy::sol_types::Error| {
        Error::Integrity(format!(
            "ProfileUpdated data does not decode as the profile of role {role}: {e}"
        ))
    };
    match role_from_code(role)? {
        Some(Role::Patient) => Ok(Profile::Patient(patient_from_abi(
            &HealthLedger::Patient::abi_decode(data).map_err(bad)?,
        )?)),
        Some(Role::Doctor) => Ok(Profile::Doctor(doctor_from_abi(
            &HealthLedger::Doctor::abi_decode(data).map_err(bad)?,
        )?)),
        Some(Role::DiagnosticCenter) => Ok(Profile::DiagnosticCenter(center_from_abi(
            &HealthLedger::DiagnosticCenter::abi_decode(data).map_err(bad)?,
        )?)),
        None => Err(Error::Integrity("ProfileUpdated with role 0".into())),
    }
}

/// Decodes one contract event into its core form.
pub(crate) fn event_from_abi(e: &HealthLedgerEvents) -> Result<Option<LedgerEvent>> {
    use HealthLedgerEvents as E;
    Ok(Some(match e {
        E::PatientRegistered(e) => LedgerEvent::PatientRegistered {
            profile: patient_from_abi(&e.profile)?,
            registrar: wallet(e.registrar)?,
            attested: e.attested,
        },
        E::DoctorRegistered(e) => LedgerEvent::DoctorRegistered {
            profile: doctor_from_abi(&e.profile)?,
            registrar: wallet(e.registrar)?,
        },
        E::DiagnosticCenterRegistered(e) => LedgerEvent::DiagnosticCenterRegistered {
            profile: center_from_abi(&e.profile)?,
            registrar: wallet(e.registrar)?,
        },
        E::ProfileUpdated(e) => LedgerEvent::ProfileUpdated(decode_profile(e.role, &e.profile)?),
        E::RecordCreated(e) => LedgerEvent::RecordCreated(record_from_parts(
            e.patientHH,
            e.recordId,
            e.creatorHH,
            &e.cid,
            &e.meta,
            e.createdAt,
        )?),
        E::AccessGranted(e) => LedgerEvent::AccessGranted(AccessGrant {
            patient: hh(e.patientHH)?,
            grantee: hh(e.granteeHH)?,
            granted_at: Timestamp(e.grantedAt),
            expires_at: opt_time(e.expiresAt),
            revoked_at: None,
        }),
        E::AccessRevoked(e) => LedgerEvent::AccessRevoked {
            patient: hh(e.patientHH)?,
            grantee: hh(e.granteeHH)?,
            revoked_at: Timestamp(e.revokedAt),
        },
        E::AuditAnchored(e) => LedgerEvent::AuditAnchored(AuditAnchor {
            digest: e.digest,
            last_seq: e.lastSeq,
            anchored_at: Timestamp(e.anchoredAt),
        }),
        E::RegistrarAdded(e) => LedgerEvent::RegistrarAdded(wallet(e.registrar)?),
        E::RegistrarRemoved(e) => LedgerEvent::RegistrarRemoved(wallet(e.registrar)?),
        E::ProviderSuspended(e) => LedgerEvent::ProviderSuspended(hh(e.hh)?),
        E::ProviderReinstated(e) => LedgerEvent::ProviderReinstated(hh(e.hh)?),
        E::AdminTransferStarted(e) => LedgerEvent::AdminTransferStarted {
            admin: wallet(e.admin)?,
            pending_admin: wallet(e.pendingAdmin)?,
        },
        E::AdminChanged(e) => LedgerEvent::AdminChanged {
            previous: wallet(e.previousAdmin)?,
            admin: wallet(e.admin)?,
        },
        // A cancelled nonce changes nothing the cache holds: it is the
        // contract's own bookkeeping.
        E::NonceInvalidated(_) => return Ok(None),
    }))
}

/// What one log of the contract turned into.
pub(crate) enum Decoded {
    /// A domain event.
    Event(ChainEvent),
    /// An event of the contract's own bookkeeping, with nothing for the cache.
    Bookkeeping,
    /// A log that does not decode (unknown layout, or a value the domain
    /// refuses), to be quarantined.
    Quarantined(QuarantinedLog),
}

/// Decodes an RPC log into a positioned core event; a log that does not
/// decode is quarantined, never an error (one bad log must not wedge every
/// range that holds it). Only a log without a position (a pending log) is an
/// error.
pub(crate) fn chain_event(log: &Log) -> Result<Decoded> {
    let missing = |what: &str| {
        Error::Integrity(format!(
            "log without {what} (a pending log?): tx {:?}",
            log.transaction_hash
        ))
    };
    let at = LogPosition {
        block_number: log.block_number.ok_or_else(|| missing("block number"))?,
        log_index: log.log_index.ok_or_else(|| missing("log index"))?,
        block_hash: log.block_hash.ok_or_else(|| missing("block hash"))?,
        tx_hash: log
            .transaction_hash
            .ok_or_else(|| missing("transaction hash"))?,
    };
    let inner: &PrimitiveLog = &log.inner;
    let quarantine = |reason: String| {
        Decoded::Quarantined(QuarantinedLog {
            at,
            topic: inner.topics().first().copied().unwrap_or_default(),
            reason,
        })
    };
    let decoded = match <HealthLedgerEvents as alloy::sol_types::SolEventInterface>::decode_raw_log(
        inner.topics(),
        &inner.data.data,
    ) {
        Ok(decoded) => decoded,
        Err(e) => return Ok(quarantine(format!("not a HealthLedger event: {e}"))),
    };
    Ok(match event_from_abi(&decoded) {
        Ok(Some(event)) => Decoded::Event(ChainEvent { at, event }),
        Ok(None) => Decoded::Bookkeeping,
        Err(e) => quarantine(e.to_string()),
    })
}

/// The topic-0 of every event the contract emits, to filter logs.
#[cfg(test)]
pub(crate) fn all_event_signatures() -> Vec<alloy::primitives::B256> {
    use alloy::sol_types::SolEvent as _;
    vec![
        HealthLedger::PatientRegistered::SIGNATURE_HASH,
        HealthLedger::DoctorRegistered::SIGNATURE_HASH,
        HealthLedger::DiagnosticCenterRegistered::SIGNATURE_HASH,
        HealthLedger::ProfileUpdated::SIGNATURE_HASH,
        HealthLedger::RecordCreated::SIGNATURE_HASH,
        HealthLedger::AccessGranted::SIGNATURE_HASH,
        HealthLedger::AccessRevoked::SIGNATURE_HASH,
        HealthLedger::AuditAnchored::SIGNATURE_HASH,
        HealthLedger::RegistrarAdded::SIGNATURE_HASH,
        HealthLedger::RegistrarRemoved::SIGNATURE_HASH,
        HealthLedger::AdminTransferStarted::SIGNATURE_HASH,
        HealthLedger::AdminChanged::SIGNATURE_HASH,
        HealthLedger::NonceInvalidated::SIGNATURE_HASH,
        HealthLedger::ProviderSuspended::SIGNATURE_HASH,
        HealthLedger::ProviderReinstated::SIGNATURE_HASH,
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_signatures_are_distinct() {
        let mut s = all_event_signatures();
        s.sort();
        s.dedup();
        assert_eq!(s.len(), 15);
    }

    #[test]
    fn bad_chain_data_is_an_integrity_error() {
        let p = HealthLedger::Patient {
            hh: 42,
            wallet: Address::repeat_byte(1),
            name: "x".into(),
            dateOfBirth: "1990-01-01".into(),
            gender: "f".into(),
            bloodGroup: "O+".into(),
            homeAddress: "a".into(),
            email: "a@b.co".into(),
        };
        assert!(matches!(patient_from_abi(&p), Err(Error::Integrity(_))));
        let p = HealthLedger::Patient {
            hh: 100_000,
            bloodGroup: "Q".into(),
            ..p
        };
        let err = patient_from_abi(&p).unwrap_err();
        assert!(err.to_string().contains("blood group"), "{err}");
    }
}
