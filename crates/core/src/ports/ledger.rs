//! [`LedgerPort`]: the source of truth. Writes land in blocks; reads see the
//! latest block; events and block identities let the cache follow the chain
//! through reorgs.

use std::fmt::Debug;

use alloy_primitives::{B256, Signature};
use async_trait::async_trait;
use auto_impl::auto_impl;
use serde::{Deserialize, Serialize};

use crate::{
    AccessGrant, BlockRef, ChainEvent, HhNumber, LedgerError, MedicalRecord, NewRecord, Profile,
    RecordId, Role, Timestamp, TxReceipt, WalletAddress,
};

/// Shorthand for ledger results.
pub type LedgerResult<T> = Result<T, LedgerError>;

/// A write that needs the consent of a specific wallet: the profile owner for
/// an update, the creator for a record, the patient for a grant or revoke.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "kebab-case")]
pub enum ConsentAction {
    /// Replace a profile (signed by its wallet).
    UpdateProfile(Profile),
    /// Create a record (signed by the creator's wallet).
    CreateRecord(NewRecord),
    /// Grant access (signed by the patient's wallet).
    GrantAccess {
        /// The patient.
        patient: HhNumber,
        /// The grantee.
        grantee: HhNumber,
        /// When the grant stops giving access, if ever.
        expires_at: Option<Timestamp>,
    },
    /// Revoke access (signed by the patient's wallet).
    RevokeAccess {
        /// The patient.
        patient: HhNumber,
        /// The grantee.
        grantee: HhNumber,
    },
}

/// A signature by the consenting wallet over
/// [`LedgerPort::signing_digest`] of the action, relayed by someone else
/// (typically the backend, which pays the gas).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RelayedSignature {
    /// The 65-byte ECDSA signature (r, s, y-parity).
    pub signature: Signature,
    /// After this time the signature is refused.
    pub deadline: Timestamp,
}

/// Who authorizes a consent-requiring write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Authorization {
    /// The adapter's own signer acts; it must be the consenting wallet.
    Signer,
    /// The consenting wallet signed; the adapter relays.
    Relayed(RelayedSignature),
}

/// The ledger: profiles, records, grants and the audit trail on chain.
///
/// Guarantees every implementation gives (checked by
/// [`crate::testing::ledger`]):
/// - a write returns only once its transaction is included; its effects are
///   visible to reads from then on, and its events to [`Self::events`];
/// - a write that breaks a rule changes nothing and returns a typed error:
///   `AlreadyExists` (duplicate HH number, wallet or record id), `NotFound`
///   (unknown HH number or record), `AccessDenied` (wrong signer, forged or
///   replayed signature), `Invalid` (expired deadline, bad input);
/// - writes are not idempotent (a second registration is `AlreadyExists`),
///   so a caller that lost a response reads before it retries;
/// - reads are at the latest block.
#[cfg_attr(feature = "testing", mockall::automock)]
#[async_trait]
#[auto_impl(&, Arc, Box)]
pub trait LedgerPort: Send + Sync + Debug {
    /// The wallet this adapter signs with.
    fn signer(&self) -> WalletAddress;

    /// Registers a profile. The signer must be a registrar or the profile's
    /// own wallet. HH numbers and wallets are unique across all roles.
    async fn register(&self, profile: &Profile) -> LedgerResult<TxReceipt>;

    /// Replaces a registered profile (same HH number and role; the wallet
    /// cannot change), with the owner's consent.
    async fn update_profile(
        &self,
        profile: &Profile,
        auth: &Authorization,
    ) -> LedgerResult<TxReceipt>;

    /// Creates a record pointer, with the consent of its creator, which must
    /// be a registered doctor or diagnostic center; the patient must be a
    /// registered patient; ids are unique.
    async fn create_record(
        &self,
        record: &NewRecord,
        auth: &Authorization,
    ) -> LedgerResult<TxReceipt>;

    /// Grants `grantee` access to `patient`'s records until `expires_at`
    /// (or for good), with the patient's consent. A new grant replaces an
    /// earlier or revoked one. The registrar cannot grant on its own.
    async fn grant_access(
        &self,
        patient: HhNumber,
        grantee: HhNumber,
        expires_at: Option<Timestamp>,
        auth: &Authorization,
    ) -> LedgerResult<TxReceipt>;

    /// Revokes an active grant, with the patient's consent; `NotFound` when
    /// there is no grant.
    async fn revoke_access(
        &self,
        patient: HhNumber,
        grantee: HhNumber,
        auth: &Authorization,
    ) -> LedgerResult<TxReceipt>;

    /// Anchors a digest of the access log covering entries up to `last_seq`.
    /// Registrar only; `last_seq` must grow.
    async fn anchor_audit(&self, digest: B256, last_seq: u64) -> LedgerResult<TxReceipt>;

    /// The digest the consenting wallet must sign to authorize `action`
    /// until `deadline`. It commits to the wallet's current nonce, so a
    /// signature works once.
    async fn signing_digest(
        &self,
        action: &ConsentAction,
        deadline: Timestamp,
    ) -> LedgerResult<B256>;

    /// The profile registered under `hh` with `role`, if any.
    async fn profile(&self, hh: HhNumber, role: Role) -> LedgerResult<Option<Profile>>;

    /// The role and HH number owned by `wallet`, if any.
    async fn account_of(&self, wallet: WalletAddress) -> LedgerResult<Option<(Role, HhNumber)>>;

    /// The record with `id`, if any.
    async fn record(&self, id: RecordId) -> LedgerResult<Option<MedicalRecord>>;

    /// The grant from `patient` to `grantee`, if one was ever made.
    async fn grant(
        &self,
        patient: HhNumber,
        grantee: HhNumber,
    ) -> LedgerResult<Option<AccessGrant>>;

    /// Whether `grantee` has an active grant from `patient` at the latest
    /// block (honouring expiry and revocation).
    async fn has_access(&self, patient: HhNumber, grantee: HhNumber) -> LedgerResult<bool>;

    /// Whether `reader` may read record `id`: its patient and its creator
    /// always may; anyone else needs an active grant from the patient.
    /// `NotFound` for an unknown record.
    async fn can_read_record(&self, id: RecordId, reader: HhNumber) -> LedgerResult<bool>;

    /// How many HH numbers are registered with `role`.
    async fn registered_count(&self, role: Role) -> LedgerResult<u64>;

    /// Registered HH numbers with `role`, in registration order, from
    /// `offset`, at most `limit`.
    async fn registered(&self, role: Role, offset: u64, limit: u64) -> LedgerResult<Vec<HhNumber>>;

    /// How many records exist.
    async fn record_count(&self) -> LedgerResult<u64>;

    /// Record ids in creation order, from `offset`, at most `limit`.
    async fn record_ids(&self, offset: u64, limit: u64) -> LedgerResult<Vec<RecordId>>;

    /// Every grantee `patient` ever granted, in first-grant order (the
    /// grants themselves come from [`Self::grant`]).
    async fn grantees(&self, patient: HhNumber) -> LedgerResult<Vec<HhNumber>>;

    /// Events in blocks `from..=to`, in chain order. Blocks above the head
    /// yield nothing; `from > to` is `Invalid`.
    async fn events(&self, from: u64, to: u64) -> LedgerResult<Vec<ChainEvent>>;

    /// The latest block.
    async fn head(&self) -> LedgerResult<BlockRef>;

    /// The latest block that can no longer be reorganized (the node's
    /// `finalized` or `safe` tag, or head minus a configured depth).
    async fn finalized(&self) -> LedgerResult<BlockRef>;

    /// The canonical block at `number`, if the chain is that long.
    async fn block(&self, number: u64) -> LedgerResult<Option<BlockRef>>;
}
