//! Configuration of an [`crate::EvmLedger`]: where the node and the contract
//! are, which key signs, and how patient to be with the node. The signer key
//! never appears in `Debug` output, logs or error messages.

use std::{fmt, str::FromStr, time::Duration};

use alloy::{
    primitives::{Address, B256},
    signers::local::PrivateKeySigner,
};

use crate::{Error, Result};

/// Environment variable with the JSON-RPC URL.
pub const RPC_URL_ENV: &str = "HEALTHLEDGER_RPC_URL";
/// Environment variable with the contract address.
pub const CONTRACT_ENV: &str = "HEALTHLEDGER_CONTRACT";
/// Environment variable with the signer's private key (0x + 64 hex digits).
pub const SIGNER_KEY_ENV: &str = "HEALTHLEDGER_SIGNER_KEY";
/// Environment variable naming the optional WebSocket endpoint for new heads.
pub const WS_URL_ENV: &str = "HEALTHLEDGER_WS_URL";

/// A private key the adapter signs with. `Debug` and `Display` show only
/// its address.
#[derive(Clone)]
pub struct SignerKey(PrivateKeySigner);

impl SignerKey {
    /// The key from its 32 bytes.
    pub fn from_bytes(bytes: &B256) -> Result<Self> {
        PrivateKeySigner::from_bytes(bytes)
            .map(Self)
            .map_err(|_| Error::Config {
                field: "signer key",
                rule: "not a valid secp256k1 private key".into(),
            })
    }

    /// The wallet address of the key.
    pub fn address(&self) -> Address {
        self.0.address()
    }

    pub(crate) fn signer(&self) -> &PrivateKeySigner {
        &self.0
    }
}

impl FromStr for SignerKey {
    type Err = Error;

    /// Parses `0x` followed by 64 hex digits; the error never quotes the input.
    fn from_str(s: &str) -> Result<Self> {
        let hex = s.trim();
        let hex = hex.strip_prefix("0x").unwrap_or(hex);
        if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(Error::Config {
                field: "signer key",
                rule: "expected 0x followed by 64 hex digits".into(),
            });
        }
        let bytes: B256 = hex.parse().map_err(|_| Error::Config {
            field: "signer key",
            rule: "expected 0x followed by 64 hex digits".into(),
        })?;
        Self::from_bytes(&bytes)
    }
}

impl fmt::Debug for SignerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SignerKey({}, key redacted)", self.address())
    }
}

/// Bounded retries with exponential backoff and full jitter, for rate limits
/// (HTTP 429), timeouts and dropped connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all (the first try included); at least 1.
    pub max_attempts: u32,
    /// Backoff cap before jitter for the first retry; doubles each retry.
    pub base_delay: Duration,
    /// Upper bound of any single backoff.
    pub max_delay: Duration,
}

impl RetryPolicy {
    /// 8 attempts from 50 ms doubling up to 5 s.
    pub const STANDARD: Self = Self {
        max_attempts: 8,
        base_delay: Duration::from_millis(50),
        max_delay: Duration::from_secs(5),
    };

    /// The backoff before retry number `retry` (1-based), before jitter.
    pub fn backoff(&self, retry: u32) -> Duration {
        let factor = 1u32 << retry.saturating_sub(1).min(16);
        self.base_delay.saturating_mul(factor).min(self.max_delay)
    }
}

/// How `eth_getLogs` block ranges adapt to a provider's limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogRangePolicy {
    /// Blocks per request at first.
    pub initial_span: u64,
    /// The span never grows beyond this.
    pub max_span: u64,
    /// After this many successes in a row the span doubles (up to
    /// `max_span`).
    pub grow_after: u32,
}

impl LogRangePolicy {
    /// Starts at 2,000 blocks, grows to 100,000 after 3 successes in a row.
    pub const STANDARD: Self = Self {
        initial_span: 2_000,
        max_span: 100_000,
        grow_after: 3,
    };
}

/// Everything an [`crate::EvmLedger`] needs. Build it explicitly with
/// [`Self::new`] or from the environment with [`Self::from_env`]; the
/// tuning fields have conservative values that suit both anvil and hosted
/// providers.
#[derive(Clone)]
pub struct EvmLedgerConfig {
    /// JSON-RPC endpoint (http or https).
    pub rpc_url: String,
    /// Address of the deployed HealthLedger contract.
    pub contract: Address,
    /// The key that signs transactions.
    pub signer: SignerKey,
    /// Blocks that must include (and follow) a transaction before a write
    /// returns; 1 means "included".
    pub confirmations: u64,
    /// How far finality trails the head when the node has no `finalized`
    /// tag.
    pub finality_depth: u64,
    /// The first wait between receipt polls (later waits double, up to 16
    /// times this).
    pub poll_interval: Duration,
    /// How long to wait for a receipt before giving up.
    pub receipt_timeout: Duration,
    /// How long a sent transaction may go without a receipt before the node
    /// is asked whether it still has it; a dropped one is rebroadcast (the
    /// same bytes), then replaced with higher fees if it is dropped again or
    /// refused.
    pub rebroadcast_after: Duration,
    /// Timeout of one HTTP request.
    pub request_timeout: Duration,
    /// Retries of reads on rate limits, timeouts and dropped connections.
    pub retry: RetryPolicy,
    /// `eth_getLogs` range adaptation.
    pub log_ranges: LogRangePolicy,
    /// WebSocket endpoint (ws or wss) for `newHeads` subscriptions, so a
    /// follower learns of a block when it is mined rather than at its next
    /// poll; `None` polls only. Requests always go over `rpc_url`.
    pub ws_url: Option<String>,
}

impl EvmLedgerConfig {
    /// A configuration for `rpc_url`, `contract` and `signer`, with one
    /// confirmation, a finality depth of 64 blocks and the standard retry and
    /// log-range policies.
    pub fn new(rpc_url: impl Into<String>, contract: Address, signer: SignerKey) -> Self {
        Self {
            rpc_url: rpc_url.into(),
            contract,
            signer,
            confirmations: 1,
            finality_depth: 64,
            poll_interval: Duration::from_millis(50),
            receipt_timeout: Duration::from_secs(120),
            rebroadcast_after: Duration::from_secs(15),
            request_timeout: Duration::from_secs(30),
            retry: RetryPolicy::STANDARD,
            log_ranges: LogRangePolicy::STANDARD,
            ws_url: None,
        }
    }

    /// Reads [`RPC_URL_ENV`], [`CONTRACT_ENV`] and [`SIGNER_KEY_ENV`], and
    /// [`WS_URL_ENV`] where set.
    pub fn from_env() -> Result<Self> {
        let var = |name: &'static str| {
            std::env::var(name)
                .ok()
                .filter(|v| !v.trim().is_empty())
                .ok_or_else(|| Error::Config {
                    field: name,
                    rule: "must be set".into(),
                })
        };
        let rpc_url = var(RPC_URL_ENV)?;
        let contract_text = var(CONTRACT_ENV)?;
        let contract = contract_text.trim().parse().map_err(|_| Error::Config {
            field: CONTRACT_ENV,
            rule: format!("{contract_text:?} is not 0x followed by 40 hex digits"),
        })?;
        let signer = var(SIGNER_KEY_ENV)?
            .parse::<SignerKey>()
            .map_err(|e| match e {
                Error::Config { rule, .. } => Error::Config {
                    field: SIGNER_KEY_ENV,
                    rule,
                },
                other => other,
            })?;
        let mut config = Self::new(rpc_url, contract, signer);
        config.ws_url = std::env::var(WS_URL_ENV)
            .ok()
            .filter(|v| !v.trim().is_empty());
        Ok(config)
    }
}

impl fmt::Debug for EvmLedgerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EvmLedgerConfig")
            .field("rpc_url", &redact_url(&self.rpc_url))
            .field("contract", &self.contract)
            .field("signer", &self.signer)
            .field("confirmations", &self.confirmations)
            .field("finality_depth", &self.finality_depth)
            .field("poll_interval", &self.poll_interval)
            .field("receipt_timeout", &self.receipt_timeout)
            .field("request_timeout", &self.request_timeout)
            .field("retry", &self.retry)
            .field("log_ranges", &self.log_ranges)
            .field("ws_url", &self.ws_url.as_deref().map(redact_url))
            .finish()
    }
}

/// The scheme, host and port of a URL: hosted providers put API keys in the
/// path or query, which must not reach logs.
pub(crate) fn redact_url(url: &str) -> String {
    match alloy::transports::http::reqwest::Url::parse(url) {
        Ok(u) => {
            let host = u.host_str().unwrap_or("?");
            let port = u.port().map(|p| format!(":{p}")).unwrap_or_default();
            let rest = if u.path().len() > 1 || u.query().is_some() {
                "/…"
            } else {
                ""
            };
            format!("{}://{host}{port}{rest}", u.scheme())
        }
        Err(_) => "<unparsable URL>".into(),
    }
}

/// Scrubs the configured RPC URL out of rendered errors: alloy's HTTP
/// transport wraps `reqwest` errors whose `Display` names the full URL and
/// whose `Debug` lists its path, query and credentials, where hosted providers
/// put API keys. Every occurrence of the URL becomes [`redact_url`]'s form and
/// every occurrence of its path, query or credentials becomes `…`.
#[derive(Clone)]
pub(crate) struct Redactor {
    /// Secrets to replace, longest first, with their replacement.
    needles: Vec<(String, String)>,
}

impl fmt::Debug for Redactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Redactor").finish_non_exhaustive()
    }
}

impl Redactor {
    /// A redactor for `url`.
    pub(crate) fn new(url: &str) -> Self {
        let shown = redact_url(url);
        let mut needles = vec![(url.to_owned(), shown.clone())];
        if let Ok(u) = alloy::transports::http::reqwest::Url::parse(url) {
            needles.push((u.as_str().to_owned(), shown.clone()));
            let hidden = "…".to_owned();
            if u.path().len() > 1 {
                needles.push((u.path().to_owned(), "/…".to_owned()));
                // A key may also show on its own, without the rest of the
                // path; keys are long, so short segments ("v2", "polygon")
                // are left alone to keep messages readable.
                for seg in u.path().split('/').filter(|s| s.len() >= 16) {
                    needles.push((seg.to_owned(), hidden.clone()));
                }
            }
            if let Some(q) = u.query().filter(|q| !q.is_empty()) {
                needles.push((q.to_owned(), hidden.clone()));
            }
            if !u.username().is_empty() {
                needles.push((u.username().to_owned(), hidden.clone()));
            }
            if let Some(pw) = u.password().filter(|p| !p.is_empty()) {
                needles.push((pw.to_owned(), hidden));
            }
        }
        needles.retain(|(n, _)| !n.is_empty());
        needles.sort_by_key(|(n, _)| std::cmp::Reverse(n.len()));
        Self { needles }
    }

    /// `text` without the URL's secrets.
    pub(crate) fn apply(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for (needle, with) in &self.needles {
            if out.contains(needle.as_str()) {
                out = out.replace(needle.as_str(), with);
            }
        }
        out
    }

    /// `value`'s `Display`, without the URL's secrets.
    pub(crate) fn display(&self, value: &impl fmt::Display) -> String {
        self.apply(&value.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";

    #[test]
    fn debug_never_shows_the_key() {
        let key: SignerKey = KEY.parse().unwrap();
        let config = EvmLedgerConfig::new(
            "https://polygon-mainnet.g.alchemy.com/v2/SECRET_API_KEY",
            Address::repeat_byte(7),
            key,
        );
        let shown = format!("{config:?}");
        assert!(!shown.contains(&KEY[2..]), "{shown}");
        assert!(!shown.contains("ac0974bec39a17e3"), "{shown}");
        assert!(!shown.contains("SECRET_API_KEY"), "{shown}");
        assert!(
            shown.contains("0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"),
            "{shown}"
        );
    }

    #[test]
    fn the_redactor_scrubs_the_url_its_path_and_credentials() {
        let r =
            Redactor::new("https://user:hunter2pw@eth.example.com/v2/SECRETKEY123?key=QSECRET99");
        let text = "error sending request for url (https://user:hunter2pw@eth.example.com/v2/SECRETKEY123?key=QSECRET99): \
                    Url { path: \"/v2/SECRETKEY123\", query: Some(\"key=QSECRET99\"), password: Some(\"hunter2pw\") }";
        let long = Redactor::new("https://eth.example.com/v2/0123456789abcdef0123456789abcdef");
        assert_eq!(
            long.apply("key 0123456789abcdef0123456789abcdef on v2"),
            "key … on v2"
        );
        let shown = r.apply(text);
        for secret in ["SECRETKEY123", "QSECRET99", "hunter2pw"] {
            assert!(!shown.contains(secret), "{shown}");
        }
        assert!(shown.contains("https://eth.example.com/…"), "{shown}");
    }

    #[test]
    fn bad_keys_are_rejected_without_quoting_them() {
        let bad = "0xnotakey-but-secret-looking-0123456789";
        let err = bad.parse::<SignerKey>().unwrap_err().to_string();
        assert!(!err.contains("secret-looking"), "{err}");
        let zero = format!("0x{}", "0".repeat(64));
        assert!(zero.parse::<SignerKey>().is_err());
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let p = RetryPolicy::STANDARD;
        assert_eq!(p.backoff(1), Duration::from_millis(50));
        assert_eq!(p.backoff(2), Duration::from_millis(100));
        assert_eq!(p.backoff(40), Duration::from_secs(5));
    }
}
