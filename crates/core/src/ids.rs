//! Identifiers: HH numbers, roles, wallet addresses, record ids, CIDs and
//! timestamps. Every type here is valid by construction: its constructors and
//! `FromStr` return a [`ValidationError`] naming the bad value and the rule.

use std::{fmt, str::FromStr};

use alloy_primitives::Address;
use serde::{Deserialize, Serialize};

use crate::ValidationError;

/// A HealthLedger user number: exactly six decimal digits, 100000–999999
/// (the seed's patient 555555, doctor 112233, diagnostic center 444444).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "u32", into = "u32")]
pub struct HhNumber(u32);

impl HhNumber {
    /// The smallest valid HH number.
    pub const MIN: u32 = 100_000;
    /// The largest valid HH number.
    pub const MAX: u32 = 999_999;

    /// Builds an HH number from its numeric value.
    pub fn new(value: u32) -> Result<Self, ValidationError> {
        if (Self::MIN..=Self::MAX).contains(&value) {
            Ok(Self(value))
        } else {
            Err(ValidationError::new(
                "HH number",
                value,
                "expected a number from 100000 to 999999",
            ))
        }
    }

    /// The numeric value.
    pub fn get(self) -> u32 {
        self.0
    }
}

impl TryFrom<u32> for HhNumber {
    type Error = ValidationError;
    fn try_from(value: u32) -> Result<Self, Self::Error> {
        Self::new(value)
    }
}

impl From<HhNumber> for u32 {
    fn from(hh: HhNumber) -> u32 {
        hh.0
    }
}

impl FromStr for HhNumber {
    type Err = ValidationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let rule = "expected exactly 6 decimal digits, 100000 to 999999";
        if s.len() != 6 || !s.bytes().all(|b| b.is_ascii_digit()) || s.starts_with('0') {
            return Err(ValidationError::new("HH number", s, rule));
        }
        s.parse::<u32>()
            .map_err(|_| ValidationError::new("HH number", s, rule))
            .and_then(Self::new)
    }
}

impl fmt::Display for HhNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The role a registered HH number plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// A patient, who owns their records and grants access to them.
    Patient,
    /// A doctor, who may be granted access and may create records.
    Doctor,
    /// A diagnostic center, which creates records (lab results, scans).
    DiagnosticCenter,
}

impl Role {
    /// All roles, in contract order.
    pub const ALL: [Role; 3] = [Role::Patient, Role::Doctor, Role::DiagnosticCenter];

    /// The stable lowercase name (`patient`, `doctor`, `diagnostic-center`).
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Patient => "patient",
            Role::Doctor => "doctor",
            Role::DiagnosticCenter => "diagnostic-center",
        }
    }

    /// The contract's numeric code (1, 2, 3; 0 means unregistered there).
    pub fn code(self) -> u8 {
        match self {
            Role::Patient => 1,
            Role::Doctor => 2,
            Role::DiagnosticCenter => 3,
        }
    }

    /// The role for a contract code.
    pub fn from_code(code: u8) -> Result<Self, ValidationError> {
        match code {
            1 => Ok(Role::Patient),
            2 => Ok(Role::Doctor),
            3 => Ok(Role::DiagnosticCenter),
            other => Err(ValidationError::new(
                "role code",
                other,
                "expected 1, 2 or 3",
            )),
        }
    }
}

impl FromStr for Role {
    type Err = ValidationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "patient" => Ok(Role::Patient),
            "doctor" => Ok(Role::Doctor),
            "diagnostic-center" | "diagnostic" => Ok(Role::DiagnosticCenter),
            _ => Err(ValidationError::new(
                "role",
                s,
                "expected patient, doctor or diagnostic-center",
            )),
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A 20-byte EVM account address; never the zero address. Displays with its
/// EIP-55 checksum; parsing accepts all-lowercase, all-uppercase or correctly
/// checksummed hex and rejects a wrong checksum.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct WalletAddress(Address);

impl WalletAddress {
    /// Wraps an address, refusing the zero address.
    pub fn new(address: Address) -> Result<Self, ValidationError> {
        if address.is_zero() {
            Err(ValidationError::new(
                "wallet address",
                address,
                "the zero address cannot own anything",
            ))
        } else {
            Ok(Self(address))
        }
    }

    /// The underlying address.
    pub fn address(self) -> Address {
        self.0
    }
}

impl FromStr for WalletAddress {
    type Err = ValidationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let hex = s.strip_prefix("0x").ok_or_else(|| {
            ValidationError::new("wallet address", s, "expected 0x followed by 40 hex digits")
        })?;
        if hex.len() != 40 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(ValidationError::new(
                "wallet address",
                s,
                "expected 0x followed by 40 hex digits",
            ));
        }
        let mixed = hex.bytes().any(|b| b.is_ascii_lowercase())
            && hex.bytes().any(|b| b.is_ascii_uppercase());
        let address = if mixed {
            Address::parse_checksummed(s, None).map_err(|_| {
                ValidationError::new(
                    "wallet address",
                    s,
                    "mixed-case address fails its EIP-55 checksum",
                )
            })?
        } else {
            s.parse::<Address>().map_err(|_| {
                ValidationError::new("wallet address", s, "expected 0x followed by 40 hex digits")
            })?
        };
        Self::new(address)
    }
}

impl TryFrom<String> for WalletAddress {
    type Error = ValidationError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<WalletAddress> for String {
    fn from(w: WalletAddress) -> String {
        w.to_string()
    }
}

impl fmt::Display for WalletAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.to_checksum(None))
    }
}

impl fmt::Debug for WalletAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WalletAddress({self})")
    }
}

/// A point in time as whole seconds since the Unix epoch, the resolution of
/// an EVM block timestamp.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
#[serde(transparent)]
pub struct Timestamp(pub u64);

impl Timestamp {
    /// The current wall-clock time.
    pub fn now() -> Self {
        Self(u64::try_from(chrono::Utc::now().timestamp()).unwrap_or(0))
    }

    /// Seconds since the Unix epoch.
    pub fn secs(self) -> u64 {
        self.0
    }

    /// The calendar date (UTC) of this instant.
    pub fn date(self) -> chrono::NaiveDate {
        i64::try_from(self.0)
            .ok()
            .and_then(|s| chrono::DateTime::from_timestamp(s, 0))
            .map(|t| t.date_naive())
            .unwrap_or(chrono::NaiveDate::MAX)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A medical record id in the seed's form `record-<patientHH>-<digits>`,
/// e.g. `record-555555-1234567890`. The digits are 1 to 20 decimals without a
/// leading zero (a millisecond timestamp in the seed's flows).
///
/// The ledger takes a record id only from the provider whose HH number
/// leads its digits ([`RecordId::for_creator`]: the creator's HH number,
/// then 13 digits of its own choosing, such as a millisecond timestamp), so
/// no provider can take another's ids first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RecordId {
    patient: HhNumber,
    serial: u64,
}

impl RecordId {
    /// The id for a record of `patient` created at `unix_millis`.
    pub fn new(patient: HhNumber, unix_millis: u64) -> Self {
        Self {
            patient,
            serial: unix_millis,
        }
    }

    /// How far the creator's HH number is shifted in a ledger record id's
    /// digits: 13 decimal digits stay the creator's own.
    pub const CREATOR_SHIFT: u64 = 10_000_000_000_000;

    /// The id of a record of `patient` created by `creator`, numbered `n`
    /// by the creator (below 10^13, e.g. a millisecond timestamp):
    /// `record-<patient>-<creator><n, 13 digits>`.
    pub fn for_creator(
        patient: HhNumber,
        creator: HhNumber,
        n: u64,
    ) -> Result<Self, ValidationError> {
        if n >= Self::CREATOR_SHIFT {
            return Err(ValidationError::new(
                "record number",
                n,
                "must be below 10^13 (13 digits follow the creator's HH number)",
            ));
        }
        Ok(Self {
            patient,
            serial: u64::from(creator.get()) * Self::CREATOR_SHIFT + n,
        })
    }

    /// Whether this id lies in `creator`'s namespace (its digits start with
    /// the creator's HH number, then 13 more).
    pub fn is_of_creator(self, creator: HhNumber) -> bool {
        self.serial / Self::CREATOR_SHIFT == u64::from(creator.get())
    }

    /// The patient the record belongs to.
    pub fn patient(self) -> HhNumber {
        self.patient
    }

    /// The numeric suffix.
    pub fn serial(self) -> u64 {
        self.serial
    }
}

impl FromStr for RecordId {
    type Err = ValidationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let rule = "expected record-<6-digit HH number>-<1 to 20 digits>";
        let err = || ValidationError::new("record id", s, rule);
        let rest = s.strip_prefix("record-").ok_or_else(err)?;
        let (hh, serial) = rest.split_once('-').ok_or_else(err)?;
        let patient: HhNumber = hh.parse().map_err(|_| err())?;
        let digits_ok = !serial.is_empty()
            && serial.len() <= 20
            && serial.bytes().all(|b| b.is_ascii_digit())
            && (serial == "0" || !serial.starts_with('0'));
        if !digits_ok {
            return Err(err());
        }
        let serial = serial.parse::<u64>().map_err(|_| err())?;
        Ok(Self { patient, serial })
    }
}

impl TryFrom<String> for RecordId {
    type Error = ValidationError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<RecordId> for String {
    fn from(id: RecordId) -> String {
        id.to_string()
    }
}

impl fmt::Display for RecordId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "record-{}-{}", self.patient, self.serial)
    }
}

/// An IPFS content identifier: CIDv0 (`Qm…`, base58btc sha2-256 dag-pb) or
/// CIDv1 in any multibase. Displays in its canonical form (base58btc for v0,
/// base32 lowercase for v1).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Cid(cid::Cid);

impl Cid {
    /// Wraps a parsed `cid::Cid`.
    pub fn from_inner(inner: cid::Cid) -> Self {
        Self(inner)
    }

    /// The underlying `cid::Cid`.
    pub fn inner(&self) -> &cid::Cid {
        &self.0
    }

    /// The binary form of the CID.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.0.to_bytes()
    }

    /// Parses the binary form of a CID.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, ValidationError> {
        cid::Cid::try_from(bytes).map(Self).map_err(|e| {
            ValidationError::new("CID", alloy_primitives::hex::encode(bytes), e.to_string())
        })
    }
}

impl FromStr for Cid {
    type Err = ValidationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() || s.len() > 512 || s.trim() != s {
            return Err(ValidationError::new(
                "CID",
                s,
                "expected a CIDv0 (Qm…) or multibase CIDv1 without surrounding whitespace",
            ));
        }
        cid::Cid::try_from(s)
            .map(Self)
            .map_err(|e| ValidationError::new("CID", s, format!("not a valid CID: {e}")))
    }
}

impl TryFrom<String> for Cid {
    type Error = ValidationError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Cid> for String {
    fn from(c: Cid) -> String {
        c.to_string()
    }
}

impl fmt::Display for Cid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl fmt::Debug for Cid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Cid({})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hh_numbers_from_the_seed_parse() {
        for s in ["555555", "112233", "444444", "100000", "999999"] {
            assert_eq!(s.parse::<HhNumber>().unwrap().to_string(), s);
        }
    }

    #[test]
    fn malformed_hh_numbers_are_rejected_with_the_rule() {
        for s in [
            "55555",
            "5555555",
            "012345",
            "abc",
            "-1",
            " 555555",
            "555555 ",
            "",
            "+55555",
            "５５５５５５",
        ] {
            let err = s.parse::<HhNumber>().unwrap_err();
            assert_eq!(err.what, "HH number");
            assert!(err.rule.contains("6 decimal digits"), "{err}");
        }
        assert!(HhNumber::new(99_999).is_err());
        assert!(HhNumber::new(1_000_000).is_err());
    }

    #[test]
    fn roles_round_trip() {
        for role in Role::ALL {
            assert_eq!(role.as_str().parse::<Role>().unwrap(), role);
            assert_eq!(Role::from_code(role.code()).unwrap(), role);
        }
        assert!("admin".parse::<Role>().is_err());
        assert!(Role::from_code(0).is_err());
    }

    #[test]
    fn wallet_addresses_check_eip55() {
        let good = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed";
        let w: WalletAddress = good.parse().unwrap();
        assert_eq!(w.to_string(), good);
        assert_eq!(good.to_lowercase().parse::<WalletAddress>().unwrap(), w);
        let bad = "0x5aaEb6053F3E94C9b9A09f33669435E7Ef1BeAed";
        assert!(
            bad.parse::<WalletAddress>()
                .unwrap_err()
                .rule
                .contains("checksum")
        );
        assert!(
            "0x0000000000000000000000000000000000000000"
                .parse::<WalletAddress>()
                .is_err()
        );
        assert!(
            "5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"
                .parse::<WalletAddress>()
                .is_err()
        );
        assert!("0x5aAeb6053F3E94C9".parse::<WalletAddress>().is_err());
    }

    #[test]
    fn record_ids_parse_in_the_seed_form() {
        let id: RecordId = "record-555555-1234567890".parse().unwrap();
        assert_eq!(id.patient().get(), 555_555);
        assert_eq!(id.serial(), 1_234_567_890);
        assert_eq!(id.to_string(), "record-555555-1234567890");
        let hh = HhNumber::new(555_555).unwrap();
        assert_eq!(RecordId::new(hh, 42).to_string(), "record-555555-42");
        for bad in [
            "record-55555-1",
            "record-555555-",
            "record-555555-01",
            "rec-555555-1",
            "record-555555-1-2",
            "record-555555-123456789012345678901",
            "record-555555-99999999999999999999",
        ] {
            assert!(bad.parse::<RecordId>().is_err(), "{bad}");
        }
    }

    #[test]
    fn cids_parse_v0_and_v1() {
        let v0 = "QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH";
        assert_eq!(v0.parse::<Cid>().unwrap().to_string(), v0);
        let v1 = "bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi";
        assert_eq!(v1.parse::<Cid>().unwrap().to_string(), v1);
        let c: Cid = v1.parse().unwrap();
        assert_eq!(Cid::from_bytes(&c.to_bytes()).unwrap(), c);
        assert!("Qm123".parse::<Cid>().is_err());
        assert!(
            " QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH"
                .parse::<Cid>()
                .is_err()
        );
    }
}
