//! `cargo xtask test`, `cargo xtask bench`, `cargo xtask quickstart` and `cargo xtask demo`: setup, then
//! cargo's own checks (and the runnable examples) in a fixed order, stopping at the first failure.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Result, bail};

use crate::cmd;
use crate::setup;
use crate::tidy;

/// The cargo invocations of `cargo xtask test`, in order; tidy runs after them.
const TEST_STEPS: &[&[&str]] = &[
    &["fmt", "--all", "--check"],
    &[
        "clippy",
        "--workspace",
        "--all-targets",
        "--all-features",
        "--",
        "-D",
        "warnings",
    ],
    &["test", "--workspace", "--all-features"],
];

/// The runnable examples, as a user runs them (each on a fresh local chain),
/// with their arguments.
const EXAMPLES: &[(&str, &[&str])] = &[
    ("quickstart", &[]),
    ("custom_cache", &[]),
    ("follow", &["3"]),
];

/// Runs setup, rustfmt, clippy, the test suite, the examples and tidy.
pub(crate) fn test(root: &Path) -> Result<()> {
    let context = setup::run(root)?;
    for args in TEST_STEPS {
        cargo_step(root, &context, args)?;
    }
    run_examples(root, &context)?;
    cmd::header("cargo xtask tidy");
    tidy::run(root)?;
    println!("\nall checks passed");
    Ok(())
}

/// Runs setup, then every benchmark of the workspace.
pub(crate) fn bench(root: &Path) -> Result<()> {
    let context = setup::run(root)?;
    cargo_step(root, &context, &["bench", "--workspace"])
}

/// Installs the pinned tools, then runs the quickstart example on the
/// embedded defaults (a local anvil chain, a SQLite file, a file:// vault).
pub(crate) fn quickstart(root: &Path) -> Result<()> {
    let context = setup::tools_only(root)?;
    cargo_step(
        root,
        &context,
        &[
            "run",
            "--package",
            "healthledger-examples",
            "--example",
            "quickstart",
        ],
    )
}

/// Installs the pinned tools, then runs `healthledger demo`: the seed's
/// story through the facade, on the embedded defaults, in
/// `./healthledger-demo`.
pub(crate) fn demo(root: &Path) -> Result<()> {
    let context = setup::tools_only(root)?;
    cargo_step(
        root,
        &context,
        &[
            "run",
            "--quiet",
            "--package",
            "healthledger-api",
            "--bin",
            "healthledger",
            "--",
            "demo",
        ],
    )
}

/// Runs each example from the build the test step just made. `cargo run -p
/// healthledger-examples` would resolve the features of that one package and
/// rebuild 45 crates a second time (1.7 GB more on disk), so the examples are
/// built with the test step's flags (`--workspace --all-features`, nothing to
/// compile) and their binaries started directly.
fn run_examples(root: &Path, context: &setup::Context) -> Result<()> {
    cargo_step(
        root,
        context,
        &["build", "--workspace", "--all-features", "--examples"],
    )?;
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    for (name, args) in EXAMPLES {
        let mut command = Command::new(target.join("debug").join("examples").join(name));
        command
            .args(*args)
            .current_dir(root)
            .envs(context.child_env());
        step(&mut command)?;
    }
    Ok(())
}

fn cargo_step(root: &Path, context: &setup::Context, args: &[&str]) -> Result<()> {
    let mut command = cmd::cargo();
    command
        .args(args)
        .current_dir(root)
        .envs(context.child_env());
    step(&mut command)
}

/// Runs one step under a header, printing how long it took.
fn step(command: &mut Command) -> Result<()> {
    cmd::header(&cmd::describe(command));
    let started = Instant::now();
    let outcome = cmd::run(command);
    let seconds = started.elapsed().as_secs_f64();
    match outcome {
        Ok(()) => {
            println!("ok ({seconds:.1} s)");
            Ok(())
        }
        Err(error) => bail!("{error:#} after {seconds:.1} s"),
    }
}
