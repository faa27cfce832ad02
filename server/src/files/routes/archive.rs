//! Making and unpacking archives inside the server's files.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use catalog::ServerId;
use serde::{Deserialize, Serialize};

use crate::auth::middleware::CurrentUser;
use crate::auth::routes::bad_body;
use crate::error::Result;
use crate::state::AppState;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Compress {
    paths: Vec<String>,
    to: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Extract {
    path: String,
    #[serde(default)]
    to: String,
}

#[derive(Serialize)]
pub struct Extracted {
    files: usize,
}

/// `POST …/files/compress {paths, to}`: packs the paths into the archive `to`, whose name gives the format
/// (`.zip`, `.tar`, `.tar.gz`, `.tar.zst`) → 201.
pub async fn compress(
    State(state): State<AppState>,
    CurrentUser(session): CurrentUser,
    Path(id): Path<ServerId>,
    body: std::result::Result<Json<Compress>, JsonRejection>,
) -> Result<StatusCode> {
    let Json(body) = body.map_err(bad_body)?;
    state.files.compress(&session.user, &id, &body.paths, &body.to).await?;
    Ok(StatusCode::CREATED)
}

/// `POST …/files/extract {path, to}`: unpacks the archive into the directory `to` (the root by default), never
/// past the plan's storage (counted as written: an archive that lies about its sizes is stopped) → `{files}`.
pub async fn extract(
    State(state): State<AppState>,
    CurrentUser(session): CurrentUser,
    Path(id): Path<ServerId>,
    body: std::result::Result<Json<Extract>, JsonRejection>,
) -> Result<Json<Extracted>> {
    let Json(body) = body.map_err(bad_body)?;
    let files = state.files.extract(&session.user, &id, &body.path, &body.to).await?;
    Ok(Json(Extracted { files }))
}
