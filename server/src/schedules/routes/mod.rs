//! `/api/servers/{id}/schedules…`: one file per route. Handlers parse, call
//! [`crate::schedules::ScheduleService`] and answer.

mod list;
mod run;
mod schedule;

use axum::Router;
use axum::routing::{get, post};

use crate::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/servers/{id}/schedules", get(list::list).post(list::create))
        .route(
            "/api/servers/{id}/schedules/{schedule}",
            get(schedule::show).patch(schedule::update).delete(schedule::delete),
        )
        .route("/api/servers/{id}/schedules/{schedule}/run", post(run::run))
}
