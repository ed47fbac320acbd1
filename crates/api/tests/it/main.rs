//! Integration tests of the application layer: the seed's story through
//! the facade on anvil with SQLite and PostgreSQL, who may do what (the
//! authorization matrix), bad input, failures between the steps of a
//! write, and the CLI as a binary.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod authz;
mod bad_input;
mod cid_owner;
mod cli;
mod faults;
mod faulty;
mod http;
mod matrix;
mod story;
mod support;
mod world;
