//! `GET /metrics`, in the Prometheus text format (through the official
//! `prometheus-client` crate): requests and latencies per route, and the
//! sync and vault figures an operator alerts on.

use std::sync::atomic::AtomicU64;

use prometheus_client::{
    encoding::{EncodeLabelSet, text::encode},
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::Registry,
};

/// A route and the status it answered.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct RouteLabels {
    pub(crate) method: String,
    pub(crate) route: String,
    pub(crate) status: u16,
}

/// A route.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct RouteOnly {
    pub(crate) method: String,
    pub(crate) route: String,
}

/// Which way vault bytes went.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct Direction {
    pub(crate) direction: &'static str,
}

/// The server's metrics.
#[derive(Debug)]
pub(crate) struct Metrics {
    registry: Registry,
    pub(crate) requests: Family<RouteLabels, Counter>,
    pub(crate) latency: Family<RouteOnly, Histogram>,
    pub(crate) sync_lag_blocks: Gauge,
    pub(crate) events_applied: Gauge<u64, AtomicU64>,
    pub(crate) quarantined: Gauge<u64, AtomicU64>,
    pub(crate) vault_bytes: Family<Direction, Counter>,
    pub(crate) access_log_appends: Counter,
    pub(crate) rate_limited: Counter,
}

impl Metrics {
    pub(crate) fn new() -> Self {
        let mut registry = Registry::with_prefix("healthledger");
        let requests = Family::<RouteLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests answered, by route and status",
            requests.clone(),
        );
        let latency = Family::<RouteOnly, Histogram>::new_with_constructor(|| {
            // 100 µs to ~6.5 s.
            Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
                0.0001, 2.0, 17,
            ))
        });
        registry.register(
            "http_request_duration_seconds",
            "Time to answer a request (to its first body byte), by route",
            latency.clone(),
        );
        let sync_lag_blocks = Gauge::default();
        registry.register(
            "sync_lag_blocks",
            "Blocks between the cache's checkpoint and the chain's head, as last read",
            sync_lag_blocks.clone(),
        );
        let events_applied = Gauge::<u64, AtomicU64>::default();
        registry.register(
            "sync_events_applied",
            "Ledger events the cache has applied (its cached rows per entity, summed)",
            events_applied.clone(),
        );
        let quarantined = Gauge::<u64, AtomicU64>::default();
        registry.register(
            "sync_quarantined_logs",
            "Logs that did not decode, as the cache stores them",
            quarantined.clone(),
        );
        let vault_bytes = Family::<Direction, Counter>::default();
        registry.register(
            "vault_bytes",
            "Plaintext bytes sealed into (in) and served from (out) the vault",
            vault_bytes.clone(),
        );
        let access_log_appends = Counter::default();
        registry.register(
            "access_log_appends",
            "Access-log entries appended by record reads (granted or denied)",
            access_log_appends.clone(),
        );
        let rate_limited = Counter::default();
        registry.register(
            "http_rate_limited",
            "Requests refused with 429",
            rate_limited.clone(),
        );
        Self {
            registry,
            requests,
            latency,
            sync_lag_blocks,
            events_applied,
            quarantined,
            vault_bytes,
            access_log_appends,
            rate_limited,
        }
    }

    pub(crate) fn vault(&self, direction: &'static str, bytes: u64) {
        self.vault_bytes
            .get_or_create(&Direction { direction })
            .inc_by(bytes);
    }

    /// The text exposition.
    pub(crate) fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}
