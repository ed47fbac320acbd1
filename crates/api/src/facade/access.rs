//! Access: a patient grants or revokes a doctor's (or center's) access with
//! their own signed consent; the app relays it, caches the grant and tells
//! the grantee.

use healthledger_core::{
    AccessGrant, Authorization, ChainSource, ConsentAction, HhNumber, NotificationKind, ReadAt,
    Role, Timestamp, TxReceipt,
};
use serde::Serialize;

use crate::{
    App, Error, Result,
    facade::{Actor, Member},
};

/// What a grant or revocation did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AccessChange {
    /// The grant as the chain holds it now.
    pub grant: AccessGrant,
    /// The transaction.
    pub receipt: TxReceipt,
    /// Whether the cache holds it now (`false`: sync will).
    pub cached: bool,
}

impl App {
    /// The consent a grant needs: what the patient's wallet signs.
    pub fn grant_action(
        patient: HhNumber,
        grantee: HhNumber,
        expires_at: Option<Timestamp>,
    ) -> ConsentAction {
        ConsentAction::GrantAccess {
            patient,
            grantee,
            expires_at,
        }
    }

    /// The consent a revocation needs.
    pub fn revoke_action(patient: HhNumber, grantee: HhNumber) -> ConsentAction {
        ConsentAction::RevokeAccess { patient, grantee }
    }

    /// `actor` (a patient) grants `grantee` (a doctor or diagnostic center)
    /// access to their records until `expires_at`, with `consent` signed by
    /// the patient's wallet over [`Self::grant_action`].
    pub async fn grant_access(
        &self,
        actor: &Actor,
        grantee: HhNumber,
        expires_at: Option<Timestamp>,
        consent: &Authorization,
    ) -> Result<AccessChange> {
        let patient = self.member_as(actor, &[Role::Patient]).await?;
        self.provider(grantee).await?;
        if let Some(at) = expires_at
            && at <= Timestamp::now()
        {
            return Err(healthledger_core::ValidationError::new(
                "expiry",
                at.0,
                "must lie in the future",
            )
            .into());
        }
        let receipt = self
            .ledger
            .grant_access(patient.hh, grantee, expires_at, consent)
            .await?;
        let expected = AccessGrant {
            patient: patient.hh,
            grantee,
            granted_at: Timestamp::now(),
            expires_at,
            revoked_at: None,
        };
        let change = self.cache_grant(&patient, grantee, receipt, expected).await;
        let until = expires_at.map_or_else(
            || "until revoked".to_owned(),
            |t| format!("until {}", t.date()),
        );
        self.notify(
            grantee,
            NotificationKind::AccessGranted,
            "Access granted",
            format!(
                "Patient {} granted you access to their records {until}.",
                patient.hh
            ),
            None,
        )
        .await;
        Ok(change)
    }

    /// `actor` (a patient) revokes `grantee`'s access, with `consent` signed
    /// by the patient's wallet over [`Self::revoke_action`].
    pub async fn revoke_access(
        &self,
        actor: &Actor,
        grantee: HhNumber,
        consent: &Authorization,
    ) -> Result<AccessChange> {
        let patient = self.member_as(actor, &[Role::Patient]).await?;
        let Some(granted) = self
            .ledger
            .grant(patient.hh, grantee, ReadAt::Latest)
            .await?
        else {
            return Err(Error::NotFound(format!(
                "patient {} never granted {grantee} access",
                patient.hh
            )));
        };
        let receipt = self
            .ledger
            .revoke_access(patient.hh, grantee, consent)
            .await?;
        let expected = AccessGrant {
            revoked_at: Some(Timestamp::now()),
            ..granted
        };
        let change = self.cache_grant(&patient, grantee, receipt, expected).await;
        self.notify(
            grantee,
            NotificationKind::AccessRevoked,
            "Access revoked",
            format!(
                "Patient {} revoked your access to their records.",
                patient.hh
            ),
            None,
        )
        .await;
        Ok(change)
    }

    /// Reads back the grant the chain just included and caches it. The
    /// write succeeded whatever happens here: when the node does not show
    /// the grant yet (a lagging or unreachable node behind a load
    /// balancer), `expected` (what the write made, with this server's
    /// time) is returned uncached, and sync caches the chain's value.
    async fn cache_grant(
        &self,
        patient: &Member,
        grantee: HhNumber,
        receipt: TxReceipt,
        expected: AccessGrant,
    ) -> AccessChange {
        let grant = match self.ledger.grant(patient.hh, grantee, ReadAt::Latest).await {
            Ok(Some(g)) => g,
            outcome => {
                tracing::warn!(?outcome, patient = %patient.hh, %grantee, "the node does not show the grant it just included; sync will cache it");
                return AccessChange {
                    grant: expected,
                    receipt,
                    cached: false,
                };
            }
        };
        let source = ChainSource {
            block_number: receipt.block_number,
            tx_hash: receipt.tx_hash,
        };
        let cached = match self.cache.upsert_grant(&grant, source).await {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(error = %e, "caching a grant failed; sync will repair it");
                false
            }
        };
        AccessChange {
            grant,
            receipt,
            cached,
        }
    }

    /// The role of a provider on chain; `NotFound` when `hh` is none.
    pub(crate) async fn provider(&self, hh: HhNumber) -> Result<Role> {
        for role in [Role::Doctor, Role::DiagnosticCenter] {
            if self
                .ledger
                .profile(hh, role, ReadAt::Latest)
                .await?
                .is_some()
            {
                return Ok(role);
            }
        }
        Err(Error::NotFound(format!(
            "no doctor or diagnostic center with HH number {hh}"
        )))
    }
}
