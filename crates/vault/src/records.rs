//! The key records in the key store, and how they are sealed and opened.
//!
//! Two kinds, all integers big-endian:
//!
//! **Subject record**, `subjects/<HH number>`: one per patient, the
//! patient's subject key wrapped by the KEK ([`crate::KeyProvider`]).
//!
//! | bytes | field                                            |
//! |-------|--------------------------------------------------|
//! | 4     | magic `HLSK`                                     |
//! | 1     | record version, `1`                              |
//! | 4     | the patient's HH number                          |
//! | 1     | length `n` of the KEK id                         |
//! | n     | KEK id (ASCII)                                   |
//! | 2     | length `m` of the wrapped key                    |
//! | m     | the subject key as the KEK wrapped it            |
//!
//! The KEK wraps with associated data `"healthledger-vault/subject/v1" ‖`
//! the record up to and including the KEK id, so a record moved to another
//! patient or relabelled with another KEK id does not unwrap.
//!
//! **Data key record**, `keys/<CID>`: one per object, its data key wrapped
//! by the patient's subject key with AES-256-GCM-SIV, and the CID profile
//! the object was addressed with.
//!
//! | bytes | field                                            |
//! |-------|--------------------------------------------------|
//! | 4     | magic `HLDK`                                     |
//! | 1     | record version, `1`                              |
//! | 4     | the patient's HH number                          |
//! | 1     | CID version (`0` or `1`)                         |
//! | 1     | raw leaves (`1`) or UnixFS leaves (`0`)          |
//! | 4     | chunk size                                       |
//! | 2     | most links per node                              |
//! | 12    | random nonce                                     |
//! | 48    | data key encrypted under the subject key, tag   |
//!
//! Associated data: `"healthledger-vault/data/v1" ‖ CID bytes ‖` the first
//! 17 bytes, so the patient and the profile are authenticated and a record
//! copied to another CID does not unwrap.
//!
//! Destroying a subject record leaves every data key record of that patient
//! unopenable: that is how one delete erases a patient.

use aes_gcm_siv::aead::AeadInOut;
use aes_gcm_siv::{Nonce, Tag};
use healthledger_core::HhNumber;

use crate::error::{Error, Result};
use crate::keyring::Keyring;
use crate::keys::{DataKey, KEY_LEN, KeyProvider, SecretKey, SubjectKey, fill_random};
use crate::unixfs::{CidOptions, CidVersion, MAX_LINKS};

const SUBJECT_MAGIC: &[u8; 4] = b"HLSK";
const DATA_MAGIC: &[u8; 4] = b"HLDK";
const VERSION: u8 = 1;
const SUBJECT_DOMAIN: &[u8] = b"healthledger-vault/subject/v1";
const DATA_DOMAIN: &[u8] = b"healthledger-vault/data/v1";
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
const DATA_HEADER_LEN: usize = 17;
/// Bytes of a data key record.
pub const DATA_RECORD_LEN: usize = DATA_HEADER_LEN + NONCE_LEN + KEY_LEN + TAG_LEN;

fn hh_of(bytes: &[u8]) -> Option<HhNumber> {
    let value = u32::from_be_bytes(bytes.get(..4)?.try_into().ok()?);
    HhNumber::new(value).ok()
}

/// A parsed subject record.
pub(crate) struct SubjectRecord<'a> {
    /// The patient it belongs to.
    pub(crate) patient: HhNumber,
    /// The id of the KEK that wrapped it.
    pub(crate) kek_id: String,
    aad: Vec<u8>,
    wrapped: &'a [u8],
}

impl<'a> SubjectRecord<'a> {
    /// Parses `record`, stored for `patient`.
    pub(crate) fn parse(record: &'a [u8], patient: HhNumber) -> Result<Self> {
        let bad = |why: String| Error::Tampered {
            object: format!("subject record of patient {patient}"),
            reason: why,
        };
        if record.len() < 10 || &record[..4] != SUBJECT_MAGIC {
            return Err(bad("it does not start with HLSK".into()));
        }
        if record[4] != VERSION {
            return Err(bad(format!(
                "record version {} is not the supported version {VERSION}",
                record[4]
            )));
        }
        if hh_of(&record[5..9]) != Some(patient) {
            return Err(bad("it names another patient".into()));
        }
        let n = usize::from(record[9]);
        let id_end = 10 + n;
        let Some(len) = record.get(id_end..id_end + 2) else {
            return Err(bad(format!("{} bytes end inside its header", record.len())));
        };
        let m = usize::from(u16::from_be_bytes([len[0], len[1]]));
        if record.len() != id_end + 2 + m {
            return Err(bad(format!(
                "{} bytes where its header announces {}",
                record.len(),
                id_end + 2 + m
            )));
        }
        let kek_id = std::str::from_utf8(&record[10..id_end])
            .map_err(|_| bad("its KEK id is not text".into()))?
            .to_owned();
        Ok(Self {
            patient,
            kek_id,
            aad: [SUBJECT_DOMAIN, &record[..id_end]].concat(),
            wrapped: &record[id_end + 2..],
        })
    }

    /// The subject key, unwrapped by the ring's KEK of the record's id;
    /// [`Error::MissingKek`] when the ring holds none.
    pub(crate) async fn open(&self, ring: &Keyring) -> Result<SubjectKey> {
        let kek = ring.get(&self.kek_id).ok_or_else(|| Error::MissingKek {
            key_id: self.kek_id.clone(),
            held: ring.ids(),
        })?;
        let key = kek.unwrap(self.wrapped, &self.aad).await?;
        SecretKey::from_slice(&key).ok_or_else(|| Error::WrongKek {
            key_id: self.kek_id.clone(),
            reason: format!(
                "the subject key of patient {} unwrapped to {} bytes, not {KEY_LEN}",
                self.patient,
                key.len()
            ),
        })
    }
}

/// Seals the subject key of `patient` under `kek`.
pub(crate) async fn seal_subject(
    kek: &dyn KeyProvider,
    patient: HhNumber,
    key: &SubjectKey,
) -> Result<Vec<u8>> {
    let id = kek.key_id();
    let mut record = Vec::with_capacity(12 + id.len() + 64);
    record.extend_from_slice(SUBJECT_MAGIC);
    record.push(VERSION);
    record.extend_from_slice(&patient.get().to_be_bytes());
    record.push(
        u8::try_from(id.len())
            .map_err(|_| Error::config("KEK id", id, "expected at most 64 characters"))?,
    );
    record.extend_from_slice(id.as_bytes());
    let aad = [SUBJECT_DOMAIN, &record[..]].concat();
    let wrapped = kek.wrap(key.bytes(), &aad).await?;
    let m = u16::try_from(wrapped.len()).map_err(|_| {
        Error::Worker(format!(
            "KEK {id:?} wrapped a key into {} bytes, more than a record holds",
            wrapped.len()
        ))
    })?;
    record.extend_from_slice(&m.to_be_bytes());
    record.extend_from_slice(&wrapped);
    Ok(record)
}

/// A parsed data key record.
pub(crate) struct DataRecord<'a> {
    /// The patient the object belongs to.
    pub(crate) patient: HhNumber,
    /// How the object's CID was computed.
    pub(crate) profile: CidOptions,
    record: &'a [u8],
}

impl<'a> DataRecord<'a> {
    /// Parses the data key record of `cid`.
    pub(crate) fn parse(record: &'a [u8], cid: &cid::Cid) -> Result<Self> {
        let bad = |why: String| Error::Tampered {
            object: format!("data key record of {cid}"),
            reason: why,
        };
        if record.len() != DATA_RECORD_LEN || &record[..4] != DATA_MAGIC {
            return Err(bad(format!(
                "expected {DATA_RECORD_LEN} bytes starting with HLDK, got {} bytes",
                record.len()
            )));
        }
        if record[4] != VERSION {
            return Err(bad(format!(
                "record version {} is not the supported version {VERSION}",
                record[4]
            )));
        }
        let patient = hh_of(&record[5..9]).ok_or_else(|| bad("it names no patient".into()))?;
        let cid_version = match record[9] {
            0 => CidVersion::V0,
            1 => CidVersion::V1,
            v => return Err(bad(format!("CID version {v} is neither 0 nor 1"))),
        };
        let chunk_size = u32::from_be_bytes([record[11], record[12], record[13], record[14]]);
        let max_links = u16::from_be_bytes([record[15], record[16]]);
        if usize::from(max_links) != MAX_LINKS {
            return Err(bad(format!(
                "its object was addressed with {max_links} links per node; this vault \
                 computes CIDs with {MAX_LINKS}"
            )));
        }
        let profile = CidOptions {
            cid_version,
            raw_leaves: record[10] == 1,
            chunk_size: chunk_size as usize,
        };
        profile
            .validate()
            .map_err(|e| bad(format!("its CID profile is not one Kubo makes: {e}")))?;
        Ok(Self {
            patient,
            profile,
            record,
        })
    }

    /// The data key, unwrapped by the patient's subject key.
    pub(crate) fn open(&self, subject: &SubjectKey, cid: &cid::Cid) -> Result<DataKey> {
        let (header, rest) = self.record.split_at(DATA_HEADER_LEN);
        let (nonce, rest) = rest.split_at(NONCE_LEN);
        let (body, tag) = rest.split_at(KEY_LEN);
        let bad = |why: &str| Error::Tampered {
            object: format!("data key record of {cid}"),
            reason: why.to_owned(),
        };
        let nonce = Nonce::try_from(nonce).map_err(|_| bad("the nonce has the wrong length"))?;
        let tag = Tag::try_from(tag).map_err(|_| bad("the tag has the wrong length"))?;
        let mut key =
            SecretKey::from_slice(body).ok_or_else(|| bad("the key has the wrong length"))?;
        subject
            .cipher()
            .decrypt_inout_detached(
                &nonce,
                &data_aad(cid, header),
                key.bytes_mut().as_mut_slice().into(),
                &tag,
            )
            .map_err(|_| {
                bad(
                    "it does not unwrap under its patient's subject key: damaged, or written \
                     for another CID or patient",
                )
            })?;
        Ok(key)
    }
}

fn data_aad(cid: &cid::Cid, header: &[u8]) -> Vec<u8> {
    [DATA_DOMAIN, &cid.to_bytes(), header].concat()
}

/// Seals the data key of `cid` (addressed with `profile`) for `patient`
/// under the patient's subject key.
pub(crate) fn seal_data(
    subject: &SubjectKey,
    patient: HhNumber,
    cid: &cid::Cid,
    profile: CidOptions,
    key: &DataKey,
) -> Result<Vec<u8>> {
    let mut record = Vec::with_capacity(DATA_RECORD_LEN);
    record.extend_from_slice(DATA_MAGIC);
    record.push(VERSION);
    record.extend_from_slice(&patient.get().to_be_bytes());
    record.push(match profile.cid_version {
        CidVersion::V0 => 0,
        CidVersion::V1 => 1,
    });
    record.push(u8::from(profile.raw_leaves));
    let chunk = u32::try_from(profile.chunk_size).map_err(|_| {
        Error::config(
            "CID chunk size",
            profile.chunk_size.to_string(),
            "must fit 32 bits",
        )
    })?;
    record.extend_from_slice(&chunk.to_be_bytes());
    let links = u16::try_from(MAX_LINKS).map_err(|_| {
        Error::config(
            "CID links per node",
            MAX_LINKS.to_string(),
            "must fit 16 bits",
        )
    })?;
    record.extend_from_slice(&links.to_be_bytes());
    let mut nonce = [0u8; NONCE_LEN];
    fill_random(&mut nonce)?;
    let aad = data_aad(cid, &record);
    let mut wrapped = zeroize::Zeroizing::new(*key.bytes());
    let tag = subject
        .cipher()
        .encrypt_inout_detached(&Nonce::from(nonce), &aad, wrapped.as_mut_slice().into())
        .map_err(|_| Error::Worker(format!("wrapping the data key of {cid} failed")))?;
    record.extend_from_slice(&nonce);
    record.extend_from_slice(wrapped.as_slice());
    record.extend_from_slice(tag.as_slice());
    Ok(record)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::Kek;

    fn cid(n: u8) -> cid::Cid {
        crate::compute_cid(&[n][..], CidOptions::KUBO_V1).unwrap()
    }

    fn hh(n: u32) -> HhNumber {
        HhNumber::new(n).unwrap()
    }

    #[tokio::test]
    async fn subject_records_open_only_for_their_patient_under_the_kek_they_name() {
        let kek = Kek::generate("k1").unwrap();
        let ring = Keyring::new(std::sync::Arc::new(kek.clone())).unwrap();
        let key = SecretKey::generate().unwrap();
        let record = seal_subject(&kek, hh(555_555), &key).await.unwrap();
        let parsed = SubjectRecord::parse(&record, hh(555_555)).unwrap();
        assert_eq!(parsed.kek_id, "k1");
        assert_eq!(parsed.open(&ring).await.unwrap().bytes(), key.bytes());
        assert!(matches!(
            SubjectRecord::parse(&record, hh(555_556)),
            Err(Error::Tampered { .. })
        ));
        let other = Keyring::new(std::sync::Arc::new(Kek::generate("k2").unwrap())).unwrap();
        assert!(matches!(
            parsed.open(&other).await,
            Err(Error::MissingKek { ref key_id, .. }) if key_id == "k1"
        ));
        let impostor = Keyring::new(std::sync::Arc::new(Kek::generate("k1").unwrap())).unwrap();
        assert!(matches!(
            parsed.open(&impostor).await,
            Err(Error::WrongKek { .. })
        ));
    }

    #[test]
    fn data_records_keep_their_profile_and_open_only_for_their_cid() {
        let subject = SecretKey::generate().unwrap();
        let key = SecretKey::generate().unwrap();
        let record = seal_data(&subject, hh(112_233), &cid(1), CidOptions::KUBO_V0, &key).unwrap();
        assert_eq!(record.len(), DATA_RECORD_LEN);
        let parsed = DataRecord::parse(&record, &cid(1)).unwrap();
        assert_eq!(
            (parsed.patient, parsed.profile),
            (hh(112_233), CidOptions::KUBO_V0)
        );
        assert_eq!(parsed.open(&subject, &cid(1)).unwrap().bytes(), key.bytes());
        let moved = DataRecord::parse(&record, &cid(2)).unwrap();
        assert!(matches!(
            moved.open(&subject, &cid(2)),
            Err(Error::Tampered { .. })
        ));
        let other_subject = SecretKey::generate().unwrap();
        assert!(matches!(
            parsed.open(&other_subject, &cid(1)),
            Err(Error::Tampered { .. })
        ));
        for byte in 0..record.len() {
            let mut flipped = record.clone();
            flipped[byte] ^= 1;
            let opened =
                DataRecord::parse(&flipped, &cid(1)).and_then(|r| r.open(&subject, &cid(1)));
            assert!(matches!(opened, Err(Error::Tampered { .. })), "byte {byte}");
        }
    }
}
