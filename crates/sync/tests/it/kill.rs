//! SIGKILL, for real: follower processes (the `follower` example) on one
//! cache, the leader killed with SIGKILL and the standby taking over; and a
//! backfill killed at random moments ten times and restarted. After each,
//! the cache equals the canonical chain, with no row missing or doubled.
//! On a SQLite file and on PostgreSQL.

use std::{
    path::PathBuf,
    process::Stdio,
    sync::Arc,
    time::{Duration, Instant},
};

use healthledger_cache::SqlCache;
use healthledger_core::{CachePort, LedgerPort};
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::{Child, Command},
    sync::mpsc,
};

use crate::{
    anvil::{Node, drop_schema, node, pg_url, postgres},
    fakes::BUSY,
    support::{Script, assert_cache_matches},
};

/// The `follower` example, built by `cargo test` beside this binary.
fn follower_exe() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>/deps");
    let path = dir.join("examples").join("follower");
    assert!(
        path.is_file(),
        "the follower example is not built at {}: `cargo test` builds it",
        path.display()
    );
    path
}

struct Target {
    url: String,
    schema: Option<String>,
}

fn spawn(
    node: &Node,
    target: &Target,
    args: &[&str],
    batch: u32,
) -> (Child, mpsc::UnboundedReceiver<String>) {
    let mut cmd = Command::new(follower_exe());
    cmd.args(args)
        .env("HEALTHLEDGER_RPC_URL", node.anvil.endpoint())
        .env("HEALTHLEDGER_CONTRACT", node.contract.to_string())
        .env("HEALTHLEDGER_SIGNER_KEY", node.key_hex())
        .env("DATABASE_URL", &target.url)
        .env("HL_BATCH_EVENTS", batch.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true);
    if let Some(s) = &target.schema {
        cmd.env("HEALTHLEDGER_SCHEMA", s);
    }
    let mut child = cmd.spawn().expect("spawn the follower");
    let (tx, rx) = mpsc::unbounded_channel();
    let out = child.stdout.take().expect("stdout");
    tokio::spawn(async move {
        let mut lines = BufReader::new(out).lines();
        while let Ok(Some(l)) = lines.next_line().await {
            let _ = tx.send(l);
        }
    });
    (child, rx)
}

async fn wait_line(rx: &mut mpsc::UnboundedReceiver<String>, want: &str) {
    let deadline = Duration::from_secs(30);
    let found = tokio::time::timeout(deadline, async {
        while let Some(l) = rx.recv().await {
            if l == want {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(found, Ok(true), "the follower printed {want:?}");
}

async fn wait_for_head(cache: &dyn CachePort, l: &dyn LedgerPort) {
    let since = Instant::now();
    loop {
        let head = l.head().await.expect("head");
        if cache.checkpoint().await.expect("checkpoint") == Some(head) {
            return;
        }
        assert!(
            since.elapsed() < Duration::from_secs(60),
            "the cache reached {head}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn kill_scenarios(target: Target) {
    let node = node().await;
    let l = &*node.ledger;
    let mut script = Script::new(850_000);
    for _ in 0..6 {
        for op in BUSY {
            script.run(l, *op).await;
        }
    }
    let mut builder = SqlCache::builder(target.url.clone());
    if let Some(s) = &target.schema {
        builder = builder.postgres_schema(s.clone());
    }
    let cache: Arc<dyn CachePort> = Arc::new(builder.connect().await.expect("cache"));

    // A backfill in one-event batches, killed ten times at random moments.
    let head = l.head().await.expect("head").number;
    let mut cut_short = 0;
    for round in 0..10u64 {
        let (mut child, _out) = spawn(&node, &target, &["once"], 1);
        let wait = 30 + (round * 7919) % 400;
        tokio::time::sleep(Duration::from_millis(wait)).await;
        child.kill().await.expect("SIGKILL");
        let at = cache
            .checkpoint()
            .await
            .expect("checkpoint")
            .map_or(0, |b| b.number);
        if at < head {
            cut_short += 1;
        }
    }
    assert!(
        cut_short > 0,
        "some kill landed in the middle of the backfill"
    );
    let (mut child, mut out) = spawn(&node, &target, &["once"], 1);
    let done = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(l) = out.recv().await {
            if l.starts_with("synced") {
                return;
            }
        }
    })
    .await;
    assert!(done.is_ok(), "the last backfill finished");
    child.wait().await.expect("exit");
    assert_cache_matches(&*cache, l).await;

    // Two followers: the leader is killed, the standby takes over.
    let (mut a, mut a_out) = spawn(&node, &target, &[], 10_000);
    wait_line(&mut a_out, "leader").await;
    let (mut b, mut b_out) = spawn(&node, &target, &[], 10_000);
    wait_line(&mut b_out, "standby").await;
    for op in BUSY {
        script.run(l, *op).await;
    }
    wait_for_head(&*cache, l).await;
    a.kill().await.expect("SIGKILL the leader");
    wait_line(&mut b_out, "leader").await;
    for op in BUSY {
        script.run(l, *op).await;
    }
    wait_for_head(&*cache, l).await;
    assert_cache_matches(&*cache, l).await;
    b.kill().await.expect("SIGKILL");
    let _ = a_out.recv().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_on_sqlite() {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("cache.db").display()
    );
    kill_scenarios(Target { url, schema: None }).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_on_postgres() {
    let (cache, schema) = postgres().await;
    drop(cache);
    kill_scenarios(Target {
        url: pg_url(),
        schema: Some(schema.clone()),
    })
    .await;
    drop_schema(&schema).await;
}
