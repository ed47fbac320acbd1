//! The contract's rules, seen through the adapter: strangers cannot act for
//! others, forged and replayed signatures fail, grants and signatures expire
//! on chain time (anvil time travel), duplicates are refused.

use healthledger_core::{
    Authorization, ConsentAction, LedgerError, LedgerPort, Line, Profile, ReadAt, RelayedSignature,
    Timestamp,
    testing::{
        fixtures::{self, TestWallet, date},
        ledger::{consent, register_trio},
    },
};

use crate::support::Node;

fn assert_denied(err: LedgerError, what: &str) {
    assert!(matches!(err, LedgerError::AccessDenied(_)), "{what}: {err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stranger_cannot_grant_revoke_update_or_create() {
    let node = Node::start().await;
    let l = &node.ledger;
    let [(patient, pw), (doctor, _), (center, _)] = register_trio(l, 200_000).await;
    let stranger = TestWallet::from_seed(200_099);
    let as_stranger = node.ledger_as(&stranger).await;
    let (p, d) = (patient.hh(), doctor.hh());

    let err = as_stranger
        .grant_access(p, d, None, &Authorization::Signer)
        .await
        .unwrap_err();
    assert_denied(err, "stranger grants");

    // The patient's own wallet may act directly (Authorization::Signer).
    let as_patient = node.ledger_as(&pw).await;
    as_patient
        .grant_access(p, d, None, &Authorization::Signer)
        .await
        .expect("patient grants as sender");
    assert!(l.has_access(p, d, ReadAt::Latest).await.unwrap());

    let err = as_stranger
        .revoke_access(p, d, &Authorization::Signer)
        .await
        .unwrap_err();
    assert_denied(err, "stranger revokes");
    assert!(
        l.has_access(p, d, ReadAt::Latest).await.unwrap(),
        "grant survives"
    );

    let Profile::Patient(mut changed) = patient.clone() else {
        unreachable!()
    };
    changed.home_address = Line::new("Somewhere Else 1").unwrap();
    let changed = Profile::Patient(changed);
    let err = as_stranger
        .update_profile(&changed, &Authorization::Signer)
        .await
        .unwrap_err();
    assert_denied(err, "stranger updates");
    assert_eq!(
        l.profile(p, patient.role(), ReadAt::Latest).await.unwrap(),
        Some(patient.clone())
    );

    let rec = fixtures::record(
        200_000,
        1,
        center.hh().get(),
        "ECG",
        "ecg",
        date(2026, 1, 2),
    );
    let err = as_stranger
        .create_record(&rec, &Authorization::Signer)
        .await
        .unwrap_err();
    assert_denied(err, "stranger creates");
    assert_eq!(l.record(rec.id, ReadAt::Latest).await.unwrap(), None);

    as_patient
        .revoke_access(p, d, &Authorization::Signer)
        .await
        .expect("patient revokes as sender");
    assert!(!l.has_access(p, d, ReadAt::Latest).await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_tampered_and_replayed_signatures_are_rejected() {
    let node = Node::start().await;
    let l = &node.ledger;
    let [(patient, pw), (doctor, dw), _] = register_trio(l, 210_000).await;
    let (p, d) = (patient.hh(), doctor.hh());
    let action = ConsentAction::GrantAccess {
        patient: p,
        grantee: d,
        expires_at: None,
    };

    let forged = consent(l, &dw, &action).await;
    assert_denied(
        l.grant_access(p, d, None, &forged).await.unwrap_err(),
        "signed by the grantee",
    );

    // A genuine signature over different terms does not authorize these.
    let genuine = consent(l, &pw, &action).await;
    let later = Timestamp(node.now().await + 10_000);
    assert_denied(
        l.grant_access(p, d, Some(later), &genuine)
            .await
            .unwrap_err(),
        "expiry tampered with",
    );
    let Authorization::Relayed(sig) = genuine else {
        unreachable!()
    };
    let moved_deadline = Authorization::Relayed(RelayedSignature {
        deadline: Timestamp(sig.deadline.0 + 1),
        ..sig
    });
    assert_denied(
        l.grant_access(p, d, None, &moved_deadline)
            .await
            .unwrap_err(),
        "deadline tampered with",
    );

    l.grant_access(p, d, None, &genuine)
        .await
        .expect("the genuine signature works once");
    assert_denied(
        l.grant_access(p, d, None, &genuine).await.unwrap_err(),
        "replayed",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grants_and_signatures_expire_on_chain_time() {
    let node = Node::start().await;
    let l = &node.ledger;
    let [(patient, pw), (doctor, _), (center, cw)] = register_trio(l, 220_000).await;
    let (p, d) = (patient.hh(), doctor.hh());
    let rec = fixtures::record(
        220_000,
        5,
        center.hh().get(),
        "CT scan",
        "ct",
        date(2026, 2, 2),
    );
    let a = consent(l, &cw, &ConsentAction::CreateRecord(rec.clone())).await;
    l.create_record(&rec, &a).await.unwrap();

    let expires = Timestamp(node.now().await + 600);
    let action = ConsentAction::GrantAccess {
        patient: p,
        grantee: d,
        expires_at: Some(expires),
    };
    let a = consent(l, &pw, &action).await;
    l.grant_access(p, d, Some(expires), &a).await.unwrap();
    assert!(l.has_access(p, d, ReadAt::Latest).await.unwrap());
    assert!(l.can_read_record(rec.id, d, ReadAt::Latest).await.unwrap());

    node.advance_time(1_200).await;
    assert!(
        !l.has_access(p, d, ReadAt::Latest).await.unwrap(),
        "expired grant"
    );
    assert!(!l.can_read_record(rec.id, d, ReadAt::Latest).await.unwrap());
    let grant = l.grant(p, d, ReadAt::Latest).await.unwrap().unwrap();
    assert_eq!(
        (grant.expires_at, grant.revoked_at),
        (Some(expires), None),
        "expiry is kept, nothing revoked"
    );

    // A signature whose deadline passed on chain is Invalid.
    let deadline = Timestamp(node.now().await + 60);
    let revoke = ConsentAction::RevokeAccess {
        patient: p,
        grantee: d,
    };
    let digest = l.signing_digest(&revoke, deadline).await.unwrap();
    let auth = Authorization::Relayed(RelayedSignature {
        signature: pw.sign(digest),
        deadline,
    });
    node.advance_time(120).await;
    let err = l.revoke_access(p, d, &auth).await.unwrap_err();
    assert!(
        matches!(err, LedgerError::Invalid(_)),
        "late signature: {err}"
    );
    assert!(err.to_string().contains("Expired"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicates_revert_with_the_right_error() {
    let node = Node::start().await;
    let l = &node.ledger;
    let [(patient, _), _, (center, cw)] = register_trio(l, 230_000).await;

    let err = l.register(&patient).await.unwrap_err();
    assert!(
        matches!(&err, LedgerError::AlreadyExists(m) if m.contains("AlreadyRegistered")),
        "{err}"
    );
    let rec = fixtures::record(
        230_000,
        9,
        center.hh().get(),
        "Urine",
        "lab",
        date(2026, 3, 3),
    );
    let a = consent(l, &cw, &ConsentAction::CreateRecord(rec.clone())).await;
    l.create_record(&rec, &a).await.unwrap();
    let a = consent(l, &cw, &ConsentAction::CreateRecord(rec.clone())).await;
    let err = l.create_record(&rec, &a).await.unwrap_err();
    assert!(
        matches!(&err, LedgerError::AlreadyExists(m) if m.contains("RecordExists")),
        "{err}"
    );
    // A rejected write leaves the signer's nonce usable: the next write lands.
    let w = TestWallet::from_seed(230_050);
    l.register(&fixtures::patient(230_050, w.address(), "Next One"))
        .await
        .expect("a write after rejected ones");
}
