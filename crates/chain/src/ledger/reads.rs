//! Reads: `eth_call`s of the contract's getters and block lookups.

use alloy::{
    eips::BlockNumberOrTag,
    network::TransactionBuilder as _,
    primitives::{Address, U256},
    providers::Provider,
    rpc::types::TransactionRequest,
    sol_types::SolCall,
};
use healthledger_core::{BlockRef, HhNumber, ReadAt, Timestamp};

use crate::{
    Error, Result,
    bindings::{HealthLedger, HealthLedger::HealthLedgerErrors},
    rpc::{RetryError, retry},
};

use super::EvmLedger;

/// Largest page of fixed-size items (HH numbers, grants) the adapter asks
/// the contract for in one `eth_call`.
pub(super) const PAGE: u64 = 1_000;

/// The `eth_call` gas every bulk page stays within when every value in it
/// is as large as the contract accepts (each text field at its most
/// characters, each character four bytes of UTF-8): anvil's default block
/// gas limit, which is also its `eth_call` cap, and below the 50,000,000 of
/// geth's default `--rpc.gascap` that most hosted nodes keep. The
/// integration test `bulk_pages_fit_the_call_gas_budget` measures it.
pub const CALL_GAS_BUDGET: u64 = 30_000_000;

/// Profiles per bulk `eth_call`. The bulk reads cost storage reads, memory
/// and ABI encoding in proportion to the bytes of the values: a page of
/// 150 patients of the largest values (about 2 KiB each) measured
/// 25,461,472 gas on anvil 1.7.1, within [`CALL_GAS_BUDGET`] with room to
/// spare, and a response of about a megabyte.
pub const PROFILE_PAGE: u64 = 150;

/// Records per bulk `eth_call`, for the same reason: 300 records of the
/// largest values measured 28,998,980 gas, too close to the budget, so a
/// page holds 250 (23,890,477 gas).
pub const RECORD_PAGE: u64 = 250;

/// Grants per bulk `eth_call` (three packed timestamps and the pair each).
pub const GRANT_PAGE: u64 = PAGE;

impl EvmLedger {
    /// `call` at the latest block.
    pub(super) async fn call<C: SolCall>(&self, call: C) -> Result<C::Return> {
        self.call_at(call, ReadAt::Latest).await
    }

    /// `call` at the block `at` names: a pinned block by hash with
    /// `requireCanonical` (EIP-1898), so every read of a snapshot sees the
    /// same state whichever backend of a load-balanced provider answers.
    pub(super) async fn call_at<C: SolCall>(&self, call: C, at: ReadAt) -> Result<C::Return> {
        let tx = TransactionRequest::default()
            .with_to(self.contract)
            .with_input(call.abi_encode());
        let out = retry(&self.config.retry, &self.redact, || match at {
            // alloy's `call` defaults to the pending block, whose timestamp
            // is the node's wall clock rather than the head's: a grant
            // would read as lapsed before any block passed its expiry.
            ReadAt::Latest => self.provider.call(tx.clone()).latest().into_future(),
            ReadAt::Block(b) => self
                .provider
                .call(tx.clone())
                .hash_canonical(b.hash)
                .into_future(),
        })
        .await;
        let out = match (out, at) {
            (Ok(out), _) => out,
            (Err(e), ReadAt::Latest) => return Err(self.call_error(C::SIGNATURE, e)),
            (Err(e), ReadAt::Block(b)) => {
                let error = self.call_error(C::SIGNATURE, e);
                // A refused pinned read is a reorg when the block is no
                // longer the canonical one at its height; the check costs a
                // request only on this error path.
                if matches!(error, Error::Revert { .. }) {
                    return Err(error);
                }
                return match self.block_ref(BlockNumberOrTag::Number(b.number)).await? {
                    Some(canonical) if canonical.hash == b.hash => Err(match error {
                        Error::Rpc { message, .. } => Error::StateUnavailable {
                            number: b.number,
                            message,
                        },
                        other => other,
                    }),
                    _ => Err(Error::NotCanonical {
                        number: b.number,
                        hash: b.hash,
                    }),
                };
            }
        };
        C::abi_decode_returns(&out).map_err(|e| {
            Error::Integrity(format!(
                "the return data of {} does not decode: {e}",
                C::SIGNATURE
            ))
        })
    }

    pub(super) fn call_error(&self, call: &'static str, e: RetryError) -> Error {
        if let RetryError::Fatal(t) = &e
            && let Some(decoded) = t
                .as_error_resp()
                .and_then(|p| p.as_decoded_interface_error::<HealthLedgerErrors>())
        {
            return Error::revert(call, &decoded);
        }
        e.into_error("eth_call", &self.redact)
    }

    pub(super) async fn wallet_of(&self, hh: HhNumber) -> Result<Address> {
        let w = self.call(HealthLedger::walletOfCall(hh.get())).await?;
        if w.is_zero() {
            return Err(Error::revert(
                "walletOf",
                &HealthLedgerErrors::NotRegistered(HealthLedger::NotRegistered { hh: hh.get() }),
            ));
        }
        Ok(w)
    }

    pub(super) async fn block_ref(&self, tag: BlockNumberOrTag) -> Result<Option<BlockRef>> {
        self.block_ref_raw(tag)
            .await
            .map_err(|e| e.into_error("eth_getBlockByNumber", &self.redact))
    }

    pub(super) async fn block_ref_raw(
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
            timestamp: Timestamp(b.header.timestamp),
        }))
    }

    /// The block `tag` names, or `None` when the node does not support the
    /// tag: it answers null, or refuses with JSON-RPC -32601 (method not
    /// found) or -32602 (invalid params). Other failures are errors.
    pub(super) async fn tagged_block(&self, tag: BlockNumberOrTag) -> Result<Option<BlockRef>> {
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

    pub(super) async fn head_number(&self) -> Result<u64> {
        retry(&self.config.retry, &self.redact, || {
            self.provider.get_block_number()
        })
        .await
        .map_err(|e| e.into_error("eth_blockNumber", &self.redact))
    }
}

pub(super) fn to_u64(v: U256, what: &str) -> Result<u64> {
    u64::try_from(v).map_err(|_| Error::Integrity(format!("{what} {v} does not fit in 64 bits")))
}
