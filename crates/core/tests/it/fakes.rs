//! Behaviour specific to the in-memory fakes: forks, time, tampering, and
//! a mock standing in for a port.

use std::sync::Arc;

use healthledger_core::{
    Authorization, CachePort, ConsentAction, LedgerError, LedgerPort, ObjectStatus, Role,
    VaultError, VaultPort,
    testing::{
        self, InMemoryCache, InMemoryLedger, InMemoryVault, MockLedgerPort, TestWallet, fixtures,
        ledger::{consent, register_trio},
    },
};

fn ledger() -> InMemoryLedger {
    InMemoryLedger::new(TestWallet::from_seed(1).address())
}

#[tokio::test]
async fn rewind_drops_blocks_and_their_state() {
    let l = ledger();
    let [(p, _), _, _] = register_trio(&l, 500_000).await;
    let before = l.head().await.unwrap();
    let w = TestWallet::from_seed(9);
    l.register(&fixtures::patient(500_010, w.address(), "Late Patient"))
        .await
        .unwrap();
    l.rewind(before.number);
    assert_eq!(l.head().await.unwrap(), before);
    assert_eq!(l.profile(p.hh(), Role::Patient).await.unwrap(), Some(p));
    assert_eq!(
        l.account_of(w.address()).await.unwrap(),
        None,
        "rewound write is gone"
    );
    let r = l
        .register(&fixtures::patient(500_011, w.address(), "Other Branch"))
        .await
        .unwrap();
    assert_eq!(r.block_number, before.number + 1);
}

#[tokio::test]
async fn reorg_reincludes_transactions_under_new_hashes() {
    let l = ledger();
    register_trio(&l, 510_000).await;
    let head = l.head().await.unwrap();
    let old_events = l.events(head.number - 1, head.number).await.unwrap();
    l.reorg(2);
    let new_head = l.head().await.unwrap();
    assert_eq!(new_head.number, head.number);
    assert_ne!(new_head.hash, head.hash);
    let fork_point = l.block(head.number - 2).await.unwrap().unwrap();
    assert_eq!(
        l.block(head.number - 1).await.unwrap().unwrap().parent_hash,
        fork_point.hash
    );
    let new_events = l.events(head.number - 1, head.number).await.unwrap();
    assert_eq!(
        old_events.iter().map(|e| &e.event).collect::<Vec<_>>(),
        new_events.iter().map(|e| &e.event).collect::<Vec<_>>()
    );
    assert_ne!(old_events[0].at.block_hash, new_events[0].at.block_hash);
    assert_eq!(l.registered_count(Role::Patient).await.unwrap(), 1);
}

#[tokio::test]
async fn grants_expire_with_chain_time() {
    let l = ledger();
    let [(p, pw), (d, _), _] = register_trio(&l, 520_000).await;
    let expires = healthledger_core::Timestamp(l.now().0 + 100);
    let action = ConsentAction::GrantAccess {
        patient: p.hh(),
        grantee: d.hh(),
        expires_at: Some(expires),
    };
    let auth = consent(&l, &pw, &action).await;
    l.grant_access(p.hh(), d.hh(), Some(expires), &auth)
        .await
        .unwrap();
    assert!(l.has_access(p.hh(), d.hh()).await.unwrap());
    l.advance_time(200);
    l.mine_empty(1);
    assert!(
        !l.has_access(p.hh(), d.hh()).await.unwrap(),
        "expired grant gives no access"
    );
}

#[tokio::test]
async fn a_patient_signing_directly_needs_no_signature() {
    let l = ledger();
    let [(p, pw), (d, _), _] = register_trio(&l, 530_000).await;
    let as_patient = l.with_signer(pw.address());
    as_patient
        .grant_access(p.hh(), d.hh(), None, &Authorization::Signer)
        .await
        .unwrap();
    assert!(l.has_access(p.hh(), d.hh()).await.unwrap());
    let stranger = l.with_signer(TestWallet::from_seed(77).address());
    let err = stranger
        .register(&fixtures::patient(
            530_050,
            TestWallet::from_seed(78).address(),
            "X Y",
        ))
        .await
        .unwrap_err();
    assert!(matches!(err, LedgerError::AccessDenied(_)), "{err}");
    let err = stranger
        .anchor_audit(Default::default(), 1)
        .await
        .unwrap_err();
    assert!(matches!(err, LedgerError::AccessDenied(_)), "{err}");
}

#[tokio::test]
async fn tampering_with_the_access_log_is_located() {
    let c = InMemoryCache::new();
    testing::cache::access_log_is_hash_chained(&c).await;
    c.tamper_access_log(4);
    let v = c.verify_access_log().await.unwrap();
    assert_eq!(v.first_broken, Some(4));
}

#[tokio::test]
async fn corrupted_objects_fail_integrity() {
    let v = InMemoryVault::new();
    let sealed = v
        .put(bytes::Bytes::from_static(b"lab result"))
        .await
        .unwrap();
    v.corrupt(&sealed.cid);
    assert!(matches!(
        v.get(&sealed.cid).await,
        Err(VaultError::Integrity(_))
    ));
    assert!(matches!(
        v.verify(&sealed.cid).await.unwrap(),
        ObjectStatus::Corrupt(_)
    ));
}

#[tokio::test]
async fn mocks_stand_in_for_ports() {
    let mut mock = MockLedgerPort::new();
    mock.expect_has_access().returning(|_, _| Ok(true));
    let port: Arc<dyn LedgerPort> = Arc::new(mock);
    let hh = |n| healthledger_core::HhNumber::new(n).unwrap();
    assert!(port.has_access(hh(555_555), hh(112_233)).await.unwrap());
}
