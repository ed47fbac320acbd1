//! [`CachePort`] through [`Faulty`].

use alloy_primitives::B256;
use async_trait::async_trait;
use healthledger_core::{
    AccessGrant, AccessLogEntry, AuditAnchor, BlockRef, CacheCounts, CachePort, CacheResult,
    ChainEvent, ChainSnapshot, ChainSource, HhNumber, LogVerification, MedicalRecord,
    NewAccessLogEntry, NewNotification, Notification, PatientProfile, Profile, ProfileExtras,
    QuarantinedLog, QuarantinedLogs, RecordId, RecordQuery, Role, Session, SessionTokenHash,
    Timestamp, WalletAddress,
};

use super::Faulty;

type Batch = [(BlockRef, Vec<ChainEvent>)];

#[async_trait]
impl<P: CachePort> CachePort for Faulty<P> {
    async fn upsert_profile(&self, profile: &Profile, source: ChainSource) -> CacheResult<()> {
        self.run("upsert_profile", self.inner.upsert_profile(profile, source))
            .await
    }

    async fn upsert_record(&self, record: &MedicalRecord, source: ChainSource) -> CacheResult<()> {
        self.run("upsert_record", self.inner.upsert_record(record, source))
            .await
    }

    async fn upsert_grant(&self, grant: &AccessGrant, source: ChainSource) -> CacheResult<()> {
        self.run("upsert_grant", self.inner.upsert_grant(grant, source))
            .await
    }

    async fn apply_block(&self, block: &BlockRef, events: &[ChainEvent]) -> CacheResult<()> {
        self.run("apply_block", self.inner.apply_block(block, events))
            .await
    }

    async fn apply_blocks(&self, batch: &Batch, finalized: u64) -> CacheResult<()> {
        self.run("apply_blocks", self.inner.apply_blocks(batch, finalized))
            .await
    }

    async fn rollback_to(&self, number: u64) -> CacheResult<()> {
        self.run("rollback_to", self.inner.rollback_to(number))
            .await
    }

    async fn switch_branch(
        &self,
        fork_point: u64,
        batch: &Batch,
        finalized: u64,
    ) -> CacheResult<()> {
        self.run(
            "switch_branch",
            self.inner.switch_branch(fork_point, batch, finalized),
        )
        .await
    }

    async fn replace_chain_state(
        &self,
        at: &BlockRef,
        snapshot: &ChainSnapshot,
    ) -> CacheResult<()> {
        self.run(
            "replace_chain_state",
            self.inner.replace_chain_state(at, snapshot),
        )
        .await
    }

    async fn remove_profile(&self, hh: HhNumber) -> CacheResult<bool> {
        self.run("remove_profile", self.inner.remove_profile(hh))
            .await
    }

    async fn remove_record(&self, id: RecordId) -> CacheResult<bool> {
        self.run("remove_record", self.inner.remove_record(id))
            .await
    }

    async fn checkpoint(&self) -> CacheResult<Option<BlockRef>> {
        self.run("checkpoint", self.inner.checkpoint()).await
    }

    async fn final_block(&self) -> CacheResult<Option<BlockRef>> {
        self.run("final_block", self.inner.final_block()).await
    }

    async fn journal(&self, from: u64, to: u64) -> CacheResult<Vec<BlockRef>> {
        self.run("journal", self.inner.journal(from, to)).await
    }

    async fn prune_journal(&self, below: u64) -> CacheResult<u64> {
        self.run("prune_journal", self.inner.prune_journal(below))
            .await
    }

    async fn profile(&self, hh: HhNumber) -> CacheResult<Option<Profile>> {
        self.run("profile", self.inner.profile(hh)).await
    }

    async fn account_of(&self, wallet: WalletAddress) -> CacheResult<Option<(Role, HhNumber)>> {
        self.run("account_of", self.inner.account_of(wallet)).await
    }

    async fn record(&self, id: RecordId) -> CacheResult<Option<MedicalRecord>> {
        self.run("record", self.inner.record(id)).await
    }

    async fn records_of_patient(&self, patient: HhNumber) -> CacheResult<Vec<MedicalRecord>> {
        self.run("records_of_patient", self.inner.records_of_patient(patient))
            .await
    }

    async fn records_by_creator(&self, creator: HhNumber) -> CacheResult<Vec<MedicalRecord>> {
        self.run("records_by_creator", self.inner.records_by_creator(creator))
            .await
    }

    async fn grants_of_patient(&self, patient: HhNumber) -> CacheResult<Vec<AccessGrant>> {
        self.run("grants_of_patient", self.inner.grants_of_patient(patient))
            .await
    }

    async fn patients_of_doctor(
        &self,
        doctor: HhNumber,
        now: Timestamp,
    ) -> CacheResult<Vec<HhNumber>> {
        self.run(
            "patients_of_doctor",
            self.inner.patients_of_doctor(doctor, now),
        )
        .await
    }

    async fn search_patients(&self, prefix: &str, limit: u64) -> CacheResult<Vec<PatientProfile>> {
        self.run("search_patients", self.inner.search_patients(prefix, limit))
            .await
    }

    async fn search_records(&self, query: &RecordQuery) -> CacheResult<Vec<MedicalRecord>> {
        self.run("search_records", self.inner.search_records(query))
            .await
    }

    async fn latest_audit_anchor(&self) -> CacheResult<Option<AuditAnchor>> {
        self.run("latest_audit_anchor", self.inner.latest_audit_anchor())
            .await
    }

    async fn counts(&self) -> CacheResult<CacheCounts> {
        self.run("counts", self.inner.counts()).await
    }

    async fn set_extras(&self, hh: HhNumber, extras: &ProfileExtras) -> CacheResult<()> {
        self.run("set_extras", self.inner.set_extras(hh, extras))
            .await
    }

    async fn extras(&self, hh: HhNumber) -> CacheResult<Option<ProfileExtras>> {
        self.run("extras", self.inner.extras(hh)).await
    }

    async fn add_notification(&self, notification: &NewNotification) -> CacheResult<Notification> {
        self.run(
            "add_notification",
            self.inner.add_notification(notification),
        )
        .await
    }

    async fn notifications(
        &self,
        user: HhNumber,
        unread_only: bool,
    ) -> CacheResult<Vec<Notification>> {
        self.run("notifications", self.inner.notifications(user, unread_only))
            .await
    }

    async fn mark_notification_read(&self, id: u64) -> CacheResult<()> {
        self.run(
            "mark_notification_read",
            self.inner.mark_notification_read(id),
        )
        .await
    }

    async fn put_session(&self, session: &Session) -> CacheResult<()> {
        self.run("put_session", self.inner.put_session(session))
            .await
    }

    async fn session(&self, token_hash: SessionTokenHash) -> CacheResult<Option<Session>> {
        self.run("session", self.inner.session(token_hash)).await
    }

    async fn delete_session(&self, token_hash: SessionTokenHash) -> CacheResult<bool> {
        self.run("delete_session", self.inner.delete_session(token_hash))
            .await
    }

    async fn purge_expired_sessions(&self, now: Timestamp) -> CacheResult<u64> {
        self.run(
            "purge_expired_sessions",
            self.inner.purge_expired_sessions(now),
        )
        .await
    }

    async fn append_access_log(&self, entry: &NewAccessLogEntry) -> CacheResult<AccessLogEntry> {
        self.run("append_access_log", self.inner.append_access_log(entry))
            .await
    }

    async fn access_log(
        &self,
        patient: Option<HhNumber>,
        after_seq: u64,
        limit: u64,
    ) -> CacheResult<Vec<AccessLogEntry>> {
        self.run(
            "access_log",
            self.inner.access_log(patient, after_seq, limit),
        )
        .await
    }

    async fn verify_access_log(&self) -> CacheResult<LogVerification> {
        self.run("verify_access_log", self.inner.verify_access_log())
            .await
    }

    async fn access_log_digest(&self, up_to_seq: u64) -> CacheResult<B256> {
        self.run("access_log_digest", self.inner.access_log_digest(up_to_seq))
            .await
    }

    async fn apply_blocks_quarantining(
        &self,
        batch: &Batch,
        quarantined: &[QuarantinedLog],
        finalized: u64,
    ) -> CacheResult<()> {
        self.run(
            "apply_blocks_quarantining",
            self.inner
                .apply_blocks_quarantining(batch, quarantined, finalized),
        )
        .await
    }

    async fn switch_branch_quarantining(
        &self,
        fork_point: u64,
        batch: &Batch,
        quarantined: &[QuarantinedLog],
        finalized: u64,
    ) -> CacheResult<()> {
        self.run(
            "switch_branch_quarantining",
            self.inner
                .switch_branch_quarantining(fork_point, batch, quarantined, finalized),
        )
        .await
    }

    async fn quarantined_logs(&self, limit: u64) -> CacheResult<QuarantinedLogs> {
        self.run("quarantined_logs", self.inner.quarantined_logs(limit))
            .await
    }

    async fn profiles_by_hh(&self, hhs: &[HhNumber]) -> CacheResult<Vec<Profile>> {
        self.run("profiles_by_hh", self.inner.profiles_by_hh(hhs))
            .await
    }

    async fn records_by_id(&self, ids: &[RecordId]) -> CacheResult<Vec<MedicalRecord>> {
        self.run("records_by_id", self.inner.records_by_id(ids))
            .await
    }

    async fn grants_by_pair(
        &self,
        pairs: &[(HhNumber, HhNumber)],
    ) -> CacheResult<Vec<AccessGrant>> {
        self.run("grants_by_pair", self.inner.grants_by_pair(pairs))
            .await
    }

    async fn profile_keys(
        &self,
        after: Option<HhNumber>,
        limit: u64,
    ) -> CacheResult<Vec<HhNumber>> {
        self.run("profile_keys", self.inner.profile_keys(after, limit))
            .await
    }

    async fn record_keys(&self, after: Option<RecordId>, limit: u64) -> CacheResult<Vec<RecordId>> {
        self.run("record_keys", self.inner.record_keys(after, limit))
            .await
    }

    async fn grant_keys(
        &self,
        after: Option<(HhNumber, HhNumber)>,
        limit: u64,
    ) -> CacheResult<Vec<(HhNumber, HhNumber)>> {
        self.run("grant_keys", self.inner.grant_keys(after, limit))
            .await
    }

    async fn remove_grant(&self, patient: HhNumber, grantee: HhNumber) -> CacheResult<bool> {
        self.run("remove_grant", self.inner.remove_grant(patient, grantee))
            .await
    }

    async fn upsert_audit_anchor(
        &self,
        anchor: &AuditAnchor,
        source: ChainSource,
    ) -> CacheResult<()> {
        self.run(
            "upsert_audit_anchor",
            self.inner.upsert_audit_anchor(anchor, source),
        )
        .await
    }

    async fn remove_audit_anchor(&self) -> CacheResult<bool> {
        self.run("remove_audit_anchor", self.inner.remove_audit_anchor())
            .await
    }

    async fn begin_backfill_mode(&self) -> CacheResult<()> {
        self.run("begin_backfill_mode", self.inner.begin_backfill_mode())
            .await
    }

    async fn end_backfill_mode(&self) -> CacheResult<()> {
        self.run("end_backfill_mode", self.inner.end_backfill_mode())
            .await
    }

    async fn in_backfill_mode(&self) -> CacheResult<bool> {
        self.run("in_backfill_mode", self.inner.in_backfill_mode())
            .await
    }
}
