//! Garbage collection: what a crash leaves behind, removed once it is older
//! than a grace period.
//!
//! A seal writes the ciphertext first and its data key record second, and
//! large objects go through `incoming/` before they are renamed under their
//! CID; a shred deletes its data key record before the ciphertext. A crash
//! between two of those steps leaves an upload nobody will finish, an object
//! without a key (it can never be decrypted), or a shredded object's
//! ciphertext. A put that is still running looks the same for a while, so
//! only leftovers older than the grace period are touched: it must exceed
//! the longest upload.
//!
//! Multipart uploads that never completed are not objects yet. On local
//! files object_store stages them as `incoming/<name>#<n>`, hidden from its
//! listings, so they are found on disk; on S3, GCS and Azure they are the
//! store's own (a lifecycle rule such as S3's
//! `AbortIncompleteMultipartUpload` expires them).

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::StreamExt;
use healthledger_core::Cid;
use object_store::path::Path;

use super::Vault;
use crate::error::{Error, Result};

/// What [`Vault::gc`] removed, and the leftovers it kept.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcReport {
    /// Abandoned uploads in `incoming/` (finished or staged), removed.
    pub uploads_removed: usize,
    /// Objects without a data key record or tombstone, removed: nothing
    /// could ever decrypt them.
    pub keyless_removed: usize,
    /// Shreds that had stopped before deleting the ciphertext, finished.
    pub shreds_finished: usize,
    /// Uploads younger than the grace period, kept (they may still run).
    pub young_uploads_kept: usize,
}

/// Milliseconds since the Unix epoch, `grace` ago.
fn cutoff(grace: Duration) -> i64 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .saturating_sub(grace);
    i64::try_from(now.as_millis()).unwrap_or(i64::MAX)
}

impl Vault {
    /// Removes what crashes left behind, older than `grace`: abandoned
    /// uploads, objects whose data key record was never written, and the
    /// ciphertext of shreds that stopped half-way (see the module
    /// documentation). Objects with a key record are never touched, nor are
    /// key records or tombstones. Refuses ([`Error::Config`]) to remove
    /// key-less objects when the key store holds no key record at all: a
    /// wrong key store URL would otherwise make every object look key-less.
    pub async fn gc(&self, grace: Duration) -> Result<GcReport> {
        let cutoff = cutoff(grace);
        let mut report = GcReport::default();
        self.gc_uploads(cutoff, &mut report).await?;
        self.gc_staged(cutoff, &mut report).await?;
        self.gc_objects(cutoff, &mut report).await?;
        tracing::info!(?report, ?grace, "vault garbage collected");
        Ok(report)
    }

    /// Finished uploads in `incoming/` that were never renamed.
    async fn gc_uploads(&self, cutoff: i64, report: &mut GcReport) -> Result<()> {
        let prefix = self.content.root.clone().join("incoming");
        let mut listing = self.store().list(Some(&prefix));
        let mut old = Vec::new();
        while let Some(meta) = listing.next().await {
            let meta = meta.map_err(|e| Error::store("list", &prefix, e))?;
            if meta.last_modified.timestamp_millis() <= cutoff {
                old.push(meta.location);
            } else {
                report.young_uploads_kept += 1;
            }
        }
        for path in old {
            Self::delete_if_present(self.store().as_ref(), &path).await?;
            report.uploads_removed += 1;
        }
        Ok(())
    }

    /// Staged multipart files of local stores (`incoming/<name>#<n>`),
    /// which object_store's listings hide.
    async fn gc_staged(&self, cutoff: i64, report: &mut GcReport) -> Result<()> {
        let Some(dir) = self.content_dir.as_ref().map(|d| d.join("incoming")) else {
            return Ok(());
        };
        let shown = dir.display().to_string();
        let (removed, young) = tokio::task::spawn_blocking(move || remove_staged(&dir, cutoff))
            .await
            .map_err(|e| Error::Worker(format!("cleaning {shown}: {e}")))?
            .map_err(|e| Error::Worker(format!("cleaning staged uploads in {shown}: {e}")))?;
        report.uploads_removed += removed;
        report.young_uploads_kept += young;
        Ok(())
    }

    /// Old objects under `objects/` without a data key record.
    async fn gc_objects(&self, cutoff: i64, report: &mut GcReport) -> Result<()> {
        let prefix = self.content.root.clone().join("objects");
        let mut listing = self.store().list(Some(&prefix));
        let mut keyless: Vec<(Cid, Path)> = Vec::new();
        while let Some(meta) = listing.next().await {
            let meta = meta.map_err(|e| Error::store("list", &prefix, e))?;
            if meta.last_modified.timestamp_millis() > cutoff {
                continue;
            }
            let Ok(cid) = meta.location.filename().unwrap_or_default().parse::<Cid>() else {
                continue;
            };
            if Self::exists(self.key_store().as_ref(), &self.key_location(&cid)).await? {
                continue;
            }
            if self.is_shredded(&cid).await? {
                // The shred got past its key record: finish it.
                Self::delete_if_present(self.store().as_ref(), &meta.location).await?;
                report.shreds_finished += 1;
            } else {
                keyless.push((cid, meta.location));
            }
        }
        if keyless.is_empty() {
            return Ok(());
        }
        if !self.key_store_holds_keys().await? {
            return Err(Error::config(
                "key store URL",
                self.keys_at.url.clone(),
                &format!(
                    "holds no key record, though {} objects are stored: is it this vault's \
                     key store? gc removed no object",
                    keyless.len()
                ),
            ));
        }
        for (cid, path) in keyless {
            // Looked at again: a put slower than the grace period may have
            // written its record meanwhile.
            if Self::exists(self.key_store().as_ref(), &self.key_location(&cid)).await? {
                continue;
            }
            Self::delete_if_present(self.store().as_ref(), &path).await?;
            tracing::warn!(%cid, "removed an object stored without its data key record");
            report.keyless_removed += 1;
        }
        Ok(())
    }

    /// Whether the key store holds any data key or subject record.
    async fn key_store_holds_keys(&self) -> Result<bool> {
        for dir in ["keys", "subjects"] {
            let prefix = self.keys_at.root.clone().join(dir);
            if let Some(first) = self.key_store().list(Some(&prefix)).next().await {
                first.map_err(|e| Error::store("list", &prefix, e))?;
                return Ok(true);
            }
        }
        Ok(false)
    }
}

/// Removes the staged upload files (`<name>#<digits>`) in `dir` last
/// modified at or before `cutoff` (milliseconds since the epoch): how many
/// were removed and how many kept. A missing directory holds none.
fn remove_staged(dir: &std::path::Path, cutoff: i64) -> std::io::Result<(usize, usize)> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((0, 0)),
        Err(e) => return Err(e),
    };
    let (mut removed, mut young) = (0, 0);
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        let staged = name
            .to_str()
            .and_then(|n| n.split_once('#'))
            .is_some_and(|(_, n)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
        let meta = entry.metadata()?;
        if !staged || !meta.is_file() {
            continue;
        }
        let modified = meta
            .modified()?
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis();
        if i64::try_from(modified).unwrap_or(i64::MAX) <= cutoff {
            let path: PathBuf = entry.path();
            match std::fs::remove_file(&path) {
                Ok(()) => removed += 1,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        } else {
            young += 1;
        }
    }
    Ok((removed, young))
}
