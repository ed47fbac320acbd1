//! The [`LedgerPort`] implementation: argument conversion and delegation
//! to the reads, writes, logs and consent modules.

use alloy::{
    eips::BlockNumberOrTag,
    primitives::{B256, Bytes, U256},
};
use async_trait::async_trait;
use healthledger_core::{
    AccessGrant, Authorization, BlockRef, ChainEvent, ConsentAction, HhNumber, LedgerError,
    LedgerPort, LedgerResult, MedicalRecord, NewRecord, Profile, RecordId, Role, Timestamp,
    TxReceipt, WalletAddress,
};

use crate::{Result, bindings::HealthLedger, convert};

use super::{
    EvmLedger,
    consent::consent_args,
    reads::{PAGE, to_u64},
};

#[async_trait]
impl LedgerPort for EvmLedger {
    fn signer(&self) -> WalletAddress {
        self.signer
    }

    async fn register(&self, profile: &Profile) -> LedgerResult<TxReceipt> {
        Ok(match profile {
            Profile::Patient(p) => {
                self.send(HealthLedger::registerPatientCall {
                    p: convert::patient_to_abi(p),
                })
                .await?
            }
            Profile::Doctor(d) => {
                self.send(HealthLedger::registerDoctorCall {
                    d: convert::doctor_to_abi(d),
                })
                .await?
            }
            Profile::DiagnosticCenter(c) => {
                self.send(HealthLedger::registerDiagnosticCenterCall {
                    c: convert::center_to_abi(c),
                })
                .await?
            }
        })
    }

    async fn update_profile(
        &self,
        profile: &Profile,
        auth: &Authorization,
    ) -> LedgerResult<TxReceipt> {
        let (deadline, signature) = consent_args(auth);
        Ok(match profile {
            Profile::Patient(p) => {
                self.send(HealthLedger::updatePatientCall {
                    p: convert::patient_to_abi(p),
                    deadline,
                    signature,
                })
                .await?
            }
            Profile::Doctor(d) => {
                self.send(HealthLedger::updateDoctorCall {
                    d: convert::doctor_to_abi(d),
                    deadline,
                    signature,
                })
                .await?
            }
            Profile::DiagnosticCenter(c) => {
                self.send(HealthLedger::updateDiagnosticCenterCall {
                    c: convert::center_to_abi(c),
                    deadline,
                    signature,
                })
                .await?
            }
        })
    }

    async fn create_record(
        &self,
        record: &NewRecord,
        auth: &Authorization,
    ) -> LedgerResult<TxReceipt> {
        let (deadline, signature) = consent_args(auth);
        Ok(self
            .send(HealthLedger::createRecordCall {
                patientHH: record.id.patient().get(),
                recordId: record.id.serial(),
                creatorHH: record.creator.get(),
                cid: Bytes::from(record.cid.to_bytes()),
                meta: convert::meta_to_abi(&record.meta),
                deadline,
                signature,
            })
            .await?)
    }

    async fn grant_access(
        &self,
        patient: HhNumber,
        grantee: HhNumber,
        expires_at: Option<Timestamp>,
        auth: &Authorization,
    ) -> LedgerResult<TxReceipt> {
        // The contract reads an expiry of 0 as "never expires", so
        // `Some(Timestamp(0))` (a grant meant to be already expired) must be
        // refused here: sent as 0 it would become permanent.
        if expires_at == Some(Timestamp(0)) {
            return Err(LedgerError::Invalid(format!(
                "expiry {} for the grant from {patient} to {grantee} is not after the block time",
                Timestamp(0)
            )));
        }
        let (deadline, signature) = consent_args(auth);
        Ok(self
            .send(HealthLedger::grantAccessCall {
                patientHH: patient.get(),
                granteeHH: grantee.get(),
                expiresAt: expires_at.map_or(0, |e| e.0),
                deadline,
                signature,
            })
            .await?)
    }

    async fn revoke_access(
        &self,
        patient: HhNumber,
        grantee: HhNumber,
        auth: &Authorization,
    ) -> LedgerResult<TxReceipt> {
        let (deadline, signature) = consent_args(auth);
        Ok(self
            .send(HealthLedger::revokeAccessCall {
                patientHH: patient.get(),
                granteeHH: grantee.get(),
                deadline,
                signature,
            })
            .await?)
    }

    async fn anchor_audit(&self, digest: B256, last_seq: u64) -> LedgerResult<TxReceipt> {
        Ok(self
            .send(HealthLedger::anchorAuditCall {
                digest,
                lastSeq: last_seq,
            })
            .await?)
    }

    async fn signing_digest(
        &self,
        action: &ConsentAction,
        deadline: Timestamp,
    ) -> LedgerResult<B256> {
        Ok(self.digest(action, deadline).await?)
    }

    async fn profile(&self, hh: HhNumber, role: Role) -> LedgerResult<Option<Profile>> {
        let code = self.call(HealthLedger::roleOfCall(hh.get())).await?;
        if code != convert::role_code(role) {
            return Ok(None);
        }
        let profile = match role {
            Role::Patient => Profile::Patient(convert::patient_from_abi(
                &self
                    .call(HealthLedger::getPatientCall { hh: hh.get() })
                    .await?,
            )?),
            Role::Doctor => Profile::Doctor(convert::doctor_from_abi(
                &self
                    .call(HealthLedger::getDoctorCall { hh: hh.get() })
                    .await?,
            )?),
            Role::DiagnosticCenter => Profile::DiagnosticCenter(convert::center_from_abi(
                &self
                    .call(HealthLedger::getDiagnosticCenterCall { hh: hh.get() })
                    .await?,
            )?),
        };
        Ok(Some(profile))
    }

    async fn account_of(&self, wallet: WalletAddress) -> LedgerResult<Option<(Role, HhNumber)>> {
        let r = self
            .call(HealthLedger::accountOfCall {
                wallet: wallet.address(),
            })
            .await?;
        Ok(match convert::role_from_code(r.role)? {
            Some(role) => Some((role, convert::hh(r.hh)?)),
            None => None,
        })
    }

    async fn record(&self, id: RecordId) -> LedgerResult<Option<MedicalRecord>> {
        let r = self
            .call(HealthLedger::getRecordCall {
                patientHH: id.patient().get(),
                recordId: id.serial(),
            })
            .await?;
        if r.creatorHH == 0 {
            return Ok(None);
        }
        Ok(Some(convert::record_from_abi(&r)?))
    }

    async fn grant(
        &self,
        patient: HhNumber,
        grantee: HhNumber,
    ) -> LedgerResult<Option<AccessGrant>> {
        let g = self
            .call(HealthLedger::getGrantCall {
                patientHH: patient.get(),
                granteeHH: grantee.get(),
            })
            .await?;
        Ok((g.grantedAt != 0).then(|| convert::grant_from_abi(patient, grantee, &g)))
    }

    async fn has_access(&self, patient: HhNumber, grantee: HhNumber) -> LedgerResult<bool> {
        Ok(self
            .call(HealthLedger::hasAccessCall {
                patientHH: patient.get(),
                granteeHH: grantee.get(),
            })
            .await?)
    }

    async fn can_read_record(&self, id: RecordId, reader: HhNumber) -> LedgerResult<bool> {
        Ok(self
            .call(HealthLedger::canReadRecordCall {
                patientHH: id.patient().get(),
                recordId: id.serial(),
                readerHH: reader.get(),
            })
            .await?)
    }

    async fn registered_count(&self, role: Role) -> LedgerResult<u64> {
        let n = self
            .call(HealthLedger::registeredCountCall {
                role: convert::role_code(role),
            })
            .await?;
        Ok(to_u64(n, "registered count")?)
    }

    async fn registered(&self, role: Role, offset: u64, limit: u64) -> LedgerResult<Vec<HhNumber>> {
        let mut out = Vec::new();
        let mut at = offset;
        let mut left = limit;
        while left > 0 {
            let want = left.min(PAGE);
            let page = self
                .call(HealthLedger::registeredPageCall {
                    role: convert::role_code(role),
                    offset: U256::from(at),
                    limit: U256::from(want),
                })
                .await?;
            let got = page.len() as u64;
            for hh in page {
                out.push(convert::hh(hh)?);
            }
            if got < want {
                break;
            }
            at += got;
            left -= got;
        }
        Ok(out)
    }

    async fn record_count(&self) -> LedgerResult<u64> {
        let n = self.call(HealthLedger::recordCountCall {}).await?;
        Ok(to_u64(n, "record count")?)
    }

    async fn record_ids(&self, offset: u64, limit: u64) -> LedgerResult<Vec<RecordId>> {
        let mut out = Vec::new();
        let mut at = offset;
        let mut left = limit;
        while left > 0 {
            let want = left.min(PAGE);
            let page = self
                .call(HealthLedger::recordPageCall {
                    offset: U256::from(at),
                    limit: U256::from(want),
                })
                .await?;
            let got = page.patientHHs.len() as u64;
            for (p, id) in page.patientHHs.iter().zip(&page.recordIds) {
                out.push(RecordId::new(convert::hh(*p)?, *id));
            }
            if got < want {
                break;
            }
            at += got;
            left -= got;
        }
        Ok(out)
    }

    async fn grantees(&self, patient: HhNumber) -> LedgerResult<Vec<HhNumber>> {
        let list = self
            .call(HealthLedger::granteesCall {
                patientHH: patient.get(),
            })
            .await?;
        Ok(list
            .into_iter()
            .map(convert::hh)
            .collect::<Result<Vec<_>>>()?)
    }

    async fn events(&self, from: u64, to: u64) -> LedgerResult<Vec<ChainEvent>> {
        if from > to {
            return Err(LedgerError::Invalid(format!(
                "block range {from}..={to} is empty: from is above to"
            )));
        }
        let head = self.head_number().await?;
        if from > head {
            return Ok(Vec::new());
        }
        let logs = self.logs(from, to.min(head)).await?;
        let mut events = logs
            .iter()
            .map(convert::chain_event)
            .collect::<Result<Vec<_>>>()?;
        events.sort_by_key(|e| (e.at.block_number, e.at.log_index));
        Ok(events)
    }

    async fn head(&self) -> LedgerResult<BlockRef> {
        self.block_ref(BlockNumberOrTag::Latest)
            .await?
            .ok_or_else(|| LedgerError::Unavailable("the node returned no latest block".into()))
    }

    async fn finalized(&self) -> LedgerResult<BlockRef> {
        // The `finalized` tag, else `safe`, where the node supports them (it
        // answers null or -32601/-32602 where not); else the configured depth
        // below the head. Any other failure is an error, not a fallback.
        for tag in [BlockNumberOrTag::Finalized, BlockNumberOrTag::Safe] {
            if let Some(b) = self.tagged_block(tag).await? {
                return Ok(b);
            }
        }
        let head = self.head().await?;
        let n = head.number.saturating_sub(self.config.finality_depth);
        self.block_ref(BlockNumberOrTag::Number(n))
            .await?
            .ok_or_else(|| LedgerError::Unavailable(format!("block {n} is missing")))
    }

    async fn block(&self, number: u64) -> LedgerResult<Option<BlockRef>> {
        Ok(self.block_ref(BlockNumberOrTag::Number(number)).await?)
    }
}
