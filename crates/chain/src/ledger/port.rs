//! The [`LedgerPort`] implementation: argument conversion and delegation
//! to the reads, writes, logs and consent modules.

use alloy::{
    eips::BlockNumberOrTag,
    primitives::{B256, Bytes, U256},
};
use async_trait::async_trait;
use healthledger_core::{
    AccessGrant, AdminRole, AuditAnchor, Authorization, BlockRef, ConsentAction, EventBatch,
    HhNumber, LedgerError, LedgerPort, LedgerResult, MedicalRecord, NewRecord, Profile, ReadAt,
    RecordId, RelayedSignature, Role, Timestamp, TxReceipt, WalletAddress,
};

use crate::{
    Result,
    bindings::HealthLedger,
    convert::{self, Decoded},
};

use super::{
    EvmLedger,
    consent::consent_args,
    reads::{GRANT_PAGE, PAGE, PROFILE_PAGE, RECORD_PAGE, to_u64},
};

#[async_trait]
impl LedgerPort for EvmLedger {
    fn signer(&self) -> WalletAddress {
        self.signer
    }

    fn deployment_block(&self) -> u64 {
        self.deployment_block
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

    async fn register_attested(
        &self,
        profile: &Profile,
        attestation: &RelayedSignature,
    ) -> LedgerResult<TxReceipt> {
        let Profile::Patient(p) = profile else {
            return Err(LedgerError::AccessDenied(format!(
                "a {} is registered by a registrar, not with an attestation",
                profile.role()
            )));
        };
        Ok(self
            .send(HealthLedger::registerPatientAttestedCall {
                p: convert::patient_to_abi(p),
                deadline: attestation.deadline.0,
                attestation: Bytes::from(attestation.signature.as_bytes().to_vec()),
            })
            .await?)
    }

    async fn attestation_digest(
        &self,
        hh: HhNumber,
        wallet: WalletAddress,
        deadline: Timestamp,
    ) -> LedgerResult<B256> {
        Ok(self.attestation(hh, wallet, deadline))
    }

    async fn add_registrar(&self, wallet: WalletAddress) -> LedgerResult<TxReceipt> {
        Ok(self
            .send(HealthLedger::addRegistrarCall {
                registrar: wallet.address(),
            })
            .await?)
    }

    async fn remove_registrar(&self, wallet: WalletAddress) -> LedgerResult<TxReceipt> {
        Ok(self
            .send(HealthLedger::removeRegistrarCall {
                registrar: wallet.address(),
            })
            .await?)
    }

    async fn transfer_admin(&self, wallet: WalletAddress) -> LedgerResult<TxReceipt> {
        Ok(self
            .send(HealthLedger::transferAdminCall {
                newAdmin: wallet.address(),
            })
            .await?)
    }

    async fn accept_admin(&self) -> LedgerResult<TxReceipt> {
        Ok(self.send(HealthLedger::acceptAdminCall {}).await?)
    }

    async fn admin(&self, at: ReadAt) -> LedgerResult<AdminRole> {
        // Two getters: pin both to one block (the head's, for `Latest`), so
        // a handover landing between them cannot mix two states.
        let at = match at {
            ReadAt::Latest => ReadAt::Block(self.head().await?),
            pinned => pinned,
        };
        let admin = self.call_at(HealthLedger::adminCall {}, at).await?;
        let pending = self.call_at(HealthLedger::pendingAdminCall {}, at).await?;
        Ok(AdminRole {
            admin: convert::wallet(admin)?,
            pending: (!pending.is_zero())
                .then(|| convert::wallet(pending))
                .transpose()?,
        })
    }

    async fn suspend_provider(&self, hh: HhNumber) -> LedgerResult<TxReceipt> {
        Ok(self
            .send(HealthLedger::suspendProviderCall { hh: hh.get() })
            .await?)
    }

    async fn reinstate_provider(&self, hh: HhNumber) -> LedgerResult<TxReceipt> {
        Ok(self
            .send(HealthLedger::reinstateProviderCall { hh: hh.get() })
            .await?)
    }

    async fn is_suspended(&self, hh: HhNumber, at: ReadAt) -> LedgerResult<bool> {
        Ok(self
            .call_at(HealthLedger::suspendedCall(hh.get()), at)
            .await?)
    }

    async fn invalidate_nonce(&self) -> LedgerResult<TxReceipt> {
        Ok(self.send(HealthLedger::invalidateNonceCall {}).await?)
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

    async fn profile(&self, hh: HhNumber, role: Role, at: ReadAt) -> LedgerResult<Option<Profile>> {
        // Two calls, both pinned to one block when `at` names one, so a
        // load-balanced provider cannot answer them from different blocks.
        let code = self.call_at(HealthLedger::roleOfCall(hh.get()), at).await?;
        if code != convert::role_code(role) {
            return Ok(None);
        }
        let profile = match role {
            Role::Patient => Profile::Patient(convert::patient_from_abi(
                &self
                    .call_at(HealthLedger::getPatientCall { hh: hh.get() }, at)
                    .await?,
            )?),
            Role::Doctor => Profile::Doctor(convert::doctor_from_abi(
                &self
                    .call_at(HealthLedger::getDoctorCall { hh: hh.get() }, at)
                    .await?,
            )?),
            Role::DiagnosticCenter => Profile::DiagnosticCenter(convert::center_from_abi(
                &self
                    .call_at(HealthLedger::getDiagnosticCenterCall { hh: hh.get() }, at)
                    .await?,
            )?),
        };
        Ok(Some(profile))
    }

    async fn account_of(
        &self,
        wallet: WalletAddress,
        at: ReadAt,
    ) -> LedgerResult<Option<(Role, HhNumber)>> {
        let r = self
            .call_at(
                HealthLedger::accountOfCall {
                    wallet: wallet.address(),
                },
                at,
            )
            .await?;
        Ok(match convert::role_from_code(r.role)? {
            Some(role) => Some((role, convert::hh(r.hh)?)),
            None => None,
        })
    }

    async fn record(&self, id: RecordId, at: ReadAt) -> LedgerResult<Option<MedicalRecord>> {
        let r = self
            .call_at(
                HealthLedger::getRecordCall {
                    patientHH: id.patient().get(),
                    recordId: id.serial(),
                },
                at,
            )
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
        at: ReadAt,
    ) -> LedgerResult<Option<AccessGrant>> {
        let g = self
            .call_at(
                HealthLedger::getGrantCall {
                    patientHH: patient.get(),
                    granteeHH: grantee.get(),
                },
                at,
            )
            .await?;
        Ok((g.grantedAt != 0).then(|| convert::grant_from_abi(patient, grantee, &g)))
    }

    async fn has_access(
        &self,
        patient: HhNumber,
        grantee: HhNumber,
        at: ReadAt,
    ) -> LedgerResult<bool> {
        Ok(self
            .call_at(
                HealthLedger::hasAccessCall {
                    patientHH: patient.get(),
                    granteeHH: grantee.get(),
                },
                at,
            )
            .await?)
    }

    async fn can_read_record(
        &self,
        id: RecordId,
        reader: HhNumber,
        at: ReadAt,
    ) -> LedgerResult<bool> {
        Ok(self
            .call_at(
                HealthLedger::canReadRecordCall {
                    patientHH: id.patient().get(),
                    recordId: id.serial(),
                    readerHH: reader.get(),
                },
                at,
            )
            .await?)
    }

    async fn registered_count(&self, role: Role, at: ReadAt) -> LedgerResult<u64> {
        let n = self
            .call_at(
                HealthLedger::registeredCountCall {
                    role: convert::role_code(role),
                },
                at,
            )
            .await?;
        Ok(to_u64(n, "registered count")?)
    }

    async fn registered(
        &self,
        role: Role,
        offset: u64,
        limit: u64,
        at: ReadAt,
    ) -> LedgerResult<Vec<HhNumber>> {
        let code = convert::role_code(role);
        Ok(paged(offset, limit, PAGE, |offset, want| async move {
            self.call_at(
                HealthLedger::registeredPageCall {
                    role: code,
                    offset: U256::from(offset),
                    limit: U256::from(want),
                },
                at,
            )
            .await?
            .into_iter()
            .map(convert::hh)
            .collect()
        })
        .await?)
    }

    async fn profiles(
        &self,
        role: Role,
        offset: u64,
        limit: u64,
        at: ReadAt,
    ) -> LedgerResult<Vec<Profile>> {
        Ok(
            paged(offset, limit, PROFILE_PAGE, |offset, want| async move {
                let (offset, limit) = (U256::from(offset), U256::from(want));
                match role {
                    Role::Patient => self
                        .call_at(HealthLedger::patientsPageCall { offset, limit }, at)
                        .await?
                        .iter()
                        .map(|p| convert::patient_from_abi(p).map(Profile::Patient))
                        .collect(),
                    Role::Doctor => self
                        .call_at(HealthLedger::doctorsPageCall { offset, limit }, at)
                        .await?
                        .iter()
                        .map(|d| convert::doctor_from_abi(d).map(Profile::Doctor))
                        .collect(),
                    Role::DiagnosticCenter => self
                        .call_at(HealthLedger::centersPageCall { offset, limit }, at)
                        .await?
                        .iter()
                        .map(|c| convert::center_from_abi(c).map(Profile::DiagnosticCenter))
                        .collect(),
                }
            })
            .await?,
        )
    }

    async fn record_count(&self, at: ReadAt) -> LedgerResult<u64> {
        let n = self.call_at(HealthLedger::recordCountCall {}, at).await?;
        Ok(to_u64(n, "record count")?)
    }

    async fn record_ids(&self, offset: u64, limit: u64, at: ReadAt) -> LedgerResult<Vec<RecordId>> {
        // The whole-record pages serve the ids too: one getter fewer keeps
        // the contract under the code size limit.
        Ok(self
            .records(offset, limit, at)
            .await?
            .into_iter()
            .map(|r| r.id)
            .collect())
    }

    async fn records(
        &self,
        offset: u64,
        limit: u64,
        at: ReadAt,
    ) -> LedgerResult<Vec<MedicalRecord>> {
        Ok(
            paged(offset, limit, RECORD_PAGE, |offset, want| async move {
                self.call_at(
                    HealthLedger::recordsPageCall {
                        offset: U256::from(offset),
                        limit: U256::from(want),
                    },
                    at,
                )
                .await?
                .iter()
                .map(convert::record_from_abi)
                .collect()
            })
            .await?,
        )
    }

    async fn grant_count(&self, at: ReadAt) -> LedgerResult<u64> {
        let n = self
            .call_at(HealthLedger::grantPairCountCall {}, at)
            .await?;
        Ok(to_u64(n, "grant count")?)
    }

    async fn grants(&self, offset: u64, limit: u64, at: ReadAt) -> LedgerResult<Vec<AccessGrant>> {
        Ok(paged(offset, limit, GRANT_PAGE, |offset, want| async move {
            self.call_at(
                HealthLedger::grantsPageCall {
                    offset: U256::from(offset),
                    limit: U256::from(want),
                },
                at,
            )
            .await?
            .iter()
            .map(|e| {
                Ok(convert::grant_from_abi(
                    convert::hh(e.patientHH)?,
                    convert::hh(e.granteeHH)?,
                    &e.grant,
                ))
            })
            .collect()
        })
        .await?)
    }

    async fn grantees(
        &self,
        patient: HhNumber,
        offset: u64,
        limit: u64,
        at: ReadAt,
    ) -> LedgerResult<Vec<HhNumber>> {
        Ok(paged(offset, limit, PAGE, |offset, want| async move {
            self.call_at(
                HealthLedger::granteesPageCall {
                    patientHH: patient.get(),
                    offset: U256::from(offset),
                    limit: U256::from(want),
                },
                at,
            )
            .await?
            .into_iter()
            .map(convert::hh)
            .collect()
        })
        .await?)
    }

    async fn latest_audit_anchor(&self, at: ReadAt) -> LedgerResult<Option<AuditAnchor>> {
        let last_seq = self
            .call_at(HealthLedger::lastAnchoredSeqCall {}, at)
            .await?;
        if last_seq == 0 {
            return Ok(None);
        }
        Ok(Some(AuditAnchor {
            digest: self
                .call_at(HealthLedger::lastAnchorDigestCall {}, at)
                .await?,
            last_seq,
            anchored_at: Timestamp(
                self.call_at(HealthLedger::lastAnchoredAtCall {}, at)
                    .await?,
            ),
        }))
    }

    async fn events(&self, from: u64, to: u64) -> LedgerResult<EventBatch> {
        if from > to {
            return Err(LedgerError::Invalid(format!(
                "block range {from}..={to} is empty: from is above to"
            )));
        }
        let head = self.head_number().await?;
        if from > head {
            return Ok(EventBatch::default());
        }
        let logs = self.logs(from, to.min(head)).await?;
        let mut batch = EventBatch::default();
        for log in &logs {
            match convert::chain_event(log)? {
                Decoded::Event(e) => batch.events.push(e),
                Decoded::Bookkeeping => {}
                Decoded::Quarantined(q) => {
                    tracing::warn!(
                        block = q.at.block_number,
                        log_index = q.at.log_index,
                        tx = %q.at.tx_hash,
                        reason = %q.reason,
                        "quarantined a HealthLedger log that does not decode"
                    );
                    batch.quarantined.push(q);
                }
            }
        }
        batch
            .events
            .sort_by_key(|e| (e.at.block_number, e.at.log_index));
        batch
            .quarantined
            .sort_by_key(|q| (q.at.block_number, q.at.log_index));
        Ok(batch)
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

    async fn new_heads(&self) -> LedgerResult<Option<futures::stream::BoxStream<'static, u64>>> {
        self.subscribe_heads().await
    }

    fn chain_id(&self) -> Option<u64> {
        Some(EvmLedger::chain_id(self))
    }

    async fn consent_typed_data(
        &self,
        action: &ConsentAction,
        deadline: Timestamp,
    ) -> LedgerResult<Option<serde_json::Value>> {
        Ok(Some(
            EvmLedger::consent_typed_data(self, action, deadline).await?,
        ))
    }
}

/// Reads `limit` items from `offset` in requests of at most `page`, stopping
/// early at the end of the list (a short page).
async fn paged<T, F, Fut>(offset: u64, limit: u64, page: u64, mut fetch: F) -> Result<Vec<T>>
where
    F: FnMut(u64, u64) -> Fut,
    Fut: std::future::Future<Output = Result<Vec<T>>>,
{
    let mut out = Vec::new();
    let mut at = offset;
    let mut left = limit;
    while left > 0 {
        let want = left.min(page);
        let got = fetch(at, want).await?;
        let n = got.len() as u64;
        out.extend(got);
        if n < want {
            break;
        }
        at = at.saturating_add(n);
        left -= n;
    }
    Ok(out)
}
