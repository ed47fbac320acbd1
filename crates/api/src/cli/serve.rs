//! `healthledger serve`: the HTTP server, with follow mode keeping the
//! cache in step with the chain, until SIGINT or SIGTERM (then requests in
//! flight finish, and the follower stops after its current batch).

use std::{net::SocketAddr, process::ExitCode, sync::Arc, time::Duration};

use clap::Args;

use super::Out;
use crate::{
    App, Error, Secret,
    http::{HttpConfig, Server},
};

/// `serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The address to listen on.
    #[arg(long, env = "HEALTHLEDGER_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// The domain sign-in messages must name (default: the listen address).
    #[arg(long, env = "HEALTHLEDGER_HTTP_DOMAIN")]
    pub domain: Option<String>,
    /// The URI sign-in messages must name (default: http://<listen>).
    #[arg(long, env = "HEALTHLEDGER_HTTP_URI")]
    pub uri: Option<String>,
    /// The operator's token (X-Operator-Token); unset, the operator's
    /// routes answer 401.
    #[arg(long, env = "HEALTHLEDGER_OPERATOR_TOKEN", hide_env_values = true)]
    pub operator_token: Option<String>,
    /// Requests per second one client address may make (0: no limit).
    #[arg(long, env = "HEALTHLEDGER_RATE_PER_SEC", default_value_t = 50)]
    pub rate_per_sec: u32,
    /// Requests one client address may make in a burst.
    #[arg(long, env = "HEALTHLEDGER_RATE_BURST", default_value_t = 200)]
    pub rate_burst: u32,
    /// /ready answers 503 while the cache is more blocks than this behind.
    #[arg(long, env = "HEALTHLEDGER_READY_MAX_LAG", default_value_t = 16)]
    pub ready_max_lag: u64,
    /// Session lifetime in seconds.
    #[arg(long, env = "HEALTHLEDGER_SESSION_TTL", default_value_t = 12 * 3600)]
    pub session_ttl_secs: u64,
    /// Patients may not register themselves (the app's key pays each
    /// registration's gas); only the operator registers them.
    #[arg(long)]
    pub no_self_registration: bool,
    /// Do not run follow mode beside the server (another process syncs).
    #[arg(long)]
    pub no_follow: bool,
}

impl ServeArgs {
    /// The server's settings.
    pub fn config(&self) -> HttpConfig {
        let mut c = HttpConfig::new(self.listen);
        if let Some(d) = &self.domain {
            c.domain.clone_from(d);
        }
        if let Some(u) = &self.uri {
            c.uri.clone_from(u);
        }
        c.operator_token = self.operator_token.clone().map(Secret::new);
        c.rate_per_sec = self.rate_per_sec;
        c.rate_burst = self.rate_burst;
        c.ready_max_lag_blocks = self.ready_max_lag;
        c.session_ttl = Duration::from_secs(self.session_ttl_secs);
        c.self_registration = !self.no_self_registration;
        c
    }
}

pub(super) async fn serve(app: Arc<App>, out: &Out, args: &ServeArgs) -> crate::Result<ExitCode> {
    let server = Server::bind(app.clone(), args.config()).await?;
    let addr = server.local_addr();
    let follow = (!args.no_follow).then(|| app.spawn_follow());
    out.emit(
        &serde_json::json!({ "listening": addr.to_string(), "follow": follow.is_some() }),
        || {
            vec![format!(
                "✅ Serving on http://{addr} (docs at /api/docs){}; SIGINT or SIGTERM stops",
                if follow.is_some() {
                    ", following the chain"
                } else {
                    ""
                }
            )]
        },
    );
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| Error::Unavailable(format!("cannot watch SIGTERM: {e}")))?;
    let shutdown = async move {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    };
    let served = server.serve(shutdown).await;
    if let Some(job) = follow {
        job.stop().await?;
    }
    served?;
    Ok(ExitCode::SUCCESS)
}
