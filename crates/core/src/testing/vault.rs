//! The [`VaultPort`] conformance suite: one `pub async fn` per behaviour over
//! `&dyn VaultPort`; [`all`] runs them in turn on one vault.
//!
//! The behaviours that need to look under the port — nothing readable is
//! stored, damage is caught — also take a [`VaultBackdoor`]: each backend's
//! test hands the suite raw access to what that backend stored, so the
//! suite can read it and flip its bits as bit rot or someone with access to
//! the store would.

mod listing;

use std::collections::HashSet;

use async_trait::async_trait;
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt, stream};

use crate::{Cid, HhNumber, IntegrityReason, ObjectStatus, VaultError, VaultPort};

pub use listing::{list_all, objects_are_listed_in_cid_order_page_by_page};

/// What a vault stored for one object, byte for byte.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredBytes {
    /// The sealed object (the ciphertext the CID addresses).
    pub object: Vec<u8>,
    /// The object's key record (its wrapped data key).
    pub key_record: Vec<u8>,
}

/// Raw access to a vault's storage, under the port, for the suite's
/// confidentiality and integrity checks.
///
/// Each backend's test implements it over that backend's store (for the real
/// vault, `objects/<cid>` and `keys/<cid>` in the object store). Every method
/// panics when `cid` has no stored object or `offset` is outside it: a check
/// that damages nothing proves nothing.
#[async_trait]
pub trait VaultBackdoor: Send + Sync {
    /// The stored object and key record of `cid`, as stored.
    async fn stored_bytes(&self, cid: &Cid) -> StoredBytes;

    /// Flips the lowest bit of byte `offset` of the stored object of `cid`;
    /// flipping it again restores the object.
    async fn flip_object_byte(&self, cid: &Cid, offset: usize);

    /// Flips the lowest bit of byte `offset` of the key record of `cid`;
    /// flipping it again restores the record.
    async fn flip_key_byte(&self, cid: &Cid, offset: usize);

    /// Rotates the vault's key-encryption key to a fresh one, as an
    /// operator would (for the real vault, `Vault::rotate_kek`); may run
    /// beside any port call.
    async fn rotate_key(&self);

    /// Whether the live key material in the store (the key record of `cid`
    /// and its patient's subject record) could still decrypt `cid`: `false`
    /// once it was shredded or its patient erased, whatever ran beside.
    async fn key_material_left(&self, cid: &Cid) -> bool;
}

/// Runs every vault conformance test in turn; `backdoor` reaches under `v`.
pub async fn all(v: &dyn VaultPort, backdoor: &dyn VaultBackdoor) {
    put_then_get_round_trips(v).await;
    empty_objects_round_trip(v).await;
    streams_round_trip(v).await;
    unknown_cids_are_not_found(v).await;
    shredded_objects_are_gone_for_good(v).await;
    objects_open_only_for_their_own_patient(v).await;
    health_reports_the_backend(v).await;
    nothing_readable_is_stored(v, backdoor).await;
    damaged_objects_release_nothing(v, backdoor).await;
    damage_in_a_later_segment_ends_the_stream_after_the_earlier_chunks(v, backdoor).await;
    damaged_key_records_release_nothing(v, backdoor).await;
    erasing_a_patient_makes_all_their_objects_unreadable(v, backdoor).await;
    rotation_beside_shreds_and_erasures_brings_no_key_back(v, backdoor).await;
    objects_are_listed_in_cid_order_page_by_page(v).await;
}

/// A patient for the suite's objects; `n` picks one of several.
pub fn patient(n: u32) -> HhNumber {
    match HhNumber::new(555_000 + n) {
        Ok(hh) => hh,
        Err(e) => panic!("the suite's patient {n}: {e}"),
    }
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
    let a = v.put(patient(1), data.clone()).await.expect("put");
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
    assert_eq!(v.get(patient(1), &a.cid).await.expect("get"), data);
    assert_eq!(
        v.verify(&a.cid).await.expect("verify"),
        ObjectStatus::Intact
    );
    let b = v.put(patient(1), data.clone()).await.expect("put again");
    assert_ne!(
        a.cid, b.cid,
        "each object has its own data key, so its own CID"
    );
    assert_eq!(v.get(patient(1), &b.cid).await.expect("get"), data);
}

/// The empty object is an object like any other.
pub async fn empty_objects_round_trip(v: &dyn VaultPort) {
    let sealed = v.put(patient(1), Bytes::new()).await.expect("put empty");
    assert_eq!(sealed.size, 0);
    assert!(
        v.get(patient(1), &sealed.cid)
            .await
            .expect("get")
            .is_empty()
    );
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
        .put_stream(patient(1), stream::iter(chunks).boxed())
        .await
        .expect("put_stream");
    assert_eq!(sealed.size, data.len() as u64);
    let out: Vec<Bytes> = v
        .get_stream(patient(1), &sealed.cid)
        .await
        .expect("get_stream")
        .try_collect()
        .await
        .expect("stream");
    assert_eq!(out.concat(), data.to_vec());
    assert_eq!(v.get(patient(1), &sealed.cid).await.expect("get"), data);
}

/// A CID the vault never stored is `NotFound` to read and `Missing` to
/// verify.
pub async fn unknown_cids_are_not_found(v: &dyn VaultPort) {
    let cid = super::fixtures::cid_of(b"never stored in this vault");
    let err = v.get(patient(1), &cid).await.expect_err("unknown");
    assert!(matches!(err, VaultError::NotFound(_)), "{err}");
    assert!(matches!(
        v.get_stream(patient(1), &cid).await.map(drop),
        Err(VaultError::NotFound(_))
    ));
    assert_eq!(v.verify(&cid).await.expect("verify"), ObjectStatus::Missing);
    let err = v.shred(&cid).await.expect_err("shred unknown");
    assert!(matches!(err, VaultError::NotFound(_)), "{err}");
}

/// After shredding, nothing reads the content again; shredding twice is
/// fine; other objects are untouched.
pub async fn shredded_objects_are_gone_for_good(v: &dyn VaultPort) {
    let keep = v.put(patient(1), content(1_000, 3)).await.expect("put");
    let gone = v.put(patient(1), content(1_000, 4)).await.expect("put");
    v.shred(&gone.cid).await.expect("shred");
    let err = v.get(patient(1), &gone.cid).await.expect_err("shredded");
    assert!(matches!(err, VaultError::NotFound(_)), "{err}");
    assert_eq!(
        v.verify(&gone.cid).await.expect("verify"),
        ObjectStatus::Shredded
    );
    v.shred(&gone.cid).await.expect("shred twice");
    assert_eq!(
        v.get(patient(1), &keep.cid).await.expect("get"),
        content(1_000, 3)
    );
}

/// A read that names another patient than the object's owner is
/// `WrongPatient`, through `get` and `get_stream`, and releases nothing:
/// a record of patient A pointing at patient B's object (its creator put
/// B's CID on chain) does not open B's content. The owner still reads it,
/// and the refusal names neither the owner nor any content.
pub async fn objects_open_only_for_their_own_patient(v: &dyn VaultPort) {
    let (owner, other) = (patient(40), patient(41));
    let data = phrase(2_000);
    let sealed = v.put(owner, data.clone()).await.expect("put");
    // The other patient has objects of their own: the check is not "has
    // this patient any object".
    v.put(other, content(10, 2)).await.expect("put");
    let err = v.get(other, &sealed.cid).await.expect_err("wrong patient");
    assert!(matches!(err, VaultError::WrongPatient(_)), "get: {err:?}");
    let shown = err.to_string();
    assert!(
        !shown.contains(&owner.to_string()),
        "the refusal names the owner: {shown}"
    );
    let (released, error) = drain(v, other, &sealed.cid).await;
    assert!(
        matches!(error, Some(VaultError::WrongPatient(_))),
        "get_stream: {error:?}"
    );
    assert!(
        released.is_empty(),
        "get_stream released {} bytes",
        released.len()
    );
    assert_eq!(v.get(owner, &sealed.cid).await.expect("owner reads"), data);
    assert_eq!(
        v.verify(&sealed.cid).await.expect("verify"),
        ObjectStatus::Intact
    );
}

/// Health names the backend and key without secrets.
pub async fn health_reports_the_backend(v: &dyn VaultPort) {
    let h = v.health().await.expect("health");
    assert!(!h.backend.is_empty());
    assert!(!h.key_store.is_empty());
    assert!(!h.key_id.is_empty());
}

/// `len` bytes of a distinctive phrase, so that any 32 bytes of it found in
/// storage can only be leaked plaintext.
pub fn phrase(len: usize) -> Bytes {
    const PHRASE: &[u8] =
        b"HH 112233 | HIV-1 RNA undetectable, CD4 812 cells/uL, seen by Dr. Okafor. ";
    PHRASE
        .iter()
        .copied()
        .cycle()
        .take(len)
        .collect::<Vec<u8>>()
        .into()
}

/// The offset of the first 32-byte window of `plaintext` found in `stored`.
fn leaked_at(plaintext: &[u8], stored: &[u8]) -> Option<usize> {
    let windows: HashSet<&[u8]> = plaintext.windows(32).collect();
    stored.windows(32).position(|w| windows.contains(w))
}

/// Reads `cid` through `get_stream` to its end or its first error: the
/// bytes released before it and the error. An error from `get_stream`
/// itself counts as an error before the first chunk. Asserts the stream
/// ends after its error.
pub async fn drain(
    v: &dyn VaultPort,
    patient: HhNumber,
    cid: &Cid,
) -> (Vec<u8>, Option<VaultError>) {
    let mut released = Vec::new();
    let mut chunks = match v.get_stream(patient, cid).await {
        Ok(chunks) => chunks,
        Err(e) => return (released, Some(e)),
    };
    while let Some(chunk) = chunks.next().await {
        match chunk {
            Ok(bytes) => released.extend_from_slice(&bytes),
            Err(e) => {
                assert!(
                    chunks.next().await.is_none(),
                    "get_stream of {cid} goes on after its error {e}"
                );
                return (released, Some(e));
            }
        }
    }
    (released, None)
}

/// Asserts that damaged `cid` (whose plaintext is `data`) releases nothing
/// through `get`, only a correct strict prefix of `data` through
/// `get_stream` before an `Integrity` error whose reason is `Tampered`, and
/// is `Corrupt` to `verify`; returns the prefix `get_stream` released.
pub async fn assert_damage_is_caught(
    v: &dyn VaultPort,
    patient: HhNumber,
    cid: &Cid,
    data: &[u8],
    what: &str,
) -> Vec<u8> {
    match v.get(patient, cid).await {
        Err(e) if e.integrity_reason() == Some(IntegrityReason::Tampered) => {}
        Ok(got) => panic!(
            "{what}: get released {} bytes of a damaged object",
            got.len()
        ),
        Err(e) => panic!("{what}: get must fail with Integrity(Tampered), got {e:?}"),
    }
    let (released, error) = drain(v, patient, cid).await;
    assert!(
        error.as_ref().and_then(VaultError::integrity_reason) == Some(IntegrityReason::Tampered),
        "{what}: get_stream must end with Integrity(Tampered), got {error:?} after {} bytes",
        released.len()
    );
    assert!(
        released.len() < data.len() || data.is_empty(),
        "{what}: get_stream released the whole object before its error"
    );
    assert!(
        data.starts_with(&released),
        "{what}: get_stream released {} bytes that are not the plaintext's prefix",
        released.len()
    );
    match v.verify(cid).await.expect("verify") {
        ObjectStatus::Corrupt(_) => {}
        other => panic!("{what}: verify must say Corrupt, got {other:?}"),
    }
    released
}

/// Neither the stored object nor its key record holds any 32 bytes of the
/// plaintext, sealed with `put` or `put_stream`; `stored_size` is the size
/// of what is stored.
pub async fn nothing_readable_is_stored(v: &dyn VaultPort, backdoor: &dyn VaultBackdoor) {
    let data = phrase(4096);
    let chunks: Vec<Result<Bytes, VaultError>> = data
        .chunks(1000)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    let sealed = [
        v.put(patient(1), data.clone()).await.expect("put"),
        v.put_stream(patient(1), stream::iter(chunks).boxed())
            .await
            .expect("put_stream"),
    ];
    for sealed in sealed {
        let stored = backdoor.stored_bytes(&sealed.cid).await;
        assert_eq!(stored.object.len() as u64, sealed.stored_size);
        assert!(!stored.key_record.is_empty(), "no key record is stored");
        for (what, bytes) in [
            ("object", &stored.object),
            ("key record", &stored.key_record),
        ] {
            if let Some(at) = leaked_at(&data, bytes) {
                panic!(
                    "the stored {what} of {} holds plaintext at byte {at}",
                    sealed.cid
                );
            }
        }
        assert_eq!(v.get(patient(1), &sealed.cid).await.expect("get"), data);
    }
}

/// A flipped bit at the start, the middle or the end of a stored object is
/// `Integrity` to `get` and `get_stream` and `Corrupt` to `verify`, with no
/// plaintext released; flipped back, the object is intact again.
pub async fn damaged_objects_release_nothing(v: &dyn VaultPort, backdoor: &dyn VaultBackdoor) {
    let data = content(3_000, 9);
    let sealed = v.put(patient(1), data.clone()).await.expect("put");
    let len = backdoor.stored_bytes(&sealed.cid).await.object.len();
    for offset in [0, len / 2, len - 1] {
        let what = format!("object byte {offset} of {len} flipped");
        backdoor.flip_object_byte(&sealed.cid, offset).await;
        let released = assert_damage_is_caught(v, patient(1), &sealed.cid, &data, &what).await;
        assert!(
            released.is_empty(),
            "{what}: a one-segment object released {} bytes",
            released.len()
        );
        backdoor.flip_object_byte(&sealed.cid, offset).await;
        assert_eq!(
            v.verify(&sealed.cid).await.expect("verify"),
            ObjectStatus::Intact,
            "{what}, then restored"
        );
    }
    assert_eq!(v.get(patient(1), &sealed.cid).await.expect("get"), data);
}

/// Damage in a later segment of a multi-segment object (over five 64 KiB
/// segments): `get_stream` first releases the chunks before it, correct,
/// then ends with `Integrity`; `get` releases nothing; `verify` says
/// `Corrupt`.
pub async fn damage_in_a_later_segment_ends_the_stream_after_the_earlier_chunks(
    v: &dyn VaultPort,
    backdoor: &dyn VaultBackdoor,
) {
    let data = content(5 * 64 * 1024 + 1_000, 11);
    let sealed = v.put(patient(1), data.clone()).await.expect("put");
    let len = backdoor.stored_bytes(&sealed.cid).await.object.len();
    for offset in [len / 2, len - 1] {
        let what = format!("object byte {offset} of {len} flipped");
        backdoor.flip_object_byte(&sealed.cid, offset).await;
        let released = assert_damage_is_caught(v, patient(1), &sealed.cid, &data, &what).await;
        assert!(
            !released.is_empty(),
            "{what}: get_stream released none of the segments before the damage"
        );
        backdoor.flip_object_byte(&sealed.cid, offset).await;
    }
    let (released, error) = drain(v, patient(1), &sealed.cid).await;
    assert!(error.is_none(), "restored: {error:?}");
    assert_eq!(released, data.to_vec());
}

/// A flipped bit anywhere in the key record (start, middle, end) is
/// `Integrity` to `get` and `get_stream` and `Corrupt` to `verify`, with no
/// plaintext released.
pub async fn damaged_key_records_release_nothing(v: &dyn VaultPort, backdoor: &dyn VaultBackdoor) {
    let data = content(2_000, 5);
    let sealed = v.put(patient(1), data.clone()).await.expect("put");
    let len = backdoor.stored_bytes(&sealed.cid).await.key_record.len();
    for offset in [0, len / 2, len - 1] {
        let what = format!("key record byte {offset} of {len} flipped");
        backdoor.flip_key_byte(&sealed.cid, offset).await;
        let released = assert_damage_is_caught(v, patient(1), &sealed.cid, &data, &what).await;
        assert!(
            released.is_empty(),
            "{what}: released {} bytes",
            released.len()
        );
        backdoor.flip_key_byte(&sealed.cid, offset).await;
    }
    assert_eq!(v.get(patient(1), &sealed.cid).await.expect("get"), data);
}

/// Erasing a patient makes every one of their objects unreadable at once
/// (`NotFound`, `Shredded`, no key material left), refuses new objects for
/// them (`Conflict`), is fine twice or for a patient with no objects, and
/// leaves other patients alone.
pub async fn erasing_a_patient_makes_all_their_objects_unreadable(
    v: &dyn VaultPort,
    backdoor: &dyn VaultBackdoor,
) {
    let (erased, kept) = (patient(20), patient(21));
    let mut theirs = Vec::new();
    for i in 0..3 {
        let len = [10, 100_000, 0][i];
        theirs.push(v.put(erased, content(len, i as u8)).await.expect("put").cid);
    }
    let streamed = v
        .put_stream(erased, stream::iter(vec![Ok(content(5_000, 9))]).boxed())
        .await
        .expect("put_stream");
    theirs.push(streamed.cid);
    let other = v.put(kept, content(2_000, 8)).await.expect("put");
    v.erase_patient(erased).await.expect("erase");
    for cid in &theirs {
        let err = v.get(erased, cid).await.expect_err("erased");
        assert!(matches!(err, VaultError::NotFound(_)), "{cid}: {err}");
        assert!(matches!(
            v.get_stream(erased, cid).await.map(drop),
            Err(VaultError::NotFound(_))
        ));
        assert_eq!(v.verify(cid).await.expect("verify"), ObjectStatus::Shredded);
        assert!(
            !backdoor.key_material_left(cid).await,
            "{cid}: key material left after erasure"
        );
    }
    let err = v
        .put(erased, content(10, 1))
        .await
        .expect_err("put for an erased patient");
    assert!(matches!(err, VaultError::Conflict(_)), "{err}");
    v.erase_patient(erased).await.expect("erase twice");
    v.erase_patient(patient(22))
        .await
        .expect("erase a patient with no objects");
    assert!(matches!(
        v.put(patient(22), content(10, 1)).await,
        Err(VaultError::Conflict(_))
    ));
    // Shredding an object of an erased patient is still fine.
    v.shred(&theirs[0]).await.expect("shred after erasure");
    assert_eq!(
        v.get(kept, &other.cid).await.expect("other patient"),
        content(2_000, 8)
    );
    assert!(backdoor.key_material_left(&other.cid).await);
}

/// A key rotation running beside shreds and an erasure (interleaved by the
/// executor at every await) writes none of their keys back: afterwards the
/// shredded and erased objects have no key material left and read as gone,
/// every other object reads, and a second rotation changes none of that.
pub async fn rotation_beside_shreds_and_erasures_brings_no_key_back(
    v: &dyn VaultPort,
    backdoor: &dyn VaultBackdoor,
) {
    let erased = patient(30);
    let mut sealed = Vec::new();
    for i in 0..12u32 {
        let owner = if i % 4 == 3 {
            erased
        } else {
            patient(31 + i % 3)
        };
        let data = content(300 + i as usize, i as u8);
        let cid = v.put(owner, data.clone()).await.expect("put").cid;
        sealed.push((cid, owner, data));
    }
    let shredded: Vec<Cid> = sealed
        .iter()
        .enumerate()
        .filter(|(i, (_, owner, _))| i % 3 == 0 && *owner != erased)
        .map(|(_, (cid, _, _))| *cid)
        .collect();
    let destroy = async {
        for cid in &shredded {
            v.shred(cid).await.expect("shred");
        }
        v.erase_patient(erased).await.expect("erase");
    };
    futures::join!(backdoor.rotate_key(), destroy);
    for round in ["after the rotation", "after a second rotation"] {
        for (cid, owner, data) in &sealed {
            let gone = *owner == erased || shredded.contains(cid);
            if gone {
                assert!(
                    !backdoor.key_material_left(cid).await,
                    "{round}: key material of destroyed {cid} is back"
                );
                assert!(matches!(
                    v.get(*owner, cid).await,
                    Err(VaultError::NotFound(_))
                ));
                assert_eq!(v.verify(cid).await.expect("verify"), ObjectStatus::Shredded);
            } else {
                assert_eq!(&v.get(*owner, cid).await.expect("get"), data, "{round}");
            }
        }
        backdoor.rotate_key().await;
    }
    assert!(
        !v.health().await.expect("health").key_id.is_empty(),
        "a KEK is in use after the rotations"
    );
}
