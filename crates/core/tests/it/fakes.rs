//! Behaviour specific to the in-memory fakes: forks, shared blocks, time,
//! finality and tampering.

use healthledger_core::{
    Authorization, CachePort, IntegrityReason, LedgerError, LedgerPort, ObjectStatus, ReadAt, Role,
    VaultPort,
    testing::{
        self, InMemoryCache, InMemoryLedger, InMemoryVault, TestWallet, fixtures,
        ledger::register_trio,
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
    assert_eq!(
        l.profile(p.hh(), Role::Patient, ReadAt::Latest)
            .await
            .unwrap(),
        Some(p)
    );
    assert_eq!(
        l.account_of(w.address(), ReadAt::Latest).await.unwrap(),
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
    let old_events = l.events(head.number - 1, head.number).await.unwrap().events;
    l.reorg(2);
    let new_head = l.head().await.unwrap();
    assert_eq!(new_head.number, head.number);
    assert_ne!(new_head.hash, head.hash);
    let fork_point = l.block(head.number - 2).await.unwrap().unwrap();
    assert_eq!(
        l.block(head.number - 1).await.unwrap().unwrap().parent_hash,
        fork_point.hash
    );
    let new_events = l.events(head.number - 1, head.number).await.unwrap().events;
    assert_eq!(
        old_events.iter().map(|e| &e.event).collect::<Vec<_>>(),
        new_events.iter().map(|e| &e.event).collect::<Vec<_>>()
    );
    assert_ne!(old_events[0].at.block_hash, new_events[0].at.block_hash);
    assert_eq!(
        l.registered_count(Role::Patient, ReadAt::Latest)
            .await
            .unwrap(),
        1
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
    assert!(l.has_access(p.hh(), d.hh(), ReadAt::Latest).await.unwrap());
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
        .put(
            testing::vault::patient(1),
            bytes::Bytes::from_static(b"lab result"),
        )
        .await
        .unwrap();
    v.corrupt(&sealed.cid);
    assert_eq!(
        v.get(testing::vault::patient(1), &sealed.cid)
            .await
            .unwrap_err()
            .integrity_reason(),
        Some(IntegrityReason::Tampered)
    );
    assert!(matches!(
        v.verify(&sealed.cid).await.unwrap(),
        ObjectStatus::Corrupt(_)
    ));
}

#[tokio::test]
async fn writes_share_a_block_when_automine_is_off() {
    let l = ledger();
    let before = l.head().await.unwrap();
    l.set_automine(false);
    let batch = fixtures::patients(540_000, 3, "Batch Patient");
    let writes = futures::future::join_all(batch.iter().map(|p| l.register(p)));
    let dup = fixtures::patient(540_000, TestWallet::from_seed(99).address(), "Squatter");
    let (receipts, dup_result, mined) = futures::join!(writes, l.register(&dup), async {
        // Let the three writes queue before sealing the block.
        tokio::task::yield_now().await;
        assert_eq!(
            l.registered_count(Role::Patient, ReadAt::Latest)
                .await
                .unwrap(),
            0,
            "pending writes are not visible to reads"
        );
        l.mine()
    });
    assert!(
        matches!(dup_result, Err(LedgerError::AlreadyExists(_))),
        "a write is checked against the pending state: {dup_result:?}"
    );
    let receipts: Vec<_> = receipts.into_iter().map(Result::unwrap).collect();
    assert_eq!(mined.number, before.number + 1, "one block for all three");
    assert!(receipts.iter().all(|r| r.block_hash == mined.hash));
    let mut txs: Vec<_> = receipts.iter().map(|r| r.tx_hash).collect();
    txs.dedup();
    assert_eq!(txs.len(), 3, "three transactions");
    let events = l.events(mined.number, mined.number).await.unwrap().events;
    let indices: Vec<u64> = events.iter().map(|e| e.at.log_index).collect();
    assert_eq!(indices, vec![0, 1, 2]);
    assert_eq!(
        l.registered_count(Role::Patient, ReadAt::Latest)
            .await
            .unwrap(),
        3
    );
    l.set_automine(true);
    let r = l
        .register(&fixtures::patient(
            540_010,
            TestWallet::from_seed(98).address(),
            "Solo",
        ))
        .await
        .unwrap();
    assert_eq!(
        r.block_number,
        mined.number + 1,
        "automine mines at once again"
    );
}

#[tokio::test]
async fn a_dropped_pending_block_fails_its_writers() {
    let l = ledger();
    let head = l.head().await.unwrap();
    l.set_automine(false);
    let p = fixtures::patient(541_000, TestWallet::from_seed(97).address(), "Dropped");
    let (result, ()) = futures::join!(l.register(&p), async {
        tokio::task::yield_now().await;
        l.rewind(head.number);
    });
    assert!(
        matches!(result, Err(LedgerError::Unavailable(_))),
        "a dropped transaction: {result:?}"
    );
    assert_eq!(
        l.profile(p.hh(), Role::Patient, ReadAt::Latest)
            .await
            .unwrap(),
        None
    );
    assert_eq!(l.mine().number, head.number + 1, "an empty block");
}

#[tokio::test]
async fn the_clock_and_finality_are_settable() {
    let l = ledger();
    let start = l.now();
    l.set_time(healthledger_core::Timestamp(start.0 + 3_600));
    l.mine_empty(1);
    assert_eq!(
        l.now().0,
        start.0 + 3_600,
        "the next block follows the clock"
    );
    let at = healthledger_core::Timestamp(start.0 + 7_200);
    let b = l.mine_at(at).unwrap();
    assert_eq!((l.head().await.unwrap(), l.now()), (b, at));
    assert!(
        matches!(l.mine_at(at), Err(LedgerError::Invalid(_))),
        "time never goes back"
    );
    l.mine_empty(10);
    l.set_finality_depth(4);
    let head = l.head().await.unwrap();
    assert_eq!(l.finalized().await.unwrap().number, head.number - 4);
    l.set_finality_depth(0);
    assert_eq!(l.finalized().await.unwrap(), head);
}

#[tokio::test]
async fn an_undecodable_log_is_quarantined_beside_the_events() {
    let l = ledger();
    let start = l.head().await.unwrap().number + 1;
    register_trio(&l, 542_000).await;
    let bad = l.emit_undecodable("blood group \"Z+\" is not one of the eight");
    register_trio(&l, 542_010).await;
    let batch = l
        .events(start, l.head().await.unwrap().number)
        .await
        .unwrap();
    assert_eq!(
        batch.events.len(),
        6,
        "the good events around it all decode"
    );
    assert_eq!(batch.quarantined.len(), 1);
    let q = &batch.quarantined[0];
    assert_eq!(
        (q.at.block_number, q.at.tx_hash),
        (bad.block_number, bad.tx_hash)
    );
    assert!(q.reason.contains("Z+"), "{}", q.reason);
}
