use axum::Json;
use axum::extract::{Path, Query, State};
use catalog::ServerId;
use catalog::files::{FileListing, MAX_PAGE};
use serde::Deserialize;

use crate::auth::middleware::CurrentUser;
use crate::error::Result;
use crate::state::AppState;

#[derive(Deserialize)]
pub struct ListQuery {
    #[serde(default)]
    path: String,
    offset: Option<String>,
    limit: Option<String>,
}

/// `GET /api/servers/{id}/files?path=DIR&offset=N&limit=M` → `{path, entries: [{name, kind, size, modified}],
/// total, offset}`: directories first, then by name; pages of at most 1000.
pub async fn list(
    State(state): State<AppState>,
    CurrentUser(session): CurrentUser,
    Path(id): Path<ServerId>,
    Query(query): Query<ListQuery>,
) -> Result<Json<FileListing>> {
    let offset = super::number("offset", query.offset.as_deref(), 0)?;
    let limit = super::number("limit", query.limit.as_deref(), MAX_PAGE)?;
    Ok(Json(state.files.list(&session.user, &id, &query.path, offset, limit).await?))
}
