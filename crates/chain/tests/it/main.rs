//! Integration tests of healthledger-chain, against real anvil nodes spawned
//! from the pinned tools (`cargo xtask setup` installs them): the committed
//! contract artifact, the core `LedgerPort` conformance suite, the bulk
//! reads' page sizes against the `eth_call` gas budget, the contract's
//! rules, event decoding, concurrent writes, and `events()` through a
//! fault-injecting JSON-RPC proxy.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod artifact;
mod conformance;
mod events;
mod hardening;
mod pages;
mod proxy;
mod rules;
mod stalls;
mod support;
mod writes;
