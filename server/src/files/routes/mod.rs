//! `/api/servers/{id}/files…`: the file manager's REST routes, one file per route (or per family of small
//! ones). Handlers parse, call [`crate::files::FileService`] and answer.

mod archive;
mod content;
mod download;
mod edit;
mod list;
mod search;
mod upload;
mod versions;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};

use crate::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/servers/{id}/files", get(list::list))
        .route("/api/servers/{id}/files/search", get(search::search))
        .route("/api/servers/{id}/files/content", get(content::read).put(content::save))
        // Streamed to disk and held to the plan's storage, so not to axum's 2 MB default either.
        .route("/api/servers/{id}/files/upload", post(upload::upload).layer(DefaultBodyLimit::disable()))
        .route("/api/servers/{id}/files/download", get(download::download))
        .route("/api/servers/{id}/files/rename", post(edit::rename))
        .route("/api/servers/{id}/files/copy", post(edit::copy))
        .route("/api/servers/{id}/files/delete", post(edit::delete))
        .route("/api/servers/{id}/files/mkdir", post(edit::mkdir))
        .route("/api/servers/{id}/files/compress", post(archive::compress))
        .route("/api/servers/{id}/files/extract", post(archive::extract))
        .route("/api/servers/{id}/files/versions", get(versions::list))
        .route("/api/servers/{id}/files/versions/{version}", get(versions::show))
        .route("/api/servers/{id}/files/versions/{version}/restore", post(versions::restore))
}

/// `?path=…` (the server's root when absent).
#[derive(serde::Deserialize)]
pub struct PathQuery {
    #[serde(default)]
    pub path: String,
}

/// A number from the query string, or 422 naming it.
fn number(field: &str, text: Option<&str>, default: usize) -> Result<usize, app::error::AppError> {
    match text {
        None => Ok(default),
        Some(text) => {
            text.parse().map_err(|_| app::error::AppError::invalid(field, format!("`{text}` is not a number")))
        }
    }
}

/// A request body's byte stream, as the file work reads it.
fn stream_of(body: axum::body::Body) -> crate::orchestrator::files::ByteStream {
    use futures_util::StreamExt as _;
    body.into_data_stream().map(|piece| piece.map_err(std::io::Error::other)).boxed()
}
