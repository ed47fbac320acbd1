//! The core `VaultPort` conformance suite, unchanged, on every backend, and
//! the configuration rules around it: a key store of its own, a stated
//! erasure horizon, CID profiles recorded per object.

use std::time::Duration;

use bytes::Bytes;
use healthledger_core::VaultPort;
use healthledger_core::testing::vault;
use healthledger_vault::{CidOptions, Error, Vault};

use crate::support::StoreBackdoor;
use crate::{HORIZON, builder, kek, patient};

#[tokio::test]
async fn memory_backend_passes_the_conformance_suite() {
    let v = builder("memory://", "memory://").build().unwrap();
    vault::all(&v, &StoreBackdoor(&v)).await;
    assert_eq!(v.health().await.unwrap().backend, "memory://");
}

#[tokio::test]
async fn file_backend_passes_the_conformance_suite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("file://{}/content", dir.path().display());
    let keys = format!("file://{}/keys", dir.path().display());
    let v = builder(&url, &keys).build().unwrap();
    vault::all(&v, &StoreBackdoor(&v)).await;
    let health = v.health().await.unwrap();
    assert!(health.backend.ends_with("/content"), "{health:?}");
    assert!(health.key_store.ends_with("/keys"), "{health:?}");
    // The suite rotated the KEK.
    assert!(health.key_id.starts_with("suite-kek-"), "{health:?}");
    assert_eq!(health.erasure_horizon, HORIZON);
    // Objects really are on disk, under their CID, and are not plaintext;
    // their keys are in the other directory.
    let sealed = v
        .put(patient(), Bytes::from_static(b"confidential lab result"))
        .await
        .unwrap();
    let name = sealed.cid.to_string();
    let stored = std::fs::read(dir.path().join("content/objects").join(&name)).unwrap();
    assert_eq!(stored.len() as u64, sealed.stored_size);
    assert!(!stored.windows(12).any(|w| w == b"confidential"));
    assert!(dir.path().join("keys/keys").join(&name).is_file());
    assert!(dir.path().join("keys/subjects/555555").is_file());
    assert!(!dir.path().join("content/keys").exists());
    // And its CID is the Kubo CIDv1 of exactly those bytes.
    assert_eq!(
        *sealed.cid.inner(),
        healthledger_vault::compute_cid(&stored[..], CidOptions::KUBO_V1).unwrap()
    );
}

#[tokio::test]
async fn cidv0_vaults_pass_the_conformance_suite() {
    let v = builder("memory://", "memory://")
        .cid_options(CidOptions::KUBO_V0)
        .build()
        .unwrap();
    vault::all(&v, &StoreBackdoor(&v)).await;
    let sealed = v.put(patient(), Bytes::from_static(b"x")).await.unwrap();
    assert!(sealed.cid.to_string().starts_with("Qm"), "{}", sealed.cid);
}

#[tokio::test]
async fn objects_stay_readable_when_the_cid_defaults_change() {
    // Each object's CID profile is recorded with its key: a vault reopened
    // with other CID options still verifies the older objects.
    let dir = tempfile::tempdir().unwrap();
    let url = format!("file://{}/content", dir.path().display());
    let keys = format!("file://{}/keys", dir.path().display());
    let data = Bytes::from(vec![7u8; 700_000]);
    let small_chunks = CidOptions {
        chunk_size: 100_000,
        ..CidOptions::KUBO_V1
    };
    let mut sealed = Vec::new();
    for options in [CidOptions::KUBO_V0, small_chunks, CidOptions::KUBO_V1] {
        let v = builder(&url, &keys).cid_options(options).build().unwrap();
        sealed.push(v.put(patient(), data.clone()).await.unwrap().cid);
    }
    for options in [CidOptions::KUBO_V1, CidOptions::KUBO_V0, small_chunks] {
        let v = builder(&url, &keys).cid_options(options).build().unwrap();
        for cid in &sealed {
            assert_eq!(
                v.get(patient(), cid).await.unwrap(),
                data,
                "{cid} under {options:?}"
            );
            assert_eq!(
                v.verify(cid).await.unwrap(),
                healthledger_core::ObjectStatus::Intact
            );
        }
    }
}

#[test]
fn the_key_store_must_be_configured_and_lie_apart_from_the_content() {
    let missing = Vault::builder("memory://")
        .erasure_horizon(HORIZON)
        .kek(kek())
        .build()
        .unwrap_err();
    assert!(
        matches!(&missing, Error::Config { what, .. } if *what == "key store URL"),
        "{missing:?}"
    );
    let no_horizon = Vault::builder("memory://")
        .key_store("memory://")
        .kek(kek())
        .build()
        .unwrap_err();
    assert!(
        matches!(&no_horizon, Error::Config { what, .. } if *what == "erasure horizon"),
        "{no_horizon:?}"
    );
    let dir = tempfile::tempdir().unwrap();
    let root = format!("file://{}", dir.path().display());
    for (content, keys) in [
        (root.clone(), root.clone()),
        (root.clone(), format!("{root}/keys")),
        (format!("{root}/content"), root.clone()),
        (format!("{root}/content/"), format!("{root}/content")),
    ] {
        let err = builder(&content, &keys).build().unwrap_err();
        assert!(
            matches!(&err, Error::Config { what, .. } if *what == "key store URL"),
            "{content} with keys at {keys}: {err:?}"
        );
    }
    // Siblings are apart, even when one name starts with the other.
    builder(&format!("{root}/vault"), &format!("{root}/vault-keys"))
        .build()
        .unwrap();
}

#[tokio::test]
async fn health_reports_the_key_store_and_the_erasure_horizon() {
    let v = builder("memory://", "memory://")
        .erasure_horizon(Duration::from_secs(90 * 24 * 3600))
        .build()
        .unwrap();
    let health = v.health().await.unwrap();
    assert_eq!(health.erasure_horizon, Duration::from_secs(90 * 24 * 3600));
    assert_eq!(health.key_store, "memory://");
}

#[tokio::test]
async fn health_never_shows_credentials() {
    // A URL the store accepts: its query (where tokens go) is not reported.
    let v = builder("memory:///?token=abc", "memory:///?token=def")
        .build()
        .unwrap();
    let health = v.health().await.unwrap();
    assert_eq!(health.backend, "memory:///");
    assert_eq!(health.key_store, "memory:///");
    assert!(!format!("{v:?}").contains("abc") && !format!("{v:?}").contains("def"));
    // A URL the store refuses (a memory store has no host): the error
    // quotes it without its password.
    for (content, keys) in [
        ("memory://user:hunter2@host/", "memory://"),
        ("memory://", "memory://user:hunter2@host/"),
    ] {
        let err = builder(content, keys).build().unwrap_err();
        assert!(matches!(err, Error::Config { .. }), "{err:?}");
        assert!(!err.to_string().contains("hunter2"), "{err}");
        assert!(!format!("{err:?}").contains("hunter2"), "{err:?}");
    }
}

#[test]
fn builder_debug_shows_no_secret() {
    let builder = Vault::builder("memory://")
        .option("aws_secret_access_key", "very-secret-value")
        .key_store("memory://")
        .key_store_option("aws_secret_access_key", "other-secret-value")
        .kek(healthledger_vault::Kek::new("k1", [0xAB; 32]).unwrap());
    let shown = format!("{builder:?}");
    assert!(
        shown.contains("aws_secret_access_key") && shown.contains("k1"),
        "{shown}"
    );
    assert!(
        !shown.contains("very-secret-value")
            && !shown.contains("other-secret-value")
            && !shown.contains("171"),
        "{shown}"
    );
}

#[tokio::test]
async fn a_fresh_file_vault_is_healthy_before_its_first_object() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("file://{}/not-yet-created", dir.path().display());
    let keys = format!("file://{}/keys-not-yet-created", dir.path().display());
    let v = builder(&url, &keys).build().unwrap();
    assert_eq!(v.health().await.unwrap().key_id, "test-kek-1");
}
