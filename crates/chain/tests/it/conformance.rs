//! The core `LedgerPort` conformance suite against `EvmLedger` on a fresh
//! anvil whose account 0 deployed the contract, with anvil's clock as the
//! suite's [`ChainClock`] and log ranges so short that every multi-block
//! `events()` call crosses chunk edges.

use healthledger_chain::LogRangePolicy;

use crate::support::Node;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_core_conformance_suite_passes_on_anvil() {
    let node = Node::start_with(|mut config| {
        config.log_ranges = LogRangePolicy {
            initial_span: 2,
            max_span: 3,
            grow_after: 1,
        };
        config
    })
    .await;
    healthledger_core::testing::ledger::all(&node.ledger, &node).await;
}
