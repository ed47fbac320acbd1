//! [`EvmLedger`]: the [`LedgerPort`] over the HealthLedger contract on any
//! EVM JSON-RPC node.
//!
//! Writes are simulated first (`eth_estimateGas`, which also yields the
//! contract's custom error when the call would revert), then signed locally
//! with a nonce from the adapter's own counter (so concurrent writes from one
//! key never collide or leave gaps), sent as raw bytes (resent unchanged on
//! transport failures), and awaited by polling the receipt
//! until the configured number of confirmations. Reads are `eth_call`s at the
//! latest block or at a pinned one. Every RPC is retried on rate limits,
//! timeouts and dropped connections; `eth_getLogs` ranges also adapt to the
//! provider's limits.
//!
//! The code is split by what it does: [`reads`] (calls and blocks),
//! [`send`] (signing, nonces, sending and receipts), [`nonces`] (writes in
//! flight and gaps the node left), [`logs`] (log paging
//! and decoding), [`consent`] (EIP-712 digests) and [`port`] (the
//! `LedgerPort` itself, delegating to the others).

mod consent;
mod heads;
mod logs;
mod nonces;
mod port;
mod reads;
mod send;

use std::{
    fmt,
    sync::atomic::{AtomicU32, AtomicU64, Ordering},
    time::Duration,
};

use alloy::{
    network::EthereumWallet,
    primitives::Address,
    providers::{DynProvider, Provider, ProviderBuilder},
    rpc::client::RpcClient,
    signers::SignerSync as _,
    transports::http::{Http, reqwest},
};
use healthledger_core::{
    Authorization, ConsentAction, LedgerError, LedgerPort, LedgerResult, RelayedSignature,
    Timestamp, WalletAddress,
};
use tokio::sync::Mutex;

pub use reads::{CALL_GAS_BUDGET, GRANT_PAGE, PROFILE_PAGE, RECORD_PAGE};

use crate::{
    Error, Result,
    bindings::HealthLedger,
    config::{EvmLedgerConfig, Redactor, SignerKey, redact_url},
    rpc::retry,
};

/// A [`LedgerPort`] backed by the HealthLedger contract. Cheap to share
/// behind an `Arc`; all methods take `&self`.
pub struct EvmLedger {
    provider: DynProvider,
    contract: Address,
    signer: WalletAddress,
    chain_id: u64,
    config: EvmLedgerConfig,
    /// The next nonce of the signer, `None` until read from the node (and
    /// again after a failed send, so it is re-read).
    nonce: Mutex<Option<u64>>,
    /// The writes waiting for their receipts, by nonce.
    in_flight: nonces::InFlightMap,
    /// Blocks per `eth_getLogs` request right now.
    log_span: AtomicU64,
    /// Successful `eth_getLogs` requests in a row since the last shrink.
    log_streak: AtomicU32,
    /// Scrubs the RPC URL's secrets out of every rendered transport error.
    redact: Redactor,
    /// Signs transactions locally, so their hashes are known before sending.
    wallet: EthereumWallet,
    /// The block the contract was deployed in, read from the contract.
    deployment_block: u64,
}

/// The interface version this adapter speaks (the contract's `INTERFACE`).
const INTERFACE: &str = "HealthLedger/3";

impl fmt::Debug for EvmLedger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EvmLedger")
            .field("rpc_url", &redact_url(&self.config.rpc_url))
            .field("contract", &self.contract)
            .field("signer", &self.signer)
            .field("chain_id", &self.chain_id)
            .finish_non_exhaustive()
    }
}

/// A provider that signs with `key`, over a reqwest client with the
/// configured timeout.
fn build_provider(rpc_url: &str, key: &SignerKey, timeout: Duration) -> Result<DynProvider> {
    let url = reqwest::Url::parse(rpc_url).map_err(|e| Error::Config {
        field: "rpc_url",
        rule: format!("{} is not a URL: {e}", redact_url(rpc_url)),
    })?;
    let client = reqwest::Client::builder()
        .timeout(timeout)
        .build()
        .map_err(|e| Error::Config {
            field: "rpc_url",
            rule: format!("cannot build an HTTP client: {e}"),
        })?;
    let is_local = alloy::transports::utils::guess_local_url(url.as_str());
    let rpc = RpcClient::new(Http::with_client(client, url), is_local);
    let wallet = EthereumWallet::from(key.signer().clone());
    Ok(ProviderBuilder::new()
        .wallet(wallet)
        .connect_client(rpc)
        .erased())
}

impl EvmLedger {
    /// Deploys a new HealthLedger contract from `key` (which becomes its
    /// admin and first registrar) and returns its address.
    pub async fn deploy(rpc_url: &str, key: &SignerKey) -> Result<Address> {
        let provider = build_provider(rpc_url, key, Duration::from_secs(60))?;
        let redact = Redactor::new(rpc_url);
        HealthLedger::deploy_builder(&provider)
            .deploy()
            .await
            .map_err(|e| {
                Error::Invalid(format!(
                    "deploying HealthLedger failed: {}",
                    redact.display(&e)
                ))
            })
    }

    /// Connects to the node and the contract named by `config`. Fails when
    /// the node is unreachable or no contract code is at the address.
    pub async fn connect(config: EvmLedgerConfig) -> Result<Self> {
        if config.confirmations == 0 {
            return Err(Error::Config {
                field: "confirmations",
                rule: "must be at least 1 (a write returns once included)".into(),
            });
        }
        let provider = build_provider(&config.rpc_url, &config.signer, config.request_timeout)?;
        let redact = Redactor::new(&config.rpc_url);
        let chain_id = retry(&config.retry, &redact, || provider.get_chain_id())
            .await
            .map_err(|e| e.into_error("eth_chainId", &redact))?;
        let code = retry(&config.retry, &redact, || {
            provider.get_code_at(config.contract)
        })
        .await
        .map_err(|e| e.into_error("eth_getCode", &redact))?;
        if code.is_empty() {
            return Err(Error::Config {
                field: "contract",
                rule: format!(
                    "no contract code at {} on chain {chain_id}",
                    config.contract
                ),
            });
        }
        let signer = WalletAddress::new(config.signer.address()).map_err(Error::integrity)?;
        let mut ledger = Self {
            contract: config.contract,
            signer,
            chain_id,
            nonce: Mutex::new(None),
            in_flight: nonces::InFlightMap::default(),
            log_span: AtomicU64::new(config.log_ranges.initial_span.max(1)),
            log_streak: AtomicU32::new(0),
            provider,
            redact,
            wallet: EthereumWallet::from(config.signer.signer().clone()),
            config,
            deployment_block: 0,
        };
        // Code at the address is not enough: it must be HealthLedger, at the
        // interface version this adapter speaks.
        let not_healthledger = |why: String| Error::Config {
            field: "contract",
            rule: format!(
                "the contract at {} on chain {chain_id} is not HealthLedger ({INTERFACE}): {why}",
                ledger.contract
            ),
        };
        match ledger.call(HealthLedger::INTERFACECall {}).await {
            Ok(version) if version == INTERFACE => {}
            Ok(version) => return Err(not_healthledger(format!("it reports {version:?}"))),
            Err(Error::Integrity(_) | Error::Rpc { .. }) => {
                return Err(not_healthledger("it has no INTERFACE() getter".into()));
            }
            Err(e) => return Err(e),
        }
        ledger.deployment_block = ledger.call(HealthLedger::deploymentBlockCall {}).await?;
        Ok(ledger)
    }

    /// The contract address.
    pub fn contract(&self) -> Address {
        self.contract
    }

    /// The chain id the node reported.
    pub fn chain_id(&self) -> u64 {
        self.chain_id
    }

    /// Blocks per `eth_getLogs` request the adapter currently uses.
    pub fn log_span(&self) -> u64 {
        self.log_span.load(Ordering::Relaxed)
    }

    /// Has the wallet of `key` consent to `action` until `deadline`: the
    /// EIP-712 signature the contract checks, ready to relay.
    pub async fn consent(
        &self,
        key: &SignerKey,
        action: &ConsentAction,
        deadline: Timestamp,
    ) -> LedgerResult<Authorization> {
        let digest = self.signing_digest(action, deadline).await?;
        let signature = key
            .signer()
            .sign_hash_sync(&digest)
            .map_err(|e| LedgerError::Other(format!("signing a digest failed: {e}").into()))?;
        Ok(Authorization::Relayed(RelayedSignature {
            signature,
            deadline,
        }))
    }
}
