use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use catalog::ServerId;
use catalog::backups::Backup;

use crate::auth::middleware::CurrentUser;
use crate::error::Result;
use crate::state::AppState;

/// `GET /api/servers/{id}/backups/{backup}` → `{status: pending|ok|failed, size, sha256, error, …}`.
pub async fn show(
    State(state): State<AppState>,
    CurrentUser(session): CurrentUser,
    Path((id, backup)): Path<(ServerId, String)>,
) -> Result<Json<Backup>> {
    Ok(Json(state.backups.get(&session.user, &id, &backup).await?))
}

/// `DELETE /api/servers/{id}/backups/{backup}` → 204; a locked backup is refused (409).
pub async fn delete(
    State(state): State<AppState>,
    CurrentUser(session): CurrentUser,
    Path((id, backup)): Path<(ServerId, String)>,
) -> Result<StatusCode> {
    state.backups.delete(&session.user, &id, &backup).await?;
    Ok(StatusCode::NO_CONTENT)
}
