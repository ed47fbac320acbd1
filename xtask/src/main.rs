//! HealthLedger's repository automation, run as `cargo xtask <command>`.
//!
//! The alias lives in `.cargo/config.toml`. Every subcommand is one module and
//! one variant of [`Command`]; a new subcommand (for example `contracts`, which
//! will compile the Solidity sources with the pinned solc from `.tools/`) is
//! added the same way, and a new prerequisite of the test suite (for example an
//! S3 test server) becomes one more step in [`setup::STEPS`].

mod ci;
mod cmd;
mod contracts;
mod mutants;
mod setup;
mod tidy;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Command line of `cargo xtask`.
#[derive(Debug, Parser)]
#[command(
    name = "cargo xtask",
    bin_name = "cargo xtask",
    about = "HealthLedger's repository automation"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// The subcommands of `cargo xtask`.
#[derive(Debug, Subcommand)]
enum Command {
    /// Install the pinned tools into `.tools/` and make sure PostgreSQL answers.
    Setup,
    /// Run setup, rustfmt, clippy, the whole test suite and tidy; stop at the first failure.
    Test,
    /// Check the repository's conventions (module docs, banned test attributes, dependency rules).
    Tidy {
        /// Root of the repository to check; defaults to this repository.
        #[arg(long)]
        root: Option<PathBuf>,
    },
    /// Run setup, then every benchmark of the workspace (`cargo bench --workspace`).
    Bench,
    /// Install the pinned tools, then run the quickstart example on the embedded defaults.
    Quickstart,
    /// Install the pinned tools, then run `healthledger demo` (the seed's story) on the embedded defaults.
    Demo,
    /// Compile the Solidity contracts with the pinned solc-js into their committed JSON artifacts.
    Contracts,
    /// Mutation-test the in-memory fakes with the conformance suites (cargo-mutants); print the kill rate.
    Mutants {
        /// Only the fakes whose path contains one of these (e.g. `memory_ledger`).
        #[arg(long = "file")]
        files: Vec<String>,
        /// Mutants built and tested at once.
        #[arg(long, default_value_t = 1)]
        jobs: u32,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let root = repo_root();
    let outcome = match cli.command {
        Command::Setup => setup::run(&root).map(|_| ()),
        Command::Test => ci::test(&root),
        Command::Tidy { root: given } => tidy::run(given.as_deref().unwrap_or(&root)),
        Command::Bench => ci::bench(&root),
        Command::Quickstart => ci::quickstart(&root),
        Command::Demo => ci::demo(&root),
        Command::Contracts => contracts::run(&root),
        Command::Mutants { files, jobs } => mutants::run(&root, &files, jobs),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// The repository root: the parent of this package's manifest directory.
fn repo_root() -> PathBuf {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir
        .parent()
        .map_or_else(|| manifest_dir.to_path_buf(), Path::to_path_buf)
}
