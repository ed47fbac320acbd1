//! Integration tests of the SQL cache: the core conformance suite on SQLite
//! in memory, SQLite on a file and PostgreSQL, plus rollback properties,
//! access-log tampering, concurrency, search edge cases and migrations.
//!
//! PostgreSQL tests use `TEST_DATABASE_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`), each cache in a fresh schema;
//! they fail when the server is unreachable (start it with
//! `cargo xtask setup`); nothing skips them.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod access_log;
mod backfill_mode;
mod conformance;
mod faults;
mod lease;
mod migrations;
mod previous_schema;
mod races;
mod readers;
mod rollback;
mod schema;
mod search;
mod support;
