//! REST routes for game servers. All need a signed-in user; someone else's server answers 404.

use std::collections::BTreeMap;
use std::convert::Infallible;

use app::error::AppError;
use app::servers::ssr::Servers as _;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::routing::{get, post};
use axum::{Json, Router};
use catalog::gameserver::{DiskUsage, GameServer, NewServer, ServerEvent, ServerVariables};
use catalog::{Action, ServerId};
use futures_util::{Stream, StreamExt as _, stream};
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast::error::RecvError;

use crate::auth::middleware::CurrentUser;
use crate::auth::routes::bad_body;
use crate::error::Result;
use crate::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/servers", get(list).post(create))
        .route("/api/servers/events", get(events))
        .route("/api/servers/{id}", get(show).delete(delete))
        .route("/api/servers/{id}/logs", get(logs))
        .route("/api/servers/{id}/variables", get(variables).put(set_variables))
        .route("/api/servers/{id}/disk", get(disk))
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

/// `GET /api/servers/events` (`?all=true` for an administrator's view of everyone's): server-sent events,
/// each a [`ServerEvent`] as JSON. It opens with every server as it is now, so a page that (re)connects
/// cannot miss what changed while it was away.
async fn events(
    State(state): State<AppState>,
    CurrentUser(session): CurrentUser,
    Query(query): Query<ListQuery>,
) -> Result<Sse<impl Stream<Item = std::result::Result<Event, Infallible>>>> {
    // Subscribed before reading the snapshot: a change in between then arrives twice, never not at all.
    let changes = state.servers.subscribe();
    let snapshot = state.servers.list(&session.user, query.all).await?;
    let user = session.user.clone();
    let visible = move |event: &ServerEvent| query.all || *event.user_id() == user.id;
    let first = stream::iter(snapshot.into_iter().map(|server| ServerEvent::Changed { server: Box::new(server) }));
    let then = stream::unfold((changes, visible), |(mut changes, visible)| async move {
        loop {
            match changes.recv().await {
                Ok(event) if visible(&event) => return Some((Some(event), (changes, visible))),
                Ok(_) => {}
                // Too slow to keep up: end the stream; the browser reconnects and gets a fresh snapshot.
                Err(RecvError::Lagged(_)) => return Some((None, (changes, visible))),
                Err(RecvError::Closed) => return None,
            }
        }
    })
    .take_while(|event| std::future::ready(event.is_some()))
    .filter_map(std::future::ready);
    // The stream ends with the session (the browser's reconnect then gets a 401), and holds its user's place
    // among live connections until it does.
    let slot = state.auth.open_live(&session)?;
    let events = first.chain(then).take_until(state.auth.session_ended(&session)).map(move |event| {
        let _held = &slot;
        Ok(Event::default().json_data(&event).unwrap_or_default())
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::default()))
}

#[derive(Deserialize)]
struct LogQuery {
    tail: Option<String>,
}

#[derive(Serialize)]
struct LogLines {
    lines: Vec<String>,
}

/// `GET /api/servers/{id}/logs?tail=N`: the last N lines of the game's output (default 100).
async fn logs(
    State(state): State<AppState>,
    CurrentUser(session): CurrentUser,
    Path(id): Path<ServerId>,
    Query(query): Query<LogQuery>,
) -> Result<Json<LogLines>> {
    let tail = match query.tail {
        None => 100,
        Some(text) => text.parse().map_err(|_| AppError::invalid("tail", format!("`{text}` is not a number")))?,
    };
    Ok(Json(LogLines { lines: state.servers.logs(&session.user, &id, tail).await? }))
}

/// `POST /api/servers {name, game, plan, variables?, accept_eula?}` → 201.
async fn create(
    State(state): State<AppState>,
    CurrentUser(session): CurrentUser,
    body: std::result::Result<Json<NewServer>, JsonRejection>,
) -> Result<(StatusCode, Json<GameServer>)> {
    let Json(new) = body.map_err(bad_body)?;
    let server = state.servers.create(&session.user, &new).await?;
    Ok((StatusCode::CREATED, Json(server)))
}

/// `GET /api/servers/{id}/disk`: `{used_bytes, limit_bytes}` (the plan's storage); `404` where the host cannot
/// tell (a cluster).
async fn disk(
    State(state): State<AppState>,
    CurrentUser(session): CurrentUser,
    Path(id): Path<ServerId>,
) -> Result<Json<DiskUsage>> {
    let usage = state.servers.disk(&session.user, &id).await?;
    Ok(Json(usage.ok_or_else(|| AppError::NotFound("this host does not measure its servers' disks".into()))?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct VariableChange {
    values: BTreeMap<String, String>,
}

/// `GET /api/servers/{id}/variables`: the server's startup variables, their rules and values.
async fn variables(
    State(state): State<AppState>,
    CurrentUser(session): CurrentUser,
    Path(id): Path<ServerId>,
) -> Result<Json<ServerVariables>> {
    Ok(Json(state.servers.variables(&session.user, &id).await?))
}

/// `PUT /api/servers/{id}/variables {"values": {KEY: value}}`: 422 naming a variable and its rule, and nothing
/// changed, when one is refused.
async fn set_variables(
    State(state): State<AppState>,
    CurrentUser(session): CurrentUser,
    Path(id): Path<ServerId>,
    body: std::result::Result<Json<VariableChange>, JsonRejection>,
) -> Result<Json<ServerVariables>> {
    let Json(change) = body.map_err(bad_body)?;
    Ok(Json(state.servers.set_variables(&session.user, &id, &change.values).await?))
}

async fn show(
    State(state): State<AppState>,
    CurrentUser(session): CurrentUser,
    Path(id): Path<ServerId>,
) -> Result<Json<GameServer>> {
    Ok(Json(state.servers.get(&session.user, &id).await?))
}

/// 202: the deletion is recorded; the clean-up happens after the response.
async fn delete(
    State(state): State<AppState>,
    CurrentUser(session): CurrentUser,
    Path(id): Path<ServerId>,
) -> Result<(StatusCode, Json<GameServer>)> {
    let server = state.servers.act(&session.user, &id, Action::Delete).await?;
    Ok((StatusCode::ACCEPTED, Json(server)))
}

/// `POST /api/servers/{id}/start|stop|restart|reinstall` → 202 with the server in its new desired state.
async fn act(
    State(state): State<AppState>,
    CurrentUser(session): CurrentUser,
    Path((id, action)): Path<(ServerId, String)>,
) -> Result<(StatusCode, Json<GameServer>)> {
    let action = match action.as_str() {
        "start" => Action::Start,
        "stop" => Action::Stop,
        "restart" => Action::Restart,
        "reinstall" => Action::Reinstall,
        other => return Err(AppError::NotFound(format!("there is no server action `{other}`")).into()),
    };
    let server = state.servers.act(&session.user, &id, action).await?;
    Ok((StatusCode::ACCEPTED, Json(server)))
}
