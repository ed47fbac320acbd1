//! Consent: the typed data a patient's wallet signs, and the grant and
//! revocation that relay the signature. The server never signs for a
//! user; the chain checks the signature against the patient's wallet and
//! nonce, so a replayed or forged one is refused there too.

use axum::{
    extract::{Path, State},
    http::StatusCode,
    response::IntoResponse,
};
use healthledger_core::{
    AccessGrant, Authorization, ConsentAction, HhNumber, RelayedSignature, Timestamp,
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::{
    Actor, App,
    facade::CONSENT_VALIDITY_SECS,
    http::{
        SharedState,
        auth::{Caller, parse_signature},
        error::{ApiError, ApiResult, ErrorBody},
        extract::{Json, Query, hh},
    },
};

/// What consent to prepare.
#[derive(Debug, Deserialize, IntoParams)]
pub(crate) struct ConsentQuery {
    /// `grant` or `revoke`.
    action: String,
    /// The patient who consents.
    patient: u32,
    /// The doctor or diagnostic center.
    grantee: u32,
    /// For a grant: when it ends (Unix seconds); none means until revoked.
    expires_at: Option<u64>,
}

/// What the consenting wallet signs.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ConsentRequest {
    /// The EIP-712 typed data, for `eth_signTypedData_v4` (absent when the
    /// ledger's consent is not EIP-712; sign `digest` then).
    #[schema(value_type = Object)]
    typed_data: Option<serde_json::Value>,
    /// The 32-byte digest the signature covers, in hex.
    digest: String,
    /// Until when the signature is accepted (Unix seconds): send it back
    /// with the signature.
    pub(crate) deadline: u64,
}

pub(crate) async fn consent_request(
    app: &App,
    action: &ConsentAction,
) -> ApiResult<ConsentRequest> {
    let deadline = Timestamp(Timestamp::now().0 + CONSENT_VALIDITY_SECS);
    let digest = app.consent_digest(action, deadline).await?;
    let typed_data = app
        .ledger
        .consent_typed_data(action, deadline)
        .await
        .map_err(crate::Error::from)?;
    Ok(ConsentRequest {
        typed_data,
        digest: digest.to_string(),
        deadline: deadline.0,
    })
}

/// The typed data a patient's wallet signs to grant or revoke access.
#[utoipa::path(get, path = "/api/consent/typed-data", tag = "access", params(ConsentQuery),
    responses((status = 200, body = ConsentRequest), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(crate) async fn typed_data(
    State(s): State<SharedState>,
    _: Caller,
    Query(q): Query<ConsentQuery>,
) -> ApiResult<axum::Json<ConsentRequest>> {
    let patient = HhNumber::new(q.patient)?;
    let grantee = HhNumber::new(q.grantee)?;
    let action = match q.action.as_str() {
        "grant" => App::grant_action(patient, grantee, q.expires_at.map(Timestamp)),
        "revoke" => App::revoke_action(patient, grantee),
        other => {
            return Err(ApiError::invalid(format!(
                "query action {other:?}: must be grant or revoke"
            )));
        }
    };
    Ok(axum::Json(consent_request(&s.app, &action).await?))
}

/// A grant, with the patient's signature.
#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct GrantBody {
    /// The doctor or diagnostic center.
    grantee: u32,
    /// When it ends (Unix seconds); none means until revoked.
    expires_at: Option<u64>,
    /// The patient wallet's signature over the typed data, in hex.
    signature: String,
    /// The deadline the typed data named.
    deadline: u64,
}

/// A revocation, with the patient's signature.
#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct RevokeBody {
    /// The doctor or diagnostic center.
    grantee: u32,
    /// The patient wallet's signature over the typed data, in hex.
    signature: String,
    /// The deadline the typed data named.
    deadline: u64,
}

/// What a grant or revocation did.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct AccessChangeResponse {
    /// The grant as the chain holds it now.
    #[schema(value_type = Object)]
    grant: AccessGrant,
    /// The transaction.
    #[schema(value_type = Object)]
    receipt: healthledger_core::TxReceipt,
    /// Whether the cache holds it now.
    cached: bool,
}

impl From<crate::AccessChange> for AccessChangeResponse {
    fn from(c: crate::AccessChange) -> Self {
        Self {
            grant: c.grant,
            receipt: c.receipt,
            cached: c.cached,
        }
    }
}

fn relayed(signature: &str, deadline: u64) -> ApiResult<Authorization> {
    Ok(Authorization::Relayed(RelayedSignature {
        signature: parse_signature(signature, "signature")?,
        deadline: Timestamp(deadline),
    }))
}

/// The patient at `path` must be the caller.
fn own(actor: &Actor, patient: HhNumber) -> ApiResult<()> {
    match actor {
        Actor::User { hh, .. } if *hh == patient => Ok(()),
        other => Err(ApiError::forbidden(format!(
            "{} may not change patient {patient}'s access",
            crate::http::auth::describe(other)
        ))),
    }
}

/// A patient grants a provider access to their records.
#[utoipa::path(post, path = "/api/records/patient/{hh}/grant", tag = "access", request_body = GrantBody,
    params(("hh" = u32, Path, description = "the patient")),
    responses((status = 201, body = AccessChangeResponse), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(crate) async fn grant(
    State(s): State<SharedState>,
    Caller(actor): Caller,
    Path(number): Path<String>,
    Json(b): Json<GrantBody>,
) -> ApiResult<impl IntoResponse> {
    let patient = hh(&number)?;
    own(&actor, patient)?;
    let grantee = HhNumber::new(b.grantee)?;
    let consent = relayed(&b.signature, b.deadline)?;
    let change = s
        .app
        .grant_access(&actor, grantee, b.expires_at.map(Timestamp), &consent)
        .await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(AccessChangeResponse::from(change)),
    ))
}

/// A patient revokes a provider's access.
#[utoipa::path(post, path = "/api/records/patient/{hh}/revoke", tag = "access", request_body = RevokeBody,
    params(("hh" = u32, Path, description = "the patient")),
    responses((status = 200, body = AccessChangeResponse), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(crate) async fn revoke(
    State(s): State<SharedState>,
    Caller(actor): Caller,
    Path(number): Path<String>,
    Json(b): Json<RevokeBody>,
) -> ApiResult<axum::Json<AccessChangeResponse>> {
    let patient = hh(&number)?;
    own(&actor, patient)?;
    let grantee = HhNumber::new(b.grantee)?;
    let consent = relayed(&b.signature, b.deadline)?;
    let change = s.app.revoke_access(&actor, grantee, &consent).await?;
    Ok(axum::Json(change.into()))
}

/// A patient's grants (the patient only).
#[utoipa::path(get, path = "/api/records/patient/{hh}/grants", tag = "access",
    params(("hh" = u32, Path, description = "the patient")),
    responses((status = 200, body = Vec<Object>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub(crate) async fn grants(
    State(s): State<SharedState>,
    Caller(actor): Caller,
    Path(number): Path<String>,
) -> ApiResult<axum::Json<Vec<AccessGrant>>> {
    Ok(axum::Json(
        s.app.grants_of_patient(&actor, hh(&number)?).await?,
    ))
}
