//! The write path: many concurrent writes from one key all land (the
//! adapter's nonce counter), another user of the same key does not wedge
//! it, and writes wait for the configured confirmations.

use std::time::Duration;

use alloy::providers::{Provider, ProviderBuilder};
use futures::future::join_all;
use healthledger_chain::{EvmLedger, EvmLedgerConfig};
use healthledger_core::{
    LedgerPort, ReadAt, Role,
    testing::fixtures::{self, TestWallet},
};

use crate::support::Node;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_concurrent_writes_from_one_key_all_land() {
    let node = Node::start().await;
    let l = &node.ledger;
    let profiles: Vec<_> = fixtures::patients(400_000, 100, "Pat Ient");
    let results = join_all(profiles.iter().map(|p| l.register(p))).await;
    for (p, r) in profiles.iter().zip(&results) {
        assert!(r.is_ok(), "{}: {r:?}", p.hh());
    }
    assert_eq!(
        l.registered_count(Role::Patient, ReadAt::Latest)
            .await
            .unwrap(),
        100
    );
    let mut registered = l
        .registered(Role::Patient, 0, 1_000, ReadAt::Latest)
        .await
        .unwrap();
    registered.sort();
    let mut want: Vec<_> = profiles.iter().map(|p| p.hh()).collect();
    want.sort();
    assert_eq!(registered, want);
    let mut hashes: Vec<_> = results
        .iter()
        .map(|r| r.as_ref().unwrap().tx_hash)
        .collect();
    hashes.sort();
    hashes.dedup();
    assert_eq!(hashes.len(), 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_wait_for_the_configured_confirmations() {
    let node = Node::start_with(|mut c| {
        c.confirmations = 3;
        c
    })
    .await;
    // Anvil mines only on transactions: mine empty blocks in the background.
    let url = node.anvil.endpoint_url();
    let miner = tokio::spawn(async move {
        let provider = ProviderBuilder::new().connect_http(url);
        loop {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let _ = provider
                .raw_request::<_, serde_json::Value>("evm_mine".into(), ())
                .await;
        }
    });
    let w = TestWallet::from_seed(410_000);
    let r = node
        .ledger
        .register(&fixtures::patient(410_000, w.address(), "Conf Irmed"))
        .await
        .unwrap();
    let head = node.ledger.head().await.unwrap().number;
    miner.abort();
    assert!(
        head >= r.block_number + 2,
        "returned at head {head} for a transaction in block {}",
        r.block_number
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_user_of_the_same_key_does_not_wedge_the_nonce() {
    let node = Node::start().await;
    let twin = EvmLedger::connect(EvmLedgerConfig::new(
        node.anvil.endpoint(),
        node.contract,
        Node::account_key(&node.anvil, 0),
    ))
    .await
    .unwrap();
    let patient = |hh: u32| {
        fixtures::patient(
            hh,
            TestWallet::from_seed(u64::from(hh)).address(),
            "Twin Key",
        )
    };
    node.ledger.register(&patient(420_000)).await.unwrap();
    twin.register(&patient(420_001)).await.unwrap();
    // The first adapter's cached nonce is now stale.
    node.ledger.register(&patient(420_002)).await.unwrap();
    twin.register(&patient(420_003)).await.unwrap();
    assert_eq!(
        node.ledger
            .registered_count(Role::Patient, ReadAt::Latest)
            .await
            .unwrap(),
        4
    );
}

/// The hashes of the transactions waiting in anvil's pool.
async fn pooled(p: &impl Provider) -> Vec<String> {
    let content: serde_json::Value = p.raw_request("txpool_content".into(), ()).await.unwrap();
    let mut out = Vec::new();
    if let Some(by_sender) = content["pending"].as_object() {
        for txs in by_sender.values() {
            for tx in txs.as_object().into_iter().flat_map(|m| m.values()) {
                out.push(tx["hash"].as_str().unwrap_or_default().to_owned());
            }
        }
    }
    out
}

/// Waits until anvil's pool holds a transaction, and returns its hash.
async fn wait_pooled(p: &impl Provider) -> String {
    for _ in 0..400 {
        if let Some(h) = pooled(p).await.into_iter().next() {
            return h;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("no transaction reached the pool");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_transaction_is_sent_again_and_later_writes_never_stall() {
    let node = Node::start_with(|mut c| {
        c.rebroadcast_after = Duration::from_millis(300);
        c
    })
    .await;
    let l = &node.ledger;
    let p = ProviderBuilder::new().connect_http(node.anvil.endpoint_url());
    let set_automine = |on: bool| {
        let p = p.clone();
        async move {
            let _: serde_json::Value = p
                .raw_request("evm_setAutomine".into(), (on,))
                .await
                .unwrap();
        }
    };

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
