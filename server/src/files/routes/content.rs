use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use catalog::ServerId;
use catalog::files::{FileEntry, FileKind};

use super::PathQuery;
use crate::auth::middleware::CurrentUser;
use crate::error::Result;
use crate::files::Download;
use crate::state::AppState;

/// `GET /api/servers/{id}/files/content?path=F`: the file's bytes.
pub async fn read(
    State(state): State<AppState>,
    CurrentUser(session): CurrentUser,
    Path(id): Path<ServerId>,
    Query(query): Query<PathQuery>,
) -> Result<Response> {
    match state.files.download(&session.user, &id, &query.path).await? {
        Download::File { entry, body } => Ok((
            [
                (header::CONTENT_TYPE, "application/octet-stream".to_owned()),
                (header::CONTENT_LENGTH, entry.size.to_string()),
            ],
            Body::from_stream(body),
        )
            .into_response()),
        Download::Tree { .. } => Err(app::error::AppError::BadRequest {
            field: "path".into(),
            message: format!("`{}` is a directory, not a file", query.path),
        }
        .into()),
    }
}

/// `PUT /api/servers/{id}/files/content?path=F` with the new bytes as the body (streamed): creates or replaces
/// the file, keeping what it held as an earlier version → the file's entry.
pub async fn save(
    State(state): State<AppState>,
    CurrentUser(session): CurrentUser,
    Path(id): Path<ServerId>,
    Query(query): Query<PathQuery>,
    body: Body,
) -> Result<Json<FileEntry>> {
    let entry = state.files.save(&session.user, &id, &query.path, super::stream_of(body)).await?;
    debug_assert_eq!(entry.kind, FileKind::File);
    Ok(Json(entry))
}
