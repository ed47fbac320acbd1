//! What the engine reports: its status (for `sync status`, `/api/sync/status`
//! and readiness) and progress events (for progress bars).

use std::sync::Arc;

use healthledger_core::{BlockRef, CacheCounts, QuarantinedLog, Timestamp};
use serde::{Deserialize, Serialize};

/// The engine's status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncStatus {
    /// Whether a sync step is running now.
    pub is_syncing: bool,
    /// When the last step that reached the head finished (wall clock).
    pub last_sync_time: Option<Timestamp>,
    /// The cache's checkpoint.
    pub checkpoint: Option<BlockRef>,
    /// The chain's head.
    pub head: BlockRef,
    /// The chain's finalized block.
    pub finalized: BlockRef,
    /// Blocks between the checkpoint and the head.
    pub lag_blocks: u64,
    /// Seconds between the checkpoint's block time and the head's.
    pub lag_seconds: u64,
    /// Cached rows per entity.
    pub counts: CacheCounts,
    /// Logs that did not decode, as the cache stores them (with their
    /// blocks: they survive restarts and leave with a rolled-back block).
    pub quarantined: u64,
    /// The newest of them, newest first (at most [`RECENT_QUARANTINED`]).
    pub recent_quarantined: Vec<QuarantinedLog>,
    /// The last step's error, if it failed.
    pub last_error: Option<String>,
    /// The writer lease, when the engine follows under one.
    pub lease: Option<LeaseStatus>,
}

/// Who holds the writer lease, as far as this engine knows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseStatus {
    /// Whether this engine holds it (it is the writer) or stands by.
    pub held: bool,
    /// What the lease is (a lock file, an advisory lock), without secrets.
    pub lease: String,
}

/// How many quarantined logs [`SyncStatus::recent_quarantined`] keeps.
pub const RECENT_QUARANTINED: u64 = 100;

/// The phase a progress event is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Phase {
    /// Reading a snapshot through the bulk reads.
    Snapshot,
    /// Installing the snapshot in the cache.
    Install,
    /// Applying final blocks (no undo kept).
    Backfill,
    /// Applying blocks near the head (with undo).
    Tail,
    /// Switching to a new branch after a reorg.
    Reorg,
}

/// One progress event.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    /// What is being done.
    pub phase: Phase,
    /// Units done in this phase (blocks, or entities for a snapshot).
    pub done: u64,
    /// Units in the phase.
    pub total: u64,
    /// Events (or entities) applied so far in this phase.
    pub events: u64,
    /// Events (or entities) per second so far in this phase.
    pub per_second: f64,
}

/// Receives progress events; called on the engine's task, so it must be
/// quick (a progress bar update, a channel send).
pub type ProgressFn = Arc<dyn Fn(&Progress) + Send + Sync>;
