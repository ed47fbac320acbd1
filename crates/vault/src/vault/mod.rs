//! [`Vault`]: the [`VaultPort`] implementation over two object stores, one
//! for content and one for keys. This module configures and opens it; what
//! it does is split by act: [`write`] seals, [`read`] opens and verifies,
//! [`port`] is the port, [`rotate`] rotates the KEK, [`list`] lists the
//! objects, [`gc`] removes what crashes left, [`opener`] opens sealed
//! objects fetched from elsewhere, [`car`] exports them as CAR files, [`io`]
//! holds the streaming parts and [`sink`] takes new ciphertext to the store.

mod car;
#[cfg(target_os = "linux")]
mod direct;
mod gc;
mod io;
mod list;
mod opener;
mod port;
mod read;
mod rotate;
mod sink;
mod write;

pub use car::CarExport;
pub use gc::GcReport;
pub use opener::{ObjectKey, open_sealed, open_sealed_stream};

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use healthledger_core::{Cid, HhNumber};
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, ObjectStoreScheme};
use tokio::sync::RwLock;
use url::Url;

use crate::error::{Error, Result};
use crate::keyring::Keyring;
use crate::keys::{Kek, KeyProvider};
use crate::unixfs::CidOptions;

/// Ciphertexts up to this size are written with one `put`; larger ones are
/// uploaded in parts of this size, so memory stays bounded.
const PART_SIZE: usize = 8 * 1024 * 1024;
/// Parts uploaded concurrently.
const PARTS_IN_FLIGHT: usize = 2;
/// Plaintext bytes handed out per stream item when reading back, at least
/// (a batch is whole ranged reads), and ciphertext bytes per read job: one
/// ranged read, so that a job's handoffs and the segment it cuts in two are
/// paid once per range.
const BATCH: usize = READ_RANGE as usize;
/// Plaintext bytes per seal job: encrypted on every core while the previous
/// batch's ciphertext is hashed (see the `io` module), then stored. Small,
/// so that a batch's ciphertext is likelier still in the caches when the
/// next job hashes it and the store copies it: measured against 4 MiB, the
/// same seal rate on average with fewer stretches at half speed, and half
/// the peak memory sealing a 1 GiB stream (15 MiB against 29).
const SEAL_BATCH: usize = 1024 * 1024;
/// Seal batches are cut on multiples of this many bytes of the object, and
/// their buffers start on a page: the alignment a direct write to a local
/// disk needs (`direct`), for blocks of 512 bytes or 4 KiB.
const BLOCK: usize = 4096;
/// Seal batches followed for reuse once the store let go of them: those in
/// the upload's buffer, its parts in flight or its writer's queue, and the
/// one being hashed.
const SEAL_BUFFERS: usize = 20;
/// Bytes per ranged read of a stored object; two are in flight.
const READ_RANGE: u64 = 4 * 1024 * 1024;
/// Jobs up to this size run on the calling task: a thread hop would cost
/// more than it frees.
const INLINE_LIMIT: usize = 256 * 1024;

/// One object store and the path under it, with the URL reported for it
/// (which must not contain credentials).
#[derive(Clone)]
pub struct StoreAt {
    /// The store.
    pub store: Arc<dyn ObjectStore>,
    /// The path under which the vault keeps its files.
    pub root: Path,
    /// What health reports, e.g. `s3://bucket/prefix`.
    pub url: String,
}

impl StoreAt {
    /// `store` under `root`, reported as `url`.
    pub fn new(store: Arc<dyn ObjectStore>, root: impl Into<Path>, url: impl Into<String>) -> Self {
        Self {
            store,
            root: root.into(),
            url: url.into(),
        }
    }

    fn at(&self, dir: &str, name: &str) -> Path {
        self.root.clone().join(dir).join(name)
    }
}

impl fmt::Debug for StoreAt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreAt")
            .field("url", &self.url)
            .field("root", &self.root.as_ref())
            .finish()
    }
}

/// An opened store and what the vault needs to know about its kind.
struct Opened {
    at: StoreAt,
    /// Whether it lists in lexicographic key order (every scheme but local
    /// files).
    sorted_listing: bool,
    /// For local files, the directory of the URL.
    dir: Option<PathBuf>,
}

/// Opens the object store of `url` with `options`: object_store's own
/// parser, except that local files are fsynced.
fn open_store(what: &'static str, url: &str, options: Vec<(String, String)>) -> Result<Opened> {
    let parsed = Url::parse(url)
        .map_err(|e| Error::config(what, redact(url), &format!("not a URL: {e}")))?;
    let local = matches!(
        ObjectStoreScheme::parse(&parsed),
        Ok((ObjectStoreScheme::Local, _))
    );
    let (store, root) = object_store::parse_url_opts(&parsed, options).map_err(|e| {
        // object_store quotes the URL as given, credentials included.
        let reason = e.to_string().replace(url, &redact(url));
        Error::config(
            what,
            redact(url),
            &format!("no object store for it: {reason}"),
        )
    })?;
    let store: Arc<dyn ObjectStore> = if local {
        // A CID may be anchored on chain as soon as `put` returns, so a file
        // must be on disk by then: object_store's local store only fsyncs
        // files and their directories when asked.
        Arc::new(LocalFileSystem::new().with_fsync(true))
    } else {
        Arc::from(store)
    };
    // A local store is rooted at `/`, with the URL's path as its prefix.
    let dir = local.then(|| PathBuf::from("/").join(root.as_ref()));
    Ok(Opened {
        at: StoreAt::new(store, root, redact(url)),
        sorted_listing: !local,
        dir,
    })
}

/// Whether one of two (redacted) URLs is the other or lies under it.
fn overlaps(a: &str, b: &str) -> bool {
    // Every `memory://` URL opens a store of its own.
    if a.starts_with("memory:") && b.starts_with("memory:") {
        return false;
    }
    let (a, b) = (a.trim_end_matches('/'), b.trim_end_matches('/'));
    a == b || a.starts_with(&format!("{b}/")) || b.starts_with(&format!("{a}/"))
}

/// Configures and opens a [`Vault`].
pub struct VaultBuilder {
    url: String,
    options: Vec<(String, String)>,
    key_store: Option<String>,
    key_store_options: Vec<(String, String)>,
    kek: Option<Arc<dyn KeyProvider>>,
    previous: Vec<Arc<dyn KeyProvider>>,
    erasure_horizon: Option<Duration>,
    cid_options: CidOptions,
}

impl fmt::Debug for VaultBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Store options carry credentials: show their names only.
        let names = |options: &[(String, String)]| -> Vec<String> {
            options.iter().map(|(k, _)| k.clone()).collect()
        };
        f.debug_struct("VaultBuilder")
            .field("url", &redact(&self.url))
            .field("options", &names(&self.options))
            .field("key_store", &self.key_store.as_deref().map(redact))
            .field("key_store_options", &names(&self.key_store_options))
            .field("kek", &self.kek.as_ref().map(|k| k.key_id()))
            .field(
                "previous",
                &self.previous.iter().map(|k| k.key_id()).collect::<Vec<_>>(),
            )
            .field("erasure_horizon", &self.erasure_horizon)
            .field("cid_options", &self.cid_options)
            .finish()
    }
}

impl VaultBuilder {
    /// Sets the local key-encryption key (this or [`Self::key_provider`]
    /// is required).
    pub fn kek(self, kek: Kek) -> Self {
        self.key_provider(kek)
    }

    /// Sets the key-encryption key to any [`KeyProvider`] (a KMS, an HSM).
    pub fn key_provider(mut self, kek: impl KeyProvider + 'static) -> Self {
        self.kek = Some(Arc::new(kek));
        self
    }

    /// Adds a KEK that unwraps subject records but wraps none (may be
    /// called several times): the KEK being rotated away from, so every
    /// record reads while a rotation is under way, or the next KEK while
    /// another process rotates to it. See [`Vault::rotate_kek`].
    pub fn previous_kek(self, kek: Kek) -> Self {
        self.previous_key_provider(kek)
    }

    /// [`Self::previous_kek`] for any [`KeyProvider`].
    pub fn previous_key_provider(mut self, kek: impl KeyProvider + 'static) -> Self {
        self.previous.push(Arc::new(kek));
        self
    }

    /// Where the key records live (required): an object store URL of its
    /// own, neither the vault URL nor under it (nor above it), so that
    /// backups, versions and copies of the content never carry the keys.
    /// Erasure is final once the key store's own backups have expired.
    pub fn key_store(mut self, url: impl Into<String>) -> Self {
        self.key_store = Some(url.into());
        self
    }

    /// An option for the key store's object store, as [`Self::option`].
    pub fn key_store_option(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.key_store_options.push((key.into(), value.into()));
        self
    }

    /// The erasure horizon (required): how long the key store's backups,
    /// snapshots and object versions are kept. A shredded or erased key can
    /// be restored from them until then; health reports it so that nobody
    /// promises more.
    pub fn erasure_horizon(mut self, retention: Duration) -> Self {
        self.erasure_horizon = Some(retention);
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
        let key_url = self.key_store.ok_or_else(|| {
            Error::config(
                "key store URL",
                "(none)",
                "a vault needs a key store of its own (key_store)",
            )
        })?;
        let horizon = self.erasure_horizon.ok_or_else(|| {
            Error::config(
                "erasure horizon",
                "(none)",
                "state the key store's backup retention (erasure_horizon)",
            )
        })?;
        if overlaps(&redact(&self.url), &redact(&key_url)) {
            return Err(Error::config(
                "key store URL",
                redact(&key_url),
                &format!(
                    "must lie apart from the vault URL {}: keys beside the content are \
                     copied with it",
                    redact(&self.url)
                ),
            ));
        }
        let content = open_store("vault URL", &self.url, self.options)?;
        let keys = open_store("key store URL", &key_url, self.key_store_options)?;
        let mut vault = Vault::with_stores(content.at, keys.at, kek, horizon, self.cid_options)?;
        vault.sorted_listing = content.sorted_listing;
        vault.content_dir = content.dir;
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
    content: StoreAt,
    keys_at: StoreAt,
    erasure_horizon: Duration,
    /// The KEKs. Writes that create a subject record hold it for reading
    /// until the record is stored; a rotation takes it for writing only to
    /// switch KEKs.
    keys: RwLock<Arc<Keyring>>,
    /// Whether the store still seems to offer conditional updates; cleared
    /// the first time it says it does not.
    conditional_updates: AtomicBool,
    cid_options: CidOptions,
    /// Whether the content store lists keys in lexicographic order, so a
    /// page of the listing can stop early (known only for stores the
    /// builder opened from a URL).
    sorted_listing: bool,
    /// The content store's directory, when it is local files: uploads are
    /// written and objects read there by the vault's own threads, and `gc`
    /// finds staged uploads there.
    content_dir: Option<PathBuf>,
}

impl fmt::Debug for Vault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Vault")
            .field("backend", &self.content.url)
            .field("key_store", &self.keys_at.url)
            .field("erasure_horizon", &self.erasure_horizon)
            .field("cid_options", &self.cid_options)
            .finish_non_exhaustive()
    }
}

/// What [`Vault::rotate_kek`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rotation {
    /// Subject records re-wrapped under the new KEK.
    pub rewrapped: usize,
    /// Subject records already under the new KEK (an interrupted rotation).
    pub already_current: usize,
    /// Subject records of erased patients, left by an erasure that stopped
    /// before its delete or that ran beside the rotation: deleted, never
    /// re-wrapped.
    pub erased: usize,
}

impl Vault {
    /// Starts configuring a vault on the object store named by `url`:
    /// `file:///absolute/dir`, `memory://`, and with the matching feature
    /// `s3://bucket/prefix`, `gs://…`, `az://…`.
    pub fn builder(url: impl Into<String>) -> VaultBuilder {
        VaultBuilder {
            url: url.into(),
            options: Vec::new(),
            key_store: None,
            key_store_options: Vec::new(),
            kek: None,
            previous: Vec::new(),
            erasure_horizon: None,
            cid_options: CidOptions::KUBO_V1,
        }
    }

    /// A vault on already configured stores: content in `content`, key
    /// records in `keys` (see [`VaultBuilder::key_store`] for why they
    /// should be apart; tests may share one store under two roots).
    pub fn with_stores(
        content: StoreAt,
        keys: StoreAt,
        kek: Arc<dyn KeyProvider>,
        erasure_horizon: Duration,
        cid_options: CidOptions,
    ) -> Result<Self> {
        cid_options.validate().map_err(|e| {
            Error::config("CID options", format!("{cid_options:?}"), &e.to_string())
        })?;
        Ok(Self {
            content,
            keys_at: keys,
            erasure_horizon,
            keys: RwLock::new(Arc::new(Keyring::new(kek)?)),
            conditional_updates: AtomicBool::new(true),
            cid_options,
            sorted_listing: false,
            content_dir: None,
        })
    }

    /// This vault, also unwrapping under `previous` (see
    /// [`VaultBuilder::previous_kek`]).
    pub fn add_previous(mut self, previous: Vec<Arc<dyn KeyProvider>>) -> Result<Self> {
        let ring = Arc::make_mut(self.keys.get_mut());
        for kek in previous {
            ring.add(kek)?;
        }
        Ok(self)
    }

    /// Where the ciphertext of `cid` is stored: `objects/<cid>` in the
    /// content store.
    pub fn object_location(&self, cid: &Cid) -> Path {
        self.content.at("objects", &cid.to_string())
    }

    /// Where the data key record of `cid` is stored: `keys/<cid>` in the
    /// key store.
    pub fn key_location(&self, cid: &Cid) -> Path {
        self.keys_at.at("keys", &cid.to_string())
    }

    /// Where the tombstone of a shredded `cid` is stored: `shredded/<cid>`
    /// in the key store.
    pub fn tombstone_location(&self, cid: &Cid) -> Path {
        self.keys_at.at("shredded", &cid.to_string())
    }

    /// Where the subject record of `patient` is stored: `subjects/<HH>` in
    /// the key store.
    pub fn subject_location(&self, patient: HhNumber) -> Path {
        self.keys_at.at("subjects", &patient.to_string())
    }

    /// Where the tombstone of an erased `patient` is stored: `erased/<HH>`
    /// in the key store.
    pub fn erased_location(&self, patient: HhNumber) -> Path {
        self.keys_at.at("erased", &patient.to_string())
    }

    /// Where a rotation under way names its KEKs: `rotation` in the key
    /// store.
    fn rotation_marker(&self) -> Path {
        self.keys_at.root.clone().join("rotation")
    }

    /// Where uploads wait for their CID: `incoming/<name>` in the content
    /// store.
    fn incoming_location(&self, name: &str) -> Path {
        self.content.at("incoming", name)
    }

    /// The content store.
    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.content.store
    }

    /// The key store.
    pub fn key_store(&self) -> &Arc<dyn ObjectStore> {
        &self.keys_at.store
    }

    /// The id of the KEK in use.
    pub async fn key_id(&self) -> String {
        self.keys.read().await.current().key_id().to_owned()
    }

    /// The ids of every KEK this vault holds, the one in use first.
    pub async fn key_ids(&self) -> Vec<String> {
        self.keys.read().await.ids()
    }

    /// Deletes `path` from `store`; a missing object is fine.
    async fn delete_if_present(store: &dyn ObjectStore, path: &Path) -> Result<()> {
        match store.delete(path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(Error::store("delete", path, e)),
        }
    }

    /// Whether `path` exists in `store`.
    async fn exists(store: &dyn ObjectStore, path: &Path) -> Result<bool> {
        match store.head(path).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(Error::store("head", path, e)),
        }
    }

    /// The bytes at `path` in `store`; `None` when there are none.
    async fn read_opt(store: &dyn ObjectStore, path: &Path) -> Result<Option<bytes::Bytes>> {
        match store.get(path).await {
            Ok(got) => Ok(Some(
                got.bytes()
                    .await
                    .map_err(|e| Error::store("get", path, e))?,
            )),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(Error::store("get", path, e)),
        }
    }

    /// Whether `cid` has a tombstone.
    async fn is_shredded(&self, cid: &Cid) -> Result<bool> {
        Self::exists(self.key_store().as_ref(), &self.tombstone_location(cid)).await
    }

    /// Whether `patient` has been erased.
    async fn is_erased(&self, patient: HhNumber) -> Result<bool> {
        Self::exists(self.key_store().as_ref(), &self.erased_location(patient)).await
    }
}
