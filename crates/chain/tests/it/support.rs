//! Test support: finding the pinned tools, spawning anvil on a random port,
//! deploying the contract and connecting adapters to it.

use std::path::PathBuf;

use alloy::{
    node_bindings::{Anvil, AnvilInstance},
    primitives::{Address, B256, U256},
    providers::{Provider, ProviderBuilder},
};
use async_trait::async_trait;
use healthledger_chain::{EvmLedger, EvmLedgerConfig, SignerKey};
use healthledger_core::{
    Timestamp,
    testing::{fixtures::TestWallet, ledger::ChainControl},
};

/// The pinned tools directory: `$HEALTHLEDGER_TOOLS`, else `<repo>/.tools`.
pub(crate) fn tools_dir() -> PathBuf {
    std::env::var_os("HEALTHLEDGER_TOOLS")
        .map(PathBuf::from)
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or_else(|| repo_root().join(".tools"))
}

/// The repository root.
pub(crate) fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("..")
}

/// The anvil binary, or a failure that says how to install it.
pub(crate) fn anvil_path() -> PathBuf {
    let path = tools_dir().join("bin").join("anvil");
    assert!(
        path.is_file(),
        "anvil is not installed at {}: run `cargo xtask setup` (it installs the pinned anvil into .tools/)",
        path.display()
    );
    path
}

/// A running anvil with the contract deployed by account 0 (admin and
/// registrar), and an adapter signing as account 0.
pub(crate) struct Node {
    pub(crate) anvil: AnvilInstance,
    pub(crate) contract: Address,
    pub(crate) ledger: EvmLedger,
}

impl Node {
    /// Spawns anvil on a random port and deploys the contract.
    pub(crate) async fn start() -> Self {
        Self::start_with(|c| c).await
    }

    /// Like [`Self::start`], with the adapter's config adjusted by `tune`.
    pub(crate) async fn start_with(tune: impl FnOnce(EvmLedgerConfig) -> EvmLedgerConfig) -> Self {
        let anvil = Anvil::at(anvil_path())
            .try_spawn()
            .unwrap_or_else(|e| panic!("anvil failed to start: {e}; run `cargo xtask setup`"));
        let key = Self::account_key(&anvil, 0);
        let contract = EvmLedger::deploy(&anvil.endpoint(), &key)
            .await
            .expect("deploy HealthLedger");
        // anvil serves WebSocket on its HTTP port: new heads are pushed.
        let mut config = EvmLedgerConfig::new(anvil.endpoint(), contract, key);
        config.ws_url = Some(anvil.ws_endpoint());
        let config = tune(config);
        let ledger = EvmLedger::connect(config).await.expect("connect adapter");
        Self {
            anvil,
            contract,
            ledger,
        }
    }

    /// The key of anvil's dev account `i`.
    pub(crate) fn account_key(anvil: &AnvilInstance, i: usize) -> SignerKey {
        let bytes = B256::from_slice(&anvil.keys()[i].to_bytes());
        SignerKey::from_bytes(&bytes).unwrap()
    }

    /// An adapter on the same contract that signs as `wallet` (funded first).
    pub(crate) async fn ledger_as(&self, wallet: &TestWallet) -> EvmLedger {
        self.fund(wallet.address().address()).await;
        let key = SignerKey::from_bytes(&wallet.private_key()).unwrap();
        EvmLedger::connect(EvmLedgerConfig::new(
            self.anvil.endpoint(),
            self.contract,
            key,
        ))
        .await
        .unwrap()
    }

    /// Gives `address` 100 ETH.
    pub(crate) async fn fund(&self, address: Address) {
        let provider = ProviderBuilder::new().connect_http(self.anvil.endpoint_url());
        let _: serde_json::Value = provider
            .raw_request(
                "anvil_setBalance".into(),
                (
                    address,
                    U256::from(100u64) * U256::from(10u64).pow(U256::from(18u64)),
                ),
            )
            .await
            .unwrap();
    }

    /// Moves the chain clock forward by `secs` and mines a block.
    pub(crate) async fn advance_time(&self, secs: u64) {
        let provider = ProviderBuilder::new().connect_http(self.anvil.endpoint_url());
        let _: serde_json::Value = provider
            .raw_request("evm_increaseTime".into(), (secs,))
            .await
            .unwrap();
        let _: serde_json::Value = provider.raw_request("evm_mine".into(), ()).await.unwrap();
    }

    /// The head block's timestamp.
    pub(crate) async fn now(&self) -> u64 {
        let provider = ProviderBuilder::new().connect_http(self.anvil.endpoint_url());
        let block = provider
            .get_block_by_number(alloy::eips::BlockNumberOrTag::Latest)
            .await
            .unwrap()
            .unwrap();
        block.header.timestamp
    }
}

/// anvil as the conformance suite's chain control: the head block's time,
/// `evm_mine` with an exact timestamp, and adapters signing as other
/// (funded) wallets.
#[async_trait]
impl ChainControl for Node {
    async fn head_time(&self) -> Timestamp {
        Timestamp(self.now().await)
    }

    async fn mine_at(&self, at: Timestamp) {
        let provider = ProviderBuilder::new().connect_http(self.anvil.endpoint_url());
        let _: serde_json::Value = provider
            .raw_request("evm_mine".into(), (at.0,))
            .await
            .unwrap();
        assert_eq!(self.now().await, at.0, "anvil mined at the requested time");
    }

    async fn as_wallet(&self, wallet: &TestWallet) -> Box<dyn healthledger_core::LedgerPort> {
        Box::new(self.ledger_as(wallet).await)
    }

    async fn set_automine(&self, on: bool) {
        let provider = ProviderBuilder::new().connect_http(self.anvil.endpoint_url());
        let _: serde_json::Value = provider
            .raw_request("evm_setAutomine".into(), (on,))
            .await
            .unwrap();
    }

    async fn mine_when_pending(&self, count: usize) {
        let provider = ProviderBuilder::new().connect_http(self.anvil.endpoint_url());
        for _ in 0..1_000 {
            let status: serde_json::Value = provider
                .raw_request("txpool_status".into(), ())
                .await
                .unwrap();
            let pending = status["pending"]
                .as_str()
                .and_then(|h| u64::from_str_radix(h.trim_start_matches("0x"), 16).ok())
                .or_else(|| status["pending"].as_u64())
                .unwrap_or(0);
            if pending >= count as u64 {
                let _: serde_json::Value =
                    provider.raw_request("evm_mine".into(), ()).await.unwrap();
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        panic!("{count} transactions never reached anvil's pool");
    }

    async fn set_next_block_time(&self, at: Timestamp) {
        let provider = ProviderBuilder::new().connect_http(self.anvil.endpoint_url());
        let _: serde_json::Value = provider
            .raw_request("evm_setNextBlockTimestamp".into(), (at.0,))
            .await
            .unwrap();
    }
}
