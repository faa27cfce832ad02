//! Renaming, copying, deleting and making directories: small JSON bodies, `204` when done.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use catalog::ServerId;
use serde::Deserialize;

use crate::auth::middleware::CurrentUser;
use crate::auth::routes::bad_body;
use crate::error::Result;
use crate::state::AppState;

type Body<T> = std::result::Result<Json<T>, JsonRejection>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FromTo {
    from: String,
    to: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Paths {
    paths: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OnePath {
    path: String,
}

/// `POST …/files/rename {from, to}`: moves a file or directory (the target must not exist).
pub async fn rename(
    State(state): State<AppState>,
    CurrentUser(session): CurrentUser,
    Path(id): Path<ServerId>,
    body: Body<FromTo>,
) -> Result<StatusCode> {
    let Json(body) = body.map_err(bad_body)?;
    state.files.rename(&session.user, &id, &body.from, &body.to).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST …/files/copy {from, to}`: copies a file or directory tree.
pub async fn copy(
    State(state): State<AppState>,
    CurrentUser(session): CurrentUser,
    Path(id): Path<ServerId>,
    body: Body<FromTo>,
) -> Result<StatusCode> {
    let Json(body) = body.map_err(bad_body)?;
    state.files.copy(&session.user, &id, &body.from, &body.to).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST …/files/delete {paths}`: deletes files and directory trees; every path is checked before any goes.
pub async fn delete(
    State(state): State<AppState>,
    CurrentUser(session): CurrentUser,
    Path(id): Path<ServerId>,
    body: Body<Paths>,
) -> Result<StatusCode> {
    let Json(body) = body.map_err(bad_body)?;
    state.files.delete(&session.user, &id, &body.paths).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST …/files/mkdir {path}`.
pub async fn mkdir(
    State(state): State<AppState>,
    CurrentUser(session): CurrentUser,
    Path(id): Path<ServerId>,
    body: Body<OnePath>,
) -> Result<StatusCode> {
    let Json(body) = body.map_err(bad_body)?;
    state.files.mkdir(&session.user, &id, &body.path).await?;
    Ok(StatusCode::CREATED)
}
