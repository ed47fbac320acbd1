//! The ledger adapter: the HealthLedger Solidity contract and an alloy-based
//! implementation of [`healthledger_core::LedgerPort`] for any EVM JSON-RPC node
//! (anvil locally, Polygon in production).
//!
//! This crate is filled by the chain issue; today it only declares its place in
//! the workspace and its one dependency, `healthledger-core`.
