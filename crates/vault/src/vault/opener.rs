//! Decrypt anywhere: a sealed object fetched from elsewhere (an IPFS
//! gateway, a CAR file, a backup) opened with its key material, under the
//! same streaming verification as the vault's own reads: every segment's
//! tag, the order and the end of the segments, and at the end the CID.

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use futures::stream::{BoxStream, Stream, StreamExt};
use healthledger_core::Cid;

use super::Vault;
use super::io::Reader;
use crate::error::{Error, Result};
use crate::keyring::Keyring;
use crate::keys::{DataKey, KEY_LEN, KeyProvider, SecretKey};
use crate::records::{DataRecord, SubjectRecord};
use crate::seal::Opener;
use crate::unixfs::{CidHasher, CidOptions};

/// What opens one sealed object: its data key and the CID profile it was
/// addressed with. A secret: zeroized on drop, never printed.
pub struct ObjectKey {
    key: DataKey,
    profile: CidOptions,
}

impl fmt::Debug for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ObjectKey")
            .field("key", &"<redacted>")
            .field("profile", &self.profile)
            .finish()
    }
}

impl ObjectKey {
    /// The key from the bytes [`Self::data_key`] gave out and the profile.
    pub fn new(data_key: [u8; KEY_LEN], profile: CidOptions) -> Result<Self> {
        profile
            .validate()
            .map_err(|e| Error::config("CID profile", format!("{profile:?}"), &e.to_string()))?;
        let mut bytes = data_key;
        let key = SecretKey::from_slice(&bytes);
        zeroize::Zeroize::zeroize(&mut bytes);
        let key = key.ok_or_else(|| Error::Worker("a 32-byte key did not fit".to_owned()))?;
        Ok(Self { key, profile })
    }

    /// The key of `cid` from a copy of the key store (a backup): its data
    /// key record (`keys/<cid>`), its patient's subject record
    /// (`subjects/<HH>`) and the KEK the subject record names.
    pub async fn from_records(
        kek: Arc<dyn KeyProvider>,
        cid: &Cid,
        data_record: &[u8],
        subject_record: &[u8],
    ) -> Result<Self> {
        let data = DataRecord::parse(data_record, cid.inner())?;
        let subject = SubjectRecord::parse(subject_record, data.patient)?;
        let subject = subject.open(&Keyring::new(kek)?).await?;
        Ok(Self {
            key: data.open(&subject, cid.inner())?,
            profile: data.profile,
        })
    }

    /// The CID profile the object was addressed with.
    pub fn profile(&self) -> CidOptions {
        self.profile
    }

    /// The data key's bytes, to hand to whoever opens the object elsewhere
    /// (through [`Self::new`]). Whoever holds them reads the object until it
    /// is shredded everywhere they were copied: give them out as seldom as
    /// a plaintext.
    pub fn data_key(&self) -> &[u8; KEY_LEN] {
        self.key.bytes()
    }
}

/// A verifying reader of `ciphertext` claimed to be `cid`.
fn reader(
    cid: &Cid,
    key: &ObjectKey,
    ciphertext: impl Stream<Item = std::io::Result<Bytes>> + Send + 'static,
) -> Result<Reader> {
    let hasher = CidHasher::new(key.profile)
        .map_err(|e| Error::config("CID profile", format!("{:?}", key.profile), &e.to_string()))?;
    let ciphertext = ciphertext.map(|item| item.map_err(Error::Read)).boxed();
    Ok(Reader::new(*cid, Opener::new(&key.key), hasher, ciphertext))
}

/// The plaintext of the sealed object `cid`, whose stored bytes
/// `ciphertext` yields (fetched from anywhere), opened with `key`. Nothing
/// is returned unless every segment and the CID verified; a mismatch is
/// [`Error::Tampered`] or [`Error::CidMismatch`].
pub async fn open_sealed(
    cid: &Cid,
    key: &ObjectKey,
    ciphertext: impl Stream<Item = std::io::Result<Bytes>> + Send + 'static,
) -> Result<Bytes> {
    reader(cid, key, ciphertext)?.read_all(0).await
}

/// [`open_sealed`] as a stream: each chunk is released once its segments
/// authenticated, and a damaged object ends the stream with an error
/// (which, as for `get_stream`, invalidates what was yielded).
pub fn open_sealed_stream(
    cid: &Cid,
    key: &ObjectKey,
    ciphertext: impl Stream<Item = std::io::Result<Bytes>> + Send + 'static,
) -> Result<BoxStream<'static, Result<Bytes>>> {
    Ok(reader(cid, key, ciphertext)?.into_stream())
}

impl Vault {
    /// The key material of `cid` (see [`ObjectKey`]), for opening a copy of
    /// it elsewhere with [`open_sealed`]; refused like a read once it is
    /// shredded or its patient erased.
    pub async fn object_key(&self, cid: &Cid) -> Result<ObjectKey> {
        let (key, profile) = self.data_key(cid, None).await?;
        Ok(ObjectKey { key, profile })
    }
}
