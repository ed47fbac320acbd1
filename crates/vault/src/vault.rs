//! [`Vault`]: the [`VaultPort`] implementation over any `object_store`.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::{self, BoxStream, StreamExt};
use healthledger_core::{
    ByteStream, Cid, ObjectStatus, SealedObject, VaultError, VaultHealth, VaultPort, VaultResult,
};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload, WriteMultipart};
use tokio::sync::RwLock;
use url::Url;

use crate::error::{Error, Result};
use crate::keys::{DataKey, Kek, fill_random, record_kek_id};
use crate::seal::{Opener, Sealer};
use crate::unixfs::{CidHasher, CidOptions, CidVersion};

/// Ciphertexts up to this size are written with one `put`; larger ones are
/// uploaded in parts of this size, so memory stays bounded.
const PART_SIZE: usize = 8 * 1024 * 1024;
/// Parts uploaded concurrently.
const PARTS_IN_FLIGHT: usize = 2;
/// Bytes handed out per stream item when reading back.
const BATCH: usize = 1024 * 1024;
/// Ciphertext bytes per batch when sealing: small enough that hashing one
/// batch overlaps with encrypting the next even for 1 MiB objects.
const SEAL_BATCH: usize = 256 * 1024;
/// Bytes per ranged read of a stored object; two are in flight.
const READ_RANGE: u64 = 4 * 1024 * 1024;
/// Objects are hashed on the calling task up to this size, and on a
/// blocking worker beside the cipher beyond it.
const INLINE_HASH_LIMIT: u64 = 256 * 1024;

/// Configures and opens a [`Vault`].
pub struct VaultBuilder {
    url: String,
    options: Vec<(String, String)>,
    kek: Option<Kek>,
    cid_options: CidOptions,
}

impl fmt::Debug for VaultBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Store options carry credentials: show their names only.
        let option_names: Vec<&str> = self.options.iter().map(|(k, _)| k.as_str()).collect();
        f.debug_struct("VaultBuilder")
            .field("url", &redact(&self.url))
            .field("options", &option_names)
            .field("kek", &self.kek)
            .field("cid_options", &self.cid_options)
            .finish()
    }
}

impl VaultBuilder {
    /// Sets the key-encryption key (required).
    pub fn kek(mut self, kek: Kek) -> Self {
        self.kek = Some(kek);
        self
    }

    /// Passes an option to the object store builder, such as
    /// `aws_endpoint`, `aws_allow_http` or `aws_access_key_id` (see
    /// `object_store::parse_url_opts`). Option values are never reported.
    pub fn option(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.options.push((key.into(), value.into()));
        self
    }

    /// How CIDs are computed; [`CidOptions::KUBO_V1`] unless set.
    pub fn cid_options(mut self, options: CidOptions) -> Self {
        self.cid_options = options;
        self
    }

    /// Opens the vault.
    pub fn build(self) -> Result<Vault> {
        let kek = self
            .kek
            .ok_or_else(|| Error::config("KEK", "(none)", "a vault needs a key-encryption key"))?;
        let url = Url::parse(&self.url).map_err(|e| {
            Error::config("vault URL", redact(&self.url), &format!("not a URL: {e}"))
        })?;
        let (store, root) = object_store::parse_url_opts(&url, self.options).map_err(|e| {
            // object_store quotes the URL as given, credentials included.
            let reason = e.to_string().replace(&self.url, &redact(&self.url));
            Error::config(
                "vault URL",
                redact(&self.url),
                &format!("no object store for it: {reason}"),
            )
        })?;
        Vault::with_store(
            Arc::from(store),
            root,
            redact(&self.url),
            kek,
            self.cid_options,
        )
    }
}

/// The URL without credentials, query or fragment.
fn redact(url: &str) -> String {
    match Url::parse(url) {
        Ok(mut parsed) => {
            let _ = parsed.set_username("");
            let _ = parsed.set_password(None);
            parsed.set_query(None);
            parsed.set_fragment(None);
            parsed.to_string()
        }
        Err(_) => "<unparseable URL>".to_owned(),
    }
}

/// Envelope-encrypted, IPFS-compatible content-addressed storage on an
/// object store. See the crate documentation for the format and layout.
pub struct Vault {
    store: Arc<dyn ObjectStore>,
    root: Path,
    backend: String,
    kek: RwLock<Kek>,
    cid_options: CidOptions,
}

impl fmt::Debug for Vault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Vault")
            .field("backend", &self.backend)
            .field("cid_options", &self.cid_options)
            .finish_non_exhaustive()
    }
}

/// What [`Vault::rotate_kek`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rotation {
    /// Key records re-wrapped under the new KEK.
    pub rewrapped: usize,
    /// Key records already under the new KEK (an interrupted rotation).
    pub already_current: usize,
}

impl Vault {
    /// Starts configuring a vault on the object store named by `url`:
    /// `file:///absolute/dir`, `memory://`, and with the matching feature
    /// `s3://bucket/prefix`, `gs://…`, `az://…`.
    pub fn builder(url: impl Into<String>) -> VaultBuilder {
        VaultBuilder {
            url: url.into(),
            options: Vec::new(),
            kek: None,
            cid_options: CidOptions::KUBO_V1,
        }
    }

    /// A vault on an already configured store, under `root`; `backend` is
    /// what [`VaultPort::health`] reports and must not contain credentials.
    pub fn with_store(
        store: Arc<dyn ObjectStore>,
        root: Path,
        backend: impl Into<String>,
        kek: Kek,
        cid_options: CidOptions,
    ) -> Result<Self> {
        cid_options.validate().map_err(|e| {
            Error::config("CID options", format!("{cid_options:?}"), &e.to_string())
        })?;
        Ok(Self {
            store,
            root,
            backend: backend.into(),
            kek: RwLock::new(kek),
            cid_options,
        })
    }

    /// Where the ciphertext of `cid` is stored: `<root>/objects/<cid>`.
    pub fn object_location(&self, cid: &Cid) -> Path {
        self.location("objects", &cid.to_string())
    }

    /// Where the wrapped data key of `cid` is stored: `<root>/keys/<cid>`.
    pub fn key_location(&self, cid: &Cid) -> Path {
        self.location("keys", &cid.to_string())
    }

    /// Where the tombstone of a shredded `cid` is stored:
    /// `<root>/shredded/<cid>`.
    pub fn tombstone_location(&self, cid: &Cid) -> Path {
        self.location("shredded", &cid.to_string())
    }

    /// The underlying object store.
    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    fn location(&self, dir: &str, name: &str) -> Path {
        self.root.clone().join(dir).join(name)
    }

    /// The id of the KEK in use.
    pub async fn key_id(&self) -> String {
        self.kek.read().await.id().to_owned()
    }

    /// Re-wraps every data key under `new`, leaving content untouched, then
    /// uses `new` from now on; the old KEK opens nothing afterwards. Reads
    /// and writes through this vault wait until the rotation is done. The
    /// new KEK needs a new id. A rotation that stops half-way (a damaged key
    /// record, a store error) can be resumed by calling it again with the
    /// same `new` KEK: records already under it are checked and skipped.
    pub async fn rotate_kek(&self, new: Kek) -> Result<Rotation> {
        let mut current = self.kek.write().await;
        if new.id() == current.id() {
            return Err(Error::config(
                "new KEK id",
                new.id(),
                "a rotated KEK needs an id different from the current one",
            ));
        }
        let prefix = self.root.clone().join("keys");
        let mut listing = self.store.list(Some(&prefix));
        let mut report = Rotation {
            rewrapped: 0,
            already_current: 0,
        };
        while let Some(meta) = listing.next().await {
            let meta = meta.map_err(|e| Error::store("list", &prefix, e))?;
            let Some(name) = meta.location.filename() else {
                continue;
            };
            let cid: Cid = name
                .parse()
                .map_err(|e| Error::integrity(name, format!("a key record names no CID: {e}")))?;
            let record = self.read_all(&meta.location).await?;
            let key = if record_kek_id(&record).as_deref() == Some(new.id()) {
                // Check it really unwraps under the new KEK before skipping.
                new.unwrap(&record, cid.inner())?;
                report.already_current += 1;
                continue;
            } else {
                current.unwrap(&record, cid.inner())?
            };
            let rewrapped = new.wrap(&key, cid.inner())?;
            self.store
                .put(&meta.location, PutPayload::from(rewrapped))
                .await
                .map_err(|e| Error::store("put", &meta.location, e))?;
            report.rewrapped += 1;
        }
        tracing::info!(
            from = current.id(),
            to = new.id(),
            rewrapped = report.rewrapped,
            "vault KEK rotated"
        );
        *current = new;
        Ok(report)
    }

    async fn read_all(&self, path: &Path) -> Result<Bytes> {
        let got = self
            .store
            .get(path)
            .await
            .map_err(|e| Error::store("get", path, e))?;
        got.bytes().await.map_err(|e| Error::store("get", path, e))
    }

    async fn exists(&self, path: &Path) -> Result<bool> {
        match self.store.head(path).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(Error::store("head", path, e)),
        }
    }

    /// The CID options that reproduce `cid`: its version decides.
    fn options_for(&self, cid: &Cid) -> CidOptions {
        match cid.inner().version() {
            cid::Version::V0 => CidOptions {
                cid_version: CidVersion::V0,
                raw_leaves: false,
                ..self.cid_options
            },
            cid::Version::V1 => match self.cid_options.cid_version {
                CidVersion::V1 => self.cid_options,
                CidVersion::V0 => CidOptions {
                    cid_version: CidVersion::V1,
                    raw_leaves: true,
                    ..self.cid_options
                },
            },
        }
    }

    /// Seals `input` and stores it; the CID is known only at the end, so
    /// large objects go to `incoming/` first and are renamed.
    async fn seal(&self, mut input: ByteStream) -> Result<SealedObject> {
        let key = DataKey::generate()?;
        let mut sealer = Sealer::new(&key)?;
        let hasher = CidHasher::new(self.cid_options).map_err(|e| {
            Error::config(
                "CID options",
                format!("{:?}", self.cid_options),
                &e.to_string(),
            )
        })?;
        let mut hasher = HashWorker::Inline(hasher);
        let mut sink = Sink::Buffer(Vec::new());
        let mut out = sealer.header().to_vec();
        let mut size = 0u64;
        let mut stored = 0u64;
        let result: Result<()> = async {
            while let Some(chunk) = input.next().await {
                let chunk = chunk.map_err(Error::Input)?;
                size += chunk.len() as u64;
                for piece in chunk.chunks(SEAL_BATCH) {
                    sealer
                        .update(piece, &mut out)
                        .map_err(|r| Error::integrity("(new object)", r))?;
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
            sealer
                .finish(&mut out)
                .map_err(|r| Error::integrity("(new object)", r))?;
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
        // Writes hold the KEK for reading so that a rotation never misses a
        // record written while it lists.
        let kek = self.kek.read().await;
        let record = kek.wrap(&key, cid.inner())?;
        let key_path = self.key_location(&cid);
        let written = self.store.put(&key_path, PutPayload::from(record)).await;
        drop(kek);
        if let Err(e) = written {
            // Without its key the ciphertext is useless: do not leave it.
            if let Err(cleanup) = self.store.delete(&object).await {
                tracing::warn!(%cid, error = %cleanup, "removing a keyless object failed");
            }
            return Err(Error::store("put", &key_path, e));
        }
        Ok(SealedObject {
            cid,
            size,
            stored_size: stored,
        })
    }

    /// The data key of `cid`, or why there is none.
    async fn data_key(&self, cid: &Cid) -> Result<DataKey> {
        let key_path = self.key_location(cid);
        // Hold the KEK from before the key record is read until it is
        // unwrapped: a rotation finishing in between would otherwise unwrap
        // an old-KEK record under the new KEK and report false tampering.
        let kek = self.kek.read().await;
        match self.store.get(&key_path).await {
            Ok(got) => {
                let record = got
                    .bytes()
                    .await
                    .map_err(|e| Error::store("get", &key_path, e))?;
                kek.unwrap(&record, cid.inner())
            }
            Err(object_store::Error::NotFound { .. }) => {
                if self.exists(&self.tombstone_location(cid)).await? {
                    Err(Error::Shredded(cid.to_string()))
                } else if self.exists(&self.object_location(cid)).await? {
                    Err(Error::integrity(cid, "its key record is missing"))
                } else {
                    Err(Error::NotFound(cid.to_string()))
                }
            }
            Err(e) => Err(Error::store("get", &key_path, e)),
        }
    }

    /// The stored ciphertext of `cid` as a stream.
    async fn ciphertext(&self, cid: &Cid) -> Result<(u64, BoxStream<'static, Result<Bytes>>)> {
        let path = self.object_location(cid);
        let size = match self.store.head(&path).await {
            Ok(meta) => meta.size,
            Err(object_store::Error::NotFound { .. }) => {
                return Err(Error::NotFound(cid.to_string()));
            }
            Err(e) => return Err(Error::store("head", &path, e)),
        };
        // Large ranged reads, two in flight: stores stream whole objects in
        // small pieces (8 KiB for local files), which would dominate.
        let store = Arc::clone(&self.store);
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
            .buffered(2)
            .boxed();
        Ok((size, stream))
    }

    /// Opens `cid`: the data key, then a reader that verifies every segment
    /// and, at the end, the CID.
    async fn open(&self, cid: &Cid) -> Result<(u64, Reader)> {
        let key = self.data_key(cid).await?;
        let (size, ciphertext) = self.ciphertext(cid).await?;
        let hasher = CidHasher::new(self.options_for(cid)).map_err(|e| {
            Error::config(
                "CID options",
                format!("{:?}", self.cid_options),
                &e.to_string(),
            )
        })?;
        Ok((
            size,
            Reader {
                cid: *cid,
                opener: Some(Opener::new(&key)),
                hasher: Some(HashWorker::for_size(hasher, size)),
                ciphertext,
                failed: None,
            },
        ))
    }
}

/// Reads and verifies one object, a batch of segments at a time.
struct Reader {
    cid: Cid,
    opener: Option<Opener>,
    hasher: Option<HashWorker>,
    ciphertext: BoxStream<'static, Result<Bytes>>,
    /// A failure found after some segments of the same batch verified: those
    /// are released first, the failure on the next call.
    failed: Option<Error>,
}

impl Reader {
    /// Appends the next verified plaintext (about [`BATCH`] bytes) to `out`;
    /// `None` once the end was verified or a failure was reported. Nothing
    /// unverified is ever left in `out`; the segments that verified before a
    /// failure are released before it.
    async fn fill(&mut self, out: &mut Vec<u8>) -> Option<Result<()>> {
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
                        return Some(Err(Error::integrity(self.cid, reason)));
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
                        return Some(Err(Error::integrity(self.cid, reason)));
                    }
                    let found = match hasher.finish().await {
                        Ok(found) => found,
                        Err(e) => return Some(Err(e)),
                    };
                    if found != *self.cid.inner() {
                        return Some(Err(Error::integrity(
                            self.cid,
                            format!("its stored bytes hash to {found}"),
                        )));
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
enum HashWorker {
    /// Hashing on the calling task.
    Inline(CidHasher),
    /// Hashing on a blocking thread, fed through a bounded channel.
    Thread {
        tx: tokio::sync::mpsc::Sender<Bytes>,
        task: tokio::task::JoinHandle<cid::Cid>,
    },
    /// Only while switching from one to the other.
    Moving,
}

impl HashWorker {
    fn for_size(hasher: CidHasher, size: u64) -> Self {
        if size > INLINE_HASH_LIMIT {
            Self::spawn(hasher)
        } else {
            Self::Inline(hasher)
        }
    }

    fn spawn(mut hasher: CidHasher) -> Self {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Bytes>(4);
        let task = tokio::task::spawn_blocking(move || {
            while let Some(bytes) = rx.blocking_recv() {
                hasher.update(&bytes);
            }
            hasher.finish()
        });
        Self::Thread { tx, task }
    }

    async fn feed(&mut self, bytes: Bytes) -> Result<()> {
        if let Self::Inline(hasher) = self {
            if bytes.len() as u64 <= INLINE_HASH_LIMIT {
                hasher.update(&bytes);
                return Ok(());
            }
            if let Self::Inline(hasher) = std::mem::replace(self, Self::Moving) {
                *self = Self::spawn(hasher);
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

    async fn finish(self) -> Result<cid::Cid> {
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
enum Sink {
    /// Small so far: kept in memory, written with one `put` at the end.
    Buffer(Vec<Bytes>),
    /// Large: a multipart upload to `incoming/<random>`, renamed at the end.
    Upload { path: Path, writer: WriteMultipart },
}

impl Sink {
    async fn write(&mut self, vault: &Vault, data: Bytes) -> Result<()> {
        match self {
            Self::Buffer(buf) => {
                buf.push(data);
                if buf.iter().map(Bytes::len).sum::<usize>() > PART_SIZE {
                    let mut name = [0u8; 16];
                    fill_random(&mut name)?;
                    let name: String = name.iter().map(|b| format!("{b:02x}")).collect();
                    let path = vault.location("incoming", &name);
                    let upload = vault
                        .store
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

    async fn finish(self, vault: &Vault, object: &Path) -> Result<()> {
        match self {
            Self::Buffer(buf) => {
                vault
                    .store
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
                    .store
                    .rename(&path, object)
                    .await
                    .map_err(|e| Error::store("rename", &path, e))?;
            }
        }
        Ok(())
    }

    async fn abort(self) {
        if let Self::Upload { path, writer } = self
            && let Err(e) = writer.abort().await
        {
            tracing::warn!(%path, error = %e, "aborting an unfinished upload failed");
        }
    }
}

#[async_trait]
impl VaultPort for Vault {
    async fn put(&self, plaintext: Bytes) -> VaultResult<SealedObject> {
        Ok(self
            .seal(stream::once(async { Ok(plaintext) }).boxed())
            .await?)
    }

    async fn put_stream(&self, plaintext: ByteStream) -> VaultResult<SealedObject> {
        Ok(self.seal(plaintext).await?)
    }

    async fn get(&self, cid: &Cid) -> VaultResult<Bytes> {
        let (size, mut reader) = self.open(cid).await?;
        let mut plaintext = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
        // Nothing is returned unless every segment and the CID verified.
        while let Some(filled) = reader.fill(&mut plaintext).await {
            filled?;
        }
        Ok(Bytes::from(plaintext))
    }

    async fn get_stream(&self, cid: &Cid) -> VaultResult<ByteStream> {
        let (_, reader) = self.open(cid).await?;
        Ok(stream::unfold(reader, |mut reader| async move {
            let mut out = Vec::new();
            let filled = reader.fill(&mut out).await?;
            Some((
                filled.map(|()| Bytes::from(out)).map_err(VaultError::from),
                reader,
            ))
        })
        .filter(|item| futures::future::ready(!matches!(item, Ok(b) if b.is_empty())))
        .boxed())
    }

    async fn verify(&self, cid: &Cid) -> VaultResult<ObjectStatus> {
        if self.exists(&self.tombstone_location(cid)).await? {
            return Ok(ObjectStatus::Shredded);
        }
        let (_, mut ciphertext) = match self.ciphertext(cid).await {
            Ok(found) => found,
            Err(Error::NotFound(_)) => {
                return Ok(if self.exists(&self.key_location(cid)).await? {
                    ObjectStatus::Corrupt(
                        "its key record exists but its ciphertext is missing".into(),
                    )
                } else {
                    ObjectStatus::Missing
                });
            }
            Err(e) => return Err(e.into()),
        };
        let mut hasher = CidHasher::new(self.options_for(cid)).map_err(Error::from_cid_options)?;
        while let Some(bytes) = ciphertext.next().await {
            hasher.update(&bytes?);
        }
        let found = hasher.finish();
        if found != *cid.inner() {
            return Ok(ObjectStatus::Corrupt(format!(
                "its stored bytes hash to {found}"
            )));
        }
        // The key record is checked by unwrapping it (no content is
        // decrypted); the key is zeroized right away.
        match self.data_key(cid).await {
            Ok(_) => Ok(ObjectStatus::Intact),
            Err(Error::Integrity { reason, .. }) => Ok(ObjectStatus::Corrupt(reason)),
            Err(e) => Err(e.into()),
        }
    }

    async fn shred(&self, cid: &Cid) -> VaultResult<()> {
        let tombstone = self.tombstone_location(cid);
        let key_path = self.key_location(cid);
        let object = self.object_location(cid);
        if !self.exists(&tombstone).await? {
            if !self.exists(&key_path).await? && !self.exists(&object).await? {
                return Err(Error::NotFound(cid.to_string()).into());
            }
            // The tombstone goes first: if the deletions fail half-way, the
            // object already reads as shredded, and shredding it again
            // (which is always allowed) finishes the job.
            self.store
                .put(&tombstone, PutPayload::from_static(b"shredded\n"))
                .await
                .map_err(|e| Error::store("put", &tombstone, e))?;
        }
        for path in [&key_path, &object] {
            match self.store.delete(path).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(Error::store("delete", path, e).into()),
            }
        }
        tracing::info!(%cid, "vault object shredded");
        Ok(())
    }

    async fn health(&self) -> VaultResult<VaultHealth> {
        // Listing the vault's root fails when the store is unreachable, the
        // credentials are refused or the bucket does not exist; it succeeds
        // (possibly empty) otherwise.
        let root = self.root.clone().join("objects");
        self.store
            .list_with_delimiter(Some(&root))
            .await
            .map_err(|e| match e {
                object_store::Error::NotFound { .. } => VaultError::Unavailable(format!(
                    "{}: the store was not found: {e}",
                    self.backend
                )),
                e => Error::store("list", &root, e).into(),
            })?;
        Ok(VaultHealth {
            backend: self.backend.clone(),
            key_id: self.key_id().await,
        })
    }
}

impl Error {
    fn from_cid_options(e: crate::unixfs::CidOptionsError) -> Self {
        Self::config("CID options", "(vault)", &e.to_string())
    }
}
