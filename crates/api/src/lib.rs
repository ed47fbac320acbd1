//! HealthLedger's application layer: the one crate that names the concrete
//! adapters and wires them together.
//!
//! - [`Config`] ([`config`]): explicit settings from a TOML file and the
//!   environment, with a documented precedence; the embedded defaults run
//!   on a local anvil, a SQLite file and a `file://` vault.
//! - [`App`] ([`app`]): [`App::build`] connects what a config names;
//!   [`App::builder`] takes any `Arc<dyn LedgerPort/CachePort/VaultPort>`
//!   so a team can swap an adapter for its own.
//! - The facade ([`facade`]): the seed guide's flows (register, profile
//!   cache-first, create an encrypted record, grant and revoke with the
//!   patient's consent, read only when the chain authorizes, log every
//!   access, erase), each checking its [`Actor`] before any write.
//! - The HTTP server ([`http`]): the seed's REST API over the facade,
//!   with wallet sign-in, OpenAPI, health, readiness and metrics
//!   (`healthledger serve`).
//! - [`jobs`]: follow mode and the audit anchoring, as tasks the app
//!   schedules.
//! - The `healthledger` CLI (`src/bin/healthledger.rs`, [`cli`]).

pub mod app;
pub mod cli;
pub mod config;
mod error;
pub mod facade;
pub mod http;
pub mod jobs;
pub mod local;
pub mod story;

pub use app::{App, AppBuilder, Settings, Wiring};
pub use config::{ChainConfig, Config, Secret};
pub use error::{Error, Result};
pub use facade::{
    AccessChange, Actor, AllowedType, ConsentSigner, CreatedRecord, Erasure, LocalWallet,
    RecordDraft, RecordRead, Registered, SealedRecord,
};
