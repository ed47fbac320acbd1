//! Every event the contract emits decodes back into exactly the values that
//! were written, at the positions of the receipts.

use alloy::{
    network::EthereumWallet,
    primitives::{Address, B256},
    providers::{Provider, ProviderBuilder},
    signers::local::PrivateKeySigner,
};
use healthledger_core::{
    AccessGrant, AuditAnchor, ConsentAction, LedgerEvent, LedgerPort, Line, MedicalRecord, Name,
    Profile, ReadAt, Timestamp, TxReceipt, WalletAddress,
    testing::{
        fixtures::{self, date},
        ledger::{consent, register_trio},
    },
};

use crate::support::Node;

/// Raw bindings, for the registrar functions the port does not expose.
mod raw {
    #![allow(clippy::too_many_arguments, missing_docs, unreachable_pub)]
    alloy::sol!(
        #[sol(rpc)]
        TestHealthLedger,
        "contracts/HealthLedger.json"
    );
}
use raw::TestHealthLedger;

async fn block_time(node: &Node, number: u64) -> Timestamp {
    let provider = ProviderBuilder::new().connect_http(node.anvil.endpoint_url());
    let b = provider
        .get_block_by_number(number.into())
        .await
        .unwrap()
        .unwrap();
    Timestamp(b.header.timestamp)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_decodes_to_the_exact_values_written() {
    let node = Node::start().await;
    let l = &node.ledger;
    let admin = WalletAddress::new(node.anvil.addresses()[0]).unwrap();
    let mut expected: Vec<(Option<TxReceipt>, LedgerEvent)> =
        vec![(None, LedgerEvent::RegistrarAdded(admin))];

    let start = l.head().await.unwrap().number + 1;
    let trio = register_trio(l, 300_000).await;
    for (p, _) in &trio {
        expected.push((None, LedgerEvent::registration(p.clone(), admin)));
    }
    let [(patient, pw), (doctor, dw), (center, cw)] = trio;

    // Profile updates of every role, relayed with the owner's signature.
    let mut updates = Vec::new();
    let Profile::Patient(mut pp) = patient.clone() else {
        unreachable!()
    };
    pp.home_address = Line::new("Flat 4, Marine Drive, Mumbai").unwrap();
    updates.push((Profile::Patient(pp), &pw));
    let Profile::Doctor(mut dp) = doctor.clone() else {
        unreachable!()
    };
    dp.hospital = Line::new("General Hospital – Ward ☀ 7").unwrap();
    updates.push((Profile::Doctor(dp), &dw));
    let Profile::DiagnosticCenter(mut cp) = center.clone() else {
        unreachable!()
    };
    cp.name = Name::new("Metro Diagnostics & Imaging").unwrap();
    updates.push((Profile::DiagnosticCenter(cp), &cw));
    for (profile, wallet) in updates {
        let a = consent(l, wallet, &ConsentAction::UpdateProfile(profile.clone())).await;
        let r = l.update_profile(&profile, &a).await.unwrap();
        expected.push((Some(r), LedgerEvent::ProfileUpdated(profile)));
    }

    let rec = fixtures::record(
        300_000,
        77,
        300_002,
        "Thyroid panel",
        "lab-result",
        date(2026, 6, 30),
    );
    let a = consent(l, &cw, &ConsentAction::CreateRecord(rec.clone())).await;
    let r = l.create_record(&rec, &a).await.unwrap();
    let created = MedicalRecord::from_new(rec.clone(), block_time(&node, r.block_number).await);
    assert_eq!(
        l.record(rec.id, ReadAt::Latest).await.unwrap(),
        Some(created.clone())
    );
    expected.push((Some(r), LedgerEvent::RecordCreated(created)));

    let expires = Timestamp(node.now().await + 86_400);
    let action = ConsentAction::GrantAccess {
        patient: patient.hh(),
        grantee: doctor.hh(),
        expires_at: Some(expires),
    };
    let a = consent(l, &pw, &action).await;
    let r = l
        .grant_access(patient.hh(), doctor.hh(), Some(expires), &a)
        .await
        .unwrap();
    let grant = AccessGrant {
        patient: patient.hh(),
        grantee: doctor.hh(),
        granted_at: block_time(&node, r.block_number).await,
        expires_at: Some(expires),
        revoked_at: None,
    };
    assert_eq!(
        l.grant(patient.hh(), doctor.hh(), ReadAt::Latest)
            .await
            .unwrap(),
        Some(grant.clone())
    );
    expected.push((Some(r), LedgerEvent::AccessGranted(grant.clone())));

    let revoke = ConsentAction::RevokeAccess {
        patient: patient.hh(),
        grantee: doctor.hh(),
    };
    let a = consent(l, &pw, &revoke).await;
    let r = l
        .revoke_access(patient.hh(), doctor.hh(), &a)
        .await
        .unwrap();
    let revoked_at = block_time(&node, r.block_number).await;
    assert_eq!(
        l.grant(patient.hh(), doctor.hh(), ReadAt::Latest)
            .await
            .unwrap(),
        Some(AccessGrant {
            revoked_at: Some(revoked_at),
            ..grant
        })
    );
    expected.push((
        Some(r),
        LedgerEvent::AccessRevoked {
            patient: patient.hh(),
            grantee: doctor.hh(),
            revoked_at,
        },
    ));

    let digest = B256::repeat_byte(0x5a);
    let r = l.anchor_audit(digest, 41).await.unwrap();
    expected.push((
        Some(r),
        LedgerEvent::AuditAnchored(AuditAnchor {
            digest,
            last_seq: 41,
            anchored_at: block_time(&node, r.block_number).await,
        }),
    ));

    // Registrar management has no port method: drive it with raw bindings.
    let admin_key: PrivateKeySigner =
        PrivateKeySigner::from_bytes(&B256::from_slice(&node.anvil.keys()[0].to_bytes())).unwrap();
    let provider = ProviderBuilder::new()
        .wallet(EthereumWallet::from(admin_key))
        .connect_http(node.anvil.endpoint_url());
    let contract = TestHealthLedger::new(node.contract, &provider);
    let helper = Address::repeat_byte(0x42);
    contract
        .addRegistrar(helper)
        .send()
        .await
        .unwrap()
        .get_receipt()
        .await
        .unwrap();
    contract
        .removeRegistrar(helper)
        .send()
        .await
        .unwrap()
        .get_receipt()
        .await
        .unwrap();
    let helper = WalletAddress::new(helper).unwrap();
    expected.push((None, LedgerEvent::RegistrarAdded(helper)));
    expected.push((None, LedgerEvent::RegistrarRemoved(helper)));

    let head = l.head().await.unwrap().number;
    let events = l.events(0, head).await.unwrap().events;
    let got: Vec<&LedgerEvent> = events.iter().map(|e| &e.event).collect();
    let want: Vec<&LedgerEvent> = expected.iter().map(|(_, e)| e).collect();
    assert_eq!(got, want);

    // Positions match the receipts and the blocks.
    for (e, (receipt, _)) in events.iter().zip(&expected) {
        if let Some(r) = receipt {
            assert_eq!(
                (e.at.block_number, e.at.block_hash, e.at.tx_hash),
                (r.block_number, r.block_hash, r.tx_hash)
            );
        }
        let b = l.block(e.at.block_number).await.unwrap().unwrap();
        assert_eq!(b.hash, e.at.block_hash);
    }
    assert!(events[1].at.block_number >= start);
}
