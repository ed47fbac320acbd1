//! Extractors whose rejections are the server's JSON errors naming the
//! field (axum's own answer in plain text): a JSON body, a query string,
//! and path parameters parsed into domain types.

use axum::{
    body::Bytes,
    extract::{FromRequest, FromRequestParts, Request},
    http::{header, request::Parts},
};
use serde::de::DeserializeOwned;

use super::{SharedState, error::ApiError};

/// A JSON body, at most [`super::HttpConfig::max_json_bytes`] long.
#[derive(Debug)]
pub(crate) struct Json<T>(pub(crate) T);

impl<T: DeserializeOwned> FromRequest<SharedState> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &SharedState) -> Result<Self, ApiError> {
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                let essence = v.split(';').next().unwrap_or("").trim();
                essence.eq_ignore_ascii_case("application/json") || essence.ends_with("+json")
            });
        if !is_json {
            return Err(ApiError::new(
                axum::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "the body must be JSON (Content-Type: application/json)",
            ));
        }
        let limit = state.config.max_json_bytes;
        let body = axum::body::to_bytes(req.into_body(), limit)
            .await
            .map_err(|_| {
                ApiError::new(
                    axum::http::StatusCode::PAYLOAD_TOO_LARGE,
                    "too_large",
                    format!("the JSON body is larger than {limit} bytes"),
                )
            })?;
        parse_json(&body).map(Self)
    }
}

/// Parses JSON, naming the field that broke a rule.
pub(crate) fn parse_json<T: DeserializeOwned>(body: &Bytes) -> Result<T, ApiError> {
    let de = &mut serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path == "." || path.is_empty() {
            ApiError::invalid(format!(
                "the body is not valid JSON of the expected shape: {inner}"
            ))
        } else {
            ApiError::invalid(format!("{path}: {inner}"))
        }
    })
}

/// A query string.
#[derive(Debug)]
pub(crate) struct Query<T>(pub(crate) T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let q = parts.uri.query().unwrap_or("");
        let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(q.as_bytes()));
        serde_path_to_error::deserialize(de).map(Self).map_err(|e| {
            let path = e.path().to_string();
            ApiError::invalid(format!("query {path}: {}", e.into_inner()))
        })
    }
}

/// Parses one path parameter, naming it.
pub(crate) fn param<T>(value: &str, name: &str) -> Result<T, ApiError>
where
    T: std::str::FromStr,
    T::Err: std::fmt::Display,
{
    value
        .parse()
        .map_err(|e| ApiError::invalid(format!("{name} {value:?}: {e}")))
}

/// Parses an HH number path parameter.
pub(crate) fn hh(value: &str) -> Result<healthledger_core::HhNumber, ApiError> {
    let n: u32 = value
        .parse()
        .map_err(|_| ApiError::invalid(format!("hh {value:?}: an HH number is 6 digits")))?;
    healthledger_core::HhNumber::new(n).map_err(|e| ApiError::invalid(format!("hh: {e}")))
}
