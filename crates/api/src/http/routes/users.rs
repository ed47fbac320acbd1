//! Sign-in, registration, profiles, notifications and the listings of
//! people: a doctor's patients, a search of patients by name.

use axum::{
    extract::{Path, State},
    http::{StatusCode, request::Parts},
    response::IntoResponse,
};
use healthledger_core::{
    DiagnosticCenterProfile, DoctorProfile, HhNumber, Notification, PatientProfile, Profile, Role,
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::{
    Actor,
    http::{
        SharedState,
        auth::{Caller, LoginResponse, NonceResponse, Operator, SignedMessage},
        error::{ApiError, ApiResult, ErrorBody},
        extract::{Json, Query, hh, param},
    },
};

/// A single-use nonce for a sign-in message, with the domain, URI and
/// chain id the message must name.
#[utoipa::path(post, path = "/api/auth/nonce", tag = "auth",
    responses((status = 200, body = NonceResponse), (status = 503, body = ErrorBody)))]
pub(crate) async fn nonce(State(s): State<SharedState>) -> ApiResult<axum::Json<NonceResponse>> {
    Ok(axum::Json(s.nonce()?))
}

/// Signs in with a wallet: an EIP-4361 message and its signature; the
/// wallet must own an HH number on chain.
#[utoipa::path(post, path = "/api/auth/login", tag = "auth", request_body = SignedMessage,
    responses((status = 200, body = LoginResponse), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub(crate) async fn login(
    State(s): State<SharedState>,
    Json(signed): Json<SignedMessage>,
) -> ApiResult<axum::Json<LoginResponse>> {
    Ok(axum::Json(s.login(&signed).await?))
}

/// Ends the session of the bearer token.
#[utoipa::path(post, path = "/api/auth/logout", tag = "auth",
    responses((status = 204), (status = 401, body = ErrorBody)))]
pub(crate) async fn logout(State(s): State<SharedState>, parts: Parts) -> ApiResult<StatusCode> {
    s.logout(&parts).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A patient registering: by the operator (`X-Operator-Token`), or by the
/// patient's own wallet, proven by a signed sign-in message (the wallet
/// the message proves must be the profile's).
#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct RegisterPatient {
    /// The profile (hh, wallet, name, date_of_birth, gender, blood_group,
    /// home_address, email).
    #[schema(value_type = Object)]
    profile: PatientProfile,
    /// The applicant's signed sign-in message, when no operator token is
    /// sent.
    sign_in: Option<SignedMessage>,
}

/// What a registration did, and a session when the applicant signed in.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct RegisteredResponse {
    /// The registered profile.
    #[schema(value_type = Object)]
    profile: Profile,
    /// The registration's transaction.
    #[schema(value_type = Object)]
    receipt: healthledger_core::TxReceipt,
    /// Whether the cache holds it already (`false`: sync will).
    cached: bool,
    /// A session for the applicant who registered themselves.
    session: Option<LoginResponse>,
}

fn operator_sent(parts: &Parts) -> bool {
    parts
        .headers
        .contains_key(crate::http::auth::OPERATOR_HEADER)
}

/// Registers a patient (the operator, or the patient's own wallet).
#[utoipa::path(post, path = "/api/register/patient", tag = "register", request_body = RegisterPatient,
    responses((status = 201, body = RegisteredResponse), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub(crate) async fn register_patient(
    State(s): State<SharedState>,
    mut parts: Parts,
    Json(body): Json<RegisterPatient>,
) -> ApiResult<impl IntoResponse> {
    let actor = if operator_sent(&parts) {
        use axum::extract::FromRequestParts as _;
        Caller::from_request_parts(&mut parts, &s).await?.0
    } else if !s.config.self_registration {
        return Err(ApiError::forbidden(
            "self-registration is off on this server: the operator registers patients",
        ));
    } else {
        let signed = body.sign_in.as_ref().ok_or_else(|| {
            ApiError::unauthorized(
                "sign_in: a self-registering patient sends a signed sign-in message (or the operator its token)",
            )
        })?;
        Actor::Applicant {
            wallet: s.check_sign_in(signed)?,
        }
    };
    let r = s.app.register_patient(&actor, body.profile).await?;
    let session = match actor {
        Actor::Applicant { wallet } => Some(
            s.start_session(r.profile.hh(), Role::Patient, wallet)
                .await?,
        ),
        _ => None,
    };
    Ok((
        StatusCode::CREATED,
        axum::Json(RegisteredResponse {
            profile: r.profile,
            receipt: r.receipt,
            cached: r.cached,
            session,
        }),
    ))
}

fn registered(r: crate::Registered) -> impl IntoResponse {
    (
        StatusCode::CREATED,
        axum::Json(RegisteredResponse {
            profile: r.profile,
            receipt: r.receipt,
            cached: r.cached,
            session: None,
        }),
    )
}

/// Registers a doctor (the operator only: credentials are vetted off
/// chain).
#[utoipa::path(post, path = "/api/register/doctor", tag = "register",
    request_body(content = Object, description = "a doctor's profile: hh, wallet, name, specialization, hospital, email"),
    responses((status = 201, body = RegisteredResponse), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub(crate) async fn register_doctor(
    State(s): State<SharedState>,
    _: Operator,
    Json(profile): Json<DoctorProfile>,
) -> ApiResult<impl IntoResponse> {
    Ok(registered(
        s.app.register_doctor(&Actor::Operator, profile).await?,
    ))
}

/// Registers a diagnostic center (the operator only).
#[utoipa::path(post, path = "/api/register/diagnostic", tag = "register",
    request_body(content = Object, description = "a diagnostic center's profile: hh, wallet, name, location, email"),
    responses((status = 201, body = RegisteredResponse), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub(crate) async fn register_diagnostic(
    State(s): State<SharedState>,
    _: Operator,
    Json(profile): Json<DiagnosticCenterProfile>,
) -> ApiResult<impl IntoResponse> {
    Ok(registered(
        s.app
            .register_diagnostic_center(&Actor::Operator, profile)
            .await?,
    ))
}

/// A public profile, from the cache (the chain on a miss).
#[utoipa::path(get, path = "/api/profile/{role}/{hh}", tag = "profiles",
    params(("role" = String, Path, description = "patient, doctor or diagnostic"),
        ("hh" = u32, Path, description = "the 6-digit HH number")),
    responses((status = 200, body = Object), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(crate) async fn profile(
    State(s): State<SharedState>,
    _: Caller,
    Path((role, number)): Path<(String, String)>,
) -> ApiResult<axum::Json<Profile>> {
    let role = match role.as_str() {
        "patient" => Role::Patient,
        "doctor" => Role::Doctor,
        "diagnostic" => Role::DiagnosticCenter,
        other => {
            return Err(ApiError::not_found(format!(
                "no profile kind {other:?} (patient, doctor or diagnostic)"
            )));
        }
    };
    Ok(axum::Json(s.app.profile(role, hh(&number)?).await?))
}

/// Which notifications to list.
#[derive(Debug, Deserialize, IntoParams)]
pub(crate) struct NotificationsQuery {
    /// Only unread ones.
    #[serde(default)]
    unread: bool,
}

/// The caller's notifications, newest first.
#[utoipa::path(get, path = "/api/notifications", tag = "notifications", params(NotificationsQuery),
    responses((status = 200, body = Vec<Object>), (status = 401, body = ErrorBody)))]
pub(crate) async fn notifications(
    State(s): State<SharedState>,
    Caller(actor): Caller,
    Query(q): Query<NotificationsQuery>,
) -> ApiResult<axum::Json<Vec<Notification>>> {
    Ok(axum::Json(s.app.notifications(&actor, q.unread).await?))
}

/// Marks one of the caller's notifications read.
#[utoipa::path(put, path = "/api/notifications/{id}/read", tag = "notifications",
    params(("id" = u64, Path, description = "the notification's id")),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(crate) async fn mark_read(
    State(s): State<SharedState>,
    Caller(actor): Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let id: u64 = param(&id, "id")?;
    s.app.mark_notification_read(&actor, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The patients who granted a doctor access (the doctor's own list).
#[utoipa::path(get, path = "/api/doctor/{hh}/patients", tag = "listings",
    params(("hh" = u32, Path, description = "the doctor's HH number")),
    responses((status = 200, body = Vec<u32>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub(crate) async fn doctor_patients(
    State(s): State<SharedState>,
    Caller(actor): Caller,
    Path(number): Path<String>,
) -> ApiResult<axum::Json<Vec<HhNumber>>> {
    Ok(axum::Json(
        s.app.patients_of_doctor(&actor, hh(&number)?).await?,
    ))
}

/// A search of patients by name prefix.
#[derive(Debug, Deserialize, IntoParams)]
pub(crate) struct PatientSearch {
    /// The name's first letters (case-insensitive).
    prefix: String,
    /// At most this many (default 50).
    limit: Option<u64>,
}

/// Patients whose name starts with `prefix` (providers only).
#[utoipa::path(get, path = "/api/search/patients", tag = "listings", params(PatientSearch),
    responses((status = 200, body = Vec<Object>), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub(crate) async fn search_patients(
    State(s): State<SharedState>,
    Caller(actor): Caller,
    Query(q): Query<PatientSearch>,
) -> ApiResult<axum::Json<Vec<PatientProfile>>> {
    Ok(axum::Json(
        s.app
            .search_patients(&actor, &q.prefix, q.limit.unwrap_or(50))
            .await?,
    ))
}
