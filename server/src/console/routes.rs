//! `GET /api/servers/{id}/console`: a server's live console over a WebSocket (messages in
//! [`catalog::console`]).
//!
//! Everything is checked before the upgrade, with the answers every `/api` route gives: no session → 401 (by
//! the middleware), not the owner or an administrator → 404, a browser on another site → 403 (a WebSocket
//! handshake is a GET, which the CSRF middleware lets through, and browsers send cookies with it), more than
//! a user's share of live connections → 429. After the upgrade the session is checked again, for each command
//! and every few seconds; when it has ended the console says so and closes.

use std::time::Duration;

use app::error::AppError;
use app::servers::ssr::Servers;
use axum::Router;
use axum::extract::ws::{
    CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade, close_code, rejection::WebSocketUpgradeRejection,
};
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
    let slot = state.auth.open_live(&session)?;
    let viewer = state.consoles.watch(&server);
    let ended = state.auth.session_ended(&session);
    let (servers, auth, user, session_id) = (state.servers.clone(), state.auth.clone(), session.user, session.id);
    Ok(upgrade.max_message_size(MAX_COMMAND_LEN * 4).on_upgrade(move |socket| async move {
        let _slot = slot;
        tracing::debug!(server = %viewer.server_id(), user = %user.id, "console opened");
        serve(socket, viewer, ended, move |line| {
            let (servers, auth, id, session_id) = (servers.clone(), auth.clone(), id.clone(), session_id.clone());
            async move {
                // Each command is checked against the session and its user as they are now, not as they were at
                // the upgrade (an administrator demoted since may no longer type on others' consoles).
                let Some(user) = auth.current_user(&session_id).await? else {
                    return Err(AppError::Unauthorized(SESSION_ENDED.into()));
                };
                servers.type_command(&user, &id, &line).await
            }
        })
        .await;
    }))
}

/// Passes the channel's messages to one viewer and its commands to the game, until either side closes or the
/// viewer's session ends.
async fn serve<F, Fut>(socket: WebSocket, mut viewer: Viewer, ended: impl Future<Output = ()>, send_command: F)
where
    F: Fn(String) -> Fut,
    Fut: Future<Output = std::result::Result<(), AppError>>,
{
    let (mut sink, mut incoming) = socket.split();
    let mut ping = tokio::time::interval(PING_EVERY);
    ping.tick().await;
    let mut ended = std::pin::pin!(ended);
    // A viewer that answers nothing for two pings is gone (a dropped mobile connection, say): its place among
    // its user's live connections is given back rather than held until the socket times out.
    let mut heard = tokio::time::Instant::now();
    loop {
        let reply = tokio::select! {
            event = viewer.next() => event,
            message = incoming.next() => match message.inspect(|_| heard = tokio::time::Instant::now()) {
                Some(Ok(Message::Text(text))) => match command(&text) {
                    Ok(line) => match send_command(line).await {
                        Ok(()) => continue,
                        Err(AppError::Unauthorized(_)) => return close(&mut sink).await,
                        Err(error) => ConsoleEvent::Error { message: error.to_string() },
                    },
                    Err(message) => ConsoleEvent::Error { message },
                },
                Some(Ok(Message::Binary(_))) => ConsoleEvent::Error { message: "command: send JSON text".into() },
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                Some(Ok(Message::Close(_)) | Err(_)) | None => return,
            },
            () = &mut ended => return close(&mut sink).await,
            _ = ping.tick() => {
                if heard.elapsed() > 2 * PING_EVERY || sink.send(Message::Ping(Default::default())).await.is_err() {
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

const SESSION_ENDED: &str = "the session has ended; sign in again";

/// Tells the viewer why the console closes (policy violation, 1008, with the reason), then closes it.
async fn close(sink: &mut (impl futures_util::Sink<Message> + Unpin)) {
    let error = ConsoleEvent::Error { message: SESSION_ENDED.into() };
    if let Ok(json) = serde_json::to_string(&error) {
        let _ = sink.send(Message::Text(Utf8Bytes::from(json))).await;
    }
    let frame = CloseFrame { code: close_code::POLICY, reason: Utf8Bytes::from_static(SESSION_ENDED) };
    let _ = sink.send(Message::Close(Some(frame))).await;
}

/// A command line from a viewer's message, or why it is refused.
fn command(text: &str) -> std::result::Result<String, String> {
    let command: ConsoleCommand =
        serde_json::from_str(text).map_err(|_| r#"command: expected {"type":"command","line":"…"}"#.to_owned())?;
    command.check().map(str::to_owned)
}
