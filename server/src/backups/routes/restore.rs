use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use catalog::ServerId;
use catalog::backups::Backup;

use crate::auth::middleware::CurrentUser;
use crate::error::Result;
use crate::state::AppState;

/// `POST /api/servers/{id}/backups/{backup}/restore` → 202: the server is stopped, its files replaced by the
/// backup's once its checksum is confirmed, and started again if it was running.
pub async fn restore(
    State(state): State<AppState>,
    CurrentUser(session): CurrentUser,
    Path((id, backup)): Path<(ServerId, String)>,
) -> Result<(StatusCode, Json<Backup>)> {
    Ok((StatusCode::ACCEPTED, Json(state.backups.restore(&session.user, &id, &backup).await?)))
}
