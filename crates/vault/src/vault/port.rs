//! [`VaultPort`] for [`Vault`]: the port's acts over the reads, writes and
//! tombstones of the other modules.

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::{self, StreamExt};
use healthledger_core::{
    ByteStream, Cid, HhNumber, ObjectStatus, SealedObject, StoredObject, VaultError, VaultHealth,
    VaultPort, VaultResult,
};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

use super::io::on_cpu;
use super::{StoreAt, Vault};
use crate::error::Error;
use crate::records::DataRecord;
use crate::unixfs::CidHasher;

impl Error {
    /// Whether this says stored bytes or keys are damaged or unusable (what
    /// `verify` reports as `Corrupt`).
    fn is_damage(&self) -> bool {
        matches!(
            self,
            Self::Tampered { .. }
                | Self::WrongKek { .. }
                | Self::MissingKek { .. }
                | Self::RotationInProgress { .. }
                | Self::CidMismatch { .. }
                | Self::MissingKey(_)
        )
    }
}

/// Lists `dir` under `at`: fails when the store is unreachable, refuses the
/// credentials or its bucket does not exist.
async fn answers(at: &StoreAt, dir: &str) -> VaultResult<()> {
    let root: Path = at.root.clone().join(dir);
    at.store
        .list_with_delimiter(Some(&root))
        .await
        .map(drop)
        .map_err(|e| match e {
            object_store::Error::NotFound { .. } => {
                VaultError::Unavailable(format!("{}: the store was not found: {e}", at.url))
            }
            e => Error::store("list", &root, e).into(),
        })
}

#[async_trait]
impl VaultPort for Vault {
    async fn put(&self, patient: HhNumber, plaintext: Bytes) -> VaultResult<SealedObject> {
        Ok(self
            .seal(patient, stream::once(async { Ok(plaintext) }).boxed())
            .await?)
    }

    async fn put_stream(
        &self,
        patient: HhNumber,
        plaintext: ByteStream,
    ) -> VaultResult<SealedObject> {
        Ok(self.seal(patient, plaintext).await?)
    }

    async fn get(&self, patient: HhNumber, cid: &Cid) -> VaultResult<Bytes> {
        let (size, reader) = self.open(patient, cid).await?;
        // Nothing is returned unless every segment and the CID verified.
        Ok(reader.read_all(size).await?)
    }

    async fn get_stream(&self, patient: HhNumber, cid: &Cid) -> VaultResult<ByteStream> {
        let (_, reader) = self.open(patient, cid).await?;
        Ok(reader
            .into_stream()
            .map(|item| item.map_err(VaultError::from))
            .boxed())
    }

    async fn verify(&self, cid: &Cid) -> VaultResult<ObjectStatus> {
        if self.is_shredded(cid).await? {
            return Ok(ObjectStatus::Shredded);
        }
        let key_path = self.key_location(cid);
        let (_, mut ciphertext) = match self.ciphertext(cid).await {
            Ok(found) => found,
            Err(Error::NotFound(_)) => {
                return Ok(
                    if Self::exists(self.key_store().as_ref(), &key_path).await? {
                        ObjectStatus::Corrupt(
                            "its key record exists but its ciphertext is missing".into(),
                        )
                    } else {
                        ObjectStatus::Missing
                    },
                );
            }
            Err(e) => return Err(e.into()),
        };
        let Some(record) = Self::read_opt(self.key_store().as_ref(), &key_path).await? else {
            return Ok(ObjectStatus::Corrupt(
                Error::MissingKey(cid.to_string()).to_string(),
            ));
        };
        let profile = match DataRecord::parse(&record, cid.inner()) {
            Ok(parsed) if self.is_erased(parsed.patient).await? => {
                return Ok(ObjectStatus::Shredded);
            }
            Ok(parsed) => parsed.profile,
            Err(e) => return Ok(ObjectStatus::Corrupt(e.to_string())),
        };
        let mut hasher = CidHasher::new(profile)
            .map_err(|e| Error::config("CID profile", format!("{profile:?}"), &e.to_string()))?;
        while let Some(bytes) = ciphertext.next().await {
            let bytes = bytes?;
            // Hashed on every core, off the async worker.
            hasher = on_cpu(bytes.len(), move || {
                hasher.update(&bytes);
                hasher
            })
            .await?;
        }
        let found = hasher.finish();
        if found != *cid.inner() {
            let e = Error::CidMismatch {
                cid: cid.to_string(),
                found: found.to_string(),
            };
            return Ok(ObjectStatus::Corrupt(e.to_string()));
        }
        // The keys are checked by unwrapping them (no content is
        // decrypted); the key is zeroized right away.
        match self.data_key(cid, None).await {
            Ok(_) => Ok(ObjectStatus::Intact),
            Err(Error::Shredded(_)) => Ok(ObjectStatus::Shredded),
            Err(e) if e.is_damage() => Ok(ObjectStatus::Corrupt(e.to_string())),
            Err(e) => Err(e.into()),
        }
    }

    async fn shred(&self, cid: &Cid) -> VaultResult<()> {
        let keys = self.key_store().as_ref();
        let tombstone = self.tombstone_location(cid);
        let key_path = self.key_location(cid);
        let object = self.object_location(cid);
        if !Self::exists(keys, &tombstone).await? {
            if !Self::exists(keys, &key_path).await?
                && !Self::exists(self.store().as_ref(), &object).await?
            {
                return Err(Error::NotFound(cid.to_string()).into());
            }
            // The tombstone goes first: if the deletions fail half-way, the
            // object already reads as shredded, and shredding it again
            // (which is always allowed) finishes the job.
            keys.put(&tombstone, PutPayload::from_static(b"shredded\n"))
                .await
                .map_err(|e| Error::store("put", &tombstone, e))?;
        }
        Self::delete_if_present(keys, &key_path).await?;
        Self::delete_if_present(self.store().as_ref(), &object).await?;
        tracing::info!(%cid, "vault object shredded");
        Ok(())
    }

    async fn erase_patient(&self, patient: HhNumber) -> VaultResult<()> {
        let keys: &dyn ObjectStore = self.key_store().as_ref();
        let tombstone = self.erased_location(patient);
        // As with shredding, the tombstone goes first: from then on no read
        // unwraps the subject key and no write creates one, even if the
        // delete below fails (erasing again finishes it).
        keys.put(&tombstone, PutPayload::from_static(b"erased\n"))
            .await
            .map_err(|e| Error::store("put", &tombstone, e))?;
        Self::delete_if_present(keys, &self.subject_location(patient)).await?;
        tracing::info!(%patient, "vault patient erased");
        Ok(())
    }

    async fn health(&self) -> VaultResult<VaultHealth> {
        answers(&self.content, "objects").await?;
        answers(&self.keys_at, "subjects").await?;
        Ok(VaultHealth {
            backend: self.content.url.clone(),
            key_store: self.keys_at.url.clone(),
            key_id: self.key_id().await,
            erasure_horizon: self.erasure_horizon,
        })
    }

    async fn objects(&self, after: Option<Cid>, limit: usize) -> VaultResult<Vec<StoredObject>> {
        Ok(self.list_objects(after, limit).await?)
    }
}
