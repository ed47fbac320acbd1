//! The [`VaultPort`] conformance suite: one `pub async fn` per behaviour over
//! `&dyn VaultPort`; [`all`] runs them in turn on one vault.

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt, stream};

use crate::{Cid, ObjectStatus, VaultError, VaultPort};

/// Runs every vault conformance test in turn.
pub async fn all(v: &dyn VaultPort) {
    put_then_get_round_trips(v).await;
    empty_objects_round_trip(v).await;
    streams_round_trip(v).await;
    unknown_cids_are_not_found(v).await;
    shredded_objects_are_gone_for_good(v).await;
    health_reports_the_backend(v).await;
}

/// Deterministic test content of `len` bytes.
pub fn content(len: usize, seed: u8) -> Bytes {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect::<Vec<u8>>()
        .into()
}

/// Sealed objects read back exactly; sealing the same bytes twice gives two
/// distinct, independently readable objects.
pub async fn put_then_get_round_trips(v: &dyn VaultPort) {
    let data = content(10_000, 1);
    let a = v.put(data.clone()).await.expect("put");
    assert_eq!(a.size, 10_000);
    assert!(
        a.stored_size >= a.size,
        "ciphertext is not shorter than plaintext"
    );
    assert_eq!(
        a.cid
            .to_string()
            .parse::<Cid>()
            .expect("CID displays and parses"),
        a.cid
    );
    assert_eq!(v.get(&a.cid).await.expect("get"), data);
    assert_eq!(
        v.verify(&a.cid).await.expect("verify"),
        ObjectStatus::Intact
    );
    let b = v.put(data.clone()).await.expect("put again");
    assert_ne!(
        a.cid, b.cid,
        "each object has its own data key, so its own CID"
    );
    assert_eq!(v.get(&b.cid).await.expect("get"), data);
}

/// The empty object is an object like any other.
pub async fn empty_objects_round_trip(v: &dyn VaultPort) {
    let sealed = v.put(Bytes::new()).await.expect("put empty");
    assert_eq!(sealed.size, 0);
    assert!(v.get(&sealed.cid).await.expect("get").is_empty());
}

/// A stream of odd-sized chunks seals to the same plaintext, which streams
/// back out.
pub async fn streams_round_trip(v: &dyn VaultPort) {
    let data = content(700_001, 7);
    let chunks: Vec<Result<Bytes, VaultError>> = data
        .chunks(33_333)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    let sealed = v
        .put_stream(stream::iter(chunks).boxed())
        .await
        .expect("put_stream");
    assert_eq!(sealed.size, data.len() as u64);
    let out: Vec<Bytes> = v
        .get_stream(&sealed.cid)
        .await
        .expect("get_stream")
        .try_collect()
        .await
        .expect("stream");
    assert_eq!(out.concat(), data.to_vec());
    assert_eq!(v.get(&sealed.cid).await.expect("get"), data);
}

/// A CID the vault never stored is `NotFound` to read and `Missing` to
/// verify.
pub async fn unknown_cids_are_not_found(v: &dyn VaultPort) {
    let cid = super::fixtures::cid_of(b"never stored in this vault");
    let err = v.get(&cid).await.expect_err("unknown");
    assert!(matches!(err, VaultError::NotFound(_)), "{err}");
    assert!(matches!(
        v.get_stream(&cid).await.map(drop),
        Err(VaultError::NotFound(_))
    ));
    assert_eq!(v.verify(&cid).await.expect("verify"), ObjectStatus::Missing);
    let err = v.shred(&cid).await.expect_err("shred unknown");
    assert!(matches!(err, VaultError::NotFound(_)), "{err}");
}

/// After shredding, nothing reads the content again; shredding twice is
/// fine; other objects are untouched.
pub async fn shredded_objects_are_gone_for_good(v: &dyn VaultPort) {
    let keep = v.put(content(1_000, 3)).await.expect("put");
    let gone = v.put(content(1_000, 4)).await.expect("put");
    v.shred(&gone.cid).await.expect("shred");
    let err = v.get(&gone.cid).await.expect_err("shredded");
    assert!(matches!(err, VaultError::NotFound(_)), "{err}");
    assert_eq!(
        v.verify(&gone.cid).await.expect("verify"),
        ObjectStatus::Shredded
    );
    v.shred(&gone.cid).await.expect("shred twice");
    assert_eq!(v.get(&keep.cid).await.expect("get"), content(1_000, 3));
}

/// Health names the backend and key without secrets.
pub async fn health_reports_the_backend(v: &dyn VaultPort) {
    let h = v.health().await.expect("health");
    assert!(!h.backend.is_empty());
    assert!(!h.key_id.is_empty());
}
