//! `healthledger demo`: the seed's story in a directory of its own.

use super::*;

/// The file that marks a directory `healthledger demo` may clear.
pub(super) const DEMO_MARKER: &str = ".healthledger-demo";

pub(super) async fn demo(
    out: &Out,
    file: Option<&Path>,
    data_dir: Option<PathBuf>,
) -> crate::Result<ExitCode> {
    let dir = data_dir.unwrap_or_else(|| PathBuf::from("healthledger-demo"));
    // The demo starts from nothing each run, but it clears only a directory
    // it made itself (marked), never one a user pointed it at by mistake.
    let marker = dir.join(DEMO_MARKER);
    let is_empty = std::fs::read_dir(&dir).map_or(true, |mut d| d.next().is_none());
    if dir.exists() && !marker.exists() && !is_empty {
        return Err(Error::Config {
            setting: "--data-dir".into(),
            rule: format!(
                "{} is not empty and was not made by `healthledger demo`: refusing to clear it",
                dir.display()
            ),
        });
    }
    if dir.exists() {
        std::fs::remove_dir_all(&dir).map_err(|e| Error::Config {
            setting: "--data-dir".into(),
            rule: format!("cannot clear {}: {e}", dir.display()),
        })?;
    }
    std::fs::create_dir_all(&dir)
        .and_then(|()| std::fs::write(&marker, b"made by healthledger demo\n"))
        .map_err(|e| Error::Config {
            setting: "--data-dir".into(),
            rule: format!("cannot create {}: {e}", dir.display()),
        })?;
    let mut config = load(file, Some(dir))?;
    if !config.is_local() {
        // The demo registers fixed HH numbers: it runs only on its own chain.
        config.chain = crate::ChainConfig::Local { anvil: None };
        config.vault_kek = None;
    }
    let app = App::build(config).await?;
    let mut lines = Vec::new();
    let json = out.json;
    let mut say = |line: &str| {
        if json {
            lines.push(line.to_owned());
        } else {
            println!("{line}");
        }
    };
    let result = story::run(&app, &mut say).await;
    app.shutdown().await;
    let outcome = result?;
    if json {
        println!(
            "{}",
            serde_json::json!({ "outcome": outcome, "lines": lines })
        );
    }
    Ok(ExitCode::SUCCESS)
}
