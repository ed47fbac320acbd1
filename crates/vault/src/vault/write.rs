//! Sealing: a patient's subject key (found, or created once), the content
//! encrypted and addressed, then its data key record.

use bytes::Bytes;
use healthledger_core::{ByteStream, Cid, HhNumber, SealedObject};
use object_store::{ObjectStoreExt, PutMode, PutOptions, PutPayload};

use super::io::{Batches, on_cpu};
use super::sink::Sink;
use super::{BLOCK, SEAL_BATCH, SEAL_BUFFERS, Vault};
use crate::buffer::Recycler;
use crate::error::{Error, Result};
use crate::keys::{DataKey, SecretKey, SubjectKey};
use crate::records::{SubjectRecord, seal_data, seal_subject};
use crate::seal::Sealer;
use crate::unixfs::CidHasher;

/// What a seal's jobs carry from one batch to the next.
struct SealWork {
    sealer: Sealer,
    hasher: CidHasher,
}

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
    pub(super) async fn seal(&self, patient: HhNumber, input: ByteStream) -> Result<SealedObject> {
        let subject = self.subject_key_for_write(patient).await?;
        let key = DataKey::generate()?;
        let sealer = Sealer::new(&key)?;
        let hasher = CidHasher::new(self.cid_options).map_err(|e| {
            Error::config(
                "CID options",
                format!("{:?}", self.cid_options),
                &e.to_string(),
            )
        })?;
        let mut sink = Sink::Buffer(Vec::new());
        let mut size = 0u64;
        let mut stored = 0u64;
        let result: Result<cid::Cid> = async {
            let mut recycler = Recycler::aligned(SEAL_BUFFERS, SEAL_BATCH * 3 / 2);
            let mut out = recycler.take();
            out.extend_from_slice(sealer.header());
            let mut work = Box::new(SealWork { sealer, hasher });
            // Sealed and stored, hashed during the next job.
            let mut behind: Option<Bytes> = None;
            let mut input = Batches::new(input, SEAL_BATCH);
            loop {
                let (items, bytes, ended) = input.next().await.map_err(Error::Input)?;
                size += bytes as u64;
                let prev = behind.take();
                let hashing = prev.as_ref().map_or(0, Bytes::len);
                // The previous batch is hashed while this one is encrypted,
                // in one job over every core (see the io module).
                let (back, sealed, encrypted) = on_cpu(bytes + hashing, move || {
                    let (mut work, mut out) = (work, out);
                    let SealWork { sealer, hasher } = &mut *work;
                    let ((), encrypted) = rayon::join(
                        || prev.iter().for_each(|prev| hasher.update(prev)),
                        || {
                            items
                                .iter()
                                .try_for_each(|item| sealer.update(item, &mut out))
                        },
                    );
                    (work, out, encrypted)
                })
                .await?;
                encrypted.map_err(Error::Worker)?;
                work = back;
                if ended {
                    let SealWork { sealer, mut hasher } = *work;
                    let mut out = sealed;
                    let (cid, last) = on_cpu(out.len(), move || {
                        let finished = sealer.finish(&mut out);
                        hasher.update(out.as_slice());
                        finished.map(|()| (hasher.finish(), out))
                    })
                    .await?
                    .map_err(Error::Worker)?;
                    let last = recycler.hand_out(last);
                    stored += last.len() as u64;
                    sink.write(self, last).await?;
                    return Ok(cid);
                }
                // Whole blocks go to the store; the rest starts the next
                // batch, so that each batch begins and ends on a block
                // boundary of the object and a local upload writes it
                // straight to the disk (see `super::direct`).
                let whole = sealed.len() / BLOCK * BLOCK;
                out = if whole > 0 {
                    let mut sealed = sealed;
                    let mut next = recycler.take();
                    next.extend_from_slice(&sealed.as_slice()[whole..]);
                    sealed.truncate(whole);
                    let batch = recycler.hand_out(sealed);
                    stored += batch.len() as u64;
                    sink.write(self, batch.clone()).await?;
                    behind = Some(batch);
                    next
                } else {
                    sealed
                };
            }
        }
        .await;
        let cid = match result {
            Ok(cid) => Cid::from_inner(cid),
            Err(e) => {
                sink.abort().await;
                return Err(e);
            }
        };
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
