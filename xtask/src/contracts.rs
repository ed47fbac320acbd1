//! `cargo xtask contracts`: compiles the Solidity sources with the pinned
//! solc-js from `.tools/` through its standard-JSON interface and writes the
//! committed artifacts that `alloy::sol!` reads.
//!
//! The compiler settings live in `crates/chain/contracts/compile.js`, the one
//! script that both this command and the chain crate's artifact-freshness test
//! run, so the two can never disagree about what a fresh compile is.

use std::fs;
use std::path::Path;
use std::process::Command;

use anyhow::{Context as _, Result, bail};

use crate::cmd;
use crate::setup::{Context, TOOLS_ENV};

/// The contracts under `crates/chain/contracts/`, each compiled to `<name>.json`.
const CONTRACTS: &[&str] = &["HealthLedger"];

/// Runs the compile script on every contract and writes its artifact.
pub(crate) fn run(root: &Path) -> Result<()> {
    let context = Context::new(root);
    let tools = std::env::var_os(TOOLS_ENV)
        .map(std::path::PathBuf::from)
        .unwrap_or(context.tools_dir);
    let solc = tools.join("node_modules").join("solc").join("solc.js");
    if !solc.is_file() {
        bail!(
            "solc-js is not installed at {}: run `cargo xtask setup` first",
            solc.display()
        );
    }
    let dir = root.join("crates").join("chain").join("contracts");
    let script = dir.join("compile.js");
    for name in CONTRACTS {
        cmd::header(&format!("contracts: {name}.sol"));
        let source = dir.join(format!("{name}.sol"));
        let mut command = Command::new("node");
        command.arg(&script).arg(&solc).arg(&source);
        let output = cmd::capture(&mut command)?;
        cmd::check(&command, &output)?;
        let warnings = String::from_utf8_lossy(&output.stderr);
        if !warnings.trim().is_empty() {
            eprintln!("{}", warnings.trim_end());
        }
        let artifact = dir.join(format!("{name}.json"));
        fs::write(&artifact, &output.stdout)
            .with_context(|| format!("writing {}", artifact.display()))?;
        println!("wrote {}", artifact.display());
    }
    Ok(())
}
