//! A downstream team's own `CachePort`, wired into the app: `MeteredCache`
//! wraps any cache and counts and times every call per method (the kind of
//! adapter a team adds for its own metrics). Like every adapter, it must
//! pass the CachePort conformance suite first; the example runs the suite
//! on it (over the in-memory cache), then builds an `App` with it in place
//! of the SQL cache via `App::builder()`, runs the seed's story on a local
//! anvil, and prints the busiest calls.
//!
//! ```sh
//! cargo run -p healthledger-examples --example custom_cache
//! ```
//!
//! The delegating methods mirror the trait one for one: a new port method
//! is a compile error here until the adapter implements it.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use anyhow::Result;
use async_trait::async_trait;
use healthledger_api::{App, Config, story};
use healthledger_core::{
    AccessGrant, AccessLogEntry, AuditAnchor, B256, BlockRef, CacheCounts, CachePort, CacheResult,
    ChainEvent, ChainSnapshot, ChainSource, HhNumber, LogVerification, MedicalRecord,
    NewAccessLogEntry, NewNotification, Notification, PatientProfile, Profile, ProfileExtras,
    QuarantinedLog, QuarantinedLogs, RecordId, RecordQuery, Role, Session, SessionTokenHash,
    Timestamp, WalletAddress,
    testing::{self, InMemoryCache},
};

/// Calls and total time by (read or write, method).
type Calls = BTreeMap<(&'static str, &'static str), (u64, Duration)>;

/// Calls and time per method, split into reads and writes.
#[derive(Debug, Default)]
struct Meter {
    calls: Mutex<Calls>,
}

/// Adds its lifetime to the meter when dropped.
struct Timer<'a> {
    meter: &'a Meter,
    key: (&'static str, &'static str),
    started: Instant,
}

impl Drop for Timer<'_> {
    fn drop(&mut self) {
        if let Ok(mut calls) = self.meter.calls.lock() {
            let e = calls.entry(self.key).or_default();
            e.0 += 1;
            e.1 += self.started.elapsed();
        }
    }
}

impl Meter {
    fn read(&self, method: &'static str) -> Timer<'_> {
        self.timer("read", method)
    }

    fn write(&self, method: &'static str) -> Timer<'_> {
        self.timer("write", method)
    }

    fn timer(&self, kind: &'static str, method: &'static str) -> Timer<'_> {
        Timer {
            meter: self,
            key: (kind, method),
            started: Instant::now(),
        }
    }
}

/// Any cache, metered.
#[derive(Debug)]
struct MeteredCache<C> {
    inner: C,
    meter: Meter,
}

impl<C> MeteredCache<C> {
    fn new(inner: C) -> Self {
        Self {
            inner,
            meter: Meter::default(),
        }
    }
}

#[async_trait]
impl<C: CachePort> CachePort for MeteredCache<C> {
    async fn upsert_profile(&self, profile: &Profile, source: ChainSource) -> CacheResult<()> {
        let _timer = self.meter.write("upsert_profile");
        self.inner.upsert_profile(profile, source).await
    }

    async fn upsert_record(&self, record: &MedicalRecord, source: ChainSource) -> CacheResult<()> {
        let _timer = self.meter.write("upsert_record");
        self.inner.upsert_record(record, source).await
    }

    async fn upsert_grant(&self, grant: &AccessGrant, source: ChainSource) -> CacheResult<()> {
        let _timer = self.meter.write("upsert_grant");
        self.inner.upsert_grant(grant, source).await
    }

    async fn apply_block(&self, block: &BlockRef, events: &[ChainEvent]) -> CacheResult<()> {
        let _timer = self.meter.write("apply_block");
        self.inner.apply_block(block, events).await
    }

    async fn apply_blocks(
        &self,
        batch: &[(BlockRef, Vec<ChainEvent>)],
        finalized: u64,
    ) -> CacheResult<()> {
        let _timer = self.meter.write("apply_blocks");
        self.inner.apply_blocks(batch, finalized).await
    }

    async fn rollback_to(&self, number: u64) -> CacheResult<()> {
        let _timer = self.meter.write("rollback_to");
        self.inner.rollback_to(number).await
    }

    async fn switch_branch(
        &self,
        fork_point: u64,
        batch: &[(BlockRef, Vec<ChainEvent>)],
        finalized: u64,
    ) -> CacheResult<()> {
        let _timer = self.meter.write("switch_branch");
        self.inner.switch_branch(fork_point, batch, finalized).await
    }

    async fn replace_chain_state(
        &self,
        at: &BlockRef,
        snapshot: &ChainSnapshot,
    ) -> CacheResult<()> {
        let _timer = self.meter.write("replace_chain_state");
        self.inner.replace_chain_state(at, snapshot).await
    }

    async fn remove_profile(&self, hh: HhNumber) -> CacheResult<bool> {
        let _timer = self.meter.write("remove_profile");
        self.inner.remove_profile(hh).await
    }

    async fn remove_record(&self, id: RecordId) -> CacheResult<bool> {
        let _timer = self.meter.write("remove_record");
        self.inner.remove_record(id).await
    }

    async fn checkpoint(&self) -> CacheResult<Option<BlockRef>> {
        let _timer = self.meter.read("checkpoint");
        self.inner.checkpoint().await
    }

    async fn final_block(&self) -> CacheResult<Option<BlockRef>> {
        let _timer = self.meter.read("final_block");
        self.inner.final_block().await
    }

    async fn journal(&self, from: u64, to: u64) -> CacheResult<Vec<BlockRef>> {
        let _timer = self.meter.read("journal");
        self.inner.journal(from, to).await
    }

    async fn prune_journal(&self, below: u64) -> CacheResult<u64> {
        let _timer = self.meter.write("prune_journal");
        self.inner.prune_journal(below).await
    }

    async fn profile(&self, hh: HhNumber) -> CacheResult<Option<Profile>> {
        let _timer = self.meter.read("profile");
        self.inner.profile(hh).await
    }

    async fn account_of(&self, wallet: WalletAddress) -> CacheResult<Option<(Role, HhNumber)>> {
        let _timer = self.meter.read("account_of");
        self.inner.account_of(wallet).await
    }

    async fn record(&self, id: RecordId) -> CacheResult<Option<MedicalRecord>> {
        let _timer = self.meter.read("record");
        self.inner.record(id).await
    }

    async fn records_of_patient(&self, patient: HhNumber) -> CacheResult<Vec<MedicalRecord>> {
        let _timer = self.meter.read("records_of_patient");
        self.inner.records_of_patient(patient).await
    }

    async fn records_by_creator(&self, creator: HhNumber) -> CacheResult<Vec<MedicalRecord>> {
        let _timer = self.meter.read("records_by_creator");
        self.inner.records_by_creator(creator).await
    }

    async fn grants_of_patient(&self, patient: HhNumber) -> CacheResult<Vec<AccessGrant>> {
        let _timer = self.meter.read("grants_of_patient");
        self.inner.grants_of_patient(patient).await
    }

    async fn patients_of_doctor(
        &self,
        doctor: HhNumber,
        now: Timestamp,
    ) -> CacheResult<Vec<HhNumber>> {
        let _timer = self.meter.read("patients_of_doctor");
        self.inner.patients_of_doctor(doctor, now).await
    }

    async fn search_patients(&self, prefix: &str, limit: u64) -> CacheResult<Vec<PatientProfile>> {
        let _timer = self.meter.read("search_patients");
        self.inner.search_patients(prefix, limit).await
    }

    async fn search_records(&self, query: &RecordQuery) -> CacheResult<Vec<MedicalRecord>> {
        let _timer = self.meter.read("search_records");
        self.inner.search_records(query).await
    }

    async fn latest_audit_anchor(&self) -> CacheResult<Option<AuditAnchor>> {
        let _timer = self.meter.read("latest_audit_anchor");
        self.inner.latest_audit_anchor().await
    }

    async fn counts(&self) -> CacheResult<CacheCounts> {
        let _timer = self.meter.read("counts");
        self.inner.counts().await
    }

    async fn set_extras(&self, hh: HhNumber, extras: &ProfileExtras) -> CacheResult<()> {
        let _timer = self.meter.write("set_extras");
        self.inner.set_extras(hh, extras).await
    }

    async fn extras(&self, hh: HhNumber) -> CacheResult<Option<ProfileExtras>> {
        let _timer = self.meter.read("extras");
        self.inner.extras(hh).await
    }

    async fn add_notification(&self, notification: &NewNotification) -> CacheResult<Notification> {
        let _timer = self.meter.write("add_notification");
        self.inner.add_notification(notification).await
    }

    async fn notifications(
        &self,
        user: HhNumber,
        unread_only: bool,
    ) -> CacheResult<Vec<Notification>> {
        let _timer = self.meter.read("notifications");
        self.inner.notifications(user, unread_only).await
    }

    async fn mark_notification_read(&self, id: u64) -> CacheResult<()> {
        let _timer = self.meter.write("mark_notification_read");
        self.inner.mark_notification_read(id).await
    }

    async fn put_session(&self, session: &Session) -> CacheResult<()> {
        let _timer = self.meter.write("put_session");
        self.inner.put_session(session).await
    }

    async fn session(&self, token_hash: SessionTokenHash) -> CacheResult<Option<Session>> {
        let _timer = self.meter.read("session");
        self.inner.session(token_hash).await
    }

    async fn delete_session(&self, token_hash: SessionTokenHash) -> CacheResult<bool> {
        let _timer = self.meter.write("delete_session");
        self.inner.delete_session(token_hash).await
    }

    async fn purge_expired_sessions(&self, now: Timestamp) -> CacheResult<u64> {
        let _timer = self.meter.write("purge_expired_sessions");
        self.inner.purge_expired_sessions(now).await
    }

    async fn append_access_log(&self, entry: &NewAccessLogEntry) -> CacheResult<AccessLogEntry> {
        let _timer = self.meter.write("append_access_log");
        self.inner.append_access_log(entry).await
    }

    async fn access_log(
        &self,
        patient: Option<HhNumber>,
        after_seq: u64,
        limit: u64,
    ) -> CacheResult<Vec<AccessLogEntry>> {
        let _timer = self.meter.read("access_log");
        self.inner.access_log(patient, after_seq, limit).await
    }

    async fn verify_access_log(&self) -> CacheResult<LogVerification> {
        let _timer = self.meter.read("verify_access_log");
        self.inner.verify_access_log().await
    }

    async fn access_log_digest(&self, up_to_seq: u64) -> CacheResult<B256> {
        let _timer = self.meter.read("access_log_digest");
        self.inner.access_log_digest(up_to_seq).await
    }

    async fn apply_blocks_quarantining(
        &self,
        batch: &[(BlockRef, Vec<ChainEvent>)],
        quarantined: &[QuarantinedLog],
        finalized: u64,
    ) -> CacheResult<()> {
        let _timer = self.meter.write("apply_blocks_quarantining");
        self.inner
            .apply_blocks_quarantining(batch, quarantined, finalized)
            .await
    }

    async fn switch_branch_quarantining(
        &self,
        fork_point: u64,
        batch: &[(BlockRef, Vec<ChainEvent>)],
        quarantined: &[QuarantinedLog],
        finalized: u64,
    ) -> CacheResult<()> {
        let _timer = self.meter.write("switch_branch_quarantining");
        self.inner
            .switch_branch_quarantining(fork_point, batch, quarantined, finalized)
            .await
    }

    async fn quarantined_logs(&self, limit: u64) -> CacheResult<QuarantinedLogs> {
        let _timer = self.meter.read("quarantined_logs");
        self.inner.quarantined_logs(limit).await
    }

    async fn profiles_by_hh(&self, hhs: &[HhNumber]) -> CacheResult<Vec<Profile>> {
        let _timer = self.meter.read("profiles_by_hh");
        self.inner.profiles_by_hh(hhs).await
    }

    async fn records_by_id(&self, ids: &[RecordId]) -> CacheResult<Vec<MedicalRecord>> {
        let _timer = self.meter.read("records_by_id");
        self.inner.records_by_id(ids).await
    }

    async fn grants_by_pair(
        &self,
        pairs: &[(HhNumber, HhNumber)],
    ) -> CacheResult<Vec<AccessGrant>> {
        let _timer = self.meter.read("grants_by_pair");
        self.inner.grants_by_pair(pairs).await
    }

    async fn profile_keys(
        &self,
        after: Option<HhNumber>,
        limit: u64,
    ) -> CacheResult<Vec<HhNumber>> {
        let _timer = self.meter.read("profile_keys");
        self.inner.profile_keys(after, limit).await
    }

    async fn record_keys(&self, after: Option<RecordId>, limit: u64) -> CacheResult<Vec<RecordId>> {
        let _timer = self.meter.write("record_keys");
        self.inner.record_keys(after, limit).await
    }

    async fn grant_keys(
        &self,
        after: Option<(HhNumber, HhNumber)>,
        limit: u64,
    ) -> CacheResult<Vec<(HhNumber, HhNumber)>> {
        let _timer = self.meter.read("grant_keys");
        self.inner.grant_keys(after, limit).await
    }

    async fn remove_grant(&self, patient: HhNumber, grantee: HhNumber) -> CacheResult<bool> {
        let _timer = self.meter.write("remove_grant");
        self.inner.remove_grant(patient, grantee).await
    }

    async fn upsert_audit_anchor(
        &self,
        anchor: &AuditAnchor,
        source: ChainSource,
    ) -> CacheResult<()> {
        let _timer = self.meter.write("upsert_audit_anchor");
        self.inner.upsert_audit_anchor(anchor, source).await
    }

    async fn remove_audit_anchor(&self) -> CacheResult<bool> {
        let _timer = self.meter.write("remove_audit_anchor");
        self.inner.remove_audit_anchor().await
    }

    async fn begin_backfill_mode(&self) -> CacheResult<()> {
        let _timer = self.meter.write("begin_backfill_mode");
        self.inner.begin_backfill_mode().await
    }

    async fn end_backfill_mode(&self) -> CacheResult<()> {
        let _timer = self.meter.write("end_backfill_mode");
        self.inner.end_backfill_mode().await
    }

    async fn in_backfill_mode(&self) -> CacheResult<bool> {
        let _timer = self.meter.read("in_backfill_mode");
        self.inner.in_backfill_mode().await
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    // 1. The adapter passes the same suite every cache must pass.
    testing::cache::all(|| async { MeteredCache::new(InMemoryCache::new()) }).await;
    println!("MeteredCache<InMemoryCache> passes the CachePort conformance suite");

    // 2. Wired into the app in place of the SQL cache, beside the local
    //    chain and vault that `App::build` starts.
    let dir =
        std::env::temp_dir().join(format!("healthledger-custom-cache-{}", std::process::id()));
    let base = App::build(Config::local(&dir)).await?;
    let cache = Arc::new(MeteredCache::new(InMemoryCache::new()));
    let app = App::builder()
        .ledger(base.ledger().clone())
        .cache(cache.clone())
        .vault(base.vault().clone())
        .build()?;
    let result = story::run(&app, &mut |line: &str| println!("{line}")).await;
    base.shutdown().await;
    result?;

    // 3. What the story asked of the cache.
    let calls = cache
        .meter
        .calls
        .lock()
        .map(|c| c.clone())
        .unwrap_or_default();
    let mut busiest: Vec<_> = calls.into_iter().collect();
    busiest.sort_by_key(|(_, (n, _))| std::cmp::Reverse(*n));
    println!("\nbusiest cache calls:");
    for ((kind, method), (n, time)) in busiest.iter().take(8) {
        println!("  {kind:5} {method:24} {n:4} calls  {time:?}");
    }
    Ok(())
}
