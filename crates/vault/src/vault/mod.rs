//! [`Vault`]: the [`VaultPort`] implementation over any `object_store`.

mod io;
mod rotate;

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::{self, BoxStream, StreamExt};
use healthledger_core::{
    ByteStream, Cid, ObjectStatus, SealedObject, VaultError, VaultHealth, VaultPort, VaultResult,
};
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, ObjectStoreScheme, PutPayload};
use tokio::sync::RwLock;
use url::Url;

use crate::error::{Error, Result};
use crate::keys::{DataKey, Kek, Keyring};
use crate::seal::{Opener, Sealer};
use crate::unixfs::{CidHasher, CidOptions, CidVersion};
use io::{HashWorker, Reader, Sink};

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
    previous: Vec<Kek>,
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
            .field("previous", &self.previous)
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

    /// Adds a KEK that unwraps key records but wraps none (may be called
    /// several times): the KEK being rotated away from, so every record
    /// reads while a rotation is under way, or the next KEK while another
    /// process rotates to it. See [`Vault::rotate_kek`].
    pub fn previous_kek(mut self, kek: Kek) -> Self {
        self.previous.push(kek);
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
        let local = matches!(
            ObjectStoreScheme::parse(&url),
            Ok((ObjectStoreScheme::Local, _))
        );
        let (store, root) = object_store::parse_url_opts(&url, self.options).map_err(|e| {
            // object_store quotes the URL as given, credentials included.
            let reason = e.to_string().replace(&self.url, &redact(&self.url));
            Error::config(
                "vault URL",
                redact(&self.url),
                &format!("no object store for it: {reason}"),
            )
        })?;
        let store: Arc<dyn ObjectStore> = if local {
            // A CID may be anchored on chain as soon as `put` returns, so a
            // file must be on disk by then: object_store's local store only
            // fsyncs files and their directories when asked.
            Arc::new(LocalFileSystem::new().with_fsync(true))
        } else {
            Arc::from(store)
        };
        let vault = Vault::with_store(store, root, redact(&self.url), kek, self.cid_options)?;
        vault.add_previous(self.previous)
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
    /// The KEKs. Writes hold it for reading until their key record is
    /// stored; a rotation takes it for writing only to switch KEKs.
    keys: RwLock<Arc<Keyring>>,
    /// Whether the store still seems to offer conditional updates; cleared
    /// the first time it says it does not.
    conditional_updates: AtomicBool,
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
    /// Key records of shredded objects, left by a shred that stopped before
    /// its key delete or shredded while the rotation ran: deleted, never
    /// re-wrapped.
    pub shredded: usize,
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
            previous: Vec::new(),
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
            keys: RwLock::new(Arc::new(Keyring::new(kek, Vec::new())?)),
            conditional_updates: AtomicBool::new(true),
            cid_options,
        })
    }

    /// This vault, also unwrapping under `previous` (see
    /// [`VaultBuilder::previous_kek`]).
    pub fn add_previous(mut self, previous: Vec<Kek>) -> Result<Self> {
        let ring = Arc::make_mut(self.keys.get_mut());
        for kek in previous {
            ring.add(kek)?;
        }
        Ok(self)
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
        self.keys.read().await.current().id().to_owned()
    }

    /// The ids of every KEK this vault holds, the one in use first.
    pub async fn key_ids(&self) -> Vec<String> {
        self.keys.read().await.ids()
    }

    async fn delete_if_present(&self, path: &Path) -> Result<()> {
        match self.store.delete(path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(Error::store("delete", path, e)),
        }
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
        // Writes hold the keyring for reading until the record is stored so
        // that a rotation never misses a record wrapped under the old KEK.
        let keys = self.keys.read().await;
        let record = keys.current().wrap(&key, cid.inner())?;
        let key_path = self.key_location(&cid);
        let written = self.store.put(&key_path, PutPayload::from(record)).await;
        drop(keys);
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
        let tombstone = self.tombstone_location(cid);
        // The tombstone is looked at before the key record: a shred writes
        // it first, so a shred that stopped before deleting the key (or is
        // still running) already keeps the content from being read.
        if self.exists(&tombstone).await? {
            return Err(Error::Shredded(cid.to_string()));
        }
        // The keyring unwraps a record under whichever KEK it names, so a
        // rotation running meanwhile makes no difference.
        let keys = Arc::clone(&*self.keys.read().await);
        match self.store.get(&key_path).await {
            Ok(got) => {
                let record = got
                    .bytes()
                    .await
                    .map_err(|e| Error::store("get", &key_path, e))?;
                keys.unwrap(&record, cid.inner())
            }
            Err(object_store::Error::NotFound { .. }) => {
                if self.exists(&tombstone).await? {
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
            Reader::new(
                *cid,
                Opener::new(&key),
                HashWorker::for_size(hasher, size),
                ciphertext,
            ),
        ))
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
            self.delete_if_present(path).await?;
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
