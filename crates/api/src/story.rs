//! The seed guide's story, end to end through the facade: what
//! `healthledger demo` and the `quickstart` example run, and what the
//! end-to-end tests assert, on whatever adapters the [`App`] was built
//! over.
//!
//! Patient 555555, doctor 112233 and diagnostic center 444444 are
//! registered by the operator; the center uploads a report; the doctor is
//! denied, then granted by the patient, reads it, is revoked and denied
//! again (every attempt logged); the cache row of 555555 is deleted and a
//! targeted sync restores it; the cache syncs to the head, `verify` finds
//! zero drift, and the access log is audited and anchored on chain.

use bytes::Bytes;
use futures::{StreamExt as _, TryStreamExt as _, stream};
use healthledger_core::{
    ContentType, DateOfBirth, DiagnosticCenterProfile, DoctorProfile, Email, HhNumber, Label, Line,
    Name, PatientProfile, RecordId, Role,
};
use healthledger_sync::{Outcome, Stale, integrity::AnchorOutcome};
use serde::Serialize;

use crate::{
    App, Error, Result,
    facade::{Actor, ConsentSigner, LocalWallet, RecordDraft},
};

/// One line of the story's output.
pub type Say<'a> = &'a mut (dyn FnMut(&str) + Send);

/// What the story ended with, for tests and `--json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoryOutcome {
    /// The record the center created.
    pub record: RecordId,
    /// Reads of the record by the doctor: (allowed, bytes) in order.
    pub doctor_reads: Vec<(bool, u64)>,
    /// What the targeted sync of 555555 did after its cache row was
    /// deleted.
    pub resync: Outcome,
    /// Entities that drifted between chain and cache at the end (none).
    pub drift: u64,
    /// Access-log entries, all intact and anchored.
    pub access_log_entries: u64,
}

/// The report the center uploads: a small PDF (its content is what the
/// vault must never leak).
pub const REPORT: &[u8] =
    b"%PDF-1.7\n1 0 obj <<>> endobj\n% Complete blood count: haemoglobin 13.5 g/dL\n%%EOF\n";

/// Runs the story on `app`, telling each step to `say`.
pub async fn run(app: &App, say: Say<'_>) -> Result<StoryOutcome> {
    let (p_w, d_w, c_w) = (
        LocalWallet::random(),
        LocalWallet::random(),
        LocalWallet::random(),
    );
    let hh = |n: u32| HhNumber::new(n).map_err(Error::from);
    let (patient, doctor, center) = (hh(555_555)?, hh(112_233)?, hh(444_444)?);

    say("🔄 HealthLedger demo");
    say(RULE);
    for registered in [
        app.register_patient(&Actor::Operator, patient_profile(patient, &p_w)?)
            .await?,
        app.register_doctor(&Actor::Operator, doctor_profile(doctor, &d_w)?)
            .await?,
        app.register_diagnostic_center(&Actor::Operator, center_profile(center, &c_w)?)
            .await?,
    ] {
        say(&format!(
            "✅ Registered {} {} on chain in block {} and in the cache",
            registered.profile.role(),
            registered.profile.hh(),
            registered.receipt.block_number
        ));
    }
    let profile = app.profile(Role::Patient, patient).await?;
    say(&format!(
        "📋 Profile {patient} (cache first): {}",
        profile.name()
    ));

    let center_actor = Actor::user(center, Role::DiagnosticCenter, c_w.wallet());
    let doctor_actor = Actor::user(doctor, Role::Doctor, d_w.wallet());
    let patient_actor = Actor::user(patient, Role::Patient, p_w.wallet());
    let file = stream::iter([Ok(Bytes::from_static(REPORT))]).boxed();
    let draft = RecordDraft {
        test_name: Name::new("Complete blood count")?,
        record_type: Label::new("lab-result")?,
        date: chrono::Utc::now().date_naive(),
        content_type: ContentType::new("application/pdf")?,
    };
    let created = app
        .create_record(&center_actor, patient, file, draft, &c_w)
        .await?;
    let id = created.record.id;
    say(&format!(
        "✅ Center {center} sealed a report in the vault and anchored {id} -> {} in block {}",
        created.record.cid, created.receipt.block_number
    ));

    let mut reads = Vec::new();
    read(app, &doctor_actor, id, &mut reads, say).await?;
    let grant = App::grant_action(patient, doctor, None);
    let consent = app.consent(&p_w, &grant).await?;
    app.grant_access(&patient_actor, doctor, None, &consent)
        .await?;
    say(&format!(
        "✅ Patient {patient} granted doctor {doctor} access (signed by the patient's wallet)"
    ));
    read(app, &doctor_actor, id, &mut reads, say).await?;
    let revoke = App::revoke_action(patient, doctor);
    let consent = app.consent(&p_w, &revoke).await?;
    app.revoke_access(&patient_actor, doctor, &consent).await?;
    say(&format!(
        "✅ Patient {patient} revoked doctor {doctor}'s access"
    ));
    read(app, &doctor_actor, id, &mut reads, say).await?;

    app.cache().remove_profile(patient).await?;
    say(&format!(
        "🔄 Deleted the cache row of {patient}; syncing it from the chain"
    ));
    let resync = app.sync().sync_patient(patient, Stale::Report).await?;
    say(&format!("✅ sync patient {patient}: {resync:?}"));
    let applied = app.sync().sync().await?;
    say(&format!("✅ sync auto: {applied} step(s) to the head"));

    let drift = app.sync().verify_drift().await?;
    say(&format!(
        "✅ verify: {} drifted entities between the chain at block {} and the cache",
        drift.len(),
        drift.at.number
    ));
    let entries = match app.sync().anchor_access_log(1).await? {
        AnchorOutcome::Anchored {
            last_seq, digest, ..
        } => {
            say(&format!(
                "✅ Access log: {last_seq} entries intact, digest {digest} anchored on chain"
            ));
            last_seq
        }
        AnchorOutcome::TooFew { pending } => {
            return Err(Error::Conflict(format!(
                "only {pending} new access-log entries"
            )));
        }
        AnchorOutcome::Broken(audit) => {
            return Err(Error::Conflict(format!(
                "the access log is broken at entry {:?}",
                audit.first_broken
            )));
        }
    };
    say(RULE);
    say("✅ Demo completed successfully");
    Ok(StoryOutcome {
        record: id,
        doctor_reads: reads,
        resync,
        drift: drift.len() as u64,
        access_log_entries: entries,
    })
}

/// The seed guide's rule line.
pub const RULE: &str = "============================================================";

async fn read(
    app: &App,
    actor: &Actor,
    id: RecordId,
    reads: &mut Vec<(bool, u64)>,
    say: Say<'_>,
) -> Result<()> {
    let Actor::User { hh, .. } = actor else {
        return Ok(());
    };
    match app.read_record(actor, id).await {
        Ok(r) => {
            let bytes: Vec<Bytes> = r.content.map_err(Error::from).try_collect().await?;
            let n: u64 = bytes.iter().map(|b| b.len() as u64).sum();
            say(&format!(
                "✅ Doctor {hh} reads {id}: granted, {n} bytes verified (logged)"
            ));
            reads.push((true, n));
        }
        Err(Error::AccessDenied(_)) => {
            say(&format!("❌ Doctor {hh} reads {id}: denied (logged)"));
            reads.push((false, 0));
        }
        Err(e) => return Err(e),
    }
    Ok(())
}

fn patient_profile(hh: HhNumber, w: &LocalWallet) -> Result<PatientProfile> {
    Ok(PatientProfile {
        hh,
        wallet: w.wallet(),
        name: Name::new("Asha Rao")?,
        date_of_birth: DateOfBirth::new(
            chrono::NaiveDate::from_ymd_opt(1990, 4, 12)
                .ok_or_else(|| Error::NotFound("date".into()))?,
        )?,
        gender: Label::new("female")?,
        blood_group: "O+".parse()?,
        home_address: Line::new("12 MG Road, Bengaluru")?,
        email: Email::new("asha@example.org")?,
    })
}

fn doctor_profile(hh: HhNumber, w: &LocalWallet) -> Result<DoctorProfile> {
    Ok(DoctorProfile {
        hh,
        wallet: w.wallet(),
        name: Name::new("Dr. Vikram Sen")?,
        specialization: Label::new("haematology")?,
        hospital: Line::new("City Hospital")?,
        email: Email::new("vikram@example.org")?,
    })
}

fn center_profile(hh: HhNumber, w: &LocalWallet) -> Result<DiagnosticCenterProfile> {
    Ok(DiagnosticCenterProfile {
        hh,
        wallet: w.wallet(),
        name: Name::new("Metro Diagnostics")?,
        location: Line::new("4 Residency Road, Bengaluru")?,
        email: Email::new("lab@example.org")?,
    })
}
