//! Consent: the EIP-712 digests the contract checks, and the arguments a
//! consent-requiring call takes.

use alloy::dyn_abi::TypedData;
use alloy::{
    primitives::{Address, B256, Bytes},
    sol_types::{SolStruct as _, eip712_domain},
};
use healthledger_core::{
    Authorization, ConsentAction, HhNumber, LedgerError, LedgerResult, Profile, Timestamp,
    WalletAddress,
};

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

    /// The EIP-712 message the consenting wallet signs for `action` until
    /// `deadline`, with the wallet's current nonce.
    async fn message(&self, action: &ConsentAction, deadline: Timestamp) -> Result<Message> {
        let nonce_of =
            |wallet: Address| async move { self.call(HealthLedger::noncesCall(wallet)).await };
        Ok(match action {
            ConsentAction::UpdateProfile(p) => {
                let nonce = nonce_of(self.wallet_of(p.hh()).await?).await?;
                match p {
                    Profile::Patient(p) => Message::UpdatePatient(bindings::UpdatePatient {
                        profile: patient(&convert::patient_to_abi(p)),
                        nonce,
                        deadline: deadline.0,
                    }),
                    Profile::Doctor(d) => Message::UpdateDoctor(bindings::UpdateDoctor {
                        profile: doctor(&convert::doctor_to_abi(d)),
                        nonce,
                        deadline: deadline.0,
                    }),
                    Profile::DiagnosticCenter(c) => {
                        Message::UpdateDiagnosticCenter(bindings::UpdateDiagnosticCenter {
                            profile: center(&convert::center_to_abi(c)),
                            nonce,
                            deadline: deadline.0,
                        })
                    }
                }
            }
            ConsentAction::CreateRecord(r) => {
                let nonce = nonce_of(self.wallet_of(r.creator).await?).await?;
                let m = convert::meta_to_abi(&r.meta);
                Message::CreateRecord(bindings::CreateRecord {
                    patientHH: r.id.patient().get(),
                    recordId: r.id.serial(),
                    creatorHH: r.creator.get(),
                    cid: Bytes::from(r.cid.to_bytes()),
                    meta: bindings::RecordMeta {
                        testName: m.testName,
                        recordType: m.recordType,
                        date: m.date,
                        contentType: m.contentType,
                        size: m.size,
                    },
                    nonce,
                    deadline: deadline.0,
                })
            }
            ConsentAction::GrantAccess {
                patient,
                grantee,
                expires_at,
            } => {
                let nonce = nonce_of(self.wallet_of(*patient).await?).await?;
                Message::GrantAccess(bindings::GrantAccess {
                    patientHH: patient.get(),
                    granteeHH: grantee.get(),
                    expiresAt: expires_at.map_or(0, |e| e.0),
                    nonce,
                    deadline: deadline.0,
                })
            }
            ConsentAction::RevokeAccess { patient, grantee } => {
                let nonce = nonce_of(self.wallet_of(*patient).await?).await?;
                Message::RevokeAccess(bindings::RevokeAccess {
                    patientHH: patient.get(),
                    granteeHH: grantee.get(),
                    nonce,
                    deadline: deadline.0,
                })
            }
        })
    }

    /// The digest the consenting wallet signs.
    pub(super) async fn digest(&self, action: &ConsentAction, deadline: Timestamp) -> Result<B256> {
        let domain = self.domain();
        Ok(match self.message(action, deadline).await? {
            Message::UpdatePatient(m) => m.eip712_signing_hash(&domain),
            Message::UpdateDoctor(m) => m.eip712_signing_hash(&domain),
            Message::UpdateDiagnosticCenter(m) => m.eip712_signing_hash(&domain),
            Message::CreateRecord(m) => m.eip712_signing_hash(&domain),
            Message::GrantAccess(m) => m.eip712_signing_hash(&domain),
            Message::RevokeAccess(m) => m.eip712_signing_hash(&domain),
        })
    }

    /// The EIP-712 typed data of `action` until `deadline`, as
    /// `eth_signTypedData_v4` takes it: a wallet shows the signer every
    /// field of the profile or record it consents to, and the signature it
    /// returns is what the contract checks.
    pub async fn consent_typed_data(
        &self,
        action: &ConsentAction,
        deadline: Timestamp,
    ) -> LedgerResult<serde_json::Value> {
        let domain = Some(self.domain());
        let typed = match self.message(action, deadline).await? {
            Message::UpdatePatient(m) => TypedData::from_struct(&m, domain),
            Message::UpdateDoctor(m) => TypedData::from_struct(&m, domain),
            Message::UpdateDiagnosticCenter(m) => TypedData::from_struct(&m, domain),
            Message::CreateRecord(m) => TypedData::from_struct(&m, domain),
            Message::GrantAccess(m) => TypedData::from_struct(&m, domain),
            Message::RevokeAccess(m) => TypedData::from_struct(&m, domain),
        };
        serde_json::to_value(&typed)
            .map_err(|e| LedgerError::Other(format!("typed data does not serialize: {e}").into()))
    }
}

/// One consent message, by kind.
enum Message {
    UpdatePatient(bindings::UpdatePatient),
    UpdateDoctor(bindings::UpdateDoctor),
    UpdateDiagnosticCenter(bindings::UpdateDiagnosticCenter),
    CreateRecord(bindings::CreateRecord),
    GrantAccess(bindings::GrantAccess),
    RevokeAccess(bindings::RevokeAccess),
}

fn patient(p: &HealthLedger::Patient) -> bindings::Patient {
    bindings::Patient {
        hh: p.hh,
        wallet: p.wallet,
        name: p.name.clone(),
        dateOfBirth: p.dateOfBirth.clone(),
        gender: p.gender.clone(),
        bloodGroup: p.bloodGroup.clone(),
        homeAddress: p.homeAddress.clone(),
        email: p.email.clone(),
    }
}

fn doctor(d: &HealthLedger::Doctor) -> bindings::Doctor {
    bindings::Doctor {
        hh: d.hh,
        wallet: d.wallet,
        name: d.name.clone(),
        specialization: d.specialization.clone(),
        hospital: d.hospital.clone(),
        email: d.email.clone(),
    }
}

fn center(c: &HealthLedger::DiagnosticCenter) -> bindings::DiagnosticCenter {
    bindings::DiagnosticCenter {
        hh: c.hh,
        wallet: c.wallet,
        name: c.name.clone(),
        location: c.location.clone(),
        email: c.email.clone(),
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
