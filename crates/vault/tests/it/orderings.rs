//! Crash-safe orderings: a shred or an erasure stopped after any step
//! releases nothing, a rotation never writes back a subject key erased while
//! it runs (on a store with conditional puts and on one without), a put
//! racing an erasure leaves no key behind, an interrupted rotation breaks no
//! read, and `file://` vaults fsync.

use std::sync::Arc;

use bytes::Bytes;
use healthledger_core::{
    Cid, HhNumber, IntegrityReason, ObjectStatus, SealedObject, VaultError, VaultPort,
};
use healthledger_vault::{Kek, Vault};
use object_store::ObjectStore;
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path;
use tokio::sync::{Notify, mpsc};

use crate::support::{HookStore, Op, injected, read};
use crate::{kek, other_kek};

/// A vault on `store` (content under `vault/`, keys under `keys/`).
pub(crate) fn vault_on(store: &HookStore, keys: Kek) -> Vault {
    crate::vault_on(Arc::new(store.clone()), keys)
}

/// A hooked store on memory (conditional puts) or on a local directory
/// (none); the directory lives as long as the returned guard.
pub(crate) fn stores() -> Vec<(&'static str, HookStore, Option<tempfile::TempDir>)> {
    let dir = tempfile::tempdir().unwrap();
    let local = LocalFileSystem::new_with_prefix(dir.path())
        .unwrap()
        .with_fsync(true);
    vec![
        ("memory", HookStore::new(Arc::new(InMemory::new())), None),
        ("file", HookStore::new(Arc::new(local)), Some(dir)),
    ]
}

async fn exists(store: &dyn ObjectStore, path: &Path) -> bool {
    use object_store::ObjectStoreExt;
    match store.head(path).await {
        Ok(_) => true,
        Err(object_store::Error::NotFound { .. }) => false,
        Err(e) => panic!("head {path}: {e}"),
    }
}

async fn assert_shredded(v: &Vault, patient: HhNumber, cid: &Cid, what: &str) {
    let got = v.get(patient, cid).await;
    assert!(
        matches!(got, Err(VaultError::NotFound(_))),
        "{what}: get must be NotFound, got {got:?}"
    );
    let streamed = v.get_stream(patient, cid).await.map(drop);
    assert!(
        matches!(streamed, Err(VaultError::NotFound(_))),
        "{what}: get_stream must be NotFound, got {streamed:?}"
    );
    assert_eq!(
        v.verify(cid).await.unwrap(),
        ObjectStatus::Shredded,
        "{what}"
    );
}

#[tokio::test]
async fn a_shred_stopped_after_its_tombstone_releases_nothing() {
    for (backend, store, _dir) in stores() {
        let v = vault_on(&store, kek());
        let sealed = v
            .put(crate::patient(), Bytes::from_static(b"biopsy result"))
            .await
            .unwrap();
        let key_path = v.key_location(&sealed.cid);
        let object = v.object_location(&sealed.cid);

        // Stopped between the tombstone and the key delete: the key record
        // is still there, and still nothing reads the content.
        store.fail(Op::Delete, "/keys/");
        let err = v.shred(&sealed.cid).await.unwrap_err();
        assert!(
            matches!(err, VaultError::Unavailable(_)),
            "{backend}: {err:?}"
        );
        assert!(exists(store.inner().as_ref(), &key_path).await, "{backend}");
        assert_shredded(
            &v,
            crate::patient(),
            &sealed.cid,
            &format!("{backend}, key delete failed"),
        )
        .await;
        let reopened = vault_on(&store, kek());
        assert_shredded(
            &reopened,
            crate::patient(),
            &sealed.cid,
            &format!("{backend}, reopened"),
        )
        .await;

        // Stopped between the key delete and the content delete.
        store.fail(Op::Delete, "/objects/");
        assert!(v.shred(&sealed.cid).await.is_err(), "{backend}");
        assert!(
            !exists(store.inner().as_ref(), &key_path).await,
            "{backend}"
        );
        assert!(exists(store.inner().as_ref(), &object).await, "{backend}");
        assert_shredded(
            &v,
            crate::patient(),
            &sealed.cid,
            &format!("{backend}, content delete failed"),
        )
        .await;

        // Shredding again finishes the job.
        store.clear();
        v.shred(&sealed.cid).await.unwrap();
        assert!(!exists(store.inner().as_ref(), &object).await, "{backend}");
        assert_shredded(&v, crate::patient(), &sealed.cid, backend).await;
    }
}

#[tokio::test]
async fn a_shred_that_could_not_write_its_tombstone_changed_nothing() {
    for (backend, store, _dir) in stores() {
        let v = vault_on(&store, kek());
        let data = Bytes::from_static(b"allergy list");
        let sealed = v.put(crate::patient(), data.clone()).await.unwrap();
        store.fail(Op::Put, "/shredded/");
        assert!(v.shred(&sealed.cid).await.is_err(), "{backend}");
        store.clear();
        assert_eq!(
            v.get(crate::patient(), &sealed.cid).await.unwrap(),
            data,
            "{backend}"
        );
        v.shred(&sealed.cid).await.unwrap();
        assert_shredded(&v, crate::patient(), &sealed.cid, backend).await;
    }
}

/// Holds the first `op` on a path ending in `needle` until the test says
/// go, telling the test when it got there.
fn hold(store: &HookStore, op: Op, needle: String) -> (mpsc::UnboundedReceiver<()>, Arc<Notify>) {
    let (reached_tx, reached) = mpsc::unbounded_channel();
    let go = Arc::new(Notify::new());
    let released = Arc::clone(&go);
    let once = Arc::new(std::sync::atomic::AtomicBool::new(false));
    store.set(move |o, path| {
        let hit = o == op
            && path.as_ref().ends_with(&needle)
            && !once.swap(true, std::sync::atomic::Ordering::SeqCst);
        let reached_tx = reached_tx.clone();
        let go = Arc::clone(&released);
        Box::pin(async move {
            if hit {
                let _ = reached_tx.send(());
                go.notified().await;
            }
            Ok(())
        })
    });
    (reached, go)
}

fn hh(n: u32) -> HhNumber {
    HhNumber::new(n).unwrap()
}

#[tokio::test]
async fn an_erasure_stopped_after_its_tombstone_releases_nothing() {
    for (backend, store, _dir) in stores() {
        let v = vault_on(&store, kek());
        let sealed = v
            .put(hh(555_001), Bytes::from_static(b"scan"))
            .await
            .unwrap();
        store.fail(Op::Delete, "/subjects/");
        assert!(v.erase_patient(hh(555_001)).await.is_err(), "{backend}");
        let subject = v.subject_location(hh(555_001));
        assert!(exists(store.inner().as_ref(), &subject).await, "{backend}");
        assert_shredded(
            &v,
            hh(555_001),
            &sealed.cid,
            &format!("{backend}, subject delete failed"),
        )
        .await;
        assert!(matches!(
            v.put(hh(555_001), Bytes::from_static(b"more")).await,
            Err(VaultError::Conflict(_))
        ));
        store.clear();
        v.erase_patient(hh(555_001)).await.unwrap();
        assert!(!exists(store.inner().as_ref(), &subject).await, "{backend}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_put_racing_an_erasure_leaves_no_subject_key() {
    // The put looked for the tombstone, then the erasure ran to its end,
    // then the put creates the patient's subject record.
    for (backend, store, _dir) in stores() {
        let v = Arc::new(vault_on(&store, kek()));
        let patient = hh(555_002);
        let (mut reached, go) = hold(&store, Op::Put, format!("/subjects/{patient}"));
        let putting = tokio::spawn({
            let v = Arc::clone(&v);
            async move { v.put(patient, Bytes::from_static(b"late")).await }
        });
        reached.recv().await.unwrap();
        v.erase_patient(patient).await.unwrap();
        go.notify_one();
        let err = putting.await.unwrap().unwrap_err();
        assert!(matches!(err, VaultError::Conflict(_)), "{backend}: {err:?}");
        assert!(
            !exists(store.inner().as_ref(), &v.subject_location(patient)).await,
            "{backend}: a subject key outlived the erasure"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotation_never_writes_back_a_subject_key_erased_while_it_runs() {
    // The erasure runs to its end while the rotation holds the record it
    // read (Get) or is about to write it back (Put).
    for op in [Op::Get, Op::Put] {
        for (backend, store, _dir) in stores() {
            let what = format!("{backend}, erasure during the rotation's {op:?}");
            let v = Arc::new(vault_on(&store, kek()));
            let mut kept: Vec<(SealedObject, Bytes)> = Vec::new();
            for i in 0..3u8 {
                let data = Bytes::from(vec![i; 100]);
                kept.push((
                    v.put(hh(555_100 + u32::from(i)), data.clone())
                        .await
                        .unwrap(),
                    data,
                ));
            }
            let target = hh(555_200);
            let theirs = v
                .put(target, Bytes::from_static(b"to be erased"))
                .await
                .unwrap();
            let (mut reached, go) = hold(&store, op, format!("/subjects/{target}"));
            let rotating = tokio::spawn({
                let v = Arc::clone(&v);
                async move { v.rotate_kek(other_kek()).await }
            });
            reached.recv().await.unwrap();
            // The held request belongs to the rotation; the erasure's own
            // requests pass (the hold fires once).
            v.erase_patient(target).await.unwrap();
            go.notify_one();
            let report = rotating.await.unwrap().unwrap();
            assert_eq!(report.rewrapped, 3, "{what}: {report:?}");
            assert_eq!(report.erased, 1, "{what}: {report:?}");
            assert!(
                !exists(store.inner().as_ref(), &v.subject_location(target)).await,
                "{what}: the erased subject record was written back"
            );
            assert_shredded(&v, target, &theirs.cid, &what).await;
            let new_only = vault_on(&store, other_kek());
            for (i, (sealed, data)) in (0u32..).zip(&kept) {
                let owner = hh(555_100 + i);
                assert_eq!(
                    &new_only.get(owner, &sealed.cid).await.unwrap(),
                    data,
                    "{what}"
                );
            }
            assert_shredded(&new_only, target, &theirs.cid, &what).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_beside_many_concurrent_erasures_resurrects_none() {
    for (backend, store, _dir) in stores() {
        let v = Arc::new(vault_on(&store, kek()));
        let mut sealed = Vec::new();
        for i in 0..40u32 {
            sealed.push(
                v.put(hh(556_000 + i), Bytes::from(vec![i as u8; 64]))
                    .await
                    .unwrap(),
            );
        }
        let rotating = tokio::spawn({
            let v = Arc::clone(&v);
            async move { v.rotate_kek(other_kek()).await }
        });
        let erasing = tokio::spawn({
            let v = Arc::clone(&v);
            async move {
                for i in (0..40u32).step_by(2) {
                    v.erase_patient(hh(556_000 + i)).await.unwrap();
                    tokio::task::yield_now().await;
                }
            }
        });
        let report = rotating.await.unwrap().unwrap();
        erasing.await.unwrap();
        assert!(report.rewrapped >= 20, "{backend}: {report:?}");
        for (i, s) in sealed.iter().enumerate() {
            let patient = hh(556_000 + i as u32);
            let key_left = exists(store.inner().as_ref(), &v.subject_location(patient)).await;
            if i % 2 == 0 {
                assert!(!key_left, "{backend}: patient {i}'s erased key is back");
                assert_shredded(&v, patient, &s.cid, backend).await;
            } else {
                assert!(key_left, "{backend}: patient {i} lost their key");
                assert_eq!(v.get(patient, &s.cid).await.unwrap(), vec![i as u8; 64]);
            }
        }
    }
}

#[tokio::test]
async fn an_interrupted_rotation_breaks_no_read() {
    for (backend, store, _dir) in stores() {
        let v = vault_on(&store, kek());
        let mut sealed = Vec::new();
        for i in 0..6u8 {
            let data = Bytes::from(vec![i; 1_000]);
            let owner = hh(557_000 + u32::from(i));
            sealed.push((v.put(owner, data.clone()).await.unwrap(), data));
        }
        // The third rewrite fails, as a crash or a network error would.
        let puts = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        store.set(move |op, path| {
            let failure = (op == Op::Put
                && path.as_ref().contains("/subjects/")
                && puts.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 2)
                .then(|| injected(op, path));
            Box::pin(async move { failure.map_or(Ok(()), Err) })
        });
        let err = v.rotate_kek(other_kek()).await.unwrap_err();
        assert!(
            matches!(err, healthledger_vault::Error::Store { .. }),
            "{backend}: {err:?}"
        );
        store.clear();
        assert_eq!(v.key_id().await, "test-kek-2", "{backend}");
        // Half the records are under each KEK; every reader holding both
        // reads everything, whichever KEK it writes under.
        let both_new_first = vault_on(&store, other_kek())
            .add_previous(vec![Arc::new(kek())])
            .unwrap();
        let both_old_first = vault_on(&store, kek())
            .add_previous(vec![Arc::new(other_kek())])
            .unwrap();
        for reader in [&v, &both_new_first, &both_old_first] {
            for (i, (s, data)) in (0u32..).zip(&sealed) {
                let owner = hh(557_000 + i);
                assert_eq!(&reader.get(owner, &s.cid).await.unwrap(), data, "{backend}");
                assert_eq!(reader.verify(&s.cid).await.unwrap(), ObjectStatus::Intact);
            }
        }
        // A reader holding only the old KEK is told a rotation is under way
        // for the records already under the new one (and reads the rest).
        let old_only = vault_on(&store, kek());
        let mut in_progress = 0;
        for (i, (s, data)) in (0u32..).zip(&sealed) {
            let owner = hh(557_000 + i);
            match old_only.check_keys(&s.cid).await {
                Ok(_) => assert_eq!(&old_only.get(owner, &s.cid).await.unwrap(), data),
                Err(healthledger_vault::Error::RotationInProgress {
                    key_id, from, to, ..
                }) => {
                    assert_eq!(
                        (key_id.as_str(), from.as_str(), to.as_str()),
                        ("test-kek-2", "test-kek-1", "test-kek-2")
                    );
                    // The port keeps the reason.
                    let err = old_only.get(owner, &s.cid).await.unwrap_err();
                    assert_eq!(
                        err.integrity_reason(),
                        Some(IntegrityReason::RotationInProgress),
                        "{backend}: {err:?}"
                    );
                    in_progress += 1;
                }
                Err(e) => panic!("{backend}: {e:?}"),
            }
        }
        // Two rewrites went through before the failure on memory; on a
        // file system the first one's conditional attempt counts as a put.
        assert!(
            (1..sealed.len()).contains(&in_progress),
            "{backend}: {in_progress}"
        );
        // An object written in between is readable too.
        let during = v
            .put(hh(557_100), Bytes::from_static(b"mid-rotation"))
            .await
            .unwrap();
        assert_eq!(
            &both_old_first.get(hh(557_100), &during.cid).await.unwrap()[..],
            b"mid-rotation"
        );
        // Resuming finishes it; the old KEK alone then opens nothing.
        let report = v.rotate_kek(other_kek()).await.unwrap();
        assert_eq!(
            report.rewrapped + report.already_current,
            7,
            "{backend}: {report:?}"
        );
        assert!(report.rewrapped >= 1, "{backend}: {report:?}");
        for (i, (s, _)) in (0u32..).zip(&sealed) {
            assert!(
                matches!(
                    old_only.get(hh(557_000 + i), &s.cid).await,
                    Err(e) if e.integrity_reason() == Some(IntegrityReason::MissingKek)
                ),
                "{backend}"
            );
            // The rotation is over: the old KEK is simply not the key.
            assert!(
                matches!(
                    old_only.check_keys(&s.cid).await,
                    Err(healthledger_vault::Error::MissingKek { .. })
                ),
                "{backend}"
            );
        }
        let stored = read(store.inner().as_ref(), &v.key_location(&during.cid)).await;
        assert!(!stored.is_empty());
    }
}

#[tokio::test]
async fn a_kek_reusing_an_id_with_other_bytes_is_refused() {
    let store = HookStore::new(Arc::new(InMemory::new()));
    let v = vault_on(&store, kek());
    let impostor = Kek::new("test-kek-1", [1; 32]).unwrap();
    let err = v.rotate_kek(impostor).await.unwrap_err();
    assert!(
        matches!(err, healthledger_vault::Error::Config { .. }),
        "{err:?}"
    );
    let err = vault_on(&store, kek())
        .add_previous(vec![Arc::new(Kek::new("test-kek-1", [2; 32]).unwrap())])
        .unwrap_err();
    assert!(
        matches!(err, healthledger_vault::Error::Config { .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn file_vaults_fsync_every_write() {
    let dir = tempfile::tempdir().unwrap();
    let v = crate::builder(
        &format!("file://{}/content", dir.path().display()),
        &format!("file://{}/keys", dir.path().display()),
    )
    .build()
    .unwrap();
    // object_store's local store shows its settings in Debug only.
    for shown in [format!("{:?}", v.store()), format!("{:?}", v.key_store())] {
        assert!(shown.contains("fsync: true"), "{shown}");
    }
    let sealed = v
        .put(crate::patient(), Bytes::from_static(b"durable"))
        .await
        .unwrap();
    assert_eq!(
        &v.get(crate::patient(), &sealed.cid).await.unwrap()[..],
        b"durable"
    );
}
