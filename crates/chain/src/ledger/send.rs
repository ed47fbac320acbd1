//! Writes: simulation, local signing with the adapter's nonce counter,
//! sending (resent byte for byte on transport failures) and receipts.
//!
//! Hand-written rather than alloy's fillers and `PendingTransactionBuilder`,
//! because it does more than they do: it signs before sending so the hash
//! is known and a resend is the same transaction, classifies transport
//! failures against "already known" and "nonce too low" answers, frees the
//! nonce of a transaction the node never got, rebroadcasts or replaces
//! (same nonce, higher fees) a transaction the node dropped later or holds
//! without mining, and repairs a gap the node left below one it holds (see
//! [`super::nonces`]).

use std::time::Instant;

use alloy::{
    eips::eip2718::Encodable2718 as _,
    network::{NetworkTransactionBuilder as _, TransactionBuilder as _},
    primitives::B256,
    providers::Provider,
    rpc::types::TransactionRequest,
    sol_types::SolCall,
    transports::TransportError,
};
use healthledger_core::TxReceipt;

use crate::{
    Error, Result,
    rpc::{RetryError, error_text, is_transient, is_transport_failure, retry},
};

use super::EvmLedger;

/// How the node took a signed transaction.
pub(super) enum Submitted {
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

/// One signed version of a transaction handed to the node.
#[derive(Clone)]
pub(super) struct Sent {
    /// Its hash.
    pub(super) hash: B256,
    /// Its signed bytes, as sent.
    pub(super) raw: Vec<u8>,
}

impl EvmLedger {
    /// Simulates, signs with the next nonce, sends and awaits `call`.
    pub(super) async fn send<C: SolCall>(&self, call: C) -> Result<TxReceipt> {
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
        let (sent, flight) = {
            let mut next = self.nonce.lock().await;
            // With no write in flight the node's pending nonce is exactly
            // the next one; trusting the counter instead would queue this
            // write behind a gap if the node lost mined transactions (a
            // reorg that dropped them).
            if self.nothing_in_flight() {
                *next = None;
            }
            let mut resynced = false;
            loop {
                let nonce = match *next {
                    Some(n) => n,
                    None => self.pending_nonce().await?,
                };
                tx.set_nonce(nonce);
                let envelope = tx.clone().build(&self.wallet).await.map_err(|e| {
                    Error::Invalid(format!(
                        "signing the transaction calling {name} failed: {e}"
                    ))
                })?;
                let hash = *envelope.tx_hash();
                let raw = envelope.encoded_2718();
                match self.submit(&raw, hash).await {
                    Submitted::Taken => {
                        *next = Some(nonce + 1);
                        let sent = Sent { hash, raw };
                        let flight = self.track(nonce, &sent);
                        break (sent, flight);
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
        self.await_receipt(name, sent, tx, &flight).await
    }

    /// Hands the signed transaction `raw` (hash `hash`) to the node,
    /// resending the same bytes on rate limits, timeouts and dropped
    /// connections. A node that already has it says so ("already known",
    /// or "nonce too low" once it is mined); before giving up, the node is
    /// asked whether it has the transaction after all.
    pub(super) async fn submit(&self, raw: &[u8], hash: B256) -> Submitted {
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

    /// Polls for the receipt of `sent` until the configured confirmations.
    ///
    /// A node may drop a pending transaction (a restart, a full pool, a
    /// reorg, a fee spike); the adapter's nonce counter is already past it,
    /// so without help every later write from the key would wait behind the
    /// gap until a restart. So when no receipt has come for
    /// `rebroadcast_after`, the node is asked whether it still has the
    /// transaction: if not, the same bytes are sent again; if it is dropped
    /// again, or the node refuses the bytes, a replacement with the same
    /// nonce and fees raised by a quarter (enough for any node's
    /// replacement rule) is signed and sent. Every version sent is watched
    /// for a receipt, since any one of them may be mined. If the node still
    /// has it but does not mine it, a gap below it is filled
    /// ([`Self::repair_gap_below`]); with no gap below it, it is replaced
    /// the same way (its fee cap fell below the base fee, or the miner
    /// passed it over).
    async fn await_receipt(
        &self,
        name: &'static str,
        sent: Sent,
        mut tx: TransactionRequest,
        flight: &super::nonces::InFlight<'_>,
    ) -> Result<TxReceipt> {
        let started = Instant::now();
        let confirmations = self.config.confirmations;
        // Polls back off (doubling up to 16 intervals) so that hundreds of
        // writes in flight do not flood the node with receipt requests.
        let mut wait = self.config.poll_interval;
        let max_wait = self.config.poll_interval.saturating_mul(16);
        let mut versions = vec![sent];
        let mut last_check = Instant::now();
        let mut drops = 0u32;
        loop {
            for version in &versions {
                let hash = version.hash;
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
                let Some(r) = receipt else { continue };
                let (Some(block_number), Some(block_hash)) = (r.block_number, r.block_hash) else {
                    return Err(Error::Integrity(format!(
                        "receipt of {hash} names no block"
                    )));
                };
                let confirmed = confirmations <= 1
                    || self.head_number().await? + 1 >= block_number + confirmations;
                if !confirmed {
                    break;
                }
                if !r.status() {
                    return Err(self.explain_revert(name, hash, block_number, tx).await);
                }
                return Ok(TxReceipt {
                    tx_hash: hash,
                    block_number,
                    block_hash,
                });
            }
            if started.elapsed() > self.config.receipt_timeout {
                self.log_stall(&versions, &tx, flight.nonce()).await;
                return Err(Error::ReceiptTimeout {
                    tx: versions[0].hash,
                    confirmations,
                    waited_secs: started.elapsed().as_secs(),
                });
            }
            if last_check.elapsed() >= self.config.rebroadcast_after {
                last_check = Instant::now();
                if self.any_known(&versions).await {
                    if !self.repair_gap_below(flight.nonce()).await? {
                        // Held, ready to run and still not mined: its fee
                        // cap fell below the base fee, or the node's miner
                        // passed it over (anvil's automine can, with many
                        // transactions from one key arriving at once). A
                        // replacement with raised fees is what wallets do
                        // to speed a transaction up, and its arrival wakes
                        // a miner that missed the first one. A refused
                        // replacement changes nothing: the held version may
                        // still be mined, so the write keeps waiting.
                        match self.replace(name, &mut tx).await {
                            Ok(replacement) => {
                                tracing::warn!(
                                    held = %versions[versions.len() - 1].hash,
                                    replacement = %replacement.hash,
                                    "the node holds a sent transaction without mining it; sent a replacement with higher fees"
                                );
                                self.retrack(flight.nonce(), &replacement);
                                versions.push(replacement);
                            }
                            Err(e) => tracing::debug!(
                                error = %e,
                                "a replacement for a held transaction was not taken; waiting for the held one"
                            ),
                        }
                    }
                } else if let Some(latest) = versions.last() {
                    drops += 1;
                    let (raw, hash) = (latest.raw.clone(), latest.hash);
                    let resent =
                        drops == 1 && matches!(self.submit(&raw, hash).await, Submitted::Taken);
                    if resent {
                        tracing::warn!(%hash, "the node dropped a sent transaction; rebroadcast it");
                    } else {
                        let replacement = self.replace(name, &mut tx).await?;
                        tracing::warn!(
                            dropped = %hash,
                            replacement = %replacement.hash,
                            "the node dropped a sent transaction again or refused it; sent a replacement with higher fees"
                        );
                        self.retrack(flight.nonce(), &replacement);
                        versions.push(replacement);
                    }
                }
            }
            tokio::time::sleep(wait).await;
            wait = wait.saturating_mul(2).min(max_wait);
        }
    }

    /// Says, when a write gives up waiting, what the node made of it: its
    /// pending nonce against the write's, the fee cap against the base
    /// fee, and whether it holds any version. Costs requests only then.
    async fn log_stall(&self, versions: &[Sent], tx: &TransactionRequest, nonce: u64) {
        let pending = self.pending_nonce().await.ok();
        let base_fee = self
            .provider
            .get_block_by_number(alloy::eips::BlockNumberOrTag::Latest)
            .await
            .ok()
            .flatten()
            .and_then(|b| b.header.base_fee_per_gas);
        let held = self.any_known(versions).await;
        tracing::warn!(
            nonce,
            ?pending,
            max_fee_per_gas = ?tx.max_fee_per_gas,
            ?base_fee,
            held,
            versions = versions.len(),
            "no receipt for a sent transaction within the receipt timeout"
        );
    }

    /// Whether the node knows any version of the transaction.
    async fn any_known(&self, versions: &[Sent]) -> bool {
        for v in versions {
            if self.node_has(v.hash).await {
                return true;
            }
        }
        false
    }

    /// Signs `tx` again with its nonce and fees raised by a quarter (enough
    /// for any node's replacement rule), or to the node's current estimate
    /// where that is higher (the base fee rose past the old cap), and sends
    /// it.
    async fn replace(&self, name: &'static str, tx: &mut TransactionRequest) -> Result<Sent> {
        let now = retry(&self.config.retry, &self.redact, || {
            self.provider.estimate_eip1559_fees()
        })
        .await
        .map_err(|e| e.into_error("eth_feeHistory", &self.redact))?;
        let bump = |v: u128| v.saturating_add(v / 4).saturating_add(1);
        let fee = bump(tx.max_fee_per_gas.unwrap_or_default()).max(now.max_fee_per_gas);
        let tip =
            bump(tx.max_priority_fee_per_gas.unwrap_or_default()).max(now.max_priority_fee_per_gas);
        tx.set_max_fee_per_gas(fee);
        tx.set_max_priority_fee_per_gas(tip.min(fee));
        let envelope = tx.clone().build(&self.wallet).await.map_err(|e| {
            Error::Invalid(format!(
                "signing the replacement transaction calling {name} failed: {e}"
            ))
        })?;
        let hash = *envelope.tx_hash();
        let raw = envelope.encoded_2718();
        match self.submit(&raw, hash).await {
            Submitted::Taken => Ok(Sent { hash, raw }),
            Submitted::StaleNonce(e) | Submitted::Refused(e) => {
                Err(self.call_error(name, RetryError::Fatal(e)))
            }
            Submitted::Unknown { attempts, last } => Err(Error::SendFailed {
                call: name,
                tx: hash,
                attempts,
                last,
            }),
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
        match self.provider.call(tx).latest().await {
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
}
