//! The core `LedgerPort` conformance suite, unchanged, against `EvmLedger`
//! on a fresh anvil whose account 0 deployed the contract.

use crate::support::Node;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_core_conformance_suite_passes_on_anvil() {
    let node = Node::start().await;
    healthledger_core::testing::ledger::all(&node.ledger).await;
}
