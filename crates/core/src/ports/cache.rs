//! [`CachePort`]: the query cache of the chain plus the data that belongs only
//! in a database. It can be rebuilt from the chain at any time.

use std::fmt::Debug;

use alloy_primitives::B256;
use async_trait::async_trait;
use auto_impl::auto_impl;
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::{
    AccessGrant, AccessLogEntry, AuditAnchor, BlockRef, CacheError, ChainEvent, HhNumber,
    LogVerification, MedicalRecord, NewAccessLogEntry, NewNotification, Notification,
    PatientProfile, Profile, ProfileExtras, QuarantinedLog, RecordId, Role, Session,
    SessionTokenHash, Timestamp, WalletAddress,
};

/// Shorthand for cache results.
pub type CacheResult<T> = Result<T, CacheError>;

/// Where a cached value came from on chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ChainSource {
    /// The block the value was read at or emitted in.
    pub block_number: u64,
    /// The transaction that wrote it, when known (zero for a state read).
    pub tx_hash: B256,
}

/// The whole chain state at one block, as a full sync reads it through the
/// ledger's bulk reads: what [`CachePort::replace_chain_state`] installs.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ChainSnapshot {
    /// Every registered profile, in its current version.
    pub profiles: Vec<Profile>,
    /// Every record.
    pub records: Vec<MedicalRecord>,
    /// Every grant ever made, in its current state (revoked or not).
    pub grants: Vec<AccessGrant>,
    /// The latest audit anchor, if any.
    pub anchor: Option<AuditAnchor>,
}

/// A record search. Every given criterion must hold.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct RecordQuery {
    /// Only this patient's records.
    pub patient: Option<HhNumber>,
    /// Only records of this type (case-insensitive exact match).
    pub record_type: Option<String>,
    /// Only records whose test date is on or after this date.
    pub date_from: Option<NaiveDate>,
    /// Only records whose test date is on or before this date.
    pub date_to: Option<NaiveDate>,
    /// Free text: every word (as split by [`crate::search_words`]) must be a
    /// whole word of the record's test name, type or content type,
    /// case-insensitively.
    pub text: Option<String>,
    /// At most this many results (newest test date first, then record id).
    pub limit: u64,
}

/// Row counts, for status displays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct CacheCounts {
    /// Cached patient profiles.
    pub patients: u64,
    /// Cached doctor profiles.
    pub doctors: u64,
    /// Cached diagnostic-center profiles.
    pub diagnostic_centers: u64,
    /// Indexed records.
    pub records: u64,
    /// Cached grants (active or not).
    pub grants: u64,
    /// Access-log entries.
    pub access_log: u64,
    /// Journaled blocks.
    pub journal: u64,
}

/// The cache.
///
/// Guarantees every implementation gives (checked by
/// [`crate::testing::cache`]):
/// - upserts are idempotent: applying the same value twice leaves one row;
/// - [`Self::apply_block`] applies a block's events, its journal entry and
///   the checkpoint atomically: after a failure none of it is visible;
/// - [`Self::apply_blocks`] does the same for a whole batch of blocks;
/// - [`Self::rollback_to`] restores exactly the state before the undone
///   blocks, including earlier versions of updated profiles and grants;
/// - DB-only data (extras, notifications, sessions, access log) is never
///   touched by chain data, upserts or rollbacks;
/// - every [`Timestamp`] takes any `u64` (the contract accepts any `uint64`
///   grant expiry, `u64::MAX` included): it is stored losslessly and
///   compared with `now` as a `u64`;
/// - an expiry equal to `now` has passed: a grant or session is live at
///   `now` only while `now < expires_at`, as the contract's `hasAccess`
///   (`block.timestamp < expiresAt`) and [`AccessGrant::is_active`] /
///   [`Session::is_valid`] decide;
/// - searches give the same answers on every backend.
#[cfg_attr(feature = "testing", mockall::automock)]
#[async_trait]
#[auto_impl(&, Arc, Box)]
pub trait CachePort: Send + Sync + Debug {
    // ----- chain data -----

    /// Inserts or replaces a profile (e.g. from a targeted sync). A wallet
    /// already owned by another HH number is `Conflict`; so is an HH number
    /// cached with another role.
    async fn upsert_profile(&self, profile: &Profile, source: ChainSource) -> CacheResult<()>;

    /// Inserts or replaces a record's index row. A record whose `patient`
    /// is not the patient its id embeds (`record-<HH>-<serial>`) is
    /// `Invalid`; so is such a record in [`Self::apply_block`].
    async fn upsert_record(&self, record: &MedicalRecord, source: ChainSource) -> CacheResult<()>;

    /// Inserts or replaces the grant for its (patient, grantee) pair.
    async fn upsert_grant(&self, grant: &AccessGrant, source: ChainSource) -> CacheResult<()>;

    /// Applies the events of one block, journals the block and moves the
    /// checkpoint to it, all in one transaction.
    ///
    /// Re-applying a journaled block with the same hash does nothing. A block
    /// at or below the checkpoint with another hash, or a direct successor of
    /// the checkpoint whose parent hash differs, is `Conflict` (roll back
    /// first). Events from another block are `Invalid`. Blocks may be
    /// skipped (blocks without events need not be applied).
    async fn apply_block(&self, block: &BlockRef, events: &[ChainEvent]) -> CacheResult<()>;

    /// Applies a batch of blocks, each with its events, in one transaction:
    /// all of the batch or, after a failure, none of it.
    ///
    /// The batch is ordered by block number. Each block is checked as
    /// [`Self::apply_block`] checks one ([`admit_block`], the checkpoint
    /// advancing through the batch), so an already applied prefix is
    /// skipped, and a block that [`Self::apply_block`] would refuse
    /// anywhere in the batch refuses the whole batch with that error. Every
    /// applied block is journaled and the checkpoint moves once, to the last
    /// applied block.
    ///
    /// Blocks numbered at or below `finalized` are final: they are
    /// journaled but keep no undo data, so a later [`Self::rollback_to`]
    /// below the highest final block applied is `Conflict` naming that
    /// block (as after [`Self::prune_journal`]). Blocks above `finalized`
    /// keep exact per-block undo. `apply_block(b, e)` is the one-block case
    /// with no final block.
    async fn apply_blocks(
        &self,
        batch: &[(BlockRef, Vec<ChainEvent>)],
        finalized: u64,
    ) -> CacheResult<()>;

    /// Undoes every block applied above `number`, restoring the values they
    /// replaced; the checkpoint becomes the highest remaining journaled
    /// block (or none). Idempotent.
    ///
    /// Targeted upserts ([`Self::upsert_profile`], [`Self::upsert_record`],
    /// [`Self::upsert_grant`]) serialize with block application and
    /// rollback, and one made while the checkpoint is a journaled block
    /// above the final one is journaled as a change made on top of that
    /// block, after the block's own: rolling back below that block puts
    /// back the value the upsert replaced (changes are undone newest first,
    /// so every row returns exactly to its value before the undone blocks
    /// and the upserts made on them), rolling back to it or above keeps the
    /// upsert. An upsert made while there is no checkpoint, or while it is
    /// final, is as permanent as a final block. Values a targeted sync read
    /// ahead of the checkpoint are journaled with the checkpoint too: a
    /// reorg that drops only blocks above the checkpoint keeps them, and
    /// the caller re-syncs what it upserted from the dropped branch.
    async fn rollback_to(&self, number: u64) -> CacheResult<()>;

    /// Rolls back to `fork_point` ([`Self::rollback_to`]) and applies
    /// `batch` ([`Self::apply_blocks`]) in one transaction, so that readers
    /// never see the state between the two branches of a reorg: they see
    /// the old branch until the new one is applied in full. After a failure
    /// nothing changed (the old branch is still applied). The batch's first
    /// block must lie above `fork_point`.
    async fn switch_branch(
        &self,
        fork_point: u64,
        batch: &[(BlockRef, Vec<ChainEvent>)],
        finalized: u64,
    ) -> CacheResult<()>;

    /// Replaces every cached chain value with `snapshot`, the state at
    /// block `at`, in one transaction: profiles, records and grants not in
    /// the snapshot are removed, the rest written; the journal and its undo
    /// data are cleared; the checkpoint becomes `at`, and `at` is final
    /// (rolling back below it is `Conflict`). DB-only data is untouched.
    /// The snapshot obeys the rules the cache enforces elsewhere: two
    /// profiles with one wallet or one HH number are `Conflict`, a record
    /// naming a patient other than the one its id embeds is `Invalid`, and
    /// after a refusal nothing changed.
    async fn replace_chain_state(&self, at: &BlockRef, snapshot: &ChainSnapshot)
    -> CacheResult<()>;

    /// Removes the cached profile of `hh` (a targeted sync found it gone
    /// from the chain); whether there was one. Its records, grants and
    /// DB-only data stay.
    async fn remove_profile(&self, hh: HhNumber) -> CacheResult<bool>;

    /// Removes the index row of record `id`; whether there was one.
    async fn remove_record(&self, id: RecordId) -> CacheResult<bool>;

    /// The last applied block.
    async fn checkpoint(&self) -> CacheResult<Option<BlockRef>>;

    /// The final block: the highest block applied as final, pruned, or
    /// installed by [`Self::replace_chain_state`]. Nothing at or below it
    /// can be rolled back; `None` while every applied block can be.
    async fn final_block(&self) -> CacheResult<Option<BlockRef>>;

    /// Journaled blocks with numbers in `from..=to`, ascending.
    async fn journal(&self, from: u64, to: u64) -> CacheResult<Vec<BlockRef>>;

    /// Forgets undo data of blocks below `number` (they are final); those
    /// blocks can no longer be rolled back. Returns how many were pruned.
    async fn prune_journal(&self, below: u64) -> CacheResult<u64>;

    // ----- reads -----

    /// The cached profile of `hh`.
    async fn profile(&self, hh: HhNumber) -> CacheResult<Option<Profile>>;

    /// The HH number and role owning `wallet`.
    async fn account_of(&self, wallet: WalletAddress) -> CacheResult<Option<(Role, HhNumber)>>;

    /// The indexed record `id`.
    async fn record(&self, id: RecordId) -> CacheResult<Option<MedicalRecord>>;

    /// A patient's records, newest test date first, then by id.
    async fn records_of_patient(&self, patient: HhNumber) -> CacheResult<Vec<MedicalRecord>>;

    /// Records created by a doctor or diagnostic center, newest first.
    async fn records_by_creator(&self, creator: HhNumber) -> CacheResult<Vec<MedicalRecord>>;

    /// The grants a patient made (active or not), by grantee.
    async fn grants_of_patient(&self, patient: HhNumber) -> CacheResult<Vec<AccessGrant>>;

    /// Patients who granted `doctor` access that is active at `now`
    /// ([`AccessGrant::is_active`]: not revoked, and no expiry or
    /// `now < expires_at`; a grant expiring exactly at `now` is not
    /// listed), ascending.
    async fn patients_of_doctor(
        &self,
        doctor: HhNumber,
        now: Timestamp,
    ) -> CacheResult<Vec<HhNumber>>;

    /// Patients whose name starts with `prefix` (case-insensitive), by name
    /// then HH number, at most `limit`.
    async fn search_patients(&self, prefix: &str, limit: u64) -> CacheResult<Vec<PatientProfile>>;

    /// Records matching `query`.
    async fn search_records(&self, query: &RecordQuery) -> CacheResult<Vec<MedicalRecord>>;

    /// The latest anchored access-log digest seen on chain.
    async fn latest_audit_anchor(&self) -> CacheResult<Option<AuditAnchor>>;

    /// Row counts.
    async fn counts(&self) -> CacheResult<CacheCounts>;

    // ----- DB-only data -----

    /// Sets a cached user's extras, replacing earlier ones; `NotFound` if
    /// the user is not cached.
    async fn set_extras(&self, hh: HhNumber, extras: &ProfileExtras) -> CacheResult<()>;

    /// A user's extras, if any were set.
    async fn extras(&self, hh: HhNumber) -> CacheResult<Option<ProfileExtras>>;

    /// Stores a notification and returns it with its id.
    async fn add_notification(&self, notification: &NewNotification) -> CacheResult<Notification>;

    /// A user's notifications, newest first.
    async fn notifications(
        &self,
        user: HhNumber,
        unread_only: bool,
    ) -> CacheResult<Vec<Notification>>;

    /// Marks a notification read (idempotent); `NotFound` for an unknown id.
    async fn mark_notification_read(&self, id: u64) -> CacheResult<()>;

    /// Stores a session; `AlreadyExists` for a token hash already stored.
    async fn put_session(&self, session: &Session) -> CacheResult<()>;

    /// The session with this token hash, expired or not (it is expired at
    /// `now` once `expires_at <= now`, see [`Session::is_valid`]) until
    /// [`Self::purge_expired_sessions`] or [`Self::delete_session`]
    /// removes it.
    async fn session(&self, token_hash: SessionTokenHash) -> CacheResult<Option<Session>>;

    /// Deletes a session; whether one was there.
    async fn delete_session(&self, token_hash: SessionTokenHash) -> CacheResult<bool>;

    /// Deletes sessions expired at `now` (`expires_at <= now`, so a session
    /// expiring exactly at `now` goes); how many.
    async fn purge_expired_sessions(&self, now: Timestamp) -> CacheResult<u64>;

    /// Appends to the hash-chained access log and returns the linked entry.
    /// Concurrent appends are serialized: seqs are 1, 2, 3… without gaps.
    async fn append_access_log(&self, entry: &NewAccessLogEntry) -> CacheResult<AccessLogEntry>;

    /// Access-log entries with seq above `after_seq`, ascending, optionally
    /// only those about `patient`, at most `limit`.
    async fn access_log(
        &self,
        patient: Option<HhNumber>,
        after_seq: u64,
        limit: u64,
    ) -> CacheResult<Vec<AccessLogEntry>>;

    /// Re-verifies the whole hash chain and checks it against the latest
    /// audit anchor ([`Self::latest_audit_anchor`]), reporting the first
    /// broken link; `entries` counts the stored entries.
    ///
    /// Without an anchor, `first_broken` is the first seq that is missing,
    /// out of place or not a valid link after its predecessor
    /// ([`crate::first_broken_link`]). The chain's SHA-256 is unkeyed, so
    /// this alone catches only edits that were not relinked. With an anchor
    /// `{digest, last_seq}`, entry `last_seq` must also exist and hash to
    /// `digest`; if not, `first_broken` is the least of `last_seq`, the
    /// chain's first break and the first missing seq (see
    /// [`LogVerification::verify_against_anchor`]). Hence an entry at or
    /// below `last_seq` that was edited and relinked, or deleted with the
    /// rest of the tail, is reported at or below `last_seq`.
    ///
    /// Limits: entries after `last_seq` are protected by the chain alone
    /// until the next anchor, and the check trusts the cached anchor. An
    /// attacker who also rewrites the cached anchor is caught only by
    /// comparing it with the anchor on chain, which a sync restores (the
    /// anchor is chain data, rebuilt from `AuditAnchored` events).
    async fn verify_access_log(&self) -> CacheResult<LogVerification>;

    /// The hash of entry `up_to_seq` (the digest to anchor on chain);
    /// `NotFound` if there is no such entry.
    async fn access_log_digest(&self, up_to_seq: u64) -> CacheResult<B256>;

    // ----- quarantined logs -----

    /// [`Self::apply_blocks`], storing in the same transaction
    /// `quarantined`: the logs of the batch's blocks that did not decode.
    ///
    /// Every log must lie in a block of the batch (same number and hash,
    /// [`check_quarantined`]), else `Invalid` and nothing is applied. A
    /// log is stored once per position (block number, log index,
    /// transaction hash): storing it again, e.g. with an already applied
    /// prefix of the batch, leaves one entry. Quarantined logs go with
    /// their block: [`Self::rollback_to`] and [`Self::switch_branch`]
    /// remove those of the blocks they undo, [`Self::replace_chain_state`]
    /// those above its block; [`Self::prune_journal`] keeps them.
    async fn apply_blocks_quarantining(
        &self,
        batch: &[(BlockRef, Vec<ChainEvent>)],
        quarantined: &[QuarantinedLog],
        finalized: u64,
    ) -> CacheResult<()>;

    /// [`Self::switch_branch`], storing the new branch's quarantined logs
    /// in the same transaction, by the rules of
    /// [`Self::apply_blocks_quarantining`] (those of the undone blocks are
    /// removed first).
    async fn switch_branch_quarantining(
        &self,
        fork_point: u64,
        batch: &[(BlockRef, Vec<ChainEvent>)],
        quarantined: &[QuarantinedLog],
        finalized: u64,
    ) -> CacheResult<()>;

    /// The stored quarantined logs, newest first (block number, then log
    /// index, descending), at most `limit` of them, with the count of all.
    async fn quarantined_logs(&self, limit: u64) -> CacheResult<QuarantinedLogs>;

    // ----- integrity: batch lookups, key walks and repair -----
    //
    // Drift verification compares the chain with the cache a page at a
    // time: a page of the chain (in the chain's enumeration order) is
    // looked up here by its keys, and the cache's keys are walked in key
    // order to find rows the chain does not have. Repair writes through
    // the removals below and the targeted upserts above.

    /// The cached profiles among `hhs` (any number of keys, duplicates
    /// allowed; uncached ones are left out), ascending by HH number.
    async fn profiles_by_hh(&self, hhs: &[HhNumber]) -> CacheResult<Vec<Profile>>;

    /// The indexed records among `ids` (uncached ones left out), ascending
    /// by id.
    async fn records_by_id(&self, ids: &[RecordId]) -> CacheResult<Vec<MedicalRecord>>;

    /// The cached grants among the (patient, grantee) `pairs` (uncached
    /// ones left out), ascending by pair.
    async fn grants_by_pair(&self, pairs: &[(HhNumber, HhNumber)])
    -> CacheResult<Vec<AccessGrant>>;

    /// Cached HH numbers above `after` (from the first when `None`),
    /// ascending, at most `limit`.
    async fn profile_keys(&self, after: Option<HhNumber>, limit: u64)
    -> CacheResult<Vec<HhNumber>>;

    /// Indexed record ids above `after`, ascending ([`RecordId`]'s order:
    /// patient, then serial), at most `limit`.
    async fn record_keys(&self, after: Option<RecordId>, limit: u64) -> CacheResult<Vec<RecordId>>;

    /// Cached grant keys (patient, grantee) above `after`, ascending, at
    /// most `limit`.
    async fn grant_keys(
        &self,
        after: Option<(HhNumber, HhNumber)>,
        limit: u64,
    ) -> CacheResult<Vec<(HhNumber, HhNumber)>>;

    /// Removes the cached grant of (`patient`, `grantee`) (its chain entry
    /// is gone); whether there was one. Like [`Self::remove_profile`], not
    /// journaled.
    async fn remove_grant(&self, patient: HhNumber, grantee: HhNumber) -> CacheResult<bool>;

    /// Inserts or replaces the cached audit anchor with one read from chain
    /// state; journaled under rollback like [`Self::upsert_grant`].
    async fn upsert_audit_anchor(
        &self,
        anchor: &AuditAnchor,
        source: ChainSource,
    ) -> CacheResult<()>;

    /// Removes the cached audit anchor (the chain has none); whether there
    /// was one. Not journaled.
    async fn remove_audit_anchor(&self) -> CacheResult<bool>;

    // ----- initial backfill mode -----

    /// Enters initial backfill mode, for a first backfill of many blocks:
    /// the cache may drop what it maintains only for searches and ordered
    /// reads (secondary indexes, free-text indexes and their triggers) and
    /// records the mode in its sync state, in one transaction. Idempotent.
    ///
    /// In the mode every write and every read keeps its meaning (reads by
    /// key or by owner may be slower), except [`Self::search_patients`] and
    /// [`Self::search_records`], which are [`CacheError::IndexBuilding`]
    /// rather than answers from a stale index. The mode outlives the
    /// process: after a crash it is still on until
    /// [`Self::end_backfill_mode`].
    async fn begin_backfill_mode(&self) -> CacheResult<()>;

    /// Leaves initial backfill mode: rebuilds everything
    /// [`Self::begin_backfill_mode`] dropped from the rows as they are now,
    /// and clears the mode, in one transaction (after a failure the cache
    /// is still in the mode, and calling this again finishes it). Outside
    /// the mode it does nothing.
    async fn end_backfill_mode(&self) -> CacheResult<()>;

    /// Whether the cache is in initial backfill mode.
    async fn in_backfill_mode(&self) -> CacheResult<bool>;
}

/// What [`CachePort::quarantined_logs`] returns.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct QuarantinedLogs {
    /// How many quarantined logs the cache holds.
    pub total: u64,
    /// The newest of them, newest first.
    pub newest: Vec<QuarantinedLog>,
}

/// The rule of [`CachePort::apply_blocks_quarantining`] written once for
/// every adapter: every quarantined log lies in a block of the batch (same
/// number and hash), else `Invalid` naming the first that does not.
pub fn check_quarantined(
    batch: &[(BlockRef, Vec<ChainEvent>)],
    quarantined: &[QuarantinedLog],
) -> CacheResult<()> {
    let blocks: std::collections::HashMap<u64, B256> =
        batch.iter().map(|(b, _)| (b.number, b.hash)).collect();
    match quarantined
        .iter()
        .find(|q| blocks.get(&q.at.block_number) != Some(&q.at.block_hash))
    {
        Some(q) => Err(CacheError::Invalid(format!(
            "quarantined log {} of block {} ({}) lies in no block of the batch",
            q.at.log_index, q.at.block_number, q.at.block_hash
        ))),
        None => Ok(()),
    }
}

/// The rule of [`CachePort::switch_branch`] written once for every
/// adapter: every block of the new branch lies above the fork point, else
/// `Invalid` naming the first that does not.
pub fn check_branch(fork_point: u64, batch: &[(BlockRef, Vec<ChainEvent>)]) -> CacheResult<()> {
    match batch.iter().find(|(b, _)| b.number <= fork_point) {
        Some((b, _)) => Err(CacheError::Invalid(format!(
            "block {} of the new branch is not above the fork point {fork_point}",
            b.number
        ))),
        None => Ok(()),
    }
}

/// What [`CachePort::apply_block`] does with a block once its linkage is
/// checked by [`admit_block`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockAdmission {
    /// The same block is already journaled: nothing to do.
    AlreadyApplied,
    /// The block extends the cache: apply it.
    Apply,
}

/// The linkage rules of [`CachePort::apply_block`], written once for every
/// adapter: given the block, its events, the hash journaled at its height
/// (if any) and the checkpoint, decide whether to apply it or refuse it.
///
/// - events of another block are `Invalid`;
/// - a journaled block with the same hash is [`BlockAdmission::AlreadyApplied`];
///   with another hash it is `Conflict` (roll back first);
/// - a block at or below the checkpoint is `Conflict`;
/// - a direct successor of the checkpoint whose parent hash differs is
///   `Conflict`; a block further ahead (a gap) is allowed.
pub fn admit_block(
    block: &BlockRef,
    events: &[ChainEvent],
    journaled_hash: Option<B256>,
    checkpoint: Option<&BlockRef>,
) -> CacheResult<BlockAdmission> {
    if let Some(e) = events
        .iter()
        .find(|e| e.at.block_number != block.number || e.at.block_hash != block.hash)
    {
        return Err(CacheError::Invalid(format!(
            "event at block {} ({}) does not belong to block {} ({})",
            e.at.block_number, e.at.block_hash, block.number, block.hash
        )));
    }
    if let Some(journaled) = journaled_hash {
        return if journaled == block.hash {
            Ok(BlockAdmission::AlreadyApplied)
        } else {
            Err(CacheError::Conflict(format!(
                "block {} is applied with hash {journaled}, not {}; roll back first",
                block.number, block.hash
            )))
        };
    }
    if let Some(cp) = checkpoint {
        if block.number <= cp.number {
            return Err(CacheError::Conflict(format!(
                "block {} is at or below the checkpoint {}",
                block.number, cp.number
            )));
        }
        if block.number == cp.number + 1 && block.parent_hash != cp.hash {
            return Err(CacheError::Conflict(format!(
                "block {} has parent {}, but the checkpoint is {}",
                block.number, block.parent_hash, cp.hash
            )));
        }
    }
    Ok(BlockAdmission::Apply)
}
