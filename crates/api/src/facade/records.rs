//! Records: create (vault, then chain, then cache, then a notification),
//! read (the chain decides, every attempt is logged, plaintext only when
//! granted), and the patient's right to erasure.
//!
//! The order of a create is what keeps failures harmless: the file is
//! sealed first, so the chain never points at content that is not there;
//! if the chain write fails the sealed object is shredded at once, so no
//! readable orphan remains — unless the chain shows the record after all
//! (the write's answer was lost), when the object stays for the record
//! that points at it; one left by a crash between the two steps is an
//! orphan the vault audit lists and removes. The cache and the
//! notification come last and sync repairs the cache if they fail.

use std::sync::atomic::Ordering;

use chrono::NaiveDate;
use healthledger_core::{
    AccessAction, Authorization, ByteStream, ChainSource, ConsentAction, ContentType, HhNumber,
    Label, MedicalRecord, Name, NewAccessLogEntry, NewRecord, NotificationKind, ProfileExtras,
    ReadAt, RecordId, RecordMeta, Role, Timestamp, TxReceipt, VaultError,
};
use serde::{Deserialize, Serialize};

use crate::{
    App, Error, Result,
    facade::{Actor, ConsentSigner, Member, content::check_file},
};

/// What a creator says about a new record; the size and the CID come from
/// the file itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordDraft {
    /// The test's name.
    pub test_name: Name,
    /// The record type (`lab-result`, `x-ray`, …).
    pub record_type: Label,
    /// The test's date.
    pub date: NaiveDate,
    /// The declared content type; it must match the file's content.
    pub content_type: ContentType,
}

/// A file sealed in the vault for a record not yet on chain: the creator's
/// wallet signs [`Self::action`] and [`App::commit_record`] finishes it.
///
/// Only [`App::seal_record`] makes one (its field is private and it does
/// not deserialize): a caller who could hand `commit_record` a record of
/// its own making could point patient A's new record at patient B's sealed
/// object, and A's readers would then read B's file. A server that signs
/// in two round trips keeps the `SealedRecord` on its side, under an id it
/// gives the client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SealedRecord {
    record: NewRecord,
}

impl SealedRecord {
    /// The record to create, with the sealed object's CID and size.
    pub fn record(&self) -> &NewRecord {
        &self.record
    }

    /// What the creator consents to.
    pub fn action(&self) -> ConsentAction {
        ConsentAction::CreateRecord(self.record.clone())
    }
}

/// What a create did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CreatedRecord {
    /// The record as the chain holds it.
    pub record: MedicalRecord,
    /// The transaction that created it.
    pub receipt: TxReceipt,
    /// Whether the cache indexes it now (`false`: sync will).
    pub cached: bool,
}

/// A granted read: the record and its plaintext as a stream. The stream
/// authenticates every chunk; a damaged object ends it with an error.
pub struct RecordRead {
    /// The record, as the chain holds it.
    pub record: MedicalRecord,
    /// The plaintext.
    pub content: ByteStream,
}

impl std::fmt::Debug for RecordRead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordRead")
            .field("record", &self.record)
            .finish_non_exhaustive()
    }
}

/// What an erasure did, and what it could not undo.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Erasure {
    /// The patient.
    pub patient: HhNumber,
    /// Records whose content can never be decrypted again.
    pub records: u64,
    /// How long erased key material may survive in the key store's
    /// backups, as configured.
    pub erasure_horizon_secs: u64,
    /// What stays public on chain, forever: a blockchain cannot forget.
    pub remains_on_chain: Vec<String>,
}

impl App {
    /// Checks and seals `file` for a record of `patient` by `actor` (a
    /// doctor or diagnostic center, not suspended): the first half of a
    /// create, for callers whose creator signs elsewhere (the HTTP server
    /// hands [`SealedRecord::action`]'s typed data to the creator's
    /// wallet). Nothing is on chain yet.
    pub async fn seal_record(
        &self,
        actor: &Actor,
        patient: HhNumber,
        file: ByteStream,
        draft: RecordDraft,
    ) -> Result<SealedRecord> {
        let creator = self.creator(actor).await?;
        if self
            .ledger
            .profile(patient, Role::Patient, ReadAt::Latest)
            .await?
            .is_none()
        {
            return Err(Error::NotFound(format!(
                "no patient with HH number {patient}"
            )));
        }
        let checked = check_file(
            file,
            draft.content_type.as_str(),
            self.settings.max_file_bytes,
        )
        .await?;
        let seen = checked.seen.clone();
        let sealed = match self.vault.put_stream(patient, checked.stream).await {
            Ok(s) => s,
            Err(e) => {
                let size = seen.load(Ordering::Relaxed);
                return Err(if size > self.settings.max_file_bytes {
                    Error::TooLarge {
                        size,
                        limit: self.settings.max_file_bytes,
                    }
                } else {
                    e.into()
                });
            }
        };
        let millis = u64::try_from(chrono::Utc::now().timestamp_millis()).unwrap_or(0);
        let id = RecordId::for_creator(patient, creator.hh, millis)?;
        Ok(SealedRecord {
            record: NewRecord {
                id,
                creator: creator.hh,
                cid: sealed.cid,
                meta: RecordMeta {
                    test_name: draft.test_name,
                    record_type: draft.record_type,
                    date: draft.date,
                    content_type: ContentType::new(checked.kind.mime())?,
                    size: sealed.size,
                },
            },
        })
    }

    /// Puts a sealed record on chain with the creator's consent, indexes it
    /// and notifies the patient. If the chain refuses it (or cannot be
    /// reached), the sealed object is shredded before the error returns.
    pub async fn commit_record(
        &self,
        actor: &Actor,
        sealed: SealedRecord,
        consent: &Authorization,
    ) -> Result<CreatedRecord> {
        let new = sealed.record;
        let shred = async |e: Error| -> Error {
            if let Err(s) = self.vault.shred(&new.cid).await {
                tracing::warn!(error = %s, cid = %new.cid, "shredding an unanchored object failed; the orphan audit will remove it");
            }
            e
        };
        let creator = match self.creator(actor).await {
            Ok(c) if c.hh == new.creator => c,
            Ok(c) => {
                return Err(shred(Error::AccessDenied(format!(
                    "{} {} did not seal this record",
                    c.role, c.hh
                )))
                .await);
            }
            Err(e) => return Err(shred(e).await),
        };
        let receipt = match self.ledger.create_record(&new, consent).await {
            Ok(r) => r,
            Err(e) => {
                // An error may be a lost answer to a write the chain took
                // (a timeout after the transaction was sent): the object is
                // shredded only if the chain does not point at it, else the
                // record would stay on chain with content no one can read.
                if let Ok(Some(r)) = self.ledger.record(new.id, ReadAt::Latest).await
                    && r.cid == new.cid
                {
                    tracing::warn!(error = %e, id = %new.id, "the chain holds the record though its write failed; sync will index it");
                    return Err(e.into());
                }
                return Err(shred(e.into()).await);
            }
        };
        let record = match self.ledger.record(new.id, ReadAt::Latest).await {
            Ok(Some(r)) => r,
            // The chain accepted it; use the block's time when the read
            // lags (a load-balanced provider).
            _ => MedicalRecord::from_new(new.clone(), Timestamp::now()),
        };
        let source = ChainSource {
            block_number: receipt.block_number,
            tx_hash: receipt.tx_hash,
        };
        let cached = match self.cache.upsert_record(&record, source).await {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(error = %e, id = %record.id, "indexing a record failed; sync will repair it");
                false
            }
        };
        self.notify(
            record.patient,
            NotificationKind::RecordCreated,
            "New medical record",
            format!(
                "{} {} added \"{}\" ({}) to your records.",
                creator.role, creator.hh, record.meta.test_name, record.meta.record_type
            ),
            Some(record.id),
        )
        .await;
        Ok(CreatedRecord {
            record,
            receipt,
            cached,
        })
    }

    /// Creates a record: seals `file`, has `signer` (the creator's wallet)
    /// consent, and commits it.
    pub async fn create_record(
        &self,
        actor: &Actor,
        patient: HhNumber,
        file: ByteStream,
        draft: RecordDraft,
        signer: &dyn ConsentSigner,
    ) -> Result<CreatedRecord> {
        let creator = self.creator(actor).await?;
        if signer.wallet() != creator.wallet {
            return Err(Error::AccessDenied(format!(
                "the consent must come from {}'s wallet {}, not {}",
                creator.hh,
                creator.wallet,
                signer.wallet()
            )));
        }
        let sealed = self.seal_record(actor, patient, file, draft).await?;
        let consent = match self.consent(signer, &sealed.action()).await {
            Ok(c) => c,
            Err(e) => {
                let _ = self.vault.shred(&sealed.record.cid).await;
                return Err(e);
            }
        };
        self.commit_record(actor, sealed, &consent).await
    }

    /// Reads a record's plaintext for `actor`. The chain decides at the
    /// latest block (a revocation or an expiry takes effect at once,
    /// whatever the cache's lag); the attempt is appended to the access log
    /// whether granted or denied, and nothing is released if it cannot be
    /// logged.
    ///
    /// The vault opens the record's CID only as an object of the patient
    /// the record names: a creator may put any CID on chain, and a record
    /// of patient A pointing at patient B's sealed object is refused
    /// (`AccessDenied`, logged as denied) before any of B's content is
    /// decrypted.
    pub async fn read_record(&self, actor: &Actor, id: RecordId) -> Result<RecordRead> {
        let reader = self.member(actor).await?;
        let record = self.ledger.record(id, ReadAt::Latest).await?;
        let allowed = match &record {
            Some(_) => {
                self.ledger
                    .can_read_record(id, reader.hh, ReadAt::Latest)
                    .await?
            }
            None => false,
        };
        // The content is opened before the attempt is logged so that an
        // object of another patient is logged as denied; nothing of it is
        // released before the log entry is written.
        let opened = match &record {
            Some(record) if allowed => {
                Some(self.vault.get_stream(record.patient, &record.cid).await)
            }
            _ => None,
        };
        let wrong_patient = matches!(&opened, Some(Err(VaultError::WrongPatient(_))));
        self.cache
            .append_access_log(&NewAccessLogEntry {
                at: Timestamp::now(),
                actor: reader.hh,
                patient: id.patient(),
                record: Some(id),
                action: AccessAction::ReadContent,
                allowed: allowed && !wrong_patient,
            })
            .await?;
        let Some(record) = record else {
            return Err(Error::NotFound(format!("no record {id} on chain")));
        };
        if !allowed {
            return Err(Error::AccessDenied(format!(
                "{} {} has no access to {id} (logged)",
                reader.role, reader.hh
            )));
        }
        let content = match opened {
            Some(Ok(content)) => content,
            Some(Err(VaultError::WrongPatient(_))) => {
                tracing::warn!(id = %id, cid = %record.cid, reader = %reader.hh, "a record's CID names an object of another patient; read refused");
                return Err(Error::AccessDenied(format!(
                    "the content of {id} is not an object of patient {} (logged)",
                    record.patient
                )));
            }
            Some(Err(VaultError::NotFound(_))) => {
                return Err(Error::NotFound(format!(
                    "the content of {id} is gone from the vault (shredded or erased)"
                )));
            }
            Some(Err(other)) => return Err(other.into()),
            None => {
                return Err(Error::AccessDenied(format!(
                    "{} {} has no access to {id} (logged)",
                    reader.role, reader.hh
                )));
            }
        };
        Ok(RecordRead { record, content })
    }

    /// The right to erasure: destroys the key of every object of `patient`
    /// at once (the patient themselves, or the operator), and clears their
    /// DB-only extras. What the chain holds stays, and the result says so.
    pub async fn erase_patient(&self, actor: &Actor, patient: HhNumber) -> Result<Erasure> {
        match actor {
            Actor::Operator => {}
            other => {
                let m = self.member_as(other, &[Role::Patient]).await?;
                if m.hh != patient {
                    return Err(Error::AccessDenied(format!(
                        "patient {} may not erase patient {patient}",
                        m.hh
                    )));
                }
            }
        }
        let records = self.cache.records_of_patient(patient).await?.len() as u64;
        self.vault.erase_patient(patient).await?;
        if self.cache.extras(patient).await?.is_some() {
            self.cache
                .set_extras(patient, &ProfileExtras::default())
                .await?;
        }
        let horizon = self.vault.health().await?.erasure_horizon;
        Ok(Erasure {
            patient,
            records,
            erasure_horizon_secs: horizon.as_secs(),
            remains_on_chain: vec![
                "the public profile (name, date of birth, blood group, contact fields as registered)".into(),
                "every record's metadata (test name, type, date) and its CID, which now points at ciphertext no key opens".into(),
                "the history of grants and revocations".into(),
                "the audit anchors of the access log".into(),
            ],
        })
    }

    /// A doctor or diagnostic center confirmed on chain and not suspended.
    async fn creator(&self, actor: &Actor) -> Result<Member> {
        let m = self
            .member_as(actor, &[Role::Doctor, Role::DiagnosticCenter])
            .await?;
        if self.ledger.is_suspended(m.hh, ReadAt::Latest).await? {
            return Err(Error::AccessDenied(format!(
                "{} {} is suspended",
                m.role, m.hh
            )));
        }
        Ok(m)
    }
}
