//! Earlier versions of files saved from the browser.

use axum::Json;
use axum::extract::{Path, Query, State};
use catalog::ServerId;
use catalog::files::{FileEntry, FileVersion};

use super::PathQuery;
use crate::auth::middleware::CurrentUser;
use crate::error::Result;
use crate::state::AppState;

/// `GET …/files/versions?path=F` → the earlier versions kept, newest first.
pub async fn list(
    State(state): State<AppState>,
    CurrentUser(session): CurrentUser,
    Path(id): Path<ServerId>,
    Query(query): Query<PathQuery>,
) -> Result<Json<Vec<FileVersion>>> {
    Ok(Json(state.files.versions(&session.user, &id, &query.path).await?))
}

/// `GET …/files/versions/{version}?path=F` → that version's text.
pub async fn show(
    State(state): State<AppState>,
    CurrentUser(session): CurrentUser,
    Path((id, version)): Path<(ServerId, String)>,
    Query(query): Query<PathQuery>,
) -> Result<String> {
    Ok(state.files.version(&session.user, &id, &query.path, &version).await?)
}

/// `POST …/files/versions/{version}/restore?path=F`: puts it back (what it replaces is kept in turn).
pub async fn restore(
    State(state): State<AppState>,
    CurrentUser(session): CurrentUser,
    Path((id, version)): Path<(ServerId, String)>,
    Query(query): Query<PathQuery>,
) -> Result<Json<FileEntry>> {
    Ok(Json(state.files.restore_version(&session.user, &id, &query.path, &version).await?))
}
