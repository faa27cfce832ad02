use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use catalog::ServerId;
use catalog::backups::{Backup, NewBackup};

use crate::auth::middleware::CurrentUser;
use crate::auth::routes::bad_body;
use crate::error::Result;
use crate::state::AppState;

/// `GET /api/servers/{id}/backups` → the server's backups, newest first.
pub async fn list(
    State(state): State<AppState>,
    CurrentUser(session): CurrentUser,
    Path(id): Path<ServerId>,
) -> Result<Json<Vec<Backup>>> {
    Ok(Json(state.backups.list(&session.user, &id).await?))
}

/// `POST /api/servers/{id}/backups {name, ignore}` → 202 with the backup, `pending` until it is taken.
pub async fn create(
    State(state): State<AppState>,
    CurrentUser(session): CurrentUser,
    Path(id): Path<ServerId>,
    body: std::result::Result<Json<NewBackup>, JsonRejection>,
) -> Result<(StatusCode, Json<Backup>)> {
    let Json(new) = body.map_err(bad_body)?;
    Ok((StatusCode::ACCEPTED, Json(state.backups.create(&session.user, &id, &new, None).await?)))
}
