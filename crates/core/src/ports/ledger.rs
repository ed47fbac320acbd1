//! [`LedgerPort`]: the source of truth. Writes land in blocks; reads see the
//! latest block or a pinned one ([`ReadAt`]); bulk reads enumerate whole
//! structs a page at a time; events and block identities let the cache
//! follow the chain through reorgs.

use std::fmt::Debug;

use alloy_primitives::{B256, Signature};
use async_trait::async_trait;
use auto_impl::auto_impl;
use futures::stream::BoxStream;
use serde::{Deserialize, Serialize};

use crate::{
    AccessGrant, AuditAnchor, BlockRef, EventBatch, HhNumber, LedgerError, MedicalRecord,
    NewRecord, Profile, RecordId, Role, Timestamp, TxReceipt, WalletAddress,
};

/// Which state a read sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum ReadAt {
    /// The latest block (the node's `latest`).
    #[default]
    Latest,
    /// Exactly this block, named by its hash (EIP-1898), so every read of a
    /// snapshot sees the same state even behind a load-balanced provider. A
    /// block that is no longer canonical is `Conflict`; a block the node no
    /// longer keeps state for is `Unavailable`.
    Block(BlockRef),
}

/// Who holds the ledger's admin role, and the wallet it is offered to while
/// a two-step handover is under way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct AdminRole {
    /// The admin: names and removes registrars, suspends and reinstates
    /// providers, offers the role to a successor.
    pub admin: WalletAddress,
    /// The wallet the admin offered the role to, until it accepts.
    pub pending: Option<WalletAddress>,
}

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
/// - reads are at the block [`ReadAt`] names: at an older block they see
///   exactly that block's state;
/// - bulk reads ([`Self::profiles`], [`Self::records`], [`Self::grants`])
///   return whole values in enumeration order, so a snapshot of the whole
///   state costs one call per page, not one per entity;
/// - [`Self::events`] never fails a range because one log does not decode:
///   such a log comes back quarantined beside the decoded events.
#[cfg_attr(feature = "testing", mockall::automock)]
#[async_trait]
#[auto_impl(&, Arc, Box)]
pub trait LedgerPort: Send + Sync + Debug {
    /// The wallet this adapter signs with.
    fn signer(&self) -> WalletAddress;

    /// The first block that can hold the ledger's events (the contract's
    /// deployment block): scans start here, not at block 0.
    fn deployment_block(&self) -> u64;

    /// Registers a profile. The signer must be a registrar (HH numbers are
    /// issued, never taken); anyone else is `AccessDenied`. HH numbers and
    /// wallets are unique across all roles.
    async fn register(&self, profile: &Profile) -> LedgerResult<TxReceipt>;

    /// Registers a patient from their own wallet (the signer must be the
    /// profile's wallet) with a registrar's attestation: a signature by a
    /// registrar over [`Self::attestation_digest`] of the HH number, the
    /// wallet and the deadline. Doctors and diagnostic centers cannot
    /// register this way (`AccessDenied`); nor can a forged, expired
    /// (`Invalid`) or other-patient attestation.
    async fn register_attested(
        &self,
        profile: &Profile,
        attestation: &RelayedSignature,
    ) -> LedgerResult<TxReceipt>;

    /// The digest a registrar signs to attest that `hh` is issued to
    /// `wallet` until `deadline`.
    async fn attestation_digest(
        &self,
        hh: HhNumber,
        wallet: WalletAddress,
        deadline: Timestamp,
    ) -> LedgerResult<B256>;

    /// Makes `wallet` a registrar. Admin only.
    async fn add_registrar(&self, wallet: WalletAddress) -> LedgerResult<TxReceipt>;

    /// Takes the registrar role from `wallet`. Admin only.
    async fn remove_registrar(&self, wallet: WalletAddress) -> LedgerResult<TxReceipt>;

    /// Offers the admin role to `wallet`, the first step of a handover
    /// (admin only, else `AccessDenied`). The admin keeps every power until
    /// `wallet` accepts; a second offer replaces a pending one, so the admin
    /// withdraws an offer by making another (to itself, say). Registrars are
    /// left as they are.
    async fn transfer_admin(&self, wallet: WalletAddress) -> LedgerResult<TxReceipt>;

    /// Accepts the admin role offered to the signer, the second step (which
    /// proves the new admin can sign). `AccessDenied` for any other wallet
    /// and when nothing is offered. The previous admin loses every admin
    /// power, though not a registrar role it holds.
    async fn accept_admin(&self) -> LedgerResult<TxReceipt>;

    /// The admin and the wallet a pending handover offers the role to.
    async fn admin(&self, at: ReadAt) -> LedgerResult<AdminRole>;

    /// Suspends a doctor or diagnostic center (admin only): until
    /// reinstated it cannot create records (`AccessDenied`) and cannot be
    /// granted access (`AccessDenied`). `NotFound` for anyone else.
    async fn suspend_provider(&self, hh: HhNumber) -> LedgerResult<TxReceipt>;

    /// Reinstates a suspended provider (admin only); `Invalid` when it is not
    /// suspended.
    async fn reinstate_provider(&self, hh: HhNumber) -> LedgerResult<TxReceipt>;

    /// Whether the provider `hh` is suspended.
    async fn is_suspended(&self, hh: HhNumber, at: ReadAt) -> LedgerResult<bool>;

    /// Uses up the signer's current consent nonce, so every signature it
    /// handed out and that was not yet relayed stops working before its
    /// deadline.
    async fn invalidate_nonce(&self) -> LedgerResult<TxReceipt>;

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
    async fn profile(&self, hh: HhNumber, role: Role, at: ReadAt) -> LedgerResult<Option<Profile>>;

    /// The role and HH number owned by `wallet`, if any.
    async fn account_of(
        &self,
        wallet: WalletAddress,
        at: ReadAt,
    ) -> LedgerResult<Option<(Role, HhNumber)>>;

    /// The record with `id`, if any.
    async fn record(&self, id: RecordId, at: ReadAt) -> LedgerResult<Option<MedicalRecord>>;

    /// The grant from `patient` to `grantee`, if one was ever made.
    async fn grant(
        &self,
        patient: HhNumber,
        grantee: HhNumber,
        at: ReadAt,
    ) -> LedgerResult<Option<AccessGrant>>;

    /// Whether `grantee` has an active grant from `patient` (honouring
    /// expiry, judged by the block's time, and revocation).
    async fn has_access(
        &self,
        patient: HhNumber,
        grantee: HhNumber,
        at: ReadAt,
    ) -> LedgerResult<bool>;

    /// Whether `reader` may read record `id`: its patient and its creator
    /// always may; anyone else needs an active grant from the patient.
    /// `NotFound` for an unknown record.
    async fn can_read_record(
        &self,
        id: RecordId,
        reader: HhNumber,
        at: ReadAt,
    ) -> LedgerResult<bool>;

    /// How many HH numbers are registered with `role`.
    async fn registered_count(&self, role: Role, at: ReadAt) -> LedgerResult<u64>;

    /// Registered HH numbers with `role`, in registration order, from
    /// `offset`, at most `limit`.
    async fn registered(
        &self,
        role: Role,
        offset: u64,
        limit: u64,
        at: ReadAt,
    ) -> LedgerResult<Vec<HhNumber>>;

    /// Registered profiles with `role`, whole, in registration order, from
    /// `offset`, at most `limit`.
    async fn profiles(
        &self,
        role: Role,
        offset: u64,
        limit: u64,
        at: ReadAt,
    ) -> LedgerResult<Vec<Profile>>;

    /// How many records exist.
    async fn record_count(&self, at: ReadAt) -> LedgerResult<u64>;

    /// Record ids in creation order, from `offset`, at most `limit`.
    async fn record_ids(&self, offset: u64, limit: u64, at: ReadAt) -> LedgerResult<Vec<RecordId>>;

    /// Records, whole, in creation order, from `offset`, at most `limit`.
    async fn records(
        &self,
        offset: u64,
        limit: u64,
        at: ReadAt,
    ) -> LedgerResult<Vec<MedicalRecord>>;

    /// How many (patient, grantee) pairs were ever granted.
    async fn grant_count(&self, at: ReadAt) -> LedgerResult<u64>;

    /// The grants of every (patient, grantee) pair ever granted, in their
    /// current state (revoked or not), in first-grant order, from `offset`,
    /// at most `limit`.
    async fn grants(&self, offset: u64, limit: u64, at: ReadAt) -> LedgerResult<Vec<AccessGrant>>;

    /// The grantees `patient` ever granted, in first-grant order, from
    /// `offset`, at most `limit` (the grants themselves come from
    /// [`Self::grant`]).
    async fn grantees(
        &self,
        patient: HhNumber,
        offset: u64,
        limit: u64,
        at: ReadAt,
    ) -> LedgerResult<Vec<HhNumber>>;

    /// The latest anchored access-log digest, if any.
    async fn latest_audit_anchor(&self, at: ReadAt) -> LedgerResult<Option<AuditAnchor>>;

    /// Events in blocks `from..=to`, in chain order, with the logs that did
    /// not decode quarantined beside them. Blocks above the head yield
    /// nothing; `from > to` is `Invalid`.
    async fn events(&self, from: u64, to: u64) -> LedgerResult<EventBatch>;

    /// The latest block.
    async fn head(&self) -> LedgerResult<BlockRef>;

    /// The latest block that can no longer be reorganized (the node's
    /// `finalized` or `safe` tag, or head minus a configured depth).
    async fn finalized(&self) -> LedgerResult<BlockRef>;

    /// The canonical block at `number`, if the chain is that long.
    async fn block(&self, number: u64) -> LedgerResult<Option<BlockRef>>;

    /// Announcements of new head block numbers, pushed by the node where the
    /// adapter has a channel for them (a WebSocket `newHeads`
    /// subscription); `None` where it has none, and callers poll
    /// [`Self::head`]. An announcement is only a reason to look: callers
    /// read heads, blocks and events as usual, so a lost or spurious one
    /// costs a delay, never a wrong result. The stream ends when the
    /// subscription drops; callers poll meanwhile and ask again.
    async fn new_heads(&self) -> LedgerResult<Option<BoxStream<'static, u64>>> {
        Ok(None)
    }

    /// The EIP-155 chain id of the network the ledger lives on, where it
    /// has one: sign-in messages (EIP-4361) name it, and a server refuses
    /// a message signed for another chain. `None` for a ledger on no EVM
    /// network.
    fn chain_id(&self) -> Option<u64> {
        None
    }

    /// The EIP-712 typed data whose signing hash is
    /// [`Self::signing_digest`] of `action` until `deadline`, as
    /// `eth_signTypedData_v4` takes it, so a browser or hardware wallet
    /// shows its holder every field they consent to. `None` where the
    /// adapter's digest is not EIP-712 typed data (callers then sign the
    /// digest itself).
    async fn consent_typed_data(
        &self,
        _action: &ConsentAction,
        _deadline: Timestamp,
    ) -> LedgerResult<Option<serde_json::Value>> {
        Ok(None)
    }
}
