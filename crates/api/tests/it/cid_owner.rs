//! The cross-patient CID attack, end to end on anvil: a registered center
//! calls the contract directly (through the ledger port, with its own
//! consent) to create a record of patient A whose CID points at patient
//! B's sealed object; a doctor A granted, and A themselves, are refused
//! B's content (`AccessDenied`, logged as denied), while B still reads it.

use bytes::Bytes;
use futures::{StreamExt as _, TryStreamExt as _, stream};
use healthledger_api::{Actor, App, ConsentSigner, Error, LocalWallet, RecordDraft};
use healthledger_core::{
    ConsentAction, ContentType, HhNumber, Label, Name, NewRecord, ReadAt, RecordId, Role,
    VaultError, testing::fixtures,
};

use crate::support;

const B_REPORT: &[u8] = b"%PDF-1.7\npatient B: HIV-1 RNA detected\n%%EOF\n";

fn hh(n: u32) -> HhNumber {
    HhNumber::new(n).unwrap()
}

fn draft() -> RecordDraft {
    RecordDraft {
        test_name: Name::new("Viral load").unwrap(),
        record_type: Label::new("lab-result").unwrap(),
        date: fixtures::date(2026, 11, 30),
        content_type: ContentType::new("application/pdf").unwrap(),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_record_pointing_at_another_patients_object_releases_nothing() {
    let (_dir, app) = support::app(false).await;
    let (a, b, doctor, center) = (hh(555_555), hh(555_556), hh(112_233), hh(444_444));
    let (a_w, b_w, d_w, c_w) = (
        LocalWallet::random(),
        LocalWallet::random(),
        LocalWallet::random(),
        LocalWallet::random(),
    );
    let patient = |n, w: &LocalWallet| match fixtures::patient(n, w.wallet(), "Pat") {
        healthledger_core::Profile::Patient(p) => p,
        _ => unreachable!(),
    };
    app.register_patient(&Actor::Operator, patient(a.get(), &a_w))
        .await
        .unwrap();
    app.register_patient(&Actor::Operator, patient(b.get(), &b_w))
        .await
        .unwrap();
    let healthledger_core::Profile::Doctor(dp) = fixtures::doctor(doctor.get(), d_w.wallet(), "Dr")
    else {
        unreachable!()
    };
    app.register_doctor(&Actor::Operator, dp).await.unwrap();
    let healthledger_core::Profile::DiagnosticCenter(cp) =
        fixtures::diagnostic_center(center.get(), c_w.wallet(), "Labs")
    else {
        unreachable!()
    };
    app.register_diagnostic_center(&Actor::Operator, cp)
        .await
        .unwrap();
    let center_actor = Actor::user(center, Role::DiagnosticCenter, c_w.wallet());
    let a_actor = Actor::user(a, Role::Patient, a_w.wallet());
    let b_actor = Actor::user(b, Role::Patient, b_w.wallet());
    let doctor_actor = Actor::user(doctor, Role::Doctor, d_w.wallet());

    // B's real record, through the facade.
    let file = stream::iter([Ok(Bytes::from_static(B_REPORT))]).boxed();
    let real = app
        .create_record(&center_actor, b, file, draft(), &c_w)
        .await
        .unwrap()
        .record;

    // The attack: a record of A with B's CID, straight to the contract with
    // the center's own consent. The chain cannot know whose object a CID
    // is, so it accepts it.
    let forged = NewRecord {
        id: RecordId::for_creator(a, center, 1).unwrap(),
        creator: center,
        cid: real.cid,
        meta: real.meta.clone(),
    };
    let consent = app
        .consent(&c_w, &ConsentAction::CreateRecord(forged.clone()))
        .await
        .unwrap();
    app.ledger().create_record(&forged, &consent).await.unwrap();
    let on_chain = app
        .ledger()
        .record(forged.id, ReadAt::Latest)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((on_chain.patient, on_chain.cid), (a, real.cid));

    // A grants the doctor; the chain now says the doctor may read it.
    let grant = App::grant_action(a, doctor, None);
    let signed = app.consent(&a_w, &grant).await.unwrap();
    app.grant_access(&a_actor, doctor, None, &signed)
        .await
        .unwrap();
    assert!(
        app.ledger()
            .can_read_record(forged.id, doctor, ReadAt::Latest)
            .await
            .unwrap()
    );
    let before = app.cache().access_log(None, 0, 100).await.unwrap().len();
    for (who, actor) in [
        ("the granted doctor", &doctor_actor),
        ("patient A", &a_actor),
    ] {
        let r = app.read_record(actor, forged.id).await;
        match r {
            Err(Error::AccessDenied(m)) => {
                assert!(!m.contains(&b.to_string()), "{who}: names B: {m}");
            }
            other => panic!("{who}: read B's object through A's record: {other:?}"),
        }
    }
    let log = app.cache().access_log(None, 0, 100).await.unwrap();
    let new: Vec<(HhNumber, bool)> = log[before..]
        .iter()
        .map(|e| (e.entry.actor, e.entry.allowed))
        .collect();
    assert_eq!(new, vec![(doctor, false), (a, false)], "logged as denied");
    // The vault itself refuses the read under A, so no other caller of the
    // port can be tricked either.
    let err = app.vault().get(a, &real.cid).await.unwrap_err();
    assert!(matches!(err, VaultError::WrongPatient(_)), "{err:?}");

    // B's own record is untouched and still reads for B.
    let read = app.read_record(&b_actor, real.id).await.unwrap();
    let bytes: Vec<Bytes> = read.content.try_collect().await.unwrap();
    assert_eq!(bytes.concat(), B_REPORT);
    app.shutdown().await;
}
