//! Operations: liveness, readiness, metrics, the sync status, targeted
//! syncs and verification.

use axum::{
    extract::{Path, State},
    http::{StatusCode, header},
    response::IntoResponse,
};
use healthledger_sync::{Outcome, Stale, SyncStatus};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::http::{
    SharedState,
    auth::{Caller, Operator},
    error::{ApiError, ApiResult, ErrorBody},
    extract::{Json, hh, param},
};

/// Liveness: the process answers.
#[utoipa::path(get, path = "/health", tag = "ops", responses((status = 200, body = Object)))]
pub(crate) async fn health() -> impl IntoResponse {
    axum::Json(serde_json::json!({ "status": "ok" }))
}

/// Readiness: what `/ready` found.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Readiness {
    /// Whether the server should get traffic.
    ready: bool,
    /// Blocks the cache is behind the chain, when the chain answered.
    lag_blocks: Option<u64>,
    /// The most lag that counts as ready.
    max_lag_blocks: u64,
    /// Whether the vault answered.
    vault_reachable: bool,
    /// What is wrong, if anything.
    problems: Vec<String>,
}

/// Readiness: 503 while the cache is further behind the chain than the
/// configured lag, or the chain or the vault is unreachable.
#[utoipa::path(get, path = "/ready", tag = "ops",
    responses((status = 200, body = Readiness), (status = 503, body = Readiness)))]
pub(crate) async fn ready(State(s): State<SharedState>) -> impl IntoResponse {
    let mut problems = Vec::new();
    let lag = match s.app.sync.status().await {
        Ok(st) => {
            observe_status(&s, &st);
            if st.lag_blocks > s.config.ready_max_lag_blocks {
                problems.push(format!(
                    "the cache is {} blocks behind the chain (at most {})",
                    st.lag_blocks, s.config.ready_max_lag_blocks
                ));
            }
            Some(st.lag_blocks)
        }
        Err(e) => {
            problems.push(format!("sync status: {e}"));
            None
        }
    };
    let vault_reachable = match s.app.vault.health().await {
        Ok(_) => true,
        Err(e) => {
            problems.push(format!("vault: {e}"));
            false
        }
    };
    let ready = problems.is_empty();
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        axum::Json(Readiness {
            ready,
            lag_blocks: lag,
            max_lag_blocks: s.config.ready_max_lag_blocks,
            vault_reachable,
            problems,
        }),
    )
}

fn observe_status(s: &SharedState, st: &SyncStatus) {
    s.metrics
        .sync_lag_blocks
        .set(i64::try_from(st.lag_blocks).unwrap_or(i64::MAX));
    let c = &st.counts;
    s.metrics
        .events_applied
        .set(c.patients + c.doctors + c.diagnostic_centers + c.records + c.grants);
    s.metrics.quarantined.set(st.quarantined);
}

/// Prometheus metrics (text format 0.0.4).
#[utoipa::path(get, path = "/metrics", tag = "ops",
    responses((status = 200, description = "the metrics", content_type = "text/plain")))]
pub(crate) async fn metrics(State(s): State<SharedState>) -> impl IntoResponse {
    // The sync figures are read when scraped; a chain outage leaves the
    // last ones (and `/ready` says so).
    if let Ok(st) = s.app.sync.status().await {
        observe_status(&s, &st);
    }
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        s.metrics.render(),
    )
}

/// The sync engine's status (any signed-in user, or the operator).
#[utoipa::path(get, path = "/api/sync/status", tag = "sync",
    responses((status = 200, body = Object), (status = 401, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(crate) async fn sync_status(
    State(s): State<SharedState>,
    _: Caller,
) -> ApiResult<axum::Json<SyncStatus>> {
    let st = s.app.sync.status().await.map_err(crate::Error::from)?;
    observe_status(&s, &st);
    Ok(axum::Json(st))
}

/// What a targeted sync did.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct SyncOutcome {
    /// `created`, `updated`, `unchanged`, … (see the sync crate's `Outcome`).
    #[schema(value_type = Object)]
    outcome: Outcome,
}

/// Syncs one entity from the chain into the cache (the operator only).
#[utoipa::path(post, path = "/api/sync/{kind}/{id}", tag = "sync",
    params(("kind" = String, Path, description = "patient, doctor, diagnostic or record"),
        ("id" = String, Path, description = "an HH number, or a record id")),
    responses((status = 200, body = SyncOutcome), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(crate) async fn sync_one(
    State(s): State<SharedState>,
    _: Operator,
    Path((kind, id)): Path<(String, String)>,
) -> ApiResult<axum::Json<SyncOutcome>> {
    let engine = &s.app.sync;
    let outcome = match kind.as_str() {
        "patient" => engine.sync_patient(hh(&id)?, Stale::Remove).await,
        "doctor" => engine.sync_doctor(hh(&id)?, Stale::Remove).await,
        "diagnostic" => engine.sync_diagnostic(hh(&id)?, Stale::Remove).await,
        "record" => engine.sync_record(param(&id, "id")?, Stale::Remove).await,
        other => {
            return Err(ApiError::not_found(format!(
                "no sync kind {other:?} (patient, doctor, diagnostic or record)"
            )));
        }
    }
    .map_err(crate::Error::from)?;
    Ok(axum::Json(SyncOutcome { outcome }))
}

/// What to verify.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub(crate) struct VerifyBody {
    /// Repair the drift found.
    #[serde(default)]
    repair: bool,
    /// Audit the vault too.
    #[serde(default)]
    vault: bool,
    /// Audit the access log against its anchor too.
    #[serde(default)]
    access_log: bool,
}

/// Compares the chain and the cache (and optionally the vault and the
/// access log), and repairs the drift when asked (the operator only).
#[utoipa::path(post, path = "/api/verify", tag = "sync", request_body = VerifyBody,
    responses((status = 200, body = Object), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub(crate) async fn verify(
    State(s): State<SharedState>,
    _: Operator,
    Json(b): Json<VerifyBody>,
) -> ApiResult<axum::Json<serde_json::Value>> {
    let engine = &s.app.sync;
    let drift = engine.verify_drift().await.map_err(crate::Error::from)?;
    let repair = if b.repair && !drift.is_clean() {
        Some(engine.repair(&drift).await.map_err(crate::Error::from)?)
    } else {
        None
    };
    let vault = if b.vault {
        let config = healthledger_sync::integrity::VaultAuditConfig {
            grace: std::time::Duration::from_secs(3600),
            remove_orphans: false,
            concurrency: 8,
        };
        Some(
            engine
                .audit_vault(s.app.vault.as_ref(), config)
                .await
                .map_err(crate::Error::from)?,
        )
    } else {
        None
    };
    let audit = if b.access_log {
        Some(
            engine
                .audit_access_log()
                .await
                .map_err(crate::Error::from)?,
        )
    } else {
        None
    };
    Ok(axum::Json(serde_json::json!({
        "drift": drift, "repair": repair, "vault": vault, "access_log": audit,
    })))
}
