//! Running child processes: a visible header per step, the command line echoed,
//! and an error that names the command when it fails.

use std::ffi::OsStr;
use std::io::ErrorKind;
use std::process::{Command, Output, Stdio};

use anyhow::{Context as _, Result, bail};

/// Prints the header that opens a step, so a log reads as a list of steps.
pub(crate) fn header(title: &str) {
    println!("\n==> {title}");
}

/// A `cargo` command: the cargo that runs xtask when there is one, else the one on `PATH`.
pub(crate) fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

/// The command line as a person would type it, for logs and error messages.
pub(crate) fn describe(command: &Command) -> String {
    let program = command.get_program();
    let name = std::path::Path::new(program)
        .file_name()
        .unwrap_or(program)
        .to_string_lossy();
    std::iter::once(name.into_owned())
        .chain(command.get_args().map(quote))
        .collect::<Vec<_>>()
        .join(" ")
}

fn quote(arg: &OsStr) -> String {
    let arg = arg.to_string_lossy();
    if !arg.is_empty()
        && arg
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:@+,".contains(c))
    {
        arg.into_owned()
    } else {
        format!("'{}'", arg.replace('\'', r"'\''"))
    }
}

/// Runs `command` with inherited standard output and error; fails unless it exits with 0.
pub(crate) fn run(command: &mut Command) -> Result<()> {
    let line = describe(command);
    println!("$ {line}");
    let status = command
        .stdin(Stdio::null())
        .status()
        .map_err(|error| spawn_error(&line, &error))?;
    if !status.success() {
        bail!("`{line}` failed ({status})");
    }
    Ok(())
}

/// Runs `command` and captures its output; the caller judges the exit status.
/// Fails only when the program cannot be started, with [`ErrorKind::NotFound`]
/// preserved in the chain so callers can treat a missing tool specially.
pub(crate) fn capture(command: &mut Command) -> Result<Output> {
    let line = describe(command);
    command
        .stdin(Stdio::null())
        .output()
        .map_err(|error| spawn_error(&line, &error))
}

/// True when `error` says a program could not be started because it does not exist.
pub(crate) fn is_not_found(error: &anyhow::Error) -> bool {
    error
        .chain()
        .filter_map(|cause| cause.downcast_ref::<std::io::Error>())
        .any(|io| io.kind() == ErrorKind::NotFound)
}

fn spawn_error(line: &str, error: &std::io::Error) -> anyhow::Error {
    anyhow::Error::new(std::io::Error::new(error.kind(), error.to_string()))
        .context(format!("could not start `{line}`"))
}

/// Returns the first line of a command's standard output, for version banners.
pub(crate) fn first_line(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .next()
        .unwrap_or_default()
        .trim()
        .to_owned()
}

/// Checks that a captured command succeeded, quoting its error output when it did not.
pub(crate) fn check(command: &Command, output: &Output) -> Result<()> {
    if output.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let text = if stderr.trim().is_empty() {
        stdout
    } else {
        stderr
    };
    Err(anyhow::anyhow!("{}", text.trim()))
        .with_context(|| format!("`{}` failed ({})", describe(command), output.status))
}
