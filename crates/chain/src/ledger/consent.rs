//! Consent: the EIP-712 digests the contract checks, and the arguments a
//! consent-requiring call takes.

use alloy::{
    primitives::{Address, B256, Bytes, keccak256},
    sol_types::{SolStruct as _, eip712_domain},
};
use healthledger_core::{Authorization, ConsentAction, HhNumber, Timestamp, WalletAddress};

use crate::{
    Result,
    bindings::{self, HealthLedger},
    convert,
};

use super::EvmLedger;

impl EvmLedger {
    /// The EIP-712 domain the contract checks signatures against.
    fn domain(&self) -> alloy::sol_types::Eip712Domain {
        eip712_domain! {
            name: "HealthLedger",
            version: "1",
            chain_id: self.chain_id,
            verifying_contract: self.contract,
        }
    }

    /// The digest a registrar signs to attest that `hh` is issued to
    /// `wallet` until `deadline`.
    pub(super) fn attestation(
        &self,
        hh: HhNumber,
        wallet: WalletAddress,
        deadline: Timestamp,
    ) -> B256 {
        bindings::PatientAttestation {
            hh: hh.get(),
            wallet: wallet.address(),
            deadline: deadline.0,
        }
        .eip712_signing_hash(&self.domain())
    }

    pub(super) async fn digest(&self, action: &ConsentAction, deadline: Timestamp) -> Result<B256> {
        let domain = self.domain();
        let nonce_of =
            |wallet: Address| async move { self.call(HealthLedger::noncesCall(wallet)).await };
        Ok(match action {
            ConsentAction::UpdateProfile(p) => {
                let nonce = nonce_of(self.wallet_of(p.hh()).await?).await?;
                bindings::UpdateProfile {
                    hh: p.hh().get(),
                    role: convert::role_code(p.role()),
                    profileHash: keccak256(convert::encode_profile(p)),
                    nonce,
                    deadline: deadline.0,
                }
                .eip712_signing_hash(&domain)
            }
            ConsentAction::CreateRecord(r) => {
                let nonce = nonce_of(self.wallet_of(r.creator).await?).await?;
                bindings::CreateRecord {
                    patientHH: r.id.patient().get(),
                    recordId: r.id.serial(),
                    creatorHH: r.creator.get(),
                    contentHash: keccak256(convert::encode_content(&r.cid, &r.meta)),
                    nonce,
                    deadline: deadline.0,
                }
                .eip712_signing_hash(&domain)
            }
            ConsentAction::GrantAccess {
                patient,
                grantee,
                expires_at,
            } => {
                let nonce = nonce_of(self.wallet_of(*patient).await?).await?;
                bindings::GrantAccess {
                    patientHH: patient.get(),
                    granteeHH: grantee.get(),
                    expiresAt: expires_at.map_or(0, |e| e.0),
                    nonce,
                    deadline: deadline.0,
                }
                .eip712_signing_hash(&domain)
            }
            ConsentAction::RevokeAccess { patient, grantee } => {
                let nonce = nonce_of(self.wallet_of(*patient).await?).await?;
                bindings::RevokeAccess {
                    patientHH: patient.get(),
                    granteeHH: grantee.get(),
                    nonce,
                    deadline: deadline.0,
                }
                .eip712_signing_hash(&domain)
            }
        })
    }
}

/// The `(deadline, signature)` arguments of a consent-requiring call: both
/// empty when the sender itself consents.
pub(super) fn consent_args(auth: &Authorization) -> (u64, Bytes) {
    match auth {
        Authorization::Signer => (0, Bytes::new()),
        Authorization::Relayed(r) => (r.deadline.0, Bytes::from(r.signature.as_bytes().to_vec())),
    }
}
