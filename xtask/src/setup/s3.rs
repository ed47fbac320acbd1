//! The S3 test server: moto's standalone server, pinned from PyPI and
//! installed into a Python virtual environment under the git-ignored
//! `<repo>/.tools/moto/`.
//!
//! Setup only installs it; nothing is left running. The vault's tests start
//! `<tools>/moto/bin/moto_server` themselves on a random loopback port, wait
//! until it answers and stop it when they finish (as the chain tests do with
//! anvil). They find the tools directory through `HEALTHLEDGER_TOOLS`.

use std::path::Path;
use std::process::Command;

use anyhow::{Result, bail};

use super::Context;
use crate::cmd;

/// The pinned moto release.
const MOTO_VERSION: &str = "5.2.5";
/// The virtual environment's directory under `.tools/`.
const VENV_DIR: &str = "moto";

/// Installs `moto[server]` at the pinned version unless it already is, then
/// checks that the server's entry point exists.
pub(crate) fn ensure(context: &Context) -> Result<()> {
    let venv = context.tools_dir.join(VENV_DIR);
    let python = venv.join("bin").join("python");
    if installed_version(&python).as_deref() == Some(MOTO_VERSION) {
        println!("moto {MOTO_VERSION} is installed in {}", venv.display());
    } else {
        println!("to install: moto[server]=={MOTO_VERSION}");
        if !python.is_file() {
            let mut create = Command::new("python3");
            create.args(["-m", "venv"]).arg(&venv);
            if let Err(error) = cmd::run(&mut create) {
                if cmd::is_not_found(&error) {
                    bail!(
                        "python3 is not on PATH: install Python 3.9 or newer with its venv module, \
                         then rerun `cargo xtask setup`"
                    );
                }
                return Err(error);
            }
        }
        let mut pip = Command::new(&python);
        pip.args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
        ])
        .arg(format!("moto[server]=={MOTO_VERSION}"));
        cmd::run(&mut pip)?;
        let found = installed_version(&python);
        if found.as_deref() != Some(MOTO_VERSION) {
            bail!(
                "pip finished but moto is at {} instead of the pinned {MOTO_VERSION}",
                found.as_deref().unwrap_or("no version")
            );
        }
    }
    let server = venv.join("bin").join("moto_server");
    if !server.is_file() {
        bail!(
            "{} is missing although moto[server] is installed",
            server.display()
        );
    }
    println!("moto_server: {} (moto {MOTO_VERSION})", server.display());
    Ok(())
}

/// The moto version installed in the virtual environment of `python`, if any.
fn installed_version(python: &Path) -> Option<String> {
    if !python.is_file() {
        return None;
    }
    let mut query = Command::new(python);
    query.args([
        "-c",
        "import importlib.metadata as m; print(m.version('moto'))",
    ]);
    let output = cmd::capture(&mut query).ok()?;
    output
        .status
        .success()
        .then(|| cmd::first_line(&output))
        .filter(|version| !version.is_empty())
}
