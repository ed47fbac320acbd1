//! What the sync tests share: a script of chain operations that works on
//! any ledger (a registrar signer relaying the owners' signed consent), and
//! an independent reference projection of the canonical chain to compare
//! the cache with.

use std::collections::{BTreeMap, BTreeSet};

use healthledger_core::{
    AccessGrant, AuditAnchor, B256, CachePort, ConsentAction, HhNumber, LedgerEvent, LedgerPort,
    MedicalRecord, Name, Profile, ReadAt, RecordId, Role, Timestamp,
    testing::{
        fixtures::{self, TestWallet, date},
        ledger::consent,
    },
};

/// One chain operation of a script.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    /// Register a patient.
    Patient,
    /// Register a doctor.
    Doctor,
    /// Register a diagnostic center.
    Center,
    /// A provider creates a record for a patient (indexes taken modulo the
    /// registered ones).
    Record(usize, usize),
    /// A patient grants a provider access, maybe with an expiry.
    Grant(usize, usize, bool),
    /// A patient revokes a provider's grant (if active).
    Revoke(usize, usize),
    /// A patient renames themselves.
    Update(usize),
    /// The registrar anchors an access-log digest.
    Anchor,
}

/// Drives a ledger through operations, remembering what it registered.
#[derive(Debug)]
pub(crate) struct Script {
    base: u32,
    next: u32,
    pub(crate) patients: Vec<(Profile, TestWallet)>,
    pub(crate) providers: Vec<(Profile, TestWallet)>,
    serial: u64,
    anchors: u64,
}

impl Script {
    /// A script whose HH numbers start at `base`.
    pub(crate) fn new(base: u32) -> Self {
        Self {
            base,
            next: 0,
            patients: Vec::new(),
            providers: Vec::new(),
            serial: 0,
            anchors: 0,
        }
    }

    fn fresh(&mut self) -> (u32, TestWallet) {
        let hh = self.base + self.next;
        self.next += 1;
        (hh, TestWallet::from_seed(u64::from(hh) * 7919))
    }

    /// Carries out `op`; operations that do not apply yet (no patient to
    /// create a record for, no grant to revoke) do nothing. Returns whether
    /// a transaction was sent.
    pub(crate) async fn run(&mut self, l: &dyn LedgerPort, op: Op) -> bool {
        match op {
            Op::Patient | Op::Doctor | Op::Center => {
                let (hh, w) = self.fresh();
                let p = match op {
                    Op::Patient => fixtures::patient(hh, w.address(), "Script Patient"),
                    Op::Doctor => fixtures::doctor(hh, w.address(), "Dr. Script"),
                    _ => fixtures::diagnostic_center(hh, w.address(), "Script Labs"),
                };
                l.register(&p).await.expect("register");
                if op == Op::Patient {
                    self.patients.push((p, w));
                } else {
                    self.providers.push((p, w));
                }
                true
            }
            Op::Record(pi, ci) => {
                let (Some((p, _)), Some((c, cw))) =
                    (pick(&self.patients, pi), pick(&self.providers, ci))
                else {
                    return false;
                };
                self.serial += 1;
                let new = fixtures::record(
                    p.hh().get(),
                    self.serial,
                    c.hh().get(),
                    "Blood Panel",
                    "lab",
                    date(2026, 1, 1 + (self.serial % 28) as u32),
                );
                let auth = consent(l, cw, &ConsentAction::CreateRecord(new.clone())).await;
                l.create_record(&new, &auth).await.expect("create record");
                true
            }
            Op::Grant(pi, ci, expiring) => {
                let (Some((p, pw)), Some((c, _))) =
                    (pick(&self.patients, pi), pick(&self.providers, ci))
                else {
                    return false;
                };
                let expires_at = expiring.then_some(Timestamp(4_000_000_000));
                let action = ConsentAction::GrantAccess {
                    patient: p.hh(),
                    grantee: c.hh(),
                    expires_at,
                };
                let auth = consent(l, pw, &action).await;
                l.grant_access(p.hh(), c.hh(), expires_at, &auth)
                    .await
                    .expect("grant");
                true
            }
            Op::Revoke(pi, ci) => {
                let (Some((p, pw)), Some((c, _))) =
                    (pick(&self.patients, pi), pick(&self.providers, ci))
                else {
                    return false;
                };
                if !l
                    .has_access(p.hh(), c.hh(), ReadAt::Latest)
                    .await
                    .expect("has access")
                {
                    return false;
                }
                let action = ConsentAction::RevokeAccess {
                    patient: p.hh(),
                    grantee: c.hh(),
                };
                let auth = consent(l, pw, &action).await;
                l.revoke_access(p.hh(), c.hh(), &auth)
                    .await
                    .expect("revoke");
                true
            }
            Op::Update(pi) => {
                let Some((Profile::Patient(p), pw)) = pick(&self.patients, pi).cloned() else {
                    return false;
                };
                // The chain may hold a newer version than the script's copy.
                let Some(Profile::Patient(mut now)) = l
                    .profile(p.hh, Role::Patient, ReadAt::Latest)
                    .await
                    .expect("profile")
                else {
                    return false;
                };
                now.name = Name::new(format!("Renamed {}", self.serial + u64::from(self.next)))
                    .expect("name");
                self.serial += 1;
                let updated = Profile::Patient(now);
                let auth = consent(l, &pw, &ConsentAction::UpdateProfile(updated.clone())).await;
                l.update_profile(&updated, &auth).await.expect("update");
                true
            }
            Op::Anchor => {
                self.anchors += 1;
                let last = l
                    .latest_audit_anchor(ReadAt::Latest)
                    .await
                    .expect("anchor")
                    .map_or(0, |a| a.last_seq);
                l.anchor_audit(B256::repeat_byte(self.anchors as u8), last + 1)
                    .await
                    .expect("anchor");
                true
            }
        }
    }
}

fn pick<T>(v: &[T], i: usize) -> Option<&T> {
    (!v.is_empty()).then(|| &v[i % v.len()])
}

/// The canonical chain's state, folded from its events with the simplest
/// code that could work (apart from the engine and the caches).
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Projection {
    pub(crate) profiles: BTreeMap<HhNumber, Profile>,
    pub(crate) records: BTreeMap<RecordId, MedicalRecord>,
    pub(crate) grants: BTreeMap<(HhNumber, HhNumber), AccessGrant>,
    pub(crate) anchor: Option<AuditAnchor>,
}

/// Folds every event from the deployment block to the head.
pub(crate) async fn project(l: &dyn LedgerPort) -> Projection {
    let head = l.head().await.expect("head").number;
    let batch = l.events(l.deployment_block(), head).await.expect("events");
    let mut p = Projection::default();
    for e in batch.events {
        if let Some(profile) = e.event.registered_profile() {
            p.profiles.insert(profile.hh(), profile);
            continue;
        }
        match e.event {
            LedgerEvent::ProfileUpdated(profile) => {
                p.profiles.insert(profile.hh(), profile);
            }
            LedgerEvent::RecordCreated(r) => {
                p.records.insert(r.id, r);
            }
            LedgerEvent::AccessGranted(g) => {
                p.grants.insert((g.patient, g.grantee), g);
            }
            LedgerEvent::AccessRevoked {
                patient,
                grantee,
                revoked_at,
            } => {
                if let Some(g) = p.grants.get_mut(&(patient, grantee)) {
                    g.revoked_at = Some(revoked_at);
                }
            }
            LedgerEvent::AuditAnchored(a) => p.anchor = Some(a),
            _ => {}
        }
    }
    p
}

/// Panics unless the cache holds exactly the projection of the chain and
/// its checkpoint is the chain's head.
pub(crate) async fn assert_cache_matches(cache: &dyn CachePort, l: &dyn LedgerPort) {
    let proj = project(l).await;
    for (hh, p) in &proj.profiles {
        assert_eq!(
            cache.profile(*hh).await.expect("profile").as_ref(),
            Some(p),
            "profile {hh}"
        );
    }
    for (id, r) in &proj.records {
        assert_eq!(
            cache.record(*id).await.expect("record").as_ref(),
            Some(r),
            "record {id}"
        );
    }
    let patients: BTreeSet<HhNumber> = proj
        .profiles
        .values()
        .filter(|p| p.role() == Role::Patient)
        .map(|p| p.hh())
        .collect();
    for patient in &patients {
        let mut cached = cache.grants_of_patient(*patient).await.expect("grants");
        cached.sort_by_key(|g| g.grantee);
        let expected: Vec<AccessGrant> = proj
            .grants
            .values()
            .filter(|g| g.patient == *patient)
            .cloned()
            .collect();
        assert_eq!(cached, expected, "grants of {patient}");
    }
    let counts = cache.counts().await.expect("counts");
    let by_role = |r: Role| proj.profiles.values().filter(|p| p.role() == r).count() as u64;
    assert_eq!(
        (
            counts.patients,
            counts.doctors,
            counts.diagnostic_centers,
            counts.records,
            counts.grants
        ),
        (
            by_role(Role::Patient),
            by_role(Role::Doctor),
            by_role(Role::DiagnosticCenter),
            proj.records.len() as u64,
            proj.grants.len() as u64
        ),
        "row counts (no extra rows)"
    );
    assert_eq!(
        cache.latest_audit_anchor().await.expect("anchor"),
        proj.anchor,
        "audit anchor"
    );
    assert_eq!(
        cache.checkpoint().await.expect("checkpoint"),
        Some(l.head().await.expect("head")),
        "checkpoint at the head"
    );
}
