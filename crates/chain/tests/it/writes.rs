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
