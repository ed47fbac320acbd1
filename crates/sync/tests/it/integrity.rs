//! Drift verification and repair: drift injected into a synced cache (on
//! the fake through its port, on SQLite and PostgreSQL with raw SQL) is
//! reported exactly, repaired to zero, and a second repair is a no-op.

use std::sync::Arc;

use healthledger_cache::SqlCache;
use healthledger_core::{
    AccessGrant, CachePort, HhNumber, LedgerPort, Name, Note, Profile, ProfileExtras, ReadAt,
    testing::{InMemoryCache, InMemoryLedger, fixtures},
};
use healthledger_sync::{
    Error, SyncEngine,
    integrity::{ChainValue, DriftReport, EntityKey, FieldDiff, RepairReport},
    plan::Start,
};
use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection};
use serde_json::json;

use crate::{
    anvil::{drop_schema, pg_url, postgres},
    fakes::{BUSY, small_config},
    support::{Script, assert_cache_matches},
};

/// A ledger run through the busy script (and a few more records), and an
/// engine that synced `cache` to it.
pub(crate) async fn synced(cache: Arc<dyn CachePort>) -> (InMemoryLedger, SyncEngine, Script) {
    let ledger = InMemoryLedger::new(fixtures::registrar());
    let mut script = Script::new(620_000);
    for op in BUSY {
        script.run(&ledger, *op).await;
    }
    let engine = SyncEngine::new(
        Arc::new(ledger.clone()),
        cache,
        small_config(Start::Snapshot),
    );
    engine.sync().await.expect("sync");
    (ledger, engine, script)
}

async fn assert_clean(engine: &SyncEngine) -> DriftReport {
    let report = engine.verify_drift().await.expect("verify");
    assert!(report.is_clean(), "expected no drift: {report:#?}");
    report
}

/// Repairs `report`, checks that the cache equals the chain, and that the
/// same repair again changes nothing.
async fn repair_twice(
    engine: &SyncEngine,
    cache: &dyn CachePort,
    ledger: &InMemoryLedger,
    report: &DriftReport,
    expected: RepairReport,
) {
    assert_eq!(engine.repair(report).await.expect("repair"), expected);
    assert_clean(engine).await;
    assert_cache_matches(cache, ledger).await;
    let again = engine.repair(report).await.expect("second repair");
    assert!(
        again.is_noop(),
        "the second repair changed something: {again:?}"
    );
    assert_eq!(again.unchanged, report.len() as u64);
    assert_clean(engine).await;
}

#[tokio::test]
async fn drift_on_the_fakes_is_reported_exactly_and_repaired() {
    let cache = Arc::new(InMemoryCache::new());
    let (ledger, engine, script) = synced(cache.clone()).await;
    let clean = assert_clean(&engine).await;
    assert_eq!(clean.at, cache.checkpoint().await.unwrap().unwrap());
    assert!(clean.chain.profiles >= 5 && clean.chain.records >= 3 && clean.chain.anchor);

    let patient = script.patients[0].0.hh();
    let extras = ProfileExtras {
        notes: Some(Note::new("DB-only, never touched").unwrap()),
        ..Default::default()
    };
    cache.set_extras(patient, &extras).await.unwrap();

    // Delete a record, edit a profile field, add a grant and drop the anchor.
    let record = ledger.records(0, 1, ReadAt::Latest).await.unwrap()[0].clone();
    assert!(cache.remove_record(record.id).await.unwrap());
    let on_chain = cache.profile(patient).await.unwrap().unwrap();
    let Profile::Patient(mut edited) = on_chain.clone() else {
        panic!("a patient")
    };
    edited.name = Name::new("Tampered Name").unwrap();
    cache
        .upsert_profile(&Profile::Patient(edited), src())
        .await
        .unwrap();
    let extra = AccessGrant {
        patient,
        grantee: HhNumber::new(999_998).unwrap(),
        granted_at: healthledger_core::Timestamp(1_750_000_000),
        expires_at: None,
        revoked_at: None,
    };
    cache.upsert_grant(&extra, src()).await.unwrap();
    let anchor = cache.latest_audit_anchor().await.unwrap().unwrap();
    assert!(cache.remove_audit_anchor().await.unwrap());

    let report = engine.verify_drift().await.unwrap();
    assert_eq!(
        report.missing,
        vec![ChainValue::Record(record), ChainValue::Anchor(anchor)]
    );
    assert_eq!(report.stale.len(), 1, "{report:#?}");
    assert_eq!(report.stale[0].chain, ChainValue::Profile(on_chain.clone()));
    assert_eq!(
        report.stale[0].fields,
        vec![FieldDiff {
            field: "name".into(),
            chain: json!(on_chain.name().as_str()),
            cache: json!("Tampered Name"),
        }]
    );
    assert_eq!(
        report.extra,
        vec![EntityKey::Grant {
            patient,
            grantee: extra.grantee
        }]
    );
    // The report is a serde type, rendered as it is.
    let rendered = serde_json::to_value(&report).unwrap();
    assert_eq!(rendered["stale"][0]["fields"][0]["field"], "name");

    repair_twice(
        &engine,
        cache.as_ref(),
        &ledger,
        &report,
        RepairReport {
            upserted: 3,
            removed: 1,
            unchanged: 0,
        },
    )
    .await;
    assert_eq!(cache.extras(patient).await.unwrap(), Some(extras));
}

#[tokio::test]
async fn a_role_change_and_an_extra_profile_are_repaired() {
    let cache = Arc::new(InMemoryCache::new());
    let (ledger, engine, script) = synced(cache.clone()).await;
    // The cache holds a doctor as a patient (remove, then upsert with the
    // other role), and a profile the chain never registered.
    let (doctor, _) = &script.providers[0];
    assert!(cache.remove_profile(doctor.hh()).await.unwrap());
    let as_patient = fixtures::patient(doctor.hh().get(), doctor.wallet(), "Wrong Role");
    cache.upsert_profile(&as_patient, src()).await.unwrap();
    let ghost = fixtures::patient(
        629_999,
        fixtures::TestWallet::from_seed(1).address(),
        "Ghost",
    );
    cache.upsert_profile(&ghost, src()).await.unwrap();

    let report = engine.verify_drift().await.unwrap();
    assert!(report.missing.is_empty());
    assert_eq!(report.extra, vec![EntityKey::Profile { hh: ghost.hh() }]);
    assert_eq!(report.stale.len(), 1);
    let fields: Vec<&str> = report.stale[0]
        .fields
        .iter()
        .map(|f| f.field.as_str())
        .collect();
    assert!(fields.contains(&"role"), "{fields:?}");
    repair_twice(
        &engine,
        cache.as_ref(),
        &ledger,
        &report,
        RepairReport {
            upserted: 1,
            removed: 1,
            unchanged: 0,
        },
    )
    .await;
}

#[tokio::test]
async fn repair_refuses_a_report_the_cache_moved_past() {
    let cache = Arc::new(InMemoryCache::new());
    let (ledger, engine, mut script) = synced(cache.clone()).await;
    let report = assert_clean(&engine).await;
    script.run(&ledger, crate::support::Op::Patient).await;
    engine.sync().await.unwrap();
    let err = engine.repair(&report).await.unwrap_err();
    assert!(matches!(err, Error::NotComparable(_)), "{err}");
}

fn src() -> healthledger_core::ChainSource {
    healthledger_core::ChainSource {
        block_number: 1,
        tx_hash: healthledger_core::B256::ZERO,
    }
}

/// Raw SQL on the cache's database, as an operator (or an attacker) would.
pub(crate) async fn raw(url: &str, schema: Option<&str>) -> DatabaseConnection {
    let mut opts = ConnectOptions::new(url.to_owned());
    opts.max_connections(1).sqlx_logging(false);
    let db = Database::connect(opts).await.expect("raw connection");
    if let Some(s) = schema {
        db.execute_unprepared(&format!("SET search_path TO \"{s}\""))
            .await
            .expect("search path");
    }
    db
}

/// Deletes a record row, edits a patient's name and inserts a grant the
/// chain does not have, all with raw SQL; then expects exactly that drift,
/// a repair to zero, and a no-op second repair.
async fn raw_sql_drift(cache: Arc<SqlCache>, db: &DatabaseConnection) {
    let (ledger, engine, script) = synced(cache.clone()).await;
    assert_clean(&engine).await;
    let record = ledger.records(1, 1, ReadAt::Latest).await.unwrap()[0].clone();
    let patient = script.patients[0].0.hh();
    let on_chain = cache.profile(patient).await.unwrap().unwrap();
    let grant = ledger.grants(0, 1, ReadAt::Latest).await.unwrap()[0].clone();
    let ghost = HhNumber::new(999_997).unwrap();
    for sql in [
        format!(
            "DELETE FROM records WHERE patient = {} AND cid = '{}'",
            record.patient, record.cid
        ),
        format!("UPDATE patients SET name = 'Edited In SQL' WHERE hh = {patient}"),
        format!(
            "INSERT INTO grants (patient, grantee, granted_at, expires_at, revoked_at,
                source_block, source_tx)
             SELECT patient, {ghost}, granted_at, expires_at, revoked_at, source_block, source_tx
             FROM grants WHERE patient = {} AND grantee = {}",
            grant.patient, grant.grantee
        ),
    ] {
        let n = db
            .execute_unprepared(&sql)
            .await
            .expect(&sql)
            .rows_affected();
        assert_eq!(n, 1, "{sql}");
    }

    let report = engine.verify_drift().await.unwrap();
    assert_eq!(report.missing, vec![ChainValue::Record(record)]);
    assert_eq!(report.stale.len(), 1, "{report:#?}");
    assert_eq!(
        report.stale[0].fields,
        vec![FieldDiff {
            field: "name".into(),
            chain: json!(on_chain.name().as_str()),
            cache: json!("Edited In SQL"),
        }]
    );
    assert_eq!(
        report.extra,
        vec![EntityKey::Grant {
            patient: grant.patient,
            grantee: ghost
        }]
    );
    repair_twice(
        &engine,
        cache.as_ref(),
        &ledger,
        &report,
        RepairReport {
            upserted: 2,
            removed: 1,
            unchanged: 0,
        },
    )
    .await;
}

#[tokio::test]
async fn raw_sql_drift_on_sqlite_is_reported_and_repaired() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("cache.db").display()
    );
    let cache = Arc::new(SqlCache::connect(&url).await.unwrap());
    let db = raw(&url, None).await;
    raw_sql_drift(cache, &db).await;
}

#[tokio::test]
async fn raw_sql_drift_on_postgres_is_reported_and_repaired() {
    let (cache, schema) = postgres().await;
    let db = raw(&pg_url(), Some(&schema)).await;
    raw_sql_drift(Arc::new(cache), &db).await;
    drop_schema(&schema).await;
}
