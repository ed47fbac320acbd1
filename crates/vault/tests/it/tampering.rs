//! Tampering, shredding and key rotation: every single-bit flip of the
//! ciphertext or the key record is `Integrity` with reason `Tampered`; dropped, duplicated and
//! swapped segments are detected; shredding is final; rotation keeps
//! everything readable under the new KEK only.

use bytes::Bytes;
use futures::StreamExt;
use healthledger_core::IntegrityReason::{self, MissingKek, MissingKey, Tampered, WrongKek};
use healthledger_core::{Cid, HhNumber, ObjectStatus, VaultError, VaultPort};
use healthledger_vault::seal::{HEADER_LEN, SEGMENT_SIZE, TAG_LEN};
use healthledger_vault::{CidOptions, Vault};
use object_store::ObjectStoreExt;
use object_store::memory::InMemory;
use object_store::path::Path;

use crate::support::{flip_bit, read, write};
use crate::{kek, memory_vault, other_kek, patient, vault_on};

/// Asserts that `result` is an `Integrity` error of `reason`.
fn assert_integrity(result: Result<Bytes, VaultError>, reason: IntegrityReason, what: &str) {
    match result {
        Err(e) if e.integrity_reason() == Some(reason) => {}
        other => panic!("{what}: expected Integrity({reason:?}), got {other:?}"),
    }
}

/// Flips every bit of the stored bytes at `path` in turn and asserts that
/// each flip makes `get` an `Integrity` error and `verify` report corruption;
/// then restores the original and asserts the object is intact again.
async fn assert_every_bit_flip_is_caught(v: &Vault, store: &InMemory, cid: &Cid, path: &Path) {
    let patient = crate::patient();
    let original = read(store, path).await;
    for bit in 0..original.len() * 8 {
        write(store, path, flip_bit(&original, bit)).await;
        assert_integrity(v.get(patient, cid).await, Tampered, &format!("bit {bit}"));
        assert!(
            matches!(v.verify(cid).await.unwrap(), ObjectStatus::Corrupt(_)),
            "bit {bit}"
        );
    }
    write(store, path, original).await;
    assert_eq!(v.verify(cid).await.unwrap(), ObjectStatus::Intact);
}

#[tokio::test]
async fn every_single_bit_flip_of_the_ciphertext_is_an_integrity_error() {
    let (v, store) = memory_vault(kek());
    let data = Bytes::from_static(b"HbA1c 5.4 %, fasting glucose 92 mg/dL");
    let sealed = v.put(crate::patient(), data.clone()).await.unwrap();
    let path = v.object_location(&sealed.cid);
    assert_every_bit_flip_is_caught(&v, &store, &sealed.cid, &path).await;
    assert_eq!(v.get(crate::patient(), &sealed.cid).await.unwrap(), data);
}

#[tokio::test]
async fn every_single_bit_flip_of_the_key_record_is_an_integrity_error() {
    let (v, store) = memory_vault(kek());
    let sealed = v
        .put(crate::patient(), Bytes::from_static(b"x-ray report"))
        .await
        .unwrap();
    let path = v.key_location(&sealed.cid);
    assert_every_bit_flip_is_caught(&v, &store, &sealed.cid, &path).await;
}

/// The sealed bytes of an object of `segments` full segments plus a short
/// last one, split into header and sealed segments.
fn split(sealed: &[u8]) -> (Vec<u8>, Vec<Vec<u8>>) {
    let header = sealed[..HEADER_LEN].to_vec();
    let segments = sealed[HEADER_LEN..]
        .chunks(SEGMENT_SIZE + TAG_LEN)
        .map(<[u8]>::to_vec)
        .collect();
    (header, segments)
}

#[tokio::test]
async fn dropped_duplicated_and_swapped_segments_are_detected() {
    let (v, store) = memory_vault(kek());
    let data: Bytes = (0..3 * SEGMENT_SIZE + 100)
        .map(|i| (i % 253) as u8)
        .collect::<Vec<_>>()
        .into();
    let sealed = v.put(crate::patient(), data).await.unwrap();
    let path = v.object_location(&sealed.cid);
    let key_path = v.key_location(&sealed.cid);
    let original = read(&store, &path).await;
    let record = read(&store, &key_path).await;
    let (header, segs) = split(&original);
    assert_eq!(segs.len(), 4);
    let variants: Vec<(&str, Vec<&Vec<u8>>)> = vec![
        ("drop the first", vec![&segs[1], &segs[2], &segs[3]]),
        ("drop a middle one", vec![&segs[0], &segs[2], &segs[3]]),
        ("drop the last", vec![&segs[0], &segs[1], &segs[2]]),
        (
            "duplicate one",
            vec![&segs[0], &segs[1], &segs[1], &segs[2], &segs[3]],
        ),
        (
            "duplicate the last",
            vec![&segs[0], &segs[1], &segs[2], &segs[3], &segs[3]],
        ),
        ("swap two", vec![&segs[1], &segs[0], &segs[2], &segs[3]]),
        (
            "swap with the last",
            vec![&segs[0], &segs[1], &segs[3], &segs[2]],
        ),
    ];
    for (what, order) in variants {
        let mut tampered = header.clone();
        for seg in order {
            tampered.extend_from_slice(seg);
        }
        // Under the old CID: the tag checks (and the CID) catch it.
        write(&store, &path, tampered.clone()).await;
        assert_integrity(v.get(crate::patient(), &sealed.cid).await, Tampered, what);
        let mut stream = v.get_stream(crate::patient(), &sealed.cid).await.unwrap();
        let mut ended_with_integrity = false;
        while let Some(item) = stream.next().await {
            if let Err(e) = item {
                ended_with_integrity = e.integrity_reason() == Some(Tampered);
                break;
            }
        }
        assert!(
            ended_with_integrity,
            "{what}: get_stream must end with Integrity"
        );
        // Re-addressed under its own CID with the key record copied over:
        // the record is bound to the original CID and does not unwrap.
        let cid = healthledger_core::Cid::from_inner(
            healthledger_vault::compute_cid(&tampered[..], CidOptions::KUBO_V1).unwrap(),
        );
        write(&store, &v.object_location(&cid), tampered).await;
        write(&store, &v.key_location(&cid), record.clone()).await;
        assert_integrity(v.get(crate::patient(), &cid).await, Tampered, what);
    }
}

#[tokio::test]
async fn after_shredding_nothing_reads_the_content_even_from_a_surviving_copy() {
    let (v, store) = memory_vault(kek());
    let data = Bytes::from_static(b"psychiatric evaluation");
    let sealed = v.put(crate::patient(), data).await.unwrap();
    let path = v.object_location(&sealed.cid);
    let copy = read(&store, &path).await;
    v.shred(&sealed.cid).await.unwrap();
    for _ in 0..2 {
        // The ciphertext survives somewhere (an IPFS pin, a backup) and
        // comes back.
        write(&store, &path, copy.clone()).await;
        let err = v.get(crate::patient(), &sealed.cid).await.unwrap_err();
        assert!(matches!(err, VaultError::NotFound(_)), "{err}");
        assert!(matches!(
            v.get_stream(crate::patient(), &sealed.cid).await.map(drop),
            Err(VaultError::NotFound(_))
        ));
        assert_eq!(v.verify(&sealed.cid).await.unwrap(), ObjectStatus::Shredded);
        v.shred(&sealed.cid).await.unwrap();
    }
    write(&store, &path, copy).await;
    // A vault reopened on the same store agrees.
    let reopened = vault_on(store.clone(), kek());
    assert!(matches!(
        reopened.get(crate::patient(), &sealed.cid).await,
        Err(VaultError::NotFound(_))
    ));
}

#[tokio::test]
async fn rotating_the_kek_rewraps_one_record_per_patient_and_retires_the_old_kek() {
    let (v, store) = memory_vault(kek());
    let owner = |i: u8| HhNumber::new(555_550 + u32::from(i % 3)).unwrap();
    let mut sealed = Vec::new();
    for i in 0..5u8 {
        let data = Bytes::from(vec![i; 1000 + usize::from(i) * 70_000]);
        sealed.push((v.put(owner(i), data.clone()).await.unwrap(), data));
    }
    let shredded = v.put(owner(0), Bytes::from_static(b"gone")).await.unwrap();
    v.shred(&shredded.cid).await.unwrap();
    // What rotation must not touch: the content and the data key records.
    let mut before = Vec::new();
    for (s, _) in &sealed {
        before.push((
            read(&store, &v.object_location(&s.cid)).await,
            read(&store, &v.key_location(&s.cid)).await,
        ));
    }

    let report = v.rotate_kek(other_kek()).await.unwrap();
    assert_eq!((report.rewrapped, report.erased), (3, 0), "{report:?}");
    assert_eq!(v.health().await.unwrap().key_id, "test-kek-2");
    for (i, ((s, data), (content, record))) in (0u8..).zip(sealed.iter().zip(&before)) {
        assert_eq!(&v.get(owner(i), &s.cid).await.unwrap(), data);
        assert_eq!(&read(&store, &v.object_location(&s.cid)).await, content);
        assert_eq!(&read(&store, &v.key_location(&s.cid)).await, record);
    }
    assert_eq!(
        v.verify(&shredded.cid).await.unwrap(),
        ObjectStatus::Shredded
    );

    let old = vault_on(store.clone(), kek());
    for (i, (s, _)) in (0u8..).zip(&sealed) {
        assert_integrity(
            old.get(owner(i), &s.cid).await,
            MissingKek,
            "old KEK after rotation",
        );
    }
    let new = vault_on(store.clone(), other_kek());
    for (i, (s, data)) in (0u8..).zip(&sealed) {
        assert_eq!(&new.get(owner(i), &s.cid).await.unwrap(), data);
    }
    // A rotation that stopped half-way resumes from a vault still on the
    // old KEK: the records already under the new one are checked and skipped.
    let again = old.rotate_kek(other_kek()).await.unwrap();
    assert_eq!((again.rewrapped, again.already_current), (0, 3));
    // Rotating again to the KEK in use resumes: nothing is left to do.
    let again = v.rotate_kek(other_kek()).await.unwrap();
    assert_eq!((again.rewrapped, again.already_current), (0, 3));
}

mod random_flips {
    //! Random single-bit flips anywhere in a multi-segment object: `get`
    //! says `Integrity`, and `get_stream` releases only a correct prefix of
    //! the plaintext before it ends with `Integrity`.

    use futures::StreamExt;
    use healthledger_core::VaultError;
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 16, ..ProptestConfig::default() })]

        #[test]
        fn a_flipped_bit_anywhere_releases_no_wrong_plaintext(position in any::<prop::sample::Index>(), bit in 0u8..8) {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            runtime.block_on(async {
                let (v, store) = memory_vault(kek());
                let data: Bytes = (0..3 * SEGMENT_SIZE + 1234)
                    .map(|i| (i * 7 % 251) as u8)
                    .collect::<Vec<u8>>()
                    .into();
                let sealed = v.put(crate::patient(), data.clone()).await.unwrap();
                let path = v.object_location(&sealed.cid);
                let bytes = read(&store, &path).await;
                let at = position.index(bytes.len());
                write(&store, &path, flip_bit(&bytes, at * 8 + usize::from(bit))).await;
                assert_integrity(v.get(crate::patient(), &sealed.cid).await, Tampered, &format!("byte {at} bit {bit}"));
                let mut released = Vec::new();
                let mut stream = v.get_stream(crate::patient(), &sealed.cid).await.unwrap();
                let mut error = None;
                while let Some(item) = stream.next().await {
                    match item {
                        Ok(b) => released.extend_from_slice(&b),
                        Err(e) => {
                            error = Some(e);
                            break;
                        }
                    }
                }
                assert_eq!(error.as_ref().and_then(VaultError::integrity_reason), Some(Tampered), "byte {at}: {error:?}");
                assert!(released.len() < data.len(), "byte {at}");
                assert_eq!(&released[..], &data[..released.len()], "byte {at}");
            });
        }
    }
}

#[tokio::test]
async fn verify_tells_a_lost_key_record_or_ciphertext_apart_from_a_missing_object() {
    let (v, store) = memory_vault(kek());
    let sealed = v
        .put(crate::patient(), Bytes::from_static(b"ecg trace"))
        .await
        .unwrap();
    let key_path = v.key_location(&sealed.cid);
    let record = read(&store, &key_path).await;
    store.delete(&key_path).await.unwrap();
    assert!(matches!(
        v.verify(&sealed.cid).await.unwrap(),
        ObjectStatus::Corrupt(_)
    ));
    assert_integrity(
        v.get(crate::patient(), &sealed.cid).await,
        MissingKey,
        "key record lost",
    );
    write(&store, &key_path, record).await;
    let object = v.object_location(&sealed.cid);
    store.delete(&object).await.unwrap();
    match v.verify(&sealed.cid).await.unwrap() {
        ObjectStatus::Corrupt(why) => assert!(why.contains("ciphertext is missing"), "{why}"),
        other => panic!("expected Corrupt, got {other:?}"),
    }
    store.delete(&key_path).await.unwrap();
    assert_eq!(v.verify(&sealed.cid).await.unwrap(), ObjectStatus::Missing);
}

#[tokio::test]
async fn another_key_under_the_same_kek_id_is_a_wrong_kek_through_the_port() {
    let (v, store) = memory_vault(kek());
    let sealed = v
        .put(patient(), Bytes::from_static(b"x-ray"))
        .await
        .unwrap();
    let impostor = vault_on(
        store,
        healthledger_vault::Kek::new("test-kek-1", [8; 32]).unwrap(),
    );
    assert_integrity(
        impostor.get(crate::patient(), &sealed.cid).await,
        WrongKek,
        "same id, other key",
    );
    assert!(matches!(
        impostor.verify(&sealed.cid).await.unwrap(),
        ObjectStatus::Corrupt(_)
    ));
}
