//! The [`CachePort`] implementation: each method opens a transaction
//! where it writes and delegates to the module that does the work.

use async_trait::async_trait;
use healthledger_core::{
    AccessGrant, AccessLogEntry, AuditAnchor, B256, BlockRef, CacheCounts, CachePort, CacheResult,
    ChainEvent, ChainSnapshot, ChainSource, HhNumber, LogVerification, MedicalRecord,
    NewAccessLogEntry, NewNotification, Notification, PatientProfile, Profile, ProfileExtras,
    QuarantinedLog, QuarantinedLogs, RecordId, RecordQuery, Role, Session, SessionTokenHash,
    Timestamp, WalletAddress,
};

use crate::SqlCache;

#[async_trait]
impl CachePort for SqlCache {
    async fn upsert_profile(&self, profile: &Profile, source: ChainSource) -> CacheResult<()> {
        let tx = self.begin().await?;
        let result = self.targeted_profile(&tx, profile, source).await;
        self.finish(tx, result).await
    }

    async fn upsert_record(&self, record: &MedicalRecord, source: ChainSource) -> CacheResult<()> {
        let tx = self.begin().await?;
        let result = self.targeted_record(&tx, record, source).await;
        self.finish(tx, result).await
    }

    async fn upsert_grant(&self, grant: &AccessGrant, source: ChainSource) -> CacheResult<()> {
        let tx = self.begin().await?;
        let result = self.targeted_grant(&tx, grant, source).await;
        self.finish(tx, result).await
    }

    async fn apply_block(&self, block: &BlockRef, events: &[ChainEvent]) -> CacheResult<()> {
        let tx = self.begin().await?;
        let result = self
            .apply_blocks_in(&tx, &[(*block, events.to_vec())], None)
            .await;
        self.finish(tx, result).await
    }

    async fn apply_blocks(
        &self,
        batch: &[(BlockRef, Vec<ChainEvent>)],
        finalized: u64,
    ) -> CacheResult<()> {
        let tx = self.begin().await?;
        let result = self.apply_blocks_in(&tx, batch, Some(finalized)).await;
        self.finish(tx, result).await
    }

    async fn rollback_to(&self, number: u64) -> CacheResult<()> {
        let tx = self.begin().await?;
        let result = self.rollback_in(&tx, number).await;
        self.finish(tx, result).await
    }

    async fn switch_branch(
        &self,
        fork_point: u64,
        batch: &[(BlockRef, Vec<ChainEvent>)],
        finalized: u64,
    ) -> CacheResult<()> {
        let tx = self.begin().await?;
        let result = self
            .switch_branch_in(&tx, fork_point, batch, finalized)
            .await;
        self.finish(tx, result).await
    }

    async fn replace_chain_state(
        &self,
        at: &BlockRef,
        snapshot: &ChainSnapshot,
    ) -> CacheResult<()> {
        let tx = self.begin().await?;
        let result = self.replace_chain_state_in(&tx, at, snapshot).await;
        self.finish(tx, result).await
    }

    async fn remove_profile(&self, hh: HhNumber) -> CacheResult<bool> {
        let tx = self.begin().await?;
        let result = self.remove_profile_in(&tx, hh).await.map_err(Into::into);
        self.finish(tx, result).await
    }

    async fn remove_record(&self, id: RecordId) -> CacheResult<bool> {
        let tx = self.begin().await?;
        let result = self.remove_record_in(&tx, id).await.map_err(Into::into);
        self.finish(tx, result).await
    }

    async fn checkpoint(&self) -> CacheResult<Option<BlockRef>> {
        Ok(self.read_sync_state(&self.read).await?.checkpoint())
    }

    async fn final_block(&self) -> CacheResult<Option<BlockRef>> {
        Ok(self.read_sync_state(&self.read).await?.pruned)
    }

    async fn journal(&self, from: u64, to: u64) -> CacheResult<Vec<BlockRef>> {
        self.journal_range(from, to).await
    }

    async fn prune_journal(&self, below: u64) -> CacheResult<u64> {
        let tx = self.begin().await?;
        let result = self.prune_in(&tx, below).await;
        self.finish(tx, result).await
    }

    async fn profile(&self, hh: HhNumber) -> CacheResult<Option<Profile>> {
        Ok(self.load_profile(&self.read, hh).await?.map(|(p, _)| p))
    }

    async fn account_of(&self, wallet: WalletAddress) -> CacheResult<Option<(Role, HhNumber)>> {
        self.find_account(wallet).await
    }

    async fn record(&self, id: RecordId) -> CacheResult<Option<MedicalRecord>> {
        Ok(self.load_record(&self.read, id).await?.map(|(r, _)| r))
    }

    async fn records_of_patient(&self, patient: HhNumber) -> CacheResult<Vec<MedicalRecord>> {
        Ok(self.records_where("r.patient", patient).await?)
    }

    async fn records_by_creator(&self, creator: HhNumber) -> CacheResult<Vec<MedicalRecord>> {
        Ok(self.records_where("r.creator", creator).await?)
    }

    async fn grants_of_patient(&self, patient: HhNumber) -> CacheResult<Vec<AccessGrant>> {
        self.grants_of(patient).await
    }

    async fn patients_of_doctor(
        &self,
        doctor: HhNumber,
        now: Timestamp,
    ) -> CacheResult<Vec<HhNumber>> {
        self.patients_granting(doctor, now).await
    }

    async fn search_patients(&self, prefix: &str, limit: u64) -> CacheResult<Vec<PatientProfile>> {
        self.find_patients(prefix, limit).await
    }

    async fn search_records(&self, q: &RecordQuery) -> CacheResult<Vec<MedicalRecord>> {
        self.find_records(q).await
    }

    async fn latest_audit_anchor(&self) -> CacheResult<Option<AuditAnchor>> {
        Ok(self.load_anchor(&self.read).await?.map(|(a, _)| a))
    }

    async fn counts(&self) -> CacheResult<CacheCounts> {
        self.count_rows().await
    }

    async fn set_extras(&self, hh: HhNumber, extras: &ProfileExtras) -> CacheResult<()> {
        self.upsert_extras(hh, extras).await
    }

    async fn extras(&self, hh: HhNumber) -> CacheResult<Option<ProfileExtras>> {
        self.load_extras(hh).await
    }

    async fn add_notification(&self, n: &NewNotification) -> CacheResult<Notification> {
        self.insert_notification(n).await
    }

    async fn notifications(
        &self,
        user: HhNumber,
        unread_only: bool,
    ) -> CacheResult<Vec<Notification>> {
        self.load_notifications(user, unread_only).await
    }

    async fn mark_notification_read(&self, id: u64) -> CacheResult<()> {
        self.mark_read(id).await
    }

    async fn put_session(&self, session: &Session) -> CacheResult<()> {
        self.insert_session(session).await
    }

    async fn session(&self, token_hash: SessionTokenHash) -> CacheResult<Option<Session>> {
        self.load_session(token_hash).await
    }

    async fn delete_session(&self, token_hash: SessionTokenHash) -> CacheResult<bool> {
        self.delete_session_row(token_hash).await
    }

    async fn purge_expired_sessions(&self, now: Timestamp) -> CacheResult<u64> {
        self.purge_sessions(now).await
    }

    async fn append_access_log(&self, entry: &NewAccessLogEntry) -> CacheResult<AccessLogEntry> {
        let tx = self.begin().await?;
        let result = self.append_in(&tx, entry).await;
        self.finish(tx, result).await
    }

    async fn access_log(
        &self,
        patient: Option<HhNumber>,
        after_seq: u64,
        limit: u64,
    ) -> CacheResult<Vec<AccessLogEntry>> {
        self.read_access_log(patient, after_seq, limit).await
    }

    async fn verify_access_log(&self) -> CacheResult<LogVerification> {
        self.verify_access_log_chain().await
    }

    async fn access_log_digest(&self, up_to_seq: u64) -> CacheResult<B256> {
        self.access_log_hash(up_to_seq).await
    }

    async fn apply_blocks_quarantining(
        &self,
        batch: &[(BlockRef, Vec<ChainEvent>)],
        quarantined: &[QuarantinedLog],
        finalized: u64,
    ) -> CacheResult<()> {
        let tx = self.begin().await?;
        let result = self
            .apply_quarantining_in(&tx, batch, quarantined, finalized)
            .await;
        self.finish(tx, result).await
    }

    async fn switch_branch_quarantining(
        &self,
        fork_point: u64,
        batch: &[(BlockRef, Vec<ChainEvent>)],
        quarantined: &[QuarantinedLog],
        finalized: u64,
    ) -> CacheResult<()> {
        let tx = self.begin().await?;
        let result = self
            .switch_quarantining_in(&tx, fork_point, batch, quarantined, finalized)
            .await;
        self.finish(tx, result).await
    }

    async fn quarantined_logs(&self, limit: u64) -> CacheResult<QuarantinedLogs> {
        self.load_quarantined(limit).await
    }

    async fn profiles_by_hh(&self, hhs: &[HhNumber]) -> CacheResult<Vec<Profile>> {
        let rows = self.load_profiles(&self.read, hhs).await?;
        Ok(rows.into_iter().map(|(p, _)| p).collect())
    }

    async fn records_by_id(&self, ids: &[RecordId]) -> CacheResult<Vec<MedicalRecord>> {
        let rows = self.load_records(&self.read, ids).await?;
        Ok(rows.into_iter().map(|(r, _)| r).collect())
    }

    async fn grants_by_pair(
        &self,
        pairs: &[(HhNumber, HhNumber)],
    ) -> CacheResult<Vec<AccessGrant>> {
        let rows = self.load_grants(&self.read, pairs).await?;
        Ok(rows.into_iter().map(|(g, _)| g).collect())
    }

    async fn profile_keys(
        &self,
        after: Option<HhNumber>,
        limit: u64,
    ) -> CacheResult<Vec<HhNumber>> {
        Ok(self.walk_profile_keys(after, limit).await?)
    }

    async fn record_keys(&self, after: Option<RecordId>, limit: u64) -> CacheResult<Vec<RecordId>> {
        Ok(self.walk_record_keys(after, limit).await?)
    }

    async fn grant_keys(
        &self,
        after: Option<(HhNumber, HhNumber)>,
        limit: u64,
    ) -> CacheResult<Vec<(HhNumber, HhNumber)>> {
        Ok(self.walk_grant_keys(after, limit).await?)
    }

    async fn remove_grant(&self, patient: HhNumber, grantee: HhNumber) -> CacheResult<bool> {
        let tx = self.begin().await?;
        let result = self
            .remove_grant_in(&tx, patient, grantee)
            .await
            .map_err(Into::into);
        self.finish(tx, result).await
    }

    async fn upsert_audit_anchor(
        &self,
        anchor: &AuditAnchor,
        source: ChainSource,
    ) -> CacheResult<()> {
        let tx = self.begin().await?;
        let result = self.targeted_anchor(&tx, anchor, source).await;
        self.finish(tx, result).await
    }

    async fn remove_audit_anchor(&self) -> CacheResult<bool> {
        let tx = self.begin().await?;
        let result = self.remove_anchor_in(&tx).await.map_err(Into::into);
        self.finish(tx, result).await
    }

    async fn begin_backfill_mode(&self) -> CacheResult<()> {
        let tx = self.begin().await?;
        let result = self.begin_backfill_mode_in(&tx).await.map_err(Into::into);
        self.finish(tx, result).await
    }

    async fn end_backfill_mode(&self) -> CacheResult<()> {
        let tx = self.begin().await?;
        let result = self.end_backfill_mode_in(&tx).await.map_err(Into::into);
        self.finish(tx, result).await
    }

    async fn in_backfill_mode(&self) -> CacheResult<bool> {
        Ok(self.backfill_flag(&self.read).await?)
    }
}
