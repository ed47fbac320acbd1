//! The pinned npm tools: anvil (a local EVM node) and solc-js (the Solidity
//! compiler), installed into the git-ignored `<repo>/.tools/`.
//!
//! The versions are pinned exactly in the committed `xtask/tools/package.json`
//! (with its `package-lock.json`). After setup the tools are found by
//! convention, with nothing written outside the repository:
//! - `<repo>/.tools/bin/anvil`: the anvil binary (a symlink into the package);
//! - `<repo>/.tools/node_modules/solc/solc.js`: solc-js, run with `node`, also
//!   linked as `<repo>/.tools/bin/solcjs`.
//!
//! Tests find the directory through `HEALTHLEDGER_TOOLS`, which `cargo xtask
//! test` sets.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, Result, bail};
use serde_json::Value;

use super::Context;
use crate::cmd;

/// npm package that ships the anvil binary for Linux on x86-64.
const ANVIL_PACKAGE: &str = "@foundry-rs/anvil-linux-amd64";
/// npm package of solc-js.
const SOLC_PACKAGE: &str = "solc";

/// Installs the pinned tools when needed, links them under `.tools/bin` and
/// checks that they run.
pub(crate) fn ensure(context: &Context) -> Result<()> {
    if std::env::consts::OS != "linux" || std::env::consts::ARCH != "x86_64" {
        bail!(
            "the pinned anvil package {ANVIL_PACKAGE} runs on Linux x86-64 only, this is {}-{}",
            std::env::consts::OS,
            std::env::consts::ARCH
        );
    }
    let spec_dir = context.root.join("xtask").join("tools");
    let manifest = spec_dir.join("package.json");
    let pins = read_pins(&manifest)?;
    let tools = &context.tools_dir;
    fs::create_dir_all(tools).with_context(|| format!("creating {}", tools.display()))?;

    let stale = stale_pins(tools, &pins);
    if stale.is_empty() {
        println!("installed versions match {}", manifest.display());
    } else {
        println!("to install: {}", stale.join(", "));
        install(&spec_dir, tools)?;
        let still_stale = stale_pins(tools, &pins);
        if !still_stale.is_empty() {
            bail!(
                "npm finished but these packages are still not at their pinned versions: {}",
                still_stale.join(", ")
            );
        }
    }

    let bin = tools.join("bin");
    fs::create_dir_all(&bin).with_context(|| format!("creating {}", bin.display()))?;
    let anvil_target = package_bin(tools, ANVIL_PACKAGE, "anvil")?;
    make_executable(&tools.join(&anvil_target))?;
    let anvil = bin.join("anvil");
    link(&Path::new("..").join(&anvil_target), &anvil)?;
    let solc_js = tools
        .join("node_modules")
        .join(SOLC_PACKAGE)
        .join("solc.js");
    if !solc_js.is_file() {
        bail!(
            "{} is missing from the installed solc package",
            solc_js.display()
        );
    }
    link(
        &Path::new("..")
            .join("node_modules")
            .join(SOLC_PACKAGE)
            .join("solc.js"),
        &bin.join("solcjs"),
    )?;

    let mut version = Command::new(&anvil);
    version.arg("--version");
    let output = cmd::capture(&mut version)?;
    cmd::check(&version, &output)?;
    println!("anvil: {} ({})", anvil.display(), cmd::first_line(&output));

    let mut version = Command::new("node");
    version.arg(&solc_js).arg("--version");
    let output = cmd::capture(&mut version)?;
    cmd::check(&version, &output)?;
    println!(
        "solc:  node {} ({})",
        solc_js.display(),
        cmd::first_line(&output)
    );
    Ok(())
}

/// Reads the exact `name -> version` pins of a package.json's `dependencies`.
fn read_pins(manifest: &Path) -> Result<Vec<(String, String)>> {
    let json = read_json(manifest)?;
    let deps = json
        .get("dependencies")
        .and_then(Value::as_object)
        .with_context(|| format!("{} has no \"dependencies\" object", manifest.display()))?;
    let mut pins = Vec::with_capacity(deps.len());
    for (name, version) in deps {
        let version = version.as_str().unwrap_or_default();
        let exact = version.split('.').count() == 3
            && version
                .split('.')
                .all(|part| !part.is_empty() && part.chars().all(|c| c.is_ascii_digit()));
        if !exact {
            bail!(
                "{}: {name} is pinned as \"{version}\": expected an exact version such as \"1.2.3\"",
                manifest.display()
            );
        }
        pins.push((name.clone(), version.to_owned()));
    }
    Ok(pins)
}

/// The pins whose installed version differs, as `name@version` strings.
fn stale_pins(tools: &Path, pins: &[(String, String)]) -> Vec<String> {
    pins.iter()
        .filter(|(name, version)| installed_version(tools, name).as_deref() != Some(version))
        .map(|(name, version)| format!("{name}@{version}"))
        .collect()
}

/// The version recorded in `.tools/node_modules/<name>/package.json`, if any.
fn installed_version(tools: &Path, name: &str) -> Option<String> {
    let manifest = tools.join("node_modules").join(name).join("package.json");
    let json = read_json(&manifest).ok()?;
    json.get("version")?.as_str().map(str::to_owned)
}

/// Copies the committed manifest (and lock file) into `.tools/` and runs npm.
/// When no lock file is committed yet, the one npm wrote is copied back so it
/// can be committed.
fn install(spec_dir: &Path, tools: &Path) -> Result<()> {
    copy(&spec_dir.join("package.json"), &tools.join("package.json"))?;
    let committed_lock = spec_dir.join("package-lock.json");
    let installed_lock = tools.join("package-lock.json");
    if committed_lock.is_file() {
        copy(&committed_lock, &installed_lock)?;
    }
    let mut npm = Command::new("npm");
    npm.args(["install", "--no-audit", "--no-fund", "--prefix"])
        .arg(tools);
    if let Err(error) = cmd::run(&mut npm) {
        if cmd::is_not_found(&error) {
            bail!(
                "npm is not on PATH: install Node.js 20 or newer with npm, then rerun `cargo xtask setup`"
            );
        }
        return Err(error);
    }
    if !committed_lock.is_file() && installed_lock.is_file() {
        copy(&installed_lock, &committed_lock)?;
        println!(
            "wrote {}: commit it so every machine installs the same tree",
            committed_lock.display()
        );
    }
    Ok(())
}

/// The path, relative to `.tools/`, of the executable `bin_name` that package
/// `package` declares in its package.json.
fn package_bin(tools: &Path, package: &str, bin_name: &str) -> Result<PathBuf> {
    let package_dir = Path::new("node_modules").join(package);
    let manifest = tools.join(&package_dir).join("package.json");
    let json = read_json(&manifest)?;
    let relative = match json.get("bin") {
        Some(Value::String(path)) => Some(path.as_str()),
        Some(Value::Object(bins)) => bins.get(bin_name).and_then(Value::as_str),
        _ => None,
    }
    .with_context(|| {
        format!(
            "{} declares no \"{bin_name}\" executable",
            manifest.display()
        )
    })?;
    let path = package_dir.join(relative.trim_start_matches("./"));
    if !tools.join(&path).is_file() {
        bail!(
            "{} names {relative} as its {bin_name} executable, but {} does not exist",
            manifest.display(),
            tools.join(&path).display()
        );
    }
    Ok(path)
}

#[cfg(unix)]
fn make_executable(path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    let mut permissions = fs::metadata(path)
        .with_context(|| format!("reading {}", path.display()))?
        .permissions();
    if permissions.mode() & 0o111 != 0o111 {
        permissions.set_mode(permissions.mode() | 0o755);
        fs::set_permissions(path, permissions)
            .with_context(|| format!("making {} executable", path.display()))?;
    }
    Ok(())
}

#[cfg(not(unix))]
fn make_executable(_path: &Path) -> Result<()> {
    Ok(())
}

/// Points the symlink `link` at `target` (relative to the link's directory),
/// replacing whatever was there.
#[cfg(unix)]
fn link(target: &Path, link: &Path) -> Result<()> {
    if fs::read_link(link).is_ok_and(|existing| existing == target) {
        return Ok(());
    }
    if fs::symlink_metadata(link).is_ok() {
        fs::remove_file(link).with_context(|| format!("removing {}", link.display()))?;
    }
    std::os::unix::fs::symlink(target, link)
        .with_context(|| format!("linking {} to {}", link.display(), target.display()))
}

#[cfg(not(unix))]
fn link(target: &Path, link: &Path) -> Result<()> {
    bail!(
        "cannot link {} to {}: symlinks are only made on Unix",
        link.display(),
        target.display()
    )
}

fn read_json(path: &Path) -> Result<Value> {
    let text = fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

fn copy(from: &Path, to: &Path) -> Result<()> {
    fs::copy(from, to)
        .map(drop)
        .with_context(|| format!("copying {} to {}", from.display(), to.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn committed_manifest_pins_exact_versions_of_both_tools() {
        let manifest = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tools")
            .join("package.json");
        let pins = read_pins(&manifest).unwrap();
        let names: Vec<&str> = pins.iter().map(|(name, _)| name.as_str()).collect();
        assert!(names.contains(&ANVIL_PACKAGE), "{names:?}");
        assert!(names.contains(&SOLC_PACKAGE), "{names:?}");
    }

    #[test]
    fn ranges_are_rejected_as_pins() {
        let dir = std::env::temp_dir().join(format!("xtask-pins-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let manifest = dir.join("package.json");
        fs::write(&manifest, r#"{"dependencies": {"solc": "^0.8.30"}}"#).unwrap();
        let error = read_pins(&manifest).unwrap_err().to_string();
        fs::remove_dir_all(&dir).unwrap();
        assert!(error.contains("\"^0.8.30\""), "{error}");
    }
}
