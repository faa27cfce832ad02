//! How errors leave the server: an [`AppError`] becomes an HTTP response for REST clients, and an internal error
//! is logged with its whole cause chain at the one place it is turned into what a client sees.
//!
//! Body: `{"error": {"code": "not_found", "message": "…", "field": "email"}}`; a 429 also carries
//! `Retry-After`. Internal causes are never sent.

use std::error::Error as StdError;
use std::fmt::Write as _;

use app::error::AppError;
use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

pub type Result<T, E = ApiError> = std::result::Result<T, E>;

/// An [`AppError`] on its way out of a REST handler.
#[derive(Debug)]
pub struct ApiError(pub AppError);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let error = self.0;
        let status = StatusCode::from_u16(error.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut detail = json!({ "code": error.code(), "message": error.to_string() });
        if let Some(field) = error.field() {
            detail["field"] = field.into();
        }
        let mut response = (status, Json(json!({ "error": detail }))).into_response();
        if let AppError::RateLimited { retry_after } = error {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
        }
        response
    }
}

impl From<AppError> for ApiError {
    fn from(error: AppError) -> Self {
        ApiError(error)
    }
}

/// `error` and every error beneath it: `reading a server: the database failed: connection refused`.
pub fn chain(error: &dyn StdError) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let _ = write!(text, ": {cause}");
        source = cause.source();
    }
    text
}

/// Logs an internal error with its cause chain, where it is about to become the opaque error a client sees.
pub fn log_cause(error: &dyn StdError) {
    tracing::error!(error = %chain(error), "request failed");
}

/// An internal error, logged with its causes, as the opaque error a client sees.
pub fn internal(error: impl StdError) -> AppError {
    log_cause(&error);
    AppError::Internal
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("reading a server")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn the_chain_names_every_cause() {
        let error = Outer(std::io::Error::other("connection refused"));
        assert_eq!(chain(&error), "reading a server: connection refused");
    }
}
