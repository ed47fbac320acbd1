//! The embedded default chain: a local anvil from the pinned tools, whose
//! state, contract address and keys live under the data directory so the
//! next run finds the same chain, the same contract and the same cache.
//!
//! anvil is started by hand rather than through alloy's `node-bindings`
//! helper because that helper stops the node with SIGKILL, and anvil writes
//! its `--state` file only on a graceful exit (plus every `--state-interval`
//! seconds): we stop it with SIGINT so no block is lost.

use std::{
    path::{Path, PathBuf},
    process::Stdio,
    time::Duration,
};

use alloy_primitives::{Address, B256};
use healthledger_chain::{EvmLedger, SignerKey};
use serde::{Deserialize, Serialize};
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::{Child, Command},
};

use crate::{Error, Result};

/// What a local chain remembers between runs, in `.healthledger/chain.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Remembered {
    contract: Address,
}

/// A running local anvil with the HealthLedger contract on it.
#[derive(Debug)]
pub struct LocalChain {
    child: Child,
    endpoint: String,
    contract: Address,
    key: SignerKey,
    fresh: bool,
}

impl LocalChain {
    /// Starts anvil with its state in `<data_dir>/.healthledger/anvil-state.json`;
    /// deploys the contract on the first run and remembers its address.
    pub async fn start(data_dir: &Path, anvil: Option<&Path>) -> Result<Self> {
        let dir = data_dir.join(".healthledger");
        std::fs::create_dir_all(&dir)
            .map_err(|e| Error::LocalChain(format!("cannot create {}: {e}", dir.display())))?;
        let bin = match anvil {
            Some(p) => p.to_path_buf(),
            None => find_anvil()?,
        };
        let port = free_port()?;
        let state = dir.join("anvil-state.json");
        let mut child = Command::new(&bin)
            .arg("--port")
            .arg(port.to_string())
            .arg("--state")
            .arg(&state)
            .arg("--state-interval")
            .arg("1")
            // Keep the states of past blocks across restarts: a full sync
            // reads at the finalized block, not only at the head.
            .arg("--preserve-historical-states")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| Error::LocalChain(format!("cannot start {}: {e}", bin.display())))?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| Error::LocalChain("anvil has no stdout".into()))?;
        let key = tokio::time::timeout(Duration::from_secs(30), first_key(stdout))
            .await
            .map_err(|_| Error::LocalChain("anvil did not start within 30 s".into()))??;
        let endpoint = format!("http://127.0.0.1:{port}");
        let remembered_at = dir.join("chain.json");
        let (contract, fresh) = match std::fs::read_to_string(&remembered_at) {
            Ok(text) => {
                let r: Remembered = serde_json::from_str(&text).map_err(|e| {
                    Error::LocalChain(format!("{} is malformed: {e}", remembered_at.display()))
                })?;
                (r.contract, false)
            }
            Err(_) => {
                let contract = EvmLedger::deploy(&endpoint, &key).await?;
                let text = serde_json::to_string_pretty(&Remembered { contract })
                    .map_err(|e| Error::LocalChain(e.to_string()))?;
                std::fs::write(&remembered_at, text).map_err(|e| {
                    Error::LocalChain(format!("cannot write {}: {e}", remembered_at.display()))
                })?;
                (contract, true)
            }
        };
        Ok(Self {
            child,
            endpoint,
            contract,
            key,
            fresh,
        })
    }

    /// The node's JSON-RPC URL.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The contract's address.
    pub fn contract(&self) -> Address {
        self.contract
    }

    /// The funded development key the app signs with (a registrar: it
    /// deployed the contract).
    pub fn key(&self) -> &SignerKey {
        &self.key
    }

    /// Whether the contract was deployed by this start (a first run).
    pub fn is_fresh(&self) -> bool {
        self.fresh
    }

    /// Stops anvil gracefully (SIGINT), so it writes its state file.
    pub async fn stop(mut self) {
        if let Some(pid) = self.child.id() {
            let _ = Command::new("kill")
                .arg("-INT")
                .arg(pid.to_string())
                .status()
                .await;
            if tokio::time::timeout(Duration::from_secs(10), self.child.wait())
                .await
                .is_ok()
            {
                return;
            }
        }
        let _ = self.child.kill().await;
    }
}

/// Reads anvil's banner up to its listening line and returns the first
/// development key it prints (anvil funds it).
async fn first_key(stdout: tokio::process::ChildStdout) -> Result<SignerKey> {
    let mut lines = BufReader::new(stdout).lines();
    let mut in_keys = false;
    let mut key = None;
    while let Some(line) = lines
        .next_line()
        .await
        .map_err(|e| Error::LocalChain(format!("reading anvil's output: {e}")))?
    {
        let line = line.trim();
        if line.starts_with("Private Keys") {
            in_keys = true;
        } else if in_keys && key.is_none() && line.starts_with("(0)") {
            let hex = line.trim_start_matches("(0)").trim();
            let bytes: B256 = hex
                .parse()
                .map_err(|_| Error::LocalChain("anvil printed a malformed key".into()))?;
            key = Some(SignerKey::from_bytes(&bytes)?);
        } else if line.starts_with("Listening on") {
            // Keep draining the pipe so anvil never blocks on a full one.
            tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
            return key.ok_or_else(|| Error::LocalChain("anvil printed no keys".into()));
        }
    }
    Err(Error::LocalChain("anvil exited during start-up".into()))
}

/// `$HEALTHLEDGER_TOOLS/bin/anvil`, then `.tools/bin/anvil` in the working
/// directory or any parent, then `anvil` on `PATH`.
pub fn find_anvil() -> Result<PathBuf> {
    if let Some(tools) = std::env::var_os("HEALTHLEDGER_TOOLS") {
        let p = PathBuf::from(tools).join("bin/anvil");
        if p.is_file() {
            return Ok(p);
        }
    }
    if let Ok(cwd) = std::env::current_dir() {
        for dir in cwd.ancestors() {
            let p = dir.join(".tools/bin/anvil");
            if p.is_file() {
                return Ok(p);
            }
        }
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let p = dir.join("anvil");
            if p.is_file() {
                return Ok(p);
            }
        }
    }
    Err(Error::LocalChain(
        "anvil is not installed: run `cargo xtask setup` (it installs the pinned anvil into .tools/), or set HEALTHLEDGER_TOOLS or HEALTHLEDGER_RPC_URL".into(),
    ))
}

fn free_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")
        .map_err(|e| Error::LocalChain(format!("no free port: {e}")))?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| Error::LocalChain(format!("no free port: {e}")))
}
