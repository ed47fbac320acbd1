//! New heads pushed by the node: a `newHeads` subscription over WebSocket
//! (alloy's pubsub provider), when [`EvmLedgerConfig::ws_url`] is set.
//! Requests still go over HTTP; the subscription only wakes a follower.
//!
//! [`EvmLedgerConfig::ws_url`]: crate::EvmLedgerConfig::ws_url

use alloy::providers::{Provider as _, ProviderBuilder, WsConnect};
use futures::{StreamExt as _, stream::BoxStream};
use healthledger_core::{LedgerError, LedgerResult};

use super::EvmLedger;
use crate::config::Redactor;

impl EvmLedger {
    /// Subscribes to `newHeads` at the configured WebSocket endpoint;
    /// `None` when none is configured. The stream owns its connection and
    /// ends when the connection drops.
    pub(super) async fn subscribe_heads(&self) -> LedgerResult<Option<BoxStream<'static, u64>>> {
        let Some(url) = &self.config.ws_url else {
            return Ok(None);
        };
        // The WebSocket URL may carry a provider's key like the HTTP one.
        let redact = Redactor::new(url);
        let unavailable = |what: &str, e: &dyn std::fmt::Display| {
            LedgerError::Unavailable(format!("{what}: {}", redact.display(&e.to_string())))
        };
        let provider = ProviderBuilder::new()
            .disable_recommended_fillers()
            .connect_ws(WsConnect::new(url.clone()))
            .await
            .map_err(|e| unavailable("connecting for new heads", &e))?;
        let subscription = provider
            .subscribe_blocks()
            .await
            .map_err(|e| unavailable("eth_subscribe newHeads", &e))?;
        // The provider owns the connection's background task: it travels
        // with the stream so the subscription lives exactly as long.
        let stream = futures::stream::unfold(
            (provider, subscription.into_stream()),
            |(provider, mut headers)| async move {
                let header = headers.next().await?;
                Some((header.number, (provider, headers)))
            },
        );
        Ok(Some(stream.boxed()))
    }
}
