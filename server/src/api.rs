//! The REST API for API clients and probes: the catalog under `/api/games`, and `/health`, `/ready`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use catalog::{Plan, PublicGame};
use serde_json::{Value, json};

use app::error::AppError;
use app::servers::ssr::Servers as _;

use crate::error::Result;
use crate::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/api/games", get(list_games))
        .route("/api/games/{game}", get(get_game))
        .route("/api/games/{game}/plans", get(list_plans))
}

/// The process is up and serving HTTP.
async fn health() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// The process can do its work: the database answers, and the reconciler is not holding back a mass deletion
/// (which means the database may be the wrong one: see `reconciler::guard`). Why the database does not answer
/// goes to the log, not to whoever asks.
async fn ready(State(state): State<AppState>) -> Result<Response> {
    state.db.ping().await.map_err(|error| {
        tracing::warn!(error = %crate::error::chain(&error), "not ready: the database does not answer");
        AppError::Unavailable("database unreachable".into())
    })?;
    let held = state.guard.held();
    if !held.is_empty() {
        let reasons: Vec<String> = held.iter().map(ToString::to_string).collect();
        let body = json!({ "status": "holding", "held": held, "message": reasons.join("; ") });
        return Ok((StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response());
    }
    // What this host cannot enforce does not make it unready, but the operator should hear of it.
    let limitations = state.servers.host_limitations();
    if limitations.is_empty() {
        return Ok(Json(json!({ "status": "ready" })).into_response());
    }
    Ok(Json(json!({ "status": "ready", "details": limitations })).into_response())
}

/// Every game as the public may see it: never how a game runs (its image, environment or command), but
/// whether this host can run it, and its variables with their rules.
async fn list_games(State(state): State<AppState>) -> Json<Vec<PublicGame>> {
    Json(state.servers.games())
}

async fn get_game(State(state): State<AppState>, Path(game): Path<String>) -> Result<Json<PublicGame>> {
    find_game(&state, &game)?;
    let public = state.servers.games().into_iter().find(|public| public.id == game);
    public.map(Json).ok_or_else(|| AppError::NotFound(format!("there is no game `{game}`")).into())
}

async fn list_plans(State(state): State<AppState>, Path(game): Path<String>) -> Result<Json<Vec<Plan>>> {
    find_game(&state, &game).map(|game| Json(game.plans.clone()))
}

fn find_game<'a>(state: &'a AppState, id: &str) -> Result<&'a catalog::Game> {
    state.catalog.game(id).ok_or_else(|| AppError::NotFound(format!("there is no game `{id}` in the catalog")).into())
}
