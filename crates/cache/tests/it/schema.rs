//! One schema definition, checked against the previous one: a database made
//! by the raw SQL the migrations ran before (`previous_schema`) and one made
//! by the current migrations have the same tables, columns (affinity or
//! type, nullability, defaults, collation, rowid aliases), keys, foreign
//! keys, checks, indexes and triggers, on SQLite and on PostgreSQL; and the
//! current build opens a database the previous one made, migrates it
//! forward and passes the whole cache conformance suite on it.

use std::collections::BTreeSet;

use healthledger_cache::SqlCache;
use healthledger_core::{CachePort as _, testing::cache};
use sea_orm::{ConnectionTrait as _, DatabaseConnection, Statement};

use crate::{
    previous_schema::{CHAIN_POSTGRES, CHAIN_SQLITE, DB_ONLY_POSTGRES, DB_ONLY_SQLITE},
    support::{PgSchemas, SqliteFiles, pg_url, sqlite_raw},
};

/// What the migration table says the previous build had applied when it
/// had run migrations 1 and 2 and no others.
const APPLIED: &[&str] = &[
    "m20261124_000001_chain_tables",
    "m20261124_000002_db_only_tables",
];

/// Plays the previous build's migrations 1 and 2 on an empty database, as
/// sea-orm-migration records them.
async fn previous_build(db: &DatabaseConnection, statements: &[&[&str]]) {
    for sql in statements.iter().flat_map(|s| s.iter()) {
        db.execute_unprepared(sql).await.expect(sql);
    }
    db.execute_unprepared(
        "CREATE TABLE seaql_migrations (version varchar NOT NULL PRIMARY KEY, applied_at bigint NOT NULL)",
    )
    .await
    .expect("migration table");
    for version in APPLIED {
        db.execute_unprepared(&format!(
            "INSERT INTO seaql_migrations (version, applied_at) VALUES ('{version}', 0)"
        ))
        .await
        .expect("record a migration");
    }
}

async fn strings(db: &DatabaseConnection, sql: &str) -> Vec<Vec<String>> {
    let rows = db
        .query_all_raw(Statement::from_string(db.get_database_backend(), sql))
        .await
        .expect(sql);
    rows.iter()
        .map(|row| {
            (0..)
                .map_while(|i| {
                    row.try_get_by_index::<Option<String>>(i)
                        .or_else(|_| {
                            row.try_get_by_index::<Option<i64>>(i)
                                .map(|v| v.map(|v| v.to_string()))
                        })
                        .or_else(|_| {
                            row.try_get_by_index::<Option<bool>>(i)
                                .map(|v| v.map(|v| v.to_string()))
                        })
                        .ok()
                })
                .map(|v| v.unwrap_or_else(|| "NULL".into()))
                .collect()
        })
        .collect()
}

/// SQLite's type affinity of a declared type (section 3.1 of its datatype
/// documentation), so `INTEGER` and `bigint` compare equal.
fn affinity(declared: &str) -> &'static str {
    let t = declared.to_ascii_uppercase();
    if t.contains("INT") {
        "INTEGER"
    } else if t.contains("CHAR") || t.contains("CLOB") || t.contains("TEXT") {
        "TEXT"
    } else if t.contains("BLOB") || t.is_empty() {
        "BLOB"
    } else if t.contains("REAL") || t.contains("FLOA") || t.contains("DOUB") {
        "REAL"
    } else {
        "NUMERIC"
    }
}

/// The `CHECK (...)` clauses of a `CREATE TABLE`, without quotes or spaces.
fn checks(sql: &str) -> Vec<String> {
    let flat: String = sql
        .to_ascii_lowercase()
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '"' && *c != '`')
        .collect();
    let mut out = Vec::new();
    let mut rest = flat.as_str();
    while let Some(i) = rest.find("check(") {
        let body = &rest[i + 5..];
        let mut depth = 0;
        let end = body
            .char_indices()
            .find_map(|(j, c)| {
                match c {
                    '(' => depth += 1,
                    ')' => depth -= 1,
                    _ => {}
                }
                (depth == 0).then_some(j)
            })
            .unwrap_or(body.len() - 1);
        out.push(format!("check{}", &body[..=end]));
        rest = &body[end..];
    }
    out
}

/// Everything about a SQLite schema that behaviour depends on, one line
/// per fact, sorted.
async fn sqlite_shape(db: &DatabaseConnection) -> BTreeSet<String> {
    let mut facts = BTreeSet::new();
    let objects = strings(
        db,
        "SELECT type, name, tbl_name, COALESCE(sql, '') FROM sqlite_master \
         WHERE name NOT LIKE 'sqlite_%' AND name <> 'seaql_migrations'",
    )
    .await;
    for o in &objects {
        let (kind, name, sql) = (&o[0], &o[1], &o[3]);
        match kind.as_str() {
            "table" => {
                facts.insert(format!("table {name}"));
                for check in checks(sql) {
                    facts.insert(format!("{name}: {check}"));
                }
                if sql.to_ascii_uppercase().starts_with("CREATE VIRTUAL TABLE") {
                    continue;
                }
                let cols = strings(db, &format!("PRAGMA table_info(\"{name}\")")).await;
                let pk_cols: Vec<_> = cols.iter().filter(|c| c[5] != "0").collect();
                if let [pk] = pk_cols.as_slice() {
                    let alias = pk[2].eq_ignore_ascii_case("INTEGER");
                    facts.insert(format!("{name}: rowid alias {alias}"));
                }
                for c in &cols {
                    facts.insert(format!(
                        "{name}.{} #{} {} notnull={} default={} pk={}",
                        c[1],
                        c[0],
                        affinity(&c[2]),
                        c[3],
                        c[4].to_ascii_uppercase(),
                        c[5]
                    ));
                }
                for fk in strings(db, &format!("PRAGMA foreign_key_list(\"{name}\")")).await {
                    facts.insert(format!(
                        "{name}: foreign key {} -> {}({}) on update {} on delete {}",
                        fk[3], fk[2], fk[4], fk[5], fk[6]
                    ));
                }
                for ix in strings(db, &format!("PRAGMA index_list(\"{name}\")")).await {
                    let cols: Vec<String> =
                        strings(db, &format!("PRAGMA index_xinfo(\"{}\")", ix[1]))
                            .await
                            .into_iter()
                            .filter(|c| c[5] == "1")
                            .map(|c| format!("{}{}", c[2], if c[3] == "1" { " desc" } else { "" }))
                            .collect();
                    // Constraint indexes get generated names; their origin and
                    // columns are what matter.
                    let label = if ix[3] == "c" {
                        ix[1].clone()
                    } else {
                        ix[3].clone()
                    };
                    facts.insert(format!(
                        "{name}: index {label} unique={} ({})",
                        ix[2],
                        cols.join(", ")
                    ));
                }
            }
            "trigger" => {
                let flat: String = sql.split_whitespace().collect::<Vec<_>>().join(" ");
                facts.insert(format!("trigger {name}: {flat}"));
            }
            _ => {}
        }
    }
    facts
}

/// Everything about a PostgreSQL schema that behaviour depends on, one
/// line per fact, sorted.
async fn postgres_shape(db: &DatabaseConnection, schema: &str) -> BTreeSet<String> {
    let mut facts = BTreeSet::new();
    let columns = strings(
        db,
        &format!(
            "SELECT table_name::text, column_name::text, ordinal_position::bigint, data_type::text, \
             is_nullable::text, COALESCE(column_default, ''), is_identity::text, \
             COALESCE(identity_generation::text, ''), COALESCE(collation_name::text, ''), \
             COALESCE(generation_expression, '') \
             FROM information_schema.columns WHERE table_schema = '{schema}' \
             AND table_name <> 'seaql_migrations'"
        ),
    )
    .await;
    for c in columns {
        facts.insert(format!(
            "{}.{} #{} {} nullable={} default={} identity={} {} collate={} generated={}",
            c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7], c[8], c[9]
        ));
    }
    let indexes = strings(
        db,
        &format!(
            "SELECT indexname::text, indexdef FROM pg_indexes WHERE schemaname = '{schema}' \
             AND tablename <> 'seaql_migrations'"
        ),
    )
    .await;
    for i in indexes {
        facts.insert(format!("index {}: {}", i[0], i[1].replace(schema, "S")));
    }
    let constraints = strings(
        db,
        &format!(
            "SELECT t.relname::text, c.conname::text, c.contype::text, pg_get_constraintdef(c.oid) \
             FROM pg_constraint c JOIN pg_class t ON t.oid = c.conrelid \
             JOIN pg_namespace n ON n.oid = c.connamespace \
             WHERE n.nspname = '{schema}' AND t.relname <> 'seaql_migrations'"
        ),
    )
    .await;
    for c in constraints {
        facts.insert(format!(
            "constraint {}.{} {}: {}",
            c[0],
            c[1],
            c[2],
            c[3].replace(schema, "S")
        ));
    }
    facts
}

fn assert_same(previous: &BTreeSet<String>, current: &BTreeSet<String>) {
    let only_previous: Vec<_> = previous.difference(current).collect();
    let only_current: Vec<_> = current.difference(previous).collect();
    assert!(
        only_previous.is_empty() && only_current.is_empty(),
        "the schemas differ\nonly in the previous build's:\n  {}\nonly in the current build's:\n  {}",
        only_previous
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join("\n  "),
        only_current
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join("\n  "),
    );
}

/// A SQLite file made by the previous build, then opened (and migrated
/// forward) by this one.
async fn previous_sqlite(files: &SqliteFiles) -> (SqlCache, String) {
    let url = files.url();
    let raw = sqlite_raw(&url).await;
    previous_build(&raw, &[CHAIN_SQLITE, DB_ONLY_SQLITE]).await;
    raw.close().await.expect("close");
    let cache = SqlCache::connect(&url)
        .await
        .expect("open the previous build's database");
    (cache, url)
}

#[tokio::test]
async fn one_definition_gives_the_previous_schema_on_sqlite() {
    let files = SqliteFiles::new();
    let (current, current_url) = files.fresh().await;
    current.close().await.expect("close");
    let (previous, previous_url) = previous_sqlite(&files).await;
    previous.close().await.expect("close");
    let current = sqlite_raw(&current_url).await;
    let previous = sqlite_raw(&previous_url).await;
    let shape = sqlite_shape(&current).await;
    assert!(shape.len() > 100, "the shape covers the schema: {shape:#?}");
    assert_same(&sqlite_shape(&previous).await, &shape);
}

#[tokio::test]
async fn the_previous_builds_sqlite_database_passes_the_conformance_suite() {
    let files = SqliteFiles::new();
    cache::all(|| async { previous_sqlite(&files).await.0 }).await;
}

#[tokio::test]
async fn one_definition_gives_the_previous_schema_on_postgres() {
    let pg = PgSchemas::new();
    let (current, schema) = pg.fresh().await;
    current.close().await.expect("close");

    let previous_schema = format!("{schema}_previous");
    pg.adopt(&previous_schema);
    let admin = pg.raw("public").await;
    admin
        .execute_unprepared(&format!("CREATE SCHEMA \"{previous_schema}\""))
        .await
        .expect("create schema");
    admin.close().await.expect("close");
    let raw = pg.raw(&previous_schema).await;
    previous_build(&raw, &[CHAIN_POSTGRES, DB_ONLY_POSTGRES]).await;
    raw.close().await.expect("close");
    let migrated = SqlCache::builder(pg_url())
        .postgres_schema(previous_schema.clone())
        .connect()
        .await
        .expect("open the previous build's database");
    // The migrated database works as a cache.
    let session = healthledger_core::Session {
        token_hash: healthledger_core::SessionTokenHash::of(b"previous"),
        hh: healthledger_core::HhNumber::new(100_002).expect("hh"),
        wallet: healthledger_core::testing::TestWallet::from_seed(2).address(),
        created_at: healthledger_core::Timestamp(1),
        expires_at: healthledger_core::Timestamp(u64::MAX),
    };
    migrated.put_session(&session).await.expect("write");
    assert_eq!(
        migrated.session(session.token_hash).await.expect("read"),
        Some(session.clone())
    );
    migrated
        .delete_session(session.token_hash)
        .await
        .expect("delete");
    migrated.close().await.expect("close");

    let current = pg.raw(&schema).await;
    let previous = pg.raw(&previous_schema).await;
    let shape = postgres_shape(&current, &schema).await;
    assert!(shape.len() > 100, "the shape covers the schema: {shape:#?}");
    let previous_shape = postgres_shape(&previous, &previous_schema).await;
    current.close().await.expect("close");
    previous.close().await.expect("close");
    assert_same(&previous_shape, &shape);
    pg.cleanup().await;
}

#[test]
fn affinities_and_checks_are_read_as_sqlite_reads_them() {
    assert_eq!(affinity("bigint"), "INTEGER");
    assert_eq!(affinity("json_text"), "TEXT");
    assert_eq!(affinity("blob"), "BLOB");
    assert_eq!(
        checks("CREATE TABLE t (id INTEGER CHECK (\"id\" = 1), x CHECK((a) > (b)))"),
        vec!["check(id=1)".to_owned(), "check((a)>(b))".to_owned()]
    );
}
