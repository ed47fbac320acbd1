//! [`EvmLedger`]: the [`LedgerPort`] over the HealthLedger contract on any
//! EVM JSON-RPC node.
//!
//! Writes are simulated first (`eth_estimateGas`, which also yields the
//! contract's custom error when the call would revert), then signed locally
//! with a nonce from the adapter's own counter (so concurrent writes from one
//! key never collide or leave gaps), sent as raw bytes (resent unchanged on
//! transport failures), and awaited by polling the receipt
//! until the configured number of confirmations. Reads are `eth_call`s at the
//! latest block. Every RPC is retried on rate limits, timeouts and dropped
//! connections; `eth_getLogs` ranges also adapt to the provider's limits.

use std::{
    fmt,
    sync::atomic::{AtomicU32, AtomicU64, Ordering},
    time::{Duration, Instant},
};

use alloy::{
    eips::BlockNumberOrTag,
    eips::eip2718::Encodable2718 as _,
    network::{EthereumWallet, NetworkTransactionBuilder as _, TransactionBuilder as _},
    primitives::{Address, B256, Bytes, U256, keccak256},
    providers::{DynProvider, Provider, ProviderBuilder},
    rpc::{
        client::RpcClient,
        types::{Filter, TransactionRequest},
    },
    signers::SignerSync as _,
    sol_types::{SolCall, SolStruct as _, eip712_domain},
    transports::{
        TransportError,
        http::{Http, reqwest},
    },
};
use async_trait::async_trait;
use healthledger_core::{
    AccessGrant, Authorization, BlockRef, ChainEvent, ConsentAction, HhNumber, LedgerError,
    LedgerPort, LedgerResult, MedicalRecord, NewRecord, Profile, RecordId, RelayedSignature, Role,
    Timestamp, TxReceipt, WalletAddress,
};
use tokio::sync::Mutex;

use crate::{
    Error, Result,
    bindings::{self, HealthLedger, HealthLedger::HealthLedgerErrors},
    config::{EvmLedgerConfig, Redactor, SignerKey, redact_url},
    convert,
    rpc::{RetryError, error_text, is_transient, is_transport_failure, range_limit, retry},
};

/// How the node took a signed transaction.
enum Submitted {
    /// It has it (pending or mined).
    Taken,
    /// It refused the nonce as used and does not have our transaction.
    StaleNonce(TransportError),
    /// It refused the transaction for another reason.
    Refused(TransportError),
    /// It could not be told, and does not know it.
    Unknown {
        /// Sends tried.
        attempts: u32,
        /// The last failure, scrubbed.
        last: String,
    },
}

/// Largest page the adapter asks the contract for in one `eth_call`.
const PAGE: u64 = 1_000;

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
    /// Blocks per `eth_getLogs` request right now.
    log_span: AtomicU64,
    /// Successful `eth_getLogs` requests in a row since the last shrink.
    log_streak: AtomicU32,
    /// Scrubs the RPC URL's secrets out of every rendered transport error.
    redact: Redactor,
    /// Signs transactions locally, so their hashes are known before sending.
    wallet: EthereumWallet,
}

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
        Ok(Self {
            contract: config.contract,
            signer,
            chain_id,
            nonce: Mutex::new(None),
            log_span: AtomicU64::new(config.log_ranges.initial_span.max(1)),
            log_streak: AtomicU32::new(0),
            provider,
            redact,
            wallet: EthereumWallet::from(config.signer.signer().clone()),
            config,
        })
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

    // ----------------------------------------------------------------- reads

    async fn call<C: SolCall>(&self, call: C) -> Result<C::Return> {
        let tx = TransactionRequest::default()
            .with_to(self.contract)
            .with_input(call.abi_encode());
        let out = retry(&self.config.retry, &self.redact, || {
            self.provider.call(tx.clone())
        })
        .await
        .map_err(|e| self.call_error(C::SIGNATURE, e))?;
        C::abi_decode_returns(&out).map_err(|e| {
            Error::Integrity(format!(
                "the return data of {} does not decode: {e}",
                C::SIGNATURE
            ))
        })
    }

    fn call_error(&self, call: &'static str, e: RetryError) -> Error {
        if let RetryError::Fatal(t) = &e
            && let Some(decoded) = t
                .as_error_resp()
                .and_then(|p| p.as_decoded_interface_error::<HealthLedgerErrors>())
        {
            return Error::revert(call, &decoded);
        }
        e.into_error("eth_call", &self.redact)
    }

    async fn wallet_of(&self, hh: HhNumber) -> Result<Address> {
        let w = self.call(HealthLedger::walletOfCall(hh.get())).await?;
        if w.is_zero() {
            return Err(Error::revert(
                "walletOf",
                &HealthLedgerErrors::NotRegistered(HealthLedger::NotRegistered { hh: hh.get() }),
            ));
        }
        Ok(w)
    }

    async fn block_ref(&self, tag: BlockNumberOrTag) -> Result<Option<BlockRef>> {
        self.block_ref_raw(tag)
            .await
            .map_err(|e| e.into_error("eth_getBlockByNumber", &self.redact))
    }

    async fn block_ref_raw(
        &self,
        tag: BlockNumberOrTag,
    ) -> std::result::Result<Option<BlockRef>, RetryError> {
        let block = retry(&self.config.retry, &self.redact, || {
            self.provider.get_block_by_number(tag).into_future()
        })
        .await?;
        Ok(block.map(|b| BlockRef {
            number: b.header.number,
            hash: b.header.hash,
            parent_hash: b.header.parent_hash,
        }))
    }

    /// The block `tag` names, or `None` when the node does not support the
    /// tag: it answers null, or refuses with JSON-RPC -32601 (method not
    /// found) or -32602 (invalid params). Other failures are errors.
    async fn tagged_block(&self, tag: BlockNumberOrTag) -> Result<Option<BlockRef>> {
        match self.block_ref_raw(tag).await {
            Ok(block) => Ok(block),
            Err(RetryError::Fatal(e))
                if e.as_error_resp()
                    .is_some_and(|p| p.code == -32601 || p.code == -32602) =>
            {
                tracing::debug!(%tag, code = ?e.as_error_resp().map(|p| p.code), "block tag unsupported by the node");
                Ok(None)
            }
            Err(e) => Err(e.into_error("eth_getBlockByNumber", &self.redact)),
        }
    }

    async fn head_number(&self) -> Result<u64> {
        retry(&self.config.retry, &self.redact, || {
            self.provider.get_block_number()
        })
        .await
        .map_err(|e| e.into_error("eth_blockNumber", &self.redact))
    }

    // ---------------------------------------------------------------- writes

    /// Simulates, signs with the next nonce, sends and awaits `call`.
    async fn send<C: SolCall>(&self, call: C) -> Result<TxReceipt> {
        let name = C::SIGNATURE;
        let mut tx = TransactionRequest::default()
            .with_from(self.signer.address())
            .with_to(self.contract)
            .with_input(call.abi_encode());
        let gas = retry(&self.config.retry, &self.redact, || {
            self.provider.estimate_gas(tx.clone())
        })
        .await
        .map_err(|e| self.call_error(name, e))?;
        // Headroom: state can change between the estimate and inclusion.
        tx.set_gas_limit(gas.saturating_add(gas / 4).saturating_add(20_000));
        let fees = retry(&self.config.retry, &self.redact, || {
            self.provider.estimate_eip1559_fees()
        })
        .await
        .map_err(|e| e.into_error("eth_feeHistory", &self.redact))?;
        tx.set_max_fee_per_gas(fees.max_fee_per_gas);
        tx.set_max_priority_fee_per_gas(fees.max_priority_fee_per_gas);
        tx.set_chain_id(self.chain_id);

        // The nonce lock covers only signing and handing the transaction to
        // the node, so many writes are in flight at once while their nonces
        // stay gapless and in order. The transaction is signed here, so its
        // hash is known before the node hears of it, and a resend after a
        // lost answer is the same transaction, never a second one. The lock
        // stays held while a send is retried: until the node has nonce n, a
        // transaction with n + 1 would only wait in a gap.
        let hash = {
            let mut next = self.nonce.lock().await;
            let mut resynced = false;
            loop {
                let nonce = match *next {
                    Some(n) => n,
                    None => retry(&self.config.retry, &self.redact, || {
                        self.provider
                            .get_transaction_count(self.signer.address())
                            .pending()
                            .into_future()
                    })
                    .await
                    .map_err(|e| e.into_error("eth_getTransactionCount", &self.redact))?,
                };
                tx.set_nonce(nonce);
                let envelope = tx.clone().build(&self.wallet).await.map_err(|e| {
                    Error::Invalid(format!(
                        "signing the transaction calling {name} failed: {e}"
                    ))
                })?;
                let hash = *envelope.tx_hash();
                match self.submit(&envelope.encoded_2718(), hash).await {
                    Submitted::Taken => {
                        *next = Some(nonce + 1);
                        break hash;
                    }
                    // Another user of the same key made our nonce stale;
                    // one re-read and resend fixes that.
                    Submitted::StaleNonce(_) if !resynced => {
                        *next = None;
                        resynced = true;
                    }
                    Submitted::StaleNonce(e) | Submitted::Refused(e) => {
                        *next = None;
                        return Err(self.call_error(name, RetryError::Fatal(e)));
                    }
                    Submitted::Unknown { attempts, last } => {
                        // The node does not know it: the nonce is free again.
                        *next = None;
                        return Err(Error::SendFailed {
                            call: name,
                            tx: hash,
                            attempts,
                            last,
                        });
                    }
                }
            }
        };
        self.await_receipt(name, hash, tx).await
    }

    /// Hands the signed transaction `raw` (hash `hash`) to the node,
    /// resending the same bytes on rate limits, timeouts and dropped
    /// connections. A node that already has it says so ("already known",
    /// or "nonce too low" once it is mined); before giving up, the node is
    /// asked whether it has the transaction after all.
    async fn submit(&self, raw: &[u8], hash: B256) -> Submitted {
        let policy = &self.config.retry;
        let max = policy.max_attempts.max(1);
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let e = match self.provider.send_raw_transaction(raw).await {
                Ok(_) => return Submitted::Taken,
                Err(e) => e,
            };
            let text = error_text(&e).to_ascii_lowercase();
            if ["already known", "already imported", "known transaction"]
                .iter()
                .any(|m| text.contains(m))
            {
                return Submitted::Taken;
            }
            if text.contains("nonce too low") {
                return if self.node_has(hash).await {
                    Submitted::Taken
                } else {
                    Submitted::StaleNonce(e)
                };
            }
            if !is_transport_failure(&e) {
                return Submitted::Refused(e);
            }
            if is_transient(&e) && attempt < max {
                let wait = policy.backoff(attempt);
                tracing::debug!(
                    attempt,
                    ?wait,
                    %hash,
                    error = %self.redact.display(&e),
                    "sending a transaction failed in transport, resending it"
                );
                tokio::time::sleep(wait).await;
                continue;
            }
            if self.node_has(hash).await {
                return Submitted::Taken;
            }
            return Submitted::Unknown {
                attempts: attempt,
                last: self.redact.display(&e),
            };
        }
    }

    /// Whether the node knows the transaction `hash` (pending or mined);
    /// `false` also when it cannot be asked.
    async fn node_has(&self, hash: B256) -> bool {
        matches!(
            retry(&self.config.retry, &self.redact, || {
                self.provider.get_transaction_by_hash(hash)
            })
            .await,
            Ok(Some(_))
        )
    }

    async fn await_receipt(
        &self,
        name: &'static str,
        hash: B256,
        tx: TransactionRequest,
    ) -> Result<TxReceipt> {
        let started = Instant::now();
        let confirmations = self.config.confirmations;
        // Polls back off (doubling up to 16 intervals) so that hundreds of
        // writes in flight do not flood the node with receipt requests.
        let mut wait = self.config.poll_interval;
        let max_wait = self.config.poll_interval.saturating_mul(16);
        loop {
            let receipt = retry(&self.config.retry, &self.redact, || {
                self.provider.get_transaction_receipt(hash)
            })
            .await
            .map_err(|e| match e {
                RetryError::Exhausted { attempts, last } => Error::Unconfirmed {
                    call: name,
                    tx: hash,
                    reason: format!(
                        "eth_getTransactionReceipt still failing after {attempts} attempts: {last}"
                    ),
                },
                fatal => fatal.into_error("eth_getTransactionReceipt", &self.redact),
            })?;
            if let Some(r) = receipt {
                let (Some(block_number), Some(block_hash)) = (r.block_number, r.block_hash) else {
                    return Err(Error::Integrity(format!(
                        "receipt of {hash} names no block"
                    )));
                };
                let confirmed = confirmations <= 1
                    || self.head_number().await? + 1 >= block_number + confirmations;
                if confirmed {
                    if !r.status() {
                        return Err(self.explain_revert(name, hash, block_number, tx).await);
                    }
                    return Ok(TxReceipt {
                        tx_hash: hash,
                        block_number,
                        block_hash,
                    });
                }
            }
            if started.elapsed() > self.config.receipt_timeout {
                return Err(Error::ReceiptTimeout {
                    tx: hash,
                    confirmations,
                    waited_secs: started.elapsed().as_secs(),
                });
            }
            tokio::time::sleep(wait).await;
            wait = wait.saturating_mul(2).min(max_wait);
        }
    }

    /// A transaction reverted on chain: replays it at the latest block to
    /// name the contract's reason, else reports the revert as such.
    async fn explain_revert(
        &self,
        name: &'static str,
        hash: B256,
        block: u64,
        mut tx: TransactionRequest,
    ) -> Error {
        tx.nonce = None;
        match self.provider.call(tx).await {
            Err(e) => match self.call_error(name, RetryError::Fatal(e)) {
                revert @ Error::Revert { .. } => revert,
                _ => Error::RevertedOnChain {
                    call: name,
                    tx: hash,
                    block,
                },
            },
            Ok(_) => Error::RevertedOnChain {
                call: name,
                tx: hash,
                block,
            },
        }
    }

    // ---------------------------------------------------------------- events

    /// Logs of the contract in `from..=to`, fetched in spans that adapt to the
    /// provider: a range refusal shrinks the span (to the provider's
    /// suggestion, else by half) and retries; successes in a row grow it back.
    async fn logs(&self, from: u64, to: u64) -> Result<Vec<alloy::rpc::types::Log>> {
        let policy = self.config.log_ranges;
        let mut out = Vec::new();
        let mut cur = from;
        while cur <= to {
            let span = self.log_span.load(Ordering::Relaxed).max(1);
            let end = to.min(cur.saturating_add(span - 1));
            let filter = Filter::new()
                .address(self.contract)
                .from_block(cur)
                .to_block(end);
            match retry(&self.config.retry, &self.redact, || {
                self.provider.get_logs(&filter)
            })
            .await
            {
                Ok(logs) => {
                    out.extend(logs);
                    cur = end + 1;
                    let streak = self.log_streak.fetch_add(1, Ordering::Relaxed) + 1;
                    if streak >= policy.grow_after && span < policy.max_span {
                        let grown = span.saturating_mul(2).min(policy.max_span.max(1));
                        self.log_span.store(grown, Ordering::Relaxed);
                        self.log_streak.store(0, Ordering::Relaxed);
                    }
                }
                Err(RetryError::Fatal(e)) => {
                    let Some(limit) = range_limit(&e) else {
                        return Err(Error::rpc("eth_getLogs", &e, &self.redact));
                    };
                    let asked = end - cur + 1;
                    if asked <= 1 {
                        return Err(Error::LogRangeUnsplittable {
                            block: cur,
                            message: self.redact.display(&e),
                        });
                    }
                    let shrunk = limit
                        .suggested_span
                        .filter(|s| *s < asked)
                        .unwrap_or(asked / 2)
                        .max(1);
                    tracing::debug!(
                        from = cur,
                        to = end,
                        shrunk,
                        "eth_getLogs range refused, splitting"
                    );
                    self.log_span.store(shrunk, Ordering::Relaxed);
                    self.log_streak.store(0, Ordering::Relaxed);
                }
                Err(exhausted) => return Err(exhausted.into_error("eth_getLogs", &self.redact)),
            }
        }
        Ok(out)
    }

    // ------------------------------------------------------------- signing

    async fn digest(&self, action: &ConsentAction, deadline: Timestamp) -> Result<B256> {
        let domain = eip712_domain! {
            name: "HealthLedger",
            version: "1",
            chain_id: self.chain_id,
            verifying_contract: self.contract,
        };
        let nonce_of =
            |wallet: Address| async move { self.call(HealthLedger::noncesCall(wallet)).await };
        Ok(match action {
            ConsentAction::UpdateProfile(p) => {
                let nonce = nonce_of(self.wallet_of(p.hh()).await?).await?;
                bindings::UpdateProfile {
                    hh: p.hh().get(),
                    role: convert::role_code(p.role()),
                    profileHash: keccak256(convert::encode_profile(p)),
                    nonce,
                    deadline: deadline.0,
                }
                .eip712_signing_hash(&domain)
            }
            ConsentAction::CreateRecord(r) => {
                let nonce = nonce_of(self.wallet_of(r.creator).await?).await?;
                bindings::CreateRecord {
                    patientHH: r.id.patient().get(),
                    recordId: r.id.serial(),
                    creatorHH: r.creator.get(),
                    contentHash: keccak256(convert::encode_content(&r.cid, &r.meta)),
                    nonce,
                    deadline: deadline.0,
                }
                .eip712_signing_hash(&domain)
            }
            ConsentAction::GrantAccess {
                patient,
                grantee,
                expires_at,
            } => {
                let nonce = nonce_of(self.wallet_of(*patient).await?).await?;
                bindings::GrantAccess {
                    patientHH: patient.get(),
                    granteeHH: grantee.get(),
                    expiresAt: expires_at.map_or(0, |e| e.0),
                    nonce,
                    deadline: deadline.0,
                }
                .eip712_signing_hash(&domain)
            }
            ConsentAction::RevokeAccess { patient, grantee } => {
                let nonce = nonce_of(self.wallet_of(*patient).await?).await?;
                bindings::RevokeAccess {
                    patientHH: patient.get(),
                    granteeHH: grantee.get(),
                    nonce,
                    deadline: deadline.0,
                }
                .eip712_signing_hash(&domain)
            }
        })
    }
}

/// The `(deadline, signature)` arguments of a consent-requiring call: both
/// empty when the sender itself consents.
fn consent_args(auth: &Authorization) -> (u64, Bytes) {
    match auth {
        Authorization::Signer => (0, Bytes::new()),
        Authorization::Relayed(r) => (r.deadline.0, Bytes::from(r.signature.as_bytes().to_vec())),
    }
}

fn to_u64(v: U256, what: &str) -> Result<u64> {
    u64::try_from(v).map_err(|_| Error::Integrity(format!("{what} {v} does not fit in 64 bits")))
}

#[async_trait]
impl LedgerPort for EvmLedger {
    fn signer(&self) -> WalletAddress {
        self.signer
    }

    async fn register(&self, profile: &Profile) -> LedgerResult<TxReceipt> {
        Ok(match profile {
            Profile::Patient(p) => {
                self.send(HealthLedger::registerPatientCall {
                    p: convert::patient_to_abi(p),
                })
                .await?
            }
            Profile::Doctor(d) => {
                self.send(HealthLedger::registerDoctorCall {
                    d: convert::doctor_to_abi(d),
                })
                .await?
            }
            Profile::DiagnosticCenter(c) => {
                self.send(HealthLedger::registerDiagnosticCenterCall {
                    c: convert::center_to_abi(c),
                })
                .await?
            }
        })
    }

    async fn update_profile(
        &self,
        profile: &Profile,
        auth: &Authorization,
    ) -> LedgerResult<TxReceipt> {
        let (deadline, signature) = consent_args(auth);
        Ok(match profile {
            Profile::Patient(p) => {
                self.send(HealthLedger::updatePatientCall {
                    p: convert::patient_to_abi(p),
                    deadline,
                    signature,
                })
                .await?
            }
            Profile::Doctor(d) => {
                self.send(HealthLedger::updateDoctorCall {
                    d: convert::doctor_to_abi(d),
                    deadline,
                    signature,
                })
                .await?
            }
            Profile::DiagnosticCenter(c) => {
                self.send(HealthLedger::updateDiagnosticCenterCall {
                    c: convert::center_to_abi(c),
                    deadline,
                    signature,
                })
                .await?
            }
        })
    }

    async fn create_record(
        &self,
        record: &NewRecord,
        auth: &Authorization,
    ) -> LedgerResult<TxReceipt> {
        let (deadline, signature) = consent_args(auth);
        Ok(self
            .send(HealthLedger::createRecordCall {
                patientHH: record.id.patient().get(),
                recordId: record.id.serial(),
                creatorHH: record.creator.get(),
                cid: Bytes::from(record.cid.to_bytes()),
                meta: convert::meta_to_abi(&record.meta),
                deadline,
                signature,
            })
            .await?)
    }

    async fn grant_access(
        &self,
        patient: HhNumber,
        grantee: HhNumber,
        expires_at: Option<Timestamp>,
        auth: &Authorization,
    ) -> LedgerResult<TxReceipt> {
        // The contract reads an expiry of 0 as "never expires", so
        // `Some(Timestamp(0))` (a grant meant to be already expired) must be
        // refused here: sent as 0 it would become permanent.
        if expires_at == Some(Timestamp(0)) {
            return Err(LedgerError::Invalid(format!(
                "expiry {} for the grant from {patient} to {grantee} is not after the block time",
                Timestamp(0)
            )));
        }
        let (deadline, signature) = consent_args(auth);
        Ok(self
            .send(HealthLedger::grantAccessCall {
                patientHH: patient.get(),
                granteeHH: grantee.get(),
                expiresAt: expires_at.map_or(0, |e| e.0),
                deadline,
                signature,
            })
            .await?)
    }

    async fn revoke_access(
        &self,
        patient: HhNumber,
        grantee: HhNumber,
        auth: &Authorization,
    ) -> LedgerResult<TxReceipt> {
        let (deadline, signature) = consent_args(auth);
        Ok(self
            .send(HealthLedger::revokeAccessCall {
                patientHH: patient.get(),
                granteeHH: grantee.get(),
                deadline,
                signature,
            })
            .await?)
    }

    async fn anchor_audit(&self, digest: B256, last_seq: u64) -> LedgerResult<TxReceipt> {
        Ok(self
            .send(HealthLedger::anchorAuditCall {
                digest,
                lastSeq: last_seq,
            })
            .await?)
    }

    async fn signing_digest(
        &self,
        action: &ConsentAction,
        deadline: Timestamp,
    ) -> LedgerResult<B256> {
        Ok(self.digest(action, deadline).await?)
    }

    async fn profile(&self, hh: HhNumber, role: Role) -> LedgerResult<Option<Profile>> {
        let code = self.call(HealthLedger::roleOfCall(hh.get())).await?;
        if code != convert::role_code(role) {
            return Ok(None);
        }
        let profile = match role {
            Role::Patient => Profile::Patient(convert::patient_from_abi(
                &self
                    .call(HealthLedger::getPatientCall { hh: hh.get() })
                    .await?,
            )?),
            Role::Doctor => Profile::Doctor(convert::doctor_from_abi(
                &self
                    .call(HealthLedger::getDoctorCall { hh: hh.get() })
                    .await?,
            )?),
            Role::DiagnosticCenter => Profile::DiagnosticCenter(convert::center_from_abi(
                &self
                    .call(HealthLedger::getDiagnosticCenterCall { hh: hh.get() })
                    .await?,
            )?),
        };
        Ok(Some(profile))
    }

    async fn account_of(&self, wallet: WalletAddress) -> LedgerResult<Option<(Role, HhNumber)>> {
        let r = self
            .call(HealthLedger::accountOfCall {
                wallet: wallet.address(),
            })
            .await?;
        Ok(match convert::role_from_code(r.role)? {
            Some(role) => Some((role, convert::hh(r.hh)?)),
            None => None,
        })
    }

    async fn record(&self, id: RecordId) -> LedgerResult<Option<MedicalRecord>> {
        let r = self
            .call(HealthLedger::getRecordCall {
                patientHH: id.patient().get(),
                recordId: id.serial(),
            })
            .await?;
        if r.creatorHH == 0 {
            return Ok(None);
        }
        Ok(Some(convert::record_from_abi(&r)?))
    }

    async fn grant(
        &self,
        patient: HhNumber,
        grantee: HhNumber,
    ) -> LedgerResult<Option<AccessGrant>> {
        let g = self
            .call(HealthLedger::getGrantCall {
                patientHH: patient.get(),
                granteeHH: grantee.get(),
            })
            .await?;
        Ok((g.grantedAt != 0).then(|| convert::grant_from_abi(patient, grantee, &g)))
    }

    async fn has_access(&self, patient: HhNumber, grantee: HhNumber) -> LedgerResult<bool> {
        Ok(self
            .call(HealthLedger::hasAccessCall {
                patientHH: patient.get(),
                granteeHH: grantee.get(),
            })
            .await?)
    }

    async fn can_read_record(&self, id: RecordId, reader: HhNumber) -> LedgerResult<bool> {
        Ok(self
            .call(HealthLedger::canReadRecordCall {
                patientHH: id.patient().get(),
                recordId: id.serial(),
                readerHH: reader.get(),
            })
            .await?)
    }

    async fn registered_count(&self, role: Role) -> LedgerResult<u64> {
        let n = self
            .call(HealthLedger::registeredCountCall {
                role: convert::role_code(role),
            })
            .await?;
        Ok(to_u64(n, "registered count")?)
    }

    async fn registered(&self, role: Role, offset: u64, limit: u64) -> LedgerResult<Vec<HhNumber>> {
        let mut out = Vec::new();
        let mut at = offset;
        let mut left = limit;
        while left > 0 {
            let want = left.min(PAGE);
            let page = self
                .call(HealthLedger::registeredPageCall {
                    role: convert::role_code(role),
                    offset: U256::from(at),
                    limit: U256::from(want),
                })
                .await?;
            let got = page.len() as u64;
            for hh in page {
                out.push(convert::hh(hh)?);
            }
            if got < want {
                break;
            }
            at += got;
            left -= got;
        }
        Ok(out)
    }

    async fn record_count(&self) -> LedgerResult<u64> {
        let n = self.call(HealthLedger::recordCountCall {}).await?;
        Ok(to_u64(n, "record count")?)
    }

    async fn record_ids(&self, offset: u64, limit: u64) -> LedgerResult<Vec<RecordId>> {
        let mut out = Vec::new();
        let mut at = offset;
        let mut left = limit;
        while left > 0 {
            let want = left.min(PAGE);
            let page = self
                .call(HealthLedger::recordPageCall {
                    offset: U256::from(at),
                    limit: U256::from(want),
                })
                .await?;
            let got = page.patientHHs.len() as u64;
            for (p, id) in page.patientHHs.iter().zip(&page.recordIds) {
                out.push(RecordId::new(convert::hh(*p)?, *id));
            }
            if got < want {
                break;
            }
            at += got;
            left -= got;
        }
        Ok(out)
    }

    async fn grantees(&self, patient: HhNumber) -> LedgerResult<Vec<HhNumber>> {
        let list = self
            .call(HealthLedger::granteesCall {
                patientHH: patient.get(),
            })
            .await?;
        Ok(list
            .into_iter()
            .map(convert::hh)
            .collect::<Result<Vec<_>>>()?)
    }

    async fn events(&self, from: u64, to: u64) -> LedgerResult<Vec<ChainEvent>> {
        if from > to {
            return Err(LedgerError::Invalid(format!(
                "block range {from}..={to} is empty: from is above to"
            )));
        }
        let head = self.head_number().await?;
        if from > head {
            return Ok(Vec::new());
        }
        let logs = self.logs(from, to.min(head)).await?;
        let mut events = logs
            .iter()
            .map(convert::chain_event)
            .collect::<Result<Vec<_>>>()?;
        events.sort_by_key(|e| (e.at.block_number, e.at.log_index));
        Ok(events)
    }

    async fn head(&self) -> LedgerResult<BlockRef> {
        self.block_ref(BlockNumberOrTag::Latest)
            .await?
            .ok_or_else(|| LedgerError::Unavailable("the node returned no latest block".into()))
    }

    async fn finalized(&self) -> LedgerResult<BlockRef> {
        // The `finalized` tag, else `safe`, where the node supports them (it
        // answers null or -32601/-32602 where not); else the configured depth
        // below the head. Any other failure is an error, not a fallback.
        for tag in [BlockNumberOrTag::Finalized, BlockNumberOrTag::Safe] {
            if let Some(b) = self.tagged_block(tag).await? {
                return Ok(b);
            }
        }
        let head = self.head().await?;
        let n = head.number.saturating_sub(self.config.finality_depth);
        self.block_ref(BlockNumberOrTag::Number(n))
            .await?
            .ok_or_else(|| LedgerError::Unavailable(format!("block {n} is missing")))
    }

    async fn block(&self, number: u64) -> LedgerResult<Option<BlockRef>> {
        Ok(self.block_ref(BlockNumberOrTag::Number(number)).await?)
    }
}
