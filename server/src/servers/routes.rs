//! REST routes for game servers. All need a signed-in user; someone else's server answers 404.

use app::error::AppError;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use catalog::Action;
use catalog::gameserver::GameServer;
use serde::Deserialize;

use crate::auth::middleware::CurrentUser;
use crate::auth::routes::bad_body;
use crate::error::Result;
use crate::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/servers", get(list).post(create))
        .route("/api/servers/{id}", get(show).delete(delete))
        .route("/api/servers/{id}/{action}", post(act))
}

#[derive(Deserialize)]
struct ListQuery {
    #[serde(default)]
    all: bool,
}

async fn list(
    State(state): State<AppState>,
    CurrentUser(session): CurrentUser,
    Query(query): Query<ListQuery>,
) -> Result<Json<Vec<GameServer>>> {
    Ok(Json(state.servers.list(&session.user, query.all).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewServer {
    name: String,
    game: String,
    plan: String,
}

async fn create(
    State(state): State<AppState>,
    CurrentUser(session): CurrentUser,
    body: std::result::Result<Json<NewServer>, JsonRejection>,
) -> Result<(StatusCode, Json<GameServer>)> {
    let Json(new) = body.map_err(bad_body)?;
    let server = state.servers.create(&session.user, &new.name, &new.game, &new.plan).await?;
    Ok((StatusCode::CREATED, Json(server)))
}

async fn show(
    State(state): State<AppState>,
    CurrentUser(session): CurrentUser,
    Path(id): Path<String>,
) -> Result<Json<GameServer>> {
    Ok(Json(state.servers.get(&session.user, &id).await?))
}

/// 202: the deletion is recorded; the clean-up happens after the response.
async fn delete(
    State(state): State<AppState>,
    CurrentUser(session): CurrentUser,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<GameServer>)> {
    let server = state.servers.act(&session.user, &id, Action::Delete).await?;
    Ok((StatusCode::ACCEPTED, Json(server)))
}

/// `POST /api/servers/{id}/start|stop|restart` → 202 with the server in its new desired state.
async fn act(
    State(state): State<AppState>,
    CurrentUser(session): CurrentUser,
    Path((id, action)): Path<(String, String)>,
) -> Result<(StatusCode, Json<GameServer>)> {
    let action = match action.as_str() {
        "start" => Action::Start,
        "stop" => Action::Stop,
        "restart" => Action::Restart,
        other => return Err(AppError::NotFound(format!("there is no server action `{other}`")).into()),
    };
    let server = state.servers.act(&session.user, &id, action).await?;
    Ok((StatusCode::ACCEPTED, Json(server)))
}
