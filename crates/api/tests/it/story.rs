//! The seed's story end to end through the facade, on anvil + SQLite and
//! anvil + PostgreSQL, then the app restarted on the same data directory
//! finds the same chain, contract and cache.

use healthledger_api::{App, story};
use healthledger_core::{Role, testing::fixtures};
use healthledger_sync::Outcome;

use crate::support;

async fn the_story_runs(postgres: bool) {
    let (_dir, app) = support::app(postgres).await;
    let mut lines = Vec::new();
    let outcome = story::run(&app, &mut |l: &str| lines.push(l.to_owned()))
        .await
        .unwrap();
    let n = story::REPORT.len() as u64;
    assert_eq!(
        outcome.doctor_reads,
        vec![(false, 0), (true, n), (false, 0)]
    );
    assert_eq!(outcome.resync, Outcome::Created);
    assert_eq!(outcome.access_log_entries, 3);
    assert_eq!(outcome.drift, 0);
    // Every attempt was logged, denied ones included, in order.
    let log = app.cache().access_log(None, 0, 100).await.unwrap();
    let allowed: Vec<bool> = log.iter().map(|e| e.entry.allowed).collect();
    assert_eq!(allowed, vec![false, true, false]);
    // The anchor on chain matches the cache's digest.
    let anchor = app
        .ledger()
        .latest_audit_anchor(healthledger_core::ReadAt::Latest)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        anchor.digest,
        app.cache().access_log_digest(3).await.unwrap()
    );
    // The medical content never reached the cache: only its CID did.
    let record = app.cache().record(outcome.record).await.unwrap().unwrap();
    assert_eq!(record.meta.size, n);
    assert!(lines.iter().any(|l| l.contains("denied (logged)")));
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_story_runs_on_anvil_and_sqlite() {
    the_story_runs(false).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_story_runs_on_anvil_and_postgres() {
    the_story_runs(true).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_run_finds_the_same_chain_and_cache() {
    let dir = tempfile::tempdir().unwrap();
    let app = App::build(support::local_config(dir.path())).await.unwrap();
    assert!(app.is_fresh_local_chain().await);
    let w = fixtures::TestWallet::from_seed(700_001);
    let p = fixtures::patient(700_001, w.address(), "Ravi Kumar");
    let healthledger_core::Profile::Patient(patient) = p.clone() else {
        unreachable!()
    };
    app.register_patient(&healthledger_api::Actor::Operator, patient)
        .await
        .unwrap();
    let contract = app.wiring().contract.clone();
    app.shutdown().await;

    let again = App::build(support::local_config(dir.path())).await.unwrap();
    assert!(!again.is_fresh_local_chain().await);
    assert_eq!(again.wiring().contract, contract);
    let hh = p.hh();
    // On chain (anvil reloaded its state) and in the cache (the SQLite file).
    assert_eq!(
        again
            .ledger()
            .profile(hh, Role::Patient, healthledger_core::ReadAt::Latest)
            .await
            .unwrap(),
        Some(p.clone())
    );
    assert_eq!(again.profile(Role::Patient, hh).await.unwrap(), p);
    assert_eq!(again.cache().profile(hh).await.unwrap(), Some(p));
    again.shutdown().await;
}
