//! The committed contract artifact is exactly what a fresh compile of the
//! committed source produces (`cargo xtask contracts` regenerates it).

use std::process::Command;

use crate::support::{repo_root, tools_dir};

#[test]
fn committed_artifact_matches_a_fresh_compile() {
    let solc = tools_dir()
        .join("node_modules")
        .join("solc")
        .join("solc.js");
    assert!(
        solc.is_file(),
        "solc-js is not installed at {}: run `cargo xtask setup`",
        solc.display()
    );
    let dir = repo_root().join("crates").join("chain").join("contracts");
    let output = Command::new("node")
        .arg(dir.join("compile.js"))
        .arg(&solc)
        .arg(dir.join("HealthLedger.sol"))
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run node (Node.js is required, see `cargo xtask setup`): {e}")
        });
    assert!(
        output.status.success(),
        "compiling HealthLedger.sol failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let committed = std::fs::read(dir.join("HealthLedger.json")).unwrap();
    assert!(
        committed == output.stdout,
        "crates/chain/contracts/HealthLedger.json is stale: run `cargo xtask contracts` and commit the result"
    );
}
