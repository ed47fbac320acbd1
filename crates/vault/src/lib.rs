//! The vault adapter: envelope-encrypted, IPFS-compatible content-addressed
//! storage implementing [`healthledger_core::VaultPort`] on any `object_store`.
//!
//! This crate is filled by the vault issue; today it only declares its place in
//! the workspace and its one dependency, `healthledger-core`.
