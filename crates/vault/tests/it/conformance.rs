//! The core `VaultPort` conformance suite, unchanged, on every backend.

use healthledger_core::VaultPort;
use healthledger_core::testing::vault;
use healthledger_vault::{CidOptions, Vault};

use crate::kek;
use crate::support::StoreBackdoor;

#[tokio::test]
async fn memory_backend_passes_the_conformance_suite() {
    let v = Vault::builder("memory://").kek(kek()).build().unwrap();
    vault::all(&v, &StoreBackdoor(&v)).await;
    assert_eq!(v.health().await.unwrap().backend, "memory://");
}

#[tokio::test]
async fn file_backend_passes_the_conformance_suite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("file://{}", dir.path().display());
    let v = Vault::builder(&url).kek(kek()).build().unwrap();
    vault::all(&v, &StoreBackdoor(&v)).await;
    let health = v.health().await.unwrap();
    assert!(health.backend.starts_with("file:///"), "{health:?}");
    assert_eq!(health.key_id, "test-kek-1");
    // Objects really are on disk, under their CID, and are not plaintext.
    let sealed = v
        .put(bytes::Bytes::from_static(b"confidential lab result"))
        .await
        .unwrap();
    let stored = std::fs::read(dir.path().join("objects").join(sealed.cid.to_string())).unwrap();
    assert_eq!(stored.len() as u64, sealed.stored_size);
    assert!(!stored.windows(12).any(|w| w == b"confidential"));
    // And its CID is the Kubo CIDv1 of exactly those bytes.
    assert_eq!(
        *sealed.cid.inner(),
        healthledger_vault::compute_cid(&stored[..], CidOptions::KUBO_V1).unwrap()
    );
}

#[tokio::test]
async fn cidv0_vaults_pass_the_conformance_suite() {
    let v = Vault::builder("memory://")
        .kek(kek())
        .cid_options(CidOptions::KUBO_V0)
        .build()
        .unwrap();
    vault::all(&v, &StoreBackdoor(&v)).await;
    let sealed = v.put(bytes::Bytes::from_static(b"x")).await.unwrap();
    assert!(sealed.cid.to_string().starts_with("Qm"), "{}", sealed.cid);
}

#[tokio::test]
async fn health_never_shows_credentials() {
    // A URL the store accepts: its query (where tokens go) is not reported.
    let v = Vault::builder("memory:///?token=abc")
        .kek(kek())
        .build()
        .unwrap();
    let backend = v.health().await.unwrap().backend;
    assert_eq!(backend, "memory:///");
    assert!(!format!("{v:?}").contains("abc"));
    // A URL the store refuses (a memory store has no host): the error
    // quotes it without its password.
    let err = Vault::builder("memory://user:hunter2@host/")
        .kek(kek())
        .build()
        .unwrap_err();
    assert!(
        matches!(err, healthledger_vault::Error::Config { .. }),
        "{err:?}"
    );
    assert!(!err.to_string().contains("hunter2"), "{err}");
    assert!(!format!("{err:?}").contains("hunter2"), "{err:?}");
}

#[test]
fn builder_debug_shows_no_secret() {
    let builder = Vault::builder("memory://")
        .option("aws_secret_access_key", "very-secret-value")
        .kek(healthledger_vault::Kek::new("k1", [0xAB; 32]).unwrap());
    let shown = format!("{builder:?}");
    assert!(
        shown.contains("aws_secret_access_key") && shown.contains("k1"),
        "{shown}"
    );
    assert!(
        !shown.contains("very-secret-value") && !shown.contains("171"),
        "{shown}"
    );
}

#[tokio::test]
async fn a_fresh_file_vault_is_healthy_before_its_first_object() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("file://{}/not-yet-created", dir.path().display());
    let v = Vault::builder(&url).kek(kek()).build().unwrap();
    assert_eq!(v.health().await.unwrap().key_id, "test-kek-1");
}
