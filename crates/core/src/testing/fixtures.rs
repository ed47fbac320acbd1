//! Fixtures: deterministic test wallets that can sign consent digests, and
//! valid sample profiles and records.

use std::fmt;

use alloy_primitives::{Address, B256, Signature};
use chrono::NaiveDate;
use k256::ecdsa::SigningKey;
use sha2::{Digest, Sha256};

use crate::{
    BloodGroup, Cid, ContentType, DateOfBirth, DiagnosticCenterProfile, DoctorProfile, Email,
    HhNumber, Label, Line, Name, NewRecord, PatientProfile, Profile, RecordId, RecordMeta,
    WalletAddress,
};

/// A wallet with a private key derived from a seed, for tests. Its `Debug`
/// shows only the address.
#[derive(Clone)]
pub struct TestWallet {
    key: SigningKey,
    address: WalletAddress,
}

impl TestWallet {
    /// The wallet whose key is SHA-256(`"healthledger test wallet"` ‖ seed).
    pub fn from_seed(seed: u64) -> Self {
        let mut counter = 0u8;
        loop {
            let digest = Sha256::new()
                .chain_update(b"healthledger test wallet")
                .chain_update(seed.to_be_bytes())
                .chain_update([counter])
                .finalize();
            if let Ok(key) = SigningKey::from_slice(&digest) {
                return Self::from_key(key);
            }
            counter = counter.wrapping_add(1);
        }
    }

    /// The wallet of a 32-byte private key, e.g. one of anvil's accounts.
    pub fn from_private_key(bytes: &[u8]) -> Option<Self> {
        SigningKey::from_slice(bytes).ok().map(Self::from_key)
    }

    fn from_key(key: SigningKey) -> Self {
        let address = Address::from_public_key(key.verifying_key());
        // A key whose address is zero cannot be derived from SHA-256 output
        // in practice; fall back to a fixed non-zero address to stay total.
        let address = WalletAddress::new(address).unwrap_or_else(|_| Self::fallback_address());
        Self { key, address }
    }

    fn fallback_address() -> WalletAddress {
        match WalletAddress::new(Address::repeat_byte(1)) {
            Ok(a) => a,
            Err(_) => unreachable!("a non-zero address is valid"),
        }
    }

    /// The wallet's address.
    pub fn address(&self) -> WalletAddress {
        self.address
    }

    /// The 32-byte private key (for configuring an adapter's signer).
    pub fn private_key(&self) -> B256 {
        B256::from_slice(&self.key.to_bytes())
    }

    /// Signs a 32-byte digest (no further hashing), as a wallet signs an
    /// EIP-712 digest.
    pub fn sign(&self, digest: B256) -> Signature {
        match self.key.sign_prehash_recoverable(digest.as_slice()) {
            Ok(sig) => Signature::from(sig),
            Err(e) => panic!("signing a 32-byte prehash cannot fail: {e}"),
        }
    }
}

impl fmt::Debug for TestWallet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TestWallet({})", self.address)
    }
}

fn hh(n: u32) -> HhNumber {
    HhNumber::new(n).unwrap_or_else(|e| panic!("fixture HH number: {e}"))
}

fn ok<T, E: fmt::Display>(r: Result<T, E>) -> T {
    r.unwrap_or_else(|e| panic!("fixture value: {e}"))
}

/// A valid patient profile for `hh` owned by `wallet`.
pub fn patient(hh_number: u32, wallet: WalletAddress, name: &str) -> Profile {
    Profile::Patient(PatientProfile {
        hh: hh(hh_number),
        wallet,
        name: ok(Name::new(name)),
        date_of_birth: ok(DateOfBirth::new(ok(
            NaiveDate::from_ymd_opt(1990, 4, 12).ok_or("date")
        ))),
        gender: ok(Label::new("female")),
        blood_group: BloodGroup::OPos,
        home_address: ok(Line::new("12 Lake Road, Pune")),
        email: ok(Email::new(format!("patient{hh_number}@example.org"))),
    })
}

/// A valid doctor profile.
pub fn doctor(hh_number: u32, wallet: WalletAddress, name: &str) -> Profile {
    Profile::Doctor(DoctorProfile {
        hh: hh(hh_number),
        wallet,
        name: ok(Name::new(name)),
        specialization: ok(Label::new("Cardiology")),
        hospital: ok(Line::new("City Hospital")),
        email: ok(Email::new(format!("doctor{hh_number}@example.org"))),
    })
}

/// A valid diagnostic-center profile.
pub fn diagnostic_center(hh_number: u32, wallet: WalletAddress, name: &str) -> Profile {
    Profile::DiagnosticCenter(DiagnosticCenterProfile {
        hh: hh(hh_number),
        wallet,
        name: ok(Name::new(name)),
        location: ok(Line::new("MG Road, Bengaluru")),
        email: ok(Email::new(format!("lab{hh_number}@example.org"))),
    })
}

/// A valid CIDv1 (raw, sha2-256) of `data`.
pub fn cid_of(data: &[u8]) -> Cid {
    let digest = Sha256::digest(data);
    match cid::multihash::Multihash::<64>::wrap(0x12, &digest) {
        Ok(mh) => Cid::from_inner(cid::Cid::new_v1(0x55, mh)),
        Err(e) => panic!("a 32-byte digest fits a multihash: {e}"),
    }
}

/// A record of `patient` with serial `serial`, created by `creator`.
pub fn record(
    patient: u32,
    serial: u64,
    creator: u32,
    test_name: &str,
    record_type: &str,
    date: NaiveDate,
) -> NewRecord {
    NewRecord {
        id: ok(RecordId::for_creator(hh(patient), hh(creator), serial)),
        creator: hh(creator),
        cid: cid_of(format!("{patient}-{serial}").as_bytes()),
        meta: RecordMeta {
            test_name: ok(Name::new(test_name)),
            record_type: ok(Label::new(record_type)),
            date,
            content_type: ok(ContentType::new("application/pdf")),
            size: 1024 + serial,
        },
    }
}

/// A calendar date, for fixtures.
pub fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    ok(NaiveDate::from_ymd_opt(y, m, d).ok_or("invalid fixture date"))
}

/// `count` patients with consecutive HH numbers from `first`, each owned by
/// the wallet seeded with its own HH number, all named `name`.
pub fn patients(first: u32, count: u32, name: &str) -> Vec<Profile> {
    (first..first + count)
        .map(|hh_number| {
            patient(
                hh_number,
                TestWallet::from_seed(u64::from(hh_number)).address(),
                name,
            )
        })
        .collect()
}

/// The wallet that registered fixture profiles in hand-built events (a
/// cache test's `LedgerEvent::registration(profile, fixtures::registrar())`).
pub fn registrar() -> WalletAddress {
    TestWallet::from_seed(0x7265_6769_7374_7261).address()
}
