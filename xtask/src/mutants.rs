//! `cargo xtask mutants`: mutation testing of the in-memory fakes, with the
//! port conformance suites as the tests.
//!
//! The fakes are the reference every adapter is compared with, so a suite
//! that lets a broken fake pass would let a broken adapter pass too. This
//! runs the pinned `cargo-mutants` (installed from crates.io into
//! `.tools/cargo-mutants/` on first use) over `InMemoryLedger`,
//! `InMemoryCache` and `InMemoryVault`, runs only core's `conformance` tests
//! against each mutant, and prints the kill rate and every surviving mutant.
//! It is not part of `cargo xtask test`: several hundred mutants take tens of
//! minutes on two cores.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};
use serde_json::Value;

use crate::cmd;

/// The pinned cargo-mutants release.
const VERSION: &str = "27.1.0";

/// The files whose mutants the suites must catch.
const FAKES: &[&str] = &[
    "crates/core/src/testing/memory_ledger.rs",
    "crates/core/src/testing/memory_cache.rs",
    "crates/core/src/testing/memory_vault.rs",
];

/// Test-control hooks of the fakes that no port method reaches (forks,
/// automine off, clock jumps the suites do not use, tampering). The
/// conformance suites cannot see them by design; core's own fake tests
/// (`tests/it/fakes.rs`) cover them. Matched against cargo-mutants' mutant
/// names.
const HOOKS: &[&str] = &[
    r"InMemoryLedger::(set_finality_depth|set_automine|mine|advance_time|mine_empty|rewind|reorg|emit_undecodable)\b",
    r"Chain::drop_pending\b",
    r"InMemoryVault::corrupt\b",
    r"InMemoryCache::(tamper_access_log|tamper_access_log_relinked|truncate_access_log)\b",
];

/// The share of viable mutants the suites must catch.
const AIM: f64 = 0.90;

/// Installs cargo-mutants if needed, runs it over the fakes and reports.
/// `files` narrows the run to some of [`FAKES`] (by substring).
pub(crate) fn run(root: &Path, files: &[String], jobs: u32) -> Result<()> {
    let binary = ensure_installed(root)?;
    let output = root.join("target").join("mutants");
    let selected: Vec<&str> = FAKES
        .iter()
        .copied()
        .filter(|f| files.is_empty() || files.iter().any(|want| f.contains(want.as_str())))
        .collect();
    if selected.is_empty() {
        bail!("no fake matches {files:?}; the fakes are {FAKES:?}");
    }

    cmd::header("cargo mutants over the in-memory fakes");
    let mut command = std::process::Command::new(&binary);
    command
        .arg("mutants")
        .args(["--package", "healthledger-core", "--features", "testing"])
        .args(["--jobs", &jobs.to_string()])
        .args(["--timeout", "120", "--build-timeout", "600"])
        .arg("--output")
        .arg(&output)
        .current_dir(root);
    for file in &selected {
        command.args(["--file", file]);
    }
    for hook in HOOKS {
        command.args(["--exclude-re", hook]);
    }
    // Only the conformance suites judge the mutants: the fakes' own tests
    // would catch some, but the question is whether the suites do.
    command.args(["--", "--test", "it", "conformance"]);
    // cargo-mutants exits non-zero when a mutant survives; the report below
    // says which, so its status is not the verdict.
    let status = command
        .stdin(std::process::Stdio::null())
        .status()
        .with_context(|| format!("could not start {}", binary.display()))?;
    println!("cargo-mutants exited with {status}");
    report(&output.join("mutants.out"))
}

/// The kill rate and the survivors from cargo-mutants' `outcomes.json`.
fn report(dir: &Path) -> Result<()> {
    let path = dir.join("outcomes.json");
    let text = fs::read_to_string(&path)
        .with_context(|| format!("reading {} (did the baseline fail?)", path.display()))?;
    let outcomes: Value =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    let count = |key: &str| outcomes.get(key).and_then(Value::as_u64).unwrap_or(0);
    let (caught, missed, timeout, unviable) = (
        count("caught"),
        count("missed"),
        count("timeout"),
        count("unviable"),
    );
    let viable = caught + missed + timeout;
    cmd::header("mutation testing: kill rate");
    println!(
        "mutants: {} in all, {unviable} unviable (do not build)",
        count("total_mutants")
    );
    println!(
        "viable:  {viable}: {caught} caught, {timeout} timed out (counted as caught), {missed} missed"
    );
    let rate = if viable == 0 {
        0.0
    } else {
        (caught + timeout) as f64 / viable as f64
    };
    println!(
        "kill rate: {:.1} % (aim: at least {:.0} %)",
        rate * 100.0,
        AIM * 100.0
    );
    let missed_list = fs::read_to_string(dir.join("missed.txt")).unwrap_or_default();
    if !missed_list.trim().is_empty() {
        println!("\nsurviving mutants:");
        for line in missed_list.lines() {
            println!("  {line}");
        }
    }
    if rate < AIM {
        bail!(
            "the conformance suites caught {:.1} % of viable mutants, under the {:.0} % aim",
            rate * 100.0,
            AIM * 100.0
        );
    }
    Ok(())
}

/// `.tools/cargo-mutants/bin/cargo-mutants` at [`VERSION`], installed with
/// `cargo install --locked` from crates.io when missing or at another version.
fn ensure_installed(root: &Path) -> Result<PathBuf> {
    let install_root = root.join(".tools").join("cargo-mutants");
    let binary = install_root.join("bin").join("cargo-mutants");
    cmd::header(&format!(
        "setup: cargo-mutants {VERSION} in .tools/cargo-mutants/"
    ));
    if installed_version(&binary).as_deref() == Some(VERSION) {
        println!("cargo-mutants {VERSION} is installed");
        return Ok(binary);
    }
    let mut install = cmd::cargo();
    install
        .args(["install", "cargo-mutants", "--locked", "--version", VERSION])
        .arg("--root")
        .arg(&install_root);
    cmd::run(&mut install)?;
    match installed_version(&binary) {
        Some(v) if v == VERSION => Ok(binary),
        other => bail!(
            "cargo install finished but {} reports version {other:?}, not {VERSION}",
            binary.display()
        ),
    }
}

/// The version `cargo-mutants mutants --version` prints (`cargo-mutants
/// 27.1.0`); run as a cargo subcommand, it takes `mutants` first.
fn installed_version(binary: &Path) -> Option<String> {
    let output =
        cmd::capture(std::process::Command::new(binary).args(["mutants", "--version"])).ok()?;
    if !output.status.success() {
        return None;
    }
    cmd::first_line(&output)
        .split_whitespace()
        .last()
        .map(str::to_owned)
}
