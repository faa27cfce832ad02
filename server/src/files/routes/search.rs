use axum::Json;
use axum::extract::{Path, Query, State};
use catalog::ServerId;
use catalog::files::SearchResults;
use serde::Deserialize;

use crate::auth::middleware::CurrentUser;
use crate::error::Result;
use crate::state::AppState;

#[derive(Deserialize)]
pub struct SearchQuery {
    #[serde(default)]
    q: String,
    #[serde(default)]
    content: Option<String>,
}

/// `GET /api/servers/{id}/files/search?q=TEXT&content=true` → `{hits: [{path, line?, text?}], truncated}`: file
/// names holding the text and, with `content`, lines of text files that do, case-insensitively; bounded in hits
/// and time (`truncated` says it stopped early).
pub async fn search(
    State(state): State<AppState>,
    CurrentUser(session): CurrentUser,
    Path(id): Path<ServerId>,
    Query(query): Query<SearchQuery>,
) -> Result<Json<SearchResults>> {
    let content = match query.content.as_deref() {
        None | Some("false" | "0") => false,
        Some("true" | "1") => true,
        Some(other) => {
            return Err(
                app::error::AppError::invalid("content", format!("must be true or false, not `{other}`")).into()
            );
        }
    };
    Ok(Json(state.files.search(&session.user, &id, &query.q, content).await?))
}
