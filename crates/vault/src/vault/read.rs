//! Opening: the checks in the order that keeps a half-finished shred or
//! erasure from releasing anything, then the verifying reader.

use std::sync::Arc;

use bytes::Bytes;
use futures::stream::{self, BoxStream, Stream, StreamExt};
use healthledger_core::{Cid, HhNumber};
use object_store::ObjectStoreExt;
use object_store::path::Path;

use super::READ_RANGE;
use super::Vault;
use super::io::Reader;
use super::sink::local_error;
use crate::buffer::Recycler;
use crate::error::{Error, Result};
use crate::keys::DataKey;
use crate::records::DataRecord;
use crate::seal::Opener;
use crate::unixfs::{CidHasher, CidOptions};

/// `stream` driven by a task of its own, two items ahead: a `buffered`
/// stream only reads on while it is polled, and the reader awaits each
/// batch's cipher and hashing job before it polls again, so without this
/// the next ranged read would wait for the job instead of running beside
/// it.
fn prefetched(
    mut stream: impl Stream<Item = Result<Bytes>> + Send + Unpin + 'static,
) -> BoxStream<'static, Result<Bytes>> {
    let (tx, rx) = tokio::sync::mpsc::channel(2);
    tokio::spawn(async move {
        while let Some(item) = stream.next().await {
            // The reader was dropped: stop reading.
            if tx.send(item).await.is_err() {
                break;
            }
        }
    });
    stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    })
    .boxed()
}

/// Ranged reads of a local file followed for reuse: the two queued, the
/// one being cut into a batch and the ones its job holds.
const LOCAL_READ_BUFFERS: usize = 6;

/// The `size` bytes of `file` (the object at `path`) in [`READ_RANGE`]
/// pieces, read by a blocking thread of its own two ahead of the reader.
///
/// The local store reads a range into a new, zero-filled buffer after
/// opening the file again; here the file is opened once and each range is
/// read into a buffer the reader let go of, so no pass over memory fills it
/// and no fresh memory is faulted in.
fn read_local(file: std::fs::File, path: Path, size: u64) -> BoxStream<'static, Result<Bytes>> {
    use std::os::unix::fs::FileExt;
    let (tx, rx) = tokio::sync::mpsc::channel(2);
    tokio::task::spawn_blocking(move || {
        let mut recycler = Recycler::new(LOCAL_READ_BUFFERS, READ_RANGE as usize);
        let mut offset = 0;
        while offset < size {
            let len = READ_RANGE.min(size - offset);
            let mut out = recycler.take();
            let item = match file.read_exact_at(out.slot(len as usize), offset) {
                Ok(()) => Ok(recycler.hand_out(out)),
                Err(e) => Err(Error::store("get", &path, local_error(e))),
            };
            let failed = item.is_err();
            // The reader was dropped, or this was the last item.
            if tx.blocking_send(item).is_err() || failed {
                break;
            }
            offset += len;
        }
    });
    stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    })
    .boxed()
}

impl Vault {
    /// The data key of `cid` and the CID profile it was addressed with, or
    /// why there is none.
    ///
    /// Tombstones are looked at before the records they guard: a shred and
    /// an erasure write theirs first, so one that stopped before its delete
    /// (or is still running) already keeps the content from being read.
    ///
    /// With `expected`, an object whose key record names another patient
    /// is [`Error::WrongPatient`] (once the record authenticated under the
    /// patient it names; a damaged record is [`Error::Tampered`]), and no
    /// content is ever decrypted for it.
    pub(super) async fn data_key(
        &self,
        cid: &Cid,
        expected: Option<HhNumber>,
    ) -> Result<(DataKey, CidOptions)> {
        if self.is_shredded(cid).await? {
            return Err(Error::Shredded(cid.to_string()));
        }
        let key_path = self.key_location(cid);
        let Some(record) = Self::read_opt(self.key_store().as_ref(), &key_path).await? else {
            return Err(if self.is_shredded(cid).await? {
                Error::Shredded(cid.to_string())
            } else if Self::exists(self.store().as_ref(), &self.object_location(cid)).await? {
                Error::MissingKey(cid.to_string())
            } else {
                Error::NotFound(cid.to_string())
            });
        };
        let record = DataRecord::parse(&record, cid.inner())?;
        let patient = record.patient;
        if let Some(expected) = expected
            && expected != patient
        {
            // The owner field is only authenticated by unwrapping: the
            // record is checked under the patient it names first, so a
            // damaged owner field reads as damage, not as another
            // patient's object. The key unwrapped is zeroized on drop and
            // nothing is decrypted.
            return Err(match Box::pin(self.data_key(cid, None)).await {
                Ok(_) => Error::WrongPatient {
                    cid: cid.to_string(),
                    expected,
                },
                Err(e) => e,
            });
        }
        if self.is_erased(patient).await? {
            return Err(Error::Shredded(cid.to_string()));
        }
        let subject_path = self.subject_location(patient);
        let Some(subject) = Self::read_opt(self.key_store().as_ref(), &subject_path).await? else {
            return Err(if self.is_erased(patient).await? {
                Error::Shredded(cid.to_string())
            } else {
                Error::tampered(
                    format!("subject record of patient {patient}"),
                    format!("it is missing, though object {cid} names it"),
                )
            });
        };
        let subject = self.open_subject(patient, &subject).await?;
        Ok((record.open(&subject, cid.inner())?, record.profile))
    }

    /// Checks that the keys of `cid` unwrap, without decrypting content:
    /// the CID profile the object was addressed with, or the typed reason
    /// it cannot be opened ([`Error::RotationInProgress`],
    /// [`Error::MissingKek`], [`Error::WrongKek`], [`Error::Tampered`],
    /// [`Error::MissingKey`], [`Error::Shredded`], [`Error::NotFound`]).
    pub async fn check_keys(&self, cid: &Cid) -> Result<CidOptions> {
        self.data_key(cid, None).await.map(|(_, profile)| profile)
    }

    /// The error for a record under KEK `key_id`, which this vault does not
    /// hold: a rotation in progress if the key store's rotation marker
    /// names that KEK, else a missing KEK.
    pub(super) async fn missing_kek(&self, key_id: String, held: Vec<String>) -> Error {
        let marker = Self::read_opt(self.key_store().as_ref(), &self.rotation_marker()).await;
        if let Ok(Some(marker)) = marker {
            let text = String::from_utf8_lossy(&marker);
            let mut lines = text.lines();
            if let (Some(from), Some(to)) = (lines.next(), lines.next())
                && (from == key_id || to == key_id)
            {
                return Error::RotationInProgress {
                    key_id,
                    from: from.to_owned(),
                    to: to.to_owned(),
                    held,
                };
            }
        }
        Error::MissingKek { key_id, held }
    }

    /// The stored ciphertext of `cid` as a stream.
    pub(super) async fn ciphertext(
        &self,
        cid: &Cid,
    ) -> Result<(u64, BoxStream<'static, Result<Bytes>>)> {
        let path = self.object_location(cid);
        if let Some(dir) = &self.content_dir {
            let file = dir.join("objects").join(cid.to_string());
            let opened = tokio::task::spawn_blocking(move || {
                let file = std::fs::File::open(file)?;
                let size = file.metadata()?.len();
                Ok::<_, std::io::Error>((file, size))
            })
            .await
            .map_err(|e| Error::Worker(format!("opening an object failed: {e}")))?;
            return match opened {
                Ok((file, size)) => Ok((size, read_local(file, path, size))),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    Err(Error::NotFound(cid.to_string()))
                }
                Err(e) => Err(Error::store("head", &path, local_error(e))),
            };
        }
        let size = match self.store().head(&path).await {
            Ok(meta) => meta.size,
            Err(object_store::Error::NotFound { .. }) => {
                return Err(Error::NotFound(cid.to_string()));
            }
            Err(e) => return Err(Error::store("head", &path, e)),
        };
        // Large ranged reads, two in flight: stores stream whole objects in
        // small pieces (8 KiB for local files), which would dominate.
        let store = Arc::clone(self.store());
        let ranges = (0..size.div_ceil(READ_RANGE))
            .map(move |i| i * READ_RANGE..((i + 1) * READ_RANGE).min(size));
        let stream = stream::iter(ranges)
            .map(move |range| {
                let store = Arc::clone(&store);
                let path = path.clone();
                async move {
                    store
                        .get_range(&path, range)
                        .await
                        .map_err(|e| Error::store("get", &path, e))
                }
            })
            .buffered(2);
        Ok((size, prefetched(stream)))
    }

    /// Opens `cid`, an object of `patient`: the data key, then a reader
    /// that verifies every segment and, at the end, the CID under the
    /// profile recorded for the object.
    pub(super) async fn open(&self, patient: HhNumber, cid: &Cid) -> Result<(u64, Reader)> {
        let (key, profile) = self.data_key(cid, Some(patient)).await?;
        let (size, ciphertext) = self.ciphertext(cid).await?;
        let hasher = CidHasher::new(profile)
            .map_err(|e| Error::config("CID profile", format!("{profile:?}"), &e.to_string()))?;
        Ok((
            size,
            Reader::new(*cid, Opener::new(&key), hasher, ciphertext),
        ))
    }
}
