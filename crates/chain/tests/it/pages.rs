//! The bulk reads' page sizes against the `eth_call` gas a node allows: a
//! full page of the largest values the contract accepts (every text field
//! at its most characters, each character four bytes of UTF-8) costs at
//! most `CALL_GAS_BUDGET`, and reads back whole from an anvil whose
//! `eth_call` cap is that budget (its default block gas limit).

use alloy::{
    network::TransactionBuilder as _,
    primitives::{Address, U256},
    providers::{Provider, ProviderBuilder},
    rpc::types::TransactionRequest,
    sol_types::SolCall,
};
use futures::{StreamExt as _, TryStreamExt as _, stream};
use healthledger_chain::{CALL_GAS_BUDGET, EvmLedger, EvmLedgerConfig, PROFILE_PAGE, RECORD_PAGE};
use healthledger_core::{
    Authorization, BloodGroup, ContentType, DateOfBirth, Email, HhNumber, Label, LedgerPort, Line,
    Name, NewRecord, PatientProfile, Profile, ReadAt, RecordId, RecordMeta, Role, WalletAddress,
    testing::fixtures::{self, TestWallet, date},
};

use crate::support::Node;

alloy::sol! {
    function patientsPage(uint256 offset, uint256 limit);
    function recordsPage(uint256 offset, uint256 limit);
}

/// `n` characters of four UTF-8 bytes each.
fn widest(n: usize) -> String {
    "\u{1D504}".repeat(n)
}

/// An email of the most bytes allowed (254), unique by `n`.
fn longest_email(n: u32) -> Email {
    let local = format!("{n:06}{}", "a".repeat(58));
    let domain = format!("{}.{}.{}", "b".repeat(63), "c".repeat(63), "d".repeat(61));
    Email::new(format!("{local}@{domain}")).unwrap()
}

fn largest_patient(hh: u32) -> Profile {
    Profile::Patient(PatientProfile {
        hh: HhNumber::new(hh).unwrap(),
        wallet: TestWallet::from_seed(u64::from(hh)).address(),
        name: Name::new(widest(Name::MAX_CHARS)).unwrap(),
        date_of_birth: DateOfBirth::new(date(1990, 4, 12)).unwrap(),
        gender: Label::new(widest(Label::MAX_CHARS)).unwrap(),
        blood_group: BloodGroup::AbNeg,
        home_address: Line::new(widest(Line::MAX_CHARS)).unwrap(),
        email: longest_email(hh),
    })
}

fn largest_record(patient: u32, serial: u64, creator: u32) -> NewRecord {
    let patient_hh = HhNumber::new(patient).unwrap();
    let creator_hh = HhNumber::new(creator).unwrap();
    NewRecord {
        id: RecordId::for_creator(patient_hh, creator_hh, serial).unwrap(),
        creator: creator_hh,
        cid: fixtures::cid_of(format!("{patient}-{serial}").as_bytes()),
        meta: RecordMeta {
            test_name: Name::new(widest(Name::MAX_CHARS)).unwrap(),
            record_type: Label::new(widest(Label::MAX_CHARS)).unwrap(),
            date: date(2026, 1, 1),
            content_type: ContentType::new(&format!("application/{}", "x".repeat(115))).unwrap(),
            size: u64::MAX,
        },
    }
}

async fn page_gas(node: &Node, contract: Address, input: Vec<u8>) -> u64 {
    let provider = ProviderBuilder::new().connect_http(node.anvil.endpoint_url());
    let tx = TransactionRequest::default()
        .with_to(contract)
        .with_input(input);
    provider.estimate_gas(tx).await.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn bulk_pages_fit_the_call_gas_budget() {
    let node = Node::start().await;
    let provider = ProviderBuilder::new().connect_http(node.anvil.endpoint_url());
    let block = provider
        .get_block_by_number(alloy::eips::BlockNumberOrTag::Latest)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        block.header.gas_limit, CALL_GAS_BUDGET,
        "the test node's eth_call cap is the budget"
    );

    let center_key = Node::account_key(&node.anvil, 1);
    let center_hh = 999_998;
    let center_wallet = WalletAddress::new(center_key.address()).unwrap();
    node.ledger
        .register(&fixtures::diagnostic_center(
            center_hh,
            center_wallet,
            "Widest Labs",
        ))
        .await
        .unwrap();
    let first = 300_000u32;
    let ledger = &node.ledger;
    stream::iter(first..first + PROFILE_PAGE as u32)
        .map(|hh| async move { ledger.register(&largest_patient(hh)).await.map(drop) })
        .buffer_unordered(32)
        .try_collect::<()>()
        .await
        .unwrap();
    let as_center = EvmLedger::connect(EvmLedgerConfig::new(
        node.anvil.endpoint(),
        node.contract,
        center_key,
    ))
    .await
    .unwrap();
    let as_center = &as_center;
    stream::iter(0..RECORD_PAGE)
        .map(|i| async move {
            let rec = largest_record(first + (i % PROFILE_PAGE) as u32, i, center_hh);
            as_center
                .create_record(&rec, &Authorization::Signer)
                .await
                .map(drop)
        })
        .buffer_unordered(32)
        .try_collect::<()>()
        .await
        .unwrap();

    let limit = U256::from(u64::MAX);
    let patients = page_gas(
        &node,
        node.contract,
        patientsPageCall {
            offset: U256::ZERO,
            limit,
        }
        .abi_encode(),
    )
    .await;
    let records = page_gas(
        &node,
        node.contract,
        recordsPageCall {
            offset: U256::ZERO,
            limit,
        }
        .abi_encode(),
    )
    .await;
    println!(
        "a page of {PROFILE_PAGE} largest patients: {patients} gas; of {RECORD_PAGE} largest records: {records} gas (budget {CALL_GAS_BUDGET})"
    );
    assert!(patients <= CALL_GAS_BUDGET, "{patients} gas");
    assert!(records <= CALL_GAS_BUDGET, "{records} gas");

    // And the adapter reads them whole at a pinned block, a page per call.
    let at = ReadAt::Block(node.ledger.head().await.unwrap());
    let mut read = node
        .ledger
        .profiles(Role::Patient, 0, PROFILE_PAGE, at)
        .await
        .unwrap();
    read.sort_by_key(Profile::hh);
    let wrote: Vec<Profile> = (first..first + PROFILE_PAGE as u32)
        .map(largest_patient)
        .collect();
    assert!(read == wrote, "the largest patients read back changed");
    let read = node.ledger.records(0, RECORD_PAGE, at).await.unwrap();
    assert_eq!(read.len() as u64, RECORD_PAGE);
    let widest_meta = largest_record(first, 0, center_hh).meta;
    assert!(read.iter().all(|r| r.meta == widest_meta));
}
