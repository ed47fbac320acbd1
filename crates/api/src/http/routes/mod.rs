//! The routes, each documented in the OpenAPI document by its handler's
//! `#[utoipa::path]` (utoipa-axum registers both from one list, so the
//! document cannot miss a route).

pub(crate) mod access;
pub(crate) mod ops;
pub(crate) mod records;
pub(crate) mod users;

use utoipa::OpenApi as _;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{SharedState, openapi::ApiDoc};

/// Every route, with its documentation.
pub(crate) fn api() -> OpenApiRouter<SharedState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(ops::health))
        .routes(routes!(ops::ready))
        .routes(routes!(ops::metrics))
        .routes(routes!(users::nonce))
        .routes(routes!(users::login))
        .routes(routes!(users::logout))
        .routes(routes!(users::register_patient))
        .routes(routes!(users::register_doctor))
        .routes(routes!(users::register_diagnostic))
        .routes(routes!(users::profile))
        .routes(routes!(users::notifications))
        .routes(routes!(users::mark_read))
        .routes(routes!(users::doctor_patients))
        .routes(routes!(users::search_patients))
        .routes(routes!(access::typed_data))
        .routes(routes!(access::grant))
        .routes(routes!(access::revoke))
        .routes(routes!(access::grants))
        .routes(routes!(records::upload))
        .routes(routes!(records::commit))
        .routes(routes!(records::get_record))
        .routes(routes!(records::get_file))
        .routes(routes!(records::access_log))
        .routes(routes!(records::of_patient))
        .routes(routes!(records::reports))
        .routes(routes!(records::search))
        .routes(routes!(ops::sync_status))
        .routes(routes!(ops::sync_one))
        .routes(routes!(ops::verify))
}
