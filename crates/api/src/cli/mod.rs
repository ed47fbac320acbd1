//! The `healthledger` command line, mirroring the seed guide's scripts
//! (`sync:blockchain`, `db:view`, `getPatient`, `test:pinata`): human
//! output in the seed's style by default, `--json` for machines, and an
//! exit code per failure kind ([`ExitKind`]).

use std::{
    io::Write as _,
    path::{Path, PathBuf},
    process::ExitCode,
    sync::Arc,
};

use clap::{Args, Parser, Subcommand, ValueEnum};
use healthledger_core::{HhNumber, ReadAt, RecordId, RecordQuery, Role};
use healthledger_sync::{Outcome, Phase, Progress, Stale, SyncEngine};
use healthledger_vault::{CidOptions, CidVersion, compute_cid};
use serde::Serialize;

use crate::{App, Config, Error, story};

mod demo;
mod inspect;
mod serve;
mod sync;

pub use serve::ServeArgs;

use demo::demo;
use inspect::{cid, db_view, deploy, verify};
use sync::sync;

/// `healthledger`: HealthLedger's command line.
#[derive(Debug, Parser)]
#[command(name = "healthledger", version, about)]
pub struct Cli {
    /// The TOML configuration file (default: $HEALTHLEDGER_CONFIG, else
    /// ./healthledger.toml when it exists). Settings: see the README.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The data directory of the embedded defaults (overrides
    /// $HEALTHLEDGER_DATA_DIR and the file).
    #[arg(long, global = true, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Print one JSON document instead of human output.
    #[arg(long, global = true)]
    pub json: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Reconcile the chain into the cache.
    #[command(subcommand)]
    Sync(SyncCommand),
    /// Compare the chain and the cache field by field (drift), and with
    /// flags the vault and the access log; exit 5 when anything is off.
    Verify(VerifyArgs),
    /// Look at the cache: counts, checkpoint and recent records.
    #[command(subcommand)]
    Db(DbCommand),
    /// Talk to the chain directly.
    #[command(subcommand)]
    Chain(ChainCommand),
    /// Check the vault.
    #[command(subcommand)]
    Vault(VaultCommand),
    /// Print the CID of FILE as `ipfs add --only-hash -Q` does with the
    /// same flags.
    Cid(CidArgs),
    /// Serve the HTTP API (and follow the chain) until SIGINT or SIGTERM.
    Serve(ServeArgs),
    /// Run the seed guide's story on the embedded defaults, in
    /// ./healthledger-demo (or --data-dir), fresh each run.
    Demo,
}

/// `sync …`.
#[derive(Debug, Subcommand)]
pub enum SyncCommand {
    /// Sync one patient profile.
    Patient(TargetArgs),
    /// Sync one doctor profile.
    Doctor(TargetArgs),
    /// Sync one diagnostic-center profile.
    Diagnostic(TargetArgs),
    /// Sync one record (`record-<HH>-<digits>`).
    Record {
        /// The record id.
        id: String,
        /// Remove the cache row when the chain has no such record.
        #[arg(long)]
        remove_stale: bool,
    },
    /// Full sync: every profile, record and grant at one pinned block.
    Full,
    /// Whatever brings the cache to the head (full, incremental or a
    /// branch switch).
    Auto,
    /// Follow the chain live until SIGINT/SIGTERM.
    Follow,
    /// The sync status.
    Status,
}

/// The target of a profile sync.
#[derive(Debug, Args)]
pub struct TargetArgs {
    /// The HH number (6 digits).
    pub hh: String,
    /// Remove the cache row when the chain has no such profile.
    #[arg(long)]
    pub remove_stale: bool,
}

/// `verify …`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Repair the drift found (exactly that, through the sync paths).
    #[arg(long)]
    pub repair: bool,
    /// Also audit the vault: every indexed record's object, and orphans.
    #[arg(long)]
    pub vault: bool,
    /// With --vault: shred orphans older than the grace period.
    #[arg(long, requires = "vault")]
    pub remove_orphans: bool,
    /// With --vault: orphans younger than this (seconds) are never removed.
    #[arg(long, default_value_t = 86_400)]
    pub grace_secs: u64,
    /// Also audit the access log's hash chain against the chain's anchor.
    #[arg(long)]
    pub audit: bool,
}

/// `db …`.
#[derive(Debug, Subcommand)]
pub enum DbCommand {
    /// Counts per table, the checkpoint and the newest records.
    View {
        /// How many recent records to show.
        #[arg(long, default_value_t = 10)]
        limit: u64,
    },
}

/// `chain …`.
#[derive(Debug, Subcommand)]
pub enum ChainCommand {
    /// Deploy a new HealthLedger contract and print its address.
    Deploy,
    /// Read a profile straight from the chain.
    Get {
        /// The role.
        role: RoleArg,
        /// The HH number.
        hh: String,
    },
}

/// `vault …`.
#[derive(Debug, Subcommand)]
pub enum VaultCommand {
    /// Whether the vault and its key store answer, with which key.
    Check,
    /// Export a sealed object as a CAR file whose root is its CID, for any
    /// IPFS node or pinning service to import (the content stays sealed).
    ExportCar {
        /// The object's CID.
        cid: String,
        /// Where to write the CAR (default: `<cid>.car`).
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
}

/// A role on the command line.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum RoleArg {
    /// A patient.
    Patient,
    /// A doctor.
    Doctor,
    /// A diagnostic center.
    Diagnostic,
}

impl From<RoleArg> for Role {
    fn from(r: RoleArg) -> Self {
        match r {
            RoleArg::Patient => Role::Patient,
            RoleArg::Doctor => Role::Doctor,
            RoleArg::Diagnostic => Role::DiagnosticCenter,
        }
    }
}

/// `cid FILE`.
#[derive(Debug, Args)]
pub struct CidArgs {
    /// The file.
    pub file: PathBuf,
    /// CID version, 0 or 1.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=1))]
    pub cid_version: u8,
    /// Raw leaves (Kubo's default with --cid-version 1).
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    pub raw_leaves: Option<bool>,
}

/// What a failure means, as an exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitKind {
    /// Any other failure: 1.
    Failure = 1,
    /// Invalid input or configuration: 2 (as clap's usage errors).
    Invalid = 2,
    /// Not on chain / not found: 3.
    NotFound = 3,
    /// A backend is unreachable: 4.
    Unreachable = 4,
    /// Drift between chain and cache was found: 5.
    Drift = 5,
    /// Access denied: 6.
    Denied = 6,
    /// A conflict with the chain's state: 7.
    Conflict = 7,
}

impl ExitKind {
    /// The kind of `e`.
    pub fn of(e: &Error) -> Self {
        match e {
            _ if e.is_unavailable() => Self::Unreachable,
            Error::Config { .. }
            | Error::Invalid(_)
            | Error::TooLarge { .. }
            | Error::Unsupported(_) => Self::Invalid,
            Error::NotFound(_) => Self::NotFound,
            Error::AccessDenied(_) => Self::Denied,
            Error::Conflict(_) => Self::Conflict,
            Error::LocalChain(_) => Self::Unreachable,
            Error::Ledger(healthledger_core::LedgerError::Invalid(_)) => Self::Invalid,
            Error::Sync(healthledger_sync::Error::Ledger(l)) if l.is_retryable() => {
                Self::Unreachable
            }
            _ => Self::Failure,
        }
    }
}

/// Runs the CLI with the process's arguments and environment.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_env("HEALTHLEDGER_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("❌ cannot start the runtime: {e}");
            return ExitCode::from(ExitKind::Failure as u8);
        }
    };
    let json = cli.json;
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            let kind = ExitKind::of(&e);
            if json {
                let body = serde_json::json!({
                    "error": { "kind": format!("{kind:?}"), "message": e.to_string() }
                });
                println!("{body}");
            } else {
                eprintln!("❌ {e}");
            }
            ExitCode::from(kind as u8)
        }
    }
}

/// Runs one parsed command.
pub async fn run(cli: Cli) -> crate::Result<ExitCode> {
    let out = Out { json: cli.json };
    match cli.command {
        Command::Cid(args) => return cid(&out, &args),
        Command::Demo => return demo(&out, cli.config.as_deref(), cli.data_dir).await,
        _ => {}
    }
    let config = load(cli.config.as_deref(), cli.data_dir)?;
    if let Command::Chain(ChainCommand::Deploy) = cli.command
        && !config.is_local()
    {
        return deploy(&out, &config).await;
    }
    let app = Arc::new(App::build(config).await?);
    let result = match &cli.command {
        Command::Serve(args) => serve::serve(app.clone(), &out, args).await,
        _ => dispatch(&app, &out, cli.command).await,
    };
    app.shutdown().await;
    result
}

fn load(file: Option<&Path>, data_dir: Option<PathBuf>) -> crate::Result<Config> {
    let mut config = Config::load(file)?;
    if let Some(dir) = data_dir {
        let defaults = Config::local(&config.data_dir);
        let moved = Config::local(&dir);
        // The flag moves what still points at the old data directory.
        if config.database_url == defaults.database_url {
            config.database_url = moved.database_url;
        }
        if config.vault_url == defaults.vault_url {
            config.vault_url = moved.vault_url;
        }
        if config.key_store_url == defaults.key_store_url {
            config.key_store_url = moved.key_store_url;
        }
        config.data_dir = dir;
    }
    Ok(config)
}

async fn dispatch(app: &App, out: &Out, command: Command) -> crate::Result<ExitCode> {
    match command {
        Command::Sync(s) => sync(app, out, s).await,
        Command::Verify(args) => verify(app, out, &args).await,
        Command::Db(DbCommand::View { limit }) => db_view(app, out, limit).await,
        Command::Chain(ChainCommand::Deploy) => {
            let contract = app.wiring().contract.clone().unwrap_or_default();
            out.emit(&serde_json::json!({ "contract": contract }), || {
                vec![format!(
                    "✅ HealthLedger contract at {contract} ({})",
                    app.wiring().chain
                )]
            });
            Ok(ExitCode::SUCCESS)
        }
        Command::Chain(ChainCommand::Get { role, hh }) => {
            let hh = parse_hh(&hh)?;
            let role = Role::from(role);
            match app.ledger().profile(hh, role, ReadAt::Latest).await? {
                Some(p) => {
                    out.emit(&p, || {
                        vec![
                            format!("📋 {role} {hh} on chain"),
                            serde_json::to_string_pretty(&p).unwrap_or_default(),
                        ]
                    });
                    Ok(ExitCode::SUCCESS)
                }
                None => Err(Error::NotFound(format!("no {role} {hh} on chain"))),
            }
        }
        Command::Vault(VaultCommand::Check) => {
            let health = app.vault().health().await?;
            out.emit(&health, || {
                vec![
                    format!("✅ vault {} answers", health.backend),
                    format!("✅ key store {} answers", health.key_store),
                    format!(
                        "🔒 key {}; erasure horizon {:?}",
                        health.key_id, health.erasure_horizon
                    ),
                ]
            });
            Ok(ExitCode::SUCCESS)
        }
        Command::Vault(VaultCommand::ExportCar { cid, out: file }) => {
            let cid: healthledger_core::Cid = cid.parse()?;
            let vault = app.object_vault().ok_or_else(|| {
                Error::Unsupported("this app's vault is not the object-store vault".into())
            })?;
            let path = file.unwrap_or_else(|| PathBuf::from(format!("{cid}.car")));
            let f = tokio::fs::File::create(&path).await.map_err(|e| {
                healthledger_core::ValidationError::new(
                    "--out",
                    path.display().to_string(),
                    format!("cannot be created: {e}"),
                )
            })?;
            let export = match vault.export_car(&cid, f).await {
                Ok(x) => x,
                Err(e) => {
                    // No partial CAR is left to be mistaken for a good one.
                    let _ = std::fs::remove_file(&path);
                    return Err(e.into());
                }
            };
            let summary = serde_json::json!({
                "root": export.root.to_string(),
                "blocks": export.blocks,
                "bytes": export.bytes,
                "file": path.display().to_string(),
            });
            out.emit(&summary, || {
                vec![format!(
                    "✅ {} written: root {}, {} block(s), {} bytes (sealed: decrypting needs its key)",
                    path.display(),
                    export.root,
                    export.blocks,
                    export.bytes
                )]
            });
            Ok(ExitCode::SUCCESS)
        }
        Command::Cid(_) | Command::Demo | Command::Serve(_) => Ok(ExitCode::SUCCESS),
    }
}

fn parse_hh(text: &str) -> crate::Result<HhNumber> {
    Ok(text.parse::<HhNumber>()?)
}

fn counts_line(c: &healthledger_core::CacheCounts) -> String {
    format!(
        "   patients {}, doctors {}, diagnostic centers {}, records {}, grants {}, access log {}",
        c.patients, c.doctors, c.diagnostic_centers, c.records, c.grants, c.access_log
    )
}

/// Human or JSON output.
struct Out {
    json: bool,
}

impl Out {
    /// The seed's banner and the command's first line (human output only).
    fn header(&self, line: &str) {
        if !self.json {
            println!("🔄 Blockchain Sync Tool");
            println!("{}", story::RULE);
            println!();
            println!("{line}");
        }
    }

    /// Prints `value` as JSON, or the human lines.
    fn emit<T: Serialize>(&self, value: &T, human: impl FnOnce() -> Vec<String>) {
        let mut stdout = std::io::stdout().lock();
        if self.json {
            let _ = writeln!(
                stdout,
                "{}",
                serde_json::to_string(value).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
            );
        } else {
            for line in human() {
                let _ = writeln!(stdout, "{line}");
            }
        }
    }
}
