//! `gc` with a grace period: crashes injected between the steps of a seal
//! and of a shred leave an abandoned upload, an object without its data key
//! record and a shredded object's ciphertext; `gc` keeps them while they are
//! younger than the grace period, then removes them, and never touches an
//! intact object.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt, stream};
use healthledger_core::{Cid, ObjectStatus, VaultPort};
use healthledger_vault::{CidOptions, Error, GcReport, StoreAt, Vault};
use object_store::ObjectStore;
use object_store::memory::InMemory;
use object_store::path::Path;

use crate::orderings::{stores, vault_on};
use crate::support::{HookStore, Op, injected};
use crate::{HORIZON, builder, kek, patient};

const HOUR: Duration = Duration::from_secs(3600);

/// Fails every operation `op` on a path containing `needle`, and every
/// `second.0` on a path containing `second.1`.
fn fail_both(store: &HookStore, first: (Op, &'static str), second: (Op, &'static str)) {
    store.set(move |op, path| {
        let hit = [first, second]
            .iter()
            .any(|(o, needle)| *o == op && path.as_ref().contains(needle));
        let failure = hit.then(|| injected(op, path));
        Box::pin(async move { failure.map_or(Ok(()), Err) })
    });
}

async fn listed(store: &dyn ObjectStore, prefix: &str) -> Vec<Path> {
    store
        .list(Some(&Path::from(prefix)))
        .map_ok(|meta| meta.location)
        .try_collect()
        .await
        .unwrap()
}

async fn cids(v: &Vault) -> Vec<Cid> {
    let listed = v.objects(None, 1_000).await.unwrap();
    listed.into_iter().map(|o| o.cid).collect()
}

#[tokio::test]
async fn gc_removes_what_crashes_left_once_older_than_the_grace_period() {
    for (backend, store, _dir) in stores() {
        let v = vault_on(&store, kek());
        let intact = v.put(patient(), Bytes::from_static(b"kept")).await.unwrap();

        // A crash between a large upload and its rename under the CID.
        store.fail(Op::Copy, "/objects/");
        let big = Bytes::from(vec![3u8; 9 * 1024 * 1024]);
        let err = v
            .put_stream(patient(), stream::iter([Ok(big)]).boxed())
            .await
            .unwrap_err();
        assert!(err.to_string().contains("injected"), "{backend}: {err}");
        assert_eq!(
            listed(store.inner().as_ref(), "vault/incoming").await.len(),
            1
        );

        // A crash between the ciphertext and its key record, before the
        // clean-up removed the ciphertext.
        fail_both(&store, (Op::Put, "keys/keys/"), (Op::Delete, "/objects/"));
        v.put(patient(), Bytes::from_static(b"keyless"))
            .await
            .unwrap_err();
        let keyless = *cids(&v).await.iter().find(|c| **c != intact.cid).unwrap();

        // A shred stopped after its key record, before the ciphertext.
        store.clear();
        let shredded = v
            .put(patient(), Bytes::from_static(b"shredded"))
            .await
            .unwrap();
        store.fail(Op::Delete, "/objects/");
        v.shred(&shredded.cid).await.unwrap_err();
        store.clear();
        assert_eq!(cids(&v).await.len(), 3, "{backend}");

        // Younger than the grace period: all kept.
        let report = v.gc(HOUR).await.unwrap();
        let young = GcReport {
            young_uploads_kept: 1,
            ..GcReport::default()
        };
        assert_eq!(report, young, "{backend}");
        assert_eq!(cids(&v).await.len(), 3, "{backend}");

        // Past it: removed, and the intact object untouched.
        let report = v.gc(Duration::ZERO).await.unwrap();
        let expected = GcReport {
            uploads_removed: 1,
            keyless_removed: 1,
            shreds_finished: 1,
            young_uploads_kept: 0,
        };
        assert_eq!(report, expected, "{backend}");
        assert_eq!(cids(&v).await, vec![intact.cid], "{backend}");
        assert!(
            listed(store.inner().as_ref(), "vault/incoming")
                .await
                .is_empty()
        );
        assert_eq!(&v.get(patient(), &intact.cid).await.unwrap()[..], b"kept");
        assert_eq!(v.verify(&intact.cid).await.unwrap(), ObjectStatus::Intact);
        assert_eq!(v.verify(&keyless).await.unwrap(), ObjectStatus::Missing);
        assert_eq!(
            v.verify(&shredded.cid).await.unwrap(),
            ObjectStatus::Shredded
        );
        assert_eq!(v.gc(Duration::ZERO).await.unwrap(), GcReport::default());
    }
}

#[tokio::test]
async fn gc_removes_no_object_through_an_empty_key_store() {
    let content: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let v = crate::vault_on(Arc::clone(&content), kek());
    let sealed = v.put(patient(), Bytes::from_static(b"lab")).await.unwrap();
    // The same content with a wrong (empty) key store.
    let wrong = Vault::with_stores(
        StoreAt::new(Arc::clone(&content), "vault", "test://content"),
        StoreAt::new(Arc::new(InMemory::new()), "keys", "test://empty-keys"),
        Arc::new(kek()),
        HORIZON,
        CidOptions::KUBO_V1,
    )
    .unwrap();
    let err = wrong.gc(Duration::ZERO).await.unwrap_err();
    assert!(
        matches!(&err, Error::Config { what, .. } if *what == "key store URL"),
        "{err:?}"
    );
    assert_eq!(v.get(patient(), &sealed.cid).await.unwrap(), "lab");
}

#[tokio::test]
async fn gc_removes_staged_uploads_of_local_files() {
    // object_store stages a multipart upload to a local directory as
    // `<name>#<n>` and hides it from listings; a crash leaves it there.
    let dir = tempfile::tempdir().unwrap();
    let url = format!("file://{}/content", dir.path().display());
    let keys = format!("file://{}/keys", dir.path().display());
    let v = builder(&url, &keys).build().unwrap();
    let sealed = v.put(patient(), Bytes::from_static(b"ecg")).await.unwrap();
    let incoming = dir.path().join("content/incoming");
    std::fs::create_dir_all(&incoming).unwrap();
    let staged = incoming.join("0a1b2c#1");
    std::fs::write(&staged, vec![0u8; 4096]).unwrap();
    let report = v.gc(HOUR).await.unwrap();
    assert_eq!(report.young_uploads_kept, 1, "{report:?}");
    assert!(staged.exists());
    let report = v.gc(Duration::ZERO).await.unwrap();
    assert_eq!(
        report,
        GcReport {
            uploads_removed: 1,
            ..GcReport::default()
        }
    );
    assert!(!staged.exists());
    assert_eq!(v.get(patient(), &sealed.cid).await.unwrap(), "ecg");
}

#[tokio::test]
async fn a_large_local_upload_whose_input_fails_leaves_nothing_behind() {
    // Past one upload part, a `file://` vault writes `incoming/<name>`
    // itself; an input that fails half-way must not leave it there.
    let dir = tempfile::tempdir().unwrap();
    let url = format!("file://{}/content", dir.path().display());
    let keys = format!("file://{}/keys", dir.path().display());
    let v = builder(&url, &keys).build().unwrap();
    let input = stream::iter([
        Ok(Bytes::from(vec![5u8; 9 * 1024 * 1024])),
        Ok(Bytes::from(vec![6u8; 3 * 1024 * 1024])),
        Err(healthledger_core::VaultError::other("the sender hung up")),
    ])
    .boxed();
    let err = v.put_stream(patient(), input).await.unwrap_err();
    assert!(err.to_string().contains("the sender hung up"), "{err}");
    let incoming = dir.path().join("content/incoming");
    let left: Vec<_> = std::fs::read_dir(&incoming)
        .map(|entries| entries.map(|e| e.unwrap().file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "{left:?}");
    assert!(cids(&v).await.is_empty());
    assert_eq!(v.gc(Duration::ZERO).await.unwrap(), GcReport::default());
    // The same stream without the failure seals and reads back.
    let data: Bytes = (0..12 * 1024 * 1024 + 5)
        .map(|i| (i % 251) as u8)
        .collect::<Vec<_>>()
        .into();
    let sealed = v.put(patient(), data.clone()).await.unwrap();
    assert_eq!(v.get(patient(), &sealed.cid).await.unwrap(), data);
    assert_eq!(v.verify(&sealed.cid).await.unwrap(), ObjectStatus::Intact);
}
