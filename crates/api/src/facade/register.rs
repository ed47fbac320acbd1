//! Registration: the chain first (the source of truth), then the cache
//! write-through, then a welcome notification.
//!
//! Who may register whom: doctors and diagnostic centers only through the
//! operator (the app's registrar key), since a provider's credentials are
//! vetted off chain; a patient through the operator, or by themselves with
//! the wallet they proved they hold. The contract enforces the same for the
//! app's key (it is a registrar); these checks keep the app from lending
//! that power to a caller who lacks it.

use healthledger_core::{
    ChainSource, DiagnosticCenterProfile, DoctorProfile, NotificationKind, PatientProfile, Profile,
    ReadAt, Role, TxReceipt,
};
use serde::Serialize;

use crate::{App, Error, Result, facade::Actor};

/// What a registration did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Registered {
    /// The registered profile.
    pub profile: Profile,
    /// The registration's transaction.
    pub receipt: TxReceipt,
    /// Whether the cache holds it now; `false` means the cache write failed
    /// after the chain accepted it, and sync will bring it in.
    pub cached: bool,
}

impl App {
    /// Registers a patient: by the operator, or by the applicant whose
    /// wallet the profile names.
    pub async fn register_patient(
        &self,
        actor: &Actor,
        profile: PatientProfile,
    ) -> Result<Registered> {
        match actor {
            Actor::Operator => {}
            Actor::Applicant { wallet } if *wallet == profile.wallet => {}
            Actor::Applicant { wallet } => {
                return Err(Error::AccessDenied(format!(
                    "wallet {wallet} may register only itself, not {}",
                    profile.wallet
                )));
            }
            Actor::User { hh, role, .. } => {
                return Err(Error::AccessDenied(format!(
                    "{role} {hh} is already registered and may not register patients"
                )));
            }
        }
        self.register(Profile::Patient(profile)).await
    }

    /// Registers a doctor (operator only).
    pub async fn register_doctor(
        &self,
        actor: &Actor,
        profile: DoctorProfile,
    ) -> Result<Registered> {
        operator_only(actor, Role::Doctor)?;
        self.register(Profile::Doctor(profile)).await
    }

    /// Registers a diagnostic center (operator only).
    pub async fn register_diagnostic_center(
        &self,
        actor: &Actor,
        profile: DiagnosticCenterProfile,
    ) -> Result<Registered> {
        operator_only(actor, Role::DiagnosticCenter)?;
        self.register(Profile::DiagnosticCenter(profile)).await
    }

    async fn register(&self, profile: Profile) -> Result<Registered> {
        // Refuse what the chain would refuse, before paying for a
        // transaction: a taken HH number or a wallet that owns one already.
        let hh = profile.hh();
        if let Some((role, owner)) = self
            .ledger
            .account_of(profile.wallet(), ReadAt::Latest)
            .await?
        {
            return Err(Error::Conflict(format!(
                "wallet {} already owns {role} {owner}",
                profile.wallet()
            )));
        }
        for role in [Role::Patient, Role::Doctor, Role::DiagnosticCenter] {
            if self
                .ledger
                .profile(hh, role, ReadAt::Latest)
                .await?
                .is_some()
            {
                return Err(Error::Conflict(format!(
                    "HH number {hh} is taken by a {role}"
                )));
            }
        }
        let receipt = self.ledger.register(&profile).await?;
        let source = ChainSource {
            block_number: receipt.block_number,
            tx_hash: receipt.tx_hash,
        };
        let cached = match self.cache.upsert_profile(&profile, source).await {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(error = %e, %hh, "cache write-through failed; sync will repair it");
                false
            }
        };
        self.notify(
            hh,
            NotificationKind::Info,
            "Welcome to HealthLedger",
            format!(
                "{} {hh} is registered on chain in block {}.",
                profile.role(),
                receipt.block_number
            ),
            None,
        )
        .await;
        Ok(Registered {
            profile,
            receipt,
            cached,
        })
    }

    /// A profile, cache first; on a miss (or a cached row of another
    /// role) the chain is read, the entity synced into the cache, and
    /// returned. `NotFound` when it is on neither.
    pub async fn profile(&self, role: Role, hh: healthledger_core::HhNumber) -> Result<Profile> {
        if let Some(p) = self.cache.profile(hh).await?
            && p.role() == role
        {
            return Ok(p);
        }
        match self.ledger.profile(hh, role, ReadAt::Latest).await? {
            Some(p) => {
                if let Err(e) = self
                    .sync
                    .sync_profile(hh, role, healthledger_sync::Stale::Report)
                    .await
                {
                    tracing::warn!(error = %e, %hh, "caching a profile read from the chain failed");
                }
                Ok(p)
            }
            None => Err(Error::NotFound(format!("no {role} with HH number {hh}"))),
        }
    }
}

fn operator_only(actor: &Actor, role: Role) -> Result<()> {
    match actor {
        Actor::Operator => Ok(()),
        other => Err(Error::AccessDenied(format!(
            "only the operator (a registrar) registers a {role}; {other:?} may not"
        ))),
    }
}
