//! The seed guide's whole story through the HealthLedger facade, on the
//! embedded defaults (a local anvil with a freshly deployed contract, a
//! SQLite cache file and a `file://` vault, in a fresh directory): register
//! patient 555555, doctor 112233 and diagnostic center 444444; the center
//! uploads a report; the patient grants the doctor; the doctor reads it;
//! the patient revokes; the doctor's next read is denied and logged; the
//! cache row of 555555 is deleted and `sync patient 555555` restores it;
//! the cache syncs to the head and the access log is anchored on chain.
//!
//! Run with `cargo xtask quickstart` (it installs the pinned anvil first),
//! or `healthledger demo` for the same story from the CLI.

use anyhow::Result;
use healthledger_api::{App, Config, story};

#[tokio::main]
async fn main() -> Result<()> {
    let dir = std::env::temp_dir().join(format!("healthledger-quickstart-{}", std::process::id()));
    let app = App::build(Config::local(&dir)).await?;
    println!("data in {}", dir.display());
    println!(
        "chain: {} (contract {})\ncache: {}\nvault: {}\n",
        app.wiring().chain,
        app.wiring().contract.as_deref().unwrap_or("?"),
        app.wiring().cache,
        app.wiring().vault
    );
    let result = story::run(&app, &mut |line: &str| println!("{line}")).await;
    app.shutdown().await;
    result?;
    Ok(())
}
