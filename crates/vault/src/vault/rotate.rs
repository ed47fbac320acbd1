//! KEK rotation: every key record re-wrapped under a new KEK, safe beside
//! shredding and beside other processes on the same store.
//!
//! The ordering that keeps a shredded key from coming back:
//! - `shred` writes the tombstone before it deletes the key record;
//! - rotation rewrites a record only if it is unchanged since it was read
//!   (a conditional put on its e-tag, where the store offers one), skips a
//!   record whose CID has a tombstone (and deletes it, finishing that shred),
//!   and after each rewrite looks for a tombstone again, deleting the record
//!   it just wrote when one appeared.
//!
//! A shred that runs while a record is being rewritten therefore either
//! deletes the rewritten record itself (its delete comes after the rewrite),
//! or wrote its tombstone before its delete and so before the rewrite, which
//! the look after the rewrite sees. This holds on stores without conditional
//! puts too (a local file system), as long as reads see earlier writes, which
//! every object_store backend guarantees; the conditional put additionally
//! keeps two rotations from overwriting each other's fresher record.

use futures::StreamExt;
use healthledger_core::Cid;
use object_store::path::Path;
use object_store::{ObjectStoreExt, PutMode, PutOptions, PutPayload, UpdateVersion};

use super::{Rotation, Vault};
use crate::error::{Error, Result};
use crate::keys::{Kek, Keyring, record_kek_id};

/// How often a record that changed under the rotation is read again before
/// the rotation gives up on it.
const ATTEMPTS: usize = 4;

/// What happened to one key record.
enum Outcome {
    Rewrapped,
    AlreadyCurrent,
    Shredded,
}

impl Vault {
    /// Re-wraps every data key under `new`, leaving content untouched, and
    /// wraps every new record under `new` from the moment it starts.
    ///
    /// Reads never wait for it and never fail because of it: the vault keeps
    /// the previous KEK in its keyring for reading (and a vault configured
    /// with both KEKs, see [`super::VaultBuilder::previous_kek`], reads every
    /// record whichever KEK wraps it), so a rotation interrupted at any
    /// point breaks no read. Calling it again with the same KEK resumes:
    /// records already under `new` are checked and counted, not rewritten.
    /// A KEK with the id of one the vault holds but other key bytes is
    /// refused.
    ///
    /// Rotation is safe beside `shred` here and in other processes on the
    /// same store (see the module documentation): a shredded key is never
    /// written back. Once every process runs with `new` as its current KEK
    /// and a rotation finished, the old KEK can be destroyed; from then on
    /// it opens nothing.
    pub async fn rotate_kek(&self, new: Kek) -> Result<Rotation> {
        let ring = {
            let mut ring = self.keys.write().await;
            match ring.get(new.id()) {
                Some(held) if !held.same_key(&new) => {
                    return Err(Error::config(
                        "new KEK id",
                        new.id(),
                        "the vault already holds a KEK with this id and other key bytes",
                    ));
                }
                _ => {}
            }
            let from = ring.current().id().to_owned();
            if from != new.id() {
                let mut next = Keyring::clone(&ring);
                next.promote(new);
                *ring = std::sync::Arc::new(next);
            }
            tracing::info!(from, to = ring.current().id(), "vault KEK rotation started");
            // Writes hold the keyring for reading until their key record is
            // stored, so once this lock was had every record this vault
            // wraps under the old KEK is in the store, where the listing
            // below finds it.
            std::sync::Arc::clone(&ring)
        };
        let prefix = self.root.clone().join("keys");
        let mut listing = self.store.list(Some(&prefix));
        let mut report = Rotation {
            rewrapped: 0,
            already_current: 0,
            shredded: 0,
        };
        while let Some(meta) = listing.next().await {
            let meta = meta.map_err(|e| Error::store("list", &prefix, e))?;
            let Some(name) = meta.location.filename() else {
                continue;
            };
            let cid: Cid = name
                .parse()
                .map_err(|e| Error::integrity(name, format!("a key record names no CID: {e}")))?;
            match self.rotate_record(&ring, &cid, &meta.location).await? {
                Outcome::Rewrapped => report.rewrapped += 1,
                Outcome::AlreadyCurrent => report.already_current += 1,
                Outcome::Shredded => report.shredded += 1,
            }
        }
        tracing::info!(
            to = ring.current().id(),
            rewrapped = report.rewrapped,
            already_current = report.already_current,
            shredded = report.shredded,
            "vault KEK rotation finished"
        );
        Ok(report)
    }

    /// Brings the key record of `cid` at `path` under the ring's current KEK.
    async fn rotate_record(&self, ring: &Keyring, cid: &Cid, path: &Path) -> Result<Outcome> {
        let tombstone = self.tombstone_location(cid);
        for _ in 0..ATTEMPTS {
            if self.exists(&tombstone).await? {
                // A shred that stopped before its key delete: finish it.
                self.delete_if_present(path).await?;
                return Ok(Outcome::Shredded);
            }
            let got = match self.store.get(path).await {
                Ok(got) => got,
                // Deleted since it was listed: shredded meanwhile.
                Err(object_store::Error::NotFound { .. }) => return Ok(Outcome::Shredded),
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
            let current = ring.current();
            if record_kek_id(&record).as_deref() == Some(current.id()) {
                // Check it really unwraps under the new KEK before skipping.
                current.unwrap(&record, cid.inner())?;
                return Ok(Outcome::AlreadyCurrent);
            }
            let key = ring.unwrap(&record, cid.inner())?;
            let rewrapped = PutPayload::from(current.wrap(&key, cid.inner())?);
            if !self.put_unchanged(path, rewrapped, version).await? {
                // Someone changed or deleted it since it was read: look again.
                continue;
            }
            if self.exists(&tombstone).await? {
                // A shred ran while this record was rewritten: the record
                // just written must not outlive it.
                self.delete_if_present(path).await?;
                return Ok(Outcome::Shredded);
            }
            return Ok(Outcome::Rewrapped);
        }
        Err(Error::RotationContended {
            cid: cid.to_string(),
            attempts: ATTEMPTS,
        })
    }

    /// Replaces the object at `path` if it is still at `version`; `false`
    /// when it changed or is gone. Where the store has no conditional
    /// update (a local file system) it overwrites; the tombstone check
    /// after the write keeps that safe (see the module documentation).
    async fn put_unchanged(
        &self,
        path: &Path,
        payload: PutPayload,
        version: UpdateVersion,
    ) -> Result<bool> {
        use std::sync::atomic::Ordering;
        if self.conditional_updates.load(Ordering::Relaxed) {
            let opts = PutOptions::from(PutMode::Update(version));
            match self.store.put_opts(path, payload.clone(), opts).await {
                Ok(_) => return Ok(true),
                Err(
                    object_store::Error::Precondition { .. } | object_store::Error::NotFound { .. },
                ) => return Ok(false),
                Err(object_store::Error::NotImplemented { .. }) => {
                    tracing::debug!(
                        backend = %self.backend,
                        "the store has no conditional update; rotation overwrites and rechecks"
                    );
                    self.conditional_updates.store(false, Ordering::Relaxed);
                }
                Err(e) => return Err(Error::store("put", path, e)),
            }
        }
        // Without a conditional put, a record deleted since it was read must
        // not be written back.
        if !self.exists(path).await? {
            return Ok(false);
        }
        self.store
            .put(path, payload)
            .await
            .map_err(|e| Error::store("put", path, e))?;
        Ok(true)
    }
}
