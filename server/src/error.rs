//! How an [`AppError`] becomes an HTTP response for REST clients.
//!
//! Body: `{"error": {"code": "not_found", "message": "…", "field": "email"}}`; a 429 also carries
//! `Retry-After`. Internal causes are logged where they happen and never sent.

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

/// Logs a database failure and turns it into the opaque error a client sees.
pub fn internal(context: &str, error: impl std::fmt::Display) -> AppError {
    tracing::error!(%error, "{context}");
    AppError::Internal
}

impl From<sqlx::Error> for ApiError {
    fn from(error: sqlx::Error) -> Self {
        ApiError(internal("database query failed", error))
    }
}
