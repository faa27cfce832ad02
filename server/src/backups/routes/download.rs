use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use catalog::ServerId;

use crate::auth::middleware::CurrentUser;
use crate::error::Result;
use crate::state::AppState;

/// `GET /api/servers/{id}/backups/{backup}/download`: the archive (`.tar.zst`) as stored, streamed from the
/// store.
pub async fn download(
    State(state): State<AppState>,
    CurrentUser(session): CurrentUser,
    Path((id, backup)): Path<(ServerId, String)>,
) -> Result<Response> {
    let (backup, body) = state.backups.download(&session.user, &id, &backup).await?;
    let mut headers = vec![
        (header::CONTENT_TYPE, "application/zstd".to_owned()),
        (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{id}-{}.tar.zst\"", backup.id)),
    ];
    if let Some(size) = backup.size {
        headers.push((header::CONTENT_LENGTH, size.to_string()));
    }
    let mut response = Body::from_stream(body).into_response();
    for (name, value) in headers {
        if let Ok(value) = value.parse() {
            response.headers_mut().insert(name, value);
        }
    }
    Ok(response)
}
