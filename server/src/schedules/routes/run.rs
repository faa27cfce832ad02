use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use catalog::ServerId;
use catalog::backups::Schedule;

use crate::auth::middleware::CurrentUser;
use crate::error::Result;
use crate::state::AppState;

/// `POST /api/servers/{id}/schedules/{schedule}/run` → 202: its tasks start now; `last_result` says how they
/// went once they are done.
pub async fn run(
    State(state): State<AppState>,
    CurrentUser(session): CurrentUser,
    Path((id, schedule)): Path<(ServerId, String)>,
) -> Result<(StatusCode, Json<Schedule>)> {
    Ok((StatusCode::ACCEPTED, Json(state.schedules.run_now(&session.user, &id, &schedule).await?)))
}
