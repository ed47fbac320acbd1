//! Configuration: one explicit [`Config`], loaded from a TOML file and the
//! environment with a documented precedence, every value checked at load
//! time with an error naming the setting and the rule.
//!
//! Precedence, lowest first: the embedded defaults (a first run on this
//! machine: a local anvil, a SQLite file and a `file://` vault under the
//! data directory), then the TOML file (`--config`, else
//! `$HEALTHLEDGER_CONFIG`, else `./healthledger.toml` when it exists), then
//! the environment variables listed in [`ENV_VARS`], then explicit
//! overrides made in code (the CLI's flags). Secrets (the signer key, the
//! KEK) are [`Secret`]s: no `Debug`, `Display` or error ever shows them.

use std::{
    collections::BTreeMap,
    fmt,
    path::{Path, PathBuf},
    time::Duration,
};

use serde::Deserialize;

use crate::{Error, Result};

/// A secret setting. Its `Debug` and `Display` say only that it is set.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself, for the one place that uses it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        String::deserialize(d).map(Self)
    }
}

/// Where the ledger is. Its `Debug` shows node URLs as
/// [`redact_node_url`] does.
#[derive(Clone, PartialEq, Eq)]
pub enum ChainConfig {
    /// A local anvil that the app starts from the pinned tools, with its
    /// state, contract address and keys kept under the data directory so
    /// the next run finds the same chain (the embedded default).
    Local {
        /// The anvil binary; `None` looks in `$HEALTHLEDGER_TOOLS/bin`,
        /// `./.tools/bin` and `PATH`.
        anvil: Option<PathBuf>,
    },
    /// Any EVM JSON-RPC node with a deployed contract.
    Remote {
        /// The node's JSON-RPC URL.
        rpc_url: String,
        /// The contract's address (`None` only for `chain deploy`).
        contract: Option<alloy_primitives::Address>,
        /// The key the backend signs and relays with (a registrar).
        signer_key: Secret,
    },
}

impl fmt::Debug for ChainConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Local { anvil } => f.debug_struct("Local").field("anvil", anvil).finish(),
            Self::Remote {
                rpc_url,
                contract,
                signer_key,
            } => f
                .debug_struct("Remote")
                .field("rpc_url", &redact_node_url(rpc_url))
                .field("contract", contract)
                .field("signer_key", signer_key)
                .finish(),
        }
    }
}

/// The whole configuration of an [`crate::App`]. Its `Debug` hides secrets
/// and URL passwords.
#[derive(Clone, PartialEq, Eq)]
pub struct Config {
    /// Where local state lives: the SQLite file, the `file://` vault, the
    /// local chain. Relative paths below are relative to it.
    pub data_dir: PathBuf,
    /// The ledger.
    pub chain: ChainConfig,
    /// Blocks a write waits for before it returns (at least 1).
    pub confirmations: u64,
    /// A WebSocket endpoint of the remote node (`ws://` or `wss://`) whose
    /// `newHeads` wake follow mode as each block is mined; `None` polls
    /// only. The local anvil always has one.
    pub ws_url: Option<String>,
    /// The cache's database URL (`sqlite://…` or `postgres://…`).
    pub database_url: String,
    /// The PostgreSQL schema, if not `public`.
    pub database_schema: Option<String>,
    /// The vault's object store URL (`file://`, `memory://`, `s3://`).
    pub vault_url: String,
    /// The vault's key store URL, apart from the content.
    pub key_store_url: String,
    /// The key-encryption key, hex; `None` with the local defaults means a
    /// key generated once and kept under the data directory.
    pub vault_kek: Option<Secret>,
    /// The id the KEK is known by.
    pub vault_kek_id: String,
    /// The key store's backup retention: how long erased key material may
    /// survive in backups (reported by status).
    pub erasure_horizon: Duration,
    /// Options passed to the object stores (e.g. `aws_region`), by key.
    pub store_options: BTreeMap<String, String>,
    /// The largest file a record may hold.
    pub max_file_bytes: u64,
    /// How often follow mode polls the chain.
    pub poll_interval: Duration,
    /// How often the access log's digest is anchored on chain.
    pub anchor_interval: Duration,
    /// The fewest new access-log entries worth an anchoring transaction.
    pub anchor_min_entries: u64,
}

/// The environment variables [`Config::load`] reads, with what they set.
pub const ENV_VARS: &[(&str, &str)] = &[
    ("HEALTHLEDGER_CONFIG", "path of the TOML file"),
    ("HEALTHLEDGER_DATA_DIR", "data directory"),
    ("HEALTHLEDGER_RPC_URL", "chain.rpc_url"),
    ("HEALTHLEDGER_CONTRACT", "chain.contract"),
    ("HEALTHLEDGER_SIGNER_KEY", "chain.signer_key (secret)"),
    ("HEALTHLEDGER_CONFIRMATIONS", "chain.confirmations"),
    ("HEALTHLEDGER_WS_URL", "chain.ws_url"),
    ("DATABASE_URL", "cache.database_url"),
    ("HEALTHLEDGER_SCHEMA", "cache.schema"),
    ("HEALTHLEDGER_VAULT_URL", "vault.url"),
    ("HEALTHLEDGER_KEY_STORE_URL", "vault.key_store_url"),
    ("HEALTHLEDGER_VAULT_KEK", "vault.kek (secret)"),
    ("HEALTHLEDGER_VAULT_KEK_ID", "vault.kek_id"),
];

/// The TOML file's shape: every field optional, sections as in the docs.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    data_dir: Option<PathBuf>,
    #[serde(default)]
    chain: FileChain,
    #[serde(default)]
    cache: FileCache,
    #[serde(default)]
    vault: FileVault,
    #[serde(default)]
    sync: FileSync,
    #[serde(default)]
    records: FileRecords,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileChain {
    rpc_url: Option<String>,
    ws_url: Option<String>,
    contract: Option<String>,
    signer_key: Option<Secret>,
    confirmations: Option<u64>,
    anvil: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileCache {
    database_url: Option<String>,
    schema: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileVault {
    url: Option<String>,
    key_store_url: Option<String>,
    kek: Option<Secret>,
    kek_id: Option<String>,
    erasure_horizon_days: Option<u64>,
    #[serde(default)]
    options: BTreeMap<String, String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSync {
    poll_interval_ms: Option<u64>,
    anchor_interval_secs: Option<u64>,
    anchor_min_entries: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileRecords {
    max_file_mib: Option<u64>,
}

/// The name of the TOML file looked for in the working directory.
pub const DEFAULT_CONFIG_FILE: &str = "healthledger.toml";

impl Config {
    /// The embedded defaults under `data_dir`: a local anvil, a SQLite file
    /// `healthledger.db`, a vault `file://<data_dir>/vault` with its keys in
    /// `vault-keys`.
    pub fn local(data_dir: impl Into<PathBuf>) -> Self {
        let data_dir = data_dir.into();
        Self {
            chain: ChainConfig::Local { anvil: None },
            confirmations: 1,
            ws_url: None,
            database_url: sqlite_url(&data_dir.join("healthledger.db")),
            database_schema: None,
            vault_url: file_url(&data_dir.join("vault")),
            key_store_url: file_url(&data_dir.join("vault-keys")),
            vault_kek: None,
            vault_kek_id: "local-kek".into(),
            erasure_horizon: Duration::ZERO,
            store_options: BTreeMap::new(),
            max_file_bytes: 50 * 1024 * 1024,
            poll_interval: Duration::from_secs(2),
            anchor_interval: Duration::from_secs(3600),
            anchor_min_entries: 1,
            data_dir,
        }
    }

    /// Loads the configuration: defaults, then the TOML file at `file` (or
    /// the one the environment or the working directory names), then the
    /// process environment.
    pub fn load(file: Option<&Path>) -> Result<Self> {
        Self::load_with(file, |name| std::env::var(name).ok())
    }

    /// [`Self::load`] with the environment read through `env` (tests pass
    /// a map).
    pub fn load_with(file: Option<&Path>, env: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let env = |name: &str| env(name).filter(|v| !v.trim().is_empty());
        let path = file
            .map(Path::to_path_buf)
            .or_else(|| env("HEALTHLEDGER_CONFIG").map(PathBuf::from))
            .or_else(|| {
                let p = PathBuf::from(DEFAULT_CONFIG_FILE);
                p.is_file().then_some(p)
            });
        let parsed = match &path {
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|e| Error::Config {
                    setting: "config file".into(),
                    rule: format!("cannot read {}: {e}", p.display()),
                })?;
                parse_file(&text).map_err(|(key, e)| {
                    // toml's message quotes the offending line, which may
                    // hold a secret: keep only its first line (the rule).
                    let rule = e.message().lines().next().unwrap_or("malformed");
                    match key {
                        Some(key) => Error::Config {
                            setting: key,
                            rule: format!("{rule} (in config file {})", p.display()),
                        },
                        None => Error::Config {
                            setting: format!("config file {}", p.display()),
                            rule: rule.into(),
                        },
                    }
                })?
            }
            None => FileConfig::default(),
        };
        let data_dir = env("HEALTHLEDGER_DATA_DIR")
            .map(PathBuf::from)
            .or(parsed.data_dir.clone())
            .unwrap_or_else(|| PathBuf::from("."));
        let mut config = Self::local(data_dir);
        config.apply_file(parsed)?;
        config.apply_env(&env)?;
        config.check()?;
        Ok(config)
    }

    fn apply_file(&mut self, f: FileConfig) -> Result<()> {
        let rpc_url = f.chain.rpc_url;
        let contract = f
            .chain
            .contract
            .map(|c| parse_address("chain.contract", &c))
            .transpose()?;
        self.set_chain(rpc_url, contract, f.chain.signer_key, f.chain.anvil);
        if let Some(n) = f.chain.confirmations {
            self.confirmations = n;
        }
        if let Some(url) = f.chain.ws_url {
            self.ws_url = Some(url);
        }
        if let Some(url) = f.cache.database_url {
            self.database_url = url;
        }
        if f.cache.schema.is_some() {
            self.database_schema = f.cache.schema;
        }
        if let Some(url) = f.vault.url {
            self.vault_url = url;
        }
        if let Some(url) = f.vault.key_store_url {
            self.key_store_url = url;
        }
        if f.vault.kek.is_some() {
            self.vault_kek = f.vault.kek;
        }
        if let Some(id) = f.vault.kek_id {
            self.vault_kek_id = id;
        }
        if let Some(days) = f.vault.erasure_horizon_days {
            self.erasure_horizon = Duration::from_secs(days * 86_400);
        }
        self.store_options.extend(f.vault.options);
        if let Some(ms) = f.sync.poll_interval_ms {
            self.poll_interval = Duration::from_millis(ms);
        }
        if let Some(s) = f.sync.anchor_interval_secs {
            self.anchor_interval = Duration::from_secs(s);
        }
        if let Some(n) = f.sync.anchor_min_entries {
            self.anchor_min_entries = n;
        }
        if let Some(mib) = f.records.max_file_mib {
            self.max_file_bytes = mib.saturating_mul(1024 * 1024);
        }
        Ok(())
    }

    fn apply_env(&mut self, env: &impl Fn(&str) -> Option<String>) -> Result<()> {
        let contract = env("HEALTHLEDGER_CONTRACT")
            .map(|c| parse_address("HEALTHLEDGER_CONTRACT", &c))
            .transpose()?;
        self.set_chain(
            env("HEALTHLEDGER_RPC_URL"),
            contract,
            env("HEALTHLEDGER_SIGNER_KEY").map(Secret::new),
            None,
        );
        if let Some(url) = env("HEALTHLEDGER_WS_URL") {
            self.ws_url = Some(url);
        }
        if let Some(n) = env("HEALTHLEDGER_CONFIRMATIONS") {
            self.confirmations = n.trim().parse().map_err(|_| Error::Config {
                setting: "HEALTHLEDGER_CONFIRMATIONS".into(),
                rule: format!("{n:?} is not a whole number of blocks"),
            })?;
        }
        if let Some(url) = env("DATABASE_URL") {
            self.database_url = url;
        }
        if let Some(schema) = env("HEALTHLEDGER_SCHEMA") {
            self.database_schema = Some(schema);
        }
        if let Some(url) = env("HEALTHLEDGER_VAULT_URL") {
            self.vault_url = url;
        }
        if let Some(url) = env("HEALTHLEDGER_KEY_STORE_URL") {
            self.key_store_url = url;
        }
        if let Some(kek) = env("HEALTHLEDGER_VAULT_KEK") {
            self.vault_kek = Some(Secret::new(kek));
        }
        if let Some(id) = env("HEALTHLEDGER_VAULT_KEK_ID") {
            self.vault_kek_id = id;
        }
        Ok(())
    }

    /// Merges chain settings: any of URL, contract or key moves the chain
    /// to [`ChainConfig::Remote`]; what is not given is kept.
    fn set_chain(
        &mut self,
        rpc_url: Option<String>,
        contract: Option<alloy_primitives::Address>,
        signer_key: Option<Secret>,
        anvil: Option<PathBuf>,
    ) {
        match &mut self.chain {
            ChainConfig::Local { anvil: a } if rpc_url.is_none() => {
                if anvil.is_some() {
                    *a = anvil;
                }
                // A contract or key without a node URL is caught by check().
                if contract.is_some() || signer_key.is_some() {
                    self.chain = ChainConfig::Remote {
                        rpc_url: String::new(),
                        contract,
                        signer_key: signer_key.unwrap_or_else(|| Secret::new("")),
                    };
                }
            }
            ChainConfig::Local { .. } => {
                self.chain = ChainConfig::Remote {
                    rpc_url: rpc_url.unwrap_or_default(),
                    contract,
                    signer_key: signer_key.unwrap_or_else(|| Secret::new("")),
                };
            }
            ChainConfig::Remote {
                rpc_url: u,
                contract: c,
                signer_key: k,
            } => {
                if let Some(url) = rpc_url {
                    *u = url;
                }
                if contract.is_some() {
                    *c = contract;
                }
                if let Some(key) = signer_key {
                    *k = key;
                }
            }
        }
    }

    /// Checks every rule a value must follow, naming the setting.
    pub fn check(&self) -> Result<()> {
        let bad = |setting: &str, rule: String| {
            Err(Error::Config {
                setting: setting.into(),
                rule,
            })
        };
        if let ChainConfig::Remote {
            rpc_url,
            signer_key,
            ..
        } = &self.chain
        {
            if rpc_url.is_empty() {
                return bad(
                    "HEALTHLEDGER_RPC_URL",
                    "must be set when a contract or signer key is configured (leave all three unset for the local anvil)".into(),
                );
            }
            if !(rpc_url.starts_with("http://") || rpc_url.starts_with("https://")) {
                return bad(
                    "HEALTHLEDGER_RPC_URL",
                    "must start with http:// or https:// (a WebSocket endpoint goes in HEALTHLEDGER_WS_URL)".into(),
                );
            }
            if signer_key.expose().is_empty() {
                return bad(
                    "HEALTHLEDGER_SIGNER_KEY",
                    "must be set with HEALTHLEDGER_RPC_URL (0x followed by 64 hex digits)".into(),
                );
            }
            if let Err(e) = signer_key.expose().parse::<healthledger_chain::SignerKey>() {
                let rule = match e {
                    healthledger_chain::Error::Config { rule, .. } => rule,
                    _ => "not a valid private key".into(),
                };
                return bad("HEALTHLEDGER_SIGNER_KEY", rule);
            }
        }
        if let Some(url) = &self.ws_url
            && !(url.starts_with("ws://") || url.starts_with("wss://"))
        {
            return bad(
                "HEALTHLEDGER_WS_URL",
                format!("{} must start with ws:// or wss://", redact_node_url(url)),
            );
        }
        if self.confirmations == 0 {
            return bad(
                "HEALTHLEDGER_CONFIRMATIONS",
                "must be at least 1 (a write returns once included)".into(),
            );
        }
        if !(self.database_url.starts_with("sqlite:")
            || self.database_url.starts_with("postgres://")
            || self.database_url.starts_with("postgresql://"))
        {
            return bad(
                "DATABASE_URL",
                "must start with sqlite: or postgres://".into(),
            );
        }
        for (setting, url) in [
            ("HEALTHLEDGER_VAULT_URL", &self.vault_url),
            ("HEALTHLEDGER_KEY_STORE_URL", &self.key_store_url),
        ] {
            if !url.contains("://") {
                return bad(
                    setting,
                    format!("{url:?} is not a URL (file://, memory://, s3://…)"),
                );
            }
        }
        if let Some(kek) = &self.vault_kek {
            let hex = kek.expose().trim();
            let hex = hex.strip_prefix("0x").unwrap_or(hex);
            if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                return bad(
                    "HEALTHLEDGER_VAULT_KEK",
                    "expected 64 hex digits (a 256-bit key)".into(),
                );
            }
        } else if !self.is_local() {
            return bad(
                "HEALTHLEDGER_VAULT_KEK",
                "must be set when the chain is not the local anvil (a generated key is only for local runs)".into(),
            );
        }
        if self.max_file_bytes == 0 {
            return bad("records.max_file_mib", "must be at least 1".into());
        }
        Ok(())
    }

    /// Whether the chain is the local anvil.
    pub fn is_local(&self) -> bool {
        matches!(self.chain, ChainConfig::Local { .. })
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("data_dir", &self.data_dir)
            .field("chain", &self.chain)
            .field("confirmations", &self.confirmations)
            .field("ws_url", &self.ws_url.as_deref().map(redact_node_url))
            .field("database_url", &redact_url(&self.database_url))
            .field("database_schema", &self.database_schema)
            .field("vault_url", &redact_url(&self.vault_url))
            .field("key_store_url", &redact_url(&self.key_store_url))
            .field("vault_kek", &self.vault_kek)
            .field("vault_kek_id", &self.vault_kek_id)
            .field("erasure_horizon", &self.erasure_horizon)
            .field(
                "store_options",
                &self.store_options.keys().collect::<Vec<_>>(),
            )
            .field("max_file_bytes", &self.max_file_bytes)
            .field("poll_interval", &self.poll_interval)
            .field("anchor_interval", &self.anchor_interval)
            .field("anchor_min_entries", &self.anchor_min_entries)
            .finish()
    }
}

/// A node URL as it may be shown: its scheme, host and port, with `/…`
/// standing for any path or query.
pub fn redact_node_url(url: &str) -> String {
    // Hosted nodes (Alchemy, Infura, QuickNode) put the API key in the
    // path or the query: only the scheme, host and port are shown.
    let Some((scheme, rest)) = url.split_once("://") else {
        return "<not a URL>".into();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let hidden = if rest[authority_end..].trim_start_matches('/').is_empty() {
        ""
    } else {
        "/…"
    };
    format!("{scheme}://{host}{hidden}")
}

/// `url` with any password (`scheme://user:password@host`) and query
/// replaced, for output: a database or store URL (their
/// paths name databases, buckets and folders, which are not secret); node
/// URLs use [`redact_node_url`].
pub fn redact_url(url: &str) -> String {
    let (head, query) = match url.split_once('?') {
        Some((h, _)) if !h.starts_with("sqlite:") => (h, "?…"),
        _ => (url, ""),
    };
    match head.split_once("://") {
        Some((scheme, rest)) => match rest.split_once('@') {
            Some((userinfo, host)) => {
                let user = userinfo.split(':').next().unwrap_or("");
                format!("{scheme}://{user}:…@{host}{query}")
            }
            None => format!("{head}{query}"),
        },
        None => format!("{head}{query}"),
    }
}

/// Parses the TOML file; an error comes with the key it is about (such as
/// `chain.confirmations`) when it is about one rather than the syntax.
fn parse_file(text: &str) -> std::result::Result<FileConfig, (Option<String>, toml::de::Error)> {
    let de = toml::Deserializer::parse(text).map_err(|e| (None, e))?;
    serde_path_to_error::deserialize(de).map_err(|e| {
        let key = e.path().to_string();
        let key = (!key.is_empty() && key != ".").then_some(key);
        (key, e.into_inner())
    })
}

fn parse_address(setting: &str, text: &str) -> Result<alloy_primitives::Address> {
    let t = text.trim();
    let hex = t.strip_prefix("0x").unwrap_or(t);
    if hex.len() != 40 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(Error::Config {
            setting: setting.into(),
            rule: format!("{text:?} is not 0x followed by 40 hex digits"),
        });
    }
    t.parse().map_err(|_| Error::Config {
        setting: setting.into(),
        rule: format!("{text:?} is not an address"),
    })
}

/// `sqlite://<path>?mode=rwc` for a file path.
pub fn sqlite_url(path: &Path) -> String {
    format!("sqlite://{}?mode=rwc", path.display())
}

/// `file://<absolute path>` for a directory.
pub fn file_url(path: &Path) -> String {
    let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    format!("file://{}", abs.display())
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
