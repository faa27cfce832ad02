//! The REST API for API clients and probes: the catalog under `/api/games`, and `/health`, `/ready`.

use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};
use catalog::{Plan, PublicGame};
use serde_json::{Value, json};

use app::error::AppError;

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

/// The process can do its work: the database answers. Why it does not goes to the log, not to whoever asks.
async fn ready(State(state): State<AppState>) -> Result<Json<Value>> {
    state.db.ping().await.map_err(|error| {
        tracing::warn!(error = %crate::error::chain(&error), "not ready: the database does not answer");
        AppError::Unavailable("database unreachable".into())
    })?;
    Ok(Json(json!({ "status": "ready" })))
}

/// Every game as the public may see it: never how a game runs (its image, environment or command).
async fn list_games(State(state): State<AppState>) -> Json<Vec<PublicGame>> {
    Json(state.catalog.public())
}

async fn get_game(State(state): State<AppState>, Path(game): Path<String>) -> Result<Json<PublicGame>> {
    find_game(&state, &game).map(|game| Json(game.public()))
}

async fn list_plans(State(state): State<AppState>, Path(game): Path<String>) -> Result<Json<Vec<Plan>>> {
    find_game(&state, &game).map(|game| Json(game.plans.clone()))
}

fn find_game<'a>(state: &'a AppState, id: &str) -> Result<&'a catalog::Game> {
    state.catalog.game(id).ok_or_else(|| AppError::NotFound(format!("there is no game `{id}` in the catalog")).into())
}
