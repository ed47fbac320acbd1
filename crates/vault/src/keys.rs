//! Keys: the key-encryption key behind the [`KeyProvider`] trait (a local
//! [`Kek`] first; a KMS or an HSM can stand in), and the secret keys below
//! it, one per patient (subject keys) and one per object (data keys). How
//! they are stored is in [`crate::records`].

use std::fmt;

use aes_gcm_siv::aead::{AeadInOut, KeyInit};
use aes_gcm_siv::{Aes256GcmSiv, Nonce, Tag};
use async_trait::async_trait;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::error::{Error, Result};

/// Size of a KEK, a subject key and a data key.
pub const KEY_LEN: usize = 32;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
const MAX_KEY_ID_LEN: usize = 64;
/// Bytes of what [`Kek`] wraps a 32-byte key into: nonce, key, tag.
const LOCAL_WRAPPED_LEN: usize = NONCE_LEN + KEY_LEN + TAG_LEN;

/// The key-encryption key: wraps and unwraps subject keys, bound to
/// associated data the vault chooses. Implemented by the local [`Kek`]; a
/// KMS or an HSM implements it by calling its own wrap and unwrap (AWS KMS
/// `Encrypt`/`Decrypt` with an encryption context, PKCS#11 `C_WrapKey`).
///
/// The vault stores what [`Self::wrap`] returns as it is, next to
/// [`Self::key_id`], and hands it back to [`Self::unwrap`] of the provider
/// with that id; it never looks inside. An implementation must fail
/// `unwrap` (with [`Error::WrongKek`]) when the bytes or the associated data
/// differ from what was wrapped, and must never put key material in its
/// errors or its `Debug` output.
#[async_trait]
pub trait KeyProvider: Send + Sync + fmt::Debug {
    /// The public id of the key, recorded beside everything it wraps
    /// (1 to 64 characters of `A-Z a-z 0-9 . _ -`).
    fn key_id(&self) -> &str;

    /// Wraps `key` (32 bytes) bound to `aad`.
    async fn wrap(&self, key: &[u8], aad: &[u8]) -> Result<Vec<u8>>;

    /// Unwraps what [`Self::wrap`] returned for the same `aad`.
    async fn unwrap(&self, wrapped: &[u8], aad: &[u8]) -> Result<Zeroizing<Vec<u8>>>;
}

/// Checks a key id against the rule every [`KeyProvider`] id follows.
pub fn check_key_id(id: &str) -> Result<()> {
    let valid = !id.is_empty()
        && id.len() <= MAX_KEY_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if valid {
        Ok(())
    } else {
        Err(Error::config(
            "KEK id",
            id,
            "expected 1 to 64 characters of A-Z, a-z, 0-9, '.', '_' or '-'",
        ))
    }
}

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
        check_key_id(&id)?;
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

    fn cipher(&self) -> Aes256GcmSiv {
        Aes256GcmSiv::new(&self.key.into())
    }
}

/// The local KEK wraps with AES-256-GCM-SIV under a random nonce:
/// `nonce (12) ‖ encrypted key ‖ tag (16)`.
#[async_trait]
impl KeyProvider for Kek {
    fn key_id(&self) -> &str {
        &self.id
    }

    async fn wrap(&self, key: &[u8], aad: &[u8]) -> Result<Vec<u8>> {
        let mut nonce = [0u8; NONCE_LEN];
        fill_random(&mut nonce)?;
        let mut wrapped = Zeroizing::new(key.to_vec());
        let tag = self
            .cipher()
            .encrypt_inout_detached(&Nonce::from(nonce), aad, wrapped.as_mut_slice().into())
            .map_err(|_| Error::Worker(format!("wrapping under KEK {:?} failed", self.id)))?;
        let mut out = Vec::with_capacity(NONCE_LEN + key.len() + TAG_LEN);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&wrapped);
        out.extend_from_slice(tag.as_slice());
        Ok(out)
    }

    async fn unwrap(&self, wrapped: &[u8], aad: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        let wrong = |why: &str| Error::WrongKek {
            key_id: self.id.clone(),
            reason: why.to_owned(),
        };
        if wrapped.len() != LOCAL_WRAPPED_LEN {
            return Err(wrong(&format!(
                "{} wrapped bytes where the local KEK writes {LOCAL_WRAPPED_LEN}",
                wrapped.len()
            )));
        }
        let (nonce, rest) = wrapped.split_at(NONCE_LEN);
        let (body, tag) = rest.split_at(KEY_LEN);
        let nonce = Nonce::try_from(nonce).map_err(|_| wrong("the nonce has the wrong length"))?;
        let tag = Tag::try_from(tag).map_err(|_| wrong("the tag has the wrong length"))?;
        let mut key = Zeroizing::new(body.to_vec());
        self.cipher()
            .decrypt_inout_detached(&nonce, aad, key.as_mut_slice().into(), &tag)
            .map_err(|_| {
                wrong("it does not unwrap: another key with this id, or damaged or moved bytes")
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

/// A 256-bit secret key below the KEK: a patient's subject key or an
/// object's data key. Zeroized on drop, never printed.
#[derive(Zeroize, ZeroizeOnDrop)]
pub(crate) struct SecretKey([u8; KEY_LEN]);

/// An object's data key.
pub(crate) type DataKey = SecretKey;
/// A patient's subject key.
pub(crate) type SubjectKey = SecretKey;

impl SecretKey {
    /// A fresh random key.
    pub(crate) fn generate() -> Result<Self> {
        let mut key = Self([0u8; KEY_LEN]);
        fill_random(&mut key.0)?;
        Ok(key)
    }

    /// The key from exactly [`KEY_LEN`] bytes.
    pub(crate) fn from_slice(bytes: &[u8]) -> Option<Self> {
        let mut key = Self([0u8; KEY_LEN]);
        (bytes.len() == KEY_LEN).then(|| {
            key.0.copy_from_slice(bytes);
            key
        })
    }

    /// The key's bytes, for wrapping.
    pub(crate) fn bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    /// The key's bytes, to unwrap in place.
    pub(crate) fn bytes_mut(&mut self) -> &mut [u8; KEY_LEN] {
        &mut self.0
    }

    pub(crate) fn cipher(&self) -> Aes256GcmSiv {
        Aes256GcmSiv::new(&self.0.into())
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey(<redacted>)")
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

    #[tokio::test]
    async fn the_local_kek_unwraps_only_its_own_wrapping_for_the_same_aad() {
        let kek = Kek::generate("k1").unwrap();
        let key = SecretKey::generate().unwrap();
        let wrapped = kek.wrap(key.bytes(), b"aad-1").await.unwrap();
        assert_eq!(
            &kek.unwrap(&wrapped, b"aad-1").await.unwrap()[..],
            key.bytes()
        );
        for (what, result) in [
            ("other aad", kek.unwrap(&wrapped, b"aad-2").await),
            (
                "other key, same id",
                Kek::generate("k1")
                    .unwrap()
                    .unwrap(&wrapped, b"aad-1")
                    .await,
            ),
            ("truncated", kek.unwrap(&wrapped[1..], b"aad-1").await),
        ] {
            assert!(
                matches!(result, Err(Error::WrongKek { ref key_id, .. }) if key_id == "k1"),
                "{what}: {result:?}"
            );
        }
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
            format!("{:?}", SecretKey::generate().unwrap()),
            "SecretKey(<redacted>)"
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
