//! KEK rotation: every subject record re-wrapped under a new KEK (one per
//! patient; data key records sit below the subject keys and are not
//! touched), safe beside erasure and beside other processes on the same
//! key store.
//!
//! The ordering that keeps an erased subject key from coming back:
//! - `erase_patient` writes the patient's tombstone before it deletes the
//!   subject record;
//! - rotation rewrites a record only if it is unchanged since it was read
//!   (a conditional put on its e-tag, where the store offers one), skips a
//!   record whose patient has a tombstone (and deletes it, finishing that
//!   erasure), and after each rewrite looks for a tombstone again, deleting
//!   the record it just wrote when one appeared.
//!
//! An erasure that runs while a record is being rewritten therefore either
//! deletes the rewritten record itself (its delete comes after the rewrite),
//! or wrote its tombstone before its delete and so before the rewrite, which
//! the look after the rewrite sees. This holds on stores without conditional
//! puts too (a local file system), as long as reads see earlier writes, which
//! every object_store backend guarantees; the conditional put additionally
//! keeps two rotations from overwriting each other's fresher record.
//!
//! While it runs, the rotation names its two KEKs in the key store's
//! `rotation` marker, so that a reader holding only one of them reports
//! [`Error::RotationInProgress`] rather than a missing KEK.

use std::sync::Arc;

use futures::StreamExt;
use healthledger_core::HhNumber;
use object_store::path::Path;
use object_store::{ObjectStoreExt, PutMode, PutOptions, PutPayload, UpdateVersion};

use super::{Rotation, Vault};
use crate::error::{Error, Result};
use crate::keyring::Keyring;
use crate::keys::KeyProvider;
use crate::records::{SubjectRecord, seal_subject};

/// How often a record that changed under the rotation is read again before
/// the rotation gives up on it.
const ATTEMPTS: usize = 4;

/// What happened to one key record.
enum Outcome {
    Rewrapped,
    AlreadyCurrent,
    Erased,
}

impl Vault {
    /// Re-wraps every subject key under `new`, leaving content and data key
    /// records untouched, and wraps every new subject key under `new` from
    /// the moment it starts.
    ///
    /// Reads never wait for it and never fail because of it: the vault keeps
    /// the previous KEK in its keyring for reading (and a vault configured
    /// with both KEKs, see [`super::VaultBuilder::previous_kek`], reads every
    /// record whichever KEK wraps it), so a rotation interrupted at any
    /// point breaks no read. Calling it again with the same KEK resumes:
    /// records already under `new` are checked and counted, not rewritten.
    /// A KEK with the id of one the vault holds that does not unwrap what
    /// that one wraps is refused.
    ///
    /// Rotation is safe beside `erase_patient` here and in other processes
    /// on the same key store (see the module documentation): an erased
    /// subject key is never written back. Once every process runs with
    /// `new` as its current KEK and a rotation finished, the old KEK can be
    /// destroyed; from then on it opens nothing.
    pub async fn rotate_kek(&self, new: impl KeyProvider + 'static) -> Result<Rotation> {
        let new: Arc<dyn KeyProvider> = Arc::new(new);
        let (ring, from) = {
            let mut ring = self.keys.write().await;
            if !ring.agrees_with(new.as_ref()).await? {
                return Err(Error::config(
                    "new KEK id",
                    new.key_id(),
                    "the vault already holds a KEK with this id and other key bytes",
                ));
            }
            let from = ring.current().key_id().to_owned();
            if from != new.key_id() {
                let mut next = Keyring::clone(&ring);
                next.promote(Arc::clone(&new));
                *ring = Arc::new(next);
            }
            // Writes creating a subject record hold the keyring for reading
            // until it is stored, so once this lock was had every record this
            // vault wraps under the old KEK is in the store, where the
            // listing below finds it.
            (Arc::clone(&ring), from)
        };
        let to = ring.current().key_id().to_owned();
        let marker = self.rotation_marker();
        if from != to {
            self.key_store()
                .put(&marker, PutPayload::from(format!("{from}\n{to}\n")))
                .await
                .map_err(|e| Error::store("put", &marker, e))?;
        }
        tracing::info!(from, to, "vault KEK rotation started");
        let prefix = self.keys_at.root.clone().join("subjects");
        let mut listing = self.key_store().list(Some(&prefix));
        let mut report = Rotation {
            rewrapped: 0,
            already_current: 0,
            erased: 0,
        };
        while let Some(meta) = listing.next().await {
            let meta = meta.map_err(|e| Error::store("list", &prefix, e))?;
            let Some(name) = meta.location.filename() else {
                continue;
            };
            let patient: HhNumber = name.parse().map_err(|e| {
                Error::tampered(
                    format!("key store entry {}", meta.location),
                    format!("a subject record names no HH number: {e}"),
                )
            })?;
            match self.rotate_record(&ring, patient, &meta.location).await? {
                Outcome::Rewrapped => report.rewrapped += 1,
                Outcome::AlreadyCurrent => report.already_current += 1,
                Outcome::Erased => report.erased += 1,
            }
        }
        // Done: no record names a KEK other than `to` (as far as this
        // process wrote), so the marker goes. A rotation still running in
        // another process writes its own marker again when it resumes.
        Self::delete_if_present(self.key_store().as_ref(), &marker).await?;
        tracing::info!(
            to,
            rewrapped = report.rewrapped,
            already_current = report.already_current,
            erased = report.erased,
            "vault KEK rotation finished"
        );
        Ok(report)
    }

    /// Brings the subject record of `patient` at `path` under the ring's
    /// current KEK.
    async fn rotate_record(
        &self,
        ring: &Keyring,
        patient: HhNumber,
        path: &Path,
    ) -> Result<Outcome> {
        let store = self.key_store().as_ref();
        for _ in 0..ATTEMPTS {
            if self.is_erased(patient).await? {
                // An erasure that stopped before its delete: finish it.
                Self::delete_if_present(store, path).await?;
                return Ok(Outcome::Erased);
            }
            let got = match store.get(path).await {
                Ok(got) => got,
                // Deleted since it was listed: erased meanwhile.
                Err(object_store::Error::NotFound { .. }) => return Ok(Outcome::Erased),
                Err(e) => return Err(Error::store("get", path, e)),
            };
            let version = UpdateVersion {
                e_tag: got.meta.e_tag.clone(),
                version: got.meta.version.clone(),
            };
            let record = got
                .bytes()
                .await
                .map_err(|e| Error::store("get", path, e))?;
            let parsed = SubjectRecord::parse(&record, patient)?;
            let key = parsed.open(ring).await?;
            let current = ring.current();
            if parsed.kek_id == current.key_id() {
                // It unwrapped under the new KEK above: nothing to do.
                return Ok(Outcome::AlreadyCurrent);
            }
            let rewrapped = PutPayload::from(seal_subject(current.as_ref(), patient, &key).await?);
            if !self.put_unchanged(path, rewrapped, version).await? {
                // Someone changed or deleted it since it was read: look again.
                continue;
            }
            if self.is_erased(patient).await? {
                // An erasure ran while this record was rewritten: the record
                // just written must not outlive it.
                Self::delete_if_present(store, path).await?;
                return Ok(Outcome::Erased);
            }
            return Ok(Outcome::Rewrapped);
        }
        Err(Error::RotationContended {
            record: format!("subject record of patient {patient}"),
            attempts: ATTEMPTS,
        })
    }

    /// Replaces the record at `path` in the key store if it is still at
    /// `version`; `false` when it changed or is gone. Where the store has no
    /// conditional update (a local file system) it overwrites; the tombstone
    /// check after the write keeps that safe (see the module documentation).
    async fn put_unchanged(
        &self,
        path: &Path,
        payload: PutPayload,
        version: UpdateVersion,
    ) -> Result<bool> {
        use std::sync::atomic::Ordering;
        let store = self.key_store().as_ref();
        if self.conditional_updates.load(Ordering::Relaxed) {
            let opts = PutOptions::from(PutMode::Update(version));
            match store.put_opts(path, payload.clone(), opts).await {
                Ok(_) => return Ok(true),
                Err(
                    object_store::Error::Precondition { .. } | object_store::Error::NotFound { .. },
                ) => return Ok(false),
                Err(object_store::Error::NotImplemented { .. }) => {
                    tracing::debug!(
                        key_store = %self.keys_at.url,
                        "the key store has no conditional update; rotation overwrites and rechecks"
                    );
                    self.conditional_updates.store(false, Ordering::Relaxed);
                }
                Err(e) => return Err(Error::store("put", path, e)),
            }
        }
        // Without a conditional put, a record deleted since it was read must
        // not be written back.
        if !Self::exists(store, path).await? {
            return Ok(false);
        }
        store
            .put(path, payload)
            .await
            .map_err(|e| Error::store("put", path, e))?;
        Ok(true)
    }
}
