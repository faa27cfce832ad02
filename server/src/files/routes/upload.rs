use axum::Json;
use axum::extract::multipart::{Multipart, MultipartRejection};
use axum::extract::{Path, Query, State};
use catalog::ServerId;
use futures_util::StreamExt as _;
use serde::Serialize;

use super::PathQuery;
use crate::auth::middleware::CurrentUser;
use crate::error::Result;
use crate::state::AppState;

#[derive(Serialize)]
pub struct Uploaded {
    files: Vec<UploadedFile>,
}

#[derive(Serialize)]
struct UploadedFile {
    name: String,
    size: u64,
}

/// `POST /api/servers/{id}/files/upload?path=DIR` (multipart, one part per file, each with its file name):
/// every file is written into `DIR` as it arrives, never held whole; the plan's storage bounds them.
pub async fn upload(
    State(state): State<AppState>,
    CurrentUser(session): CurrentUser,
    Path(id): Path<ServerId>,
    Query(query): Query<PathQuery>,
    multipart: std::result::Result<Multipart, MultipartRejection>,
) -> Result<Json<Uploaded>> {
    let bad = |message: String| app::error::AppError::invalid("file", message);
    let mut multipart = multipart.map_err(|rejection| bad(rejection.body_text()))?;
    let opened = state.files.open(&session.user, &id).await?;
    let mut files = Vec::new();
    while let Some(field) = multipart.next_field().await.map_err(|e| bad(e.body_text()))? {
        let Some(name) = field.file_name().map(str::to_owned) else { continue };
        let body = field.map(|piece| piece.map_err(std::io::Error::other)).boxed();
        let size = state.files.upload(&session.user, &opened, &query.path, &name, body).await?;
        files.push(UploadedFile { name, size });
    }
    if files.is_empty() {
        return Err(bad("the upload holds no file".into()).into());
    }
    Ok(Json(Uploaded { files }))
}
