//! The [`LedgerPort`] conformance suite. Every function takes a ledger whose
//! signer is a registrar (the deployer) and uses its own range of HH numbers
//! and wallets, so [`all`] can run them one after another on one chain.
//!
//! Panics (via `assert!`) on the first divergence, naming the behaviour.

use alloy_primitives::B256;

use super::fixtures::{self, TestWallet, date};
use crate::{
    Authorization, ConsentAction, HhNumber, LedgerError, LedgerEvent, LedgerPort, Line, Name,
    Profile, RelayedSignature, Role, Timestamp,
};

/// Runs every ledger conformance test in turn.
pub async fn all(l: &dyn LedgerPort) {
    register_and_read(l).await;
    duplicate_registration_is_rejected(l).await;
    unknown_things_read_as_absent(l).await;
    profile_update_needs_owner_consent(l).await;
    records_need_creator_consent_and_unique_ids(l).await;
    grants_follow_patient_consent(l).await;
    events_replay_every_write_in_order(l).await;
    blocks_are_linked(l).await;
    audit_digests_are_anchored(l).await;
}

fn hh(n: u32) -> HhNumber {
    HhNumber::new(n).expect("valid test HH number")
}

/// A deadline an hour past the wall clock: ahead of any test chain's time.
fn deadline() -> Timestamp {
    Timestamp(Timestamp::now().0 + 3600)
}

/// Has `wallet` sign `action` for relaying.
pub async fn consent(
    l: &dyn LedgerPort,
    wallet: &TestWallet,
    action: &ConsentAction,
) -> Authorization {
    let deadline = deadline();
    let digest = l
        .signing_digest(action, deadline)
        .await
        .expect("signing digest");
    Authorization::Relayed(RelayedSignature {
        signature: wallet.sign(digest),
        deadline,
    })
}

/// Registers a patient, a doctor and a diagnostic center from base `base`
/// (HH numbers base, base+1, base+2; wallets seeded likewise).
pub async fn register_trio(l: &dyn LedgerPort, base: u32) -> [(Profile, TestWallet); 3] {
    let w = |i: u32| TestWallet::from_seed(u64::from(base + i));
    let trio = [
        (fixtures::patient(base, w(0).address(), "Asha Rao"), w(0)),
        (
            fixtures::doctor(base + 1, w(1).address(), "Dr. Vikram Sen"),
            w(1),
        ),
        (
            fixtures::diagnostic_center(base + 2, w(2).address(), "Metro Diagnostics"),
            w(2),
        ),
    ];
    for (p, _) in &trio {
        l.register(p).await.expect("registration");
    }
    trio
}

/// Registered profiles read back exactly, by HH and role, by wallet, and in
/// the enumeration; the receipt names a real block.
pub async fn register_and_read(l: &dyn LedgerPort) {
    let before = l.registered_count(Role::Patient).await.expect("count");
    let w = TestWallet::from_seed(110_000);
    let p = fixtures::patient(110_000, w.address(), "Meera Iyer");
    let receipt = l.register(&p).await.expect("register patient");
    let block = l
        .block(receipt.block_number)
        .await
        .expect("block")
        .expect("receipt block exists");
    assert_eq!(block.hash, receipt.block_hash, "receipt names its block");
    assert!(l.head().await.expect("head").number >= receipt.block_number);

    assert_eq!(
        l.profile(p.hh(), Role::Patient).await.expect("read"),
        Some(p.clone())
    );
    assert_eq!(
        l.profile(p.hh(), Role::Doctor).await.expect("read"),
        None,
        "role must match"
    );
    assert_eq!(
        l.account_of(w.address()).await.expect("account"),
        Some((Role::Patient, p.hh()))
    );
    assert_eq!(
        l.registered_count(Role::Patient).await.expect("count"),
        before + 1
    );
    let all = l
        .registered(Role::Patient, 0, before + 10)
        .await
        .expect("enumerate");
    assert_eq!(
        all.last(),
        Some(&p.hh()),
        "enumeration is in registration order"
    );
    assert_eq!(
        l.registered(Role::Patient, before, 1).await.expect("page"),
        vec![p.hh()]
    );

    let d = TestWallet::from_seed(110_001);
    let doc = fixtures::doctor(110_001, d.address(), "Dr. Kavya Nair");
    l.register(&doc).await.expect("register doctor");
    assert_eq!(
        l.profile(doc.hh(), Role::Doctor).await.expect("read"),
        Some(doc)
    );
    let c = TestWallet::from_seed(110_002);
    let center = fixtures::diagnostic_center(110_002, c.address(), "Apollo Labs");
    l.register(&center).await.expect("register center");
    assert_eq!(
        l.profile(center.hh(), Role::DiagnosticCenter)
            .await
            .expect("read"),
        Some(center)
    );
}

/// A second registration of an HH number or a wallet is `AlreadyExists` and
/// changes nothing.
pub async fn duplicate_registration_is_rejected(l: &dyn LedgerPort) {
    let w = TestWallet::from_seed(120_000);
    let p = fixtures::patient(120_000, w.address(), "Ravi Kumar");
    l.register(&p).await.expect("first registration");
    let count = l.registered_count(Role::Patient).await.expect("count");

    let err = l.register(&p).await.expect_err("same profile twice");
    assert!(
        matches!(err, LedgerError::AlreadyExists(_)),
        "duplicate HH: {err}"
    );
    let same_hh = fixtures::doctor(120_000, TestWallet::from_seed(120_009).address(), "Other");
    let err = l
        .register(&same_hh)
        .await
        .expect_err("HH number reused across roles");
    assert!(
        matches!(err, LedgerError::AlreadyExists(_)),
        "HH across roles: {err}"
    );
    let same_wallet = fixtures::patient(120_001, w.address(), "Ravi Again");
    let err = l.register(&same_wallet).await.expect_err("wallet reused");
    assert!(
        matches!(err, LedgerError::AlreadyExists(_)),
        "duplicate wallet: {err}"
    );

    assert_eq!(
        l.registered_count(Role::Patient).await.expect("count"),
        count
    );
    assert_eq!(
        l.profile(hh(120_001), Role::Patient).await.expect("read"),
        None
    );
}

/// Reads of things that do not exist are `None`/`false`, or `NotFound` where
/// the question presumes existence.
pub async fn unknown_things_read_as_absent(l: &dyn LedgerPort) {
    assert_eq!(
        l.profile(hh(130_000), Role::Patient).await.expect("read"),
        None
    );
    let stranger = TestWallet::from_seed(130_009).address();
    assert_eq!(l.account_of(stranger).await.expect("read"), None);
    let id = crate::RecordId::new(hh(130_000), 1);
    assert_eq!(l.record(id).await.expect("read"), None);
    assert_eq!(l.grant(hh(130_000), hh(130_001)).await.expect("read"), None);
    assert!(!l.has_access(hh(130_000), hh(130_001)).await.expect("read"));
    assert!(l.grantees(hh(130_000)).await.expect("read").is_empty());
    let err = l
        .can_read_record(id, hh(130_001))
        .await
        .expect_err("unknown record");
    assert!(matches!(err, LedgerError::NotFound(_)), "{err}");
    let err = l
        .grant_access(hh(130_000), hh(130_001), None, &Authorization::Signer)
        .await
        .expect_err("grant for unregistered patient");
    assert!(matches!(err, LedgerError::NotFound(_)), "{err}");
}

/// Only the owner (directly or by signature) updates a profile; signatures
/// work once, expire, and must come from the owner; wallets never change.
pub async fn profile_update_needs_owner_consent(l: &dyn LedgerPort) {
    let [(patient, pw), _, _] = register_trio(l, 140_000).await;
    let Profile::Patient(mut updated) = patient.clone() else {
        unreachable!("register_trio puts the patient first")
    };
    updated.home_address = Line::new("7 Hill View, Shimla").expect("line");
    updated.name = Name::new("Asha R. Rao").expect("name");
    let updated = Profile::Patient(updated);

    let err = l
        .update_profile(&updated, &Authorization::Signer)
        .await
        .expect_err("the registrar is not the owner");
    assert!(
        matches!(err, LedgerError::AccessDenied(_)),
        "registrar update: {err}"
    );

    let stranger = TestWallet::from_seed(140_099);
    let forged = consent(l, &stranger, &ConsentAction::UpdateProfile(updated.clone())).await;
    let err = l
        .update_profile(&updated, &forged)
        .await
        .expect_err("forged signature");
    assert!(matches!(err, LedgerError::AccessDenied(_)), "forged: {err}");

    let expired_digest = l
        .signing_digest(&ConsentAction::UpdateProfile(updated.clone()), Timestamp(1))
        .await
        .expect("digest");
    let expired = Authorization::Relayed(RelayedSignature {
        signature: pw.sign(expired_digest),
        deadline: Timestamp(1),
    });
    let err = l
        .update_profile(&updated, &expired)
        .await
        .expect_err("expired");
    assert!(
        matches!(err, LedgerError::Invalid(_)),
        "expired deadline: {err}"
    );
    assert_eq!(
        l.profile(patient.hh(), Role::Patient).await.expect("read"),
        Some(patient.clone())
    );

    let auth = consent(l, &pw, &ConsentAction::UpdateProfile(updated.clone())).await;
    l.update_profile(&updated, &auth)
        .await
        .expect("owner-signed update");
    assert_eq!(
        l.profile(patient.hh(), Role::Patient).await.expect("read"),
        Some(updated.clone())
    );
    let err = l.update_profile(&updated, &auth).await.expect_err("replay");
    assert!(
        matches!(err, LedgerError::AccessDenied(_)),
        "replayed signature: {err}"
    );

    let Profile::Patient(mut moved) = updated.clone() else {
        unreachable!()
    };
    moved.wallet = stranger.address();
    let moved = Profile::Patient(moved);
    let auth = consent(l, &pw, &ConsentAction::UpdateProfile(moved.clone())).await;
    let err = l
        .update_profile(&moved, &auth)
        .await
        .expect_err("wallet change");
    assert!(
        matches!(err, LedgerError::Invalid(_)),
        "wallet change: {err}"
    );

    let ghost = fixtures::patient(140_050, stranger.address(), "Nobody");
    let err = l
        .update_profile(&ghost, &Authorization::Signer)
        .await
        .expect_err("unregistered");
    assert!(
        matches!(err, LedgerError::NotFound(_)),
        "unregistered update: {err}"
    );
}

/// Records are created with the creator's consent by doctors and centers
/// only, for registered patients, with unique ids; patient and creator can
/// always read them.
pub async fn records_need_creator_consent_and_unique_ids(l: &dyn LedgerPort) {
    let [(patient, pw), (doctor, _), (center, cw)] = register_trio(l, 150_000).await;
    let count = l.record_count().await.expect("count");
    let new = fixtures::record(
        150_000,
        1_700_000_000_001,
        150_002,
        "Complete blood count",
        "lab-result",
        date(2026, 3, 1),
    );

    let err = l
        .create_record(&new, &Authorization::Signer)
        .await
        .expect_err("the registrar is not the creator");
    assert!(
        matches!(err, LedgerError::AccessDenied(_)),
        "registrar create: {err}"
    );
    let forged = consent(l, &pw, &ConsentAction::CreateRecord(new.clone())).await;
    let err = l
        .create_record(&new, &forged)
        .await
        .expect_err("signed by patient");
    assert!(
        matches!(err, LedgerError::AccessDenied(_)),
        "wrong signer: {err}"
    );

    let auth = consent(l, &cw, &ConsentAction::CreateRecord(new.clone())).await;
    let receipt = l.create_record(&new, &auth).await.expect("center creates");
    let rec = l
        .record(new.id)
        .await
        .expect("read")
        .expect("record exists");
    assert_eq!(
        (rec.id, rec.patient, rec.creator, rec.cid, &rec.meta),
        (new.id, patient.hh(), center.hh(), new.cid, &new.meta)
    );
    assert!(rec.created_at.0 > 0);
    assert!(receipt.block_number > 0);
    assert_eq!(l.record_count().await.expect("count"), count + 1);
    assert_eq!(l.record_ids(count, 10).await.expect("ids"), vec![new.id]);

    let auth = consent(l, &cw, &ConsentAction::CreateRecord(new.clone())).await;
    let err = l
        .create_record(&new, &auth)
        .await
        .expect_err("duplicate id");
    assert!(
        matches!(err, LedgerError::AlreadyExists(_)),
        "duplicate record: {err}"
    );

    let by_patient = fixtures::record(150_000, 2, 150_000, "Self test", "note", date(2026, 3, 2));
    let auth = consent(l, &pw, &ConsentAction::CreateRecord(by_patient.clone())).await;
    let err = l
        .create_record(&by_patient, &auth)
        .await
        .expect_err("patients cannot create");
    assert!(
        matches!(err, LedgerError::AccessDenied(_)),
        "patient as creator: {err}"
    );

    let orphan = fixtures::record(
        150_090,
        3,
        150_002,
        "X-ray chest",
        "x-ray",
        date(2026, 3, 3),
    );
    let auth = consent(l, &cw, &ConsentAction::CreateRecord(new.clone())).await;
    let err = l
        .create_record(&orphan, &auth)
        .await
        .expect_err("unknown patient");
    assert!(
        matches!(err, LedgerError::NotFound(_)),
        "unknown patient: {err}"
    );
    assert_eq!(
        l.record_count().await.expect("count"),
        count + 1,
        "failed writes change nothing"
    );

    assert!(l.can_read_record(new.id, patient.hh()).await.expect("read"));
    assert!(l.can_read_record(new.id, center.hh()).await.expect("read"));
    assert!(
        !l.can_read_record(new.id, doctor.hh()).await.expect("read"),
        "no grant yet"
    );
}

/// Access is the patient's to give: the registrar and strangers cannot
/// grant, signatures work once, revocation ends access, expiry is checked.
pub async fn grants_follow_patient_consent(l: &dyn LedgerPort) {
    let [(patient, pw), (doctor, dw), (center, cw)] = register_trio(l, 160_000).await;
    let (p, d) = (patient.hh(), doctor.hh());

    let err = l
        .grant_access(p, d, None, &Authorization::Signer)
        .await
        .expect_err("registrar grants");
    assert!(
        matches!(err, LedgerError::AccessDenied(_)),
        "registrar grant: {err}"
    );
    let action = ConsentAction::GrantAccess {
        patient: p,
        grantee: d,
        expires_at: None,
    };
    let forged = consent(l, &dw, &action).await;
    let err = l
        .grant_access(p, d, None, &forged)
        .await
        .expect_err("doctor signs own grant");
    assert!(
        matches!(err, LedgerError::AccessDenied(_)),
        "stranger grant: {err}"
    );
    assert!(!l.has_access(p, d).await.expect("read"));

    let auth = consent(l, &pw, &action).await;
    l.grant_access(p, d, None, &auth)
        .await
        .expect("patient grants");
    assert!(l.has_access(p, d).await.expect("read"));
    let grant = l.grant(p, d).await.expect("read").expect("grant exists");
    assert_eq!(
        (
            grant.patient,
            grant.grantee,
            grant.expires_at,
            grant.revoked_at
        ),
        (p, d, None, None)
    );
    assert!(grant.granted_at.0 > 0);
    assert_eq!(l.grantees(p).await.expect("read"), vec![d]);
    let err = l
        .grant_access(p, d, None, &auth)
        .await
        .expect_err("replayed grant");
    assert!(matches!(err, LedgerError::AccessDenied(_)), "replay: {err}");

    let rec = fixtures::record(160_000, 7, 160_002, "MRI brain", "mri", date(2026, 4, 1));
    let a = consent(l, &cw, &ConsentAction::CreateRecord(rec.clone())).await;
    l.create_record(&rec, &a).await.expect("record");
    assert!(
        l.can_read_record(rec.id, d).await.expect("read"),
        "granted doctor reads"
    );

    let past = ConsentAction::GrantAccess {
        patient: p,
        grantee: center.hh(),
        expires_at: Some(Timestamp(1)),
    };
    let a = consent(l, &pw, &past).await;
    let err = l
        .grant_access(p, center.hh(), Some(Timestamp(1)), &a)
        .await
        .expect_err("expiry in the past");
    assert!(matches!(err, LedgerError::Invalid(_)), "past expiry: {err}");

    let revoke = ConsentAction::RevokeAccess {
        patient: p,
        grantee: d,
    };
    let forged = consent(l, &dw, &revoke).await;
    let err = l
        .revoke_access(p, d, &forged)
        .await
        .expect_err("doctor revokes");
    assert!(
        matches!(err, LedgerError::AccessDenied(_)),
        "stranger revoke: {err}"
    );
    let a = consent(l, &pw, &revoke).await;
    l.revoke_access(p, d, &a).await.expect("patient revokes");
    assert!(!l.has_access(p, d).await.expect("read"));
    assert!(
        !l.can_read_record(rec.id, d).await.expect("read"),
        "revoked doctor cannot read"
    );
    assert!(
        l.grant(p, d)
            .await
            .expect("read")
            .expect("kept")
            .revoked_at
            .is_some()
    );
    let a = consent(l, &pw, &revoke).await;
    let err = l
        .revoke_access(p, d, &a)
        .await
        .expect_err("nothing to revoke");
    assert!(
        matches!(err, LedgerError::NotFound(_)),
        "double revoke: {err}"
    );

    let regrant = ConsentAction::GrantAccess {
        patient: p,
        grantee: d,
        expires_at: Some(deadline()),
    };
    let a = consent(l, &pw, &regrant).await;
    l.grant_access(p, d, Some(deadline()), &a)
        .await
        .expect("re-grant with expiry");
    assert!(l.has_access(p, d).await.expect("read"));
    assert_eq!(
        l.grantees(p).await.expect("read"),
        vec![d],
        "grantees listed once"
    );
}

/// `events` returns every write as a decoded event, in chain order, at
/// positions that match the blocks.
pub async fn events_replay_every_write_in_order(l: &dyn LedgerPort) {
    let start = l.head().await.expect("head").number + 1;
    let trio = register_trio(l, 170_000).await;
    let (patient, pw) = &trio[0];
    let (center, cw) = &trio[2];
    let rec = fixtures::record(
        170_000,
        9,
        170_002,
        "Lipid panel",
        "lab-result",
        date(2026, 5, 5),
    );
    let a = consent(l, cw, &ConsentAction::CreateRecord(rec.clone())).await;
    l.create_record(&rec, &a).await.expect("record");
    let action = ConsentAction::GrantAccess {
        patient: patient.hh(),
        grantee: center.hh(),
        expires_at: None,
    };
    let a = consent(l, pw, &action).await;
    l.grant_access(patient.hh(), center.hh(), None, &a)
        .await
        .expect("grant");
    let head = l.head().await.expect("head");

    let events = l.events(start, head.number).await.expect("events");
    let kinds: Vec<&LedgerEvent> = events.iter().map(|e| &e.event).collect();
    assert_eq!(
        kinds.len(),
        5,
        "three registrations, a record, a grant: {kinds:?}"
    );
    for (i, (p, _)) in trio.iter().enumerate() {
        assert_eq!(
            kinds[i],
            &LedgerEvent::registration(p.clone()),
            "registration {i}"
        );
    }
    match kinds[3] {
        LedgerEvent::RecordCreated(r) => {
            assert_eq!(
                (r.id, r.creator, r.cid, &r.meta),
                (rec.id, rec.creator, rec.cid, &rec.meta)
            );
        }
        other => panic!("expected RecordCreated, got {other:?}"),
    }
    match kinds[4] {
        LedgerEvent::AccessGranted(g) => {
            assert_eq!(
                (g.patient, g.grantee, g.expires_at),
                (patient.hh(), center.hh(), None)
            );
        }
        other => panic!("expected AccessGranted, got {other:?}"),
    }
    for pair in events.windows(2) {
        assert!(pair[0].at < pair[1].at, "events strictly ordered");
    }
    for e in &events {
        let b = l
            .block(e.at.block_number)
            .await
            .expect("block")
            .expect("exists");
        assert_eq!(
            b.hash, e.at.block_hash,
            "event block hash matches the chain"
        );
        assert_ne!(e.at.tx_hash, B256::ZERO);
    }
    assert_eq!(
        l.events(start, start + 1).await.expect("sub-range").len(),
        events
            .iter()
            .filter(|e| e.at.block_number <= start + 1)
            .count()
    );
    let err = l
        .events(head.number, start - 1)
        .await
        .expect_err("inverted range");
    assert!(
        matches!(err, LedgerError::Invalid(_)),
        "inverted range: {err}"
    );
    assert!(
        l.events(head.number + 1_000, head.number + 2_000)
            .await
            .expect("future")
            .is_empty()
    );
}

/// Blocks link by parent hash, the head is the tip, finality trails it.
pub async fn blocks_are_linked(l: &dyn LedgerPort) {
    let head = l.head().await.expect("head");
    assert_eq!(l.block(head.number).await.expect("block"), Some(head));
    let from = head.number.saturating_sub(5).max(1);
    for n in from..=head.number {
        let b = l.block(n).await.expect("block").expect("exists");
        let parent = l.block(n - 1).await.expect("block").expect("exists");
        assert!(b.is_child_of(&parent), "block {n} links to its parent");
    }
    let fin = l.finalized().await.expect("finalized");
    assert!(fin.number <= head.number);
    assert_eq!(l.block(fin.number).await.expect("block"), Some(fin));
    assert_eq!(l.block(head.number + 1_000_000).await.expect("block"), None);
}

/// The registrar anchors growing audit digests; each is an event.
pub async fn audit_digests_are_anchored(l: &dyn LedgerPort) {
    let digest = B256::repeat_byte(0x42);
    let seq = Timestamp::now().0;
    let r = l.anchor_audit(digest, seq).await.expect("anchor");
    let events = l
        .events(r.block_number, r.block_number)
        .await
        .expect("events");
    assert!(
        events.iter().any(|e| matches!(&e.event, LedgerEvent::AuditAnchored(a) if a.digest == digest && a.last_seq == seq)),
        "AuditAnchored event carries the digest: {events:?}"
    );
    let err = l
        .anchor_audit(digest, seq)
        .await
        .expect_err("seq must grow");
    assert!(matches!(err, LedgerError::Invalid(_)), "stale seq: {err}");
}
