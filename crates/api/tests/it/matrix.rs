//! The authorization matrix: every kind of caller against every facade
//! operation of [`App`], on the in-memory fakes (the rules live in the
//! facade, over any ports). Each cell runs in a fresh [`World`]; a refused
//! call must have written nothing, shown by a [`Snapshot`] of all three
//! ports (chain head, events, profiles, records, grants; cache rows,
//! notifications, extras, access log; vault objects and their status)
//! taken before and after it.

use healthledger_api::{Actor, App, ConsentSigner, Error, LocalWallet};
use healthledger_core::{HhNumber, RecordQuery, Role, VaultPort};

use crate::world::{
    self, CENTER, DOCTOR, DOCTOR_GRANTED, NEWCOMER, PATIENT, Snapshot, World, hh, hh_of,
};

/// Who calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    /// The operator (the app's registrar key).
    Op,
    /// A wallet that owns no HH number.
    App,
    /// Patient 555555, whose record and grants the operations target.
    Pat,
    /// Patient 555556.
    Oth,
    /// Doctor 112233, granted by 555555.
    DrG,
    /// Doctor 112234, never granted.
    Dr,
    /// Diagnostic center 444444, the record's creator.
    Ctr,
    /// Doctor 112235, granted by 555555, then suspended by the admin.
    Sus,
    /// Someone claiming to be patient 555555 with doctor 112234's wallet.
    Imp,
}

const WHO: [Who; 9] = [
    Who::Op,
    Who::App,
    Who::Pat,
    Who::Oth,
    Who::DrG,
    Who::Dr,
    Who::Ctr,
    Who::Sus,
    Who::Imp,
];

/// What a cell expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cell {
    /// Allowed: the call succeeds.
    A,
    /// `AccessDenied`, and nothing written anywhere.
    D,
    /// `AccessDenied`, and only the attempt logged: one denied entry in the
    /// access log, nothing else written.
    L,
    /// `NotFound`, nothing written: another user's notification looks like
    /// none at all.
    N,
    /// `AccessDenied`, and the sealed object the call was handed (and
    /// consumed) is shredded, so no orphan stays; nothing else written.
    S,
}
use Cell::{A, D, L, N, S};

/// A facade operation, each aimed at patient 555555's world: their record
/// (by center 444444), their grants, their notifications.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    /// `register_patient` of 600001 with the applicant's wallet.
    RegisterPatient,
    /// `register_doctor` of a new doctor.
    RegisterDoctor,
    /// `register_diagnostic_center` of a new center.
    RegisterCenter,
    /// `profile(Patient, 555555)`: takes no actor (profiles are public
    /// on chain).
    Profile,
    /// `seal_record` of a PDF for 555555.
    SealRecord,
    /// `commit_record` of a record center 444444 sealed, with the caller's
    /// consent.
    CommitRecord,
    /// `create_record` for 555555, consent by the caller's wallet.
    CreateRecord,
    /// `grant_access` to doctor 112234, consent by the caller's wallet.
    GrantAccess,
    /// `revoke_access` of doctor 112233, consent by the caller's wallet.
    RevokeAccess,
    /// `read_record` of the record.
    ReadRecord,
    /// `record_meta` of the record.
    RecordMeta,
    /// `erase_patient(555555)`.
    ErasePatient,
    /// `records_of_patient(555555)`.
    RecordsOfPatient,
    /// `reports_of(444444)`.
    ReportsOf,
    /// `patients_of_doctor(112233)`.
    PatientsOfDoctor,
    /// `grants_of_patient(555555)`.
    GrantsOfPatient,
    /// `record_access_log` of the record.
    RecordAccessLog,
    /// `notifications` (the caller's own).
    Notifications,
    /// `mark_notification_read` of one of 555555's notifications.
    MarkNotificationRead,
    /// `search_records` of 555555's records.
    SearchRecords,
    /// `search_patients("Asha")`.
    SearchPatients,
}

/// The matrix. A suspended doctor keeps reading what it was granted (the
/// chain's rule: suspension stops new records and new grants); a center
/// reads the records it created but lists a patient's records only with a
/// grant.
#[rustfmt::skip]
const MATRIX: &[(Op, [Cell; 9])] = &[
    //                          Op App Pat Oth DrG Dr Ctr Sus Imp
    (Op::RegisterPatient,      [A, A,  D,  D,  D,  D, D,  D,  D]),
    (Op::RegisterDoctor,       [A, D,  D,  D,  D,  D, D,  D,  D]),
    (Op::RegisterCenter,       [A, D,  D,  D,  D,  D, D,  D,  D]),
    (Op::Profile,              [A, A,  A,  A,  A,  A, A,  A,  A]),
    (Op::SealRecord,           [D, D,  D,  D,  A,  A, A,  D,  D]),
    (Op::CommitRecord,         [S, S,  S,  S,  S,  S, A,  S,  S]),
    (Op::CreateRecord,         [D, D,  D,  D,  A,  A, A,  D,  D]),
    (Op::GrantAccess,          [D, D,  A,  A,  D,  D, D,  D,  D]),
    (Op::RevokeAccess,         [D, D,  A,  A,  D,  D, D,  D,  D]),
    (Op::ReadRecord,           [D, D,  A,  L,  A,  L, A,  A,  D]),
    (Op::RecordMeta,           [D, D,  A,  L,  A,  L, A,  A,  D]),
    (Op::ErasePatient,         [A, D,  A,  D,  D,  D, D,  D,  D]),
    (Op::RecordsOfPatient,     [D, D,  A,  D,  A,  D, D,  A,  D]),
    (Op::ReportsOf,            [D, D,  D,  D,  D,  D, A,  D,  D]),
    (Op::PatientsOfDoctor,     [D, D,  D,  D,  A,  D, D,  D,  D]),
    (Op::GrantsOfPatient,      [D, D,  A,  D,  D,  D, D,  D,  D]),
    (Op::RecordAccessLog,      [D, D,  A,  D,  D,  D, D,  D,  D]),
    (Op::Notifications,        [D, D,  A,  A,  A,  A, A,  A,  D]),
    (Op::MarkNotificationRead, [D, D,  A,  N,  N,  N, N,  N,  D]),
    (Op::SearchRecords,        [D, D,  A,  D,  A,  A, A,  A,  D]),
    (Op::SearchPatients,       [D, D,  D,  D,  A,  A, A,  A,  D]),
];

/// The actor and the wallet that signs for `who`.
fn caller(w: &World, who: Who) -> (Actor, &LocalWallet) {
    match who {
        Who::Op => (Actor::Operator, &w.operator),
        Who::App => (
            Actor::Applicant {
                wallet: w.applicant.wallet(),
            },
            &w.applicant,
        ),
        Who::Pat => (w.patient.actor, &w.patient.wallet),
        Who::Oth => (w.other_patient.actor, &w.other_patient.wallet),
        Who::DrG => (w.doctor_granted.actor, &w.doctor_granted.wallet),
        Who::Dr => (w.doctor.actor, &w.doctor.wallet),
        Who::Ctr => (w.center.actor, &w.center.wallet),
        Who::Sus => (w.suspended.actor, &w.suspended.wallet),
        Who::Imp => (
            Actor::user(hh(PATIENT), Role::Patient, w.doctor.wallet.wallet()),
            &w.doctor.wallet,
        ),
    }
}

/// The HH number `actor` claims, or patient 555555 for the operator and the
/// applicant (whose consent then claims to speak for 555555).
fn claimed(actor: &Actor) -> HhNumber {
    match actor {
        Actor::User { hh, .. } => *hh,
        _ => hh(PATIENT),
    }
}

/// Runs `op` as `who`. `sealed` is the record center 444444 sealed for
/// [`Op::CommitRecord`], made before the snapshot.
async fn run(
    w: &World,
    op: Op,
    who: Who,
    sealed: Option<healthledger_api::SealedRecord>,
) -> Result<(), Error> {
    let (actor, signer) = caller(w, who);
    let app = &w.app;
    let id = w.record.id;
    match op {
        Op::RegisterPatient => {
            let p = world::patient_profile(NEWCOMER, &w.applicant, "New Comer");
            app.register_patient(&actor, p).await.map(drop)
        }
        Op::RegisterDoctor => {
            let p = world::doctor_profile(223_344, &LocalWallet::random(), "Dr. New");
            app.register_doctor(&actor, p).await.map(drop)
        }
        Op::RegisterCenter => {
            let p = world::center_profile(445_566, &LocalWallet::random(), "New Labs");
            app.register_diagnostic_center(&actor, p).await.map(drop)
        }
        Op::Profile => app.profile(Role::Patient, hh(PATIENT)).await.map(drop),
        Op::SealRecord => app
            .seal_record(&actor, hh(PATIENT), world::pdf(), world::draft())
            .await
            .map(drop),
        Op::CommitRecord => {
            let sealed = sealed.expect("sealed before the snapshot");
            let consent = app.consent(signer, &sealed.action()).await?;
            app.commit_record(&actor, sealed, &consent).await.map(drop)
        }
        Op::CreateRecord => app
            .create_record(&actor, hh(PATIENT), world::pdf(), world::draft(), signer)
            .await
            .map(drop),
        Op::GrantAccess => {
            let action = App::grant_action(claimed(&actor), hh(DOCTOR), None);
            let consent = app.consent(signer, &action).await?;
            app.grant_access(&actor, hh(DOCTOR), None, &consent)
                .await
                .map(drop)
        }
        Op::RevokeAccess => {
            let action = App::revoke_action(claimed(&actor), hh(DOCTOR_GRANTED));
            let consent = app.consent(signer, &action).await?;
            app.revoke_access(&actor, hh(DOCTOR_GRANTED), &consent)
                .await
                .map(drop)
        }
        Op::ReadRecord => app.read_record(&actor, id).await.map(drop),
        Op::RecordMeta => app.record_meta(&actor, id).await.map(drop),
        Op::ErasePatient => app.erase_patient(&actor, hh(PATIENT)).await.map(drop),
        Op::RecordsOfPatient => app.records_of_patient(&actor, hh(PATIENT)).await.map(drop),
        Op::ReportsOf => app.reports_of(&actor, hh(CENTER)).await.map(drop),
        Op::PatientsOfDoctor => app
            .patients_of_doctor(&actor, hh(DOCTOR_GRANTED))
            .await
            .map(drop),
        Op::GrantsOfPatient => app.grants_of_patient(&actor, hh(PATIENT)).await.map(drop),
        Op::RecordAccessLog => app.record_access_log(&actor, id).await.map(drop),
        Op::Notifications => app.notifications(&actor, false).await.map(drop),
        Op::MarkNotificationRead => {
            let theirs = w.patient_notification().await;
            app.mark_notification_read(&actor, theirs).await
        }
        Op::SearchRecords => {
            let q = RecordQuery {
                patient: Some(hh(PATIENT)),
                limit: 10,
                ..RecordQuery::default()
            };
            app.search_records(&actor, q).await.map(drop)
        }
        Op::SearchPatients => app.search_patients(&actor, "Asha", 10).await.map(drop),
    }
}

impl World {
    /// The id of one of patient 555555's notifications.
    async fn patient_notification(&self) -> u64 {
        use healthledger_core::CachePort as _;
        self.cache
            .inner()
            .notifications(hh(PATIENT), false)
            .await
            .unwrap()[0]
            .id
    }
}

/// Checks one cell; a mismatch is described, not panicked on, so that the
/// test reports every wrong cell at once.
async fn check(op: Op, who: Who, cell: Cell) -> Option<String> {
    let w = World::new().await;
    let sealed = if op == Op::CommitRecord {
        Some(
            w.app
                .seal_record(&w.center.actor, hh(PATIENT), world::pdf(), world::draft())
                .await
                .unwrap(),
        )
    } else {
        None
    };
    let sealed_cid = sealed.as_ref().map(|s| s.record().cid);
    let before = w.snapshot().await;
    let r = run(&w, op, who, sealed).await;
    let after = w.snapshot().await;
    let kind_ok = matches!(
        (cell, &r),
        (A, Ok(())) | (D | L | S, Err(Error::AccessDenied(_))) | (N, Err(Error::NotFound(_)))
    );
    if !kind_ok {
        return Some(format!("{op:?} as {who:?}: expected {cell:?}, got {r:?}"));
    }
    let expected = match cell {
        A => return None,
        D | N => before,
        L => logged_denial(&w, who, before, &after),
        S => {
            let cid = sealed_cid.expect("a sealed record");
            let status = w.vault.inner().verify(&cid).await.unwrap();
            if status != healthledger_core::ObjectStatus::Shredded {
                return Some(format!(
                    "{op:?} as {who:?}: the consumed sealed object is {status:?}"
                ));
            }
            let mut e = before;
            e.vault.retain(|(c, _)| *c != cid);
            e
        }
    };
    let wrote = expected.differences(&after);
    (!wrote.is_empty()).then(|| {
        format!(
            "{op:?} as {who:?}: refused but wrote\n  {}",
            wrote.join("\n  ")
        )
    })
}

/// What `before` becomes when the only write is one denied access-log
/// entry of `who` about the record (or `before` itself, which then fails
/// the comparison, when the log holds anything else).
fn logged_denial(w: &World, who: Who, before: Snapshot, after: &Snapshot) -> Snapshot {
    let (actor, _) = caller(w, who);
    let mut e = before;
    if let Some(last) = after.access_log.last()
        && after.access_log.len() == e.access_log.len() + 1
        && !last.entry.allowed
        && last.entry.actor == claimed(&actor)
        && last.entry.record == Some(w.record.id)
    {
        e.access_log.push(last.clone());
        e.cache_counts.access_log += 1;
    }
    e
}

#[tokio::test]
async fn every_caller_against_every_operation() {
    assert_eq!(MATRIX.len(), 21, "one row per facade operation");
    let mut wrong = Vec::new();
    for &(op, cells) in MATRIX {
        for (who, cell) in WHO.into_iter().zip(cells) {
            if let Some(m) = check(op, who, cell).await {
                wrong.push(m);
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "{} wrong cells:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}

#[tokio::test]
async fn allowed_listings_show_only_what_the_caller_may_see() {
    let w = World::new().await;
    let q = RecordQuery {
        patient: Some(hh(PATIENT)),
        limit: 10,
        ..RecordQuery::default()
    };
    let id = w.record.id;
    for (who, sees) in [
        (Who::Pat, vec![id]),
        (Who::DrG, vec![id]),
        (Who::Ctr, vec![id]),
        (Who::Sus, vec![id]),
        (Who::Dr, vec![]),
    ] {
        let (actor, _) = caller(&w, who);
        let hits = w.app.search_records(&actor, q.clone()).await.unwrap();
        let ids: Vec<_> = hits.iter().map(|r| r.id).collect();
        assert_eq!(ids, sees, "{who:?} searches 555555's records");
    }
    // A patient's unscoped search is their own records, never another's.
    let (actor, _) = caller(&w, Who::Oth);
    let all = RecordQuery {
        limit: 10,
        ..RecordQuery::default()
    };
    assert!(w.app.search_records(&actor, all).await.unwrap().is_empty());
    // Notifications are the caller's own.
    for u in w.users() {
        for n in w.app.notifications(&u.actor, false).await.unwrap() {
            assert_eq!(n.body.user, hh_of(u));
        }
    }
    assert_eq!(
        w.app
            .reports_of(&w.center.actor, hh(CENTER))
            .await
            .unwrap()
            .len(),
        1
    );
    // The vault holds just the one record's object.
    assert_eq!(w.vault.objects(None, 10).await.unwrap().len(), 1);
}
