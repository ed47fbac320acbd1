//! The signer's nonces beyond the counter: which writes are in flight under
//! which nonce, and repairing a node that lost transactions below one it
//! still holds.
//!
//! The adapter counts nonces itself so that many writes are in flight at
//! once. The node can then fall behind that count: a reorg drops mined
//! transactions (anvil's `anvil_reorg` drops them for good; a real node puts
//! them back in its pool, or not, after a restart), or the node evicts a
//! pending one. Every later transaction then waits in a gap the node will
//! never fill by itself. Two repairs keep writes from stalling:
//!
//! - With nothing in flight, the node's pending nonce is exactly the next
//!   one, so a new write re-reads it instead of trusting the counter
//!   (one request per write that starts while no other is in flight).
//! - A write whose transaction the node holds without mining it looks for a
//!   gap below it ([`EvmLedger::repair_gap_below`]): each missing nonce
//!   that another write still waits for gets that write's own signed bytes
//!   again; one that no write waits for any more (its transaction was mined,
//!   reported, and then lost) gets a zero-value transfer to the signer
//!   itself, so the node can move on without running anyone's call twice.

use std::{
    collections::BTreeMap,
    sync::{Mutex, MutexGuard, PoisonError},
};

use alloy::{
    eips::eip2718::Encodable2718 as _,
    network::{NetworkTransactionBuilder as _, TransactionBuilder as _},
    primitives::{B256, U256},
    providers::Provider,
    rpc::types::TransactionRequest,
};

use super::{
    EvmLedger,
    send::{Sent, Submitted},
};
use crate::{Error, Result, rpc::retry};

/// The writes in flight: the latest signed version of each, by nonce.
pub(super) type InFlightMap = Mutex<BTreeMap<u64, Sent>>;

/// A nonce in flight; dropping it (the write returned, failed, or its
/// future was dropped) takes it out of the map.
pub(super) struct InFlight<'a> {
    map: &'a InFlightMap,
    nonce: u64,
}

impl InFlight<'_> {
    /// The nonce this write holds.
    pub(super) fn nonce(&self) -> u64 {
        self.nonce
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        lock(self.map).remove(&self.nonce);
    }
}

/// The map, also after a panic elsewhere poisoned it (its entries stay
/// valid: each insert and remove is one step).
fn lock(map: &InFlightMap) -> MutexGuard<'_, BTreeMap<u64, Sent>> {
    map.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Gas of a plain value transfer to an address without code.
const TRANSFER_GAS: u64 = 21_000;

impl EvmLedger {
    /// Records that `sent` holds `nonce` until the returned guard drops.
    /// Called with the nonce lock held, so the map and the counter agree for
    /// whoever takes the lock next.
    pub(super) fn track(&self, nonce: u64, sent: &Sent) -> InFlight<'_> {
        lock(&self.in_flight).insert(nonce, sent.clone());
        InFlight {
            map: &self.in_flight,
            nonce,
        }
    }

    /// Replaces the version of the write holding `nonce` (a replacement
    /// with higher fees was sent).
    pub(super) fn retrack(&self, nonce: u64, sent: &Sent) {
        lock(&self.in_flight).insert(nonce, sent.clone());
    }

    /// Whether no write is waiting for its receipt.
    pub(super) fn nothing_in_flight(&self) -> bool {
        lock(&self.in_flight).is_empty()
    }

    /// The signer's nonce in the node's pending state: mined transactions
    /// plus those in its pool that can run next (not ones waiting in a gap).
    pub(super) async fn pending_nonce(&self) -> Result<u64> {
        retry(&self.config.retry, &self.redact, || {
            self.provider
                .get_transaction_count(self.signer.address())
                .pending()
                .into_future()
        })
        .await
        .map_err(|e| e.into_error("eth_getTransactionCount", &self.redact))
    }

    /// The node holds our transaction with `nonce` but has not mined it:
    /// if its pending nonce is below `nonce`, fills every nonce in between
    /// (see the module doc). Holds the nonce lock, so no new write takes a
    /// nonce while the gap is read and filled, and two writes finding the
    /// same gap fill it once. Returns whether there was a gap.
    pub(super) async fn repair_gap_below(&self, nonce: u64) -> Result<bool> {
        let _counter = self.nonce.lock().await;
        let pending = self.pending_nonce().await?;
        if pending >= nonce {
            return Ok(false);
        }
        tracing::warn!(
            pending,
            nonce,
            "the node lost transactions below one it holds; filling the gap"
        );
        for missing in pending..nonce {
            let waiting = lock(&self.in_flight).get(&missing).cloned();
            match waiting {
                // Its own write rebroadcasts or replaces it if this fails.
                Some(sent) => {
                    if !matches!(self.submit(&sent.raw, sent.hash).await, Submitted::Taken) {
                        tracing::debug!(missing, hash = %sent.hash, "resending a write in the gap failed; its writer replaces it");
                    }
                }
                None => self.fill(missing).await?,
            }
        }
        Ok(true)
    }

    /// Sends a zero-value transfer to the signer itself with `nonce`.
    async fn fill(&self, nonce: u64) -> Result<()> {
        let fees = retry(&self.config.retry, &self.redact, || {
            self.provider.estimate_eip1559_fees()
        })
        .await
        .map_err(|e| e.into_error("eth_feeHistory", &self.redact))?;
        let me = self.signer.address();
        let tx = TransactionRequest::default()
            .with_from(me)
            .with_to(me)
            .with_value(U256::ZERO)
            .with_nonce(nonce)
            .with_gas_limit(TRANSFER_GAS)
            .with_max_fee_per_gas(fees.max_fee_per_gas)
            .with_max_priority_fee_per_gas(fees.max_priority_fee_per_gas)
            .with_chain_id(self.chain_id);
        let envelope = tx.build(&self.wallet).await.map_err(|e| {
            Error::Invalid(format!(
                "signing the transfer that fills nonce {nonce} failed: {e}"
            ))
        })?;
        let hash: B256 = *envelope.tx_hash();
        match self.submit(&envelope.encoded_2718(), hash).await {
            Submitted::Taken => {
                tracing::warn!(nonce, %hash, "filled a lost nonce with a transfer to the signer");
            }
            // Someone else's transaction took the nonce meanwhile, which
            // fills the gap just as well; anything else shows at the next
            // check.
            Submitted::StaleNonce(_) | Submitted::Refused(_) | Submitted::Unknown { .. } => {
                tracing::debug!(nonce, "filling a lost nonce was not taken");
            }
        }
        Ok(())
    }
}
