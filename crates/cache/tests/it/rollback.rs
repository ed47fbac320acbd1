//! Property: applying random blocks and rolling back to a random point
//! leaves exactly the state of applying only the blocks up to that point,
//! and both agree with the in-memory reference cache.

use healthledger_cache::SqlCache;
use healthledger_core::testing::{InMemoryCache, TestWallet, cache, fixtures};
use healthledger_core::{
    AccessGrant, AuditAnchor, B256, BlockRef, CacheCounts, CachePort, CacheResult, HhNumber,
    LedgerEvent, Line, MedicalRecord, PatientProfile, Profile, RecordQuery, Role, Timestamp,
};
use proptest::prelude::*;

use crate::support::{PgSchemas, skip_postgres, sqlite_memory};

const USERS: u32 = 6;
const NAMES: [&str; 6] = [
    "Asha Rao",
    "asha Menon",
    "Ravi",
    "Émile Zola",
    "Zoë",
    "bala",
];
const TESTS: [&str; 4] = [
    "Complete blood count",
    "Chest X-ray",
    "Blood glucose",
    "MRI knee",
];
const KINDS: [&str; 3] = ["lab-result", "X-ray", "mri"];

#[derive(Debug, Clone)]
enum Ev {
    Register {
        hh: u32,
        role: u8,
        name: usize,
        wallet: Option<u32>,
    },
    Update {
        hh: u32,
        role: u8,
        name: usize,
        wallet: Option<u32>,
        addr: u8,
    },
    Record {
        patient: u32,
        serial: u64,
        creator: u32,
        test: usize,
        kind: usize,
        day: u32,
    },
    Grant {
        patient: u32,
        grantee: u32,
        expires: Option<u64>,
    },
    Revoke {
        patient: u32,
        grantee: u32,
        at: u64,
    },
    Anchor {
        seq: u64,
    },
    Registrar,
}

fn hh(i: u32) -> u32 {
    500_000 + i % USERS
}

fn profile(i: u32, role: u8, name: usize, wallet: Option<u32>, addr: u8) -> Profile {
    let n = hh(i);
    let w = TestWallet::from_seed(u64::from(wallet.map_or(n, hh))).address();
    let name = NAMES[name % NAMES.len()];
    match role % 3 {
        0 => {
            let Profile::Patient(mut p) = fixtures::patient(n, w, name) else {
                unreachable!()
            };
            p.home_address = Line::new(format!("{addr} Lake Road")).unwrap();
            Profile::Patient(p)
        }
        1 => fixtures::doctor(n, w, name),
        _ => fixtures::diagnostic_center(n, w, name),
    }
}

fn event(e: &Ev) -> LedgerEvent {
    match e.clone() {
        Ev::Register {
            hh,
            role,
            name,
            wallet,
        } => LedgerEvent::registration(profile(hh, role, name, wallet, 1)),
        Ev::Update {
            hh,
            role,
            name,
            wallet,
            addr,
        } => LedgerEvent::ProfileUpdated(profile(hh, role, name, wallet, addr)),
        Ev::Record {
            patient,
            serial,
            creator,
            test,
            kind,
            day,
        } => LedgerEvent::RecordCreated(MedicalRecord::from_new(
            fixtures::record(
                hh(patient),
                serial,
                hh(creator),
                TESTS[test % TESTS.len()],
                KINDS[kind % KINDS.len()],
                fixtures::date(2026, 1, 1 + day % 28),
            ),
            Timestamp(1_750_000_000 + serial),
        )),
        Ev::Grant {
            patient,
            grantee,
            expires,
        } => LedgerEvent::AccessGranted(AccessGrant {
            patient: HhNumber::new(hh(patient)).unwrap(),
            grantee: HhNumber::new(hh(grantee)).unwrap(),
            granted_at: Timestamp(1_000),
            expires_at: expires.map(|e| Timestamp(1_000 + e)),
            revoked_at: None,
        }),
        Ev::Revoke {
            patient,
            grantee,
            at,
        } => LedgerEvent::AccessRevoked {
            patient: HhNumber::new(hh(patient)).unwrap(),
            grantee: HhNumber::new(hh(grantee)).unwrap(),
            revoked_at: Timestamp(2_000 + at),
        },
        Ev::Anchor { seq } => LedgerEvent::AuditAnchored(AuditAnchor {
            digest: B256::repeat_byte(seq as u8),
            last_seq: seq,
            anchored_at: Timestamp(3_000 + seq),
        }),
        Ev::Registrar => LedgerEvent::RegistrarAdded(TestWallet::from_seed(9).address()),
    }
}

fn ev() -> impl Strategy<Value = Ev> {
    let wallet = proptest::option::weighted(0.15, 0..USERS);
    prop_oneof![
        3 => (0..USERS, 0..3u8, 0..6usize, wallet.clone())
            .prop_map(|(hh, role, name, wallet)| Ev::Register { hh, role, name, wallet }),
        2 => (0..USERS, 0..3u8, 0..6usize, wallet, 0..4u8)
            .prop_map(|(hh, role, name, wallet, addr)| Ev::Update { hh, role, name, wallet, addr }),
        3 => (0..2u32, 1..4u64, 0..USERS, 0..4usize, 0..3usize, 0..5u32).prop_map(
            |(patient, serial, creator, test, kind, day)| Ev::Record {
                patient, serial, creator, test, kind, day
            }
        ),
        2 => (0..USERS, 0..USERS, proptest::option::of(0..100u64))
            .prop_map(|(patient, grantee, expires)| Ev::Grant { patient, grantee, expires }),
        2 => (0..USERS, 0..USERS, 0..100u64)
            .prop_map(|(patient, grantee, at)| Ev::Revoke { patient, grantee, at }),
        1 => (1..50u64).prop_map(|seq| Ev::Anchor { seq }),
        1 => Just(Ev::Registrar),
    ]
}

fn chain() -> impl Strategy<Value = (Vec<Vec<Ev>>, usize)> {
    (
        proptest::collection::vec(proptest::collection::vec(ev(), 0..8), 1..7),
        any::<usize>(),
    )
        .prop_map(|(blocks, k)| {
            let k = k % (blocks.len() + 1);
            (blocks, k)
        })
}

/// Everything a reader can observe about the chain data.
#[derive(Debug, PartialEq)]
struct Snapshot {
    profiles: Vec<Option<Profile>>,
    accounts: Vec<Option<(Role, HhNumber)>>,
    records_of: Vec<Vec<MedicalRecord>>,
    records_by: Vec<Vec<MedicalRecord>>,
    grants: Vec<Vec<AccessGrant>>,
    patients_of: Vec<Vec<HhNumber>>,
    by_name: Vec<PatientProfile>,
    by_prefix: Vec<PatientProfile>,
    records: Vec<MedicalRecord>,
    blood: Vec<MedicalRecord>,
    anchor: Option<AuditAnchor>,
    counts: CacheCounts,
    checkpoint: Option<BlockRef>,
    journal: Vec<BlockRef>,
}

async fn snapshot(c: &dyn CachePort) -> Snapshot {
    let users: Vec<HhNumber> = (0..USERS).map(|i| HhNumber::new(hh(i)).unwrap()).collect();
    let mut s = Snapshot {
        profiles: vec![],
        accounts: vec![],
        records_of: vec![],
        records_by: vec![],
        grants: vec![],
        patients_of: vec![],
        by_name: c.search_patients("", 100).await.unwrap(),
        by_prefix: c.search_patients("ASHA", 100).await.unwrap(),
        records: c
            .search_records(&RecordQuery {
                limit: 1_000,
                ..Default::default()
            })
            .await
            .unwrap(),
        blood: c
            .search_records(&RecordQuery {
                text: Some("blood".into()),
                limit: 1_000,
                ..Default::default()
            })
            .await
            .unwrap(),
        anchor: c.latest_audit_anchor().await.unwrap(),
        counts: c.counts().await.unwrap(),
        checkpoint: c.checkpoint().await.unwrap(),
        journal: c.journal(0, 1_000).await.unwrap(),
    };
    for (i, u) in users.iter().enumerate() {
        s.profiles.push(c.profile(*u).await.unwrap());
        let w = TestWallet::from_seed(u64::from(hh(i as u32))).address();
        s.accounts.push(c.account_of(w).await.unwrap());
        s.records_of.push(c.records_of_patient(*u).await.unwrap());
        s.records_by.push(c.records_by_creator(*u).await.unwrap());
        s.grants.push(c.grants_of_patient(*u).await.unwrap());
        s.patients_of
            .push(c.patients_of_doctor(*u, Timestamp(1_050)).await.unwrap());
    }
    s
}

fn outcome(r: &CacheResult<()>) -> String {
    match r {
        Ok(()) => "ok".into(),
        Err(e) => format!("{e:?}")
            .split('(')
            .next()
            .unwrap_or_default()
            .to_owned(),
    }
}

/// Applies `blocks` (numbered from 1) and returns each block's outcome.
async fn apply_all(c: &dyn CachePort, blocks: &[Vec<Ev>]) -> Vec<String> {
    let mut outcomes = Vec::new();
    for (i, evs) in blocks.iter().enumerate() {
        let b = cache::block(i as u64 + 1, 0);
        let events = cache::in_block(&b, evs.iter().map(event).collect());
        outcomes.push(outcome(&c.apply_block(&b, &events).await));
    }
    outcomes
}

async fn check(blocks: Vec<Vec<Ev>>, k: usize, full: &SqlCache, prefix: &SqlCache) {
    let oracle = InMemoryCache::new();
    let expected = apply_all(&oracle, &blocks).await;
    assert_eq!(apply_all(full, &blocks).await, expected, "apply outcomes");
    assert_eq!(
        snapshot(full).await,
        snapshot(&oracle).await,
        "after applying everything"
    );

    full.rollback_to(k as u64).await.unwrap();
    oracle.rollback_to(k as u64).await.unwrap();
    apply_all(prefix, &blocks[..k]).await;
    let rolled_back = snapshot(full).await;
    assert_eq!(
        rolled_back,
        snapshot(prefix).await,
        "rollback to {k} = prefix"
    );
    assert_eq!(
        rolled_back,
        snapshot(&oracle).await,
        "rollback to {k} = reference"
    );
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn rollback_equals_prefix_on_sqlite((blocks, k) in chain()) {
        runtime().block_on(async {
            check(blocks, k, &sqlite_memory().await, &sqlite_memory().await).await;
        });
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 8, ..ProptestConfig::default() })]

    #[test]
    fn rollback_equals_prefix_on_postgres((blocks, k) in chain()) {
        if !skip_postgres() {
            runtime().block_on(async {
                let pg = PgSchemas::new();
                let (full, _) = pg.fresh().await;
                let (prefix, _) = pg.fresh().await;
                check(blocks, k, &full, &prefix).await;
                full.close().await.unwrap();
                prefix.close().await.unwrap();
                pg.cleanup().await;
            });
        }
    }
}

/// Blocks big enough to be written in several multi-row statements (runs
/// of record creations, some replacing earlier versions, one id twice)
/// roll back exactly.
async fn big_blocks_roll_back_exactly(c: &SqlCache) {
    let record = |serial: u64, test: usize| Ev::Record {
        patient: 0,
        serial,
        creator: 1,
        test,
        kind: serial as usize,
        day: serial as u32,
    };
    let first: Vec<Ev> = (1..=30).map(|s| record(s, 0)).collect();
    let mut second: Vec<Ev> = (10..=60).map(|s| record(s, 1)).collect();
    second.insert(25, record(15, 2));
    second.push(Ev::Grant {
        patient: 0,
        grantee: 1,
        expires: None,
    });
    second.extend((61..=100).map(|s| record(s, 3)));
    let blocks = vec![first, second];
    let oracle = InMemoryCache::new();
    assert_eq!(
        apply_all(c, &blocks).await,
        apply_all(&oracle, &blocks).await
    );
    assert_eq!(snapshot(c).await, snapshot(&oracle).await);
    for k in [1, 0] {
        c.rollback_to(k).await.unwrap();
        oracle.rollback_to(k).await.unwrap();
        assert_eq!(
            snapshot(c).await,
            snapshot(&oracle).await,
            "rolled back to {k}"
        );
    }
}

#[tokio::test]
async fn big_blocks_roll_back_exactly_on_sqlite() {
    big_blocks_roll_back_exactly(&sqlite_memory().await).await;
}

#[tokio::test]
async fn big_blocks_roll_back_exactly_on_postgres() {
    if skip_postgres() {
        return;
    }
    let pg = PgSchemas::new();
    big_blocks_roll_back_exactly(&pg.fresh().await.0).await;
    pg.cleanup().await;
}
