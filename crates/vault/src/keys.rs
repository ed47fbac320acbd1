//! The key hierarchy: a key-encryption key ([`Kek`]) from configuration
//! wraps one random data key per object; the wrapped key is stored apart from
//! the content as a small key record bound to the object's CID.
//!
//! Key record layout (all integers big-endian):
//!
//! | bytes | field                                            |
//! |-------|--------------------------------------------------|
//! | 4     | magic `HLVK`                                     |
//! | 1     | record version, `1`                              |
//! | 1     | length `n` of the KEK id                         |
//! | n     | KEK id (ASCII)                                   |
//! | 12    | random nonce                                     |
//! | 48    | data key encrypted under the KEK, then its tag   |
//!
//! The wrapping is AES-256-GCM-SIV with associated data
//! `"healthledger-vault/key/v1" ‖ CID bytes ‖ n ‖ KEK id`, so a record moved
//! to another CID, or relabelled with another key id, does not unwrap.

use std::fmt;

use aes_gcm_siv::aead::{AeadInOut, KeyInit};
use aes_gcm_siv::{Aes256GcmSiv, Nonce, Tag};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::error::{Error, Result};

/// Size of a KEK and of a data key.
pub const KEY_LEN: usize = 32;
const RECORD_MAGIC: &[u8; 4] = b"HLVK";
const RECORD_VERSION: u8 = 1;
const WRAP_DOMAIN: &[u8] = b"healthledger-vault/key/v1";
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
const MAX_KEY_ID_LEN: usize = 64;

/// Environment variable holding the KEK id for [`Kek::from_env`].
pub const KEK_ID_ENV: &str = "HEALTHLEDGER_VAULT_KEK_ID";
/// Environment variable holding the KEK as 64 hex digits for [`Kek::from_env`].
pub const KEK_ENV: &str = "HEALTHLEDGER_VAULT_KEK";

/// A key-encryption key: 32 secret bytes and a public id.
///
/// The bytes are zeroized on drop and never printed: `Debug` shows the id
/// only.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct Kek {
    #[zeroize(skip)]
    id: String,
    key: [u8; KEY_LEN],
}

impl Kek {
    /// A KEK named `id` (1 to 64 characters of `A-Z a-z 0-9 . _ -`).
    pub fn new(id: impl Into<String>, key: [u8; KEY_LEN]) -> Result<Self> {
        let id = id.into();
        let valid = !id.is_empty()
            && id.len() <= MAX_KEY_ID_LEN
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if !valid {
            return Err(Error::config(
                "KEK id",
                id,
                "expected 1 to 64 characters of A-Z, a-z, 0-9, '.', '_' or '-'",
            ));
        }
        Ok(Self { id, key })
    }

    /// A KEK named `id` from 64 hex digits.
    pub fn from_hex(id: impl Into<String>, hex: &str) -> Result<Self> {
        let id = id.into();
        let hex = hex.trim();
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        let digits = hex.as_bytes();
        let ok = digits.len() == 2 * KEY_LEN
            && digits.chunks(2).zip(key.iter_mut()).all(|(pair, out)| {
                match (hex_digit(pair[0]), hex_digit(pair[1])) {
                    (Some(hi), Some(lo)) => {
                        *out = hi << 4 | lo;
                        true
                    }
                    _ => false,
                }
            });
        if !ok {
            // The value is a secret: name its length, never its content.
            return Err(Error::config(
                "KEK for key id",
                id,
                &format!(
                    "expected exactly 64 hex digits (32 bytes), got {} characters",
                    hex.len()
                ),
            ));
        }
        Self::new(id, *key)
    }

    /// The KEK from [`KEK_ID_ENV`] and [`KEK_ENV`].
    pub fn from_env() -> Result<Self> {
        let id = std::env::var(KEK_ID_ENV)
            .map_err(|_| Error::config("environment variable", KEK_ID_ENV, "must be set"))?;
        let hex = Zeroizing::new(
            std::env::var(KEK_ENV)
                .map_err(|_| Error::config("environment variable", KEK_ENV, "must be set"))?,
        );
        Self::from_hex(id, &hex)
    }

    /// A fresh random KEK named `id`.
    pub fn generate(id: impl Into<String>) -> Result<Self> {
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        fill_random(key.as_mut())?;
        Self::new(id, *key)
    }

    /// The public id of this key.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Whether `other` has the same key bytes, compared in constant time.
    pub(crate) fn same_key(&self, other: &Kek) -> bool {
        // Hand-rolled rather than a crate for one comparison: OR of the XORs
        // of every byte, so the time does not depend on where they differ.
        self.key
            .iter()
            .zip(&other.key)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
    }

    fn cipher(&self) -> Aes256GcmSiv {
        Aes256GcmSiv::new(&self.key.into())
    }

    /// Wraps `data_key` for the object `cid` into a key record.
    pub(crate) fn wrap(&self, data_key: &DataKey, cid: &cid::Cid) -> Result<Vec<u8>> {
        let mut nonce = [0u8; NONCE_LEN];
        fill_random(&mut nonce)?;
        let aad = wrap_aad(cid, &self.id);
        let mut wrapped = Zeroizing::new(data_key.0);
        let tag = self
            .cipher()
            .encrypt_inout_detached(&Nonce::from(nonce), &aad, wrapped.as_mut_slice().into())
            .map_err(|_| Error::integrity(cid, "wrapping the data key failed"))?;
        let mut record = Vec::with_capacity(6 + self.id.len() + NONCE_LEN + KEY_LEN + TAG_LEN);
        record.extend_from_slice(RECORD_MAGIC);
        record.push(RECORD_VERSION);
        record.push(self.id.len() as u8);
        record.extend_from_slice(self.id.as_bytes());
        record.extend_from_slice(&nonce);
        record.extend_from_slice(wrapped.as_slice());
        record.extend_from_slice(tag.as_slice());
        Ok(record)
    }

    /// Unwraps the key record of `cid`.
    pub(crate) fn unwrap(&self, record: &[u8], cid: &cid::Cid) -> Result<DataKey> {
        let parsed = KeyRecord::parse(record).map_err(|reason| Error::integrity(cid, reason))?;
        if parsed.kek_id != self.id.as_bytes() {
            return Err(Error::integrity(
                cid,
                format!(
                    "its key record is wrapped under KEK id {:?}, this vault holds KEK id {:?} \
                     (was the KEK rotated, or is this the wrong key?)",
                    String::from_utf8_lossy(parsed.kek_id),
                    self.id
                ),
            ));
        }
        let aad = wrap_aad(cid, &self.id);
        let mut key = DataKey([0u8; KEY_LEN]);
        key.0.copy_from_slice(parsed.wrapped);
        let tag = Tag::try_from(parsed.tag)
            .map_err(|_| Error::integrity(cid, "key record tag has the wrong length"))?;
        let nonce = Nonce::try_from(parsed.nonce)
            .map_err(|_| Error::integrity(cid, "key record nonce has the wrong length"))?;
        self.cipher()
            .decrypt_inout_detached(&nonce, &aad, key.0.as_mut_slice().into(), &tag)
            .map_err(|_| {
                Error::integrity(
                    cid,
                    format!(
                        "its data key does not unwrap under KEK {:?}: the key record is damaged \
                         or was not written for this CID",
                        self.id
                    ),
                )
            })?;
        Ok(key)
    }
}

impl fmt::Debug for Kek {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Kek")
            .field("id", &self.id)
            .field("key", &"<redacted>")
            .finish()
    }
}

/// The KEKs a vault holds: the current one, which wraps every new record,
/// and the others, which only unwrap (those being rotated away from, or the
/// next one during a rotation run by another process). A record is unwrapped
/// by the KEK whose id it names, so a reader holding both KEKs of a rotation
/// reads every record whichever way the rotation has got.
#[derive(Clone)]
pub(crate) struct Keyring {
    current: Kek,
    others: Vec<Kek>,
}

impl Keyring {
    /// A keyring wrapping under `current` and also unwrapping under `others`;
    /// ids must be distinct.
    pub(crate) fn new(current: Kek, others: Vec<Kek>) -> Result<Self> {
        let mut ring = Self {
            current,
            others: Vec::new(),
        };
        for kek in others {
            ring.add(kek)?;
        }
        Ok(ring)
    }

    /// Adds a KEK for unwrapping; an id already in the ring is refused.
    pub(crate) fn add(&mut self, kek: Kek) -> Result<()> {
        if self.get(kek.id()).is_some() {
            return Err(Error::config(
                "KEK id",
                kek.id(),
                "each KEK of a vault needs its own id",
            ));
        }
        self.others.push(kek);
        Ok(())
    }

    /// The KEK new records are wrapped under.
    pub(crate) fn current(&self) -> &Kek {
        &self.current
    }

    /// Makes `new` current, keeping the previous current KEK for unwrapping.
    pub(crate) fn promote(&mut self, new: Kek) {
        self.others.retain(|k| k.id() != new.id());
        let old = std::mem::replace(&mut self.current, new);
        self.others.push(old);
    }

    /// The KEK named `id`, if the ring holds it.
    pub(crate) fn get(&self, id: &str) -> Option<&Kek> {
        std::iter::once(&self.current)
            .chain(&self.others)
            .find(|k| k.id() == id)
    }

    /// The ids of every KEK in the ring, the current one first.
    pub(crate) fn ids(&self) -> Vec<String> {
        std::iter::once(&self.current)
            .chain(&self.others)
            .map(|k| k.id().to_owned())
            .collect()
    }

    /// Unwraps the key record of `cid` under the KEK it names.
    pub(crate) fn unwrap(&self, record: &[u8], cid: &cid::Cid) -> Result<DataKey> {
        match record_kek_id(record).as_deref().and_then(|id| self.get(id)) {
            Some(kek) => kek.unwrap(record, cid),
            // A malformed record, or one under a KEK this vault does not
            // hold: the current KEK's unwrap says which.
            None => self.current.unwrap(record, cid),
        }
    }
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring")
            .field("current", &self.current.id())
            .field(
                "others",
                &self.others.iter().map(Kek::id).collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// The KEK id a key record names, without unwrapping it.
pub(crate) fn record_kek_id(record: &[u8]) -> Option<String> {
    KeyRecord::parse(record)
        .ok()
        .map(|r| String::from_utf8_lossy(r.kek_id).into_owned())
}

struct KeyRecord<'a> {
    kek_id: &'a [u8],
    nonce: &'a [u8],
    wrapped: &'a [u8],
    tag: &'a [u8],
}

impl<'a> KeyRecord<'a> {
    fn parse(record: &'a [u8]) -> std::result::Result<Self, String> {
        let malformed = |what: &str| format!("its key record is malformed: {what}");
        if record.len() < 6 || &record[..4] != RECORD_MAGIC {
            return Err(malformed("it does not start with HLVK"));
        }
        if record[4] != RECORD_VERSION {
            return Err(malformed(&format!(
                "record version {} is not the supported version {RECORD_VERSION}",
                record[4]
            )));
        }
        let id_len = record[5] as usize;
        let expected = 6 + id_len + NONCE_LEN + KEY_LEN + TAG_LEN;
        if record.len() != expected {
            return Err(malformed(&format!(
                "{} bytes where its header announces {expected}",
                record.len()
            )));
        }
        let (kek_id, rest) = record[6..].split_at(id_len);
        let (nonce, rest) = rest.split_at(NONCE_LEN);
        let (wrapped, tag) = rest.split_at(KEY_LEN);
        Ok(Self {
            kek_id,
            nonce,
            wrapped,
            tag,
        })
    }
}

fn wrap_aad(cid: &cid::Cid, kek_id: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(WRAP_DOMAIN.len() + 40 + 1 + kek_id.len());
    aad.extend_from_slice(WRAP_DOMAIN);
    aad.extend_from_slice(&cid.to_bytes());
    aad.push(kek_id.len() as u8);
    aad.extend_from_slice(kek_id.as_bytes());
    aad
}

/// One object's random data key; zeroized on drop, never printed.
#[derive(Zeroize, ZeroizeOnDrop)]
pub(crate) struct DataKey([u8; KEY_LEN]);

impl DataKey {
    /// A fresh random data key.
    pub(crate) fn generate() -> Result<Self> {
        let mut key = Self([0u8; KEY_LEN]);
        fill_random(&mut key.0)?;
        Ok(key)
    }

    pub(crate) fn cipher(&self) -> Aes256GcmSiv {
        Aes256GcmSiv::new(&self.0.into())
    }
}

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DataKey(<redacted>)")
    }
}

/// Fills `buf` from the operating system's random number generator.
pub(crate) fn fill_random(buf: &mut [u8]) -> Result<()> {
    getrandom::fill(buf).map_err(|e| Error::Random(e.to_string()))
}

fn hex_digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cid(n: u8) -> cid::Cid {
        crate::compute_cid(&[n][..], crate::CidOptions::KUBO_V1).unwrap()
    }

    #[test]
    fn records_unwrap_only_for_their_cid_and_kek() {
        let kek = Kek::generate("k1").unwrap();
        let key = DataKey::generate().unwrap();
        let record = kek.wrap(&key, &cid(1)).unwrap();
        assert_eq!(kek.unwrap(&record, &cid(1)).unwrap().0, key.0);
        assert!(matches!(
            kek.unwrap(&record, &cid(2)),
            Err(Error::Integrity { .. })
        ));
        let other = Kek::generate("k1").unwrap();
        assert!(matches!(
            other.unwrap(&record, &cid(1)),
            Err(Error::Integrity { .. })
        ));
        let renamed = Kek::new("k2", kek.key).unwrap();
        let err = renamed.unwrap(&record, &cid(1)).unwrap_err();
        assert!(matches!(err, Error::Integrity { .. }), "{err:?}");
        let err = err.to_string();
        assert!(err.contains("\"k1\"") && err.contains("\"k2\""), "{err}");
    }

    #[test]
    fn key_material_is_never_printed() {
        let kek = Kek::from_hex("prod-2026", &"ab".repeat(32)).unwrap();
        let shown = format!("{kek:?}");
        // 0xab is 171: the key's bytes in any Debug rendering of an array.
        assert!(
            shown.contains("prod-2026") && !shown.contains("171"),
            "{shown}"
        );
        assert_eq!(
            format!("{:?}", DataKey::generate().unwrap()),
            "DataKey(<redacted>)"
        );
        let err = Kek::from_hex("k", "secretsecret").unwrap_err();
        assert!(matches!(err, Error::Config { .. }), "{err:?}");
        let err = err.to_string();
        assert!(!err.contains("secret"), "{err}");
        assert!(err.contains("64 hex digits"), "{err}");
    }

    #[test]
    fn key_ids_follow_the_rule() {
        for bad in [String::new(), "a b".to_owned(), "x".repeat(65)] {
            let err = Kek::new(bad.clone(), [0; 32]).unwrap_err();
            assert!(matches!(err, Error::Config { .. }), "{bad:?}: {err:?}");
        }
        assert_eq!(Kek::new("x".repeat(64), [0; 32]).unwrap().id().len(), 64);
        assert_eq!(Kek::new("kek-1.v2_a", [0; 32]).unwrap().id(), "kek-1.v2_a");
    }
}
