//! Talking to a node that is not always willing: which JSON-RPC failures are
//! worth retrying (rate limits, timeouts, dropped connections), bounded
//! retries with exponential backoff and full jitter, and recognizing the
//! "block range too large" / "too many results" refusals of `eth_getLogs`
//! that common providers return, so the range can be split.

use std::{future::IntoFuture, time::Duration};

use alloy::transports::{RpcError, TransportError};
use rand::Rng as _;

use crate::{
    Error,
    config::{Redactor, RetryPolicy},
};

/// Why a retried call finally failed.
#[derive(Debug)]
pub(crate) enum RetryError {
    /// A failure retrying cannot fix (a revert, bad params, a range refusal).
    Fatal(TransportError),
    /// Transient failures until the budget ran out.
    Exhausted {
        /// Attempts made.
        attempts: u32,
        /// The last failure, rendered without the URL's secrets.
        last: String,
    },
}

impl RetryError {
    /// The crate error for a call of `method` that failed this way, its text
    /// scrubbed by `redact`.
    pub(crate) fn into_error(self, method: &'static str, redact: &Redactor) -> Error {
        match self {
            RetryError::Fatal(source) => Error::rpc(method, &source, redact),
            RetryError::Exhausted { attempts, last } => Error::RetriesExhausted {
                method,
                attempts,
                last,
            },
        }
    }
}

/// Runs `f` until it succeeds, fails for good, or `policy` is spent. Errors
/// are logged and kept only as scrubbed by `redact`.
pub(crate) async fn retry<T, F, Fut>(
    policy: &RetryPolicy,
    redact: &Redactor,
    mut f: F,
) -> Result<T, RetryError>
where
    F: FnMut() -> Fut,
    Fut: IntoFuture<Output = Result<T, TransportError>>,
{
    let max = policy.max_attempts.max(1);
    let mut attempt = 0u32;
    loop {
        attempt += 1;
        match f().await {
            Ok(v) => return Ok(v),
            Err(e) if is_transient(&e) => {
                if attempt >= max {
                    return Err(RetryError::Exhausted {
                        attempts: attempt,
                        last: redact.display(&e),
                    });
                }
                let cap = policy.backoff(attempt);
                let wait =
                    retry_after(&e).map_or_else(|| jitter(cap), |ra| ra.min(policy.max_delay));
                tracing::debug!(
                    attempt,
                    ?wait,
                    error = %redact.display(&e),
                    "transient JSON-RPC failure, retrying"
                );
                tokio::time::sleep(wait).await;
            }
            Err(e) => return Err(RetryError::Fatal(e)),
        }
    }
}

/// Full jitter: a uniformly random wait between zero and `cap`.
fn jitter(cap: Duration) -> Duration {
    let ms = u64::try_from(cap.as_millis()).unwrap_or(u64::MAX);
    Duration::from_millis(rand::rng().random_range(0..=ms))
}

fn retry_after(e: &TransportError) -> Option<Duration> {
    match e {
        RpcError::Transport(kind) => kind.retry_after(),
        _ => None,
    }
}

/// The text a provider put in an error: JSON-RPC message and data, or the
/// HTTP body.
pub(crate) fn error_text(e: &TransportError) -> String {
    match e {
        RpcError::ErrorResp(p) => format!(
            "{} {} {}",
            p.code,
            p.message,
            p.data.as_ref().map(|d| d.get()).unwrap_or_default()
        ),
        RpcError::Transport(kind) => match kind.as_http_error() {
            Some(h) => format!("HTTP {} {}", h.status, h.body),
            None => kind.to_string(),
        },
        other => other.to_string(),
    }
}

/// Whether retrying the same request may succeed: HTTP 429 and 5xx, JSON-RPC
/// rate-limit errors, timeouts, refused or dropped connections, truncated
/// responses.
pub(crate) fn is_transient(e: &TransportError) -> bool {
    if range_limit(e).is_some() {
        return false;
    }
    match e {
        RpcError::Transport(kind) => {
            if let Some(h) = kind.as_http_error() {
                return h.status == 429 || h.status == 408 || (500..600).contains(&h.status);
            }
            // Connection refused/reset/closed and timeouts surface as custom
            // (reqwest) errors; a missing batch response or a gone backend
            // are transient by nature.
            !kind.is_non_retryable() && !kind.is_pubsub_unavailable()
        }
        RpcError::ErrorResp(p) => {
            let m = p.message.to_ascii_lowercase();
            p.code == 429
                || m.contains("rate limit")
                || m.contains("too many requests")
                || m.contains("exceeded its compute units")
                || m.contains("capacity exceeded")
                || m.contains("request timed out")
                || m.contains("header not found")
        }
        // A body cut short by a dropped connection fails to parse.
        RpcError::DeserError { .. } | RpcError::NullResp => true,
        _ => false,
    }
}

/// Whether `e` is a failure of the transport rather than the node's answer:
/// transient ones ([`is_transient`]) and connection failures that carry no
/// HTTP status. After such a failure of a send, the node may or may not have
/// the transaction.
pub(crate) fn is_transport_failure(e: &TransportError) -> bool {
    is_transient(e) || matches!(e, RpcError::Transport(kind) if kind.as_http_error().is_none())
}

/// A provider's refusal of an `eth_getLogs` range, with the span (in blocks)
/// it suggests when it names one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RangeLimit {
    /// Blocks per request the provider says it accepts, if it says.
    pub(crate) suggested_span: Option<u64>,
}

/// Recognizes the range/result-limit refusals of common providers (Alchemy,
/// Infura, QuickNode, Ankr, Polygon's public RPC, Cloudflare, and the
/// node software behind many others).
pub(crate) fn range_limit(e: &TransportError) -> Option<RangeLimit> {
    let text = match e {
        RpcError::ErrorResp(_) => error_text(e),
        // QuickNode answers with HTTP 413 and the JSON-RPC error in the body.
        RpcError::Transport(kind) if kind.as_http_error().is_some() => error_text(e),
        _ => return None,
    };
    range_limit_in(&text)
}

/// [`range_limit`] on the text of an error.
pub(crate) fn range_limit_in(text: &str) -> Option<RangeLimit> {
    let t = text.to_ascii_lowercase();
    // Alchemy: "... this block range should work: [0x1, 0x1f3]";
    // Infura: "... Try with this block range [0x30d8e5, 0x30d91c].".
    for marker in [
        "this block range should work: [",
        "try with this block range [",
    ] {
        if let Some(span) = after(&t, marker).and_then(hex_pair_span) {
            return Some(RangeLimit {
                suggested_span: Some(span),
            });
        }
    }
    // Result-count limits say nothing about blocks: halve.
    let result_limits = [
        "logs matched by query exceeds limit",
        "query returned more than",
        "query exceeds max results",
        "log response size exceeded",
        "response size should not greater than",
    ];
    if result_limits.iter().any(|g| t.contains(g)) {
        return Some(RangeLimit {
            suggested_span: None,
        });
    }
    // QuickNode: "eth_getLogs is limited to a 10,000 range"; Cloudflare:
    // "... range too large. Max range: 800"; Polygon (bor):
    // "eth_getLogs block range too large, range: 99991, max: 3500"; Infura:
    // "range 1000000 exceeds limit of 10000"; Erigon/reth/publicnode style:
    // "maximum block range: 3000", "query exceeds max block range 5000".
    for marker in [
        "limited to a ",
        "max range: ",
        ", max: ",
        "exceeds limit of ",
        "maximum block range: ",
        "max block range ",
        "exceed maximum block range: ",
        "maximum is set to ",
        "limited to ",
    ] {
        if let Some(n) = after(&t, marker).and_then(leading_number)
            && n > 0
        {
            return Some(RangeLimit {
                suggested_span: Some(n),
            });
        }
    }
    // Refusals that name no size: halve.
    let generic = [
        "block range is too wide",
        "block range too large",
        "block range is too large",
        "range too large",
        "range is too large",
        "too many blocks",
        "block range too high",
    ];
    generic.iter().any(|g| t.contains(g)).then_some(RangeLimit {
        suggested_span: None,
    })
}

fn after<'a>(text: &'a str, marker: &str) -> Option<&'a str> {
    text.find(marker).map(|i| &text[i + marker.len()..])
}

/// A decimal number at the start of `s`, allowing thousands separators.
fn leading_number(s: &str) -> Option<u64> {
    let digits: String = s
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == ',')
        .filter(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// The span of `0xA, 0xB]` (B - A + 1 blocks).
fn hex_pair_span(s: &str) -> Option<u64> {
    let (a, rest) = s.split_once(',')?;
    let b = rest.trim_start().split(']').next()?;
    let parse = |x: &str| u64::from_str_radix(x.trim().trim_start_matches("0x"), 16).ok();
    let (a, b) = (parse(a)?, parse(b)?);
    b.checked_sub(a).map(|d| d + 1)
}

/// Wraps a message as a transport error (for fixtures and the proxy tests).
#[cfg(test)]
pub(crate) fn error_response(code: i64, message: &str) -> TransportError {
    let payload: alloy::rpc::json_rpc::ErrorPayload = serde_json::from_value(serde_json::json!({
        "code": code,
        "message": message,
    }))
    .unwrap_or_else(|e| panic!("fixture payload: {e}"));
    RpcError::ErrorResp(payload)
}

#[cfg(test)]
mod tests {
    use alloy::transports::TransportErrorKind;

    use super::*;

    /// Real refusals of `eth_getLogs`, as the providers word them, with the
    /// span (in blocks) each must lead to (`None`: halve).
    const FIXTURES: &[(&str, i64, &str, Option<u64>)] = &[
        (
            "Alchemy (response size)",
            -32602,
            "Log response size exceeded. You can make eth_getLogs requests with up to a 2K block range and no limit on the response size, or you can request any block range with a cap of 10K logs in the response. Based on your parameters, this block range should work: [0x11e1a30, 0x11e1c2f]",
            Some(512),
        ),
        (
            "Alchemy (free tier)",
            -32600,
            "Under the Free tier plan, you can make eth_getLogs requests with up to a 10 block range. Based on your parameters, this block range should work: [0x1, 0xa]. Upgrade to PAYG for expanded block range.",
            Some(10),
        ),
        (
            "Infura (results)",
            -32005,
            "query returned more than 10000 results. Try with this block range [0x30D8E5, 0x30D91C].",
            Some(56),
        ),
        (
            "Infura (range)",
            -32602,
            "range 1000000 exceeds limit of 10000",
            Some(10_000),
        ),
        (
            "QuickNode",
            -32614,
            "eth_getLogs is limited to a 10,000 range",
            Some(10_000),
        ),
        ("Ankr", -32600, "block range is too wide", None),
        (
            "Polygon public RPC",
            -32000,
            "eth_getLogs block range too large, range: 99991, max: 3500",
            Some(3_500),
        ),
        (
            "Cloudflare",
            -32047,
            "Invalid eth_getLogs request. 'fromBlock'-'toBlock' range too large. Max range: 800",
            Some(800),
        ),
        (
            "reth",
            -32602,
            "query exceeds max block range 5000",
            Some(5_000),
        ),
        (
            "Arbitrum",
            -32000,
            "logs matched by query exceeds limit of 10000",
            None,
        ),
    ];

    #[test]
    fn provider_range_refusals_are_recognized_with_their_sizes() {
        for (provider, code, message, span) in FIXTURES {
            let err = error_response(*code, message);
            assert_eq!(
                range_limit(&err),
                Some(RangeLimit {
                    suggested_span: *span
                }),
                "{provider}: {message}"
            );
            assert!(!is_transient(&err), "{provider} is not a retry case");
        }
    }

    #[test]
    fn quicknode_413_bodies_are_recognized() {
        let err = TransportErrorKind::http_error(
            413,
            r#"{"jsonrpc":"2.0","id":56,"error":{"code":-32614,"message":"eth_getLogs is limited to a 10,000 range"}}"#.into(),
        );
        assert_eq!(
            range_limit(&err).and_then(|l| l.suggested_span),
            Some(10_000)
        );
    }

    #[test]
    fn rate_limits_and_dropped_connections_are_transient() {
        assert!(is_transient(&TransportErrorKind::http_error(
            429,
            "Too Many Requests".into()
        )));
        assert!(is_transient(&TransportErrorKind::http_error(
            503,
            String::new()
        )));
        assert!(is_transient(&error_response(
            -32005,
            "daily request count exceeded, request rate limited"
        )));
        assert!(is_transient(&error_response(429, "Too Many Requests")));
        assert!(is_transient(&TransportErrorKind::custom_str(
            "error sending request: connection closed before message completed"
        )));
        assert!(!is_transient(&error_response(3, "execution reverted")));
        assert!(!is_transient(&TransportErrorKind::http_error(
            400,
            String::new()
        )));
        assert_eq!(range_limit(&error_response(3, "execution reverted")), None);
    }

    #[tokio::test]
    async fn retries_are_bounded_and_name_the_last_error() {
        let policy = RetryPolicy {
            max_attempts: 3,
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(2),
        };
        let mut calls = 0;
        let redact = Redactor::new("http://127.0.0.1:1/v2/SECRETKEY123");
        let out: Result<(), _> = retry(&policy, &redact, || {
            calls += 1;
            std::future::ready(Err(TransportErrorKind::http_error(
                429,
                "slow down at http://127.0.0.1:1/v2/SECRETKEY123".into(),
            )))
        })
        .await;
        assert_eq!(calls, 3);
        let err = out.unwrap_err().into_error("eth_getLogs", &redact);
        assert!(!format!("{err:?}").contains("SECRETKEY123"), "{err:?}");
        let err = err.to_string();
        assert!(!err.contains("SECRETKEY123"), "{err}");
        assert!(
            err.contains("after 3 attempts") && err.contains("slow down"),
            "{err}"
        );
    }
}
