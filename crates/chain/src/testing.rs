//! Test support for code that talks to a node over JSON-RPC (feature
//! `testing`): [`FaultProxy`], a loopback HTTP proxy in front of a node that
//! counts the requests it receives and injects the faults of real providers
//! at seeded rates:
//!
//! - server errors (HTTP 502 and 503, as a load balancer answers when its
//!   backend is gone);
//! - rate limits (HTTP 429);
//! - `eth_getLogs` range refusals above a number of blocks, worded in turn
//!   as Alchemy, Infura, QuickNode, Ankr, Polygon and Cloudflare word them;
//! - connections closed without an answer, before forwarding or (for
//!   `eth_sendRawTransaction`) after it;
//! - answers of the test's own choosing ([`Intercept`]).
//!
//! The chain adapter's tests, its bulk-read bench and the sync engine's
//! tests and benches all use this one proxy. The proxy is hand-written
//! because no maintained crate offers a fault-injecting JSON-RPC proxy; it
//! reads one HTTP/1.1 request at a time per connection (headers, then a
//! `Content-Length` body), which is all a JSON-RPC client sends.
//!
//! [`bench_chain`] builds (once) and loads the large chains those benches
//! read.

use std::{
    io,
    sync::{
        Arc, Mutex, MutexGuard, PoisonError,
        atomic::{AtomicU64, Ordering},
    },
};

pub mod bench_chain;

use alloy::transports::http::reqwest;
use rand::{Rng as _, SeedableRng as _, rngs::StdRng};
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::{TcpListener, TcpStream},
};

/// Given a JSON-RPC request, the HTTP status and the JSON-RPC member
/// (`{"error": …}` or `{"result": …}`) to answer it with, or `None` to let
/// the proxy handle it as usual.
pub type Intercept = fn(&serde_json::Value) -> Option<(u16, serde_json::Value)>;

/// What the proxy injects. Rates are probabilities per request, drawn in
/// this order: a dropped connection, a server error, a 429.
#[derive(Debug, Clone, Copy)]
pub struct Faults {
    /// Seeds the fault draws; each connection draws from its own generator
    /// seeded from this and the connection's number, so a seed replays the
    /// same faults whatever the other connections did in between.
    pub seed: u64,
    /// `eth_getLogs` over more blocks than this is refused.
    pub max_log_span: u64,
    /// Probability of closing the connection without an answer.
    pub rate_drop: f64,
    /// Probability of answering HTTP 502 or 503.
    pub rate_error: f64,
    /// Probability of answering HTTP 429.
    pub rate_429: f64,
    /// Probability of forwarding an `eth_sendRawTransaction` and then
    /// closing the connection without the node's answer.
    pub rate_send_reply_lost: f64,
    /// Answers some requests itself instead of forwarding them.
    pub intercept: Option<Intercept>,
}

impl Faults {
    /// No faults at all: a counting proxy.
    pub const NONE: Faults = Faults {
        seed: 0,
        max_log_span: u64::MAX,
        rate_drop: 0.0,
        rate_error: 0.0,
        rate_429: 0.0,
        rate_send_reply_lost: 0.0,
        intercept: None,
    };
}

/// The proxy's counters, updated as it runs.
#[derive(Debug, Default)]
struct Counts {
    received: AtomicU64,
    forwarded: AtomicU64,
    range_refusals: AtomicU64,
    server_errors: AtomicU64,
    too_many: AtomicU64,
    dropped: AtomicU64,
    send_replies_lost: AtomicU64,
    intercepted: AtomicU64,
}

/// What the proxy saw and did since it started (or since
/// [`FaultProxy::reset_tally`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    /// HTTP requests received (each JSON-RPC request or batch).
    pub received: u64,
    /// Requests forwarded to the node.
    pub forwarded: u64,
    /// `eth_getLogs` requests refused for their range.
    pub range_refusals: u64,
    /// Requests answered with a server error (502 or 503).
    pub server_errors: u64,
    /// Requests answered with 429.
    pub too_many: u64,
    /// Connections closed without an answer.
    pub dropped: u64,
    /// `eth_sendRawTransaction`s forwarded whose answer was withheld.
    pub send_replies_lost: u64,
    /// Requests answered by the [`Intercept`].
    pub intercepted: u64,
}

impl Counts {
    fn all(&self) -> [&AtomicU64; 8] {
        [
            &self.received,
            &self.forwarded,
            &self.range_refusals,
            &self.server_errors,
            &self.too_many,
            &self.dropped,
            &self.send_replies_lost,
            &self.intercepted,
        ]
    }

    fn tally(&self) -> Tally {
        let [
            received,
            forwarded,
            range_refusals,
            server_errors,
            too_many,
            dropped,
            send_replies_lost,
            intercepted,
        ] = self.all().map(|c| c.load(Ordering::Relaxed));
        Tally {
            received,
            forwarded,
            range_refusals,
            server_errors,
            too_many,
            dropped,
            send_replies_lost,
            intercepted,
        }
    }
}

/// A running proxy; dropping it stops it.
#[derive(Debug)]
pub struct FaultProxy {
    url: String,
    counts: Arc<Counts>,
    faults: Arc<Mutex<Faults>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The lock's value, also after a panic elsewhere poisoned it (a `Faults`
/// is plain data, valid whatever happened).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl FaultProxy {
    /// Listens on a free loopback port and forwards to `upstream` (an
    /// `http://` JSON-RPC URL) with `faults`.
    pub async fn start(upstream: impl Into<String>, faults: Faults) -> io::Result<Self> {
        let upstream = upstream.into();
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let counts = Arc::new(Counts::default());
        let shared = Arc::new(Mutex::new(faults));
        let client = reqwest::Client::new();
        let (c, f) = (Arc::clone(&counts), Arc::clone(&shared));
        let task = tokio::spawn(async move {
            let turn = Arc::new(AtomicU64::new(0));
            for connection in 0u64.. {
                let Ok((socket, _)) = listener.accept().await else {
                    return;
                };
                // Small JSON-RPC answers would otherwise wait on Nagle's
                // algorithm and delayed ACKs (~40 ms each).
                let _ = socket.set_nodelay(true);
                let seed = lock(&f).seed;
                let rng =
                    StdRng::seed_from_u64(seed ^ connection.wrapping_mul(0x9e37_79b9_7f4a_7c15));
                let conn = Connection {
                    faults: Arc::clone(&f),
                    counts: Arc::clone(&c),
                    rng,
                    client: client.clone(),
                    upstream: upstream.clone(),
                    turn: Arc::clone(&turn),
                };
                tokio::spawn(async move {
                    // A failed connection is a fault to the client, which is
                    // what it must cope with; nothing to report here.
                    let _ = conn.serve(socket).await;
                });
            }
        });
        Ok(Self {
            url,
            counts,
            faults: shared,
            task,
        })
    }

    /// The proxy's URL, `http://127.0.0.1:<port>`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// What it has counted so far.
    pub fn tally(&self) -> Tally {
        self.counts.tally()
    }

    /// Sets every count back to zero (to count one phase of a test).
    pub fn reset_tally(&self) {
        for c in self.counts.all() {
            c.store(0, Ordering::Relaxed);
        }
    }

    /// Changes the faults in force; connections see the change at their
    /// next request.
    pub fn set_faults(&self, change: impl FnOnce(&mut Faults)) {
        change(&mut lock(&self.faults));
    }
}

/// The range refusals the proxy answers with, in turn: (HTTP status,
/// JSON-RPC code, message with `{max}`, `{span}`, `{from}` and
/// `{suggested_to}` filled in).
const REFUSALS: &[(u16, i64, &str)] = &[
    (
        200,
        -32602,
        "Log response size exceeded. You can make eth_getLogs requests with up to a 2K block range and no limit on the response size, or you can request any block range with a cap of 10K logs in the response. Based on your parameters, this block range should work: [{from}, {suggested_to}]",
    ),
    (
        200,
        -32005,
        "query returned more than 10000 results. Try with this block range [{from}, {suggested_to}].",
    ),
    (413, -32614, "eth_getLogs is limited to a {max} range"),
    (200, -32600, "block range is too wide"),
    (
        200,
        -32000,
        "eth_getLogs block range too large, range: {span}, max: {max}",
    ),
    (
        200,
        -32047,
        "Invalid eth_getLogs request. 'fromBlock'-'toBlock' range too large. Max range: {max}",
    ),
];

/// One client connection and what it needs to serve it.
struct Connection {
    faults: Arc<Mutex<Faults>>,
    counts: Arc<Counts>,
    rng: StdRng,
    client: reqwest::Client,
    upstream: String,
    /// Whose turn it is among [`REFUSALS`], shared by all connections.
    turn: Arc<AtomicU64>,
}

impl Connection {
    async fn serve(mut self, mut socket: TcpStream) -> io::Result<()> {
        let mut buf = Vec::new();
        let count = |c: &AtomicU64| c.fetch_add(1, Ordering::Relaxed);
        while let Some(body) = read_request(&mut socket, &mut buf).await? {
            count(&self.counts.received);
            let faults = *lock(&self.faults);
            let (roll_drop, roll_error, roll_429) = (
                self.rng.random::<f64>(),
                self.rng.random::<f64>(),
                self.rng.random::<f64>(),
            );
            if roll_drop < faults.rate_drop {
                count(&self.counts.dropped);
                return Ok(());
            }
            if roll_error < faults.rate_error {
                count(&self.counts.server_errors);
                let status = if roll_error < faults.rate_error / 2.0 {
                    502
                } else {
                    503
                };
                respond(&mut socket, status, b"upstream unavailable").await?;
                continue;
            }
            if roll_429 < faults.rate_429 {
                count(&self.counts.too_many);
                respond(&mut socket, 429, b"Too Many Requests").await?;
                continue;
            }
            let request: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
            if let Some((status, mut reply)) = faults.intercept.and_then(|f| f(&request)) {
                count(&self.counts.intercepted);
                reply["jsonrpc"] = "2.0".into();
                reply["id"] = request["id"].clone();
                respond(&mut socket, status, reply.to_string().as_bytes()).await?;
                continue;
            }
            if let Some((status, reply)) = self.refuse_range(&request, faults.max_log_span) {
                count(&self.counts.range_refusals);
                respond(&mut socket, status, reply.to_string().as_bytes()).await?;
                continue;
            }
            count(&self.counts.forwarded);
            let reply = self
                .client
                .post(&self.upstream)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .map_err(io::Error::other)?
                .bytes()
                .await
                .map_err(io::Error::other)?;
            if request["method"] == "eth_sendRawTransaction"
                && self.rng.random::<f64>() < faults.rate_send_reply_lost
            {
                count(&self.counts.send_replies_lost);
                return Ok(());
            }
            respond(&mut socket, 200, &reply).await?;
        }
        Ok(())
    }

    /// The refusal of an `eth_getLogs` over more than `max` blocks, if
    /// `request` is one.
    fn refuse_range(
        &self,
        request: &serde_json::Value,
        max: u64,
    ) -> Option<(u16, serde_json::Value)> {
        if request["method"] != "eth_getLogs" {
            return None;
        }
        let filter = &request["params"][0];
        let (from, to) = (hex_u64(&filter["fromBlock"])?, hex_u64(&filter["toBlock"])?);
        let span = to.saturating_sub(from) + 1;
        if span <= max {
            return None;
        }
        let i = self.turn.fetch_add(1, Ordering::Relaxed) as usize % REFUSALS.len();
        let (status, code, template) = REFUSALS[i];
        let message = template
            .replace("{max}", &max.to_string())
            .replace("{span}", &span.to_string())
            .replace("{from}", &format!("{from:#x}"))
            .replace("{suggested_to}", &format!("{:#x}", from + max - 1));
        Some((
            status,
            serde_json::json!({
                "jsonrpc": "2.0",
                "id": request["id"],
                "error": {"code": code, "message": message},
            }),
        ))
    }
}

/// Reads one HTTP/1.1 request (headers and a `Content-Length` body) and
/// returns its body; `None` when the client closed the connection.
async fn read_request(socket: &mut TcpStream, buf: &mut Vec<u8>) -> io::Result<Option<Vec<u8>>> {
    let mut chunk = vec![0u8; 65_536];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            let total = end + 4 + len;
            while buf.len() < total {
                let n = socket.read(&mut chunk).await?;
                if n == 0 {
                    return Ok(None);
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            let body = buf[end + 4..total].to_vec();
            buf.drain(..total);
            return Ok(Some(body));
        }
        let n = socket.read(&mut chunk).await?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

async fn respond(socket: &mut TcpStream, status: u16, body: &[u8]) -> io::Result<()> {
    let reason = match status {
        200 => "OK",
        413 => "Payload Too Large",
        429 => "Too Many Requests",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Status",
    };
    let head = format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    socket.write_all(head.as_bytes()).await?;
    socket.write_all(body).await
}

fn hex_u64(v: &serde_json::Value) -> Option<u64> {
    u64::from_str_radix(v.as_str()?.trim_start_matches("0x"), 16).ok()
}
