//! Live sync: builds the app on the embedded defaults in `./healthledger-follow`
//! (or the configuration in the environment, see the README), then follows
//! the chain, printing each block the cache reaches, until Ctrl-C (or for
//! the number of seconds given as its argument: CI runs it for 3).
//!
//! ```sh
//! cargo run -p healthledger-examples --example follow [-- SECONDS]
//! ```

use std::time::Duration;

use anyhow::Result;
use healthledger_api::{App, Config};

#[tokio::main]
async fn main() -> Result<()> {
    let mut config = Config::load(None)?;
    if config.is_local() && std::env::var_os("HEALTHLEDGER_DATA_DIR").is_none() {
        config = Config::local("healthledger-follow");
    }
    let app = App::build(config).await?;
    println!(
        "following {} into {}",
        app.wiring().chain,
        app.wiring().cache
    );
    let job = app.spawn_follow();
    let until = std::env::args()
        .nth(1)
        .map(|s| s.parse::<u64>())
        .transpose()?
        .map(|secs| tokio::time::Instant::now() + Duration::from_secs(secs));
    let mut last = None;
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
        if until.is_some_and(|t| tokio::time::Instant::now() >= t) {
            break;
        }
        let status = app.sync().status().await?;
        let at = status.checkpoint.map(|b| b.number);
        if at != last {
            if let Some(b) = status.checkpoint {
                println!(
                    "block {} {} applied; head {}, lag {} block(s)",
                    b.number, b.hash, status.head.number, status.lag_blocks
                );
            }
            last = at;
        }
    }
    job.stop().await?;
    app.shutdown().await;
    Ok(())
}
