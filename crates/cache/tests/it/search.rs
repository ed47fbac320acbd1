//! Searches agree with the in-memory reference on awkward input: hostile
//! FTS5 / tsquery syntax, Unicode names and words, odd prefixes.

use healthledger_cache::SqlCache;
use healthledger_core::testing::{InMemoryCache, TestWallet, fixtures};
use healthledger_core::{B256, CachePort, ChainSource, MedicalRecord, RecordQuery, Timestamp};

use crate::support::{PgSchemas, SqliteFiles, sqlite_memory};

const PATIENTS: [&str; 10] = [
    "Asha Rao",
    "asha Menon",
    "Émile Zola",
    "émilie Durand",
    "Zoë Quinn",
    "İlker Şahin",
    "ǅemal Ćosić",
    "O'Brien Kate",
    "100% Real_Name",
    "Ⅻ Roman",
];

const RECORDS: [(&str, &str); 9] = [
    ("Complete Blood Count", "lab-result"),
    ("Blood-glucose (fasting)", "lab-result"),
    ("Échographie cardiaque", "ÉCHO"),
    ("Straße Test", "x-ray"),
    ("O'Neil \"quoted\" test", "prescription"),
    ("a*b:c & d|e !f (g)", "misc"),
    ("NEAR AND OR NOT", "misc"),
    ("İstanbul scan", "MRI"),
    ("x2 ray\\slash", "x-ray"),
];

const TEXTS: [&str; 30] = [
    "blood",
    "BLOOD count",
    "\"",
    "\"\"",
    "'",
    "''",
    "*",
    "blood*",
    "bloo*",
    "a:b",
    "&|!()",
    "a & b",
    "d|e",
    "!f",
    "(g)",
    "NEAR(blood count)",
    "near",
    "and or not",
    "échographie",
    "echographie",
    "ÉCHO",
    "straße",
    "strasse",
    "istanbul",
    "i̇stanbul",
    "\\",
    "slash",
    "x2",
    "o neil",
    "- ^ + : ' \" *",
];

const PREFIXES: [&str; 14] = [
    "", "a", "ASHA", "é", "É", "émil", "zo", "zoë", "i̇", "ǆ", "o'", "100%", "ⅻ", "%",
];

async fn load(c: &dyn CachePort) {
    let src = ChainSource {
        block_number: 1,
        tx_hash: B256::repeat_byte(1),
    };
    for (i, name) in PATIENTS.iter().enumerate() {
        let n = 600_000 + i as u32;
        c.upsert_profile(
            &fixtures::patient(n, TestWallet::from_seed(u64::from(n)).address(), name),
            src,
        )
        .await
        .unwrap();
    }
    for (i, (test, kind)) in RECORDS.iter().enumerate() {
        let r = MedicalRecord::from_new(
            fixtures::record(
                600_000 + (i % 3) as u32,
                i as u64 + 1,
                600_009,
                test,
                kind,
                fixtures::date(2026, 1 + (i % 2) as u32, 1),
            ),
            Timestamp(1),
        );
        c.upsert_record(&r, src).await.unwrap();
    }
}

async fn agrees_with_reference(c: &SqlCache) {
    let reference = InMemoryCache::new();
    load(&reference).await;
    load(c).await;
    for text in TEXTS {
        let q = RecordQuery {
            text: Some(text.into()),
            limit: 100,
            ..Default::default()
        };
        assert_eq!(
            c.search_records(&q).await.unwrap(),
            reference.search_records(&q).await.unwrap(),
            "text {text:?}"
        );
    }
    for kind in ["écho", "ÉCHO", "echo", "mri", "x-ray", "'", "\"", "%", "_"] {
        let q = RecordQuery {
            record_type: Some(kind.into()),
            limit: 100,
            ..Default::default()
        };
        assert_eq!(
            c.search_records(&q).await.unwrap(),
            reference.search_records(&q).await.unwrap(),
            "type {kind:?}"
        );
    }
    for prefix in PREFIXES {
        for limit in [0, 3, 100] {
            assert_eq!(
                c.search_patients(prefix, limit).await.unwrap(),
                reference.search_patients(prefix, limit).await.unwrap(),
                "prefix {prefix:?}, limit {limit}"
            );
        }
    }
}

#[tokio::test]
async fn searches_agree_on_sqlite() {
    agrees_with_reference(&sqlite_memory().await).await;
    let files = SqliteFiles::new();
    agrees_with_reference(&files.fresh().await.0).await;
}

#[tokio::test]
async fn searches_agree_on_postgres() {
    let pg = PgSchemas::new();
    agrees_with_reference(&pg.fresh().await.0).await;
    pg.cleanup().await;
}
