//! REST routes for accounts: `POST /auth/register`, `/auth/login`, `/auth/logout`, and `GET /api/me`,
//! `GET /api/admin/users`.

use std::net::SocketAddr;

use app::auth::ssr::Accounts as _;
use app::context::authorize;
use app::error::AppError;
use axum::extract::rejection::JsonRejection;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use catalog::account::{Resource, User};
use serde::Deserialize;
use serde_json::json;

use super::middleware::CurrentUser;
use crate::error::Result;
use crate::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/auth/register", post(register))
        .route("/auth/login", post(login))
        .route("/auth/logout", post(logout))
        .route("/api/me", get(me))
        .route("/api/admin/users", get(list_users))
}

/// `{email, password}`; any other field (a `role`, say) is refused rather than ignored.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Credentials {
    email: String,
    password: String,
}

/// A body that is not the expected JSON: 422 naming the field serde complained about.
pub fn bad_body(rejection: JsonRejection) -> AppError {
    let text = rejection.body_text();
    let field = text.split('`').nth(1).filter(|_| text.contains("field")).unwrap_or("body");
    AppError::invalid(field, text.clone())
}

async fn register(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: std::result::Result<Json<Credentials>, JsonRejection>,
) -> Result<(StatusCode, Json<serde_json::Value>)> {
    let Json(credentials) = body.map_err(bad_body)?;
    let client = state.auth.client_ip(peer.ip(), &headers);
    let user = state.auth.register(client, &credentials.email, &credentials.password).await?;
    Ok((StatusCode::CREATED, Json(json!({ "user": user }))))
}

/// Answers `{token, user}` for API clients and sets the session cookie for browsers.
async fn login(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: std::result::Result<Json<Credentials>, JsonRejection>,
) -> Result<Response> {
    let Json(credentials) = body.map_err(bad_body)?;
    let client = state.auth.client_ip(peer.ip(), &headers);
    let signed_in = state.auth.sign_in(client, &credentials.email, &credentials.password).await?;
    Ok(with_cookie(&signed_in.cookie, Json(json!({ "token": signed_in.token, "user": signed_in.user }))))
}

/// Revokes the session the request is authenticated with, cookie or bearer.
async fn logout(State(state): State<AppState>, CurrentUser(session): CurrentUser) -> Result<Response> {
    state.auth.sign_out(&session).await?;
    Ok(with_cookie(&state.auth.clearing_cookie(), StatusCode::NO_CONTENT))
}

async fn me(CurrentUser(session): CurrentUser) -> Json<User> {
    Json(session.user)
}

async fn list_users(State(state): State<AppState>, CurrentUser(session): CurrentUser) -> Result<Json<Vec<User>>> {
    authorize(&session.user, Resource::AdminArea, "the admin area")?;
    Ok(Json(state.auth.list_users().await?))
}

fn with_cookie(cookie: &str, body: impl IntoResponse) -> Response {
    let mut response = body.into_response();
    if let Ok(value) = HeaderValue::from_str(cookie) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}
