//! The [`LedgerPort`] conformance suite. Every function takes a ledger whose
//! signer is a registrar (the deployer) and uses its own range of HH numbers
//! and wallets, so [`all`] can run them one after another on one chain.
//!
//! Behaviours that need more than the port also take a [`ChainControl`]: the
//! test hook a backend's test hands the suite to read the head block's time,
//! mine a block at a chosen time (the in-memory ledger's
//! [`crate::testing::InMemoryLedger::mine_at`], anvil's `evm_mine`) and act
//! as another wallet (a stranger, a patient signing for themselves).
//!
//! Panics (via `assert!`) on the first divergence, naming the behaviour.

use alloy_primitives::B256;
use async_trait::async_trait;

use super::fixtures::{self, TestWallet, date};
use crate::{
    AdminRole, AuditAnchor, Authorization, ChainEvent, ConsentAction, HhNumber, LedgerError,
    LedgerEvent, LedgerPort, Line, Name, Profile, ReadAt, RelayedSignature, Role, Timestamp,
};

/// Control over a test chain that the port itself does not offer.
#[async_trait]
pub trait ChainControl: Send + Sync {
    /// The timestamp of the head block.
    async fn head_time(&self) -> Timestamp;

    /// Mines one block (empty, or with whatever is pending) whose timestamp
    /// is exactly `at`, which is after the head's.
    async fn mine_at(&self, at: Timestamp);

    /// A handle on the same ledger that signs as `wallet` (funded for gas
    /// where the chain needs it).
    async fn as_wallet(&self, wallet: &TestWallet) -> Box<dyn LedgerPort>;

    /// Makes the next mined block carry timestamp `at` (after the head's),
    /// like anvil's `evm_setNextBlockTimestamp`.
    async fn set_next_block_time(&self, at: Timestamp);

    /// Turns automine off (writes wait in the pool) or back on.
    async fn set_automine(&self, on: bool);

    /// Waits until `count` transactions wait in the pool, then mines them
    /// into one block.
    async fn mine_when_pending(&self, count: usize);
}

/// Runs every ledger conformance test in turn.
pub async fn all(l: &dyn LedgerPort, clock: &dyn ChainControl) {
    register_and_read(l).await;
    duplicate_registration_is_rejected(l).await;
    unknown_things_read_as_absent(l).await;
    profile_update_needs_owner_consent(l).await;
    records_need_creator_consent_and_unique_ids(l).await;
    grants_follow_patient_consent(l).await;
    consent_is_bound_to_content(l).await;
    grants_lapse_at_their_expiry_by_block_time(l, clock).await;
    events_replay_every_write_in_order(l).await;
    events_carry_every_kind_exactly(l, clock).await;
    blocks_are_linked(l).await;
    audit_digests_are_anchored(l).await;
    registration_is_issued_by_registrars(l, clock).await;
    registrars_are_the_admins_to_name(l, clock).await;
    a_wallet_can_cancel_its_signatures(l, clock).await;
    owners_act_for_themselves(l, clock).await;
    events_in_one_block_are_numbered_in_order(l, clock).await;
    suspended_providers_create_and_receive_nothing(l, clock).await;
    record_ids_belong_to_their_creator(l).await;
    deadlines_hold_up_to_their_block_time(l, clock).await;
    pinned_reads_see_their_block(l).await;
    bulk_reads_return_whole_values(l).await;
    admin_hands_over_in_two_steps(l, clock).await;
    super::heads::new_heads_announce_every_block(l, clock).await;
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
    let before = l
        .registered_count(Role::Patient, ReadAt::Latest)
        .await
        .expect("count");
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
        l.profile(p.hh(), Role::Patient, ReadAt::Latest)
            .await
            .expect("read"),
        Some(p.clone())
    );
    assert_eq!(
        l.profile(p.hh(), Role::Doctor, ReadAt::Latest)
            .await
            .expect("read"),
        None,
        "role must match"
    );
    assert_eq!(
        l.account_of(w.address(), ReadAt::Latest)
            .await
            .expect("account"),
        Some((Role::Patient, p.hh()))
    );
    assert_eq!(
        l.registered_count(Role::Patient, ReadAt::Latest)
            .await
            .expect("count"),
        before + 1
    );
    let all = l
        .registered(Role::Patient, 0, before + 10, ReadAt::Latest)
        .await
        .expect("enumerate");
    assert_eq!(
        all.last(),
        Some(&p.hh()),
        "enumeration is in registration order"
    );
    assert_eq!(
        l.registered(Role::Patient, before, 1, ReadAt::Latest)
            .await
            .expect("page"),
        vec![p.hh()]
    );

    let d = TestWallet::from_seed(110_001);
    let doc = fixtures::doctor(110_001, d.address(), "Dr. Kavya Nair");
    l.register(&doc).await.expect("register doctor");
    assert_eq!(
        l.profile(doc.hh(), Role::Doctor, ReadAt::Latest)
            .await
            .expect("read"),
        Some(doc)
    );
    let c = TestWallet::from_seed(110_002);
    let center = fixtures::diagnostic_center(110_002, c.address(), "Apollo Labs");
    l.register(&center).await.expect("register center");
    assert_eq!(
        l.profile(center.hh(), Role::DiagnosticCenter, ReadAt::Latest)
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
    let count = l
        .registered_count(Role::Patient, ReadAt::Latest)
        .await
        .expect("count");

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
        l.registered_count(Role::Patient, ReadAt::Latest)
            .await
            .expect("count"),
        count
    );
    assert_eq!(
        l.profile(hh(120_001), Role::Patient, ReadAt::Latest)
            .await
            .expect("read"),
        None
    );
}

/// Reads of things that do not exist are `None`/`false`, or `NotFound` where
/// the question presumes existence.
pub async fn unknown_things_read_as_absent(l: &dyn LedgerPort) {
    assert_eq!(
        l.profile(hh(130_000), Role::Patient, ReadAt::Latest)
            .await
            .expect("read"),
        None
    );
    let stranger = TestWallet::from_seed(130_009).address();
    assert_eq!(
        l.account_of(stranger, ReadAt::Latest).await.expect("read"),
        None
    );
    let id = crate::RecordId::new(hh(130_000), 1);
    assert_eq!(l.record(id, ReadAt::Latest).await.expect("read"), None);
    assert_eq!(
        l.grant(hh(130_000), hh(130_001), ReadAt::Latest)
            .await
            .expect("read"),
        None
    );
    assert!(
        !l.has_access(hh(130_000), hh(130_001), ReadAt::Latest)
            .await
            .expect("read")
    );
    assert!(
        l.grantees(hh(130_000), 0, u64::MAX, ReadAt::Latest)
            .await
            .expect("read")
            .is_empty()
    );
    let err = l
        .can_read_record(id, hh(130_001), ReadAt::Latest)
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
        l.profile(patient.hh(), Role::Patient, ReadAt::Latest)
            .await
            .expect("read"),
        Some(patient.clone())
    );

    let auth = consent(l, &pw, &ConsentAction::UpdateProfile(updated.clone())).await;
    l.update_profile(&updated, &auth)
        .await
        .expect("owner-signed update");
    assert_eq!(
        l.profile(patient.hh(), Role::Patient, ReadAt::Latest)
            .await
            .expect("read"),
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
    let count = l.record_count(ReadAt::Latest).await.expect("count");
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
        .record(new.id, ReadAt::Latest)
        .await
        .expect("read")
        .expect("record exists");
    assert_eq!(
        (rec.id, rec.patient, rec.creator, rec.cid, &rec.meta),
        (new.id, patient.hh(), center.hh(), new.cid, &new.meta)
    );
    assert!(rec.created_at.0 > 0);
    assert!(receipt.block_number > 0);
    assert_eq!(
        l.record_count(ReadAt::Latest).await.expect("count"),
        count + 1
    );
    assert_eq!(
        l.record_ids(count, 10, ReadAt::Latest).await.expect("ids"),
        vec![new.id]
    );

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
        l.record_count(ReadAt::Latest).await.expect("count"),
        count + 1,
        "failed writes change nothing"
    );

    assert!(
        l.can_read_record(new.id, patient.hh(), ReadAt::Latest)
            .await
            .expect("read")
    );
    assert!(
        l.can_read_record(new.id, center.hh(), ReadAt::Latest)
            .await
            .expect("read")
    );
    assert!(
        !l.can_read_record(new.id, doctor.hh(), ReadAt::Latest)
            .await
            .expect("read"),
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
    assert!(!l.has_access(p, d, ReadAt::Latest).await.expect("read"));

    let auth = consent(l, &pw, &action).await;
    l.grant_access(p, d, None, &auth)
        .await
        .expect("patient grants");
    assert!(l.has_access(p, d, ReadAt::Latest).await.expect("read"));
    let grant = l
        .grant(p, d, ReadAt::Latest)
        .await
        .expect("read")
        .expect("grant exists");
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
    assert_eq!(
        l.grantees(p, 0, u64::MAX, ReadAt::Latest)
            .await
            .expect("read"),
        vec![d]
    );
    let err = l
        .grant_access(p, d, None, &auth)
        .await
        .expect_err("replayed grant");
    assert!(matches!(err, LedgerError::AccessDenied(_)), "replay: {err}");

    let rec = fixtures::record(160_000, 7, 160_002, "MRI brain", "mri", date(2026, 4, 1));
    let a = consent(l, &cw, &ConsentAction::CreateRecord(rec.clone())).await;
    l.create_record(&rec, &a).await.expect("record");
    assert!(
        l.can_read_record(rec.id, d, ReadAt::Latest)
            .await
            .expect("read"),
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
    assert!(!l.has_access(p, d, ReadAt::Latest).await.expect("read"));
    assert!(
        !l.can_read_record(rec.id, d, ReadAt::Latest)
            .await
            .expect("read"),
        "revoked doctor cannot read"
    );
    assert!(
        l.grant(p, d, ReadAt::Latest)
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
    assert!(l.has_access(p, d, ReadAt::Latest).await.expect("read"));
    assert_eq!(
        l.grantees(p, 0, u64::MAX, ReadAt::Latest)
            .await
            .expect("read"),
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

    let batch = l.events(start, head.number).await.expect("events");
    assert!(
        batch.quarantined.is_empty(),
        "every log decodes: {:?}",
        batch.quarantined
    );
    let events = batch.events;
    let kinds: Vec<&LedgerEvent> = events.iter().map(|e| &e.event).collect();
    assert_eq!(
        kinds.len(),
        5,
        "three registrations, a record, a grant: {kinds:?}"
    );
    for (i, (p, _)) in trio.iter().enumerate() {
        assert_eq!(
            kinds[i],
            &LedgerEvent::registration(p.clone(), l.signer()),
            "registration {i}, sent by the registrar itself"
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
        l.events(start, start + 1)
            .await
            .expect("sub-range")
            .events
            .len(),
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
            == crate::EventBatch::default()
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
    let seq = next_seq(l).await;
    let r = l.anchor_audit(digest, seq).await.expect("anchor");
    let events = l
        .events(r.block_number, r.block_number)
        .await
        .expect("events")
        .events;
    assert!(
        events.iter().any(|e| matches!(&e.event, LedgerEvent::AuditAnchored(a) if a.digest == digest && a.last_seq == seq)),
        "AuditAnchored event carries the digest: {events:?}"
    );
    let latest = l
        .latest_audit_anchor(ReadAt::Latest)
        .await
        .expect("latest anchor")
        .expect("anchored");
    assert_eq!((latest.digest, latest.last_seq), (digest, seq));
    let err = l
        .anchor_audit(digest, seq)
        .await
        .expect_err("seq must grow");
    assert!(matches!(err, LedgerError::Invalid(_)), "stale seq: {err}");
}

fn assert_invalid<T: std::fmt::Debug>(what: &str, result: Result<T, LedgerError>) {
    match result {
        Err(LedgerError::Invalid(_)) => {}
        other => panic!("{what}: expected Invalid, got {other:?}"),
    }
}

/// The events of blocks `from..=to`, without their positions.
async fn event_kinds(l: &dyn LedgerPort, from: u64, to: u64) -> Vec<LedgerEvent> {
    l.events(from, to)
        .await
        .expect("events")
        .events
        .into_iter()
        .map(|e| e.event)
        .collect()
}

fn assert_denied<T: std::fmt::Debug>(what: &str, result: Result<T, LedgerError>) {
    match result {
        Err(LedgerError::AccessDenied(_)) => {}
        other => panic!("{what}: expected AccessDenied, got {other:?}"),
    }
}

/// A genuine signature works only for exactly what was signed: reused with
/// another CID or metadata, another profile body, another expiry or another
/// grantee it is `AccessDenied`, and the failed attempts spend nothing (the
/// genuine use still works afterwards).
pub async fn consent_is_bound_to_content(l: &dyn LedgerPort) {
    let [(patient, pw), (doctor, _), (center, cw)] = register_trio(l, 175_000).await;
    let (p, d, c) = (patient.hh(), doctor.hh(), center.hh());

    // A profile update signed for one body, sent with another.
    let Profile::Patient(mut signed_body) = patient.clone() else {
        unreachable!("register_trio puts the patient first")
    };
    signed_body.home_address = Line::new("12 Lake Road, Pune").expect("line");
    let mut sent_body = signed_body.clone();
    sent_body.name = Name::new("Someone Else").expect("name");
    let (signed_body, sent_body) = (Profile::Patient(signed_body), Profile::Patient(sent_body));
    let auth = consent(l, &pw, &ConsentAction::UpdateProfile(signed_body.clone())).await;
    assert_denied(
        "update with a changed body",
        l.update_profile(&sent_body, &auth).await,
    );
    assert_eq!(
        l.profile(p, Role::Patient, ReadAt::Latest)
            .await
            .expect("read"),
        Some(patient.clone()),
        "a refused update changes nothing"
    );
    l.update_profile(&signed_body, &auth)
        .await
        .expect("the signature still works for what it signed");

    // A record signed with one CID and metadata, sent with others.
    let signed = fixtures::record(
        175_000,
        11,
        175_002,
        "Thyroid panel",
        "lab-result",
        date(2026, 6, 1),
    );
    let auth = consent(l, &cw, &ConsentAction::CreateRecord(signed.clone())).await;
    let mut other_cid = signed.clone();
    other_cid.cid = fixtures::cid_of(b"some other ciphertext");
    assert_denied(
        "record with a changed CID",
        l.create_record(&other_cid, &auth).await,
    );
    let mut other_name = signed.clone();
    other_name.meta.test_name = Name::new("Liver panel").expect("name");
    assert_denied(
        "record with a changed test name",
        l.create_record(&other_name, &auth).await,
    );
    let mut other_size = signed.clone();
    other_size.meta.size += 1;
    assert_denied(
        "record with a changed size",
        l.create_record(&other_size, &auth).await,
    );
    let mut other_date = signed.clone();
    other_date.meta.date = date(2026, 6, 2);
    assert_denied(
        "record with a changed date",
        l.create_record(&other_date, &auth).await,
    );
    let mut other_id = signed.clone();
    other_id.id = crate::RecordId::for_creator(p, signed.creator, 12).expect("record id");
    assert_denied(
        "record with a changed id",
        l.create_record(&other_id, &auth).await,
    );
    assert_eq!(
        l.record(other_id.id, ReadAt::Latest).await.expect("read"),
        None
    );
    l.create_record(&signed, &auth)
        .await
        .expect("the signature still works for what it signed");
    assert_eq!(
        l.record(signed.id, ReadAt::Latest)
            .await
            .expect("read")
            .map(|r| (r.cid, r.meta)),
        Some((signed.cid, signed.meta.clone()))
    );

    // A grant signed for one grantee and expiry, sent with others.
    let far = Timestamp(deadline().0 + 86_400);
    let action = ConsentAction::GrantAccess {
        patient: p,
        grantee: d,
        expires_at: None,
    };
    let auth = consent(l, &pw, &action).await;
    assert_denied(
        "grant with an added expiry",
        l.grant_access(p, d, Some(far), &auth).await,
    );
    assert_denied(
        "grant to another grantee",
        l.grant_access(p, c, None, &auth).await,
    );
    assert!(!l.has_access(p, c, ReadAt::Latest).await.expect("read"));
    let bounded = ConsentAction::GrantAccess {
        patient: p,
        grantee: c,
        expires_at: Some(far),
    };
    let bounded_auth = consent(l, &pw, &bounded).await;
    assert_denied(
        "grant with the expiry removed",
        l.grant_access(p, c, None, &bounded_auth).await,
    );
    assert_denied(
        "grant with a later expiry",
        l.grant_access(p, c, Some(Timestamp(far.0 + 1)), &bounded_auth)
            .await,
    );
    l.grant_access(p, d, None, &auth)
        .await
        .expect("the grant signature still works for what it signed");
    let auth = consent(l, &pw, &bounded).await;
    l.grant_access(p, c, Some(far), &auth)
        .await
        .expect("bounded grant");

    // A revocation signed for one grantee, sent for another.
    let revoke_d = ConsentAction::RevokeAccess {
        patient: p,
        grantee: d,
    };
    let auth = consent(l, &pw, &revoke_d).await;
    assert_denied(
        "revoke of another grantee",
        l.revoke_access(p, c, &auth).await,
    );
    assert!(
        l.has_access(p, c, ReadAt::Latest).await.expect("read"),
        "the other grant stands"
    );
    l.revoke_access(p, d, &auth)
        .await
        .expect("revoke as signed");
    assert!(!l.has_access(p, d, ReadAt::Latest).await.expect("read"));
}

/// Expiry is judged by block time: a grant expiring at `t` gives access in
/// a block at `t - 1` and none in a block at `t` (`expires_at == block
/// time` has lapsed), for `has_access` and `can_read_record` alike; the
/// patient and the creator keep reading. An expiry that is not after the
/// block time, zero included, is `Invalid` (never "no expiry").
pub async fn grants_lapse_at_their_expiry_by_block_time(
    l: &dyn LedgerPort,
    clock: &dyn ChainControl,
) {
    let [(patient, pw), (doctor, _), (center, cw)] = register_trio(l, 176_000).await;
    let (p, d, c) = (patient.hh(), doctor.hh(), center.hh());
    let rec = fixtures::record(
        176_000,
        5,
        176_002,
        "Ultrasound",
        "ultrasound",
        date(2026, 7, 1),
    );
    let a = consent(l, &cw, &ConsentAction::CreateRecord(rec.clone())).await;
    l.create_record(&rec, &a).await.expect("record");

    for (what, expiry) in [
        ("zero expiry", Timestamp(0)),
        ("expiry at the head's time", clock.head_time().await),
    ] {
        let action = ConsentAction::GrantAccess {
            patient: p,
            grantee: d,
            expires_at: Some(expiry),
        };
        let a = consent(l, &pw, &action).await;
        assert_invalid(what, l.grant_access(p, d, Some(expiry), &a).await);
        assert_eq!(
            l.grant(p, d, ReadAt::Latest).await.expect("read"),
            None,
            "{what} stores nothing"
        );
        assert!(
            !l.has_access(p, d, ReadAt::Latest).await.expect("read"),
            "{what} gives no access"
        );
    }

    let expiry = Timestamp(clock.head_time().await.0 + 1_000);
    let action = ConsentAction::GrantAccess {
        patient: p,
        grantee: d,
        expires_at: Some(expiry),
    };
    let a = consent(l, &pw, &action).await;
    l.grant_access(p, d, Some(expiry), &a)
        .await
        .expect("grant with expiry");
    assert_eq!(
        l.grant(p, d, ReadAt::Latest)
            .await
            .expect("read")
            .and_then(|g| g.expires_at),
        Some(expiry),
        "the expiry is stored as given"
    );

    clock.mine_at(Timestamp(expiry.0 - 1)).await;
    assert!(
        l.has_access(p, d, ReadAt::Latest).await.expect("read"),
        "active one second before expiry"
    );
    assert!(
        l.can_read_record(rec.id, d, ReadAt::Latest)
            .await
            .expect("read"),
        "reads one second before expiry"
    );

    clock.mine_at(expiry).await;
    assert!(
        !l.has_access(p, d, ReadAt::Latest).await.expect("read"),
        "lapsed at the expiry time itself"
    );
    assert!(
        !l.can_read_record(rec.id, d, ReadAt::Latest)
            .await
            .expect("read"),
        "cannot read at the expiry time"
    );
    assert!(
        l.can_read_record(rec.id, p, ReadAt::Latest)
            .await
            .expect("read"),
        "the patient always reads"
    );
    assert!(
        l.can_read_record(rec.id, c, ReadAt::Latest)
            .await
            .expect("read"),
        "the creator always reads"
    );
    assert!(
        l.grant(p, d, ReadAt::Latest)
            .await
            .expect("read")
            .is_some_and(|g| g.revoked_at.is_none()),
        "a lapsed grant is not a revoked one"
    );
}

/// `events` returns every kind of event a port write can cause (profile
/// updates, revocations, audit anchors, besides registrations, records and
/// grants, and the deployer's `RegistrarAdded`) with exactly the values
/// written, and returns the same events however the range is cut: one call
/// over everything, one call per block, or any split into two calls (so an
/// adapter's internal range chunking never loses or repeats an event).
pub async fn events_carry_every_kind_exactly(l: &dyn LedgerPort, clock: &dyn ChainControl) {
    let deployed = l.deployment_block();
    let from_genesis = l
        .events(0, l.head().await.expect("head").number)
        .await
        .expect("events from genesis")
        .events;
    let deployer_added = from_genesis
        .iter()
        .find(|e| e.event == LedgerEvent::RegistrarAdded(l.signer()))
        .expect("the deployer's RegistrarAdded is an event");
    assert_eq!(
        deployer_added.at.block_number, deployed,
        "the deployment block holds the ledger's first event"
    );
    assert!(
        from_genesis.iter().all(|e| e.at.block_number >= deployed),
        "no event before the deployment block"
    );

    let start = l.head().await.expect("head").number + 1;
    let mut expected = Vec::new();
    let trio = register_trio(l, 177_000).await;
    for (p, _) in &trio {
        expected.push(LedgerEvent::registration(p.clone(), l.signer()));
    }
    let [(patient, pw), (doctor, dw), (_, cw)] = trio;
    let (p, d) = (patient.hh(), doctor.hh());
    clock
        .mine_at(Timestamp(clock.head_time().await.0 + 7))
        .await;

    let Profile::Doctor(mut moved) = doctor.clone() else {
        unreachable!("register_trio puts the doctor second")
    };
    moved.hospital = Line::new("City Hospital, Ward 4").expect("line");
    let moved = Profile::Doctor(moved);
    let a = consent(l, &dw, &ConsentAction::UpdateProfile(moved.clone())).await;
    l.update_profile(&moved, &a).await.expect("update");
    expected.push(LedgerEvent::ProfileUpdated(moved));

    let rec = fixtures::record(177_000, 3, 177_002, "HbA1c", "lab-result", date(2026, 8, 8));
    let a = consent(l, &cw, &ConsentAction::CreateRecord(rec.clone())).await;
    l.create_record(&rec, &a).await.expect("record");
    let created = l
        .record(rec.id, ReadAt::Latest)
        .await
        .expect("read")
        .expect("created");
    assert_eq!(
        created.created_at,
        clock.head_time().await,
        "created at its block's time"
    );
    expected.push(LedgerEvent::RecordCreated(created));
    clock
        .mine_at(Timestamp(clock.head_time().await.0 + 3))
        .await;

    let expiry = Timestamp(deadline().0 + 500);
    let action = ConsentAction::GrantAccess {
        patient: p,
        grantee: d,
        expires_at: Some(expiry),
    };
    let a = consent(l, &pw, &action).await;
    l.grant_access(p, d, Some(expiry), &a).await.expect("grant");
    let granted = l
        .grant(p, d, ReadAt::Latest)
        .await
        .expect("read")
        .expect("granted");
    assert_eq!(
        granted.granted_at,
        clock.head_time().await,
        "granted at its block's time"
    );
    expected.push(LedgerEvent::AccessGranted(granted));

    let revoke = ConsentAction::RevokeAccess {
        patient: p,
        grantee: d,
    };
    let a = consent(l, &pw, &revoke).await;
    l.revoke_access(p, d, &a).await.expect("revoke");
    let revoked_at = clock.head_time().await;
    assert_eq!(
        l.grant(p, d, ReadAt::Latest)
            .await
            .expect("read")
            .and_then(|g| g.revoked_at),
        Some(revoked_at)
    );
    expected.push(LedgerEvent::AccessRevoked {
        patient: p,
        grantee: d,
        revoked_at,
    });

    let digest = B256::repeat_byte(0x5a);
    let last_seq = next_seq(l).await;
    l.anchor_audit(digest, last_seq).await.expect("anchor");
    expected.push(LedgerEvent::AuditAnchored(AuditAnchor {
        digest,
        last_seq,
        anchored_at: clock.head_time().await,
    }));
    clock
        .mine_at(Timestamp(clock.head_time().await.0 + 2))
        .await;
    let end = l.head().await.expect("head").number;

    let batch = l.events(start, end).await.expect("events");
    assert!(
        batch.quarantined.is_empty(),
        "every log decodes: {:?}",
        batch.quarantined
    );
    let whole = batch.events;
    let kinds: Vec<LedgerEvent> = whole.iter().map(|e| e.event.clone()).collect();
    assert_eq!(kinds, expected, "every event, exactly as written, in order");
    for pair in whole.windows(2) {
        assert!(pair[0].at < pair[1].at, "events strictly ordered");
    }

    let mut per_block: Vec<ChainEvent> = Vec::new();
    for n in start..=end {
        per_block.extend(l.events(n, n).await.expect("one block").events);
    }
    assert_eq!(per_block, whole, "one call per block gives the same events");
    for cut in start..end {
        let mut split = l.events(start, cut).await.expect("left part").events;
        split.extend(l.events(cut + 1, end).await.expect("right part").events);
        assert_eq!(split, whole, "cut after block {cut} gives the same events");
    }
}

/// An access-log seq above the latest anchored one, so anchoring it works
/// whatever the suite anchored before.
async fn next_seq(l: &dyn LedgerPort) -> u64 {
    l.latest_audit_anchor(ReadAt::Latest)
        .await
        .expect("latest anchor")
        .map_or(0, |a| a.last_seq)
        + 1
}

/// A registrar's attestation that `hh` is issued to `wallet`.
pub async fn attestation(
    l: &dyn LedgerPort,
    registrar: &TestWallet,
    hh: HhNumber,
    wallet: crate::WalletAddress,
    deadline: Timestamp,
) -> RelayedSignature {
    let digest = l
        .attestation_digest(hh, wallet, deadline)
        .await
        .expect("attestation digest");
    RelayedSignature {
        signature: registrar.sign(digest),
        deadline,
    }
}

/// HH numbers are issued, never taken: only a registrar registers doctors
/// and diagnostic centers; a patient registers through a registrar or with
/// their own wallet carrying a registrar's attestation of (HH number,
/// wallet, deadline). A stranger's self-registration as a doctor, a
/// squatted HH number, a forged, expired or borrowed attestation are each
/// refused and change nothing.
pub async fn registration_is_issued_by_registrars(l: &dyn LedgerPort, chain: &dyn ChainControl) {
    let stranger = TestWallet::from_seed(178_900);
    let as_stranger = chain.as_wallet(&stranger).await;
    let doctor = fixtures::doctor(178_001, stranger.address(), "Dr. Self Made");
    assert_denied(
        "a stranger registering as a doctor",
        as_stranger.register(&doctor).await,
    );
    let center = fixtures::diagnostic_center(178_002, stranger.address(), "Self Labs");
    assert_denied(
        "a stranger registering as a center",
        as_stranger.register(&center).await,
    );
    let squat = fixtures::patient(178_003, stranger.address(), "Squatter");
    assert_denied(
        "a patient taking an HH number",
        as_stranger.register(&squat).await,
    );

    // The admin names a registrar whose key the suite holds, to attest.
    let registrar_key = TestWallet::from_seed(178_999);
    l.add_registrar(registrar_key.address())
        .await
        .expect("admin adds an attestor");
    let patient_wallet = TestWallet::from_seed(178_910);
    let as_patient = chain.as_wallet(&patient_wallet).await;
    let patient = fixtures::patient(178_010, patient_wallet.address(), "Attested Patient");
    let good = attestation(
        l,
        &registrar_key,
        patient.hh(),
        patient_wallet.address(),
        deadline(),
    )
    .await;

    // Borrowed: the stranger presents the patient's attestation for itself.
    let borrowed = fixtures::patient(178_010, stranger.address(), "Borrower");
    assert_denied(
        "an attestation for another wallet",
        as_stranger.register_attested(&borrowed, &good).await,
    );
    // Forged: signed by someone who is not a registrar.
    let forged = attestation(
        l,
        &stranger,
        patient.hh(),
        patient_wallet.address(),
        deadline(),
    )
    .await;
    assert_denied(
        "an attestation by a non-registrar",
        as_patient.register_attested(&patient, &forged).await,
    );
    // Expired.
    let old = attestation(
        l,
        &registrar_key,
        patient.hh(),
        patient_wallet.address(),
        Timestamp(1),
    )
    .await;
    assert_invalid(
        "an expired attestation",
        as_patient.register_attested(&patient, &old).await,
    );
    // Attested for another HH number than the one registered.
    let other_hh = fixtures::patient(178_011, patient_wallet.address(), "Wrong Number");
    assert_denied(
        "an attestation for another HH number",
        as_patient.register_attested(&other_hh, &good).await,
    );
    // Providers never register by attestation.
    let doc_wallet = TestWallet::from_seed(178_920);
    let as_doc = chain.as_wallet(&doc_wallet).await;
    let doc = fixtures::doctor(178_020, doc_wallet.address(), "Dr. Attested");
    let for_doc = attestation(
        l,
        &registrar_key,
        doc.hh(),
        doc_wallet.address(),
        deadline(),
    )
    .await;
    assert_denied(
        "a doctor registering by attestation",
        as_doc.register_attested(&doc, &for_doc).await,
    );
    for hh in [178_001, 178_002, 178_003, 178_010, 178_011, 178_020] {
        for role in [Role::Patient, Role::Doctor, Role::DiagnosticCenter] {
            assert_eq!(
                l.profile(self::hh(hh), role, ReadAt::Latest)
                    .await
                    .expect("read"),
                None,
                "refused registrations leave nothing ({hh})"
            );
        }
    }

    let registered = as_patient
        .register_attested(&patient, &good)
        .await
        .expect("a patient registers with a registrar's attestation");
    let Profile::Patient(attested) = patient.clone() else {
        unreachable!("fixtures::patient is a patient")
    };
    assert_eq!(
        event_kinds(l, registered.block_number, registered.block_number).await,
        vec![LedgerEvent::attested_registration(
            attested,
            registrar_key.address()
        )],
        "the event names the attesting registrar, not the sender"
    );
    assert_eq!(
        l.profile(patient.hh(), Role::Patient, ReadAt::Latest)
            .await
            .expect("read"),
        Some(patient.clone())
    );
    let err = as_patient
        .register_attested(&patient, &good)
        .await
        .expect_err("the same attestation twice");
    assert!(
        matches!(err, LedgerError::AlreadyExists(_)),
        "replayed attestation: {err}"
    );
}

/// Only the admin names and removes registrars; each change is an event
/// with the exact wallet; a removed registrar registers no one.
pub async fn registrars_are_the_admins_to_name(l: &dyn LedgerPort, chain: &dyn ChainControl) {
    let helper = TestWallet::from_seed(179_900);
    let as_helper = chain.as_wallet(&helper).await;
    assert_denied(
        "a stranger naming itself registrar",
        as_helper.add_registrar(helper.address()).await,
    );
    let added = l
        .add_registrar(helper.address())
        .await
        .expect("admin adds a registrar");
    let doc = fixtures::doctor(
        179_001,
        TestWallet::from_seed(179_901).address(),
        "Dr. Helped",
    );
    as_helper
        .register(&doc)
        .await
        .expect("a new registrar registers a doctor");
    assert_denied(
        "a registrar removing registrars",
        as_helper.remove_registrar(l.signer()).await,
    );
    let removed = l
        .remove_registrar(helper.address())
        .await
        .expect("admin removes it");
    let doc2 = fixtures::doctor(
        179_002,
        TestWallet::from_seed(179_902).address(),
        "Dr. Late",
    );
    assert_denied("a removed registrar", as_helper.register(&doc2).await);
    assert_invalid(
        "removing a non-registrar",
        l.remove_registrar(helper.address()).await,
    );

    let events: Vec<LedgerEvent> = event_kinds(l, added.block_number, removed.block_number).await;
    assert_eq!(
        events,
        vec![
            LedgerEvent::RegistrarAdded(helper.address()),
            LedgerEvent::registration(doc, helper.address()),
            LedgerEvent::RegistrarRemoved(helper.address()),
        ]
    );
}

/// A wallet cancels every signature it handed out and that was not yet
/// relayed by using up its nonce; a fresh signature works again.
pub async fn a_wallet_can_cancel_its_signatures(l: &dyn LedgerPort, chain: &dyn ChainControl) {
    let [(patient, pw), (doctor, _), _] = register_trio(l, 179_100).await;
    let (p, d) = (patient.hh(), doctor.hh());
    let action = ConsentAction::GrantAccess {
        patient: p,
        grantee: d,
        expires_at: None,
    };
    let handed_out = consent(l, &pw, &action).await;
    chain
        .as_wallet(&pw)
        .await
        .invalidate_nonce()
        .await
        .expect("the patient cancels");
    assert_denied(
        "a cancelled signature",
        l.grant_access(p, d, None, &handed_out).await,
    );
    assert!(!l.has_access(p, d, ReadAt::Latest).await.expect("read"));
    let fresh = consent(l, &pw, &action).await;
    l.grant_access(p, d, None, &fresh)
        .await
        .expect("a fresh signature works");
}

/// A read at an older block sees exactly that block's state, whatever
/// happened since; every read takes the pin.
pub async fn pinned_reads_see_their_block(l: &dyn LedgerPort) {
    let [(patient, pw), (doctor, _), (_, cw)] = register_trio(l, 179_200).await;
    let (p, d) = (patient.hh(), doctor.hh());
    let before = l.head().await.expect("head");
    let pin = ReadAt::Block(before);
    let counts = (
        l.registered_count(Role::Patient, pin).await.expect("count"),
        l.record_count(pin).await.expect("count"),
        l.grant_count(pin).await.expect("count"),
    );

    let Profile::Patient(mut changed) = patient.clone() else {
        unreachable!("register_trio puts the patient first")
    };
    changed.home_address = Line::new("99 New Street, Goa").expect("line");
    let changed = Profile::Patient(changed);
    let a = consent(l, &pw, &ConsentAction::UpdateProfile(changed.clone())).await;
    l.update_profile(&changed, &a).await.expect("update");
    let middle = ReadAt::Block(l.head().await.expect("head"));
    let rec = fixtures::record(
        179_200,
        4,
        179_202,
        "Vitamin D",
        "lab-result",
        date(2026, 9, 9),
    );
    let a = consent(l, &cw, &ConsentAction::CreateRecord(rec.clone())).await;
    l.create_record(&rec, &a).await.expect("record");
    let action = ConsentAction::GrantAccess {
        patient: p,
        grantee: d,
        expires_at: None,
    };
    let a = consent(l, &pw, &action).await;
    l.grant_access(p, d, None, &a).await.expect("grant");
    l.anchor_audit(B256::repeat_byte(0x77), next_seq(l).await)
        .await
        .expect("anchor");
    let newer = fixtures::patient(179_209, TestWallet::from_seed(179_209).address(), "Later");
    l.register(&newer).await.expect("later registration");

    assert_eq!(
        l.profile(p, Role::Patient, pin).await.expect("read"),
        Some(patient.clone()),
        "the old profile at the old block"
    );
    assert_eq!(
        l.profile(p, Role::Patient, ReadAt::Latest)
            .await
            .expect("read"),
        Some(changed.clone())
    );
    assert_eq!(l.record(rec.id, pin).await.expect("read"), None);
    // Alternating between two older blocks gives each its own state.
    for _ in 0..2 {
        assert_eq!(
            l.profile(p, Role::Patient, middle).await.expect("read"),
            Some(changed.clone()),
            "the updated profile at the middle block"
        );
        assert_eq!(l.record(rec.id, middle).await.expect("read"), None);
        assert_eq!(
            l.profile(p, Role::Patient, pin).await.expect("read"),
            Some(patient.clone()),
            "the old profile at the old block again"
        );
    }
    assert_eq!(l.grant(p, d, pin).await.expect("read"), None);
    assert!(!l.has_access(p, d, pin).await.expect("read"));
    assert!(l.has_access(p, d, ReadAt::Latest).await.expect("read"));
    assert!(l.grantees(p, 0, 10, pin).await.expect("read").is_empty());
    assert_eq!(
        l.profile(newer.hh(), Role::Patient, pin)
            .await
            .expect("read"),
        None
    );
    assert_eq!(l.account_of(newer.wallet(), pin).await.expect("read"), None);
    assert_eq!(
        (
            l.registered_count(Role::Patient, pin).await.expect("count"),
            l.record_count(pin).await.expect("count"),
            l.grant_count(pin).await.expect("count"),
        ),
        counts,
        "counts at the old block"
    );
    let total = l.registered_count(Role::Patient, pin).await.expect("count");
    let listed = l
        .registered(Role::Patient, 0, total + 10, pin)
        .await
        .expect("page");
    assert_eq!(listed.len() as u64, total, "enumeration at the old block");
    assert!(!listed.contains(&newer.hh()));
    assert_ne!(
        l.latest_audit_anchor(pin)
            .await
            .expect("anchor")
            .map(|a| a.digest),
        Some(B256::repeat_byte(0x77)),
        "the anchor came later"
    );
    let err = l
        .can_read_record(rec.id, d, pin)
        .await
        .expect_err("the record does not exist yet");
    assert!(matches!(err, LedgerError::NotFound(_)), "{err}");
}

/// The bulk reads return whole values, equal to the one-by-one reads, in
/// enumeration order, however the pages are cut.
pub async fn bulk_reads_return_whole_values(l: &dyn LedgerPort) {
    let base = 179_300;
    let center_wallet = TestWallet::from_seed(u64::from(base) + 90);
    let center = fixtures::diagnostic_center(base + 90, center_wallet.address(), "Bulk Labs");
    l.register(&center).await.expect("center");
    let patients = fixtures::patients(base, 7, "Bulk Patient");
    for p in &patients {
        l.register(p).await.expect("patient");
    }
    for (i, p) in patients.iter().enumerate() {
        let rec = fixtures::record(
            p.hh().get(),
            100 + i as u64,
            base + 90,
            "Bulk panel",
            "lab-result",
            date(2026, 10, 1),
        );
        let a = consent(l, &center_wallet, &ConsentAction::CreateRecord(rec.clone())).await;
        l.create_record(&rec, &a).await.expect("record");
        if i % 2 == 0 {
            let w = TestWallet::from_seed(u64::from(p.hh().get()));
            let action = ConsentAction::GrantAccess {
                patient: p.hh(),
                grantee: center.hh(),
                expires_at: None,
            };
            let a = consent(l, &w, &action).await;
            l.grant_access(p.hh(), center.hh(), None, &a)
                .await
                .expect("grant");
        }
    }
    if let Some(p) = patients.first() {
        let w = TestWallet::from_seed(u64::from(p.hh().get()));
        let revoke = ConsentAction::RevokeAccess {
            patient: p.hh(),
            grantee: center.hh(),
        };
        let a = consent(l, &w, &revoke).await;
        l.revoke_access(p.hh(), center.hh(), &a)
            .await
            .expect("revoke");
    }
    let at = ReadAt::Block(l.head().await.expect("head"));

    for role in [Role::Patient, Role::Doctor, Role::DiagnosticCenter] {
        let n = l.registered_count(role, at).await.expect("count");
        let hhs = l.registered(role, 0, n, at).await.expect("ids");
        let mut one_by_one = Vec::new();
        for hh in &hhs {
            one_by_one.push(
                l.profile(*hh, role, at)
                    .await
                    .expect("read")
                    .expect("registered"),
            );
        }
        assert_eq!(
            l.profiles(role, 0, n + 5, at).await.expect("page"),
            one_by_one,
            "{role} in one page"
        );
        let mut paged = Vec::new();
        for offset in (0..n).step_by(3) {
            paged.extend(l.profiles(role, offset, 3, at).await.expect("page"));
        }
        assert_eq!(paged, one_by_one, "{role} in pages of 3");
        assert!(
            l.profiles(role, n, 10, at)
                .await
                .expect("past the end")
                .is_empty()
        );
    }

    let n = l.record_count(at).await.expect("count");
    let ids = l.record_ids(0, n, at).await.expect("ids");
    let mut one_by_one = Vec::new();
    for id in &ids {
        one_by_one.push(l.record(*id, at).await.expect("read").expect("exists"));
    }
    let mut paged = Vec::new();
    for offset in (0..n).step_by(4) {
        paged.extend(l.records(offset, 4, at).await.expect("page"));
    }
    assert_eq!(paged, one_by_one, "records in pages of 4");

    let n = l.grant_count(at).await.expect("count");
    let grants = l.grants(0, n + 1, at).await.expect("grants");
    assert_eq!(grants.len() as u64, n);
    for g in &grants {
        assert_eq!(
            l.grant(g.patient, g.grantee, at)
                .await
                .expect("read")
                .as_ref(),
            Some(g),
            "bulk grant equals the one-by-one read"
        );
        assert!(
            l.grantees(g.patient, 0, u64::MAX, at)
                .await
                .expect("grantees")
                .contains(&g.grantee)
        );
    }
    let ours: Vec<_> = grants.iter().filter(|g| g.grantee == center.hh()).collect();
    assert_eq!(ours.len(), 4, "the four grants to the bulk center");
    assert!(
        ours[0].revoked_at.is_some(),
        "the revoked grant comes back revoked"
    );
    let mut paged = Vec::new();
    for offset in (0..n).step_by(2) {
        paged.extend(l.grants(offset, 2, at).await.expect("page"));
    }
    assert_eq!(paged, grants, "grants in pages of 2");
}

/// The consenting wallet may act itself, without a signature
/// (`Authorization::Signer` from its own handle): the patient grants and
/// revokes, the owner updates a profile, the center creates a record.
pub async fn owners_act_for_themselves(l: &dyn LedgerPort, chain: &dyn ChainControl) {
    let [(patient, pw), (doctor, _), (center, cw)] = register_trio(l, 179_400).await;
    let (p, d) = (patient.hh(), doctor.hh());
    let as_patient = chain.as_wallet(&pw).await;
    as_patient
        .grant_access(p, d, None, &Authorization::Signer)
        .await
        .expect("the patient grants as the sender");
    assert!(l.has_access(p, d, ReadAt::Latest).await.expect("read"));
    as_patient
        .revoke_access(p, d, &Authorization::Signer)
        .await
        .expect("the patient revokes as the sender");
    assert!(!l.has_access(p, d, ReadAt::Latest).await.expect("read"));
    let Profile::Patient(mut changed) = patient.clone() else {
        unreachable!("register_trio puts the patient first")
    };
    changed.home_address = Line::new("3 Own Road, Kochi").expect("line");
    let changed = Profile::Patient(changed);
    as_patient
        .update_profile(&changed, &Authorization::Signer)
        .await
        .expect("the owner updates as the sender");
    assert_eq!(
        l.profile(p, Role::Patient, ReadAt::Latest)
            .await
            .expect("read"),
        Some(changed)
    );
    let rec = fixtures::record(
        179_400,
        8,
        179_402,
        "Biopsy",
        "pathology",
        date(2026, 11, 1),
    );
    chain
        .as_wallet(&cw)
        .await
        .create_record(&rec, &Authorization::Signer)
        .await
        .expect("the center creates as the sender");
    assert_eq!(
        l.record(rec.id, ReadAt::Latest)
            .await
            .expect("read")
            .map(|r| r.creator),
        Some(center.hh())
    );
    assert_denied(
        "the doctor creating a record as the center",
        chain
            .as_wallet(&TestWallet::from_seed(179_401))
            .await
            .create_record(
                &fixtures::record(179_400, 9, 179_402, "X", "x-ray", date(2026, 11, 2)),
                &Authorization::Signer,
            )
            .await,
    );
}

/// A relayed signature works in a block whose time equals its deadline and
/// is `Invalid` one second later.
pub async fn deadlines_hold_up_to_their_block_time(l: &dyn LedgerPort, chain: &dyn ChainControl) {
    let [(patient, pw), (doctor, _), (center, _)] = register_trio(l, 179_500).await;
    let (p, d, c) = (patient.hh(), doctor.hh(), center.hh());
    let sign_until = |grantee: HhNumber, deadline: Timestamp| {
        let pw = &pw;
        async move {
            let action = ConsentAction::GrantAccess {
                patient: p,
                grantee,
                expires_at: None,
            };
            let digest = l.signing_digest(&action, deadline).await.expect("digest");
            Authorization::Relayed(RelayedSignature {
                signature: pw.sign(digest),
                deadline,
            })
        }
    };
    let deadline = Timestamp(chain.head_time().await.0 + 100);
    let auth = sign_until(d, deadline).await;
    chain.set_next_block_time(deadline).await;
    l.grant_access(p, d, None, &auth)
        .await
        .expect("a signature is good in the block at its deadline");
    assert_eq!(chain.head_time().await, deadline);

    let deadline = Timestamp(chain.head_time().await.0 + 100);
    let auth = sign_until(c, deadline).await;
    chain.set_next_block_time(Timestamp(deadline.0 + 1)).await;
    match l.grant_access(p, c, None, &auth).await {
        Err(LedgerError::Invalid(_)) => {}
        other => {
            panic!("a signature one second past its deadline: expected Invalid, got {other:?}")
        }
    }
    assert!(!l.has_access(p, c, ReadAt::Latest).await.expect("read"));

    // A registrar's attestation likewise holds up to its deadline.
    let attestor = TestWallet::from_seed(179_599);
    l.add_registrar(attestor.address()).await.expect("attestor");
    for (hh, late) in [(179_510, 0), (179_511, 1)] {
        let w = TestWallet::from_seed(u64::from(hh));
        let p = fixtures::patient(hh, w.address(), "Deadline Patient");
        let deadline = Timestamp(chain.head_time().await.0 + 100);
        let att = attestation(l, &attestor, p.hh(), w.address(), deadline).await;
        let as_patient = chain.as_wallet(&w).await;
        chain
            .set_next_block_time(Timestamp(deadline.0 + late))
            .await;
        match (late, as_patient.register_attested(&p, &att).await) {
            (0, Ok(_)) | (1, Err(LedgerError::Invalid(_))) => {}
            (_, other) => panic!("attestation {late} s past its deadline: got {other:?}"),
        }
    }
}

/// Several transactions in one block: each event sits at its own log index,
/// ascending, with the hash of the transaction that emitted it.
pub async fn events_in_one_block_are_numbered_in_order(
    l: &dyn LedgerPort,
    chain: &dyn ChainControl,
) {
    let batch = fixtures::patients(179_600, 3, "Same Block");
    chain.set_automine(false).await;
    let (receipts, ()) = futures::join!(
        futures::future::join_all(batch.iter().map(|p| l.register(p))),
        chain.mine_when_pending(batch.len()),
    );
    chain.set_automine(true).await;
    let receipts: Vec<_> = receipts
        .into_iter()
        .map(|r| r.expect("registration in a shared block"))
        .collect();
    let block = receipts[0].block_number;
    assert!(
        receipts.iter().all(|r| r.block_number == block),
        "one block for all: {receipts:?}"
    );
    let events = l.events(block, block).await.expect("events").events;
    assert_eq!(events.len(), batch.len());
    for pair in events.windows(2) {
        assert!(
            pair[0].at.log_index < pair[1].at.log_index,
            "ascending log indices"
        );
        assert_ne!(
            pair[0].at.tx_hash, pair[1].at.tx_hash,
            "one transaction each"
        );
    }
    for e in &events {
        let (_, profile) = receipts
            .iter()
            .zip(&batch)
            .find(|(r, _)| r.tx_hash == e.at.tx_hash)
            .expect("each event names one of the transactions");
        assert_eq!(
            e.event,
            LedgerEvent::registration(profile.clone(), l.signer()),
            "its own event"
        );
    }
}

/// The admin suspends a provider: it creates no records and receives no
/// grants until reinstated; each change is an event; only the admin may.
pub async fn suspended_providers_create_and_receive_nothing(
    l: &dyn LedgerPort,
    chain: &dyn ChainControl,
) {
    let [(patient, pw), (doctor, dw), (center, cw)] = register_trio(l, 179_700).await;
    let (p, d, c) = (patient.hh(), doctor.hh(), center.hh());
    assert_denied(
        "a provider suspending another",
        chain.as_wallet(&dw).await.suspend_provider(c).await,
    );
    match l.suspend_provider(p).await {
        Err(LedgerError::NotFound(_)) => {}
        other => panic!("suspending a patient: expected NotFound, got {other:?}"),
    }
    let suspended = l
        .suspend_provider(c)
        .await
        .expect("admin suspends the center");
    l.suspend_provider(d)
        .await
        .expect("admin suspends the doctor");
    assert!(l.is_suspended(c, ReadAt::Latest).await.expect("read"));
    assert_invalid("suspending twice", l.suspend_provider(c).await);

    let rec = fixtures::record(
        179_700,
        1,
        179_702,
        "Held back",
        "lab-result",
        date(2026, 12, 1),
    );
    let a = consent(l, &cw, &ConsentAction::CreateRecord(rec.clone())).await;
    assert_denied(
        "a suspended center creating a record",
        l.create_record(&rec, &a).await,
    );
    assert_eq!(l.record(rec.id, ReadAt::Latest).await.expect("read"), None);
    let grant = ConsentAction::GrantAccess {
        patient: p,
        grantee: d,
        expires_at: None,
    };
    let a = consent(l, &pw, &grant).await;
    assert_denied(
        "a grant to a suspended doctor",
        l.grant_access(p, d, None, &a).await,
    );
    assert!(!l.has_access(p, d, ReadAt::Latest).await.expect("read"));

    let reinstated = l.reinstate_provider(c).await.expect("admin reinstates");
    assert!(!l.is_suspended(c, ReadAt::Latest).await.expect("read"));
    let at_suspension = l
        .block(suspended.block_number)
        .await
        .expect("block")
        .expect("exists");
    assert!(
        l.is_suspended(c, ReadAt::Block(at_suspension))
            .await
            .expect("read"),
        "suspended at the block that suspended it"
    );
    let a = consent(l, &cw, &ConsentAction::CreateRecord(rec.clone())).await;
    l.create_record(&rec, &a)
        .await
        .expect("a reinstated center creates");
    assert_invalid(
        "reinstating an active provider",
        l.reinstate_provider(c).await,
    );
    let kinds: Vec<LedgerEvent> =
        event_kinds(l, suspended.block_number, reinstated.block_number).await;
    assert_eq!(
        kinds,
        vec![
            LedgerEvent::ProviderSuspended(c),
            LedgerEvent::ProviderSuspended(d),
            LedgerEvent::ProviderReinstated(c),
        ]
    );
    l.reinstate_provider(d).await.expect("the doctor too");
}

/// Record ids cannot be squatted: a provider creates records only with ids
/// in its own namespace (its HH number leading the digits), so it can never
/// take an id another provider will use.
pub async fn record_ids_belong_to_their_creator(l: &dyn LedgerPort) {
    let [(patient, _), (doctor, dw), (center, cw)] = register_trio(l, 179_800).await;
    let theirs = crate::RecordId::for_creator(patient.hh(), center.hh(), 1_700_000_000_555)
        .expect("record id");
    assert!(theirs.is_of_creator(center.hh()) && !theirs.is_of_creator(doctor.hh()));
    let squat = crate::NewRecord {
        id: theirs,
        ..fixtures::record(
            179_800,
            1,
            179_801,
            "Squatted",
            "lab-result",
            date(2026, 12, 2),
        )
    };
    let a = consent(l, &dw, &ConsentAction::CreateRecord(squat.clone())).await;
    assert_invalid(
        "a doctor taking a center's record id",
        l.create_record(&squat, &a).await,
    );
    assert_eq!(l.record(theirs, ReadAt::Latest).await.expect("read"), None);
    let own = crate::NewRecord {
        id: theirs,
        ..fixtures::record(
            179_800,
            1,
            179_802,
            "Own id",
            "lab-result",
            date(2026, 12, 2),
        )
    };
    let a = consent(l, &cw, &ConsentAction::CreateRecord(own.clone())).await;
    l.create_record(&own, &a)
        .await
        .expect("the center uses its own id");
    assert_eq!(
        l.record(theirs, ReadAt::Latest)
            .await
            .expect("read")
            .map(|r| r.creator),
        Some(center.hh())
    );
}

/// The admin role moves in two steps: the admin offers it, the offered
/// wallet accepts. A stranger can neither offer nor accept; the pending
/// admin has no powers until it accepts; a second offer replaces the first;
/// the old admin then loses every admin power (registrars stay as they
/// were); each step is an event and pinned reads see each stage. Hands the
/// role back at the end, so the suite's ledger is admin again.
pub async fn admin_hands_over_in_two_steps(l: &dyn LedgerPort, chain: &dyn ChainControl) {
    let old = l.signer();
    let role = |admin, pending| AdminRole { admin, pending };
    assert_eq!(
        l.admin(ReadAt::Latest).await.expect("admin"),
        role(old, None),
        "the deployer is admin, nothing offered"
    );

    let stranger = TestWallet::from_seed(179_990);
    let as_stranger = chain.as_wallet(&stranger).await;
    assert_denied(
        "a stranger offering itself the admin role",
        as_stranger.transfer_admin(stranger.address()).await,
    );
    assert_denied(
        "accepting when nothing is offered",
        as_stranger.accept_admin().await,
    );

    let first = TestWallet::from_seed(179_991);
    let as_first = chain.as_wallet(&first).await;
    let offered = l
        .transfer_admin(first.address())
        .await
        .expect("the admin offers the role");
    let at_offer = l
        .block(offered.block_number)
        .await
        .expect("block")
        .expect("the offer's block");
    assert_eq!(
        l.admin(ReadAt::Latest).await.expect("admin"),
        role(old, Some(first.address()))
    );
    let helper = TestWallet::from_seed(179_992).address();
    assert_denied(
        "the pending admin naming a registrar before accepting",
        as_first.add_registrar(helper).await,
    );
    assert_denied(
        "a stranger accepting another's offer",
        as_stranger.accept_admin().await,
    );

    let second = TestWallet::from_seed(179_993);
    let as_second = chain.as_wallet(&second).await;
    l.transfer_admin(second.address())
        .await
        .expect("a second offer");
    assert_eq!(
        l.admin(ReadAt::Latest).await.expect("admin"),
        role(old, Some(second.address())),
        "the second offer replaces the first"
    );
    assert_denied("accepting a replaced offer", as_first.accept_admin().await);
    l.add_registrar(helper)
        .await
        .expect("the admin keeps its powers while an offer is pending");

    let accepted = as_second
        .accept_admin()
        .await
        .expect("the pending admin accepts");
    assert_eq!(
        l.admin(ReadAt::Latest).await.expect("admin"),
        role(second.address(), None)
    );
    assert_eq!(
        l.admin(ReadAt::Block(at_offer))
            .await
            .expect("pinned admin"),
        role(old, Some(first.address())),
        "a pinned read sees the handover as it stood"
    );
    assert_denied("accepting twice", as_second.accept_admin().await);
    assert_denied(
        "the old admin naming a registrar",
        l.add_registrar(TestWallet::from_seed(179_994).address())
            .await,
    );
    assert_denied(
        "the old admin removing a registrar",
        l.remove_registrar(helper).await,
    );
    assert_denied(
        "the old admin offering the role again",
        l.transfer_admin(old).await,
    );
    let [_, (doctor, _), _] = register_trio(l, 179_950).await;
    assert_denied(
        "the old admin suspending a provider",
        l.suspend_provider(doctor.hh()).await,
    );
    let removed = as_second
        .remove_registrar(helper)
        .await
        .expect("the new admin removes a registrar");

    assert_eq!(
        event_kinds(l, offered.block_number, accepted.block_number).await,
        vec![
            LedgerEvent::AdminTransferStarted {
                admin: old,
                pending_admin: first.address(),
            },
            LedgerEvent::AdminTransferStarted {
                admin: old,
                pending_admin: second.address(),
            },
            LedgerEvent::RegistrarAdded(helper),
            LedgerEvent::AdminChanged {
                previous: old,
                admin: second.address(),
            },
        ]
    );
    assert_eq!(
        event_kinds(l, removed.block_number, removed.block_number).await,
        vec![LedgerEvent::RegistrarRemoved(helper)]
    );

    // Hand the role back for the rest of the suite.
    as_second
        .transfer_admin(old)
        .await
        .expect("the new admin offers the role back");
    l.accept_admin().await.expect("the old admin accepts it");
    assert_eq!(
        l.admin(ReadAt::Latest).await.expect("admin"),
        role(old, None)
    );
}
