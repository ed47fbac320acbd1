//! The cache adapter: a sea-orm implementation of [`healthledger_core::CachePort`]
//! on SQLite (the embedded default) and PostgreSQL (production).
//!
//! This crate is filled by the cache issue; today it only declares its place in
//! the workspace and its one dependency, `healthledger-core`.
