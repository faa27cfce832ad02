//! The error the browser and API clients see. It carries what a user can act on (which field, which state,
//! when to retry) and never an internal cause: those are logged on the server and replaced by `Internal`.

use catalog::account::{Denied, FieldError};
use leptos::prelude::*;
use leptos::server_fn::codec::JsonEncoding;
use leptos::server_fn::error::{FromServerFnError, ServerFnErrorErr};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum AppError {
    /// Input broke a rule (422).
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
    /// A request that cannot mean anything, such as a path leaving the server's files (400).
    #[error("{field}: {message}")]
    BadRequest { field: String, message: String },
    /// Input clashes with what exists, e.g. an email already registered (409).
    #[error("{field}: {message}")]
    Conflict { field: String, message: String },
    /// Not signed in, or the session is no longer valid (401).
    #[error("{0}")]
    Unauthorized(String),
    /// Signed in but not allowed (403).
    #[error("{0}")]
    Forbidden(String),
    /// Does not exist, or belongs to someone else (404).
    #[error("{0}")]
    NotFound(String),
    /// Too many attempts; retry after this many seconds (429).
    #[error("too many attempts, try again in {retry_after} s")]
    RateLimited { retry_after: u64 },
    /// A dependency (the database) is down (503).
    #[error("{0}")]
    Unavailable(String),
    /// Something failed on the server; details are in its log, not here (500).
    #[error("something went wrong on our side")]
    Internal,
}

impl AppError {
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        AppError::Invalid { field: field.to_owned(), message: message.into() }
    }

    /// The HTTP status for this error.
    pub fn status(&self) -> u16 {
        match self {
            AppError::Invalid { .. } => 422,
            AppError::BadRequest { .. } => 400,
            AppError::Conflict { .. } => 409,
            AppError::Unauthorized(_) => 401,
            AppError::Forbidden(_) => 403,
            AppError::NotFound(_) => 404,
            AppError::RateLimited { .. } => 429,
            AppError::Unavailable(_) => 503,
            AppError::Internal => 500,
        }
    }

    /// A stable, machine-readable name for the kind of error.
    pub fn code(&self) -> &'static str {
        match self {
            AppError::Invalid { .. } => "invalid",
            AppError::BadRequest { .. } => "bad_request",
            AppError::Conflict { .. } => "conflict",
            AppError::Unauthorized(_) => "unauthorized",
            AppError::Forbidden(_) => "forbidden",
            AppError::NotFound(_) => "not_found",
            AppError::RateLimited { .. } => "rate_limited",
            AppError::Unavailable(_) => "unavailable",
            AppError::Internal => "internal",
        }
    }

    /// The field the error is about, for forms that show it next to the input.
    pub fn field(&self) -> Option<&str> {
        match self {
            AppError::Invalid { field, .. } | AppError::BadRequest { field, .. } | AppError::Conflict { field, .. } => {
                Some(field)
            }
            _ => None,
        }
    }

    /// `Denied` from the authorization rule, phrased for `what` (e.g. "server `abc`").
    pub fn denied(denied: Denied, what: &str) -> Self {
        match denied {
            Denied::NotFound => AppError::NotFound(format!("{what} does not exist")),
            Denied::Forbidden => AppError::Forbidden("this needs an administrator".into()),
        }
    }
}

impl From<FieldError> for AppError {
    fn from(error: FieldError) -> Self {
        AppError::Invalid { field: error.field.to_owned(), message: error.message }
    }
}

impl FromServerFnError for AppError {
    type Encoder = JsonEncoding;

    fn from_server_fn_error(error: ServerFnErrorErr) -> Self {
        match error {
            // Transport problems seen in the browser: say so plainly.
            ServerFnErrorErr::Request(_) | ServerFnErrorErr::Response(_) => {
                AppError::Unavailable("the server could not be reached".into())
            }
            _ => AppError::Internal,
        }
    }
}

/// What an action on a page came to: a status line when it worked, an alert when it did not.
#[component]
pub fn Outcome(outcome: RwSignal<Option<Result<String, String>>>) -> impl IntoView {
    move || {
        outcome.get().map(|outcome| match outcome {
            Ok(text) => view! { <p class="saved" role="status">{text}</p> }.into_any(),
            Err(text) => view! { <p class="error" role="alert">{text}</p> }.into_any(),
        })
    }
}
