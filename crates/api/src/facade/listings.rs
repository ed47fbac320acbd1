//! Listings, each scoped to what its actor may see: a patient's records
//! (the patient, or a provider with an active grant on chain), a center's
//! reports and a doctor's patients (their own), a patient's grants and a
//! record's access log (the patient only), notifications (their owner),
//! search (providers, within what they may see). Which grants are active
//! is the chain's word at the latest block, as for reads: the cache's
//! grants only narrow down whom to ask about.

use healthledger_core::{
    AccessAction, AccessGrant, AccessLogEntry, HhNumber, MedicalRecord, NewAccessLogEntry,
    Notification, PatientProfile, ReadAt, RecordId, RecordQuery, Role, Timestamp,
};

use crate::{App, Error, Result, facade::Actor};

/// The most rows a listing returns at once.
pub const MAX_LISTING: u64 = 1_000;

impl App {
    /// A patient's records: for the patient, or a provider the patient
    /// granted access (checked on chain at the latest block).
    pub async fn records_of_patient(
        &self,
        actor: &Actor,
        patient: HhNumber,
    ) -> Result<Vec<MedicalRecord>> {
        let m = self.member(actor).await?;
        let allowed = m.hh == patient
            || (m.role != Role::Patient
                && self
                    .ledger
                    .has_access(patient, m.hh, ReadAt::Latest)
                    .await?);
        if !allowed {
            return Err(Error::AccessDenied(format!(
                "{} {} has no access to patient {patient}'s records",
                m.role, m.hh
            )));
        }
        Ok(self.cache.records_of_patient(patient).await?)
    }

    /// The reports a diagnostic center (or doctor) created: their own only.
    pub async fn reports_of(&self, actor: &Actor, creator: HhNumber) -> Result<Vec<MedicalRecord>> {
        let m = self
            .member_as(actor, &[Role::Doctor, Role::DiagnosticCenter])
            .await?;
        same(m.hh, creator, "reports")?;
        Ok(self.cache.records_by_creator(creator).await?)
    }

    /// The patients who granted a doctor access: the doctor's own list.
    pub async fn patients_of_doctor(
        &self,
        actor: &Actor,
        doctor: HhNumber,
    ) -> Result<Vec<HhNumber>> {
        let m = self
            .member_as(actor, &[Role::Doctor, Role::DiagnosticCenter])
            .await?;
        same(m.hh, doctor, "patients")?;
        self.granted_patients(doctor).await
    }

    /// The patients whose grant to `grantee` is active: the cache's list,
    /// each confirmed on chain at the latest block, so a revocation or
    /// expiry the cache has not caught up with hides them at once (a new
    /// grant the cache lags behind shows once sync brings it).
    async fn granted_patients(&self, grantee: HhNumber) -> Result<Vec<HhNumber>> {
        let mut out = Vec::new();
        for p in self
            .cache
            .patients_of_doctor(grantee, Timestamp::now())
            .await?
        {
            if self.ledger.has_access(p, grantee, ReadAt::Latest).await? {
                out.push(p);
            }
        }
        Ok(out)
    }

    /// A patient's grants (active or not): the patient only.
    pub async fn grants_of_patient(
        &self,
        actor: &Actor,
        patient: HhNumber,
    ) -> Result<Vec<AccessGrant>> {
        let m = self.member_as(actor, &[Role::Patient]).await?;
        same(m.hh, patient, "grants")?;
        Ok(self.cache.grants_of_patient(patient).await?)
    }

    /// One record's metadata (not its content) for `actor`: its patient,
    /// its creator, or a provider the patient granted access, as the chain
    /// says at the latest block. The attempt is logged (`ViewRecord`),
    /// granted or denied; nothing is returned if it cannot be logged.
    pub async fn record_meta(&self, actor: &Actor, id: RecordId) -> Result<MedicalRecord> {
        let m = self.member(actor).await?;
        let record = self.ledger.record(id, ReadAt::Latest).await?;
        let allowed = match &record {
            Some(_) => {
                self.ledger
                    .can_read_record(id, m.hh, ReadAt::Latest)
                    .await?
            }
            None => false,
        };
        self.cache
            .append_access_log(&NewAccessLogEntry {
                at: Timestamp::now(),
                actor: m.hh,
                patient: id.patient(),
                record: Some(id),
                action: AccessAction::ViewRecord,
                allowed,
            })
            .await?;
        match record {
            None => Err(Error::NotFound(format!("no record {id} on chain"))),
            Some(_) if !allowed => Err(Error::AccessDenied(format!(
                "{} {} has no access to {id} (logged)",
                m.role, m.hh
            ))),
            Some(r) => Ok(r),
        }
    }

    /// The access log of one record: its patient only.
    pub async fn record_access_log(
        &self,
        actor: &Actor,
        id: RecordId,
    ) -> Result<Vec<AccessLogEntry>> {
        let m = self.member_as(actor, &[Role::Patient]).await?;
        same(m.hh, id.patient(), "access log")?;
        let mut out = Vec::new();
        let mut after = 0;
        loop {
            let page = self
                .cache
                .access_log(Some(m.hh), after, MAX_LISTING)
                .await?;
            let Some(last) = page.last() else { break };
            after = last.seq;
            out.extend(page.into_iter().filter(|e| e.entry.record == Some(id)));
        }
        Ok(out)
    }

    /// The actor's notifications.
    pub async fn notifications(
        &self,
        actor: &Actor,
        unread_only: bool,
    ) -> Result<Vec<Notification>> {
        let m = self.member(actor).await?;
        Ok(self.cache.notifications(m.hh, unread_only).await?)
    }

    /// Marks one of the actor's notifications read; another user's is
    /// `NotFound`, as if it did not exist.
    pub async fn mark_notification_read(&self, actor: &Actor, id: u64) -> Result<()> {
        let m = self.member(actor).await?;
        let mine = self.cache.notifications(m.hh, false).await?;
        if !mine.iter().any(|n| n.id == id) {
            return Err(Error::NotFound(format!(
                "no notification {id} for {}",
                m.hh
            )));
        }
        Ok(self.cache.mark_notification_read(id).await?)
    }

    /// Searches records' public metadata, within what the actor may see: a
    /// patient their own, a provider those of patients who granted them
    /// access and those they created.
    pub async fn search_records(
        &self,
        actor: &Actor,
        query: RecordQuery,
    ) -> Result<Vec<MedicalRecord>> {
        let m = self.member(actor).await?;
        let limit = query.limit.clamp(1, MAX_LISTING);
        if m.role == Role::Patient {
            if query.patient.is_some_and(|p| p != m.hh) {
                return Err(Error::AccessDenied(format!(
                    "patient {} may search only their own records",
                    m.hh
                )));
            }
            let q = RecordQuery {
                patient: Some(m.hh),
                limit,
                ..query
            };
            return Ok(self.cache.search_records(&q).await?);
        }
        let granted = self.granted_patients(m.hh).await?;
        let q = RecordQuery {
            limit: MAX_LISTING,
            ..query
        };
        let mut hits: Vec<MedicalRecord> = self
            .cache
            .search_records(&q)
            .await?
            .into_iter()
            .filter(|r| r.creator == m.hh || granted.contains(&r.patient))
            .collect();
        hits.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        Ok(hits)
    }

    /// Patients whose name starts with `prefix`: for providers.
    pub async fn search_patients(
        &self,
        actor: &Actor,
        prefix: &str,
        limit: u64,
    ) -> Result<Vec<PatientProfile>> {
        self.member_as(actor, &[Role::Doctor, Role::DiagnosticCenter])
            .await?;
        Ok(self
            .cache
            .search_patients(prefix, limit.clamp(1, MAX_LISTING))
            .await?)
    }
}

fn same(actor: HhNumber, owner: HhNumber, what: &str) -> Result<()> {
    if actor == owner {
        Ok(())
    } else {
        Err(Error::AccessDenied(format!(
            "{actor} may not list {owner}'s {what}"
        )))
    }
}
