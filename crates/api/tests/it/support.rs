//! Shared set-up: an app on a fresh local anvil, in a temporary data
//! directory, on SQLite or on a fresh PostgreSQL schema.

use std::path::PathBuf;

use healthledger_api::{App, Config};

/// The pinned tools directory, which `cargo xtask test` points at.
pub(crate) fn tools() -> PathBuf {
    std::env::var_os("HEALTHLEDGER_TOOLS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.tools"))
}

/// The PostgreSQL URL the tests use.
pub(crate) fn postgres_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// The embedded defaults in a fresh directory, on the pinned anvil.
pub(crate) fn local_config(dir: &std::path::Path) -> Config {
    let mut c = Config::local(dir);
    c.chain = healthledger_api::ChainConfig::Local {
        anvil: Some(tools().join("bin/anvil")),
    };
    c.poll_interval = std::time::Duration::from_millis(50);
    c
}

/// An app on SQLite (or PostgreSQL in a fresh schema when `postgres`).
pub(crate) async fn app(postgres: bool) -> (tempfile::TempDir, App) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = local_config(dir.path());
    if postgres {
        config.database_url = postgres_url();
        config.database_schema = Some(format!(
            "api_{}_{}",
            std::process::id(),
            rand::random::<u32>()
        ));
    }
    let app = App::build(config).await.unwrap();
    (dir, app)
}
