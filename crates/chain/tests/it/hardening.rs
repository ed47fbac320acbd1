//! What makes the ledger safe to deploy and exact to sync, beyond the core
//! suite: the contract validates every value as the domain does (so every
//! event decodes), a log that still does not decode is quarantined instead
//! of failing its range, `connect` refuses a contract that is not
//! HealthLedger, a read pinned to a block a reorg replaced is a
//! `Conflict`, and a read at `Latest` sees the head block, not the pending
//! one.

use alloy::{
    network::TransactionBuilder as _,
    primitives::{Address, Bytes},
    providers::{Provider, ProviderBuilder},
    rpc::types::TransactionRequest,
    sol_types::SolEvent as _,
};
use healthledger_chain::{EvmLedger, EvmLedgerConfig};
use healthledger_core::{
    BlockRef, ConsentAction, LedgerError, LedgerPort, ReadAt, Role, Timestamp,
    testing::{
        fixtures,
        ledger::{ChainControl as _, consent, register_trio},
    },
};

use crate::support::Node;

// The generated bindings take the contract's argument lists as they are.
#[allow(clippy::too_many_arguments)]
mod abi {
    alloy::sol!(
        #[sol(rpc)]
        #[derive(Debug)]
        HealthLedger,
        "contracts/HealthLedger.json"
    );
}
use abi::HealthLedger;

/// Runtime code that emits one log with only `topic0` and no data, then
/// stops: `PUSH32 topic0, PUSH1 0, PUSH1 0, LOG1, STOP`. Hand-assembled
/// because it is five instructions and no compiler is needed for it.
fn log1_code(topic0: alloy::primitives::B256) -> Bytes {
    let mut code = vec![0x7f];
    code.extend_from_slice(topic0.as_slice());
    code.extend_from_slice(&[0x60, 0x00, 0x60, 0x00, 0xa1, 0x00]);
    code.into()
}

fn provider(node: &Node) -> impl Provider + Clone {
    ProviderBuilder::new().connect_http(node.anvil.endpoint_url())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_contract_refuses_values_the_domain_refuses() {
    let node = Node::start().await;
    let wallet = ProviderBuilder::new()
        .wallet(
            alloy::signers::local::PrivateKeySigner::from_bytes(
                &alloy::primitives::B256::from_slice(&node.anvil.keys()[0].to_bytes()),
            )
            .unwrap(),
        )
        .connect_http(node.anvil.endpoint_url());
    let contract = HealthLedger::new(node.contract, &wallet);
    let good = HealthLedger::Patient {
        hh: 610_000,
        wallet: Address::repeat_byte(0x61),
        name: "Asha Rao".into(),
        dateOfBirth: "1990-02-28".into(),
        gender: "female".into(),
        bloodGroup: "O+".into(),
        homeAddress: "12 Lake Road, Pune".into(),
        email: "asha@example.org".into(),
    };
    let bad: Vec<(&str, HealthLedger::Patient)> = vec![
        (
            "blood group Z+",
            HealthLedger::Patient {
                bloodGroup: "Z+".into(),
                ..good.clone()
            },
        ),
        (
            "an email without @",
            HealthLedger::Patient {
                email: "asha.example.org".into(),
                ..good.clone()
            },
        ),
        (
            "an email without a dotted domain",
            HealthLedger::Patient {
                email: "asha@localhost".into(),
                ..good.clone()
            },
        ),
        (
            "30 February",
            HealthLedger::Patient {
                dateOfBirth: "1990-02-30".into(),
                ..good.clone()
            },
        ),
        (
            "a date that is not ISO",
            HealthLedger::Patient {
                dateOfBirth: "28/02/1990".into(),
                ..good.clone()
            },
        ),
        (
            "an empty name",
            HealthLedger::Patient {
                name: String::new(),
                ..good.clone()
            },
        ),
        (
            "a name with a newline",
            HealthLedger::Patient {
                name: "Asha\nRao".into(),
                ..good.clone()
            },
        ),
        (
            "a name with a trailing space",
            HealthLedger::Patient {
                name: "Asha ".into(),
                ..good.clone()
            },
        ),
        (
            "a 129-character name",
            HealthLedger::Patient {
                name: "é".repeat(129),
                ..good.clone()
            },
        ),
        (
            "an HH number of 5 digits",
            HealthLedger::Patient {
                hh: 99_999,
                ..good.clone()
            },
        ),
        (
            "the zero wallet",
            HealthLedger::Patient {
                wallet: Address::ZERO,
                ..good.clone()
            },
        ),
    ];
    for (what, p) in bad {
        let err = contract.registerPatient(p).call().await.expect_err(what);
        let decoded = err
            .as_decoded_interface_error::<HealthLedger::HealthLedgerErrors>()
            .unwrap_or_else(|| panic!("{what}: not a HealthLedger error: {err}"));
        assert!(
            matches!(decoded, HealthLedger::HealthLedgerErrors::InvalidInput(_)),
            "{what}: {decoded:?}"
        );
    }
    // 128 two-byte characters are 128 characters, as Rust counts them.
    let long = HealthLedger::Patient {
        name: "é".repeat(128),
        ..good.clone()
    };
    contract
        .registerPatient(long)
        .call()
        .await
        .expect("128 characters are fine");
    contract
        .registerPatient(good)
        .call()
        .await
        .expect("the good profile passes");

    let meta = Rules::RecordMeta {
        testName: "CBC".into(),
        recordType: "lab-result".into(),
        date: "2026-01-01".into(),
        contentType: "application/pdf".into(),
        size: 1,
    };
    for (what, cid, meta) in [
        (
            "a 5-byte CID",
            Bytes::from(vec![1u8, 2, 3, 4, 5]),
            meta.clone(),
        ),
        (
            "a CID of another hash",
            Bytes::from([vec![0x01, 0x55, 0x13, 0x20], vec![0; 32]].concat()),
            meta.clone(),
        ),
        (
            "an upper-case content type",
            Bytes::from([vec![0x01, 0x55, 0x12, 0x20], vec![0; 32]].concat()),
            Rules::RecordMeta {
                contentType: "Application/PDF".into(),
                ..meta.clone()
            },
        ),
    ] {
        let err = node_rules(&wallet, &node)
            .await
            .checkRecord(444_444, 4_444_440_000_000_000_001, cid, meta)
            .call()
            .await
            .expect_err(what);
        assert!(
            matches!(
                err.as_decoded_interface_error::<HealthLedger::HealthLedgerErrors>(),
                Some(HealthLedger::HealthLedgerErrors::InvalidInput(_))
            ),
            "{what}: {err}"
        );
    }
}

alloy::sol! {
    #[sol(rpc)]
    #[derive(Debug)]
    interface Rules {
        struct RecordMeta {
            string testName;
            string recordType;
            string date;
            string contentType;
            uint64 size;
        }
        function checkRecord(uint32 creatorHH, uint64 recordId, bytes cid, RecordMeta m) external pure;
    }
}

async fn node_rules<P: Provider + Clone>(p: &P, node: &Node) -> Rules::RulesInstance<P> {
    let rules = HealthLedger::new(node.contract, p.clone())
        .rules()
        .call()
        .await
        .unwrap();
    Rules::new(rules, p.clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_that_does_not_decode_is_quarantined_not_fatal() {
    let node = Node::start().await;
    let l = &node.ledger;
    let start = l.head().await.unwrap().number + 1;
    register_trio(l, 620_000).await;

    // Make the contract's address emit a PatientRegistered log without its
    // indexed topics (as a contract deployed by others might), then put the
    // real code back.
    let p = provider(&node);
    let original = p.get_code_at(node.contract).await.unwrap();
    let topic = HealthLedger::PatientRegistered::SIGNATURE_HASH;
    let _: serde_json::Value = p
        .raw_request("anvil_setCode".into(), (node.contract, log1_code(topic)))
        .await
        .unwrap();
    let sender = node.anvil.addresses()[3];
    let tx = TransactionRequest::default()
        .with_from(sender)
        .with_to(node.contract)
        .with_gas_limit(100_000);
    let _: serde_json::Value = p
        .raw_request("anvil_impersonateAccount".into(), (sender,))
        .await
        .unwrap();
    let receipt = p
        .send_transaction(tx)
        .await
        .unwrap()
        .get_receipt()
        .await
        .unwrap();
    let _: serde_json::Value = p
        .raw_request("anvil_setCode".into(), (node.contract, original))
        .await
        .unwrap();
    register_trio(l, 620_010).await;

    let head = l.head().await.unwrap().number;
    let batch = l.events(start, head).await.expect("the range still reads");
    assert_eq!(batch.events.len(), 6, "every good event around it decodes");
    assert_eq!(batch.quarantined.len(), 1, "{:?}", batch.quarantined);
    let q = &batch.quarantined[0];
    assert_eq!(q.at.tx_hash, receipt.transaction_hash);
    assert_eq!(q.topic, topic);
    assert!(
        q.reason.contains("not a HealthLedger event"),
        "{}",
        q.reason
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_refuses_a_contract_that_is_not_healthledger() {
    let node = Node::start().await;
    let p = provider(&node);
    let impostor = Address::repeat_byte(0x42);
    let _: serde_json::Value = p
        .raw_request(
            "anvil_setCode".into(),
            (impostor, log1_code(alloy::primitives::B256::ZERO)),
        )
        .await
        .unwrap();
    let key = Node::account_key(&node.anvil, 0);
    let err = EvmLedger::connect(EvmLedgerConfig::new(node.anvil.endpoint(), impostor, key))
        .await
        .expect_err("code that is not HealthLedger");
    assert!(
        matches!(
            err,
            healthledger_chain::Error::Config {
                field: "contract",
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("is not HealthLedger"), "{err}");
    assert_eq!(
        node.ledger.deployment_block(),
        1,
        "the first block on a fresh anvil holds the deployment"
    );
}

/// `ReadAt::Latest` is the head block, whose timestamp the contract's rules
/// see, not the pending block, whose timestamp follows the node's clock:
/// with the clock moved past a grant's expiry but no block mined there,
/// the grant is still active.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latest_reads_see_the_head_block_not_the_pending_one() {
    let node = Node::start().await;
    let l = &node.ledger;
    let p = provider(&node);
    let [(patient, pw), (doctor, _), _] = register_trio(l, 640_000).await;
    let (pa, d) = (patient.hh(), doctor.hh());
    let expiry = Timestamp(node.head_time().await.0 + 1_000);
    let action = ConsentAction::GrantAccess {
        patient: pa,
        grantee: d,
        expires_at: Some(expiry),
    };
    let a = consent(l, &pw, &action).await;
    l.grant_access(pa, d, Some(expiry), &a).await.unwrap();
    node.mine_at(Timestamp(expiry.0 - 1)).await;
    let _: serde_json::Value = p
        .raw_request("evm_increaseTime".into(), (100u64,))
        .await
        .unwrap();
    let head = l.head().await.unwrap();
    assert_eq!(
        head.timestamp,
        Timestamp(expiry.0 - 1),
        "no block was mined"
    );
    assert!(
        l.has_access(pa, d, ReadAt::Latest).await.unwrap(),
        "active at the head, one second before its expiry"
    );
    assert!(l.has_access(pa, d, ReadAt::Block(head)).await.unwrap());
    node.mine_at(expiry).await;
    assert!(
        !l.has_access(pa, d, ReadAt::Latest).await.unwrap(),
        "lapsed once a block reaches its expiry"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_pinned_to_a_replaced_block_is_a_conflict() {
    let node = Node::start().await;
    let l = &node.ledger;
    let p = provider(&node);
    let snapshot: serde_json::Value = p.raw_request("evm_snapshot".into(), ()).await.unwrap();
    let first = fixtures::patients(630_000, 1, "First Branch");
    l.register(&first[0]).await.unwrap();
    let old: BlockRef = l.head().await.unwrap();
    let _: serde_json::Value = p
        .raw_request("evm_revert".into(), (snapshot,))
        .await
        .unwrap();
    // The adapter's nonce counter still thinks the reverted write was sent:
    // a fresh adapter on the same key writes the other branch.
    let other = EvmLedger::connect(EvmLedgerConfig::new(
        node.anvil.endpoint(),
        node.contract,
        Node::account_key(&node.anvil, 0),
    ))
    .await
    .unwrap();
    let second = fixtures::patients(630_100, 1, "Second Branch");
    other.register(&second[0]).await.unwrap();
    let new = other.head().await.unwrap();
    assert_eq!(new.number, old.number);
    assert_ne!(new.hash, old.hash);

    let err = other
        .profile(first[0].hh(), Role::Patient, ReadAt::Block(old))
        .await
        .expect_err("the old block is gone");
    assert!(matches!(err, LedgerError::Conflict(_)), "{err}");
    assert_eq!(
        other
            .profile(second[0].hh(), Role::Patient, ReadAt::Block(new))
            .await
            .unwrap(),
        Some(second[0].clone())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consent_typed_data_signed_by_a_wallet_is_accepted() {
    use alloy::{dyn_abi::TypedData, signers::SignerSync as _, signers::local::PrivateKeySigner};
    use healthledger_core::{
        Authorization, ConsentAction, Line, Profile, RelayedSignature, Timestamp,
        testing::fixtures::date,
    };

    let node = Node::start().await;
    let l = &node.ledger;
    let [(patient, pw), (doctor, _), (_, cw)] = register_trio(l, 640_000).await;
    let deadline = Timestamp(Timestamp::now().0 + 3_600);
    let sign = |key: &healthledger_core::testing::fixtures::TestWallet, typed: &TypedData| {
        let signer = PrivateKeySigner::from_bytes(&key.private_key()).unwrap();
        Authorization::Relayed(RelayedSignature {
            signature: signer.sign_dynamic_typed_data_sync(typed).unwrap(),
            deadline,
        })
    };
    let p = provider(&node);
    let contract = HealthLedger::new(node.contract, &p);

    // A profile update: the wallet sees every field of the new profile.
    let Profile::Patient(mut changed) = patient.clone() else {
        unreachable!()
    };
    changed.home_address = Line::new("5 Typed Lane, Mysuru").unwrap();
    let changed = Profile::Patient(changed);
    let json = l
        .consent_typed_data(&ConsentAction::UpdateProfile(changed.clone()), deadline)
        .await
        .unwrap();
    assert_eq!(json["primaryType"], "UpdatePatient");
    assert_eq!(
        json["message"]["profile"]["homeAddress"],
        "5 Typed Lane, Mysuru"
    );
    assert_eq!(json["domain"]["name"], "HealthLedger");
    let typed: TypedData = serde_json::from_value(json).unwrap();
    assert_eq!(
        typed.type_hash().unwrap(),
        contract.UPDATE_PATIENT_TYPEHASH().call().await.unwrap(),
        "the wallet's type hash is the contract's"
    );
    l.update_profile(&changed, &sign(&pw, &typed))
        .await
        .expect("a signature over the typed data is accepted");

    // A record: the wallet sees the CID and every metadata field.
    let rec = fixtures::record(
        640_000,
        1,
        640_002,
        "Typed panel",
        "lab-result",
        date(2026, 5, 5),
    );
    let json = l
        .consent_typed_data(&ConsentAction::CreateRecord(rec.clone()), deadline)
        .await
        .unwrap();
    assert_eq!(json["message"]["meta"]["testName"], "Typed panel");
    let typed: TypedData = serde_json::from_value(json).unwrap();
    assert_eq!(
        typed.type_hash().unwrap(),
        contract.CREATE_RECORD_TYPEHASH().call().await.unwrap()
    );
    l.create_record(&rec, &sign(&cw, &typed))
        .await
        .expect("record by typed data");

    // A grant and a revocation.
    let grant = ConsentAction::GrantAccess {
        patient: patient.hh(),
        grantee: doctor.hh(),
        expires_at: None,
    };
    let typed: TypedData =
        serde_json::from_value(l.consent_typed_data(&grant, deadline).await.unwrap()).unwrap();
    assert_eq!(
        typed.type_hash().unwrap(),
        contract.GRANT_ACCESS_TYPEHASH().call().await.unwrap()
    );
    l.grant_access(patient.hh(), doctor.hh(), None, &sign(&pw, &typed))
        .await
        .expect("grant by typed data");
    let revoke = ConsentAction::RevokeAccess {
        patient: patient.hh(),
        grantee: doctor.hh(),
    };
    let typed: TypedData =
        serde_json::from_value(l.consent_typed_data(&revoke, deadline).await.unwrap()).unwrap();
    assert_eq!(
        typed.type_hash().unwrap(),
        contract.REVOKE_ACCESS_TYPEHASH().call().await.unwrap()
    );
    l.revoke_access(patient.hh(), doctor.hh(), &sign(&pw, &typed))
        .await
        .expect("revoke by typed data");
    assert!(
        !l.has_access(patient.hh(), doctor.hh(), ReadAt::Latest)
            .await
            .unwrap()
    );
}
