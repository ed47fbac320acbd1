//! The moving parts of a read and a write: [`Reader`] verifies and
//! decrypts a stored object a batch at a time, [`HashWorker`] computes a CID
//! beside the cipher, and [`Sink`] takes a new object's ciphertext to the
//! store before its CID is known.

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use healthledger_core::Cid;
use object_store::path::Path;
use object_store::{ObjectStoreExt, PutPayload, WriteMultipart};

use super::{BATCH, INLINE_HASH_LIMIT, PART_SIZE, PARTS_IN_FLIGHT, Vault};
use crate::error::{Error, Result};
use crate::keys::fill_random;
use crate::seal::Opener;
use crate::unixfs::CidHasher;

/// Reads and verifies one object, a batch of segments at a time.
pub(super) struct Reader {
    cid: Cid,
    opener: Option<Opener>,
    hasher: Option<HashWorker>,
    ciphertext: BoxStream<'static, Result<Bytes>>,
    /// A failure found after some segments of the same batch verified: those
    /// are released first, the failure on the next call.
    failed: Option<Error>,
}

impl Reader {
    /// A reader of `cid` decrypting with `opener` and hashing with `hasher`.
    pub(super) fn new(
        cid: Cid,
        opener: Opener,
        hasher: HashWorker,
        ciphertext: BoxStream<'static, Result<Bytes>>,
    ) -> Self {
        Self {
            cid,
            opener: Some(opener),
            hasher: Some(hasher),
            ciphertext,
            failed: None,
        }
    }

    /// Appends the next verified plaintext (about [`BATCH`] bytes) to `out`;
    /// `None` once the end was verified or a failure was reported. Nothing
    /// unverified is ever left in `out`; the segments that verified before a
    /// failure are released before it.
    pub(super) async fn fill(&mut self, out: &mut Vec<u8>) -> Option<Result<()>> {
        if let Some(e) = self.failed.take() {
            return Some(Err(e));
        }
        let start = out.len();
        match self.fill_batch(out).await {
            Some(Err(e)) if out.len() > start => {
                self.failed = Some(e);
                Some(Ok(()))
            }
            filled => filled,
        }
    }

    /// Everything, verified; nothing unless every segment and the CID
    /// verified. `size` is a capacity hint.
    pub(super) async fn read_all(mut self, size: u64) -> Result<Vec<u8>> {
        let mut plaintext = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
        while let Some(filled) = self.fill(&mut plaintext).await {
            filled?;
        }
        Ok(plaintext)
    }

    /// The verified plaintext as a stream of batches, ending with the first
    /// failure.
    pub(super) fn into_stream(self) -> BoxStream<'static, Result<Bytes>> {
        futures::stream::unfold(self, |mut reader| async move {
            let mut out = Vec::new();
            let filled = reader.fill(&mut out).await?;
            Some((filled.map(|()| Bytes::from(out)), reader))
        })
        .filter(|item| futures::future::ready(!matches!(item, Ok(b) if b.is_empty())))
        .boxed()
    }

    async fn fill_batch(&mut self, out: &mut Vec<u8>) -> Option<Result<()>> {
        let start = out.len();
        loop {
            let (Some(opener), Some(hasher)) = (self.opener.as_mut(), self.hasher.as_mut()) else {
                return None;
            };
            match self.ciphertext.next().await {
                Some(Ok(bytes)) => {
                    if let Err(e) = hasher.feed(bytes.clone()).await {
                        self.opener = None;
                        return Some(Err(e));
                    }
                    if let Err(reason) = opener.update(&bytes, out) {
                        self.opener = None;
                        return Some(Err(Error::tampered(self.cid, reason)));
                    }
                    if out.len() - start >= BATCH {
                        return Some(Ok(()));
                    }
                }
                Some(Err(e)) => {
                    self.opener = None;
                    return Some(Err(e));
                }
                None => {
                    let (Some(opener), Some(hasher)) = (self.opener.take(), self.hasher.take())
                    else {
                        return None;
                    };
                    if let Err(reason) = opener.finish(out) {
                        return Some(Err(Error::tampered(self.cid, reason)));
                    }
                    let found = match hasher.finish().await {
                        Ok(found) => found,
                        Err(e) => return Some(Err(e)),
                    };
                    if found != *self.cid.inner() {
                        return Some(Err(Error::CidMismatch {
                            cid: self.cid.to_string(),
                            found: found.to_string(),
                        }));
                    }
                    return Some(Ok(()));
                }
            }
        }
    }
}

/// Computes a CID beside the cipher: inline for small objects, on a
/// blocking worker thread for large ones, so hashing and encryption use
/// two cores.
pub(super) enum HashWorker {
    /// Hashing on the calling task (boxed: a hasher is far larger than the
    /// thread's handles).
    Inline(Box<CidHasher>),
    /// Hashing on a blocking thread, fed through a bounded channel.
    Thread {
        tx: tokio::sync::mpsc::Sender<Bytes>,
        task: tokio::task::JoinHandle<cid::Cid>,
    },
    /// Only while switching from one to the other.
    Moving,
}

impl HashWorker {
    /// Hashing on the calling task, until a large batch moves it to a
    /// thread.
    pub(super) fn inline(hasher: CidHasher) -> Self {
        Self::Inline(Box::new(hasher))
    }

    pub(super) fn for_size(hasher: CidHasher, size: u64) -> Self {
        if size > INLINE_HASH_LIMIT {
            Self::spawn(hasher)
        } else {
            Self::inline(hasher)
        }
    }

    pub(super) fn spawn(mut hasher: CidHasher) -> Self {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Bytes>(4);
        let task = tokio::task::spawn_blocking(move || {
            while let Some(bytes) = rx.blocking_recv() {
                hasher.update(&bytes);
            }
            hasher.finish()
        });
        Self::Thread { tx, task }
    }

    pub(super) async fn feed(&mut self, bytes: Bytes) -> Result<()> {
        if let Self::Inline(hasher) = self {
            if bytes.len() as u64 <= INLINE_HASH_LIMIT {
                hasher.update(&bytes);
                return Ok(());
            }
            if let Self::Inline(hasher) = std::mem::replace(self, Self::Moving) {
                *self = Self::spawn(*hasher);
            }
        }
        match self {
            Self::Thread { tx, .. } => tx
                .send(bytes)
                .await
                .map_err(|_| Error::Worker("the CID hashing thread stopped".to_owned())),
            Self::Inline(_) | Self::Moving => {
                Err(Error::Worker("the CID hasher was lost".to_owned()))
            }
        }
    }

    pub(super) async fn finish(self) -> Result<cid::Cid> {
        match self {
            Self::Inline(hasher) => Ok(hasher.finish()),
            Self::Thread { tx, task } => {
                drop(tx);
                task.await
                    .map_err(|e| Error::Worker(format!("the CID hashing thread failed: {e}")))
            }
            Self::Moving => Err(Error::Worker("the CID hasher was lost".to_owned())),
        }
    }
}

/// Where a new object's ciphertext goes while its CID is not yet known.
pub(super) enum Sink {
    /// Small so far: kept in memory, written with one `put` at the end.
    Buffer(Vec<Bytes>),
    /// Large: a multipart upload to `incoming/<random>`, renamed at the end.
    Upload { path: Path, writer: WriteMultipart },
}

impl Sink {
    pub(super) async fn write(&mut self, vault: &Vault, data: Bytes) -> Result<()> {
        match self {
            Self::Buffer(buf) => {
                buf.push(data);
                if buf.iter().map(Bytes::len).sum::<usize>() > PART_SIZE {
                    let mut name = [0u8; 16];
                    fill_random(&mut name)?;
                    let name: String = name.iter().map(|b| format!("{b:02x}")).collect();
                    let path = vault.incoming_location(&name);
                    let upload = vault
                        .store()
                        .put_multipart(&path)
                        .await
                        .map_err(|e| Error::store("put_multipart", &path, e))?;
                    let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_SIZE);
                    for bytes in buf.drain(..) {
                        writer.put(bytes);
                    }
                    *self = Self::Upload { path, writer };
                }
            }
            Self::Upload { path, writer } => {
                writer
                    .wait_for_capacity(PARTS_IN_FLIGHT)
                    .await
                    .map_err(|e| Error::store("put_multipart", path, e))?;
                writer.put(data);
            }
        }
        Ok(())
    }

    pub(super) async fn finish(self, vault: &Vault, object: &Path) -> Result<()> {
        match self {
            Self::Buffer(buf) => {
                vault
                    .store()
                    .put(object, buf.into_iter().collect::<PutPayload>())
                    .await
                    .map_err(|e| Error::store("put", object, e))?;
            }
            Self::Upload { path, writer } => {
                writer
                    .finish()
                    .await
                    .map_err(|e| Error::store("put_multipart", &path, e))?;
                vault
                    .store()
                    .rename(&path, object)
                    .await
                    .map_err(|e| Error::store("rename", &path, e))?;
            }
        }
        Ok(())
    }

    pub(super) async fn abort(self) {
        if let Self::Upload { path, writer } = self
            && let Err(e) = writer.abort().await
        {
            tracing::warn!(%path, error = %e, "aborting an unfinished upload failed");
        }
    }
}
