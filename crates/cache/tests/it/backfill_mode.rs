//! Initial backfill mode on the real backends: the indexes and triggers
//! are really dropped and really rebuilt, and a cache that stopped in the
//! mode (the process gone, the flag committed) is still in it when it is
//! opened again, refuses searches, and finishes the rebuild.

use healthledger_cache::SqlCache;
use healthledger_core::{
    CacheError, CachePort, LedgerEvent, RecordQuery,
    testing::{
        cache::{block, in_block},
        fixtures::{self, TestWallet, date},
    },
};
use sea_orm::{ConnectionTrait as _, DatabaseConnection, Statement};

use crate::support::{PgSchemas, SqliteFiles, pg_url, sqlite_raw};

/// Non-unique indexes and triggers of the chain tables, as the catalog
/// lists them.
async fn secondary(db: &DatabaseConnection) -> i64 {
    let sql = match db.get_database_backend() {
        sea_orm::DbBackend::Postgres => {
            "SELECT COUNT(*) AS n FROM pg_indexes WHERE schemaname = current_schema()
             AND tablename IN ('patients', 'records', 'grants') AND indexdef NOT LIKE 'CREATE UNIQUE %'"
        }
        _ => {
            "SELECT COUNT(*) AS n FROM sqlite_master WHERE type IN ('index', 'trigger')
             AND sql IS NOT NULL AND tbl_name IN ('patients', 'records', 'grants')
             AND sql NOT LIKE 'CREATE UNIQUE %'"
        }
    };
    let row = db
        .query_one_raw(Statement::from_string(db.get_database_backend(), sql))
        .await
        .unwrap()
        .unwrap();
    row.try_get::<i64>("", "n").unwrap()
}

/// Writes a patient, a doctor and a record in the mode, stops without
/// leaving it, reopens with `reopen`, and finishes.
async fn stops_in_the_mode_and_finishes_on_reopen<F, Fut>(
    cache: SqlCache,
    raw: DatabaseConnection,
    reopen: F,
) where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = SqlCache>,
{
    let before = secondary(&raw).await;
    assert!(
        before >= 6,
        "the schema has its secondary indexes: {before}"
    );
    cache.begin_backfill_mode().await.unwrap();
    assert_eq!(secondary(&raw).await, 0, "the mode dropped them");
    let rec = healthledger_core::MedicalRecord::from_new(
        fixtures::record(460_001, 1, 460_100, "Mode Scan", "MRI", date(2024, 1, 2)),
        healthledger_core::Timestamp(1_750_000_000),
    );
    let b = block(1, 0);
    let events = vec![
        LedgerEvent::registration(
            fixtures::patient(
                460_001,
                TestWallet::from_seed(460_001).address(),
                "Mode Asha",
            ),
            fixtures::registrar(),
        ),
        LedgerEvent::registration(
            fixtures::doctor(
                460_100,
                TestWallet::from_seed(460_100).address(),
                "Dr. Mode",
            ),
            fixtures::registrar(),
        ),
        LedgerEvent::RecordCreated(rec.clone()),
    ];
    cache
        .apply_blocks(&[(b, in_block(&b, events))], 1)
        .await
        .unwrap();
    cache.close().await.unwrap();

    let again = reopen().await;
    assert!(again.in_backfill_mode().await.unwrap(), "the mode survives");
    let query = RecordQuery {
        text: Some("scan".into()),
        limit: 10,
        ..RecordQuery::default()
    };
    let err = again.search_records(&query).await.unwrap_err();
    assert!(matches!(err, CacheError::IndexBuilding(_)), "{err}");
    assert!(again.profile(rec.patient).await.unwrap().is_some());
    again.end_backfill_mode().await.unwrap();
    assert_eq!(secondary(&raw).await, before, "all rebuilt");
    assert_eq!(again.search_records(&query).await.unwrap(), vec![rec]);
    assert_eq!(again.search_patients("mode", 5).await.unwrap().len(), 1);
    again.close().await.unwrap();
}

#[tokio::test]
async fn sqlite_finishes_a_backfill_mode_left_by_a_stopped_process() {
    let files = SqliteFiles::new();
    let (cache, url) = files.fresh().await;
    let raw = sqlite_raw(&url).await;
    stops_in_the_mode_and_finishes_on_reopen(cache, raw, || async {
        SqlCache::connect(&url).await.unwrap()
    })
    .await;
}

#[tokio::test]
async fn postgres_finishes_a_backfill_mode_left_by_a_stopped_process() {
    let pg = PgSchemas::new();
    let (cache, schema) = pg.fresh().await;
    let raw = pg.raw(&schema).await;
    stops_in_the_mode_and_finishes_on_reopen(cache, raw, || async {
        SqlCache::builder(pg_url())
            .postgres_schema(schema.clone())
            .connect()
            .await
            .unwrap()
    })
    .await;
    pg.cleanup().await;
}
