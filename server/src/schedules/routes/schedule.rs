use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use catalog::ServerId;
use catalog::backups::{Schedule, ScheduleChange};

use crate::auth::middleware::CurrentUser;
use crate::auth::routes::bad_body;
use crate::error::Result;
use crate::state::AppState;

/// `GET /api/servers/{id}/schedules/{schedule}`.
pub async fn show(
    State(state): State<AppState>,
    CurrentUser(session): CurrentUser,
    Path((id, schedule)): Path<(ServerId, String)>,
) -> Result<Json<Schedule>> {
    Ok(Json(state.schedules.get(&session.user, &id, &schedule).await?))
}

/// `PATCH /api/servers/{id}/schedules/{schedule}` with the fields to change.
pub async fn update(
    State(state): State<AppState>,
    CurrentUser(session): CurrentUser,
    Path((id, schedule)): Path<(ServerId, String)>,
    body: std::result::Result<Json<ScheduleChange>, JsonRejection>,
) -> Result<Json<Schedule>> {
    let Json(change) = body.map_err(bad_body)?;
    Ok(Json(state.schedules.update(&session.user, &id, &schedule, &change).await?))
}

/// `DELETE /api/servers/{id}/schedules/{schedule}` → 204 (its backups stay).
pub async fn delete(
    State(state): State<AppState>,
    CurrentUser(session): CurrentUser,
    Path((id, schedule)): Path<(ServerId, String)>,
) -> Result<StatusCode> {
    state.schedules.delete(&session.user, &id, &schedule).await?;
    Ok(StatusCode::NO_CONTENT)
}
