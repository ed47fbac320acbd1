//! Sealing: a patient's subject key (found, or created once), the content
//! encrypted and addressed, then its data key record.

use bytes::Bytes;
use futures::StreamExt;
use healthledger_core::{ByteStream, Cid, HhNumber, SealedObject};
use object_store::{ObjectStoreExt, PutMode, PutOptions, PutPayload};

use super::io::{HashWorker, Sink};
use super::{SEAL_BATCH, Vault};
use crate::error::{Error, Result};
use crate::keys::{DataKey, SecretKey, SubjectKey};
use crate::records::{SubjectRecord, seal_data, seal_subject};
use crate::seal::Sealer;
use crate::unixfs::CidHasher;

/// How often a subject record that vanished between "already exists" and
/// the read that follows (an erasure in between) is looked for again.
const SUBJECT_ATTEMPTS: usize = 3;

impl Vault {
    /// The subject key of `patient`, created (under the current KEK) if
    /// the patient has none yet; [`Error::Erased`] for an erased patient.
    async fn subject_key_for_write(&self, patient: HhNumber) -> Result<SubjectKey> {
        let path = self.subject_location(patient);
        let store = self.key_store();
        for _ in 0..SUBJECT_ATTEMPTS {
            if self.is_erased(patient).await? {
                return Err(Error::Erased(patient.to_string()));
            }
            if let Some(record) = Self::read_opt(store.as_ref(), &path).await? {
                return self.open_subject(patient, &record).await;
            }
            let key = SecretKey::generate()?;
            // Held until the record is stored, so that a rotation switching
            // KEKs meanwhile lists this record afterwards.
            let keys = self.keys.read().await;
            let record = seal_subject(keys.current().as_ref(), patient, &key).await?;
            let created = store
                .put_opts(
                    &path,
                    PutPayload::from(record),
                    PutOptions::from(PutMode::Create),
                )
                .await;
            drop(keys);
            match created {
                Ok(_) => {}
                // Another writer created it first: use theirs.
                Err(object_store::Error::AlreadyExists { .. }) => continue,
                Err(e) => return Err(Error::store("put", &path, e)),
            }
            // An erasure that ran between the look above and the create
            // must not leave a subject key behind.
            if self.is_erased(patient).await? {
                Self::delete_if_present(store.as_ref(), &path).await?;
                return Err(Error::Erased(patient.to_string()));
            }
            return Ok(key);
        }
        Err(Error::Erased(patient.to_string()))
    }

    /// Opens the subject record of `patient`.
    pub(super) async fn open_subject(
        &self,
        patient: HhNumber,
        record: &[u8],
    ) -> Result<SubjectKey> {
        let parsed = SubjectRecord::parse(record, patient)?;
        let keys = std::sync::Arc::clone(&*self.keys.read().await);
        match parsed.open(&keys).await {
            Err(Error::MissingKek { key_id, held }) => Err(self.missing_kek(key_id, held).await),
            opened => opened,
        }
    }

    /// Seals `input` for `patient` and stores it; the CID is known only at
    /// the end, so large objects go to `incoming/` first and are renamed.
    pub(super) async fn seal(
        &self,
        patient: HhNumber,
        mut input: ByteStream,
    ) -> Result<SealedObject> {
        let subject = self.subject_key_for_write(patient).await?;
        let key = DataKey::generate()?;
        let mut sealer = Sealer::new(&key)?;
        let hasher = CidHasher::new(self.cid_options).map_err(|e| {
            Error::config(
                "CID options",
                format!("{:?}", self.cid_options),
                &e.to_string(),
            )
        })?;
        let mut hasher = HashWorker::inline(hasher);
        let mut sink = Sink::Buffer(Vec::new());
        let mut out = sealer.header().to_vec();
        let mut size = 0u64;
        let mut stored = 0u64;
        let result: Result<()> = async {
            while let Some(chunk) = input.next().await {
                let chunk = chunk.map_err(Error::Input)?;
                size += chunk.len() as u64;
                for piece in chunk.chunks(SEAL_BATCH) {
                    sealer.update(piece, &mut out).map_err(Error::Worker)?;
                    if out.len() >= SEAL_BATCH {
                        let batch = Bytes::from(std::mem::replace(
                            &mut out,
                            Vec::with_capacity(2 * SEAL_BATCH),
                        ));
                        stored += batch.len() as u64;
                        hasher.feed(batch.clone()).await?;
                        sink.write(self, batch).await?;
                    }
                }
            }
            sealer.finish(&mut out).map_err(Error::Worker)?;
            let batch = Bytes::from(out);
            stored += batch.len() as u64;
            hasher.feed(batch.clone()).await?;
            sink.write(self, batch).await
        }
        .await;
        if let Err(e) = result {
            sink.abort().await;
            return Err(e);
        }
        let cid = Cid::from_inner(hasher.finish().await?);
        let object = self.object_location(&cid);
        sink.finish(self, &object).await?;
        let record = seal_data(&subject, patient, cid.inner(), self.cid_options, &key)?;
        let key_path = self.key_location(&cid);
        let written = self
            .key_store()
            .put(&key_path, PutPayload::from(record))
            .await
            .map_err(|e| Error::store("put", &key_path, e));
        let outcome = match written {
            // Erased while this object was sealed: its key is already
            // useless, and the object must not look readable.
            Ok(_) if self.is_erased(patient).await? => Err(Error::Erased(patient.to_string())),
            Ok(_) => Ok(()),
            Err(e) => Err(e),
        };
        if let Err(e) = outcome {
            // Without its key the ciphertext is useless: do not leave it.
            for path in [&key_path, &object] {
                let store = if path == &object {
                    self.store()
                } else {
                    self.key_store()
                };
                if let Err(cleanup) = Self::delete_if_present(store.as_ref(), path).await {
                    tracing::warn!(%cid, error = %cleanup, "removing a keyless object failed");
                }
            }
            return Err(e);
        }
        Ok(SealedObject {
            cid,
            size,
            stored_size: stored,
        })
    }
}
