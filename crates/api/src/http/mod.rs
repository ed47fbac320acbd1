//! The HTTP server: the seed's REST API over the facade (axum), with
//! sign-in by wallet (EIP-4361), the users' own EIP-712 consent for
//! grants, revocations and records, an OpenAPI document generated from the
//! handlers (utoipa) with a docs page, health, readiness and Prometheus
//! metrics. `healthledger serve` runs it; [`Server`] embeds it.
//!
//! Every route but health, readiness, metrics, the OpenAPI document, the
//! docs page, sign-in and registration needs a session
//! (`Authorization: Bearer …`, see [`auth`]) or the operator's token.
//! Errors are `{ "error": { "code", "message" } }` ([`error`]); every
//! response carries an `x-request-id`, which the request's log lines
//! name too. A client that takes longer than
//! [`HttpConfig::header_read_timeout`] to send a request's headers is
//! disconnected; on shutdown, requests in flight get
//! [`HttpConfig::shutdown_grace`] to finish.

pub mod auth;
pub mod error;
mod extract;
mod metrics;
mod openapi;
mod routes;

use std::{
    net::{IpAddr, SocketAddr},
    num::NonZeroU32,
    sync::Arc,
    time::{Duration, Instant},
};

use axum::{
    Router,
    extract::{ConnectInfo, MatchedPath, Request, State},
    http::{HeaderValue, StatusCode},
    middleware::Next,
    response::{IntoResponse, Response},
};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use tokio::net::TcpListener;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};

pub use error::{ApiError, ErrorBody};
pub use openapi::openapi;

use crate::{App, Result, Secret};

/// The server's settings.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// Where to listen.
    pub listen: SocketAddr,
    /// The domain sign-in messages must name (EIP-4361 `domain`), e.g.
    /// `records.example.org`.
    pub domain: String,
    /// The URI sign-in messages must name (EIP-4361 `URI`), e.g.
    /// `https://records.example.org`.
    pub uri: String,
    /// The operator's token (`X-Operator-Token`); `None` turns the
    /// operator's routes off.
    pub operator_token: Option<Secret>,
    /// How long a session lasts.
    pub session_ttl: Duration,
    /// How long a sign-in nonce stays usable.
    pub nonce_ttl: Duration,
    /// How long a sealed upload waits for its creator's signature before
    /// it is shredded.
    pub upload_ttl: Duration,
    /// Requests per second one client address may make (0: no limit).
    pub rate_per_sec: u32,
    /// Requests one client address may make in a burst.
    pub rate_burst: u32,
    /// `/ready` answers 503 while the cache is more than this many blocks
    /// behind the chain.
    pub ready_max_lag_blocks: u64,
    /// The largest JSON body accepted.
    pub max_json_bytes: usize,
    /// Whether a patient may register themselves with a signed sign-in
    /// message (the app's key pays the gas); `false` leaves patient
    /// registration to the operator.
    pub self_registration: bool,
    /// How long a client may take to send a request's headers, from the
    /// connection's start or the end of its previous response; a client
    /// slower than that (a slow-loris attack holding connections open) is
    /// disconnected.
    pub header_read_timeout: Duration,
    /// How long requests in flight may take to finish once shutdown
    /// begins; connections still open after it are closed.
    pub shutdown_grace: Duration,
}

impl HttpConfig {
    /// Listens on `listen`; sign-in messages name `http://<listen>`.
    pub fn new(listen: SocketAddr) -> Self {
        Self {
            listen,
            domain: listen.to_string(),
            uri: format!("http://{listen}"),
            operator_token: None,
            session_ttl: Duration::from_secs(12 * 3600),
            nonce_ttl: Duration::from_secs(300),
            upload_ttl: Duration::from_secs(900),
            rate_per_sec: 50,
            rate_burst: 200,
            ready_max_lag_blocks: 16,
            max_json_bytes: 1024 * 1024,
            self_registration: true,
            header_read_timeout: Duration::from_secs(10),
            shutdown_grace: Duration::from_secs(30),
        }
    }
}

/// What every handler shares.
#[derive(Clone)]
pub struct SharedState(Arc<Inner>);

/// The shared parts.
pub struct Inner {
    pub(crate) app: Arc<App>,
    pub(crate) config: HttpConfig,
    pub(crate) nonces: auth::Nonces,
    pub(crate) sessions: auth::SessionMemo,
    pub(crate) uploads: routes::records::Uploads,
    pub(crate) metrics: metrics::Metrics,
    limiter: Option<DefaultKeyedRateLimiter<IpAddr>>,
}

impl std::ops::Deref for SharedState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl std::fmt::Debug for SharedState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedState")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl SharedState {
    /// The state of a server over `app`.
    pub fn new(app: Arc<App>, config: HttpConfig) -> Self {
        let limiter = NonZeroU32::new(config.rate_per_sec).map(|rate| {
            let burst = NonZeroU32::new(config.rate_burst).unwrap_or(rate);
            RateLimiter::keyed(Quota::per_second(rate).allow_burst(burst))
        });
        Self(Arc::new(Inner {
            app,
            config,
            nonces: auth::Nonces::default(),
            sessions: auth::SessionMemo::default(),
            uploads: routes::records::Uploads::default(),
            metrics: metrics::Metrics::new(),
            limiter,
        }))
    }
}

/// The router: every route, with request ids, metrics, rate limiting and
/// a panic guard. Serve it with `into_make_service_with_connect_info`
/// (the rate limit keys on the client's address).
pub fn router(state: SharedState) -> Router {
    let (router, _) = routes::api().split_for_parts();
    router
        .merge(openapi::docs())
        .fallback(unmatched)
        .method_not_allowed_fallback(wrong_method)
        .layer(axum::middleware::from_fn_with_state(state.clone(), observe))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(panicked))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(
            tower_http::trace::TraceLayer::new_for_http().make_span_with(
                |req: &Request| {
                    let id = req
                        .headers()
                        .get("x-request-id")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("-");
                    tracing::info_span!("http", method = %req.method(), path = %req.uri().path(), request_id = %id)
                },
            ),
        )
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        .with_state(state)
}

/// Counts, times and rate-limits every request.
async fn observe(State(state): State<SharedState>, req: Request, next: Next) -> Response {
    let connect = req.extensions().get::<ConnectInfo<SocketAddr>>().copied();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = req.method().as_str().to_owned();
    let exempt = matches!(route.as_str(), "/health" | "/ready" | "/metrics");
    if let (Some(limiter), Some(ConnectInfo(addr)), false) = (&state.limiter, connect, exempt)
        && let Err(not_until) = limiter.check_key(&addr.ip())
    {
        state.metrics.rate_limited.inc();
        let wait = not_until.wait_time_from(governor::clock::Clock::now(
            &governor::clock::DefaultClock::default(),
        ));
        let mut r = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!(
                "more than {} requests per second from {}; retry later",
                state.config.rate_per_sec,
                addr.ip()
            ),
        )
        .into_response();
        if let Ok(v) = HeaderValue::from_str(&wait.as_secs().max(1).to_string()) {
            r.headers_mut().insert(axum::http::header::RETRY_AFTER, v);
        }
        return r;
    }
    let start = Instant::now();
    let response = next.run(req).await;
    let labels = metrics::RouteLabels {
        method: method.clone(),
        route: route.clone(),
        status: response.status().as_u16(),
    };
    state.metrics.requests.get_or_create(&labels).inc();
    state
        .metrics
        .latency
        .get_or_create(&metrics::RouteOnly { method, route })
        .observe(start.elapsed().as_secs_f64());
    response
}

async fn unmatched(uri: axum::http::Uri) -> ApiError {
    ApiError::not_found(format!("no route {} (see /api/openapi.json)", uri.path()))
}

async fn wrong_method(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!(
            "{} {} is not a route (see /api/openapi.json)",
            method,
            uri.path()
        ),
    )
}

fn panicked(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    tracing::error!("a handler panicked");
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        "internal error (logged with this response's x-request-id)",
    )
    .into_response()
}

/// A server bound to its address.
#[derive(Debug)]
pub struct Server {
    listener: TcpListener,
    state: SharedState,
}

impl Server {
    /// Binds `config.listen` for a server over `app`.
    pub async fn bind(app: Arc<App>, config: HttpConfig) -> Result<Self> {
        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|e| crate::Error::Config {
                    setting: "listen".into(),
                    rule: format!("cannot listen on {}: {e}", config.listen),
                })?;
        let mut config = config;
        // Port 0 binds a free port: sign-in messages name the real one.
        if config.listen.port() == 0
            && let Ok(addr) = listener.local_addr()
        {
            if config.domain == config.listen.to_string() {
                config.domain = addr.to_string();
            }
            if config.uri == format!("http://{}", config.listen) {
                config.uri = format!("http://{addr}");
            }
            config.listen = addr;
        }
        Ok(Self {
            listener,
            state: SharedState::new(app, config),
        })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.state.config.listen
    }

    /// The settings in force (with the bound port).
    pub fn config(&self) -> &HttpConfig {
        &self.state.config
    }

    /// Serves until `shutdown` resolves, then stops accepting, lets
    /// requests in flight finish, and shreds uploads still waiting for a
    /// signature.
    pub async fn serve(self, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<()> {
        let state = self.state.clone();
        let sweeper = tokio::spawn(routes::records::sweep_uploads(state.clone()));
        let app = router(self.state);
        accept_until(self.listener, app, &state.config, shutdown).await;
        sweeper.abort();
        state.uploads.shred_all(&state).await;
        Ok(())
    }
}

/// Accepts connections on `listener` and serves `app` on each, until
/// `shutdown` resolves; then stops accepting and waits up to the grace
/// period for connections to finish their requests, and closes the rest.
///
/// Written here rather than with `axum::serve`, which sets no timer and so
/// lets a client hold a connection open forever by sending its headers a
/// byte at a time: hyper's HTTP/1 connection enforces
/// [`HttpConfig::header_read_timeout`] once given a timer.
async fn accept_until(
    listener: TcpListener,
    app: Router,
    config: &HttpConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    use hyper_util::{
        rt::{TokioIo, TokioTimer},
        server::graceful::GracefulShutdown,
        service::TowerToHyperService,
    };
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(config.header_read_timeout);
    let graceful = GracefulShutdown::new();
    let mut connections = tokio::task::JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        while connections.try_join_next().is_some() {}
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: the listener
                    // stays usable once the condition clears.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "TCP_NODELAY could not be set");
        }
        let service = TowerToHyperService::new(
            app.clone()
                .layer(axum::Extension(axum::extract::ConnectInfo(peer))),
        );
        let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        connections.spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(%peer, error = %e, "a connection ended with an error");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(config.shutdown_grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            grace = ?config.shutdown_grace,
            open = connections.len(),
            "closing connections still open after the shutdown grace period"
        );
    }
    connections.shutdown().await;
}
