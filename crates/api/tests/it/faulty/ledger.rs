//! [`LedgerPort`] through [`Faulty`].

use alloy_primitives::B256;
use async_trait::async_trait;
use futures::stream::BoxStream;
use healthledger_core::{
    AccessGrant, AdminRole, AuditAnchor, Authorization, BlockRef, ConsentAction, EventBatch,
    HhNumber, LedgerPort, LedgerResult, MedicalRecord, NewRecord, Profile, ReadAt, RecordId,
    RelayedSignature, Role, Timestamp, TxReceipt, WalletAddress,
};

use super::Faulty;

#[async_trait]
impl<P: LedgerPort> LedgerPort for Faulty<P> {
    fn signer(&self) -> WalletAddress {
        self.inner.signer()
    }

    fn deployment_block(&self) -> u64 {
        self.inner.deployment_block()
    }

    async fn register(&self, profile: &Profile) -> LedgerResult<TxReceipt> {
        self.run("register", self.inner.register(profile)).await
    }

    async fn register_attested(
        &self,
        profile: &Profile,
        attestation: &RelayedSignature,
    ) -> LedgerResult<TxReceipt> {
        self.run(
            "register_attested",
            self.inner.register_attested(profile, attestation),
        )
        .await
    }

    async fn attestation_digest(
        &self,
        hh: HhNumber,
        wallet: WalletAddress,
        deadline: Timestamp,
    ) -> LedgerResult<B256> {
        self.run(
            "attestation_digest",
            self.inner.attestation_digest(hh, wallet, deadline),
        )
        .await
    }

    async fn add_registrar(&self, wallet: WalletAddress) -> LedgerResult<TxReceipt> {
        self.run("add_registrar", self.inner.add_registrar(wallet))
            .await
    }

    async fn remove_registrar(&self, wallet: WalletAddress) -> LedgerResult<TxReceipt> {
        self.run("remove_registrar", self.inner.remove_registrar(wallet))
            .await
    }

    async fn transfer_admin(&self, wallet: WalletAddress) -> LedgerResult<TxReceipt> {
        self.run("transfer_admin", self.inner.transfer_admin(wallet))
            .await
    }

    async fn accept_admin(&self) -> LedgerResult<TxReceipt> {
        self.run("accept_admin", self.inner.accept_admin()).await
    }

    async fn admin(&self, at: ReadAt) -> LedgerResult<AdminRole> {
        self.run("admin", self.inner.admin(at)).await
    }

    async fn suspend_provider(&self, hh: HhNumber) -> LedgerResult<TxReceipt> {
        self.run("suspend_provider", self.inner.suspend_provider(hh))
            .await
    }

    async fn reinstate_provider(&self, hh: HhNumber) -> LedgerResult<TxReceipt> {
        self.run("reinstate_provider", self.inner.reinstate_provider(hh))
            .await
    }

    async fn is_suspended(&self, hh: HhNumber, at: ReadAt) -> LedgerResult<bool> {
        self.run("is_suspended", self.inner.is_suspended(hh, at))
            .await
    }

    async fn invalidate_nonce(&self) -> LedgerResult<TxReceipt> {
        self.run("invalidate_nonce", self.inner.invalidate_nonce())
            .await
    }

    async fn update_profile(
        &self,
        profile: &Profile,
        auth: &Authorization,
    ) -> LedgerResult<TxReceipt> {
        self.run("update_profile", self.inner.update_profile(profile, auth))
            .await
    }

    async fn create_record(
        &self,
        record: &NewRecord,
        auth: &Authorization,
    ) -> LedgerResult<TxReceipt> {
        self.run("create_record", self.inner.create_record(record, auth))
            .await
    }

    async fn grant_access(
        &self,
        patient: HhNumber,
        grantee: HhNumber,
        expires_at: Option<Timestamp>,
        auth: &Authorization,
    ) -> LedgerResult<TxReceipt> {
        self.run(
            "grant_access",
            self.inner.grant_access(patient, grantee, expires_at, auth),
        )
        .await
    }

    async fn revoke_access(
        &self,
        patient: HhNumber,
        grantee: HhNumber,
        auth: &Authorization,
    ) -> LedgerResult<TxReceipt> {
        self.run(
            "revoke_access",
            self.inner.revoke_access(patient, grantee, auth),
        )
        .await
    }

    async fn anchor_audit(&self, digest: B256, last_seq: u64) -> LedgerResult<TxReceipt> {
        self.run("anchor_audit", self.inner.anchor_audit(digest, last_seq))
            .await
    }

    async fn signing_digest(
        &self,
        action: &ConsentAction,
        deadline: Timestamp,
    ) -> LedgerResult<B256> {
        self.run(
            "signing_digest",
            self.inner.signing_digest(action, deadline),
        )
        .await
    }

    async fn profile(&self, hh: HhNumber, role: Role, at: ReadAt) -> LedgerResult<Option<Profile>> {
        self.run("profile", self.inner.profile(hh, role, at)).await
    }

    async fn account_of(
        &self,
        wallet: WalletAddress,
        at: ReadAt,
    ) -> LedgerResult<Option<(Role, HhNumber)>> {
        self.run("account_of", self.inner.account_of(wallet, at))
            .await
    }

    async fn record(&self, id: RecordId, at: ReadAt) -> LedgerResult<Option<MedicalRecord>> {
        self.run("record", self.inner.record(id, at)).await
    }

    async fn grant(
        &self,
        patient: HhNumber,
        grantee: HhNumber,
        at: ReadAt,
    ) -> LedgerResult<Option<AccessGrant>> {
        self.run("grant", self.inner.grant(patient, grantee, at))
            .await
    }

    async fn has_access(
        &self,
        patient: HhNumber,
        grantee: HhNumber,
        at: ReadAt,
    ) -> LedgerResult<bool> {
        self.run("has_access", self.inner.has_access(patient, grantee, at))
            .await
    }

    async fn can_read_record(
        &self,
        id: RecordId,
        reader: HhNumber,
        at: ReadAt,
    ) -> LedgerResult<bool> {
        self.run(
            "can_read_record",
            self.inner.can_read_record(id, reader, at),
        )
        .await
    }

    async fn registered_count(&self, role: Role, at: ReadAt) -> LedgerResult<u64> {
        self.run("registered_count", self.inner.registered_count(role, at))
            .await
    }

    async fn registered(
        &self,
        role: Role,
        offset: u64,
        limit: u64,
        at: ReadAt,
    ) -> LedgerResult<Vec<HhNumber>> {
        self.run("registered", self.inner.registered(role, offset, limit, at))
            .await
    }

    async fn profiles(
        &self,
        role: Role,
        offset: u64,
        limit: u64,
        at: ReadAt,
    ) -> LedgerResult<Vec<Profile>> {
        self.run("profiles", self.inner.profiles(role, offset, limit, at))
            .await
    }

    async fn record_count(&self, at: ReadAt) -> LedgerResult<u64> {
        self.run("record_count", self.inner.record_count(at)).await
    }

    async fn record_ids(&self, offset: u64, limit: u64, at: ReadAt) -> LedgerResult<Vec<RecordId>> {
        self.run("record_ids", self.inner.record_ids(offset, limit, at))
            .await
    }

    async fn records(
        &self,
        offset: u64,
        limit: u64,
        at: ReadAt,
    ) -> LedgerResult<Vec<MedicalRecord>> {
        self.run("records", self.inner.records(offset, limit, at))
            .await
    }

    async fn grant_count(&self, at: ReadAt) -> LedgerResult<u64> {
        self.run("grant_count", self.inner.grant_count(at)).await
    }

    async fn grants(&self, offset: u64, limit: u64, at: ReadAt) -> LedgerResult<Vec<AccessGrant>> {
        self.run("grants", self.inner.grants(offset, limit, at))
            .await
    }

    async fn grantees(
        &self,
        patient: HhNumber,
        offset: u64,
        limit: u64,
        at: ReadAt,
    ) -> LedgerResult<Vec<HhNumber>> {
        self.run("grantees", self.inner.grantees(patient, offset, limit, at))
            .await
    }

    async fn latest_audit_anchor(&self, at: ReadAt) -> LedgerResult<Option<AuditAnchor>> {
        self.run("latest_audit_anchor", self.inner.latest_audit_anchor(at))
            .await
    }

    async fn events(&self, from: u64, to: u64) -> LedgerResult<EventBatch> {
        self.run("events", self.inner.events(from, to)).await
    }

    async fn head(&self) -> LedgerResult<BlockRef> {
        self.run("head", self.inner.head()).await
    }

    async fn finalized(&self) -> LedgerResult<BlockRef> {
        self.run("finalized", self.inner.finalized()).await
    }

    async fn block(&self, number: u64) -> LedgerResult<Option<BlockRef>> {
        self.run("block", self.inner.block(number)).await
    }

    async fn new_heads(&self) -> LedgerResult<Option<BoxStream<'static, u64>>> {
        self.run("new_heads", self.inner.new_heads()).await
    }

    fn chain_id(&self) -> Option<u64> {
        self.inner.chain_id()
    }

    async fn consent_typed_data(
        &self,
        action: &ConsentAction,
        deadline: Timestamp,
    ) -> LedgerResult<Option<serde_json::Value>> {
        self.run(
            "consent_typed_data",
            self.inner.consent_typed_data(action, deadline),
        )
        .await
    }
}
