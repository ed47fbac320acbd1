//! The `healthledger` binary, run as a user runs it: exit codes and
//! `--json` output for each command, on a fresh local chain.

use std::process::{Command, Output};

use crate::support;

fn healthledger(dir: &std::path::Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_healthledger"));
    c.args(args)
        .current_dir(dir)
        .env("HEALTHLEDGER_TOOLS", support::tools())
        .env_remove("DATABASE_URL")
        .env_remove("HEALTHLEDGER_RPC_URL")
        .env_remove("HEALTHLEDGER_CONFIG");
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().unwrap()
}

fn json(out: &Output) -> serde_json::Value {
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

#[test]
fn cid_prints_what_kubo_prints() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("hello"), b"hello world\n").unwrap();
    std::fs::write(dir.path().join("hello2"), b"hello\n").unwrap();
    let out = healthledger(dir.path(), &["cid", "hello"], &[]);
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o"
    );
    let out = healthledger(
        dir.path(),
        &["--json", "cid", "hello2", "--cid-version", "1"],
        &[],
    );
    assert_eq!(
        json(&out)["cid"],
        "bafkreicysg23kiwv34eg2d7qweipxwosdo2py4ldv42nbauguluen5v6am"
    );
    let out = healthledger(dir.path(), &["cid", "missing-file"], &[]);
    assert_eq!(out.status.code(), Some(2));
    let out = healthledger(
        dir.path(),
        &["cid", "hello", "--cid-version", "0", "--raw-leaves"],
        &[],
    );
    assert_eq!(out.status.code(), Some(2), "raw leaves need CIDv1");
}

#[test]
fn malformed_settings_exit_2_naming_the_setting_without_the_secret() {
    let dir = tempfile::tempdir().unwrap();
    let out = healthledger(
        dir.path(),
        &["sync", "status"],
        &[("HEALTHLEDGER_VAULT_KEK", "sekrit-not-hex")],
    );
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("HEALTHLEDGER_VAULT_KEK"), "{err}");
    assert!(!err.contains("sekrit"), "{err}");
    let out = healthledger(
        dir.path(),
        &["--help"],
        &[("HEALTHLEDGER_SIGNER_KEY", "0xsekrit")],
    );
    assert!(out.status.success());
    assert!(!String::from_utf8_lossy(&out.stdout).contains("sekrit"));
}

#[test]
fn the_demo_then_every_command_on_its_data() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let d = data.to_str().unwrap();
    let out = healthledger(dir.path(), &["--json", "--data-dir", d, "demo"], &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let demo = json(&out);
    assert_eq!(demo["outcome"]["resync"], "Created");

    let run = |args: &[&str]| {
        let mut all = vec!["--json", "--data-dir", d];
        all.extend_from_slice(args);
        healthledger(dir.path(), &all, &[])
    };
    let out = run(&["sync", "patient", "555555"]);
    assert!(out.status.success());
    assert_eq!(json(&out)["outcome"], "Unchanged");
    let out = run(&["sync", "doctor", "555555"]);
    assert_eq!(out.status.code(), Some(3), "a patient is not a doctor");
    let out = run(&["sync", "patient", "123456"]);
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(json(&out)["outcome"], "NotOnChain");
    let out = run(&["sync", "patient", "12"]);
    assert_eq!(out.status.code(), Some(2));
    let id = demo["outcome"]["record"].as_str().unwrap().to_owned();
    let out = run(&["sync", "record", &id]);
    assert!(out.status.success());
    let out = run(&["sync", "full"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(json(&out)["counts"]["patients"], 1);
    let out = run(&["sync", "auto"]);
    assert!(out.status.success());
    let out = run(&["sync", "status"]);
    assert_eq!(json(&out)["lag_blocks"], 0);
    let out = run(&["db", "view"]);
    assert_eq!(json(&out)["counts"]["records"], 1);
    let out = run(&["chain", "get", "doctor", "112233"]);
    assert_eq!(json(&out)["name"], "Dr. Vikram Sen");
    let out = run(&["chain", "get", "doctor", "223344"]);
    assert_eq!(out.status.code(), Some(3));
    // The demo clears only its own directory.
    let mine = dir.path().join("mine");
    std::fs::create_dir_all(&mine).unwrap();
    std::fs::write(mine.join("precious.txt"), b"keep me").unwrap();
    let out = healthledger(dir.path(), &["--data-dir", "mine", "demo"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(mine.join("precious.txt").exists());
    let out = run(&["verify", "--vault", "--audit"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(json(&out)["drift"]["missing"].as_array().unwrap().len(), 0);
    // Drift made behind the app's back: exit 5, then --repair fixes it.
    let db = data.join("healthledger.db");
    let conn = format!("sqlite://{}?mode=rw", db.display());
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let c = healthledger_cache::SqlCache::connect(&conn).await.unwrap();
        use healthledger_core::CachePort as _;
        c.remove_profile(healthledger_core::HhNumber::new(112_233).unwrap())
            .await
            .unwrap();
        c.close().await.unwrap();
    });
    let out = run(&["verify"]);
    assert_eq!(
        out.status.code(),
        Some(5),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let out = run(&["verify", "--repair"]);
    assert!(out.status.success());
    assert_eq!(json(&out)["repair"]["upserted"], 1);
    let out = run(&["verify"]);
    assert!(out.status.success());
    let cid = json(&run(&["sync", "record", &id]))["outcome"].clone();
    assert_eq!(cid, "Unchanged");
    let record = json(&run(&["db", "view"]))["recent_records"][0]["cid"]
        .as_str()
        .unwrap()
        .to_owned();
    let car = dir.path().join("report.car");
    let out = run(&[
        "vault",
        "export-car",
        &record,
        "--out",
        car.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(json(&out)["root"], record.as_str());
    let bytes = std::fs::read(&car).unwrap();
    assert_eq!(bytes.len() as u64, json(&out)["bytes"].as_u64().unwrap());
    // The CAR carries ciphertext only: the report's text is not in it.
    assert!(!bytes.windows(11).any(|w| w == b"haemoglobin"));
    let out = run(&["vault", "export-car", "not-a-cid"]);
    assert_eq!(out.status.code(), Some(2));
    let out = run(&["vault", "check"]);
    assert!(out.status.success());
    assert!(json(&out)["key_id"].is_string());
}

#[test]
fn sync_follow_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_healthledger"))
        .args(["--data-dir", "data", "sync", "follow"])
        .current_dir(dir.path())
        .env("HEALTHLEDGER_TOOLS", support::tools())
        .env_remove("DATABASE_URL")
        .env_remove("HEALTHLEDGER_RPC_URL")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until it follows: its header is on stdout (the signal handler is
    // installed right after it).
    use std::io::BufRead as _;
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut seen = String::new();
    while !seen.contains("Following the chain") {
        let mut line = String::new();
        assert!(
            stdout.read_line(&mut line).unwrap() > 0,
            "follow exited: {seen}"
        );
        seen.push_str(&line);
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let status = child.wait().unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest).unwrap();
    assert!(status.success(), "{status:?}: {seen}{rest}");
    assert!(rest.contains("Stopped at checkpoint"), "{rest}");
}

/// `healthledger serve` answers on its port and stops cleanly on SIGTERM
/// (exit 0, the local chain saved).
#[tokio::test(flavor = "multi_thread")]
async fn serve_answers_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let listen = format!("127.0.0.1:{port}");
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_healthledger"))
        .args(["--json", "serve", "--listen", &listen])
        .current_dir(dir.path())
        .env("HEALTHLEDGER_TOOLS", support::tools())
        .env("HEALTHLEDGER_OPERATOR_TOKEN", "t0ken-for-the-test")
        .env_remove("DATABASE_URL")
        .env_remove("HEALTHLEDGER_RPC_URL")
        .env_remove("HEALTHLEDGER_CONFIG")
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let client = reqwest::Client::new();
    let mut up = None;
    for _ in 0..300 {
        if let Ok(r) = client.get(format!("http://{listen}/health")).send().await {
            up = Some(r.status());
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(up, Some(reqwest::StatusCode::OK), "serve never answered");
    let r = client
        .get(format!("http://{listen}/api/sync/status"))
        .header("x-operator-token", "t0ken-for-the-test")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), reqwest::StatusCode::OK);
    let pid = child.id().unwrap().to_string();
    let killed = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(killed.success());
    let status = tokio::time::timeout(std::time::Duration::from_secs(60), child.wait())
        .await
        .expect("serve did not stop within 60 s of SIGTERM")
        .unwrap();
    assert_eq!(status.code(), Some(0));
    let mut out = String::new();
    tokio::io::AsyncReadExt::read_to_string(child.stdout.as_mut().unwrap(), &mut out)
        .await
        .unwrap();
    assert!(out.contains(&listen), "{out}");
}

/// `chain deploy` against a remote node (an anvil of the test's own, not
/// the embedded default): the printed contract is then usable through
/// `HEALTHLEDGER_CONTRACT`, and the signer key never shows in the output.
#[test]
fn chain_deploy_on_a_remote_node_gives_a_usable_contract() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    struct Killed(std::process::Child);
    impl Drop for Killed {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _anvil = Killed(
        Command::new(support::tools().join("bin/anvil"))
            .args(["--port", &port.to_string(), "--silent"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let rpc = format!("http://127.0.0.1:{port}");
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    // anvil's first development key.
    let key = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";
    let kek = "11".repeat(32);
    let env = [
        ("HEALTHLEDGER_RPC_URL", rpc.as_str()),
        ("HEALTHLEDGER_SIGNER_KEY", key),
        ("HEALTHLEDGER_VAULT_KEK", kek.as_str()),
    ];
    let out = healthledger(dir.path(), &["--json", "chain", "deploy"], &env);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(!text.contains(&key[2..]), "the signer key was printed");
    let contract = json(&out)["contract"].as_str().unwrap().to_owned();
    assert!(
        contract.starts_with("0x") && contract.len() == 42,
        "{contract}"
    );
    let env = [
        ("HEALTHLEDGER_RPC_URL", rpc.as_str()),
        ("HEALTHLEDGER_SIGNER_KEY", key),
        ("HEALTHLEDGER_VAULT_KEK", kek.as_str()),
        ("HEALTHLEDGER_CONTRACT", contract.as_str()),
        (
            "DATABASE_URL",
            &format!(
                "sqlite://{}?mode=rwc",
                dir.path().join("remote.db").display()
            ),
        ),
    ];
    let out = healthledger(
        dir.path(),
        &["--json", "chain", "get", "patient", "555555"],
        &env,
    );
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
