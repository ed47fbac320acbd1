//! The server's error body: `{ "error": { "code", "message" } }`, with a
//! status chosen by the error's kind (never by reading its message). A
//! client's mistake is never a 500; a backend failure is a 503 when
//! retrying may succeed and a 500 otherwise, and neither quotes a secret
//! or a stack trace: the app's errors never carry secrets (see
//! [`crate::Error`]), and a panic is caught and answered with a fixed body.

use axum::{
    Json,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde::Serialize;
use utoipa::ToSchema;

use crate::Error;

/// The JSON error body.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// What went wrong.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// A stable, machine-readable code (`invalid_input`, `unauthorized`,
    /// `forbidden`, `not_found`, `conflict`, `too_large`,
    /// `unsupported_media_type`, `rate_limited`, `unavailable`,
    /// `internal`).
    pub code: &'static str,
    /// A human-readable message naming the value and the rule.
    pub message: String,
}

/// An error as the server answers it.
#[derive(Debug)]
pub struct ApiError {
    /// The status.
    pub status: StatusCode,
    /// The code.
    pub code: &'static str,
    /// The message.
    pub message: String,
}

impl ApiError {
    /// An error of this status and code.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    /// 400: the input breaks a rule.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_input", message)
    }

    /// 401: no valid session.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    /// 403: not allowed.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    /// 404.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 503: a backend is unreachable.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        use healthledger_core::LedgerError;
        let message = e.to_string();
        let (status, code) = match &e {
            _ if e.is_unavailable() => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            Error::Invalid(_)
            | Error::Ledger(LedgerError::Invalid(_))
            | Error::Vault(healthledger_core::VaultError::Invalid(_)) => {
                (StatusCode::BAD_REQUEST, "invalid_input")
            }
            Error::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            Error::AccessDenied(_) => (StatusCode::FORBIDDEN, "forbidden"),
            Error::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            Error::TooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "too_large"),
            Error::Unsupported(_) => (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type"),
            Error::LocalChain(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            Error::Sync(healthledger_sync::Error::Ledger(l)) if l.is_retryable() => {
                (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
            }
            _ => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        };
        if status.is_server_error() {
            tracing::warn!(error = %e, %status, "request failed");
        }
        Self::new(status, code, message)
    }
}

impl From<healthledger_core::ValidationError> for ApiError {
    fn from(e: healthledger_core::ValidationError) -> Self {
        Self::invalid(e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code,
                message: self.message,
            },
        };
        let mut r = (self.status, Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            r.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer"),
            );
        }
        r
    }
}

/// What a handler returns.
pub type ApiResult<T> = std::result::Result<T, ApiError>;
