//! The app's server-side plumbing, shared by every domain module's server functions: the request and its
//! authenticated session, the authorization rule, answering with an error's own status, reaching a service the
//! server put in context, and setting cookies. Server-only (`ssr`).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use catalog::account::{Resource, User, authorize as decide};
use http::request::Parts;
use leptos::prelude::*;

use crate::error::AppError;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// How a request proved who it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credential {
    Cookie,
    Bearer,
}

/// The authenticated session of a request, put into the request's extensions by the server's
/// authentication middleware before any handler or server function runs.
#[derive(Debug, Clone)]
pub struct Session {
    pub id: String,
    pub user: User,
    pub credential: Credential,
}

/// The request being served (leptos_axum provides it to server functions and to rendering).
pub fn request() -> Result<Parts, AppError> {
    use_context::<Parts>().ok_or(AppError::Internal)
}

pub fn session() -> Option<Session> {
    use_context::<Parts>()?.extensions.get::<Session>().cloned()
}

pub fn require_session() -> Result<Session, AppError> {
    session().ok_or_else(|| AppError::Unauthorized("sign in first".into()))
}

/// The authorization rule, as every server function and route applies it.
pub fn authorize(user: &User, resource: Resource<'_>, what: &str) -> Result<(), AppError> {
    decide(user, resource).map_err(|denied| AppError::denied(denied, what))
}

/// Runs a server function's body and, when it fails, answers with its error's HTTP status (401, 422, …)
/// instead of the generic 500, so clients and logs see what happened.
pub async fn with_status<T>(body: impl Future<Output = Result<T, AppError>>) -> Result<T, AppError> {
    let result = body.await;
    if let (Err(error), Some(response)) = (&result, use_context::<leptos_axum::ResponseOptions>()) {
        response
            .set_status(http::StatusCode::from_u16(error.status()).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR));
    }
    result
}

/// Runs a server function's body with the signed-in user and the service `S` from context (with
/// [`with_status`]'s error statuses).
pub async fn with_service<S, T, F, Fut>(body: F) -> Result<T, AppError>
where
    S: ?Sized + Send + Sync + 'static,
    F: FnOnce(Arc<S>, User) -> Fut,
    Fut: Future<Output = Result<T, AppError>>,
{
    with_status(async move {
        let user = require_session()?.user;
        let service = use_context::<Arc<S>>().ok_or(AppError::Internal)?;
        body(service, user).await
    })
    .await
}

pub fn set_cookie(cookie: &str) {
    if let (Some(response), Ok(value)) =
        (use_context::<leptos_axum::ResponseOptions>(), http::HeaderValue::from_str(cookie))
    {
        response.append_header(http::header::SET_COOKIE, value);
    }
}
