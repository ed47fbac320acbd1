//! A cast of users on the in-memory fakes, each port wrapped in
//! [`Faulty`] so a test can make one call fail, and a [`Snapshot`] of
//! everything the three ports hold, to show that a refused call wrote
//! nothing.
//!
//! Everyone is registered through the facade by the operator; patient
//! 555555 granted doctor 112233 and the (later suspended) doctor 112235,
//! patient 555556 granted doctor 112233 too; diagnostic center 444444
//! created one record of 555555; the cache is synced to the head.

use std::sync::Arc;

use bytes::Bytes;
use futures::{StreamExt as _, stream};
use healthledger_api::{Actor, App, ConsentSigner, LocalWallet, RecordDraft};
use healthledger_core::{
    AccessGrant, AccessLogEntry, ByteStream, CacheCounts, CachePort, Cid, ContentType,
    DiagnosticCenterProfile, DoctorProfile, HhNumber, Label, LedgerPort, MedicalRecord, Name,
    Notification, ObjectStatus, PatientProfile, Profile, ProfileExtras, ReadAt, Role, VaultPort,
    testing::{InMemoryCache, InMemoryLedger, InMemoryVault, fixtures},
};

use crate::faulty::Faulty;

pub(crate) const PATIENT: u32 = 555_555;
pub(crate) const OTHER_PATIENT: u32 = 555_556;
pub(crate) const DOCTOR_GRANTED: u32 = 112_233;
pub(crate) const DOCTOR: u32 = 112_234;
pub(crate) const SUSPENDED: u32 = 112_235;
pub(crate) const CENTER: u32 = 444_444;
/// The HH number the applicant asks for.
pub(crate) const NEWCOMER: u32 = 600_001;

pub(crate) fn hh(n: u32) -> HhNumber {
    HhNumber::new(n).unwrap()
}

/// A small PDF.
pub(crate) fn pdf() -> ByteStream {
    stream::iter([Ok(Bytes::from_static(
        b"%PDF-1.7\nresult: negative\n%%EOF\n",
    ))])
    .boxed()
}

pub(crate) fn draft() -> RecordDraft {
    RecordDraft {
        test_name: Name::new("Lipid panel").unwrap(),
        record_type: Label::new("lab-result").unwrap(),
        date: fixtures::date(2026, 11, 30),
        content_type: ContentType::new("application/pdf").unwrap(),
    }
}

pub(crate) fn patient_profile(n: u32, wallet: &LocalWallet, name: &str) -> PatientProfile {
    match fixtures::patient(n, wallet.wallet(), name) {
        Profile::Patient(p) => p,
        _ => unreachable!(),
    }
}

pub(crate) fn doctor_profile(n: u32, wallet: &LocalWallet, name: &str) -> DoctorProfile {
    match fixtures::doctor(n, wallet.wallet(), name) {
        Profile::Doctor(p) => p,
        _ => unreachable!(),
    }
}

pub(crate) fn center_profile(n: u32, wallet: &LocalWallet, name: &str) -> DiagnosticCenterProfile {
    match fixtures::diagnostic_center(n, wallet.wallet(), name) {
        Profile::DiagnosticCenter(p) => p,
        _ => unreachable!(),
    }
}

/// A user: who they say they are, and the wallet that signs for them.
pub(crate) struct User {
    pub(crate) actor: Actor,
    pub(crate) wallet: LocalWallet,
}

pub(crate) struct World {
    pub(crate) app: App,
    pub(crate) ledger: Arc<Faulty<InMemoryLedger>>,
    pub(crate) cache: Arc<Faulty<InMemoryCache>>,
    pub(crate) vault: Arc<Faulty<InMemoryVault>>,
    /// The app's key: the chain's admin and a registrar.
    pub(crate) operator: LocalWallet,
    /// A wallet that owns no HH number.
    pub(crate) applicant: LocalWallet,
    pub(crate) patient: User,
    pub(crate) other_patient: User,
    pub(crate) doctor_granted: User,
    pub(crate) doctor: User,
    pub(crate) suspended: User,
    pub(crate) center: User,
    /// The record center 444444 created for patient 555555.
    pub(crate) record: MedicalRecord,
}

impl World {
    pub(crate) async fn new() -> Self {
        let operator = LocalWallet::random();
        let ledger = Arc::new(Faulty::new(InMemoryLedger::new(operator.wallet())));
        let cache = Arc::new(Faulty::new(InMemoryCache::new()));
        let vault = Arc::new(Faulty::new(InMemoryVault::new()));
        let app = App::builder()
            .ledger(ledger.clone())
            .cache(cache.clone())
            .vault(vault.clone())
            .build()
            .unwrap();
        let op = Actor::Operator;
        let user = |n: u32, role: Role| {
            let wallet = LocalWallet::random();
            User {
                actor: Actor::user(hh(n), role, wallet.wallet()),
                wallet,
            }
        };
        let patient = user(PATIENT, Role::Patient);
        let other_patient = user(OTHER_PATIENT, Role::Patient);
        let doctor_granted = user(DOCTOR_GRANTED, Role::Doctor);
        let doctor = user(DOCTOR, Role::Doctor);
        let suspended = user(SUSPENDED, Role::Doctor);
        let center = user(CENTER, Role::DiagnosticCenter);
        for (u, name) in [(&patient, "Asha Rao"), (&other_patient, "Ravi Kumar")] {
            let n = hh_of(u).get();
            app.register_patient(&op, patient_profile(n, &u.wallet, name))
                .await
                .unwrap();
        }
        for (u, name) in [
            (&doctor_granted, "Dr. Sen"),
            (&doctor, "Dr. Iyer"),
            (&suspended, "Dr. Das"),
        ] {
            let n = hh_of(u).get();
            app.register_doctor(&op, doctor_profile(n, &u.wallet, name))
                .await
                .unwrap();
        }
        app.register_diagnostic_center(&op, center_profile(CENTER, &center.wallet, "Metro Labs"))
            .await
            .unwrap();
        for (p, grantee) in [
            (&patient, DOCTOR_GRANTED),
            (&other_patient, DOCTOR_GRANTED),
            (&patient, SUSPENDED),
        ] {
            grant(&app, p, hh(grantee), None).await.unwrap();
        }
        ledger
            .inner()
            .suspend_provider(hh(SUSPENDED))
            .await
            .unwrap();
        let record = app
            .create_record(&center.actor, hh(PATIENT), pdf(), draft(), &center.wallet)
            .await
            .unwrap()
            .record;
        app.sync().sync().await.unwrap();
        Self {
            app,
            ledger,
            cache,
            vault,
            operator,
            applicant: LocalWallet::random(),
            patient,
            other_patient,
            doctor_granted,
            doctor,
            suspended,
            center,
            record,
        }
    }

    /// Every registered user.
    pub(crate) fn users(&self) -> [&User; 6] {
        [
            &self.patient,
            &self.other_patient,
            &self.doctor_granted,
            &self.doctor,
            &self.suspended,
            &self.center,
        ]
    }

    /// What the three ports hold now, read past the fault wrappers.
    pub(crate) async fn snapshot(&self) -> Snapshot {
        let l = self.ledger.inner();
        let c = self.cache.inner();
        let v = self.vault.inner();
        let head = l.head().await.unwrap().number;
        let mut registered = Vec::new();
        for role in Role::ALL {
            registered.push(l.profiles(role, 0, 1_000, ReadAt::Latest).await.unwrap());
        }
        let mut hhs: Vec<HhNumber> = registered.iter().flatten().map(Profile::hh).collect();
        hhs.push(hh(NEWCOMER));
        let mut notifications = Vec::new();
        let mut extras = Vec::new();
        for &n in &hhs {
            notifications.push(c.notifications(n, false).await.unwrap());
            extras.push(c.extras(n).await.unwrap());
        }
        let grant_keys = c.grant_keys(None, 1_000).await.unwrap();
        let record_keys = c.record_keys(None, 1_000).await.unwrap();
        let mut vault = Vec::new();
        for o in v.objects(None, 1_000).await.unwrap() {
            vault.push((o.cid, v.verify(&o.cid).await.unwrap()));
        }
        Snapshot {
            head,
            ledger_events: l.events(0, head).await.unwrap().events.len(),
            registered,
            ledger_records: l.records(0, 1_000, ReadAt::Latest).await.unwrap(),
            ledger_grants: l.grants(0, 1_000, ReadAt::Latest).await.unwrap(),
            cache_counts: c.counts().await.unwrap(),
            cache_profiles: c.profiles_by_hh(&hhs).await.unwrap(),
            cache_records: c.records_by_id(&record_keys).await.unwrap(),
            cache_grants: c.grants_by_pair(&grant_keys).await.unwrap(),
            notifications,
            extras,
            access_log: c.access_log(None, 0, 1_000).await.unwrap(),
            vault,
        }
    }

    /// Runs sync to the head, then checks the cache equals the chain
    /// there, field by field.
    pub(crate) async fn assert_sync_repairs(&self) {
        self.app.sync().sync().await.unwrap();
        let drift = self.app.sync().verify_drift().await.unwrap();
        assert!(drift.is_clean(), "drift after sync: {drift:?}");
        let head = self.ledger.inner().head().await.unwrap();
        assert_eq!(
            self.cache
                .inner()
                .checkpoint()
                .await
                .unwrap()
                .map(|b| b.number),
            Some(head.number),
            "sync stopped short of the head"
        );
    }

    /// Asserts that nothing changed since `before`, naming what did.
    pub(crate) async fn assert_unchanged(&self, before: &Snapshot) {
        let wrote = before.differences(&self.snapshot().await);
        assert!(wrote.is_empty(), "wrote:\n  {}", wrote.join("\n  "));
    }

    /// That `cid` is shredded, unlisted, and opens for no one.
    pub(crate) async fn assert_unreadable(&self, patient: HhNumber, cid: &Cid) {
        let v = self.vault.inner();
        assert_eq!(v.verify(cid).await.unwrap(), ObjectStatus::Shredded);
        assert!(v.get(patient, cid).await.is_err(), "{cid} still opens");
        assert!(
            !v.objects(None, 1_000)
                .await
                .unwrap()
                .iter()
                .any(|o| o.cid == *cid),
            "{cid} is still listed"
        );
    }
}

pub(crate) fn hh_of(u: &User) -> HhNumber {
    match u.actor {
        Actor::User { hh, .. } => hh,
        _ => unreachable!(),
    }
}

/// `patient` grants `grantee` with their own wallet's consent.
pub(crate) async fn grant(
    app: &App,
    patient: &User,
    grantee: HhNumber,
    expires_at: Option<healthledger_core::Timestamp>,
) -> healthledger_api::Result<healthledger_api::AccessChange> {
    let action = App::grant_action(hh_of(patient), grantee, expires_at);
    let consent = app.consent(&patient.wallet, &action).await?;
    app.grant_access(&patient.actor, grantee, expires_at, &consent)
        .await
}

/// `patient` revokes `grantee` with their own wallet's consent.
pub(crate) async fn revoke(
    app: &App,
    patient: &User,
    grantee: HhNumber,
) -> healthledger_api::Result<healthledger_api::AccessChange> {
    let action = App::revoke_action(hh_of(patient), grantee);
    let consent = app.consent(&patient.wallet, &action).await?;
    app.revoke_access(&patient.actor, grantee, &consent).await
}

/// Everything the ledger, the cache and the vault hold.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Snapshot {
    pub(crate) head: u64,
    pub(crate) ledger_events: usize,
    pub(crate) registered: Vec<Vec<Profile>>,
    pub(crate) ledger_records: Vec<MedicalRecord>,
    pub(crate) ledger_grants: Vec<AccessGrant>,
    pub(crate) cache_counts: CacheCounts,
    pub(crate) cache_profiles: Vec<Profile>,
    pub(crate) cache_records: Vec<MedicalRecord>,
    pub(crate) cache_grants: Vec<AccessGrant>,
    pub(crate) notifications: Vec<Vec<Notification>>,
    pub(crate) extras: Vec<Option<ProfileExtras>>,
    pub(crate) access_log: Vec<AccessLogEntry>,
    pub(crate) vault: Vec<(Cid, ObjectStatus)>,
}

impl Snapshot {
    /// The parts that differ from `other`, by name, with both values.
    pub(crate) fn differences(&self, other: &Self) -> Vec<String> {
        let mut out = Vec::new();
        macro_rules! field {
            ($($f:ident),*) => {$(
                if self.$f != other.$f {
                    out.push(format!(
                        "{}: {:?} -> {:?}",
                        stringify!($f),
                        self.$f,
                        other.$f
                    ));
                }
            )*};
        }
        field!(
            head,
            ledger_events,
            registered,
            ledger_records,
            ledger_grants,
            cache_counts,
            cache_profiles,
            cache_records,
            cache_grants,
            notifications,
            extras,
            access_log,
            vault
        );
        out
    }
}
