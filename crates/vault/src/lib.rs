//! The vault adapter: envelope-encrypted, IPFS-compatible content-addressed
//! storage implementing [`healthledger_core::VaultPort`] on any `object_store`.

pub mod unixfs;

pub use unixfs::{CidHasher, CidOptions, CidOptionsError, CidVersion, compute_cid};
