//! `cargo xtask setup`: everything the test suite needs that cargo does not
//! provide, as an ordered list of idempotent [`Step`]s.
//!
//! A new prerequisite (an S3 test server, say) is one more module under
//! `setup/` and one more entry in [`STEPS`]; `test` and `bench` pick it up.

mod postgres;
mod s3;
mod tools;

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};

use crate::cmd;

/// Environment variable that points the tests at the pinned tools directory.
pub(crate) const TOOLS_ENV: &str = "HEALTHLEDGER_TOOLS";
/// Environment variable naming the PostgreSQL database the tests use.
pub(crate) const DATABASE_ENV: &str = "TEST_DATABASE_URL";
/// The database the tests use when [`DATABASE_ENV`] is not set.
pub(crate) const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// What the steps share: where the repository and its tools are, which database to use.
#[derive(Debug, Clone)]
pub(crate) struct Context {
    /// Repository root.
    pub(crate) root: PathBuf,
    /// `<root>/.tools`, git-ignored, where npm installs the pinned tools.
    pub(crate) tools_dir: PathBuf,
    /// The PostgreSQL URL the tests will use.
    pub(crate) database_url: String,
}

impl Context {
    /// Builds the context for `root`, reading [`DATABASE_ENV`] from the environment.
    pub(crate) fn new(root: &Path) -> Self {
        let database_url = std::env::var(DATABASE_ENV)
            .ok()
            .filter(|url| !url.trim().is_empty())
            .unwrap_or_else(|| DEFAULT_DATABASE_URL.to_owned());
        Self {
            root: root.to_path_buf(),
            tools_dir: root.join(".tools"),
            database_url,
        }
    }

    /// Variables set for the child processes of `test` and `bench`, so the
    /// tests find the same tools and database that setup prepared.
    pub(crate) fn child_env(&self) -> Vec<(&'static str, OsString)> {
        vec![
            (TOOLS_ENV, self.tools_dir.clone().into_os_string()),
            (DATABASE_ENV, self.database_url.clone().into()),
        ]
    }
}

/// One idempotent preparation step.
pub(crate) struct Step {
    /// Shown in the step's header.
    pub(crate) name: &'static str,
    /// Does the work; must be cheap when everything is already in place.
    pub(crate) run: fn(&Context) -> Result<()>,
}

/// The steps of `cargo xtask setup`, in order.
pub(crate) const STEPS: &[Step] = &[
    Step {
        name: "pinned tools (anvil, solc) in .tools/",
        run: tools::ensure,
    },
    Step {
        name: "PostgreSQL on TEST_DATABASE_URL",
        run: postgres::ensure,
    },
    Step {
        name: "S3 test server (moto) in .tools/moto/",
        run: s3::ensure,
    },
];

/// Runs only the first step, the pinned tools: all that the quickstart on
/// embedded defaults needs (no PostgreSQL, no S3 server).
pub(crate) fn tools_only(root: &Path) -> Result<Context> {
    let context = Context::new(root);
    let step = &STEPS[0];
    cmd::header(&format!("setup: {}", step.name));
    (step.run)(&context).with_context(|| format!("setup step \"{}\" failed", step.name))?;
    Ok(context)
}

/// Runs every step in order and returns the context the later commands use.
pub(crate) fn run(root: &Path) -> Result<Context> {
    let context = Context::new(root);
    for step in STEPS {
        cmd::header(&format!("setup: {}", step.name));
        (step.run)(&context).with_context(|| format!("setup step \"{}\" failed", step.name))?;
    }
    Ok(context)
}
