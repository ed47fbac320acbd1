//! Benchmark of the HTTP server: requests/s and p50/p99 latency of
//! `GET /api/profile/patient/{hh}` served from the cache under concurrent
//! load on loopback (64 connections, a signed-in session), on SQLite and
//! on PostgreSQL, while the follower ingests registrations the bench keeps
//! sending; beside it, in the same run, the same profile read straight
//! from the chain (the ledger port at 64 concurrent reads) and the
//! ceiling of this machine's loopback HTTP (`GET /health`, which touches
//! no backend, with the same client). Client and server share the two
//! cores. Prints the figures; asserts nothing about speed.
//!
//! PostgreSQL comes from `TEST_DATABASE_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`), in a schema of its own;
//! `HEALTHLEDGER_SKIP_POSTGRES=1` leaves it out. `HL_HTTP_SECS` sets the
//! seconds each load runs (default 5).

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::{
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use healthledger_api::{
    Actor, App, ChainConfig, Config, ConsentSigner as _, LocalWallet,
    http::{HttpConfig, Server},
};
use healthledger_core::{HhNumber, Profile, ReadAt, Role, testing::fixtures};

const CONNECTIONS: usize = 64;
const PATIENT: u32 = 555_555;

fn tools() -> PathBuf {
    std::env::var_os("HEALTHLEDGER_TOOLS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.tools"))
}

fn secs() -> Duration {
    Duration::from_secs(
        std::env::var("HL_HTTP_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(5),
    )
}

/// Latencies of one load, and what they add up to.
struct Load {
    requests: usize,
    errors: usize,
    elapsed: Duration,
    latencies_us: Vec<u64>,
}

impl Load {
    fn rps(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64()
    }

    fn pct(&self, p: f64) -> f64 {
        if self.latencies_us.is_empty() {
            return f64::NAN;
        }
        let i = ((self.latencies_us.len() as f64 - 1.0) * p).round() as usize;
        self.latencies_us[i] as f64 / 1000.0
    }

    fn line(&self, what: &str) -> String {
        format!(
            "{what:<44} {:>9.0} req/s   p50 {:>7.3} ms   p99 {:>7.3} ms   ({} requests, {} errors)",
            self.rps(),
            self.pct(0.50),
            self.pct(0.99),
            self.requests,
            self.errors
        )
    }
}

/// Runs `CONNECTIONS` workers, each calling `one` in a loop for `for_`.
async fn load<F, Fut>(for_: Duration, one: F) -> Load
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = bool> + Send,
{
    let one = Arc::new(one);
    let start = Instant::now();
    let until = start + for_;
    let mut tasks = Vec::new();
    for w in 0..CONNECTIONS {
        let one = one.clone();
        tasks.push(tokio::spawn(async move {
            let (mut lat, mut errors) = (Vec::new(), 0usize);
            while Instant::now() < until {
                let t = Instant::now();
                if one(w).await {
                    lat.push(t.elapsed().as_micros() as u64);
                } else {
                    errors += 1;
                }
            }
            (lat, errors)
        }));
    }
    let mut all = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (l, e) = t.await.unwrap();
        all.extend(l);
        errors += e;
    }
    let elapsed = start.elapsed();
    all.sort_unstable();
    Load {
        requests: all.len(),
        errors,
        elapsed,
        latencies_us: all,
    }
}

fn clients() -> Arc<Vec<reqwest::Client>> {
    Arc::new(
        (0..CONNECTIONS)
            .map(|_| {
                reqwest::Client::builder()
                    .pool_max_idle_per_host(1)
                    .tcp_nodelay(true)
                    .build()
                    .unwrap()
            })
            .collect(),
    )
}

async fn sign_in(client: &reqwest::Client, base: &str, wallet: &LocalWallet) -> String {
    let n: serde_json::Value = client
        .post(format!("{base}/api/auth/nonce"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let now = chrono::Utc::now();
    let message = format!(
        "{} wants you to sign in with your Ethereum account:\n{}\n\nSign in to HealthLedger.\n\nURI: {}\nVersion: 1\nChain ID: {}\nNonce: {}\nIssued At: {}",
        n["domain"].as_str().unwrap(),
        wallet.wallet(),
        n["uri"].as_str().unwrap(),
        n["chain_id"],
        n["nonce"].as_str().unwrap(),
        now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    );
    let sig = wallet.sign_message(message.as_bytes()).unwrap();
    let r: serde_json::Value = client
        .post(format!("{base}/api/auth/login"))
        .json(&serde_json::json!({
            "message": message,
            "signature": format!("0x{}", hex::encode(sig.as_bytes())),
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    r["token"]
        .as_str()
        .unwrap_or_else(|| panic!("sign-in refused: {r}"))
        .to_owned()
}

async fn run(label: &str, postgres_url: Option<&str>) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::local(dir.path());
    config.chain = ChainConfig::Local {
        anvil: Some(tools().join("bin/anvil")),
    };
    config.poll_interval = Duration::from_millis(100);
    if let Some(url) = postgres_url {
        config.database_url = url.to_owned();
        config.database_schema = Some(format!("bench_http_{}", std::process::id()));
    }
    let app = Arc::new(App::build(config).await.unwrap());
    let wallet = LocalWallet::random();
    let Profile::Patient(p) = fixtures::patient(PATIENT, wallet.wallet(), "Asha Rao") else {
        unreachable!()
    };
    app.register_patient(&Actor::Operator, p).await.unwrap();

    let mut http = HttpConfig::new("127.0.0.1:0".parse().unwrap());
    http.rate_per_sec = 0;
    let server = Server::bind(app.clone(), http).await.unwrap();
    let base = format!("http://{}", server.local_addr());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(server.serve(async move {
        let _ = rx.await;
    }));
    let follow = app.spawn_follow();
    let cs = clients();
    let token = Arc::new(sign_in(&cs[0], &base, &wallet).await);

    // The ceiling: loopback HTTP with this client, no backend.
    let (c, b) = (cs.clone(), base.clone());
    // URLs are parsed once: the client's own cost shares the two cores.
    let health = reqwest::Url::parse(&format!("{b}/health")).unwrap();
    let ceiling = load(secs(), move |w| {
        let (c, url) = (c.clone(), health.clone());
        async move { matches!(c[w].get(url).send().await, Ok(r) if r.status().is_success()) }
    })
    .await;

    // The chain read: the ledger port, 64 concurrent reads.
    let ledger = app.ledger().clone();
    let hh = HhNumber::new(PATIENT).unwrap();
    let chain = load(secs(), move |_| {
        let ledger = ledger.clone();
        async move {
            matches!(
                ledger.profile(hh, Role::Patient, ReadAt::Latest).await,
                Ok(Some(_))
            )
        }
    })
    .await;

    // A writer keeps registering patients; the follower ingests them.
    let writing = Arc::new(AtomicBool::new(true));
    let writer = {
        let (app, writing) = (app.clone(), writing.clone());
        tokio::spawn(async move {
            let mut n = 0u32;
            while writing.load(Ordering::Relaxed) {
                let w = LocalWallet::random();
                let Profile::Patient(p) = fixtures::patient(600_000 + n, w.wallet(), "Load Writer")
                else {
                    unreachable!()
                };
                if app.register_patient(&Actor::Operator, p).await.is_ok() {
                    n += 1;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            n
        })
    };
    let (c, b) = (cs.clone(), base.clone());
    let t = Arc::new(reqwest::header::HeaderValue::from_str(&format!("Bearer {token}")).unwrap());
    let profile = reqwest::Url::parse(&format!("{b}/api/profile/patient/{PATIENT}")).unwrap();
    let served = load(secs(), move |w| {
        let (c, t, url) = (c.clone(), t.clone(), profile.clone());
        async move {
            match c[w]
                .get(url)
                .header(reqwest::header::AUTHORIZATION, (*t).clone())
                .send()
                .await
            {
                Ok(r) if r.status().is_success() => r.bytes().await.is_ok(),
                _ => false,
            }
        }
    })
    .await;
    writing.store(false, Ordering::Relaxed);
    let written = writer.await.unwrap();
    let status = app.sync().status().await.unwrap();

    println!(
        "== {label}: {CONNECTIONS} connections, {} s per load",
        secs().as_secs()
    );
    println!("{}", ceiling.line("ceiling: GET /health (no backend)"));
    println!("{}", chain.line("chain: LedgerPort::profile (anvil)"));
    println!("{}", served.line("GET /api/profile/patient/{hh} (cache)"));
    println!(
        "   cache vs chain: {:.1}x the requests/s, p50 {:.1}x lower; {:.0}% of the loopback ceiling",
        served.rps() / chain.rps(),
        chain.pct(0.5) / served.pct(0.5),
        100.0 * served.rps() / ceiling.rps()
    );
    println!(
        "   meanwhile the follower ingested: {written} registrations written, cache at block {} (head {}), lag {} blocks",
        status.checkpoint.map_or(0, |c| c.number),
        status.head.number,
        status.lag_blocks
    );

    let _ = tx.send(());
    serving.await.unwrap().unwrap();
    follow.stop().await.unwrap();
    app.shutdown().await;
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        run("SQLite", None).await;
        if std::env::var("HEALTHLEDGER_SKIP_POSTGRES").as_deref() == Ok("1") {
            println!("PostgreSQL: left out (HEALTHLEDGER_SKIP_POSTGRES=1)");
            return;
        }
        let url = std::env::var("TEST_DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
        run("PostgreSQL", Some(&url)).await;
    });
}
