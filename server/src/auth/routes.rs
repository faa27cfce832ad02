//! REST routes for accounts: `POST /auth/register`, `/auth/login`, `/auth/logout`, `GET /api/me`,
//! `GET|POST /api/account/ssh-keys`, `DELETE /api/account/ssh-keys/{id}` and `GET /api/admin/users`.

use std::net::SocketAddr;

use app::auth::ssr::Accounts as _;
use app::context::authorize;
use app::error::AppError;
use axum::extract::rejection::JsonRejection;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use catalog::account::{Resource, SshKey, User};
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
        .route("/api/account/ssh-keys", get(list_ssh_keys).post(add_ssh_key))
        .route("/api/account/ssh-keys/{id}", delete(remove_ssh_key))
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

/// `{name, public_key}`: a name for the key and its OpenSSH text (a `.pub` file's line).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewSshKey {
    name: String,
    public_key: String,
}

async fn list_ssh_keys(State(state): State<AppState>, CurrentUser(session): CurrentUser) -> Result<Json<Vec<SshKey>>> {
    Ok(Json(state.auth.ssh_keys(&session.user).await?))
}

async fn add_ssh_key(
    State(state): State<AppState>,
    CurrentUser(session): CurrentUser,
    body: std::result::Result<Json<NewSshKey>, JsonRejection>,
) -> Result<(StatusCode, Json<SshKey>)> {
    let Json(key) = body.map_err(bad_body)?;
    Ok((StatusCode::CREATED, Json(state.auth.add_ssh_key(&session.user, &key.name, &key.public_key).await?)))
}

async fn remove_ssh_key(
    State(state): State<AppState>,
    CurrentUser(session): CurrentUser,
    Path(id): Path<String>,
) -> Result<StatusCode> {
    state.auth.remove_ssh_key(&session.user, &id).await?;
    Ok(StatusCode::NO_CONTENT)
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
