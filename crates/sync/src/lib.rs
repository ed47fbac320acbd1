//! Reconciliation of the chain into the cache: targeted, full, incremental
//! and live synchronization, exact under reorgs and crashes.
//!
//! Architecture invariant: this crate depends on `healthledger-core` only
//! and talks to the ledger and the cache through their ports; adapters
//! appear only in its dev-dependencies.
//!
//! - [`plan`]: a pure planner from the cache's checkpoint and the chain's
//!   head and finalized block to the next step ([`plan::Plan`]) and, after
//!   a reorg, the fork point;
//! - [`SyncEngine::sync_patient`] and friends (`targeted`): one entity read
//!   at the head and upserted, with an [`Outcome`];
//! - [`SyncEngine::full_sync`] (`full`): the whole state at one pinned
//!   block through the bulk reads, installed in one cache transaction that
//!   sets the checkpoint, so incremental sync continues with no gap and no
//!   double;
//! - [`SyncEngine::sync`] (`backfill`, `reorg`): step until the head:
//!   final blocks through a pipeline of concurrent `eth_getLogs` ranges
//!   applied in large batches without undo, blocks near the head with
//!   their headers and exact undo, and after a reorg the canonical branch
//!   fetched first and switched to in one transaction; a first backfill of
//!   at least [`SyncConfig::backfill_mode_blocks`] blocks runs in the
//!   cache's initial backfill mode (indexes dropped, rebuilt when the final
//!   blocks are in; a restart that finds the mode on finishes it);
//! - [`SyncEngine::follow`] (`follow`): sync on every new head and prune
//!   undo data that became final, until [`Stopper::stop`]; woken by the
//!   ledger's new-head announcements where it has them
//!   ([`healthledger_core::LedgerPort::new_heads`], a WebSocket `newHeads`
//!   subscription on the EVM adapter), polling otherwise;
//! - [`SyncEngine::status`] and progress events ([`Progress`]);
//! - [`integrity`]: drift verification and repair, the access-log audit
//!   and anchoring job, and the vault audit.
//!
//! Crash safety: every cache write is one transaction that moves the
//! checkpoint with its data, so a crash loses at most the batch being
//! written, and a restart resumes from the checkpoint. Logs that do not
//! decode (quarantined) never stop the sync: they are stored in the same
//! transaction as their block batch, so they survive restarts and leave
//! with a rolled-back block, and [`SyncStatus`] reports them from the cache.
//!
//! One writer per cache: with [`SyncEngine::with_lease`], follow mode writes
//! only while it holds the cache's [`healthledger_core::WriterLease`] (a
//! PostgreSQL advisory lock or a lock file beside a SQLite database, in
//! `healthledger-cache`); a second follower stands by and takes over within
//! a poll interval of the holder's death, from the checkpoint like any
//! restart. The lease is checked before every step; should two writers
//! ever overlap, the cache's linkage checks (each batch applies only on
//! top of the checkpoint it was fetched for) refuse the second.

mod backfill;
mod engine;
mod error;
mod follow;
mod full;
pub mod integrity;
pub mod plan;
mod reorg;
mod status;
mod targeted;

pub use backfill::Stopper;
pub use engine::{StepReport, SyncConfig, SyncEngine};
pub use error::{Error, Result};
pub use status::{LeaseStatus, Phase, Progress, ProgressFn, RECENT_QUARANTINED, SyncStatus};
pub use targeted::{Outcome, Stale};
