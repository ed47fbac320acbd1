//! Writes that never stall: the node loses a sent transaction
//! (`anvil_dropTransaction`, `anvil_dropAllTransactions`) or mined ones
//! (`anvil_reorg` drops the transactions of the blocks it replaces), and
//! every write, the ones in flight and the later ones, still lands with
//! the right effect. The receipt timeout is short here, so a write that
//! stalls fails the test in seconds instead of hanging it.

use std::time::Duration;

use alloy::providers::{Provider, ProviderBuilder};
use futures::future::join_all;
use healthledger_chain::EvmLedgerConfig;
use healthledger_core::{
    LedgerPort, ReadAt, Role,
    testing::{fixtures, ledger::ChainControl as _},
};

use crate::support::Node;

/// Checks for lost transactions often, and gives up on a receipt long
/// before the default two minutes.
fn quick(mut c: EvmLedgerConfig) -> EvmLedgerConfig {
    c.rebroadcast_after = Duration::from_millis(300);
    c.receipt_timeout = Duration::from_secs(20);
    c
}

/// The transactions waiting in anvil's pool (ready or queued), as
/// (nonce, hash), lowest nonce first.
async fn pooled_by_nonce(p: &impl Provider) -> Vec<(u64, String)> {
    let content: serde_json::Value = p.raw_request("txpool_content".into(), ()).await.unwrap();
    let mut out = Vec::new();
    for part in ["pending", "queued"] {
        for txs in content[part]
            .as_object()
            .into_iter()
            .flat_map(|m| m.values())
        {
            for tx in txs.as_object().into_iter().flat_map(|m| m.values()) {
                let nonce = tx["nonce"].as_str().unwrap_or_default();
                let nonce = u64::from_str_radix(nonce.trim_start_matches("0x"), 16).unwrap();
                out.push((nonce, tx["hash"].as_str().unwrap_or_default().to_owned()));
            }
        }
    }
    out.sort();
    out
}

/// The hashes of the transactions waiting in anvil's pool.
async fn pooled(p: &impl Provider) -> Vec<String> {
    pooled_by_nonce(p)
        .await
        .into_iter()
        .map(|(_, h)| h)
        .collect()
}

/// Waits until anvil's pool holds `count` transactions, and returns them.
async fn wait_pooled_n(p: &impl Provider, count: usize) -> Vec<(u64, String)> {
    for _ in 0..400 {
        let txs = pooled_by_nonce(p).await;
        if txs.len() >= count {
            return txs;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{count} transactions never reached the pool");
}

/// Waits until anvil's pool holds a transaction, and returns its hash.
async fn wait_pooled(p: &impl Provider) -> String {
    wait_pooled_n(p, 1).await.swap_remove(0).1
}

/// `anvil_reorg`: the last `depth` blocks replaced by empty ones.
async fn reorg(p: &impl Provider, depth: u64) {
    let _: serde_json::Value = p
        .raw_request(
            "anvil_reorg".into(),
            (depth, Vec::<serde_json::Value>::new()),
        )
        .await
        .unwrap();
}

/// Asserts which of `profiles` are registered now.
async fn assert_registered(
    l: &dyn LedgerPort,
    profiles: &[healthledger_core::Profile],
    want: bool,
) {
    for x in profiles {
        let got = l
            .profile(x.hh(), Role::Patient, ReadAt::Latest)
            .await
            .unwrap();
        assert_eq!(got.as_ref() == Some(x), want, "{}: {got:?}", x.hh());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_transaction_is_sent_again_and_later_writes_never_stall() {
    let node = Node::start_with(quick).await;
    let l = &node.ledger;
    let p = ProviderBuilder::new().connect_http(node.anvil.endpoint_url());
    let set_automine = |on: bool| node.set_automine(on);

    // Dropped once: the same bytes are sent again and mined.
    set_automine(false).await;
    let first = fixtures::patients(560_000, 1, "Dropped Once");
    let (receipt, first_hash) = tokio::join!(l.register(&first[0]), async {
        let hash = wait_pooled(&p).await;
        let _: serde_json::Value = p
            .raw_request("anvil_dropAllTransactions".into(), ())
            .await
            .unwrap();
        assert!(pooled(&p).await.is_empty(), "anvil dropped it");
        set_automine(true).await;
        hash
    });
    let receipt = receipt.expect("a dropped write still lands");
    assert_eq!(
        format!("{:#x}", receipt.tx_hash),
        first_hash,
        "the same transaction, rebroadcast"
    );

    // Dropped twice: a replacement with the same nonce and higher fees.
    set_automine(false).await;
    let second = fixtures::patients(560_001, 1, "Dropped Twice");
    let (receipt, dropped) = tokio::join!(l.register(&second[0]), async {
        let hash = wait_pooled(&p).await;
        let _: serde_json::Value = p
            .raw_request("anvil_dropAllTransactions".into(), ())
            .await
            .unwrap();
        // The rebroadcast of the same bytes arrives; drop it too.
        for _ in 0..400 {
            if pooled(&p).await.contains(&hash) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let _: serde_json::Value = p
            .raw_request("anvil_dropAllTransactions".into(), ())
            .await
            .unwrap();
        set_automine(true).await;
        hash
    });
    let receipt = receipt.expect("a write dropped twice still lands");
    assert_ne!(
        format!("{:#x}", receipt.tx_hash),
        dropped,
        "a replacement was mined"
    );
    let mined = p
        .get_transaction_by_hash(receipt.tx_hash)
        .await
        .unwrap()
        .expect("mined");
    let original: serde_json::Value = p
        .raw_request("eth_getTransactionByHash".into(), (dropped.clone(),))
        .await
        .unwrap();
    assert!(
        original.is_null(),
        "the dropped version is gone: {original}"
    );
    use alloy::consensus::Transaction as _;
    assert!(mined.inner.max_fee_per_gas() > 0);

    // Later writes from the key are not stuck behind a gap.
    let third = fixtures::patients(560_002, 3, "After Drops");
    for r in join_all(third.iter().map(|x| l.register(x))).await {
        r.expect("later writes land");
    }
    for x in first.iter().chain(&second).chain(&third) {
        assert_eq!(
            l.profile(x.hh(), Role::Patient, ReadAt::Latest)
                .await
                .unwrap(),
            Some(x.clone())
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_queued_behind_a_dropped_one_lands_with_it() {
    let node = Node::start_with(quick).await;
    let l = &node.ledger;
    let p = ProviderBuilder::new().connect_http(node.anvil.endpoint_url());
    node.set_automine(false).await;
    let two = fixtures::patients(562_000, 2, "Gap Below");
    let (first, second, dropped) = tokio::join!(l.register(&two[0]), l.register(&two[1]), async {
        let txs = wait_pooled_n(&p, 2).await;
        // The lower nonce goes (and anvil drops the one that depends on
        // it too); both writers find their transactions gone.
        let _: serde_json::Value = p
            .raw_request("anvil_dropTransaction".into(), (txs[0].1.clone(),))
            .await
            .unwrap();
        assert!(!pooled(&p).await.contains(&txs[0].1), "anvil dropped it");
        node.set_automine(true).await;
        txs
    });
    let mut hashes = vec![
        format!("{:#x}", first.expect("the first write lands").tx_hash),
        format!(
            "{:#x}",
            second.expect("the write behind the gap lands").tx_hash
        ),
    ];
    hashes.sort();
    let mut sent: Vec<_> = dropped.into_iter().map(|(_, h)| h).collect();
    sent.sort();
    assert_eq!(hashes, sent, "the same two transactions were mined");
    assert_registered(l, &two, true).await;
    let later = fixtures::patients(562_002, 3, "After Gap");
    for r in join_all(later.iter().map(|x| l.register(x))).await {
        r.expect("later writes land");
    }
    assert_registered(l, &later, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_after_a_reorg_dropped_mined_ones_land() {
    let node = Node::start_with(quick).await;
    let l = &node.ledger;
    let p = ProviderBuilder::new().connect_http(node.anvil.endpoint_url());
    let kept = fixtures::patients(563_000, 1, "Kept Patient");
    let lost = fixtures::patients(563_001, 3, "Lost Patient");
    for x in kept.iter().chain(&lost) {
        l.register(x).await.unwrap();
    }
    // One block per write: the last three blocks and their transactions go.
    reorg(&p, 3).await;
    assert_registered(l, &kept, true).await;
    assert_registered(l, &lost, false).await;
    // The node's nonce went back by three; the adapter's next writes take
    // the nonces it wants, one by one and then many at once.
    let after = fixtures::patients(563_010, 1, "After Reorg");
    l.register(&after[0])
        .await
        .expect("a write after the reorg lands");
    for r in join_all(lost.iter().map(|x| l.register(x))).await {
        r.expect("registering the lost patients again lands");
    }
    assert_registered(l, &lost, true).await;
    assert_registered(l, &after, true).await;
    // A second reorg, of the concurrent writes.
    reorg(&p, 3).await;
    let again = fixtures::patients(563_020, 4, "After Second");
    for r in join_all(again.iter().map(|x| l.register(x))).await {
        r.expect("writes after the second reorg land");
    }
    assert_registered(l, &again, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_in_flight_across_a_reorg_lands() {
    let node = Node::start_with(quick).await;
    let l = &node.ledger;
    let p = ProviderBuilder::new().connect_http(node.anvil.endpoint_url());
    let lost = fixtures::patients(564_000, 1, "Lost Below");
    l.register(&lost[0]).await.unwrap();
    node.set_automine(false).await;
    let waiting = fixtures::patients(564_001, 1, "In Flight");
    let (receipt, ()) = tokio::join!(l.register(&waiting[0]), async {
        wait_pooled(&p).await;
        // The block of the write below the one in flight goes, and with it
        // the nonce the one in flight needs before it.
        reorg(&p, 1).await;
        node.set_automine(true).await;
    });
    receipt.expect("the write in flight lands");
    assert_registered(l, &waiting, true).await;
    assert_registered(l, &lost, false).await;
    let later = fixtures::patients(564_002, 2, "After Flight");
    for r in join_all(later.iter().map(|x| l.register(x))).await {
        r.expect("later writes land");
    }
    assert_registered(l, &later, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_transaction_the_node_never_mines_is_replaced_and_lands() {
    let node = Node::start_with(quick).await;
    let l = &node.ledger;
    let p = ProviderBuilder::new().connect_http(node.anvil.endpoint_url());

    // The node keeps the write, ready to run with no gap below it, but
    // does not mine it (anvil's automine can pass a transaction over when
    // many from one key arrive at once; a fee spike does the same on a
    // public chain). Mining is off here, and the test mines only once a
    // replacement has arrived, so a write that just waits times out.
    node.set_automine(false).await;
    let patient = fixtures::patients(561_000, 1, "Held Not Mined");
    let (receipt, (held, replacement)) = tokio::join!(l.register(&patient[0]), async {
        let held = wait_pooled(&p).await;
        let mut replacement = None;
        for _ in 0..2_000 {
            let now = pooled(&p).await;
            if let [one] = now.as_slice()
                && *one != held
            {
                replacement = Some(one.clone());
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let replacement = replacement.expect("a replacement took the held write's place");
        node.set_automine(true).await;
        let _: serde_json::Value = p.raw_request("evm_mine".into(), ()).await.unwrap();
        (held, replacement)
    });
    let receipt = receipt.expect("a held write still lands");
    assert_eq!(
        format!("{:#x}", receipt.tx_hash),
        replacement,
        "the replacement was mined"
    );
    let fee = |hash: alloy::primitives::B256| {
        let p = &p;
        async move {
            use alloy::consensus::Transaction as _;
            p.get_transaction_by_hash(hash)
                .await
                .unwrap()
                .map(|t| t.inner.max_fee_per_gas())
        }
    };
    assert_eq!(
        fee(held.parse().unwrap()).await,
        None,
        "the held version is gone"
    );
    assert!(fee(receipt.tx_hash).await.unwrap() > 0);
    assert_registered(l, &patient, true).await;

    // Later writes from the key land as usual.
    let later = fixtures::patients(561_001, 3, "After Held");
    for r in join_all(later.iter().map(|x| l.register(x))).await {
        r.expect("later writes land");
    }
    assert_registered(l, &later, true).await;
}
