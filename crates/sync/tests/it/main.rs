//! The sync engine's integration tests: every operation on the in-memory
//! fakes, error paths on mocks, a property test of "the cache equals the
//! projection of the canonical chain" through reorgs and crashes, and the
//! engine on anvil with SQLite and PostgreSQL, also through a faulty
//! provider; integrity (drift and repair, the access-log and vault audits).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod anvil;
mod audits;
mod errors;
mod fakes;
mod faults;
mod heads;
mod integrity;
mod kill;
mod property;
mod support;
