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
    let app = App::build(config).await?;
    let result = dispatch(&app, &out, cli.command).await;
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
        Command::Cid(_) | Command::Demo => Ok(ExitCode::SUCCESS),
    }
}

async fn sync(app: &App, out: &Out, command: SyncCommand) -> crate::Result<ExitCode> {
    let stale = |remove: bool| if remove { Stale::Remove } else { Stale::Report };
    let (what, outcome) = match command {
        SyncCommand::Patient(t) => {
            let hh = parse_hh(&t.hh)?;
            out.header(&format!("📋 Syncing patient profile: {hh}"));
            (
                "patient profile",
                app.sync().sync_patient(hh, stale(t.remove_stale)).await?,
            )
        }
        SyncCommand::Doctor(t) => {
            let hh = parse_hh(&t.hh)?;
            out.header(&format!("📋 Syncing doctor profile: {hh}"));
            (
                "doctor profile",
                app.sync().sync_doctor(hh, stale(t.remove_stale)).await?,
            )
        }
        SyncCommand::Diagnostic(t) => {
            let hh = parse_hh(&t.hh)?;
            out.header(&format!("📋 Syncing diagnostic center profile: {hh}"));
            (
                "diagnostic center profile",
                app.sync()
                    .sync_diagnostic(hh, stale(t.remove_stale))
                    .await?,
            )
        }
        SyncCommand::Record { id, remove_stale } => {
            let id: RecordId = id.parse()?;
            out.header(&format!("📋 Syncing record: {id}"));
            (
                "record",
                app.sync().sync_record(id, stale(remove_stale)).await?,
            )
        }
        SyncCommand::Full => {
            out.header("📋 Full sync at one pinned block");
            let engine = with_bars(app, out);
            let at = engine.full_sync().await?;
            let status = app.sync().status().await?;
            out.emit(&status, || {
                vec![
                    format!("✅ Cache replaced by the chain's state at block {at}"),
                    counts_line(&status.counts),
                    String::new(),
                    story::RULE.into(),
                    "✅ Sync operation completed successfully".into(),
                ]
            });
            return Ok(ExitCode::SUCCESS);
        }
        SyncCommand::Auto => {
            out.header("📋 Syncing to the head");
            let engine = with_bars(app, out);
            let steps = engine.sync().await?;
            let status = app.sync().status().await?;
            out.emit(&status, || {
                vec![
                    format!(
                        "✅ {steps} step(s); checkpoint {} (head {})",
                        status.checkpoint.map_or(0, |b| b.number),
                        status.head.number
                    ),
                    counts_line(&status.counts),
                    String::new(),
                    story::RULE.into(),
                    "✅ Sync operation completed successfully".into(),
                ]
            });
            return Ok(ExitCode::SUCCESS);
        }
        SyncCommand::Follow => return follow(app, out).await,
        SyncCommand::Status => {
            let status = app.sync().status().await?;
            out.emit(&status, || {
                vec![
                    format!("📋 Sync status ({})", app.wiring().chain),
                    format!("   is syncing:     {}", status.is_syncing),
                    format!(
                        "   last sync time: {}",
                        status
                            .last_sync_time
                            .map_or("never (this process)".into(), |t| t.0.to_string())
                    ),
                    format!(
                        "   checkpoint:     {}",
                        status
                            .checkpoint
                            .map_or("none".into(), |b| b.number.to_string())
                    ),
                    format!("   head:           {}", status.head.number),
                    format!("   finalized:      {}", status.finalized.number),
                    format!(
                        "   lag:            {} blocks, {} s",
                        status.lag_blocks, status.lag_seconds
                    ),
                    format!("   quarantined:    {}", status.quarantined),
                    counts_line(&status.counts),
                ]
            });
            return Ok(ExitCode::SUCCESS);
        }
    };
    report_outcome(out, what, &outcome)
}

fn report_outcome(out: &Out, what: &str, outcome: &Outcome) -> crate::Result<ExitCode> {
    let (line, code) = match outcome {
        Outcome::Created => (format!("✅ Created {what} in database"), ExitCode::SUCCESS),
        Outcome::Updated => (format!("✅ Updated {what} in database"), ExitCode::SUCCESS),
        Outcome::Unchanged => (format!("✅ {what} already up to date"), ExitCode::SUCCESS),
        Outcome::NotOnChain => (
            format!("❌ No such {what} on chain: nothing written"),
            ExitCode::from(ExitKind::NotFound as u8),
        ),
        Outcome::OtherRole(r) => (
            format!("❌ The HH number is registered on chain as a {r}: nothing written"),
            ExitCode::from(ExitKind::NotFound as u8),
        ),
        Outcome::Gone { removed } => (
            format!(
                "❌ The cache holds a {what} the chain does not have{}",
                if *removed {
                    " (removed)"
                } else {
                    " (run with --remove-stale to remove it)"
                }
            ),
            ExitCode::from(ExitKind::Drift as u8),
        ),
    };
    let ok = code == ExitCode::SUCCESS;
    out.emit(&serde_json::json!({ "outcome": outcome }), || {
        let mut lines = vec![line.clone()];
        if ok {
            lines.push(format!("✅ {} synced successfully", capitalize(what)));
        }
        lines.push(String::new());
        lines.push(story::RULE.into());
        lines.push(if ok {
            "✅ Sync operation completed successfully".into()
        } else {
            "❌ Sync operation did not complete".into()
        });
        lines
    });
    Ok(code)
}

async fn follow(app: &App, out: &Out) -> crate::Result<ExitCode> {
    out.header("📋 Following the chain (SIGINT or SIGTERM stops after the current batch)");
    let job = app.spawn_follow();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| Error::Unavailable(format!("cannot watch SIGTERM: {e}")))?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    job.stop().await?;
    let status = app.sync().status().await?;
    out.emit(&status, || {
        vec![format!(
            "✅ Stopped at checkpoint {}",
            status.checkpoint.map_or(0, |b| b.number)
        )]
    });
    Ok(ExitCode::SUCCESS)
}

async fn verify(app: &App, out: &Out, args: &VerifyArgs) -> crate::Result<ExitCode> {
    let drift = app.sync().verify_drift().await?;
    let repair = if args.repair && !drift.is_clean() {
        Some(app.sync().repair(&drift).await?)
    } else {
        None
    };
    let vault = if args.vault {
        let config = healthledger_sync::integrity::VaultAuditConfig {
            grace: std::time::Duration::from_secs(args.grace_secs),
            remove_orphans: args.remove_orphans,
            concurrency: 8,
        };
        Some(app.sync().audit_vault(app.vault().as_ref(), config).await?)
    } else {
        None
    };
    let audit = if args.audit {
        Some(app.sync().audit_access_log().await?)
    } else {
        None
    };
    let drift_left = !drift.is_clean() && repair.is_none();
    let vault_bad = vault.as_ref().is_some_and(|v| !v.is_clean());
    let audit_bad = audit.as_ref().is_some_and(|a| !a.is_clean());
    let report = serde_json::json!({
        "drift": drift, "repair": repair, "vault": vault, "access_log": audit,
    });
    out.emit(&report, || {
        let mut lines = vec![format!(
            "📋 Chain at block {} vs cache: {} missing, {} stale, {} extra",
            drift.at.number,
            drift.missing.len(),
            drift.stale.len(),
            drift.extra.len()
        )];
        for s in &drift.stale {
            lines.push(format!("   stale {:?}: {:?}", s.chain.key(), s.fields));
        }
        for m in &drift.missing {
            lines.push(format!("   missing {:?}", m.key()));
        }
        for e in &drift.extra {
            lines.push(format!("   extra {e:?}"));
        }
        if let Some(r) = &repair {
            lines.push(format!(
                "✅ Repaired: {} upserted, {} removed, {} already right",
                r.upserted, r.removed, r.unchanged
            ));
        }
        if let Some(v) = &vault {
            lines.push(format!(
                "📋 Vault: {} of {} records intact, {} problem(s), {} orphan(s) ({} removed)",
                v.intact,
                v.records,
                v.problems.len(),
                v.orphans.len(),
                v.orphans.iter().filter(|o| o.removed).count()
            ));
            for p in &v.problems {
                lines.push(format!("   {} ({}): {:?}", p.record, p.cid, p.status));
            }
        }
        if let Some(a) = &audit {
            lines.push(format!(
                "📋 Access log: {} entries, first broken {:?}, chain anchor holds {:?}",
                a.entries, a.first_broken, a.anchor_holds
            ));
        }
        lines.push(String::new());
        lines.push(story::RULE.into());
        lines.push(if drift_left || vault_bad || audit_bad {
            "❌ Verification found problems".into()
        } else {
            "✅ Verification passed".into()
        });
        lines
    });
    Ok(if drift_left || vault_bad || audit_bad {
        ExitCode::from(ExitKind::Drift as u8)
    } else {
        ExitCode::SUCCESS
    })
}

async fn db_view(app: &App, out: &Out, limit: u64) -> crate::Result<ExitCode> {
    let counts = app.cache().counts().await?;
    let checkpoint = app.cache().checkpoint().await?;
    let recent = app
        .cache()
        .search_records(&RecordQuery {
            limit: limit.max(1),
            ..RecordQuery::default()
        })
        .await?;
    #[derive(Serialize)]
    struct View<'a> {
        cache: &'a str,
        counts: healthledger_core::CacheCounts,
        checkpoint: Option<healthledger_core::BlockRef>,
        recent_records: &'a [healthledger_core::MedicalRecord],
    }
    let view = View {
        cache: &app.wiring().cache,
        counts,
        checkpoint,
        recent_records: &recent,
    };
    out.emit(&view, || {
        let mut lines = vec![
            format!("📋 Cache {}", app.wiring().cache),
            counts_line(&counts),
            format!(
                "   checkpoint: {}",
                checkpoint.map_or("none".into(), |b| b.to_string())
            ),
            format!("📋 {} most recent record(s):", recent.len()),
        ];
        lines.extend(recent.iter().map(|r| {
            format!(
                "   {}  {}  {}  {}  by {}  {}",
                r.id, r.meta.date, r.meta.record_type, r.meta.test_name, r.creator, r.cid
            )
        }));
        lines
    });
    Ok(ExitCode::SUCCESS)
}

async fn deploy(out: &Out, config: &Config) -> crate::Result<ExitCode> {
    let crate::ChainConfig::Remote {
        rpc_url,
        signer_key,
        ..
    } = &config.chain
    else {
        return Ok(ExitCode::SUCCESS);
    };
    let key = signer_key
        .expose()
        .parse::<healthledger_chain::SignerKey>()
        .map_err(Error::from)?;
    let contract = healthledger_chain::EvmLedger::deploy(rpc_url, &key).await?;
    out.emit(
        &serde_json::json!({ "contract": contract.to_string() }),
        || {
            vec![
                format!("✅ Deployed HealthLedger at {contract}"),
                format!("   set HEALTHLEDGER_CONTRACT={contract}"),
            ]
        },
    );
    Ok(ExitCode::SUCCESS)
}

fn cid(out: &Out, args: &CidArgs) -> crate::Result<ExitCode> {
    let version = if args.cid_version == 1 {
        CidVersion::V1
    } else {
        CidVersion::V0
    };
    let raw_leaves = args.raw_leaves.unwrap_or(version == CidVersion::V1);
    let options = CidOptions {
        cid_version: version,
        raw_leaves,
        ..CidOptions::KUBO_V0
    };
    options.validate().map_err(|e| {
        healthledger_core::ValidationError::new(
            "cid options",
            format!("{options:?}"),
            e.to_string(),
        )
    })?;
    let file = std::fs::File::open(&args.file).map_err(|e| {
        healthledger_core::ValidationError::new(
            "file",
            args.file.display().to_string(),
            format!("cannot be read: {e}"),
        )
    })?;
    let cid = compute_cid(std::io::BufReader::new(file), options).map_err(|e| {
        healthledger_core::ValidationError::new(
            "file",
            args.file.display().to_string(),
            format!("cannot be read: {e}"),
        )
    })?;
    out.emit(&serde_json::json!({ "cid": cid.to_string() }), || {
        vec![cid.to_string()]
    });
    Ok(ExitCode::SUCCESS)
}

async fn demo(
    out: &Out,
    file: Option<&Path>,
    data_dir: Option<PathBuf>,
) -> crate::Result<ExitCode> {
    let dir = data_dir.unwrap_or_else(|| PathBuf::from("healthledger-demo"));
    // The demo starts from nothing each run, but it clears only a directory
    // it made itself (marked), never one a user pointed it at by mistake.
    let marker = dir.join(DEMO_MARKER);
    let is_empty = std::fs::read_dir(&dir).map_or(true, |mut d| d.next().is_none());
    if dir.exists() && !marker.exists() && !is_empty {
        return Err(Error::Config {
            setting: "--data-dir".into(),
            rule: format!(
                "{} is not empty and was not made by `healthledger demo`: refusing to clear it",
                dir.display()
            ),
        });
    }
    if dir.exists() {
        std::fs::remove_dir_all(&dir).map_err(|e| Error::Config {
            setting: "--data-dir".into(),
            rule: format!("cannot clear {}: {e}", dir.display()),
        })?;
    }
    std::fs::create_dir_all(&dir)
        .and_then(|()| std::fs::write(&marker, b"made by healthledger demo\n"))
        .map_err(|e| Error::Config {
            setting: "--data-dir".into(),
            rule: format!("cannot create {}: {e}", dir.display()),
        })?;
    let mut config = load(file, Some(dir))?;
    if !config.is_local() {
        // The demo registers fixed HH numbers: it runs only on its own chain.
        config.chain = crate::ChainConfig::Local { anvil: None };
        config.vault_kek = None;
    }
    let app = App::build(config).await?;
    let mut lines = Vec::new();
    let json = out.json;
    let mut say = |line: &str| {
        if json {
            lines.push(line.to_owned());
        } else {
            println!("{line}");
        }
    };
    let result = story::run(&app, &mut say).await;
    app.shutdown().await;
    let outcome = result?;
    if json {
        println!(
            "{}",
            serde_json::json!({ "outcome": outcome, "lines": lines })
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// The file that marks a directory `healthledger demo` may clear.
const DEMO_MARKER: &str = ".healthledger-demo";

/// A sync engine over the app's ports that draws progress bars (not with
/// `--json`).
fn with_bars(app: &App, out: &Out) -> SyncEngine {
    let engine = SyncEngine::new(
        app.ledger().clone(),
        app.cache().clone(),
        app.sync().config().clone(),
    );
    if out.json {
        return engine;
    }
    let bars = Arc::new(std::sync::Mutex::new(
        None::<(Phase, indicatif::ProgressBar)>,
    ));
    engine.with_progress(Arc::new(move |p: &Progress| {
        let Ok(mut slot) = bars.lock() else { return };
        if slot.as_ref().is_none_or(|(phase, _)| *phase != p.phase) {
            if let Some((_, old)) = slot.take() {
                old.finish();
            }
            let bar = indicatif::ProgressBar::new(p.total);
            bar.set_style(
                indicatif::ProgressStyle::with_template("{prefix:>9} [{bar:40}] {pos}/{len} {msg}")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                    .progress_chars("=> "),
            );
            bar.set_prefix(format!("{:?}", p.phase));
            *slot = Some((p.phase, bar));
        }
        if let Some((_, bar)) = slot.as_ref() {
            bar.set_length(p.total);
            bar.set_position(p.done);
            bar.set_message(format!("{} events, {:.0}/s", p.events, p.per_second));
            if p.done >= p.total {
                bar.finish();
            }
        }
    }))
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

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
        .unwrap_or_default()
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
