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

/// `GET /api/servers/{id}/schedules` → the server's schedules, each with its last and next run.
pub async fn list(
    State(state): State<AppState>,
    CurrentUser(session): CurrentUser,
    Path(id): Path<ServerId>,
) -> Result<Json<Vec<Schedule>>> {
    Ok(Json(state.schedules.list(&session.user, &id).await?))
}

/// `POST /api/servers/{id}/schedules {name, cron, timezone?, enabled?, only_when_online?, tasks, retention?}` → 201.
pub async fn create(
    State(state): State<AppState>,
    CurrentUser(session): CurrentUser,
    Path(id): Path<ServerId>,
    body: std::result::Result<Json<ScheduleChange>, JsonRejection>,
) -> Result<(StatusCode, Json<Schedule>)> {
    let Json(change) = body.map_err(bad_body)?;
    Ok((StatusCode::CREATED, Json(state.schedules.create(&session.user, &id, &change).await?)))
}
