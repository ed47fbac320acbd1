//! Benchmarks of the SQL cache on a SQLite file and on PostgreSQL:
//! ingestion through `apply_blocks` (100,000 events of a realistic mix: 10 %
//! registrations, 80 % record creations, 8 % grants, 1 % revocations and
//! 1 % profile updates, in blocks of 1, 5 and 100 events, batches of about
//! 10,000 events as the sync engine's backfill cuts them
//! (`SyncConfig::batch_events`; `HL_CACHE_BATCH_EVENTS` overrides it), every
//! block final as in a backfill; each block size on a
//! fresh database), record-index upsert throughput (100,000 rows applied in blocks of 100;
//! the events are built before the clock starts, so only writes are timed),
//! profile read latency by HH number, and name-prefix search latency over
//! 100,000 patients. Each ingestion runs again in the cache's initial
//! backfill mode (the clock includes the index rebuild), printed beside the
//! same raw limit; profile reads are also timed while a writer ingests at
//! full speed, beside the same reads with the writer idle. Prints the
//! figures; asserts nothing about speed.
//!
//! PostgreSQL comes from `TEST_DATABASE_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`; start it with
//! `cargo xtask setup`), in a schema of its own that is dropped afterwards;
//! `HEALTHLEDGER_SKIP_POSTGRES=1` leaves PostgreSQL out. `HL_CACHE_BENCH`
//! picks parts, comma-separated: `sqlite`, `postgres` (backends),
//! `ingest`, `backfill`, `reads`, `point` (ingestion with its limit,
//! ingestion in backfill mode, reads under a writer, the upsert, read and
//! search latencies); a category left unnamed runs whole. Unset, everything
//! runs.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use healthledger_cache::SqlCache;
use healthledger_core::testing::{cache, fixtures};
use healthledger_core::{
    AccessGrant, BlockRef, CachePort, ChainEvent, HhNumber, LedgerEvent, MedicalRecord, Name,
    Profile, Timestamp, WalletAddress,
};
use sea_orm::{ConnectOptions, ConnectionTrait as _, Database, DbBackend, Statement};

const RECORDS: u64 = 100_000;
const RECORD_BLOCK: u64 = 100;
const PATIENTS: u32 = 100_000;
const PATIENT_BLOCK: u32 = 1_000;
const READS: usize = 10_000;
const SEARCHES: usize = 2_000;
const INGEST_EVENTS: u64 = 100_000;
const INGEST_BLOCKS: [u64; 3] = [1, 5, 100];
/// The events per `apply_blocks` batch unless `HL_CACHE_BATCH_EVENTS`
/// says otherwise: the sync engine's default (`SyncConfig::batch_events`).
const INGEST_BATCH_EVENTS: u64 = 10_000;

fn batch_events() -> u64 {
    std::env::var("HL_CACHE_BATCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(INGEST_BATCH_EVENTS)
        .max(1)
}

const SYLLABLES: [&str; 16] = [
    "ka", "ra", "mi", "sha", "de", "vi", "no", "lu", "ta", "pe", "ri", "so", "an", "el", "jo", "bu",
];

/// A small deterministic pseudo-random generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn word(&mut self) -> String {
        let n = 2 + self.below(2);
        let mut w: String = (0..n).map(|_| SYLLABLES[self.below(16) as usize]).collect();
        if let Some(first) = w.get_mut(0..1) {
            first.make_ascii_uppercase();
        }
        w
    }
}

fn wallet(i: u64) -> WalletAddress {
    format!("0x{:040x}", i + 1).parse().unwrap()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx]
}

fn report(label: &str, what: &str, mut samples: Vec<Duration>) {
    samples.sort_unstable();
    println!(
        "{label}: {what}: p50 {:.1} µs, p99 {:.1} µs over {} calls",
        percentile(&samples, 0.50).as_secs_f64() * 1e6,
        percentile(&samples, 0.99).as_secs_f64() * 1e6,
        samples.len()
    );
}

/// Applies prepared blocks and returns the seconds the writes took.
async fn apply_timed(c: &SqlCache, blocks: &[(BlockRef, Vec<ChainEvent>)]) -> f64 {
    let start = Instant::now();
    for (block, events) in blocks {
        c.apply_block(block, events).await.unwrap();
    }
    start.elapsed().as_secs_f64()
}

/// The ingestion mix, event by event: in every 100 events, 7 patient and 3
/// doctor registrations first, then 80 record creations, 8 grants, one
/// revocation of an earlier grant and one update of an earlier patient.
fn ingest_events() -> Vec<LedgerEvent> {
    let mut rng = Rng(0x5DEE_CE66_D1CE_4E5B);
    let mut patients: Vec<Profile> = Vec::new();
    let mut doctors: Vec<u32> = Vec::new();
    let mut grants: Vec<AccessGrant> = Vec::new();
    let mut next_hh = 100_000u32;
    let mut serial = 0u64;
    let mut events = Vec::with_capacity(INGEST_EVENTS as usize);
    while (events.len() as u64) < INGEST_EVENTS {
        for k in 0..100u32 {
            let e = match k {
                0..7 => {
                    next_hh += 1;
                    let name = format!("{} {}", rng.word(), rng.word());
                    let p = fixtures::patient(next_hh, wallet(u64::from(next_hh)), &name);
                    patients.push(p.clone());
                    LedgerEvent::registration(p, fixtures::registrar())
                }
                7..10 => {
                    next_hh += 1;
                    doctors.push(next_hh);
                    LedgerEvent::registration(
                        fixtures::doctor(next_hh, wallet(u64::from(next_hh)), "Dr. Bench"),
                        fixtures::registrar(),
                    )
                }
                10..90 => {
                    serial += 1;
                    let patient = patients[rng.below(patients.len() as u64) as usize].hh();
                    let creator = doctors[rng.below(doctors.len() as u64) as usize];
                    LedgerEvent::RecordCreated(MedicalRecord::from_new(
                        fixtures::record(
                            patient.get(),
                            serial,
                            creator,
                            "Complete blood count",
                            if serial.is_multiple_of(3) {
                                "x-ray"
                            } else {
                                "lab-result"
                            },
                            fixtures::date(
                                2025,
                                1 + (serial % 12) as u32,
                                1 + (serial % 28) as u32,
                            ),
                        ),
                        Timestamp(1_750_000_000 + serial),
                    ))
                }
                90..98 => {
                    let patient = patients[rng.below(patients.len() as u64) as usize].hh();
                    let grantee = doctors[rng.below(doctors.len() as u64) as usize];
                    let g = AccessGrant {
                        patient,
                        grantee: HhNumber::new(grantee).unwrap(),
                        granted_at: Timestamp(1_750_000_000),
                        expires_at: None,
                        revoked_at: None,
                    };
                    grants.push(g.clone());
                    LedgerEvent::AccessGranted(g)
                }
                98 => {
                    let g = &grants[rng.below(grants.len() as u64) as usize];
                    LedgerEvent::AccessRevoked {
                        patient: g.patient,
                        grantee: g.grantee,
                        revoked_at: Timestamp(1_760_000_000),
                    }
                }
                _ => {
                    let i = rng.below(patients.len() as u64) as usize;
                    let updated = match patients[i].clone() {
                        Profile::Patient(mut p) => {
                            p.name = Name::new(format!("{} {}", rng.word(), rng.word())).unwrap();
                            Profile::Patient(p)
                        }
                        other => other,
                    };
                    patients[i] = updated.clone();
                    LedgerEvent::ProfileUpdated(updated)
                }
            };
            events.push(e);
        }
    }
    events.truncate(INGEST_EVENTS as usize);
    events
}

/// Ingests `events` in blocks of `per_block` events through `apply_blocks`
/// batches of about [`INGEST_BATCH_EVENTS`] events (all final); prints
/// events/s. The batches are built before the clock starts.
/// With `mode`, the ingestion runs in the cache's initial backfill mode,
/// and the clock includes entering it and the index rebuild that ends it.
async fn ingest(
    label: &str,
    c: &SqlCache,
    events: &[LedgerEvent],
    per_block: u64,
    mode: bool,
) -> f64 {
    let blocks = blocks_from(events, per_block, 1);
    let start = Instant::now();
    if mode {
        c.begin_backfill_mode().await.unwrap();
    }
    apply_batches(c, &blocks, per_block).await;
    let mut rebuild = 0.0;
    if mode {
        let t = Instant::now();
        c.end_backfill_mode().await.unwrap();
        rebuild = t.elapsed().as_secs_f64();
    }
    let secs = start.elapsed().as_secs_f64();
    let rate = events.len() as f64 / secs;
    let how = if mode {
        format!(" in backfill mode (index rebuild {rebuild:.2} s included)")
    } else {
        String::new()
    };
    println!(
        "{label}: ingestion{how}: {} events in blocks of {per_block}, batches of about {} events, in {secs:.2} s = {rate:.0} events/s",
        events.len(),
        batch_events(),
    );
    rate
}

/// `events` in blocks of `per_block`, numbered from `first` on fork 0.
fn blocks_from(
    events: &[LedgerEvent],
    per_block: u64,
    first: u64,
) -> Vec<(BlockRef, Vec<ChainEvent>)> {
    events
        .chunks(per_block as usize)
        .zip(first..)
        .map(|(chunk, n)| {
            let b = cache::block(n, 0);
            (b, cache::in_block(&b, chunk.to_vec()))
        })
        .collect()
}

/// Applies `blocks` as final `apply_blocks` batches of about
/// [`INGEST_BATCH_EVENTS`] events.
async fn apply_batches(c: &SqlCache, blocks: &[(BlockRef, Vec<ChainEvent>)], per_block: u64) {
    let per_batch = (batch_events() / per_block).max(1) as usize;
    for batch in blocks.chunks(per_batch) {
        let last = batch[batch.len() - 1].0.number;
        c.apply_blocks(batch, last).await.unwrap();
    }
}

/// Profile reads by HH number on a cache holding the first fifth of
/// `events`: with the writer idle, then while a writer ingests the rest at
/// full speed (blocks of 100); prints both latencies and the writer's rate.
async fn reads_under_ingestion(label: &str, c: &SqlCache, events: &[LedgerEvent]) {
    let (head, tail) = events.split_at(events.len() / 5);
    let first = blocks_from(head, 100, 1);
    apply_batches(c, &first, 100).await;
    let hhs: Vec<HhNumber> = head
        .iter()
        .filter_map(|e| match e {
            LedgerEvent::PatientRegistered { profile, .. } => Some(profile.hh),
            _ => None,
        })
        .collect();
    let mut rng = Rng(0xA076_1D64_78BD_642F);
    let read = |c: SqlCache, rng: &mut Rng| {
        let hh = hhs[rng.below(hhs.len() as u64) as usize];
        async move {
            let t = Instant::now();
            assert!(c.profile(hh).await.unwrap().is_some());
            t.elapsed()
        }
    };
    let mut idle = Vec::with_capacity(READS);
    for _ in 0..READS {
        idle.push(read(c.clone(), &mut rng).await);
    }
    report(label, "profile read by HH, writer idle", idle);
    let rest = blocks_from(tail, 100, first.len() as u64 + 1);
    let writer = {
        let c = c.clone();
        tokio::spawn(async move {
            let t = Instant::now();
            apply_batches(&c, &rest, 100).await;
            t.elapsed().as_secs_f64()
        })
    };
    let mut busy = Vec::new();
    while !writer.is_finished() {
        busy.push(read(c.clone(), &mut rng).await);
    }
    let secs = writer.await.unwrap();
    report(
        label,
        &format!(
            "profile read by HH while a writer ingests {} events in blocks of 100 ({:.0} events/s meanwhile)",
            tail.len(),
            tail.len() as f64 / secs
        ),
        busy,
    );
}

/// The chain tables an ingestion writes (the undo log stays empty: every
/// block is final).
const INGEST_TABLES: [&str; 7] = [
    "users",
    "patients",
    "doctors",
    "diagnostic_centers",
    "records",
    "grants",
    "journal",
];

/// Prints an ingestion figure beside the raw limit measured right after it:
/// the same 100,000 events, written at `limit_secs` per run.
fn print_limit(label: &str, per_block: u64, rate: f64, what: &str, rows: u64, limit_secs: f64) {
    let limit = INGEST_EVENTS as f64 / limit_secs;
    println!(
        "{label}: raw limit ({what}, the {rows} rows of that ingestion, into the same tables without indexes): {limit_secs:.2} s = {limit:.0} events/s; blocks of {per_block}: {rate:.0} events/s = {:.0} % of the limit",
        100.0 * rate / limit
    );
}

/// SQLite's raw limit: the rows the ingestion left, read out as SQL
/// literals, then inserted with multi-row `INSERT`s of 500 rows into copies
/// of the tables without indexes, keys or triggers, in one transaction.
async fn sqlite_limit(url: &str) -> (u64, f64) {
    let mut opts = ConnectOptions::new(url.to_owned());
    opts.max_connections(1).sqlx_logging(false);
    let db = Database::connect(opts).await.unwrap();
    let mut statements = Vec::new();
    let mut rows = 0u64;
    for table in INGEST_TABLES {
        let cols: Vec<String> = db
            .query_all_raw(Statement::from_string(
                DbBackend::Sqlite,
                format!("SELECT name FROM pragma_table_info('{table}')"),
            ))
            .await
            .unwrap()
            .iter()
            .map(|r| r.try_get::<String>("", "name").unwrap())
            .collect();
        db.execute_unprepared(&format!(
            "CREATE TABLE raw_{table} AS SELECT * FROM {table} WHERE 0"
        ))
        .await
        .unwrap();
        let tuple = cols
            .iter()
            .map(|c| format!("quote({c})"))
            .collect::<Vec<_>>()
            .join(" || ',' || ");
        let tuples: Vec<String> = db
            .query_all_raw(Statement::from_string(
                DbBackend::Sqlite,
                format!("SELECT '(' || {tuple} || ')' AS t FROM {table}"),
            ))
            .await
            .unwrap()
            .iter()
            .map(|r| r.try_get::<String>("", "t").unwrap())
            .collect();
        rows += tuples.len() as u64;
        for chunk in tuples.chunks(500) {
            statements.push(format!(
                "INSERT INTO raw_{table} VALUES {}",
                chunk.join(", ")
            ));
        }
    }
    let start = Instant::now();
    db.execute_unprepared("BEGIN").await.unwrap();
    for s in &statements {
        db.execute_unprepared(s).await.unwrap();
    }
    db.execute_unprepared("COMMIT").await.unwrap();
    let secs = start.elapsed().as_secs_f64();
    db.close().await.unwrap();
    (rows, secs)
}

/// PostgreSQL's raw limit: the rows the ingestion left in `schema`, copied
/// out, then `COPY`d into copies of the tables without indexes or keys
/// (`LIKE … INCLUDING GENERATED`: the search vector is still computed), over the same Unix socket the cache uses when the server is
/// local, with the cache's `synchronous_commit = off`.
async fn postgres_limit(url: &str, schema: &str) -> (u64, f64) {
    use futures::TryStreamExt as _;
    use sea_orm::sqlx::{AssertSqlSafe, Connection as _, Executor as _, postgres};
    let mut opts: postgres::PgConnectOptions = url.parse().unwrap();
    if std::path::Path::new("/var/run/postgresql/.s.PGSQL.5432").exists() {
        opts = opts.socket("/var/run/postgresql");
    }
    let mut conn = postgres::PgConnection::connect_with(&opts).await.unwrap();
    conn.execute(AssertSqlSafe(format!("SET search_path TO \"{schema}\"")))
        .await
        .unwrap();
    conn.execute("SET synchronous_commit = off").await.unwrap();
    let mut data = Vec::new();
    let mut rows = 0u64;
    for table in INGEST_TABLES {
        conn.execute(AssertSqlSafe(format!(
            "CREATE TABLE raw_{table} (LIKE {table} INCLUDING GENERATED)"
        )))
        .await
        .unwrap();
        let chunks: Vec<_> = conn
            .copy_out_raw(&format!("COPY {table} TO STDOUT"))
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap();
        let bytes: Vec<u8> = chunks.concat();
        rows += bytes.iter().filter(|b| **b == b'\n').count() as u64;
        data.push((table, bytes));
    }
    let start = Instant::now();
    for (table, bytes) in &data {
        let mut copy = conn
            .copy_in_raw(&format!("COPY raw_{table} FROM STDIN"))
            .await
            .unwrap();
        copy.send(bytes.as_slice()).await.unwrap();
        copy.finish().await.unwrap();
    }
    let secs = start.elapsed().as_secs_f64();
    conn.close().await.unwrap();
    (rows, secs)
}

async fn run(label: &str, c: &SqlCache) {
    // Upsert throughput: the record index through apply_block. The blocks
    // and their events are built first; only the writes are timed.
    let mut number = 0;
    let mut blocks = Vec::new();
    for b in 0..RECORDS / RECORD_BLOCK {
        number += 1;
        let block = cache::block(number, 0);
        let events: Vec<LedgerEvent> = (0..RECORD_BLOCK)
            .map(|i| {
                let n = b * RECORD_BLOCK + i;
                LedgerEvent::RecordCreated(MedicalRecord::from_new(
                    fixtures::record(
                        100_000 + (n % 50_000) as u32,
                        n,
                        999_000 + (n % 100) as u32,
                        "Complete blood count",
                        if n.is_multiple_of(3) {
                            "x-ray"
                        } else {
                            "lab-result"
                        },
                        fixtures::date(2025, 1 + (n % 12) as u32, 1 + (n % 28) as u32),
                    ),
                    Timestamp(1_750_000_000 + n),
                ))
            })
            .collect();
        blocks.push((block, cache::in_block(&block, events)));
    }
    let secs = apply_timed(c, &blocks).await;
    println!(
        "{label}: record upserts: {RECORDS} rows in blocks of {RECORD_BLOCK} in {secs:.2} s = {:.0} rows/s",
        RECORDS as f64 / secs
    );

    // 100,000 patients with pseudo-random names, built first as well.
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut blocks = Vec::new();
    for b in 0..PATIENTS / PATIENT_BLOCK {
        number += 1;
        let block = cache::block(number, 0);
        let events: Vec<LedgerEvent> = (0..PATIENT_BLOCK)
            .map(|i| {
                let n = b * PATIENT_BLOCK + i;
                let name = format!("{} {}", rng.word(), rng.word());
                LedgerEvent::registration(
                    fixtures::patient(100_000 + n, wallet(u64::from(n)), &name),
                    fixtures::registrar(),
                )
            })
            .collect();
        blocks.push((block, cache::in_block(&block, events)));
    }
    let secs = apply_timed(c, &blocks).await;
    println!(
        "{label}: patient registrations: {PATIENTS} in blocks of {PATIENT_BLOCK} in {secs:.2} s = {:.0} profiles/s",
        f64::from(PATIENTS) / secs
    );

    let mut samples = Vec::with_capacity(READS);
    for _ in 0..READS {
        let hh = HhNumber::new(100_000 + rng.below(u64::from(PATIENTS)) as u32).unwrap();
        let t = Instant::now();
        let p = c.profile(hh).await.unwrap();
        samples.push(t.elapsed());
        assert!(p.is_some());
    }
    report(label, "profile read by HH", samples);

    let mut samples = Vec::with_capacity(SEARCHES);
    let mut hits = 0;
    for _ in 0..SEARCHES {
        let prefix = format!(
            "{}{}",
            SYLLABLES[rng.below(16) as usize],
            &SYLLABLES[rng.below(16) as usize][..1]
        );
        let t = Instant::now();
        let found = c.search_patients(&prefix, 20).await.unwrap();
        samples.push(t.elapsed());
        hits += found.len();
    }
    report(
        label,
        &format!(
            "name-prefix search (limit 20, {:.1} hits on average) over {PATIENTS} patients",
            hits as f64 / SEARCHES as f64
        ),
        samples,
    );
}

/// Whether `HL_CACHE_BENCH` selects `part` of its category (`of`: every
/// part of that category).
fn wanted(part: &str, of: &[&str]) -> bool {
    let Ok(list) = std::env::var("HL_CACHE_BENCH") else {
        return true;
    };
    let named: Vec<&str> = list.split(',').map(str::trim).collect();
    !of.iter().any(|p| named.contains(p)) || named.contains(&part)
}

const BACKENDS: &[&str] = &["sqlite", "postgres"];
const PARTS: &[&str] = &["ingest", "backfill", "reads", "point"];

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (ingesting, backfill) = (wanted("ingest", PARTS), wanted("backfill", PARTS));
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let events = ingest_events();
        if wanted("sqlite", BACKENDS) {
            for (i, per_block) in INGEST_BLOCKS.into_iter().enumerate() {
                // The backfill-mode figure is printed beside the same
                // limit, so the plain ingestion runs for it too.
                if !(ingesting || backfill) {
                    break;
                }
                let url = format!(
                    "sqlite://{}?mode=rwc",
                    dir.path().join(format!("ingest-{i}.db")).display()
                );
                let c = SqlCache::connect(&url).await.unwrap();
                let rate = ingest("SQLite file", &c, &events, per_block, false).await;
                c.close().await.unwrap();
                let (rows, secs) = sqlite_limit(&url).await;
                print_limit(
                    "SQLite file",
                    per_block,
                    rate,
                    "multi-row INSERTs of 500 rows",
                    rows,
                    secs,
                );
                if !backfill {
                    continue;
                }
                let url = format!(
                    "sqlite://{}?mode=rwc",
                    dir.path().join(format!("ingest-mode-{i}.db")).display()
                );
                let c = SqlCache::connect(&url).await.unwrap();
                let rate = ingest("SQLite file", &c, &events, per_block, true).await;
                c.close().await.unwrap();
                print_limit(
                    "SQLite file (backfill mode)",
                    per_block,
                    rate,
                    "multi-row INSERTs of 500 rows, measured above",
                    rows,
                    secs,
                );
            }
            if wanted("reads", PARTS) {
                let reads_url = format!(
                    "sqlite://{}?mode=rwc",
                    dir.path().join("reads.db").display()
                );
                let c = SqlCache::connect(&reads_url).await.unwrap();
                reads_under_ingestion("SQLite file", &c, &events).await;
                c.close().await.unwrap();
            }
            if wanted("point", PARTS) {
                let url = format!(
                    "sqlite://{}?mode=rwc",
                    dir.path().join("bench.db").display()
                );
                let c = SqlCache::connect(&url).await.unwrap();
                run("SQLite file", &c).await;
                c.close().await.unwrap();
            }
        }

        if std::env::var("HEALTHLEDGER_SKIP_POSTGRES").as_deref() == Ok("1") {
            println!("PostgreSQL: left out (HEALTHLEDGER_SKIP_POSTGRES=1)");
            return;
        }
        if !wanted("postgres", BACKENDS) {
            return;
        }
        let pg_url = std::env::var("TEST_DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
        let connect = |schema: String| {
            let url = pg_url.clone();
            async move {
                SqlCache::builder(url)
                    .postgres_schema(schema)
                    .connect()
                    .await
                    .unwrap_or_else(|e| {
                        panic!("PostgreSQL is not usable ({e}); start it with `cargo xtask setup`")
                    })
            }
        };
        let mut schemas = Vec::new();
        for (i, per_block) in INGEST_BLOCKS.into_iter().enumerate() {
            if !(ingesting || backfill) {
                break;
            }
            let schema = format!("hl_cache_bench_{}_ingest_{i}", std::process::id());
            let c = connect(schema.clone()).await;
            let rate = ingest("PostgreSQL", &c, &events, per_block, false).await;
            c.close().await.unwrap();
            let (rows, secs) = postgres_limit(&pg_url, &schema).await;
            print_limit("PostgreSQL", per_block, rate, "COPY", rows, secs);
            schemas.push(schema);
            if !backfill {
                continue;
            }
            let schema = format!("hl_cache_bench_{}_ingest_mode_{i}", std::process::id());
            let c = connect(schema.clone()).await;
            let mode_rate = ingest("PostgreSQL", &c, &events, per_block, true).await;
            c.close().await.unwrap();
            print_limit(
                "PostgreSQL (backfill mode)",
                per_block,
                mode_rate,
                "COPY, measured above",
                rows,
                secs,
            );
            schemas.push(schema);
        }
        if wanted("reads", PARTS) {
            let schema = format!("hl_cache_bench_{}_reads", std::process::id());
            let c = connect(schema.clone()).await;
            reads_under_ingestion("PostgreSQL", &c, &events).await;
            c.close().await.unwrap();
            schemas.push(schema);
        }
        if wanted("point", PARTS) {
            let schema = format!("hl_cache_bench_{}", std::process::id());
            schemas.push(schema.clone());
            let c = connect(schema).await;
            run("PostgreSQL", &c).await;
            c.close().await.unwrap();
        }
        for schema in schemas {
            healthledger_cache::drop_schema(&pg_url, &schema)
                .await
                .unwrap();
        }
    });
}
