//! Property tests: random sizes (256 cases) round trip; sizes at segment,
//! chunk and upload-part boundaries round trip, through `get` and
//! `get_stream`.

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt, stream};
use healthledger_core::VaultPort;
use healthledger_vault::Vault;
use healthledger_vault::seal::{SEGMENT_SIZE, sealed_len};
use healthledger_vault::unixfs::DEFAULT_CHUNK_SIZE;
use proptest::prelude::*;

use crate::{kek, memory_vault};

fn content(len: usize, seed: u64) -> Bytes {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect::<Vec<u8>>()
        .into()
}

async fn round_trip(v: &Vault, data: Bytes, piece: usize) {
    let pieces: Vec<_> = data
        .chunks(piece.max(1))
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    let sealed = v
        .put_stream(crate::patient(), stream::iter(pieces).boxed())
        .await
        .unwrap();
    assert_eq!(sealed.size, data.len() as u64);
    assert_eq!(sealed.stored_size, sealed_len(data.len() as u64));
    assert_eq!(v.get(crate::patient(), &sealed.cid).await.unwrap(), data);
    let streamed: Vec<Bytes> = v
        .get_stream(crate::patient(), &sealed.cid)
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(streamed.concat(), data.to_vec());
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Plaintext sizes for the random round trips: mostly within one segment,
/// a quarter across two to four segments. Large sizes are left to the
/// boundary test below, so that 256 cases stay quick on unoptimized builds.
fn sizes() -> impl Strategy<Value = usize> {
    prop_oneof![
        3 => 0usize..4096,
        1 => (SEGMENT_SIZE - 4096)..(3 * SEGMENT_SIZE + 4096),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn random_sizes_round_trip(
        len in sizes(),
        seed in any::<u64>(),
        piece in 1usize..(SEGMENT_SIZE + 1000),
    ) {
        let (v, _) = memory_vault(kek());
        runtime().block_on(round_trip(&v, content(len, seed), piece));
    }
}

/// The plaintext length whose sealed form is `stored` bytes, if any.
fn plaintext_for_stored(stored: u64) -> Option<usize> {
    let guess = stored.saturating_sub(stored / SEGMENT_SIZE as u64 * 16 + 64);
    (guess..guess + 200)
        .find(|&n| sealed_len(n) == stored)
        .map(|n| n as usize)
}

#[tokio::test]
async fn sizes_at_segment_chunk_and_part_boundaries_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let file = crate::builder(
        &format!("file://{}/content", dir.path().display()),
        &format!("file://{}/keys", dir.path().display()),
    )
    .build()
    .unwrap();
    let (memory, _) = memory_vault(kek());
    let seg = SEGMENT_SIZE;
    let mut sizes = vec![0, 1, seg - 1, seg, seg + 1, 2 * seg, 3 * seg + 5];
    // Sealed sizes right at one and two 256 KiB chunks, and one byte either
    // side, where the CID's leaf layout changes.
    for chunks in [1u64, 2] {
        let at = chunks * DEFAULT_CHUNK_SIZE as u64;
        for stored in [at - 1, at, at + 1] {
            if let Some(n) = plaintext_for_stored(stored) {
                sizes.push(n);
            }
        }
    }
    // Past one 8 MiB upload part: the multipart upload and rename path.
    sizes.push(8 * 1024 * 1024 + 3);
    assert!(sizes.len() >= 12, "{sizes:?}");
    for (i, len) in sizes.into_iter().enumerate() {
        let data = content(len, i as u64 + 1);
        round_trip(&memory, data.clone(), 100_000).await;
        round_trip(&file, data, 65_536).await;
    }
    // No upload is left behind in incoming/.
    assert!(
        !dir.path().join("incoming").exists()
            || std::fs::read_dir(dir.path().join("incoming"))
                .unwrap()
                .next()
                .is_none()
    );
}
