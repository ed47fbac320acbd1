//! [`Sink`]: where a new object's ciphertext goes while its CID is not yet
//! known. Small objects stay in memory and are written with one `put`;
//! large ones go to `incoming/<random>` and are renamed under their CID at
//! the end.
//!
//! On local files the upload is written by threads of the vault's own
//! rather than through object_store's multipart upload. On Linux they write
//! past the page cache (`super::direct`, which says why). Elsewhere, or on
//! a filesystem without direct I/O, the bytes go through the page cache,
//! and since object_store's upload fsyncs only when it completes (the
//! kernel would then hold the whole object dirty, and the final fsync wait
//! for all of it after the cipher and the hashing are done), a second
//! thread flushes what was written so far every [`WRITEBACK_EVERY`] bytes
//! while the first writes on. Either way the file is fsynced before it is
//! renamed, and the rename (object_store's) fsyncs the directory it lands
//! in.

use std::io::Write;
use std::path::PathBuf;

use bytes::Bytes;
use object_store::path::Path;
use object_store::{ObjectStoreExt, PutPayload, WriteMultipart};

use super::{PART_SIZE, PARTS_IN_FLIGHT, Vault};
use crate::error::{Error, Result};
use crate::keys::fill_random;

/// Bytes written to a local upload between two flushes.
const WRITEBACK_EVERY: usize = 16 * 1024 * 1024;
/// Batches queued for a local upload's writer thread: 16 MiB of seal
/// batches (as many bytes as four batches were at 4 MiB), so that a pause
/// of the writer (a flush in progress) does not stall the cipher at once.
const LOCAL_QUEUE: usize = 16;

/// Where a new object's ciphertext goes while its CID is not yet known.
pub(super) enum Sink {
    /// Small so far: kept in memory, written with one `put` at the end.
    Buffer(Vec<Bytes>),
    /// Large: a multipart upload to `incoming/<random>`, renamed at the end.
    Upload { path: Path, writer: WriteMultipart },
    /// Large, on local files: `incoming/<random>` written by a thread of
    /// its own (see the module docs), renamed at the end.
    Local {
        path: Path,
        file: PathBuf,
        tx: tokio::sync::mpsc::Sender<Bytes>,
        /// `None` once joined (after it stopped early).
        writer: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    },
}

/// An I/O error of a local upload, as the object store would report it.
pub(super) fn local_error(source: std::io::Error) -> object_store::Error {
    object_store::Error::Generic {
        store: "LocalFileSystem",
        source: Box::new(source),
    }
}

/// Writes what `rx` yields to a new file at `file` and fsyncs it at the
/// end: direct where it can (`super::direct`), else flushing every
/// [`WRITEBACK_EVERY`] bytes on a second thread.
fn write_local(
    file: &std::path::Path,
    mut rx: tokio::sync::mpsc::Receiver<Bytes>,
) -> std::io::Result<()> {
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir)?;
    }
    #[cfg(target_os = "linux")]
    if let super::direct::Opened::Direct(out) = super::direct::create(file)? {
        return super::direct::write(out, rx);
    }
    let mut out = std::fs::File::create_new(file)?;
    let flushed = out.try_clone()?;
    // At most one flush is asked for while one runs: the writer never
    // waits for the flusher, and asks again after the next stretch.
    let (flush, flushes) = std::sync::mpsc::sync_channel::<()>(1);
    std::thread::scope(|scope| {
        let flusher = scope.spawn(move || {
            while flushes.recv().is_ok() {
                flushed.sync_data()?;
            }
            Ok::<(), std::io::Error>(())
        });
        let mut since_flush = 0;
        let written = (|| {
            while let Some(bytes) = rx.blocking_recv() {
                out.write_all(&bytes)?;
                since_flush += bytes.len();
                if since_flush >= WRITEBACK_EVERY {
                    // Busy flushing still: the next flush takes this
                    // stretch too.
                    let _ = flush.try_send(());
                    since_flush = 0;
                }
            }
            Ok::<(), std::io::Error>(())
        })();
        drop(flush);
        let flushed = flusher
            .join()
            .unwrap_or_else(|_| Err(std::io::Error::other("the flushing thread panicked")));
        written.and(flushed)
    })?;
    out.sync_all()
}

impl Sink {
    pub(super) async fn write(&mut self, vault: &Vault, data: Bytes) -> Result<()> {
        let Self::Buffer(buf) = self else {
            return self.send(data).await;
        };
        buf.push(data);
        if buf.iter().map(Bytes::len).sum::<usize>() <= PART_SIZE {
            return Ok(());
        }
        let batches = std::mem::take(buf);
        *self = Self::upload(vault).await?;
        for bytes in batches {
            self.send(bytes).await?;
        }
        Ok(())
    }

    /// A new upload to `incoming/<random>`.
    async fn upload(vault: &Vault) -> Result<Self> {
        let mut name = [0u8; 16];
        fill_random(&mut name)?;
        let name: String = name.iter().map(|b| format!("{b:02x}")).collect();
        let path = vault.incoming_location(&name);
        if let Some(dir) = &vault.content_dir {
            let file = dir.join("incoming").join(&name);
            let (tx, rx) = tokio::sync::mpsc::channel(LOCAL_QUEUE);
            let target = file.clone();
            let writer = tokio::task::spawn_blocking(move || write_local(&target, rx));
            return Ok(Self::Local {
                path,
                file,
                tx,
                writer: Some(writer),
            });
        }
        let upload = vault
            .store()
            .put_multipart(&path)
            .await
            .map_err(|e| Error::store("put_multipart", &path, e))?;
        let writer = WriteMultipart::new_with_chunk_size(upload, PART_SIZE);
        Ok(Self::Upload { path, writer })
    }

    /// Passes `data` on to the upload.
    async fn send(&mut self, data: Bytes) -> Result<()> {
        match self {
            Self::Buffer(buf) => buf.push(data),
            Self::Upload { path, writer } => {
                writer
                    .wait_for_capacity(PARTS_IN_FLIGHT)
                    .await
                    .map_err(|e| Error::store("put_multipart", path, e))?;
                writer.put(data);
            }
            Self::Local {
                path, tx, writer, ..
            } => {
                if tx.send(data).await.is_err() {
                    // The writer stopped: its error says why.
                    let stopped = join_local(writer.take()).await;
                    let stopped = stopped.err().unwrap_or_else(|| {
                        local_error(std::io::Error::other("the writer stopped"))
                    });
                    return Err(Error::store("write", path, stopped));
                }
            }
        }
        Ok(())
    }

    pub(super) async fn finish(self, vault: &Vault, object: &Path) -> Result<()> {
        let staged = match self {
            Self::Buffer(buf) => {
                vault
                    .store()
                    .put(object, buf.into_iter().collect::<PutPayload>())
                    .await
                    .map_err(|e| Error::store("put", object, e))?;
                return Ok(());
            }
            Self::Upload { path, writer } => {
                writer
                    .finish()
                    .await
                    .map_err(|e| Error::store("put_multipart", &path, e))?;
                path
            }
            Self::Local {
                path, tx, writer, ..
            } => {
                drop(tx);
                join_local(writer)
                    .await
                    .map_err(|e| Error::store("write", &path, e))?;
                path
            }
        };
        vault
            .store()
            .rename(&staged, object)
            .await
            .map_err(|e| Error::store("rename", &staged, e))
    }

    pub(super) async fn abort(self) {
        match self {
            Self::Buffer(_) => {}
            Self::Upload { path, writer } => {
                if let Err(e) = writer.abort().await {
                    tracing::warn!(%path, error = %e, "aborting an unfinished upload failed");
                }
            }
            Self::Local {
                path,
                file,
                tx,
                writer,
            } => {
                drop(tx);
                let _ = join_local(writer).await;
                let removed =
                    tokio::task::spawn_blocking(move || match std::fs::remove_file(&file) {
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                        removed => removed,
                    })
                    .await;
                if let Ok(Err(e)) = removed {
                    tracing::warn!(%path, error = %e, "removing an unfinished upload failed");
                }
            }
        }
    }
}

/// The outcome of a local upload's writer thread (already joined: `None`).
async fn join_local(
    writer: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
) -> Result<(), object_store::Error> {
    let Some(writer) = writer else {
        return Err(local_error(std::io::Error::other("the writer stopped")));
    };
    match writer.await {
        Ok(written) => written.map_err(local_error),
        Err(e) => Err(local_error(std::io::Error::other(e))),
    }
}
