//! `GET /api/servers/{id}/console`: a server's live console over a WebSocket (messages in
//! [`catalog::console`]).
//!
//! Everything is checked before the upgrade, with the answers every `/api` route gives: no session → 401 (by
//! the middleware), not the owner or an administrator → 404, a browser on another site → 403 (a WebSocket
//! handshake is a GET, which the CSRF middleware lets through, and browsers send cookies with it).

use std::time::Duration;

use app::error::AppError;
use app::servers::ssr::Servers;
use axum::Router;
use axum::extract::ws::{Message, Utf8Bytes, WebSocket, WebSocketUpgrade, rejection::WebSocketUpgradeRejection};
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use catalog::console::{ConsoleCommand, ConsoleEvent, MAX_COMMAND_LEN};
use futures_util::{SinkExt as _, StreamExt as _};

use super::Viewer;
use crate::auth::middleware::{CurrentUser, cross_site, has_bearer_token};
use crate::error::Result;
use crate::state::AppState;

/// Pings keep idle consoles open through proxies that close quiet connections (cloudflared, load balancers).
const PING_EVERY: Duration = Duration::from_secs(30);

pub fn routes() -> Router<AppState> {
    Router::new().route("/api/servers/{id}/console", get(console))
}

async fn console(
    State(state): State<AppState>,
    CurrentUser(session): CurrentUser,
    Path(id): Path<catalog::ServerId>,
    headers: HeaderMap,
    upgrade: std::result::Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response> {
    let server = Servers::get(&*state.servers, &session.user, &id).await?;
    if !has_bearer_token(&headers)
        && let Some(refusal) = cross_site(&state, &headers)
    {
        return Err(refusal.into());
    }
    let upgrade = match upgrade {
        Ok(upgrade) => upgrade,
        Err(rejection) => return Ok(rejection.into_response()),
    };
    let viewer = state.consoles.watch(&server);
    let (servers, user) = (state.servers.clone(), session.user);
    Ok(upgrade.max_message_size(MAX_COMMAND_LEN * 4).on_upgrade(move |socket| async move {
        tracing::debug!(server = %viewer.server_id(), user = %user.id, "console opened");
        serve(socket, viewer, move |line| {
            let (servers, user, id) = (servers.clone(), user.clone(), id.clone());
            async move { servers.type_command(&user, &id, &line).await }
        })
        .await;
    }))
}

/// Passes the channel's messages to one viewer and its commands to the game, until either side closes.
async fn serve<F, Fut>(socket: WebSocket, mut viewer: Viewer, send_command: F)
where
    F: Fn(String) -> Fut,
    Fut: Future<Output = std::result::Result<(), AppError>>,
{
    let (mut sink, mut incoming) = socket.split();
    let mut ping = tokio::time::interval(PING_EVERY);
    ping.tick().await;
    loop {
        let reply = tokio::select! {
            event = viewer.next() => event,
            message = incoming.next() => match message {
                Some(Ok(Message::Text(text))) => match command(&text) {
                    Ok(line) => match send_command(line).await {
                        Ok(()) => continue,
                        Err(error) => ConsoleEvent::Error { message: error.to_string() },
                    },
                    Err(message) => ConsoleEvent::Error { message },
                },
                Some(Ok(Message::Binary(_))) => ConsoleEvent::Error { message: "command: send JSON text".into() },
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                Some(Ok(Message::Close(_)) | Err(_)) | None => return,
            },
            _ = ping.tick() => {
                if sink.send(Message::Ping(Default::default())).await.is_err() {
                    return;
                }
                continue;
            }
        };
        let Ok(json) = serde_json::to_string(&reply) else { continue };
        if sink.send(Message::Text(Utf8Bytes::from(json))).await.is_err() {
            return;
        }
    }
}

/// A command line from a viewer's message, or why it is refused.
fn command(text: &str) -> std::result::Result<String, String> {
    let command: ConsoleCommand =
        serde_json::from_str(text).map_err(|_| r#"command: expected {"type":"command","line":"…"}"#.to_owned())?;
    command.check().map(str::to_owned)
}
