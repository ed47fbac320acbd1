//! Log paging: `eth_getLogs` in block spans that adapt to the provider's
//! limits.

use std::sync::atomic::Ordering;

use alloy::{providers::Provider, rpc::types::Filter};

use crate::{
    Error, Result,
    rpc::{RetryError, range_limit, retry},
};

use super::EvmLedger;

impl EvmLedger {
    /// Logs of the contract in `from..=to`, fetched in spans that adapt to the
    /// provider: a range refusal shrinks the span (to the provider's
    /// suggestion, else by half) and retries; successes in a row grow it back.
    pub(super) async fn logs(&self, from: u64, to: u64) -> Result<Vec<alloy::rpc::types::Log>> {
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
}
