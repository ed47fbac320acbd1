//! Connecting migrates; a schema newer than the code is refused; bad URLs
//! and options are named; a cache's schema is dropped whole.

use healthledger_cache::{Error, SqlCache};
use healthledger_core::{CacheError, CachePort as _};
use sea_orm::ConnectionTrait as _;

use crate::support::{PgSchemas, SqliteFiles, sqlite_raw};

const FUTURE: &str = "m29991231_000001_from_a_newer_build";

fn assert_too_new(err: Error) {
    match &err {
        Error::SchemaTooNew { unknown, .. } => assert_eq!(unknown, &vec![FUTURE.to_owned()]),
        other => panic!("expected SchemaTooNew, got {other}"),
    }
}

#[tokio::test]
async fn reconnecting_keeps_data_and_a_newer_schema_is_refused_on_sqlite() {
    let files = SqliteFiles::new();
    let (cache, url) = files.fresh().await;
    let session = healthledger_core::Session {
        token_hash: healthledger_core::SessionTokenHash::of(b"t"),
        hh: healthledger_core::HhNumber::new(100_001).unwrap(),
        wallet: healthledger_core::testing::TestWallet::from_seed(1).address(),
        created_at: healthledger_core::Timestamp(1),
        expires_at: healthledger_core::Timestamp(u64::MAX),
    };
    cache.put_session(&session).await.unwrap();
    cache.close().await.unwrap();

    let again = SqlCache::connect(&url)
        .await
        .expect("re-open migrates nothing");
    assert_eq!(
        again.session(session.token_hash).await.unwrap(),
        Some(session)
    );
    again.close().await.unwrap();

    let raw = sqlite_raw(&url).await;
    raw.execute_unprepared(&format!(
        "INSERT INTO seaql_migrations (version, applied_at) VALUES ('{FUTURE}', 0)"
    ))
    .await
    .unwrap();
    raw.close().await.unwrap();
    assert_too_new(SqlCache::connect(&url).await.expect_err("newer schema"));
}

#[tokio::test]
async fn a_newer_schema_is_refused_on_postgres() {
    let pg = PgSchemas::new();
    let (cache, schema) = pg.fresh().await;
    cache.close().await.unwrap();
    let raw = pg.raw(&schema).await;
    raw.execute_unprepared(&format!(
        "INSERT INTO seaql_migrations (version, applied_at) VALUES ('{FUTURE}', 0)"
    ))
    .await
    .unwrap();
    raw.close().await.unwrap();
    let err = SqlCache::builder(crate::support::pg_url())
        .postgres_schema(schema)
        .connect()
        .await
        .expect_err("newer schema");
    assert_too_new(err);
    pg.cleanup().await;
}

#[tokio::test]
async fn drop_schema_removes_a_cache_and_refuses_a_bad_name() {
    let url = crate::support::pg_url();
    let schema = "hl_cache_test_drop_schema";
    let cache = SqlCache::builder(url.clone())
        .postgres_schema(schema)
        .connect()
        .await
        .unwrap();
    cache.close().await.unwrap();
    let exists = || async {
        let raw = sea_orm::Database::connect(url.clone()).await.unwrap();
        let n = raw
            .query_one_raw(sea_orm::Statement::from_string(
                sea_orm::DbBackend::Postgres,
                format!("SELECT 1 FROM pg_namespace WHERE nspname = '{schema}'"),
            ))
            .await
            .unwrap()
            .is_some();
        raw.close().await.unwrap();
        n
    };
    assert!(exists().await, "connecting created the schema");
    healthledger_cache::drop_schema(&url, schema).await.unwrap();
    assert!(!exists().await, "dropped with its tables");
    // Dropping what is not there is no error; a name that would need
    // quoting is refused before anything runs.
    healthledger_cache::drop_schema(&url, schema).await.unwrap();
    let err = healthledger_cache::drop_schema(&url, "x\" CASCADE; DROP SCHEMA public; --")
        .await
        .expect_err("bad schema name");
    assert!(matches!(err, Error::InvalidSchemaName(_)), "{err}");
}

#[tokio::test]
async fn bad_urls_and_options_are_named() {
    let err = SqlCache::connect("mysql://root@localhost/x")
        .await
        .expect_err("unsupported");
    assert!(matches!(err, Error::UnsupportedUrl { .. }), "{err}");
    assert!(matches!(CacheError::from(err), CacheError::Invalid(_)));

    let err = SqlCache::builder("sqlite::memory:")
        .postgres_schema("x")
        .connect()
        .await
        .expect_err("schema on sqlite");
    assert!(matches!(err, Error::SchemaNeedsPostgres(_)), "{err}");

    let err = SqlCache::builder("postgres://u:hunter2@127.0.0.1:1/x")
        .postgres_schema("Robert'); DROP TABLE users;--")
        .connect()
        .await
        .expect_err("bad schema name");
    assert!(matches!(err, Error::InvalidSchemaName(_)), "{err}");

    let err = SqlCache::connect("sqlite:///nonexistent-dir/x/y.db")
        .await
        .expect_err("missing file without mode=rwc");
    assert!(matches!(err, Error::Connect { .. }), "{err}");
    assert!(matches!(CacheError::from(err), CacheError::Unavailable(_)));
}

#[tokio::test]
async fn unreachable_postgres_is_unavailable_and_hides_the_password() {
    // A loopback port this test bound and released: nothing listens there
    // (rather than assuming some well-known port is closed).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let err = SqlCache::builder(format!("postgres://app:hunter2@127.0.0.1:{port}/cache"))
        .connect_timeout(std::time::Duration::from_secs(1))
        .connect()
        .await
        .expect_err("nothing listens on the released port");
    let msg = err.to_string();
    assert!(!msg.contains("hunter2"), "{msg}");
    assert!(!format!("{err:?}").contains("hunter2"));
    let port_err = CacheError::from(err);
    assert!(matches!(port_err, CacheError::Unavailable(_)), "{port_err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_connects_to_one_new_schema_all_succeed() {
    let pg = PgSchemas::new();
    let (first, schema) = pg.fresh().await;
    first.close().await.unwrap();
    // A second, brand-new schema that four processes open at once.
    let racing = format!("{schema}_race");
    pg.adopt(&racing);
    let connects: Vec<_> = (0..4)
        .map(|_| {
            let b = SqlCache::builder(crate::support::pg_url())
                .postgres_schema(racing.clone())
                .max_connections(1);
            tokio::spawn(async move { b.connect().await })
        })
        .collect();
    for c in connects {
        let cache = c.await.unwrap().expect("every concurrent connect succeeds");
        assert_eq!(cache.counts().await.unwrap().patients, 0);
        cache.close().await.unwrap();
    }
    pg.cleanup().await;
}

/// A database written before migration 4 stored timestamps as plain
/// integers; migrating re-encodes them so that they read back unchanged
/// and still compare with `now`.
#[tokio::test]
async fn timestamps_written_before_migration_4_read_back() {
    use healthledger_core::{AccessGrant, B256, ChainSource, HhNumber, Timestamp};
    let files = SqliteFiles::new();
    let (cache, url) = files.fresh().await;
    let hh = |n| HhNumber::new(n).unwrap();
    let grant = AccessGrant {
        patient: hh(100_001),
        grantee: hh(100_002),
        granted_at: Timestamp(1_750_000_000),
        expires_at: Some(Timestamp(1_800_000_000)),
        revoked_at: None,
    };
    let source = ChainSource {
        block_number: 1,
        tx_hash: B256::ZERO,
    };
    cache.upsert_grant(&grant, source).await.unwrap();
    cache.close().await.unwrap();

    // Turn the file back into what the three first migrations wrote.
    let raw = sqlite_raw(&url).await;
    for sql in [
        "UPDATE grants SET granted_at = granted_at - (-9223372036854775807 - 1),
            expires_at = expires_at - (-9223372036854775807 - 1)",
        "DELETE FROM seaql_migrations WHERE version LIKE '%_000004_%'",
    ] {
        raw.execute_unprepared(sql).await.unwrap();
    }
    raw.close().await.unwrap();

    let again = SqlCache::connect(&url).await.expect("migration 4 runs");
    assert_eq!(
        again.grants_of_patient(hh(100_001)).await.unwrap(),
        vec![grant]
    );
    assert_eq!(
        again
            .patients_of_doctor(hh(100_002), Timestamp(1_799_999_999))
            .await
            .unwrap(),
        vec![hh(100_001)]
    );
}
