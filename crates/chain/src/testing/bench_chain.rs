//! Large HealthLedger chains for benchmarks, built once on a local anvil
//! and kept (feature `testing`): the bulk chain, which the bulk-read bench
//! of this crate and the drift bench of the sync engine read
//! ([`BenchChain::open`]), and the event mix, which the sync engine's
//! backfill bench reads ([`BenchChain::open_event_mix`], see
//! [`EventMixSpec`]).
//!
//! The bulk chain holds `patients` patients (HH numbers from
//! [`FIRST_PATIENT`]), one doctor ([`DOCTOR`]) and one diagnostic center
//! ([`CENTER`]), `records` records created by the center for the patients
//! in turn, and a grant from every patient to the doctor.
//!
//! Building it is slow: anvil recomputes the state root at every mined
//! block at a cost that grows with the contract's storage, so the build
//! mines few, full blocks (interval mining every `block_secs` with
//! thousands of writes in flight, under a 1,000,000,000 block gas limit) on
//! a node that keeps no historical states (`--prune-history`: without it
//! anvil held 18 GB at 87,000 writes). The node's state is then saved
//! (`anvil_dumpState`) to a file under the git-ignored `bench-data/`
//! directory at the repository root (or `$HL_BENCH_DATA`), named by the
//! kind, the sizes and a hash of the contract's artifact, so a changed
//! contract builds anew. Every later run starts a fresh anvil from it
//! (`--load-state`, seconds); delete the file to rebuild. The loaded node
//! has the saved blocks, their transactions and logs, but only the latest
//! state: `anvil_reorg` into the saved blocks fails ("Required data
//! unavailable"), so a reorg bench mines blocks of its own on top first
//! ([`BenchChain::extend_with_records`]).
//!
//! The node a [`BenchChain`] reads from runs with anvil's default block gas
//! limit ([`CALL_GAS_BUDGET`]), which is also its `eth_call` gas cap: bulk
//! reads that fit there fit the caps of hosted nodes too.

use std::{
    io::Read as _,
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, Instant},
};

use alloy::{
    node_bindings::{Anvil, AnvilInstance},
    primitives::{Address, B256, Bytes, U256, keccak256},
    providers::{Provider, ProviderBuilder},
};
use futures::{StreamExt as _, TryStreamExt as _, stream};
use healthledger_core::{
    Authorization, ConsentAction, HhNumber, LedgerError, LedgerPort, RelayedSignature, Timestamp,
    WalletAddress,
    testing::fixtures::{self, TestWallet, date},
};

use crate::{CALL_GAS_BUDGET, EvmLedger, EvmLedgerConfig, SignerKey};

mod event_mix;

pub use event_mix::{
    BlockWrite, BlockWriter, EventMixSpec, MAX_BLOCK_EVENTS, MIX_CENTER, MixCounts,
};

/// The first patient's HH number; the others follow in order.
pub const FIRST_PATIENT: u32 = 300_000;
/// The doctor every patient grants access to.
pub const DOCTOR: u32 = 999_997;
/// The diagnostic center that creates every record (anvil's account 1).
pub const CENTER: u32 = 999_998;

/// Writes in flight while building: enough to fill a block per interval.
const IN_FLIGHT: usize = 2_048;

/// What went wrong opening or building the benchmark chain.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BenchChainError {
    /// anvil is not where the pinned tools put it.
    #[error("anvil is not installed at {0}: run `cargo xtask setup`")]
    AnvilMissing(PathBuf),
    /// anvil did not start.
    #[error("anvil did not start: {0}")]
    AnvilStart(String),
    /// Reading or writing the saved chain failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The failure.
        source: std::io::Error,
    },
    /// The saved chain is not what a build writes.
    #[error("the saved chain {path} is unreadable: {reason}; delete it to rebuild")]
    Saved {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A write or read of the build failed.
    #[error("building the benchmark chain: {0}")]
    Ledger(#[from] LedgerError),
    /// The adapter could not be set up.
    #[error("connecting to the benchmark node: {0}")]
    Adapter(#[from] crate::Error),
    /// A write of the build did not make it into its block.
    #[error("building the benchmark chain: {0}")]
    Build(String),
    /// An anvil-specific request failed.
    #[error("{method} failed: {message}")]
    Node {
        /// The JSON-RPC method.
        method: &'static str,
        /// The transport's error.
        message: String,
    },
}

type Result<T, E = BenchChainError> = std::result::Result<T, E>;

/// The sizes of a benchmark chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BenchChainSpec {
    /// Patients, each granting access to the doctor.
    pub patients: u32,
    /// Records, created by the center for the patients in turn.
    pub records: u64,
    /// Seconds between the blocks of the build.
    pub block_secs: u64,
}

impl BenchChainSpec {
    /// The sizes from `HL_BULK_PATIENTS`, `HL_BULK_RECORDS` and
    /// `HL_BULK_BLOCK_SECS`, else the given defaults (and 5 s blocks).
    pub fn from_env(patients: u32, records: u64) -> Self {
        fn var<T: std::str::FromStr>(name: &str) -> Option<T> {
            std::env::var(name).ok().and_then(|v| v.parse().ok())
        }
        Self {
            patients: var("HL_BULK_PATIENTS").unwrap_or(patients),
            records: var("HL_BULK_RECORDS").unwrap_or(records),
            block_secs: var("HL_BULK_BLOCK_SECS").unwrap_or(5),
        }
    }

    /// Profiles, records and grants on the chain.
    pub fn entities(&self) -> u64 {
        2 * u64::from(self.patients) + 2 + self.records
    }
}

/// A fresh anvil holding a saved benchmark chain, with a block mined on
/// top of it (so reads can pin a block whose state the node keeps). `S` is
/// the chain's spec: [`BenchChainSpec`] (the bulk chain, [`Self::open`]) or
/// [`EventMixSpec`] (the event mix, [`BenchChain::open_event_mix`]).
#[derive(Debug)]
pub struct BenchChain<S = BenchChainSpec> {
    /// The node; it stops when this is dropped.
    pub anvil: AnvilInstance,
    /// The HealthLedger contract.
    pub contract: Address,
    /// The chain's sizes.
    pub spec: S,
    /// The saved chain's file.
    pub saved: PathBuf,
    /// How long loading the saved chain took.
    pub load_time: Duration,
}

impl BenchChain {
    /// Loads the saved chain of `spec`, building and saving it first when
    /// there is none (this prints the build's progress).
    pub async fn open(spec: BenchChainSpec) -> Result<Self> {
        let saved = state_file("bulk", &format!("{}-{}", spec.patients, spec.records));
        if !saved.is_file() {
            let anvil = spawn_anvil(Load::Build {
                block_secs: Some(spec.block_secs),
            })?;
            let contract = build(&anvil, spec).await?;
            save(&anvil, contract, &saved).await?;
        }
        let (anvil, contract, load_time) = load(&saved).await?;
        Ok(Self {
            anvil,
            contract,
            spec,
            saved,
            load_time,
        })
    }
}

impl BenchChain<EventMixSpec> {
    /// Loads the saved event-mix chain of `spec`, building and saving it
    /// first when there is none (this prints the build's progress).
    pub async fn open_event_mix(spec: EventMixSpec) -> Result<Self> {
        let saved = state_file(
            "events",
            &format!("{}-{}-v{}", spec.events, spec.seed, event_mix::PLAN_VERSION),
        );
        if !saved.is_file() {
            let anvil = spawn_anvil(Load::Build { block_secs: None })?;
            let contract = event_mix::build(&anvil, spec).await?;
            save(&anvil, contract, &saved).await?;
        }
        let (anvil, contract, load_time) = load(&saved).await?;
        Ok(Self {
            anvil,
            contract,
            spec,
            saved,
            load_time,
        })
    }
}

/// Saves the state of the build node `anvil` with the address of its
/// `contract` to `saved`.
async fn save(anvil: &AnvilInstance, contract: Address, saved: &Path) -> Result<()> {
    let state: Bytes = node(anvil)
        .raw_request("anvil_dumpState".into(), ())
        .await
        .map_err(|e| node_error("anvil_dumpState", e))?;
    let dir = saved.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|source| BenchChainError::Io {
        path: dir.to_owned(),
        source,
    })?;
    let json = serde_json::json!({ "contract": contract.to_string(), "state": state.to_string() });
    std::fs::write(saved, json.to_string()).map_err(|source| BenchChainError::Io {
        path: saved.to_owned(),
        source,
    })?;
    println!(
        "bench chain: saved ({} MB) to {}",
        state.len() / 1_000_000,
        saved.display()
    );
    Ok(())
}

/// Starts a fresh node from the chain saved in `saved`: the node, the
/// contract's address and how long loading took.
async fn load(saved: &Path) -> Result<(AnvilInstance, Address, Duration)> {
    let bad = |reason: String| BenchChainError::Saved {
        path: saved.to_owned(),
        reason,
    };
    let text = std::fs::read(saved).map_err(|source| BenchChainError::Io {
        path: saved.to_owned(),
        source,
    })?;
    let json: serde_json::Value = serde_json::from_slice(&text).map_err(|e| bad(e.to_string()))?;
    drop(text);
    let contract: Address = json["contract"]
        .as_str()
        .ok_or_else(|| bad("no contract".into()))?
        .parse()
        .map_err(|e| bad(format!("contract: {e}")))?;
    let state: Bytes = json["state"]
        .as_str()
        .ok_or_else(|| bad("no state".into()))?
        .parse()
        .map_err(|e| bad(format!("state: {e}")))?;
    drop(json);
    // anvil_dumpState gives gzip-compressed JSON, and anvil refuses a
    // request body of that size, so the node loads it from a file
    // (`--load-state`, plain JSON) written beside the saved chain.
    let plain = saved.with_extension("load.json");
    let mut json = Vec::new();
    flate2::read::GzDecoder::new(state.as_ref())
        .read_to_end(&mut json)
        .map_err(|e| bad(format!("state: {e}")))?;
    drop(state);
    std::fs::write(&plain, &json).map_err(|source| BenchChainError::Io {
        path: plain.clone(),
        source,
    })?;
    drop(json);
    let started = Instant::now();
    let anvil = spawn_anvil(Load::State(&plain));
    // The file is only read at start-up.
    let _ = std::fs::remove_file(&plain);
    let anvil = anvil?;
    let node = node(&anvil);
    // The saved chain keeps the build's block gas limit; reads get
    // anvil's default, which is also its `eth_call` cap.
    let _: serde_json::Value = node
        .raw_request(
            "evm_setBlockGasLimit".into(),
            (U256::from(CALL_GAS_BUDGET),),
        )
        .await
        .map_err(|e| node_error("evm_setBlockGasLimit", e))?;
    let _: serde_json::Value = node
        .raw_request("evm_mine".into(), ())
        .await
        .map_err(|e| node_error("evm_mine", e))?;
    Ok((anvil, contract, started.elapsed()))
}

impl<S> BenchChain<S> {
    /// The key of anvil's dev account `i` (0 deployed the contract and is
    /// its registrar, 1 is the center's wallet; 2 and up are free).
    pub fn key(&self, i: usize) -> Result<SignerKey> {
        key_of(&self.anvil, i)
    }
}

/// The pinned tools directory: `$HEALTHLEDGER_TOOLS`, else `<repo>/.tools`.
pub fn tools_dir() -> PathBuf {
    std::env::var_os("HEALTHLEDGER_TOOLS")
        .map(PathBuf::from)
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or_else(|| repo_root().join(".tools"))
}

/// Where saved benchmark chains live: `$HL_BENCH_DATA`, else
/// `<repo>/bench-data` (git-ignored).
pub fn data_dir() -> PathBuf {
    std::env::var_os("HL_BENCH_DATA")
        .map(PathBuf::from)
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or_else(|| repo_root().join("bench-data"))
}

fn repo_root() -> PathBuf {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    crate_dir
        .ancestors()
        .nth(2)
        .unwrap_or(crate_dir)
        .to_path_buf()
}

/// The saved chain of kind `kind` and sizes `sizes`, named by them and a
/// hash of the contract's artifact.
fn state_file(kind: &str, sizes: &str) -> PathBuf {
    let tag = keccak256(include_bytes!("../../contracts/HealthLedger.json"));
    data_dir().join(format!("{kind}-{sizes}-{}.json", &tag.to_string()[2..14]))
}

fn node(anvil: &AnvilInstance) -> impl Provider + use<> {
    ProviderBuilder::new().connect_http(anvil.endpoint_url())
}

fn node_error(method: &'static str, e: impl std::fmt::Display) -> BenchChainError {
    BenchChainError::Node {
        method,
        message: e.to_string(),
    }
}

fn key_of(anvil: &AnvilInstance, i: usize) -> Result<SignerKey> {
    let key = anvil
        .keys()
        .get(i)
        .ok_or_else(|| BenchChainError::AnvilStart(format!("anvil has no dev account {i}")))?;
    Ok(SignerKey::from_bytes(&B256::from_slice(&key.to_bytes()))?)
}

/// How a node starts.
enum Load<'a> {
    /// Empty, mining every `block_secs` (or on each transaction, until the
    /// build turns that off and mines its blocks itself) under a large
    /// block gas limit and keeping no historical states: for the builds.
    Build { block_secs: Option<u64> },
    /// From a state file, mining on demand and keeping every state: for
    /// reads pinned to a block.
    State(&'a Path),
}

fn spawn_anvil(load: Load<'_>) -> Result<AnvilInstance> {
    let path = tools_dir().join("bin").join("anvil");
    if !path.is_file() {
        return Err(BenchChainError::AnvilMissing(path));
    }
    let anvil = match load {
        Load::Build { block_secs } => {
            let anvil = Anvil::at(path).args(["--gas-limit", "1000000000", "--prune-history"]);
            match block_secs {
                Some(secs) => anvil.block_time(secs),
                None => anvil,
            }
        }
        // Loading a large state takes a while before anvil listens.
        Load::State(file) => Anvil::at(path)
            .arg("--load-state")
            .arg(file.display().to_string())
            .timeout(600_000),
    };
    anvil
        .try_spawn()
        .map_err(|e| BenchChainError::AnvilStart(e.to_string()))
}

/// A connection to the ledger at `contract` signing with anvil's key `i`,
/// patient with receipts: a build block holds thousands of writes.
async fn connect(
    anvil: &AnvilInstance,
    contract: Address,
    i: usize,
    poll: Duration,
) -> Result<EvmLedger> {
    let mut config = EvmLedgerConfig::new(anvil.endpoint(), contract, key_of(anvil, i)?);
    config.poll_interval = poll;
    config.receipt_timeout = Duration::from_secs(1_800);
    config.rebroadcast_after = Duration::from_secs(600);
    Ok(EvmLedger::connect(config).await?)
}

/// Deploys the contract and writes the chain of `spec`.
async fn build(anvil: &AnvilInstance, spec: BenchChainSpec) -> Result<Address> {
    let BenchChainSpec {
        patients, records, ..
    } = spec;
    let contract = EvmLedger::deploy(&anvil.endpoint(), &key_of(anvil, 0)?).await?;
    let ledger = Arc::new(connect(anvil, contract, 0, Duration::from_millis(500)).await?);
    let built = Instant::now();
    let center_wallet = WalletAddress::new(key_of(anvil, 1)?.address())
        .map_err(|e| LedgerError::Invalid(e.to_string()))?;
    let center = fixtures::diagnostic_center(CENTER, center_wallet, "Bulk Labs");
    let doctor = fixtures::doctor(
        DOCTOR,
        TestWallet::from_seed(u64::from(DOCTOR)).address(),
        "Dr. Bulk",
    );
    ledger.register(&center).await?;
    ledger.register(&doctor).await?;
    stream::iter(fixtures::patients(FIRST_PATIENT, patients, "Bulk Patient"))
        .map(|p| {
            let l = Arc::clone(&ledger);
            async move { l.register(&p).await.map(drop) }
        })
        .buffer_unordered(IN_FLIGHT)
        .try_collect::<()>()
        .await?;
    println!(
        "bench chain build: {patients} patients after {:.0} s",
        built.elapsed().as_secs_f64()
    );
    let as_center = Arc::new(connect(anvil, contract, 1, Duration::from_millis(500)).await?);
    stream::iter(0..records)
        .map(|i| {
            let l = Arc::clone(&as_center);
            async move {
                let patient = FIRST_PATIENT + (i % u64::from(patients.max(1))) as u32;
                let rec = fixtures::record(
                    patient,
                    i,
                    CENTER,
                    "Bulk panel",
                    "lab-result",
                    date(2026, 1, 1),
                );
                l.create_record(&rec, &Authorization::Signer)
                    .await
                    .map(drop)
            }
        })
        .buffer_unordered(IN_FLIGHT)
        .try_collect::<()>()
        .await?;
    println!(
        "bench chain build: {records} records after {:.0} s",
        built.elapsed().as_secs_f64()
    );
    let deadline = Timestamp(Timestamp::now().0 + 86_400);
    let grantee = doctor.hh();
    stream::iter(0..patients)
        .map(|i| {
            let l = Arc::clone(&ledger);
            async move {
                let hh = FIRST_PATIENT + i;
                let patient = HhNumber::new(hh).map_err(|e| LedgerError::Invalid(e.to_string()))?;
                let action = ConsentAction::GrantAccess {
                    patient,
                    grantee,
                    expires_at: None,
                };
                let digest = l.signing_digest(&action, deadline).await?;
                let auth = Authorization::Relayed(RelayedSignature {
                    signature: TestWallet::from_seed(u64::from(hh)).sign(digest),
                    deadline,
                });
                l.grant_access(patient, grantee, None, &auth)
                    .await
                    .map(drop)
            }
        })
        .buffer_unordered(IN_FLIGHT)
        .try_collect::<()>()
        .await?;
    println!(
        "bench chain: built {patients} patients, {records} records, {patients} grants in {:.1} s",
        built.elapsed().as_secs_f64()
    );
    Ok(contract)
}
