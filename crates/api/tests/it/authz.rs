//! Who may do what, flow by flow, on the in-memory fakes (the rules live
//! in the facade, over any ports): registration, record creation, reads,
//! grants and listings as the seed's story runs them; bad files give typed
//! errors and write nothing; a chain refusal after the seal leaves no
//! readable orphan; a cache failure after the chain succeeded still
//! succeeds and says so. The whole table of callers × operations is
//! `matrix.rs`; faults after each step are `faults.rs`.

use std::sync::Arc;

use bytes::Bytes;
use futures::{StreamExt as _, stream};
use healthledger_api::{Actor, App, ConsentSigner, Error, LocalWallet, RecordDraft};
use healthledger_core::{
    ByteStream, CacheError, CachePort, ContentType, HhNumber, Label, LedgerPort, Name,
    ObjectStatus, Profile, ReadAt, Role, Timestamp, VaultPort,
    testing::{
        InMemoryCache, InMemoryLedger, InMemoryVault, MockCachePort, MockVaultPort, fixtures,
    },
};

struct World {
    app: App,
    ledger: Arc<InMemoryLedger>,
    vault: Arc<dyn VaultPort>,
    patient: (Actor, LocalWallet),
    other_patient: (Actor, LocalWallet),
    doctor: (Actor, LocalWallet),
    center: (Actor, LocalWallet),
}

fn hh(n: u32) -> HhNumber {
    HhNumber::new(n).unwrap()
}

fn pdf() -> ByteStream {
    stream::iter([Ok(Bytes::from_static(
        b"%PDF-1.7\nresult: negative\n%%EOF\n",
    ))])
    .boxed()
}

fn draft(content_type: &str) -> RecordDraft {
    RecordDraft {
        test_name: Name::new("Lipid panel").unwrap(),
        record_type: Label::new("lab-result").unwrap(),
        date: fixtures::date(2026, 11, 30),
        content_type: ContentType::new(content_type).unwrap(),
    }
}

async fn world_with(cache: Arc<dyn CachePort>) -> World {
    world_over(cache, Arc::new(InMemoryVault::new())).await
}

async fn world_over(cache: Arc<dyn CachePort>, vault: Arc<dyn VaultPort>) -> World {
    let operator = LocalWallet::random();
    let ledger = Arc::new(InMemoryLedger::new(operator.wallet()));
    let app = App::builder()
        .ledger(ledger.clone())
        .cache(cache)
        .vault(vault.clone())
        .build()
        .unwrap();
    let mut users = Vec::new();
    for (n, role) in [
        (555_555, Role::Patient),
        (555_556, Role::Patient),
        (112_233, Role::Doctor),
        (444_444, Role::DiagnosticCenter),
    ] {
        let w = LocalWallet::random();
        let p = match role {
            Role::Patient => fixtures::patient(n, w.wallet(), "Asha Rao"),
            Role::Doctor => fixtures::doctor(n, w.wallet(), "Dr. Sen"),
            Role::DiagnosticCenter => fixtures::diagnostic_center(n, w.wallet(), "Metro Labs"),
        };
        ledger.register(&p).await.unwrap();
        users.push((Actor::user(hh(n), role, w.wallet()), w));
    }
    let mut users = users.into_iter();
    World {
        app,
        ledger,
        vault,
        patient: users.next().unwrap(),
        other_patient: users.next().unwrap(),
        doctor: users.next().unwrap(),
        center: users.next().unwrap(),
    }
}

async fn world() -> World {
    world_with(Arc::new(InMemoryCache::new())).await
}

fn denied<T: std::fmt::Debug>(r: Result<T, Error>, what: &str) {
    assert!(matches!(r, Err(Error::AccessDenied(_))), "{what}: {r:?}");
}

#[tokio::test]
async fn only_the_operator_registers_providers_and_patients_register_only_themselves() {
    let w = world().await;
    let before = w
        .ledger
        .registered_count(Role::Doctor, ReadAt::Latest)
        .await
        .unwrap();
    let new_doc = LocalWallet::random();
    let Profile::Doctor(doctor) = fixtures::doctor(223_344, new_doc.wallet(), "Dr. New") else {
        unreachable!()
    };
    for actor in [
        w.patient.0,
        w.doctor.0,
        w.center.0,
        Actor::Applicant {
            wallet: new_doc.wallet(),
        },
    ] {
        denied(
            w.app.register_doctor(&actor, doctor.clone()).await,
            "register a doctor",
        );
    }
    assert_eq!(
        w.ledger
            .registered_count(Role::Doctor, ReadAt::Latest)
            .await
            .unwrap(),
        before
    );
    w.app
        .register_doctor(&Actor::Operator, doctor)
        .await
        .unwrap();

    let me = LocalWallet::random();
    let Profile::Patient(patient) = fixtures::patient(600_001, me.wallet(), "Self Reg") else {
        unreachable!()
    };
    let stranger = Actor::Applicant {
        wallet: LocalWallet::random().wallet(),
    };
    denied(
        w.app.register_patient(&stranger, patient.clone()).await,
        "register another wallet",
    );
    denied(
        w.app.register_patient(&w.doctor.0, patient.clone()).await,
        "a doctor registers a patient",
    );
    let done = w
        .app
        .register_patient(
            &Actor::Applicant {
                wallet: me.wallet(),
            },
            patient.clone(),
        )
        .await
        .unwrap();
    assert!(done.cached);
    // The same HH number again is a conflict, never a second profile.
    let again = w.app.register_patient(&Actor::Operator, patient).await;
    assert!(matches!(again, Err(Error::Conflict(_))), "{again:?}");
}

#[tokio::test]
async fn records_are_created_by_providers_with_their_own_consent_only() {
    let w = world().await;
    let patient = hh(555_555);
    let impostor = match w.doctor.0 {
        Actor::User { wallet, .. } => Actor::user(patient, Role::Patient, wallet),
        _ => unreachable!(),
    };
    for (actor, signer) in [
        (w.patient.0, &w.patient.1),
        (w.other_patient.0, &w.other_patient.1),
        (Actor::Operator, &w.center.1),
        (impostor, &w.doctor.1),
        (w.center.0, &w.doctor.1),
    ] {
        let r = w
            .app
            .create_record(&actor, patient, pdf(), draft("application/pdf"), signer)
            .await;
        denied(r, "create a record");
    }
    assert_eq!(w.ledger.record_count(ReadAt::Latest).await.unwrap(), 0);
    for (actor, signer) in [(w.center.0, &w.center.1), (w.doctor.0, &w.doctor.1)] {
        w.app
            .create_record(&actor, patient, pdf(), draft("application/pdf"), signer)
            .await
            .unwrap();
    }
    assert_eq!(w.ledger.record_count(ReadAt::Latest).await.unwrap(), 2);
}

#[tokio::test]
async fn reads_grants_and_listings_follow_the_chain() {
    let w = world().await;
    let patient = hh(555_555);
    let created = w
        .app
        .create_record(
            &w.center.0,
            patient,
            pdf(),
            draft("application/pdf"),
            &w.center.1,
        )
        .await
        .unwrap();
    let id = created.record.id;
    // The patient and the creator read; the doctor and another patient not.
    w.app.read_record(&w.patient.0, id).await.unwrap();
    w.app.read_record(&w.center.0, id).await.unwrap();
    denied(
        w.app.read_record(&w.doctor.0, id).await,
        "doctor before a grant",
    );
    denied(
        w.app.read_record(&w.other_patient.0, id).await,
        "another patient",
    );
    denied(
        w.app.read_record(&Actor::Operator, id).await,
        "the operator",
    );
    denied(
        w.app.records_of_patient(&w.doctor.0, patient).await,
        "doctor lists",
    );

    // Only the patient grants, with their own wallet's consent.
    let doctor = hh(112_233);
    let action = App::grant_action(patient, doctor, None);
    let by_doctor = w.app.consent(&w.doctor.1, &action).await.unwrap();
    denied(
        w.app
            .grant_access(&w.doctor.0, doctor, None, &by_doctor)
            .await,
        "doctor grants itself",
    );
    let wrong = w
        .app
        .grant_access(&w.patient.0, doctor, None, &by_doctor)
        .await;
    assert!(
        wrong.is_err(),
        "a consent by another wallet is refused: {wrong:?}"
    );
    assert!(
        !w.ledger
            .has_access(patient, doctor, ReadAt::Latest)
            .await
            .unwrap()
    );
    let past = w
        .app
        .grant_access(&w.patient.0, doctor, Some(Timestamp(1)), &by_doctor)
        .await;
    assert!(matches!(past, Err(Error::Invalid(_))), "{past:?}");
    let consent = w.app.consent(&w.patient.1, &action).await.unwrap();
    w.app
        .grant_access(&w.patient.0, doctor, None, &consent)
        .await
        .unwrap();
    w.app.read_record(&w.doctor.0, id).await.unwrap();
    assert_eq!(
        w.app
            .records_of_patient(&w.doctor.0, patient)
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        w.app.patients_of_doctor(&w.doctor.0, doctor).await.unwrap(),
        vec![patient]
    );
    denied(
        w.app.patients_of_doctor(&w.center.0, doctor).await,
        "center lists doctor's patients",
    );

    // Grants and the access log are the patient's alone.
    assert_eq!(
        w.app
            .grants_of_patient(&w.patient.0, patient)
            .await
            .unwrap()
            .len(),
        1
    );
    denied(
        w.app.grants_of_patient(&w.doctor.0, patient).await,
        "doctor lists grants",
    );
    denied(
        w.app.grants_of_patient(&w.other_patient.0, patient).await,
        "other patient lists grants",
    );
    let log = w.app.record_access_log(&w.patient.0, id).await.unwrap();
    assert_eq!(
        log.iter().map(|e| e.entry.allowed).collect::<Vec<_>>(),
        vec![true, true, false, false, true]
    );
    denied(
        w.app.record_access_log(&w.doctor.0, id).await,
        "doctor reads the access log",
    );

    // Revocation takes effect at once.
    let revoke = App::revoke_action(patient, doctor);
    let consent = w.app.consent(&w.patient.1, &revoke).await.unwrap();
    w.app
        .revoke_access(&w.patient.0, doctor, &consent)
        .await
        .unwrap();
    denied(
        w.app.read_record(&w.doctor.0, id).await,
        "doctor after revocation",
    );

    // Notifications: the grantee was told; another user's cannot be marked.
    let mine = w.app.notifications(&w.doctor.0, false).await.unwrap();
    assert!(mine.len() >= 2, "{mine:?}");
    let theirs = w.app.mark_notification_read(&w.patient.0, mine[0].id).await;
    assert!(matches!(theirs, Err(Error::NotFound(_))), "{theirs:?}");
    w.app
        .mark_notification_read(&w.doctor.0, mine[0].id)
        .await
        .unwrap();

    // Erasure: the patient or the operator only; then nothing decrypts.
    denied(
        w.app.erase_patient(&w.doctor.0, patient).await,
        "doctor erases",
    );
    denied(
        w.app.erase_patient(&w.other_patient.0, patient).await,
        "other patient erases",
    );
    let erased = w.app.erase_patient(&w.patient.0, patient).await.unwrap();
    assert_eq!(erased.records, 1);
    assert!(!erased.remains_on_chain.is_empty());
    let gone = w.app.read_record(&w.patient.0, id).await;
    assert!(matches!(gone, Err(Error::NotFound(_))), "{gone:?}");
}

#[tokio::test]
async fn bad_files_are_typed_errors_and_write_nothing() {
    let w = world().await;
    let patient = hh(555_555);
    let empty: ByteStream = stream::iter([Ok(Bytes::new())]).boxed();
    let script: ByteStream =
        stream::iter([Ok(Bytes::from_static(b"#!/bin/sh\necho hi\n"))]).boxed();
    let r = w
        .app
        .create_record(
            &w.center.0,
            patient,
            empty,
            draft("application/pdf"),
            &w.center.1,
        )
        .await;
    assert!(matches!(r, Err(Error::Invalid(_))), "{r:?}");
    let r = w
        .app
        .create_record(
            &w.center.0,
            patient,
            script,
            draft("application/pdf"),
            &w.center.1,
        )
        .await;
    assert!(matches!(r, Err(Error::Unsupported(_))), "{r:?}");
    let r = w
        .app
        .create_record(&w.center.0, patient, pdf(), draft("image/png"), &w.center.1)
        .await;
    assert!(
        matches!(r, Err(Error::Unsupported(_))),
        "declared png, is pdf: {r:?}"
    );
    let unknown = hh(999_999);
    let r = w
        .app
        .create_record(
            &w.center.0,
            unknown,
            pdf(),
            draft("application/pdf"),
            &w.center.1,
        )
        .await;
    assert!(matches!(r, Err(Error::NotFound(_))), "{r:?}");

    let small = App::builder()
        .ledger(w.ledger.clone())
        .cache(Arc::new(InMemoryCache::new()))
        .vault(w.vault.clone())
        .settings(healthledger_api::Settings {
            max_file_bytes: 16 * 1024,
            ..healthledger_api::Settings::STANDARD
        })
        .build()
        .unwrap();
    let mut big = b"%PDF-1.7\n".to_vec();
    big.resize(40 * 1024, b' ');
    let chunks: Vec<_> = big
        .chunks(4096)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    let r = small
        .create_record(
            &w.center.0,
            patient,
            stream::iter(chunks).boxed(),
            draft("application/pdf"),
            &w.center.1,
        )
        .await;
    assert!(
        matches!(r, Err(Error::TooLarge { limit: 16384, .. })),
        "{r:?}"
    );
    assert_eq!(w.ledger.record_count(ReadAt::Latest).await.unwrap(), 0);
    let r = w
        .app
        .read_record(&w.patient.0, "record-555555-1".parse().unwrap())
        .await;
    assert!(matches!(r, Err(Error::NotFound(_))), "{r:?}");
}

#[tokio::test]
async fn a_chain_refusal_after_the_seal_leaves_no_readable_orphan() {
    let w = world().await;
    let sealed = w
        .app
        .seal_record(&w.center.0, hh(555_555), pdf(), draft("application/pdf"))
        .await
        .unwrap();
    let cid = sealed.record().cid;
    assert_eq!(w.vault.verify(&cid).await.unwrap(), ObjectStatus::Intact);
    // Consent by the wrong wallet: the chain refuses the record.
    let forged = w.app.consent(&w.doctor.1, &sealed.action()).await.unwrap();
    let r = w.app.commit_record(&w.center.0, sealed, &forged).await;
    assert!(r.is_err(), "{r:?}");
    assert_eq!(w.vault.verify(&cid).await.unwrap(), ObjectStatus::Shredded);
    assert!(w.vault.get(hh(555_555), &cid).await.is_err());
    assert_eq!(w.ledger.record_count(ReadAt::Latest).await.unwrap(), 0);
}

#[tokio::test]
async fn a_vault_failure_writes_nothing_on_chain() {
    let mut vault = MockVaultPort::new();
    vault.expect_put_stream().returning(|_, _| {
        Err(healthledger_core::VaultError::Unavailable(
            "store down".into(),
        ))
    });
    let w = world_over(Arc::new(InMemoryCache::new()), Arc::new(vault)).await;
    let r = w
        .app
        .create_record(
            &w.center.0,
            hh(555_555),
            pdf(),
            draft("application/pdf"),
            &w.center.1,
        )
        .await;
    assert!(matches!(r, Err(Error::Unavailable(_))), "{r:?}");
    assert!(r.as_ref().is_err_and(Error::is_unavailable));
    assert_eq!(w.ledger.record_count(ReadAt::Latest).await.unwrap(), 0);
}

#[tokio::test]
async fn a_cache_failure_after_the_chain_still_succeeds_and_says_so() {
    let mut cache = MockCachePort::new();
    cache
        .expect_upsert_profile()
        .returning(|_, _| Err(CacheError::Unavailable("cache down".into())));
    cache
        .expect_upsert_record()
        .returning(|_, _| Err(CacheError::Unavailable("cache down".into())));
    cache
        .expect_add_notification()
        .returning(|_| Err(CacheError::Unavailable("cache down".into())));
    let w = world_with(Arc::new(cache)).await;
    let created = w
        .app
        .create_record(
            &w.center.0,
            hh(555_555),
            pdf(),
            draft("application/pdf"),
            &w.center.1,
        )
        .await
        .unwrap();
    assert!(!created.cached);
    assert!(
        w.ledger
            .record(created.record.id, ReadAt::Latest)
            .await
            .unwrap()
            .is_some()
    );
    let me = LocalWallet::random();
    let Profile::Patient(p) = fixtures::patient(600_002, me.wallet(), "Cache Down") else {
        unreachable!()
    };
    let reg = w.app.register_patient(&Actor::Operator, p).await.unwrap();
    assert!(!reg.cached);
}
