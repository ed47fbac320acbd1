//! Reconciliation of the chain into the cache: targeted, full, incremental and
//! live synchronization with reorg handling, drift verification and repair.
//!
//! Architecture invariant: this crate depends on `healthledger-core` only and
//! talks to the ledger and the cache through their ports. It is filled by the
//! sync issue; today it only declares its place in the workspace.
