//! The facade: the seed guide's flows over the three ports, each taking the
//! authenticated [`Actor`] and checking what it may do before any write.
//!
//! The caller authenticates (an HTTP session signed in with the wallet, a
//! CLI holding a key); the facade then checks the actor's claim against the
//! chain, the source of truth: a user's wallet must own the HH number with
//! that role at the latest block. Writes follow one order everywhere:
//! vault, then chain, then cache, then notifications. The chain decides;
//! a cache or notification failure after the chain succeeded never fails
//! the call (sync repairs the cache) but is reported in the result.
//!
//! Consent is the users' own: records, grants and revocations carry an
//! EIP-712 signature by the consenting wallet ([`ConsentSigner`], or a
//! signature the caller collected over [`App::consent_digest`]) that the
//! app relays; the app's key never stands in for a user's.

mod access;
mod content;
mod listings;
mod records;
mod register;

use alloy_primitives::B256;
use async_trait::async_trait;
use healthledger_core::{
    Authorization, ConsentAction, HhNumber, Name, NewNotification, Note, NotificationKind, ReadAt,
    RecordId, RelayedSignature, Role, Signature, Timestamp, WalletAddress,
};
use serde::{Deserialize, Serialize};

pub use access::AccessChange;
pub use content::{AllowedType, SNIFF_BYTES, sniff};
pub use listings::MAX_LISTING;
pub use records::{CreatedRecord, Erasure, RecordDraft, RecordRead, SealedRecord};
pub use register::Registered;

use crate::{App, Error, Result};

/// Who is calling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Actor {
    /// The operator of this deployment, acting with the app's own key (a
    /// registrar on chain): the CLI, registrar staff.
    Operator,
    /// A wallet that proved it is held by the caller but owns no HH number
    /// yet: it may register itself as a patient.
    Applicant {
        /// The wallet.
        wallet: WalletAddress,
    },
    /// A registered user, as the caller authenticated them.
    User {
        /// Their HH number.
        hh: HhNumber,
        /// Their role.
        role: Role,
        /// Their wallet.
        wallet: WalletAddress,
    },
}

impl Actor {
    /// A registered user.
    pub fn user(hh: HhNumber, role: Role, wallet: WalletAddress) -> Self {
        Self::User { hh, role, wallet }
    }
}

/// An actor the chain confirmed: the wallet owns the HH number with that
/// role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Member {
    pub(crate) hh: HhNumber,
    pub(crate) role: Role,
    pub(crate) wallet: WalletAddress,
}

/// Signs consent digests with a user's wallet (a browser wallet behind an
/// HTTP round trip, a hardware wallet, a local key).
#[async_trait]
pub trait ConsentSigner: Send + Sync {
    /// The wallet that signs.
    fn wallet(&self) -> WalletAddress;
    /// Signs the 32-byte EIP-712 digest as `eth_signTypedData_v4` would.
    async fn sign_digest(&self, digest: B256) -> Result<Signature>;
}

/// A private key held in memory, for tools, tests and the demo. `Debug`
/// shows only the address.
#[derive(Clone)]
pub struct LocalWallet {
    key: alloy_signer_local::PrivateKeySigner,
    wallet: WalletAddress,
}

impl LocalWallet {
    /// A fresh random key.
    pub fn random() -> Self {
        loop {
            // The zero address needs a Keccak preimage of zero: this loop
            // runs once.
            if let Ok(w) = Self::of(alloy_signer_local::PrivateKeySigner::random()) {
                return w;
            }
        }
    }

    /// The key from its 32 bytes.
    pub fn from_bytes(bytes: &B256) -> Result<Self> {
        let invalid = || Error::Config {
            setting: "wallet key".into(),
            rule: "not a valid secp256k1 private key".into(),
        };
        let key = alloy_signer_local::PrivateKeySigner::from_bytes(bytes).map_err(|_| invalid())?;
        Self::of(key).map_err(|_| invalid())
    }

    fn of(key: alloy_signer_local::PrivateKeySigner) -> Result<Self> {
        let wallet = WalletAddress::new(key.address())?;
        Ok(Self { key, wallet })
    }

    /// Signs `message` as `personal_sign` does (EIP-191): what a wallet
    /// does with a sign-in message (EIP-4361).
    pub fn sign_message(&self, message: &[u8]) -> Result<Signature> {
        use alloy_signer::SignerSync as _;
        self.key
            .sign_message_sync(message)
            .map_err(|e| Error::Config {
                setting: "wallet key".into(),
                rule: format!("signing failed: {e}"),
            })
    }

    /// The key's 32 bytes, to keep it (the demo stores its users' keys).
    pub fn to_bytes(&self) -> B256 {
        self.key.to_bytes()
    }
}

impl std::fmt::Debug for LocalWallet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LocalWallet({}, key redacted)", self.wallet)
    }
}

#[async_trait]
impl ConsentSigner for LocalWallet {
    fn wallet(&self) -> WalletAddress {
        self.wallet
    }

    async fn sign_digest(&self, digest: B256) -> Result<Signature> {
        use alloy_signer::SignerSync as _;
        self.key.sign_hash_sync(&digest).map_err(|e| Error::Config {
            setting: "wallet key".into(),
            rule: format!("signing failed: {e}"),
        })
    }
}

/// How long a consent signature made through [`App::consent`] stays valid.
pub const CONSENT_VALIDITY_SECS: u64 = 600;

impl App {
    /// The EIP-712 digest a wallet signs to consent to `action` until
    /// `deadline` (what `eth_signTypedData_v4` over the same typed data
    /// signs).
    pub async fn consent_digest(
        &self,
        action: &ConsentAction,
        deadline: Timestamp,
    ) -> Result<B256> {
        Ok(self.ledger.signing_digest(action, deadline).await?)
    }

    /// Has `signer` consent to `action` for [`CONSENT_VALIDITY_SECS`].
    pub async fn consent(
        &self,
        signer: &dyn ConsentSigner,
        action: &ConsentAction,
    ) -> Result<Authorization> {
        let deadline = Timestamp(Timestamp::now().0 + CONSENT_VALIDITY_SECS);
        let digest = self.consent_digest(action, deadline).await?;
        let signature = signer.sign_digest(digest).await?;
        Ok(Authorization::Relayed(RelayedSignature {
            signature,
            deadline,
        }))
    }

    /// Checks a user's claim on chain: the wallet owns `hh` with `role`.
    pub(crate) async fn member(&self, actor: &Actor) -> Result<Member> {
        let Actor::User { hh, role, wallet } = *actor else {
            return Err(Error::AccessDenied(format!(
                "{actor:?} is not a registered user"
            )));
        };
        match self.ledger.account_of(wallet, ReadAt::Latest).await? {
            Some((r, h)) if r == role && h == hh => Ok(Member { hh, role, wallet }),
            Some((r, h)) => Err(Error::AccessDenied(format!(
                "wallet {wallet} owns {r} {h}, not {role} {hh}"
            ))),
            None => Err(Error::AccessDenied(format!(
                "wallet {wallet} owns no HH number on chain"
            ))),
        }
    }

    /// A user confirmed on chain with one of `roles`.
    pub(crate) async fn member_as(&self, actor: &Actor, roles: &[Role]) -> Result<Member> {
        let m = self.member(actor).await?;
        if roles.contains(&m.role) {
            Ok(m)
        } else {
            Err(Error::AccessDenied(format!(
                "{} {} may not do this (only {})",
                m.role,
                m.hh,
                roles
                    .iter()
                    .map(|r| r.as_str())
                    .collect::<Vec<_>>()
                    .join(" or ")
            )))
        }
    }

    /// Stores a notification; a failure is logged and reported as `false`,
    /// never failing the flow that already wrote the chain.
    pub(crate) async fn notify(
        &self,
        user: HhNumber,
        kind: NotificationKind,
        title: &str,
        message: String,
        record: Option<RecordId>,
    ) -> bool {
        let (Ok(title), Ok(message)) = (Name::new(title), Note::new(message)) else {
            return false;
        };
        let n = NewNotification {
            user,
            kind,
            title,
            message,
            related_record: record,
            created_at: Timestamp::now(),
        };
        match self.cache.add_notification(&n).await {
            Ok(_) => true,
            Err(e) => {
                tracing::warn!(error = %e, %user, "storing a notification failed");
                false
            }
        }
    }
}
