//! Support shared by the integration tests: raw reads, writes and bit flips
//! of the store under a vault, and the conformance suite's
//! [`VaultBackdoor`] over them, and a store that injects failures and
//! chosen interleavings ([`HookStore`]).

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use futures::StreamExt;
use futures::stream::BoxStream;
use healthledger_core::testing::{StoredBytes, VaultBackdoor};
use healthledger_core::{Cid, HhNumber};
use healthledger_vault::{Kek, Vault};
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    ObjectStoreExt, PutMultipartOptions, PutOptions, PutPayload, PutResult,
};

/// The bytes stored at `path`.
pub(crate) async fn read<S: ObjectStore + ?Sized>(store: &S, path: &Path) -> Vec<u8> {
    store
        .get(path)
        .await
        .unwrap_or_else(|e| panic!("reading {path}: {e}"))
        .bytes()
        .await
        .unwrap_or_else(|e| panic!("reading {path}: {e}"))
        .to_vec()
}

/// Replaces the bytes stored at `path`.
pub(crate) async fn write<S: ObjectStore + ?Sized>(store: &S, path: &Path, bytes: Vec<u8>) {
    store
        .put(path, PutPayload::from(bytes))
        .await
        .unwrap_or_else(|e| panic!("writing {path}: {e}"));
}

/// `bytes` with bit `bit` (counted from the lowest bit of byte 0) flipped.
pub(crate) fn flip_bit(bytes: &[u8], bit: usize) -> Vec<u8> {
    assert!(
        bit < bytes.len() * 8,
        "bit {bit} is outside the {} stored bytes",
        bytes.len()
    );
    let mut flipped = bytes.to_vec();
    flipped[bit / 8] ^= 1 << (bit % 8);
    flipped
}

/// Flips bit `bit` of the bytes stored at `path`.
pub(crate) async fn flip_stored_bit<S: ObjectStore + ?Sized>(store: &S, path: &Path, bit: usize) {
    let original = read(store, path).await;
    write(store, path, flip_bit(&original, bit)).await;
}

/// The suite's backdoor into a [`Vault`] on any backend: the stored object
/// is `objects/<cid>` in its content store and the key record `keys/<cid>`
/// in its key store.
pub(crate) struct StoreBackdoor<'a>(pub(crate) &'a Vault);

#[async_trait]
impl VaultBackdoor for StoreBackdoor<'_> {
    async fn stored_bytes(&self, cid: &Cid) -> StoredBytes {
        StoredBytes {
            object: read(self.0.store(), &self.0.object_location(cid)).await,
            key_record: read(self.0.key_store(), &self.0.key_location(cid)).await,
        }
    }

    async fn flip_object_byte(&self, cid: &Cid, offset: usize) {
        flip_stored_bit(self.0.store(), &self.0.object_location(cid), offset * 8).await;
    }

    async fn flip_key_byte(&self, cid: &Cid, offset: usize) {
        flip_stored_bit(self.0.key_store(), &self.0.key_location(cid), offset * 8).await;
    }

    async fn rotate_key(&self) {
        static ROTATIONS: AtomicU32 = AtomicU32::new(0);
        let n = ROTATIONS.fetch_add(1, Ordering::SeqCst);
        let kek = Kek::generate(format!("suite-kek-{n}")).unwrap();
        self.0.rotate_kek(kek).await.unwrap();
    }

    async fn key_material_left(&self, cid: &Cid) -> bool {
        let keys = self.0.key_store();
        let Some(record) = try_read(keys, &self.0.key_location(cid)).await else {
            return false;
        };
        // The patient is bytes 5..9 of a data key record (see `records`).
        let hh = u32::from_be_bytes(record[5..9].try_into().unwrap());
        let patient = HhNumber::new(hh).unwrap();
        try_read(keys, &self.0.subject_location(patient))
            .await
            .is_some()
    }
}

/// The bytes stored at `path`, or `None`.
pub(crate) async fn try_read<S: ObjectStore + ?Sized>(store: &S, path: &Path) -> Option<Vec<u8>> {
    match store.get(path).await {
        Ok(got) => Some(got.bytes().await.unwrap().to_vec()),
        Err(object_store::Error::NotFound { .. }) => None,
        Err(e) => panic!("reading {path}: {e}"),
    }
}

/// Which kind of store operation a [`HookStore`] hook is called for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    /// A put, or the start of a multipart upload.
    Put,
    /// A read of the content (the hook runs after the store answered).
    Get,
    /// A read of the metadata only.
    Head,
    /// A delete.
    Delete,
    /// A copy (and so a rename), called with the destination.
    Copy,
}

/// What a hook decides: carry on with the operation, or fail it.
pub(crate) type HookFuture = futures::future::BoxFuture<'static, object_store::Result<()>>;
type Hook = Arc<dyn Fn(Op, &Path) -> HookFuture + Send + Sync>;

/// An injected failure, as a store would report it.
pub(crate) fn injected(op: Op, path: &Path) -> object_store::Error {
    object_store::Error::Generic {
        store: "HookStore",
        source: format!("injected failure of {op:?} {path}").into(),
    }
}

/// An object store that calls a hook before every put, head, delete and
/// copy and after every get, so a test can fail an operation or hold it until something else
/// happened (an injected crash or a chosen interleaving).
#[derive(Clone)]
pub(crate) struct HookStore {
    inner: Arc<dyn ObjectStore>,
    hook: Arc<Mutex<Option<Hook>>>,
}

impl HookStore {
    pub(crate) fn new(inner: Arc<dyn ObjectStore>) -> Self {
        Self {
            inner,
            hook: Arc::default(),
        }
    }

    /// The store under the hooks.
    pub(crate) fn inner(&self) -> &Arc<dyn ObjectStore> {
        &self.inner
    }

    /// Calls `hook` before every operation from now on.
    pub(crate) fn set(&self, hook: impl Fn(Op, &Path) -> HookFuture + Send + Sync + 'static) {
        *self.hook.lock().unwrap() = Some(Arc::new(hook));
    }

    /// Fails every `op` on a path containing `needle`.
    pub(crate) fn fail(&self, op: Op, needle: &'static str) {
        self.set(move |o, path| {
            let failure = (o == op && path.as_ref().contains(needle)).then(|| injected(o, path));
            Box::pin(async move { failure.map_or(Ok(()), Err) })
        });
    }

    /// No more hooks.
    pub(crate) fn clear(&self) {
        *self.hook.lock().unwrap() = None;
    }

    fn current(&self) -> Option<Hook> {
        self.hook.lock().unwrap().clone()
    }

    async fn run(&self, op: Op, path: &Path) -> object_store::Result<()> {
        match self.current() {
            Some(hook) => hook(op, path).await,
            None => Ok(()),
        }
    }
}

impl std::fmt::Debug for HookStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HookStore({:?})", self.inner)
    }
}

impl std::fmt::Display for HookStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HookStore({})", self.inner)
    }
}

#[async_trait]
impl ObjectStore for HookStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        self.run(Op::Put, location).await?;
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.run(Op::Put, location).await?;
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        if options.head {
            self.run(Op::Head, location).await?;
            return self.inner.get_opts(location, options).await;
        }
        // A get's hook runs once the store answered, so a test can hold a
        // caller that has read something until the test changed it.
        let got = self.inner.get_opts(location, options).await?;
        self.run(Op::Get, location).await?;
        Ok(got)
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        let this = self.clone();
        let checked = locations
            .then(move |path| {
                let this = this.clone();
                async move {
                    let path = path?;
                    this.run(Op::Delete, &path).await?;
                    Ok(path)
                }
            })
            .boxed();
        self.inner.delete_stream(checked)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        self.run(Op::Copy, to).await?;
        self.inner.copy_opts(from, to, options).await
    }
}
