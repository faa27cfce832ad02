use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use catalog::ServerId;

use super::PathQuery;
use crate::auth::middleware::CurrentUser;
use crate::error::Result;
use crate::files::Download;
use crate::state::AppState;

/// `GET /api/servers/{id}/files/download?path=P`: a file as an attachment, or a directory as a `.tar` stream
/// (made while it is sent, never held whole).
pub async fn download(
    State(state): State<AppState>,
    CurrentUser(session): CurrentUser,
    Path(id): Path<ServerId>,
    Query(query): Query<PathQuery>,
) -> Result<Response> {
    Ok(match state.files.download(&session.user, &id, &query.path).await? {
        Download::File { entry, body } => (
            [
                (header::CONTENT_TYPE, "application/octet-stream".to_owned()),
                (header::CONTENT_LENGTH, entry.size.to_string()),
                (header::CONTENT_DISPOSITION, attachment(&entry.name)),
            ],
            Body::from_stream(body),
        )
            .into_response(),
        Download::Tree { name, body } => (
            [
                (header::CONTENT_TYPE, "application/x-tar".to_owned()),
                (header::CONTENT_DISPOSITION, attachment(&format!("{name}.tar"))),
            ],
            Body::from_stream(body),
        )
            .into_response(),
    })
}

/// `attachment; filename="…"` with anything but plain printable ASCII replaced (a header cannot carry it
/// raw, and a quote would end the name).
fn attachment(name: &str) -> String {
    let safe: String =
        name.chars().map(|c| if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' { c } else { '_' }).collect();
    format!("attachment; filename=\"{safe}\"")
}
