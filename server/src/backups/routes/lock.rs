use axum::Json;
use axum::extract::{Path, State};
use catalog::ServerId;
use catalog::backups::Backup;

use crate::auth::middleware::CurrentUser;
use crate::error::Result;
use crate::state::AppState;

/// `POST /api/servers/{id}/backups/{backup}/lock`: kept from deletion and rotation until unlocked.
pub async fn lock(
    State(state): State<AppState>,
    CurrentUser(session): CurrentUser,
    Path((id, backup)): Path<(ServerId, String)>,
) -> Result<Json<Backup>> {
    Ok(Json(state.backups.set_locked(&session.user, &id, &backup, true).await?))
}

/// `POST /api/servers/{id}/backups/{backup}/unlock`.
pub async fn unlock(
    State(state): State<AppState>,
    CurrentUser(session): CurrentUser,
    Path((id, backup)): Path<(ServerId, String)>,
) -> Result<Json<Backup>> {
    Ok(Json(state.backups.set_locked(&session.user, &id, &backup, false).await?))
}
