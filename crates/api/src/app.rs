//! Wiring: [`App::build`] turns a [`Config`] into the concrete adapters
//! (alloy ledger, SQL cache, object-store vault) and the sync engine;
//! [`AppBuilder`] takes any `Arc<dyn LedgerPort/CachePort/VaultPort>`
//! instead, so a team can swap an adapter for its own.

use std::{path::Path, sync::Arc, time::Duration};

use healthledger_cache::{SqlCache, SqlLease};
use healthledger_chain::{EvmLedger, EvmLedgerConfig, SignerKey};
use healthledger_core::{CachePort, LedgerPort, VaultPort, WriterLease};
use healthledger_sync::{SyncConfig, SyncEngine};
use healthledger_vault::{Kek, Vault};
use tokio::sync::Mutex;

use crate::{
    ChainConfig, Config, Error, Result,
    config::{Secret, redact_node_url, redact_url},
    local::LocalChain,
};

/// Limits and schedules the facade applies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// The largest file a record may hold.
    pub max_file_bytes: u64,
    /// How often the access log's digest is anchored on chain.
    pub anchor_interval: Duration,
    /// The fewest new access-log entries worth an anchoring transaction.
    pub anchor_min_entries: u64,
}

impl Settings {
    /// 50 MiB files, hourly anchoring of at least one new entry.
    pub const STANDARD: Self = Self {
        max_file_bytes: 50 * 1024 * 1024,
        anchor_interval: Duration::from_secs(3600),
        anchor_min_entries: 1,
    };
}

/// Where the wired adapters point, for status output (never secrets).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Wiring {
    /// The chain: `local anvil at …` or the node's redacted URL.
    pub chain: String,
    /// The contract address, when known.
    pub contract: Option<String>,
    /// The cache's redacted URL.
    pub cache: String,
    /// The vault's redacted URL.
    pub vault: String,
}

/// The application: the three ports, the sync engine, and the facade's
/// flows (see [`crate::facade`]).
pub struct App {
    pub(crate) ledger: Arc<dyn LedgerPort>,
    pub(crate) cache: Arc<dyn CachePort>,
    pub(crate) vault: Arc<dyn VaultPort>,
    pub(crate) sync: Arc<SyncEngine>,
    /// The object-store vault when `App::build` opened it (for what only
    /// it offers, such as CAR export).
    pub(crate) object_vault: Option<Arc<Vault>>,
    pub(crate) settings: Settings,
    pub(crate) wiring: Wiring,
    local: Mutex<Option<LocalChain>>,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("wiring", &self.wiring)
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl App {
    /// A builder over adapters of the caller's choosing.
    pub fn builder() -> AppBuilder {
        AppBuilder::default()
    }

    /// Connects everything `config` names: starts the local anvil (and
    /// deploys the contract on a first run) when the chain is local,
    /// connects the ledger, opens (and migrates) the cache, opens the vault.
    pub async fn build(config: Config) -> Result<Self> {
        config.check()?;
        std::fs::create_dir_all(&config.data_dir).map_err(|e| Error::Config {
            setting: "HEALTHLEDGER_DATA_DIR".into(),
            rule: format!("cannot create {}: {e}", config.data_dir.display()),
        })?;
        let (ledger_config, local, chain_label) = match &config.chain {
            ChainConfig::Local { anvil } => {
                let local = LocalChain::start(&config.data_dir, anvil.as_deref()).await?;
                let mut c =
                    EvmLedgerConfig::new(local.endpoint(), local.contract(), local.key().clone());
                // anvil answers WebSocket on its HTTP port.
                c.ws_url = local
                    .endpoint()
                    .strip_prefix("http://")
                    .map(|rest| format!("ws://{rest}"));
                let label = format!("local anvil at {}", local.endpoint());
                (c, Some(local), label)
            }
            ChainConfig::Remote {
                rpc_url,
                contract,
                signer_key,
            } => {
                let contract = contract.ok_or_else(|| Error::Config {
                    setting: "HEALTHLEDGER_CONTRACT".into(),
                    rule: "must be set (deploy one with `healthledger chain deploy`)".into(),
                })?;
                let key = parse_key(signer_key)?;
                let mut c = EvmLedgerConfig::new(rpc_url.clone(), contract, key);
                c.ws_url = config.ws_url.clone();
                (c, None, redact_node_url(rpc_url))
            }
        };
        let mut ledger_config = ledger_config;
        ledger_config.confirmations = config.confirmations;
        let contract = ledger_config.contract;
        let ledger = EvmLedger::connect(ledger_config).await?;
        let mut cache = SqlCache::builder(config.database_url.clone());
        if let Some(schema) = &config.database_schema {
            cache = cache.postgres_schema(schema.clone());
        }
        let cache = cache.connect().await?;
        let lease = SqlLease::connect(&config.database_url, config.database_schema.as_deref())
            .await
            .map_err(Error::from)?;
        let vault = Arc::new(open_vault(&config)?);
        let wiring = Wiring {
            chain: chain_label,
            contract: Some(contract.to_string()),
            cache: redact_url(&config.database_url),
            vault: redact_url(&config.vault_url),
        };
        let sync_config = SyncConfig {
            poll_interval: config.poll_interval,
            ..SyncConfig::default()
        };
        let mut app = AppBuilder::default()
            .ledger(Arc::new(ledger))
            .cache(Arc::new(cache))
            .vault(vault.clone())
            .lease(Arc::new(lease))
            .sync_config(sync_config)
            .settings(Settings {
                max_file_bytes: config.max_file_bytes,
                anchor_interval: config.anchor_interval,
                anchor_min_entries: config.anchor_min_entries,
            })
            .build()?;
        app.wiring = wiring;
        app.object_vault = Some(vault);
        app.local = Mutex::new(local);
        Ok(app)
    }

    /// The ledger port.
    pub fn ledger(&self) -> &Arc<dyn LedgerPort> {
        &self.ledger
    }

    /// The cache port.
    pub fn cache(&self) -> &Arc<dyn CachePort> {
        &self.cache
    }

    /// The vault port.
    pub fn vault(&self) -> &Arc<dyn VaultPort> {
        &self.vault
    }

    /// The object-store vault, when the app opened it from its config.
    pub fn object_vault(&self) -> Option<&Arc<Vault>> {
        self.object_vault.as_ref()
    }

    /// The sync engine over the same ledger and cache.
    pub fn sync(&self) -> &Arc<SyncEngine> {
        &self.sync
    }

    /// The limits and schedules in force.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Where the adapters point (no secrets).
    pub fn wiring(&self) -> &Wiring {
        &self.wiring
    }

    /// Stops what the app started (the local anvil, gracefully, so its
    /// state is saved for the next run).
    pub async fn shutdown(&self) {
        if let Some(local) = self.local.lock().await.take() {
            local.stop().await;
        }
    }

    /// Whether this run deployed a fresh local contract.
    pub async fn is_fresh_local_chain(&self) -> bool {
        self.local
            .lock()
            .await
            .as_ref()
            .is_some_and(LocalChain::is_fresh)
    }
}

fn parse_key(secret: &Secret) -> Result<SignerKey> {
    secret.expose().parse::<SignerKey>().map_err(|e| match e {
        healthledger_chain::Error::Config { rule, .. } => Error::Config {
            setting: "HEALTHLEDGER_SIGNER_KEY".into(),
            rule,
        },
        _ => Error::Config {
            setting: "HEALTHLEDGER_SIGNER_KEY".into(),
            rule: "not a valid private key".into(),
        },
    })
}

/// Opens the vault; with the local defaults and no KEK configured, the
/// KEK is generated once and kept in `<data_dir>/.healthledger/vault.kek` (mode
/// 0600), which suits only a development machine.
fn open_vault(config: &Config) -> Result<Vault> {
    let kek = match &config.vault_kek {
        Some(hex) => {
            let hex = hex.expose().trim();
            Kek::from_hex(
                config.vault_kek_id.clone(),
                hex.strip_prefix("0x").unwrap_or(hex),
            )?
        }
        None => local_kek(&config.data_dir, &config.vault_kek_id)?,
    };
    for url in [&config.vault_url, &config.key_store_url] {
        if let Some(path) = url.strip_prefix("file://") {
            std::fs::create_dir_all(path).map_err(|e| Error::Config {
                setting: "HEALTHLEDGER_VAULT_URL".into(),
                rule: format!("cannot create {path}: {e}"),
            })?;
        }
    }
    let mut builder = Vault::builder(config.vault_url.clone())
        .key_store(config.key_store_url.clone())
        .erasure_horizon(config.erasure_horizon)
        .kek(kek);
    for (k, v) in &config.store_options {
        builder = builder
            .option(k.clone(), v.clone())
            .key_store_option(k.clone(), v.clone());
    }
    Ok(builder.build()?)
}

fn local_kek(data_dir: &Path, id: &str) -> Result<Kek> {
    let dir = data_dir.join(".healthledger");
    let path = dir.join("vault.kek");
    let io = |e: std::io::Error| Error::LocalChain(format!("{}: {e}", path.display()));
    if let Ok(hex) = std::fs::read_to_string(&path) {
        return Ok(Kek::from_hex(id.to_owned(), hex.trim())?);
    }
    std::fs::create_dir_all(&dir).map_err(io)?;
    let key: [u8; 32] = rand::random();
    let hex = hex::encode(key);
    write_private(&path, hex.as_bytes()).map_err(io)?;
    Ok(Kek::from_hex(id.to_owned(), &hex)?)
}

/// Writes a file only its owner can read.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

/// Builds an [`App`] over any adapters.
#[derive(Default)]
pub struct AppBuilder {
    ledger: Option<Arc<dyn LedgerPort>>,
    cache: Option<Arc<dyn CachePort>>,
    vault: Option<Arc<dyn VaultPort>>,
    lease: Option<Arc<dyn WriterLease>>,
    sync_config: Option<SyncConfig>,
    settings: Option<Settings>,
}

impl AppBuilder {
    /// The ledger to use.
    pub fn ledger(mut self, ledger: Arc<dyn LedgerPort>) -> Self {
        self.ledger = Some(ledger);
        self
    }

    /// The cache to use.
    pub fn cache(mut self, cache: Arc<dyn CachePort>) -> Self {
        self.cache = Some(cache);
        self
    }

    /// The vault to use.
    pub fn vault(mut self, vault: Arc<dyn VaultPort>) -> Self {
        self.vault = Some(vault);
        self
    }

    /// The writer lease follow mode takes (one writer per cache).
    pub fn lease(mut self, lease: Arc<dyn WriterLease>) -> Self {
        self.lease = Some(lease);
        self
    }

    /// The sync engine's tuning ([`SyncConfig::default`] otherwise).
    pub fn sync_config(mut self, config: SyncConfig) -> Self {
        self.sync_config = Some(config);
        self
    }

    /// Limits and schedules ([`Settings::STANDARD`] otherwise).
    pub fn settings(mut self, settings: Settings) -> Self {
        self.settings = Some(settings);
        self
    }

    /// The app; every port must be given.
    pub fn build(self) -> Result<App> {
        let missing = |what: &str| Error::Config {
            setting: what.into(),
            rule: "must be given to App::builder()".into(),
        };
        let ledger = self.ledger.ok_or_else(|| missing("ledger"))?;
        let cache = self.cache.ok_or_else(|| missing("cache"))?;
        let vault = self.vault.ok_or_else(|| missing("vault"))?;
        let mut sync = SyncEngine::new(
            ledger.clone(),
            cache.clone(),
            self.sync_config.unwrap_or_default(),
        );
        if let Some(lease) = &self.lease {
            sync = sync.with_lease(lease.clone());
        }
        Ok(App {
            ledger,
            cache,
            vault,
            sync: Arc::new(sync),
            object_vault: None,
            settings: self.settings.unwrap_or(Settings::STANDARD),
            wiring: Wiring::default(),
            local: Mutex::new(None),
        })
    }
}
