//! Decrypt anywhere, pin anywhere: a sealed object exported as a CAR file
//! re-reads with every block hashing to its CID, its root the object's CID
//! and every block reachable from it; its raw leaves are the stored
//! ciphertext, which the public opener decrypts with the object's key
//! material (handed over, or recovered from a copy of the key store), under
//! the same verification as the vault's reads.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt, stream};
use healthledger_core::testing::vault::content;
use healthledger_core::{Cid, IntegrityReason, VaultError, VaultPort};
use healthledger_vault::{
    CidOptions, CidVersion, Error, ObjectKey, open_sealed, open_sealed_stream,
};
use iroh_car::CarReader;
use sha2::{Digest, Sha256};

use crate::support::{flip_bit, read};
use crate::{kek, memory_vault, patient};

const RAW: u64 = 0x55;
const DAG_PB: u64 = 0x70;

/// Reads one protobuf varint from the front of `bytes`.
fn varint(bytes: &mut &[u8]) -> u64 {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let (b, rest) = bytes.split_first().expect("truncated varint");
        *bytes = rest;
        value |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return value;
        }
    }
    panic!("varint too long")
}

/// The CIDs a dag-pb node links to (`PBNode.Links[].Hash`).
fn links(mut node: &[u8]) -> Vec<cid::Cid> {
    let mut found = Vec::new();
    while !node.is_empty() {
        let key = varint(&mut node);
        assert_eq!(key & 7, 2, "dag-pb fields are length-delimited");
        let len = usize::try_from(varint(&mut node)).unwrap();
        let (field, rest) = node.split_at(len);
        node = rest;
        if key >> 3 == 2 {
            let mut link = field;
            let link_key = varint(&mut link);
            assert_eq!(link_key, (1 << 3) | 2, "a link starts with its Hash");
            let hash_len = usize::try_from(varint(&mut link)).unwrap();
            found.push(cid::Cid::try_from(&link[..hash_len]).unwrap());
        }
    }
    found
}

/// Re-reads `car` and checks it: one root, `root`; every block's bytes hash
/// (sha2-256) to its CID; every link resolves; every block is reachable
/// from the root. Returns the blocks in file order.
async fn check_car(car: &[u8], root: &Cid) -> Vec<(cid::Cid, Vec<u8>)> {
    let reader = CarReader::new(car).await.unwrap();
    assert_eq!(reader.header().roots(), &[*root.inner()]);
    let blocks: Vec<(cid::Cid, Vec<u8>)> = reader.stream().try_collect().await.unwrap();
    let by_cid: HashMap<cid::Cid, &Vec<u8>> = blocks.iter().map(|(c, b)| (*c, b)).collect();
    for (cid, block) in &blocks {
        assert_eq!(cid.hash().code(), 0x12, "{cid}: sha2-256");
        assert_eq!(cid.hash().digest(), &Sha256::digest(block)[..], "{cid}");
        assert!([RAW, DAG_PB].contains(&cid.codec()), "{cid}: codec");
    }
    let mut seen = HashSet::new();
    let mut todo = vec![*root.inner()];
    while let Some(cid) = todo.pop() {
        let block = by_cid
            .get(&cid)
            .unwrap_or_else(|| panic!("block {cid} is missing"));
        if seen.insert(cid) && cid.codec() == DAG_PB {
            todo.extend(links(block));
        }
    }
    assert_eq!(
        seen.len(),
        by_cid.len(),
        "every block is reachable from the root"
    );
    blocks
}

fn chunks(bytes: Vec<u8>) -> impl futures::Stream<Item = std::io::Result<Bytes>> + Send {
    let pieces: Vec<std::io::Result<Bytes>> = bytes
        .chunks(100_000)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    stream::iter(pieces)
}

#[tokio::test]
async fn a_car_export_re_reads_with_every_block_hash_and_the_root() {
    let small_chunks = CidOptions {
        chunk_size: 1_000,
        ..CidOptions::KUBO_V1
    };
    // Sizes across one leaf, several leaves, and (1,000-byte chunks, 174
    // links a node) a tree of three levels.
    let cases = [
        (CidOptions::KUBO_V1, 0),
        (CidOptions::KUBO_V1, 1_000),
        (CidOptions::KUBO_V1, 256 * 1024 - 32),
        (CidOptions::KUBO_V1, 3 * 1024 * 1024),
        (CidOptions::KUBO_V0, 700_000),
        (small_chunks, 200_000),
    ];
    for (options, len) in cases {
        let v = crate::builder("memory://", "memory://")
            .cid_options(options)
            .build()
            .unwrap();
        let data = content(len, 7);
        let sealed = v.put(patient(), data.clone()).await.unwrap();
        let mut car = Vec::new();
        let export = v.export_car(&sealed.cid, &mut car).await.unwrap();
        assert_eq!(export.root, sealed.cid);
        assert_eq!(export.bytes, car.len() as u64);
        let blocks = check_car(&car, &sealed.cid).await;
        assert_eq!(export.blocks, blocks.len() as u64);
        let stored = read(v.store(), &v.object_location(&sealed.cid)).await;
        if options.raw_leaves && options.cid_version == CidVersion::V1 {
            // The raw leaves, in file order, are the stored ciphertext, which
            // opens with the object's key away from the vault.
            let leaves: Vec<u8> = blocks
                .iter()
                .filter(|(c, _)| c.codec() == RAW)
                .flat_map(|(_, b)| b.clone())
                .collect();
            assert_eq!(leaves, stored, "{options:?} {len}");
            let key = v.object_key(&sealed.cid).await.unwrap();
            let opened = open_sealed(&sealed.cid, &key, chunks(leaves))
                .await
                .unwrap();
            assert_eq!(opened, data, "{options:?} {len}");
        }
    }
}

#[tokio::test]
async fn shredded_or_unknown_objects_export_nothing() {
    let (v, _) = memory_vault(kek());
    let sealed = v.put(patient(), Bytes::from_static(b"ct")).await.unwrap();
    v.shred(&sealed.cid).await.unwrap();
    let mut car = Vec::new();
    let err = v.export_car(&sealed.cid, &mut car).await.unwrap_err();
    assert!(matches!(err, Error::Shredded(_)), "{err:?}");
    let unknown = healthledger_core::testing::fixtures::cid_of(b"never sealed");
    let err = v.export_car(&unknown, &mut car).await.unwrap_err();
    assert!(matches!(err, Error::NotFound(_)), "{err:?}");
    assert!(car.is_empty());
}

#[tokio::test]
async fn the_opener_verifies_like_the_vault() {
    let (v, store) = memory_vault(kek());
    let data = content(500_000, 3);
    let sealed = v.put(patient(), data.clone()).await.unwrap();
    let stored = read(v.store(), &v.object_location(&sealed.cid)).await;

    // Key material handed over as bytes, or recovered from a copy of the
    // key store with the KEK.
    let handed = {
        let key = v.object_key(&sealed.cid).await.unwrap();
        ObjectKey::new(*key.data_key(), key.profile()).unwrap()
    };
    let data_record = read(store.as_ref(), &v.key_location(&sealed.cid)).await;
    let subject_record = read(store.as_ref(), &v.subject_location(patient())).await;
    let recovered =
        ObjectKey::from_records(Arc::new(kek()), &sealed.cid, &data_record, &subject_record)
            .await
            .unwrap();
    assert!(!format!("{recovered:?}").contains(&format!("{:?}", recovered.data_key())));
    for key in [&handed, &recovered] {
        let opened = open_sealed(&sealed.cid, key, chunks(stored.clone())).await;
        assert_eq!(opened.unwrap(), data);
        let streamed: Vec<Bytes> = open_sealed_stream(&sealed.cid, key, chunks(stored.clone()))
            .unwrap()
            .try_collect()
            .await
            .unwrap();
        assert_eq!(streamed.concat(), data.to_vec());
    }

    // A flipped bit releases nothing through `open_sealed`, and only a
    // verified prefix through the stream before its error.
    let damaged = flip_bit(&stored, stored.len() * 8 - 300 * 8);
    let err = open_sealed(&sealed.cid, &handed, chunks(damaged.clone()))
        .await
        .unwrap_err();
    assert_eq!(
        VaultError::from(err).integrity_reason(),
        Some(IntegrityReason::Tampered)
    );
    let mut released = Vec::new();
    let mut items = open_sealed_stream(&sealed.cid, &handed, chunks(damaged)).unwrap();
    let mut failed = false;
    while let Some(item) = items.next().await {
        match item {
            Ok(b) => released.extend_from_slice(&b),
            Err(e) => {
                assert!(matches!(e, Error::Tampered { .. }), "{e:?}");
                failed = true;
            }
        }
    }
    assert!(failed && released.len() < data.len() && data.starts_with(&released));

    // Authentic bytes under another CID: the tags pass, the CID does not.
    let other = v
        .put(patient(), Bytes::from_static(b"other"))
        .await
        .unwrap();
    let err = open_sealed(&other.cid, &handed, chunks(stored.clone()))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::CidMismatch { .. }), "{err:?}");
    // Another object's key fails the first tag.
    let other_key = v.object_key(&other.cid).await.unwrap();
    let err = open_sealed(&sealed.cid, &other_key, chunks(stored))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Tampered { .. }), "{err:?}");
    // Erased: the vault gives no key out any more.
    v.erase_patient(patient()).await.unwrap();
    assert!(matches!(
        v.object_key(&sealed.cid).await.unwrap_err(),
        Error::Shredded(_)
    ));
}
