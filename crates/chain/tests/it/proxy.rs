//! The adapter through the loopback JSON-RPC proxy of the `testing` feature
//! ([`healthledger_chain::testing::FaultProxy`]), which injects the faults of
//! real providers in front of anvil: `eth_getLogs` range refusals above N
//! blocks (worded as Alchemy, Infura, QuickNode, Ankr, Polygon and Cloudflare
//! word them), server errors, HTTP 429s and dropped connections at a seeded
//! rate. `events()` through it must return exactly what it returns without
//! it, and writes through it land exactly once.

use std::time::Duration;

use futures::future::join_all;
use healthledger_chain::{
    EvmLedger, EvmLedgerConfig, LogRangePolicy, RetryPolicy,
    testing::{FaultProxy, Faults, Intercept},
};
use healthledger_core::{
    ConsentAction, LedgerError, LedgerPort, ReadAt,
    testing::{
        fixtures::{self, TestWallet, date},
        ledger::consent,
    },
};

use crate::support::Node;

/// Writes enough history to span many blocks: registrations, records, grants.
async fn write_history(node: &Node) {
    let l = &node.ledger;
    let center_wallet = TestWallet::from_seed(500_999);
    let center = fixtures::diagnostic_center(500_999, center_wallet.address(), "Proxy Labs");
    l.register(&center).await.unwrap();
    let patients: Vec<_> = fixtures::patients(500_000, 30, "Pat Proxy");
    for r in join_all(patients.iter().map(|p| l.register(p))).await {
        r.unwrap();
    }
    for i in 0..20u32 {
        let rec = fixtures::record(
            500_000 + i,
            u64::from(i),
            500_999,
            "Blood sugar",
            "lab",
            date(2026, 7, 1),
        );
        let a = consent(l, &center_wallet, &ConsentAction::CreateRecord(rec.clone())).await;
        l.create_record(&rec, &a).await.unwrap();
    }
}

fn proxied_config(node: &Node, url: &str) -> EvmLedgerConfig {
    let mut config = EvmLedgerConfig::new(url, node.contract, Node::account_key(&node.anvil, 0));
    config.retry = RetryPolicy {
        max_attempts: 30,
        base_delay: Duration::from_millis(2),
        max_delay: Duration::from_millis(50),
    };
    config.log_ranges = LogRangePolicy {
        initial_span: 1_000,
        max_span: 1_000,
        grow_after: 2,
    };
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_through_a_faulty_provider_equal_events_without_it() {
    let node = Node::start().await;
    write_history(&node).await;
    let head = node.ledger.head().await.unwrap().number;
    let direct = node.ledger.events(0, head).await.unwrap().events;
    assert!(direct.len() >= 50, "history has {} events", direct.len());

    let proxy = FaultProxy::start(
        node.anvil.endpoint(),
        Faults {
            seed: 7,
            max_log_span: 7,
            rate_error: 0.1,
            rate_429: 0.15,
            rate_drop: 0.1,
            ..Faults::NONE
        },
    )
    .await
    .unwrap();
    let proxied = EvmLedger::connect(proxied_config(&node, proxy.url()))
        .await
        .unwrap();
    for _ in 0..3 {
        assert_eq!(proxied.events(0, head).await.unwrap().events, direct);
    }
    let sub = proxied.events(10, head - 5).await.unwrap().events;
    let want: Vec<_> = direct
        .iter()
        .filter(|e| (10..=head - 5).contains(&e.at.block_number))
        .cloned()
        .collect();
    assert_eq!(sub, want);

    let t = proxy.tally();
    let (refused, errors, limited, dropped) =
        (t.range_refusals, t.server_errors, t.too_many, t.dropped);
    assert!(
        refused > 0 && errors > 0 && limited > 0 && dropped > 0,
        "faults injected: {refused} range refusals, {errors} server errors, {limited} 429s, {dropped} drops"
    );
    assert!(proxied.log_span() <= 1_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_spans_grow_back_after_successes() {
    let node = Node::start().await;
    write_history(&node).await;
    let head = node.ledger.head().await.unwrap().number;
    let mut config = EvmLedgerConfig::new(
        node.anvil.endpoint(),
        node.contract,
        Node::account_key(&node.anvil, 0),
    );
    config.log_ranges = LogRangePolicy {
        initial_span: 1,
        max_span: 16,
        grow_after: 1,
    };
    let ledger = EvmLedger::connect(config).await.unwrap();
    let all = ledger.events(0, head).await.unwrap().events;
    assert_eq!(all, node.ledger.events(0, head).await.unwrap().events);
    assert_eq!(ledger.log_span(), 16, "span grew from 1 to the maximum");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spent_retries_give_a_clear_unavailable_error() {
    let node = Node::start().await;
    let head = node.ledger.head().await.unwrap().number;
    let proxy = FaultProxy::start(
        node.anvil.endpoint(),
        Faults {
            seed: 1,
            max_log_span: u64::MAX,
            rate_429: 0.0,
            rate_drop: 0.0,
            ..Faults::NONE
        },
    )
    .await
    .unwrap();
    let proxied = EvmLedger::connect(proxied_config(&node, proxy.url()))
        .await
        .unwrap();
    // Now the provider rate-limits every request.
    proxy.set_faults(|f| f.rate_429 = 1.0);
    // Nothing listens on a port this test bound and released: every
    // connection is refused.
    let mut config = proxied_config(&node, &format!("http://127.0.0.1:{}", closed_port()));
    config.retry.max_attempts = 3;
    let err = EvmLedger::connect(config).await.unwrap_err();
    let err = LedgerError::from(err);
    assert!(matches!(err, LedgerError::Unavailable(_)), "{err}");
    assert!(err.to_string().contains("after 3 attempts"), "{err}");

    let err = proxied.events(0, head).await.unwrap_err();
    assert!(matches!(err, LedgerError::Unavailable(_)), "{err}");
    assert!(
        err.to_string().contains("after 30 attempts") && err.to_string().contains("429"),
        "{err}"
    );
}

/// A loopback port nothing listens on: bound by this test, then released
/// (rather than assuming that some well-known port is closed).
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// The API key hosted providers put in the URL path.
const SECRET: &str = "SECRETKEY123";

/// Fails when `err` shows [`SECRET`] in its `Display` or `Debug`, or when it
/// does not show the scrubbed URL (so the transport's text was there).
fn assert_scrubbed(what: &str, err: &(impl std::fmt::Display + std::fmt::Debug), shown_url: &str) {
    let (display, debug) = (err.to_string(), format!("{err:?}"));
    assert!(
        !display.contains(SECRET) && !debug.contains(SECRET),
        "{what} leaks the API key: {display} / {debug}"
    );
    assert!(
        display.contains(shown_url),
        "{what} does not name the scrubbed URL {shown_url}: {display}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transport_errors_never_show_the_api_key_in_the_rpc_url() {
    let node = Node::start().await;
    let port = closed_port();
    let unreachable = format!("http://127.0.0.1:{port}/v2/{SECRET}");
    let shown = format!("127.0.0.1:{port}/…");
    let mut config = proxied_config(&node, &unreachable);
    config.retry.max_attempts = 2;
    let err = EvmLedger::connect(config).await.unwrap_err();
    assert_scrubbed("connect", &err, &shown);
    assert_scrubbed("connect (port error)", &LedgerError::from(err), &shown);

    let key = Node::account_key(&node.anvil, 0);
    let err = EvmLedger::deploy(&unreachable, &key).await.unwrap_err();
    assert_scrubbed("deploy", &err, &shown);

    // A provider reached through a keyed URL that then drops every
    // connection: reads and writes fail with the reqwest error of that URL.
    let proxy = FaultProxy::start(
        node.anvil.endpoint(),
        Faults {
            seed: 3,
            max_log_span: u64::MAX,
            rate_429: 0.0,
            rate_drop: 0.0,
            ..Faults::NONE
        },
    )
    .await
    .unwrap();
    let keyed = format!("{}/v2/{SECRET}", proxy.url());
    let shown = format!("{}/…", proxy.url());
    let mut config = proxied_config(&node, &keyed);
    config.retry.max_attempts = 2;
    let ledger = EvmLedger::connect(config).await.unwrap();
    proxy.set_faults(|f| f.rate_drop = 1.0);
    let err = ledger.head().await.unwrap_err();
    assert_scrubbed("head", &err, &shown);
    let err = ledger.finalized().await.unwrap_err();
    assert_scrubbed("finalized", &err, &shown);
    let w = TestWallet::from_seed(530_000);
    let err = ledger
        .register(&fixtures::patient(530_000, w.address(), "Key Leak"))
        .await
        .unwrap_err();
    assert_scrubbed("register", &err, &shown);
}

/// Transactions sent by anvil's account 0 so far (its nonce).
async fn sent_by_account_0(node: &Node) -> u64 {
    use alloy::providers::{Provider, ProviderBuilder};
    let provider = ProviderBuilder::new().connect_http(node.anvil.endpoint_url());
    provider
        .get_transaction_count(node.anvil.addresses()[0])
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_through_a_flaky_provider_all_land_exactly_once() {
    let node = Node::start().await;
    let proxy = FaultProxy::start(
        node.anvil.endpoint(),
        Faults {
            seed: 11,
            rate_429: 0.15,
            rate_drop: 0.1,
            rate_send_reply_lost: 0.3,
            ..Faults::NONE
        },
    )
    .await
    .unwrap();
    let ledger = EvmLedger::connect(proxied_config(&node, proxy.url()))
        .await
        .unwrap();
    let before = sent_by_account_0(&node).await;
    let profiles: Vec<_> = fixtures::patients(540_000, 30, "Flaky Net");
    let results = join_all(profiles.iter().map(|p| ledger.register(p))).await;
    for (p, r) in profiles.iter().zip(&results) {
        assert!(r.is_ok(), "{}: {r:?}", p.hh());
    }
    let mut hashes: Vec<_> = results
        .iter()
        .map(|r| r.as_ref().unwrap().tx_hash)
        .collect();
    hashes.sort();
    hashes.dedup();
    assert_eq!(hashes.len(), 30);
    assert_eq!(
        node.ledger
            .registered_count(healthledger_core::Role::Patient, ReadAt::Latest)
            .await
            .unwrap(),
        30
    );
    // Resends after lost answers were the same transactions, not new ones.
    assert_eq!(sent_by_account_0(&node).await, before + 30);
    let t = proxy.tally();
    let (lost, limited, dropped) = (t.send_replies_lost, t.too_many, t.dropped);
    assert!(
        lost > 0 && limited > 0 && dropped > 0,
        "faults injected: {lost} lost send answers, {limited} 429s, {dropped} drops"
    );
}

/// Rate-limits every `eth_sendRawTransaction`.
fn refuse_sends(request: &serde_json::Value) -> Option<(u16, serde_json::Value)> {
    (request["method"] == "eth_sendRawTransaction").then(|| {
        (
            429,
            serde_json::json!({"error": {"code": 429, "message": "Too Many Requests"}}),
        )
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_that_never_gets_through_is_unavailable_and_frees_its_nonce() {
    let node = Node::start().await;
    let proxy = FaultProxy::start(
        node.anvil.endpoint(),
        Faults {
            intercept: Some(refuse_sends),
            ..Faults::NONE
        },
    )
    .await
    .unwrap();
    let mut config = proxied_config(&node, proxy.url());
    config.retry.max_attempts = 3;
    let ledger = EvmLedger::connect(config).await.unwrap();
    let before = sent_by_account_0(&node).await;
    let w = TestWallet::from_seed(550_000);
    let patient = fixtures::patient(550_000, w.address(), "Rate Limited");
    let err = ledger.register(&patient).await.unwrap_err();
    assert!(matches!(err, LedgerError::Unavailable(_)), "{err:?}");
    let shown = err.to_string();
    assert!(
        shown.contains("transaction 0x") && shown.contains("after 3 attempt"),
        "{shown}"
    );
    assert_eq!(proxy.tally().intercepted, 3);
    assert_eq!(sent_by_account_0(&node).await, before);

    // The provider recovers: the write goes through with the freed nonce.
    proxy.set_faults(|f| f.intercept = None);
    ledger.register(&patient).await.unwrap();
    assert_eq!(sent_by_account_0(&node).await, before + 1);
}

/// Answers a request for the block of `tag` with `reply`.
fn for_tag(
    request: &serde_json::Value,
    tag: &str,
    status: u16,
    reply: serde_json::Value,
) -> Option<(u16, serde_json::Value)> {
    (request["method"] == "eth_getBlockByNumber" && request["params"][0] == tag)
        .then_some((status, reply))
}

fn finalized_unsupported(r: &serde_json::Value) -> Option<(u16, serde_json::Value)> {
    for_tag(
        r,
        "finalized",
        200,
        serde_json::json!({"error": {"code": -32602, "message": "invalid block tag finalized"}}),
    )
}

fn no_block_tags(r: &serde_json::Value) -> Option<(u16, serde_json::Value)> {
    for_tag(
        r,
        "finalized",
        200,
        serde_json::json!({"error": {"code": -32601, "message": "the method finalized does not exist"}}),
    )
    .or_else(|| for_tag(r, "safe", 200, serde_json::json!({"result": null})))
}

fn finalized_rate_limited(r: &serde_json::Value) -> Option<(u16, serde_json::Value)> {
    for_tag(
        r,
        "finalized",
        429,
        serde_json::json!({"error": {"code": 429, "message": "Too Many Requests"}}),
    )
}

fn finalized_failing(r: &serde_json::Value) -> Option<(u16, serde_json::Value)> {
    for_tag(
        r,
        "finalized",
        200,
        serde_json::json!({"error": {"code": -32000, "message": "missing trie node"}}),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finalized_uses_the_finalized_tag_then_safe_then_the_depth_and_never_hides_errors() {
    use alloy::{
        eips::BlockNumberOrTag,
        providers::{Provider, ProviderBuilder},
    };
    let node = Node::start().await;
    let direct = ProviderBuilder::new().connect_http(node.anvil.endpoint_url());
    // Enough blocks that anvil's finalized (head - 64) and safe (head - 32)
    // blocks and head - depth are all different.
    let _: serde_json::Value = direct
        .raw_request("anvil_mine".into(), (200u64,))
        .await
        .unwrap();
    let number = |tag| {
        let direct = direct.clone();
        async move {
            direct
                .get_block_by_number(tag)
                .await
                .unwrap()
                .unwrap()
                .header
                .number
        }
    };
    let head = number(BlockNumberOrTag::Latest).await;
    let finalized = number(BlockNumberOrTag::Finalized).await;
    let safe = number(BlockNumberOrTag::Safe).await;
    let depth = 5;
    assert!(
        finalized < safe && safe < head - depth,
        "anvil's tags: finalized {finalized}, safe {safe}, head {head}"
    );

    let proxy = FaultProxy::start(node.anvil.endpoint(), Faults::NONE)
        .await
        .unwrap();
    let mut config = proxied_config(&node, proxy.url());
    config.finality_depth = depth;
    config.retry.max_attempts = 3;
    let ledger = EvmLedger::connect(config).await.unwrap();
    let set = |i: Option<Intercept>| proxy.set_faults(|f| f.intercept = i);

    assert_eq!(ledger.finalized().await.unwrap().number, finalized);
    set(Some(finalized_unsupported));
    assert_eq!(ledger.finalized().await.unwrap().number, safe);
    set(Some(no_block_tags));
    let got = ledger.finalized().await.unwrap();
    assert_eq!(got.number, head - depth);
    assert_eq!(ledger.block(head - depth).await.unwrap(), Some(got));

    set(Some(finalized_rate_limited));
    let err = ledger.finalized().await.unwrap_err();
    assert!(
        matches!(err, LedgerError::Unavailable(_)) && err.to_string().contains("429"),
        "{err:?}"
    );
    set(Some(finalized_failing));
    let err = ledger.finalized().await.unwrap_err();
    assert!(
        matches!(err, LedgerError::Other(_)) && err.to_string().contains("missing trie node"),
        "{err:?}"
    );
}
