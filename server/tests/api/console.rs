//! The live console (`GET /api/servers/{id}/console`): what viewers see over a real WebSocket, on both drivers,
//! with the demo game's real output and standard input.

use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::{self, Message};

use crate::every_driver;
use crate::helpers::{Backend, TestApp, TestDriver, spawn_app, spawn_app_on, spawn_app_with};

every_driver!(viewers_share_one_stream_type_commands_and_follow_stop_and_start);

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// One viewer's console connection, read message by message.
pub struct Viewer {
    socket: Socket,
}

/// How a WebSocket handshake was answered: the HTTP status of a refusal.
async fn handshake(app: &TestApp, id: &str, headers: &[(&str, String)]) -> Result<Viewer, u16> {
    let url = app.url(&format!("/api/servers/{id}/console")).replacen("http://", "ws://", 1);
    let mut request = url.into_client_request().expect("request");
    for (name, value) in headers {
        let name = tungstenite::http::HeaderName::from_bytes(name.as_bytes()).expect("header name");
        request.headers_mut().insert(name, value.parse().expect("header"));
    }
    match tokio_tungstenite::connect_async(request).await {
        Ok((socket, _)) => Ok(Viewer { socket }),
        Err(tungstenite::Error::Http(response)) => Err(response.status().as_u16()),
        Err(error) => panic!("the handshake failed: {error}"),
    }
}

/// A viewer with a bearer token (an API client: no Origin).
pub async fn viewer(app: &TestApp, token: &str, id: &str) -> Viewer {
    handshake(app, id, &[("authorization", format!("Bearer {token}"))]).await.expect("the console opens")
}

impl Viewer {
    async fn next(&mut self, wait: Duration) -> Option<Value> {
        loop {
            match tokio::time::timeout(wait, self.socket.next()).await.ok()?? {
                Ok(Message::Text(text)) => return Some(serde_json::from_str(&text).expect("JSON messages")),
                Ok(Message::Ping(_) | Message::Pong(_)) => {}
                other => panic!("unexpected message: {other:?}"),
            }
        }
    }

    /// Messages until one satisfies `until` (included); panics after 30 s without one.
    async fn until(&mut self, what: &str, until: impl Fn(&Value) -> bool) -> Vec<Value> {
        let mut seen = Vec::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while let Some(message) = self.next(deadline - tokio::time::Instant::now()).await {
            let done = until(&message);
            seen.push(message);
            if done {
                return seen;
            }
        }
        panic!("no {what} within 30 s; saw {seen:?}");
    }

    /// Output lines until `line` shows (included).
    async fn lines_until(&mut self, line: &str) -> Vec<String> {
        let messages = self.until(&format!("output `{line}`"), |m| lines_of(m).iter().any(|l| l == line)).await;
        messages.iter().flat_map(lines_of).collect()
    }

    /// Reads until the server closes the console; panics if it is still open after 10 s. Returns what it said.
    async fn closed(&mut self, what: &str) -> Vec<Value> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        let mut seen = Vec::new();
        loop {
            match tokio::time::timeout_at(deadline, self.socket.next()).await {
                Err(_) => panic!("{what}: the console is still open after 10 s; it said {seen:?}"),
                Ok(None | Some(Err(_) | Ok(Message::Close(_)))) => return seen,
                Ok(Some(Ok(Message::Text(text)))) => seen.push(serde_json::from_str(&text).expect("JSON")),
                Ok(Some(Ok(_))) => {}
            }
        }
    }

    pub async fn send(&mut self, line: &str) {
        let message = json!({ "type": "command", "line": line }).to_string();
        self.socket.send(Message::Text(message.into())).await.expect("sent");
    }
}

/// The output lines a message carries (backlog or output).
fn lines_of(message: &Value) -> Vec<String> {
    match message["type"].as_str() {
        Some("backlog" | "output") => {
            message["lines"].as_array().expect("lines").iter().map(|l| l.as_str().expect("text").to_owned()).collect()
        }
        _ => Vec::new(),
    }
}

fn is_status(message: &Value, status: &str) -> bool {
    message["type"] == "status" && message["status"] == status
}

/// `pods/log?follow=true` requests the simulated cluster received.
fn follows(app: &TestApp) -> usize {
    let cluster = app.cluster.as_ref().expect("a cluster");
    cluster.requests().iter().filter(|r| r.uri.contains("/log?") && r.uri.contains("follow=true")).count()
}

async fn viewers_share_one_stream_type_commands_and_follow_stop_and_start(backend: Backend, driver: TestDriver) {
    let app = spawn_app_on(backend, driver, |_| {}).await;
    let token = app.signed_up("owner@example.com").await;
    let id = app.created(&token, "demo", "tiny").await;
    app.running(&token, &id).await;

    let mut first = viewer(&app, &token, &id).await;
    let backlog = first.next(Duration::from_secs(10)).await.expect("the backlog");
    assert_eq!(backlog["type"], "backlog", "{backlog}");
    assert_eq!(backlog["status"], "running");
    first.until("the game's start in the console", |m| lines_of(m).iter().any(|l| l.contains("Server ready"))).await;
    let mut second = viewer(&app, &token, &id).await;
    let backlog = second.next(Duration::from_secs(10)).await.expect("the backlog");
    assert!(lines_of(&backlog).iter().any(|l| l.contains("Server ready")), "joins with what was printed: {backlog}");

    // Typed by one viewer, into the game's standard input; its answer reaches both.
    first.send("say hello").await;
    first.lines_until("[Server] hello").await;
    second.lines_until("[Server] hello").await;
    if driver == TestDriver::Agones {
        assert_eq!(follows(&app), 1, "one log stream for both viewers");
        let cluster = app.cluster.as_ref().expect("a cluster");
        let attached = cluster.requests().into_iter().filter(|r| r.uri.contains("/attach?")).collect::<Vec<_>>();
        assert!(!attached.is_empty() && attached.iter().all(|r| r.uri.contains("stdin=true")), "{attached:?}");
    }

    // Bad commands are refused with the reason, for the viewer who sent them only.
    first.send("").await;
    let refused = first.until("a refusal", |m| m["type"] == "error").await;
    assert!(refused.last().expect("one")["message"].as_str().expect("text").starts_with("command:"), "{refused:?}");

    // Stopped: both viewers are told; commands are refused with the reason.
    assert_eq!(app.act(&token, &id, "stop").await.status(), 202);
    first.until("the stop", |m| is_status(m, "stopped")).await;
    second.until("the stop", |m| is_status(m, "stopped")).await;
    first.send("say anyone?").await;
    let refused = first.until("a refusal", |m| m["type"] == "error").await;
    assert_eq!(refused.last().expect("one")["message"], "status: the server is not running; start it first");

    // Started again: the stream resumes with the new run's output, and commands work again.
    assert_eq!(app.act(&token, &id, "start").await.status(), 202);
    second.until("the start", |m| is_status(m, "running")).await;
    first.until("the new run's output", |m| lines_of(m).iter().any(|l| l.contains("Server ready"))).await;
    first.send("say again").await;
    second.lines_until("[Server] again").await;

    // A viewer that reconnects gets the screen again: every line once.
    drop(second);
    let mut again = viewer(&app, &token, &id).await;
    let backlog = again.next(Duration::from_secs(10)).await.expect("the backlog");
    let lines = lines_of(&backlog);
    for line in ["[Server] hello", "[Server] again"] {
        assert_eq!(lines.iter().filter(|l| *l == line).count(), 1, "{line} once in {lines:?}");
    }
}

/// Spawns the app on SQLite with the local driver and a running demo server; returns (app, owner token, id).
async fn running_demo(adjust: impl FnOnce(&mut server::config::Settings)) -> (TestApp, String, String) {
    let app = spawn_app_with(Backend::Sqlite, adjust).await;
    let token = app.signed_up("owner@example.com").await;
    let id = app.created(&token, "demo", "tiny").await;
    app.running(&token, &id).await;
    (app, token, id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_owner_or_an_administrator_from_this_site_may_open_a_console() {
    let app = spawn_app(Backend::Sqlite).await;
    let owner = app.signed_up("owner@example.com").await;
    let other = app.signed_up("other@example.com").await;
    let id = app.created(&owner, "demo", "tiny").await;
    let bearer = |token: &str| vec![("authorization", format!("Bearer {token}"))];
    let cookie = |token: &str| ("cookie", format!("spawnpoint_session={token}"));

    assert_eq!(handshake(&app, &id, &[]).await.err(), Some(401), "signed out");
    assert_eq!(handshake(&app, &id, &bearer(&other)).await.err(), Some(404), "someone else's server");
    assert_eq!(handshake(&app, "nope-de-000000", &bearer(&owner)).await.err(), Some(404), "no such server");
    // A page on another site opening a socket with the owner's cookie (cross-site WebSocket hijacking).
    let evil = [cookie(&owner), ("origin", "https://evil.example".to_owned())];
    assert_eq!(handshake(&app, &id, &evil).await.err(), Some(403), "another site's page");
    assert_eq!(handshake(&app, &id, &[cookie(&owner)]).await.err(), Some(403), "a cookie but no origin");

    // The app's own page (cookie, own origin) and an API client (bearer) get in; so does an administrator.
    let own = [cookie(&owner), ("origin", app.address.clone())];
    let mut page = handshake(&app, &id, &own).await.expect("the app's own page");
    assert_eq!(page.next(Duration::from_secs(10)).await.expect("the backlog")["type"], "backlog");
    sqlx::query("UPDATE users SET role = 'admin' WHERE email = $1")
        .bind("other@example.com")
        .execute(app.db.pool())
        .await
        .expect("promoted");
    let mut admin = handshake(&app, &id, &bearer(&other)).await.expect("an administrator");
    assert_eq!(admin.next(Duration::from_secs(10)).await.expect("the backlog")["type"], "backlog");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_viewers_get_every_line_in_order() {
    const VIEWERS: usize = 20;
    const LINES: u32 = 1000;
    let (app, token, id) = running_demo(|_| {}).await;
    let mut viewers = Vec::new();
    for _ in 0..VIEWERS {
        viewers.push(viewer(&app, &token, &id).await);
    }
    viewers[0].send(&format!("repeat {LINES} line")).await;
    let expected: Vec<String> = (0..LINES).map(|i| format!("[Server] line {i}")).collect();
    for viewer in &mut viewers {
        let seen = viewer.lines_until(expected.last().expect("lines")).await;
        let ours: Vec<&String> = seen.iter().filter(|l| l.starts_with("[Server] line ")).collect();
        assert_eq!(ours, expected.iter().collect::<Vec<_>>(), "every line, in order, once");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_viewer_is_skipped_forward_and_holds_nobody_up() {
    const LINES: u32 = 100_000;
    // No throttle here: the slow viewer must fall behind by more than its buffer (4 096 messages' worth).
    let (app, token, id) = running_demo(|settings| settings.tuning.console.lines_per_window = usize::MAX).await;
    let mut fast = viewer(&app, &token, &id).await;
    // A viewer that stops reading, with a small receive window, so the server's sends to it soon block.
    let url = app.url(&format!("/api/servers/{id}/console")).replacen("http://", "ws://", 1);
    let mut request = url.into_client_request().expect("request");
    request.headers_mut().insert("authorization", format!("Bearer {token}").parse().expect("header"));
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("buffer size");
    let address = app.address.trim_start_matches("http://").parse().expect("address");
    let stream = tokio_tungstenite::MaybeTlsStream::Plain(socket.connect(address).await.expect("connected"));
    let (socket, _) = tokio_tungstenite::client_async(request, stream).await.expect("the console opens");
    let mut slow = Viewer { socket };

    let text = "x".repeat(100);
    fast.send(&format!("repeat {LINES} {text}")).await;
    let last = format!("[Server] {text} {}", LINES - 1);
    // The fast viewer reads as fast as this machine lets it: on a busy machine even it may fall behind and be
    // moved forward, and is then told exactly what it missed.
    let seen = fast.until("the last line", |m| lines_of(m).contains(&last)).await;
    let fast_skipped: u64 =
        seen.iter().filter(|m| m["type"] == "skipped").map(|m| m["lines"].as_u64().expect("n")).sum();
    let fast_got = seen.iter().flat_map(lines_of).filter(|l| l.starts_with("[Server] x")).count() as u64;
    // (A skip counts what the viewer missed of the feed, status notices included: at least the lines.)
    assert!(fast_got + fast_skipped >= u64::from(LINES), "the fast viewer got every line or was told: {fast_got}");

    // Only now does the slow viewer read: it was moved forward with a notice, and is current again.
    let caught_up = slow.until("the last line", |m| lines_of(m).contains(&last)).await;
    let skipped: u64 =
        caught_up.iter().filter(|m| m["type"] == "skipped").map(|m| m["lines"].as_u64().expect("n")).sum();
    let got = caught_up.iter().flat_map(lines_of).filter(|l| l.starts_with("[Server] x")).count() as u64;
    assert!(skipped > 0, "the slow viewer was told it skipped lines");
    assert!(got < u64::from(LINES), "and did not get them all");
    assert!(
        skipped > fast_skipped,
        "the slow viewer fell behind further than the fast one: {skipped} vs {fast_skipped}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_beyond_the_throttle_is_left_out_and_summarised() {
    const LINES: u32 = 10_000;
    // A tight limit (the default is 2 000 per 100 ms), so that however busy the machine, the flood exceeds it.
    const LIMIT: usize = 100;
    let (app, token, id) = running_demo(|settings| settings.tuning.console.lines_per_window = LIMIT).await;
    let mut viewer = viewer(&app, &token, &id).await;
    viewer.send(&format!("repeat {LINES} flood")).await;
    let messages = viewer.until("a throttle notice", |m| m["type"] == "throttled").await;
    let passed: Vec<u32> = messages
        .iter()
        .flat_map(lines_of)
        .filter_map(|line| line.strip_prefix("[Server] flood ").map(|n| n.parse().expect("a number")))
        .collect();
    assert!(passed.windows(2).all(|pair| pair[0] < pair[1]), "in order, none twice");
    // The flood starts in the window the viewer's first lines opened: up to the limit pass, then lines are left out.
    let first_window = passed.iter().enumerate().take_while(|(i, n)| *i as u32 == **n).count();
    assert!((1..=LIMIT).contains(&first_window), "{first_window} lines before the first gap");
    let left_out = messages.last().expect("the notice")["lines"].as_u64().expect("a count");
    assert!(left_out > 0, "the notice counts what was left out");
    assert!(passed.len() as u64 + left_out <= u64::from(LINES), "{} passed, {left_out} left out", passed.len());

    // The game itself is not held back: once the flood has passed the throttle, what it says next arrives. (A
    // line said while the flood is still being delivered may fall in a throttled window: said again then.)
    for attempt in 0..20 {
        viewer.send(&format!("say still here {attempt}")).await;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
        while let Some(message) = viewer.next(deadline - tokio::time::Instant::now()).await {
            if lines_of(&message).iter().any(|line| line.starts_with("[Server] still here")) {
                return;
            }
        }
    }
    panic!("the game's answer never came through");
}

/// The session id a token names.
fn session_of(token: &str) -> String {
    use base64::Engine as _;
    let payload = token.split('.').nth(1).expect("payload");
    let claims: Value =
        serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).expect("b64"))
            .expect("json");
    claims["sid"].as_str().expect("sid").to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_console_closes_when_its_session_ends_and_each_command_is_checked() {
    let (app, owner, id) = running_demo(|_| {}).await;
    // Three ways a session ends: signed out, expired, its user removed.
    let signed_out = app.login_token("owner@example.com").await;
    let expiring = app.login_token("owner@example.com").await;
    let removed = app.admin("admin@example.com").await;
    let mut viewers = Vec::new();
    for token in [&signed_out, &expiring, &removed] {
        let mut viewer = viewer(&app, token, &id).await;
        assert_eq!(viewer.next(Duration::from_secs(10)).await.expect("the backlog")["type"], "backlog");
        viewers.push(viewer);
    }

    let logout = app.client.post(app.url("/auth/logout")).bearer_auth(&signed_out).send().await.expect("sent");
    assert_eq!(logout.status(), 204);
    // Typed right after signing out, before any periodic check: refused on arrival.
    viewers[0].send("say typed after signing out").await;
    sqlx::query("UPDATE sessions SET expires_at = 1 WHERE id = $1")
        .bind(session_of(&expiring))
        .execute(app.db.pool())
        .await
        .expect("expired");
    sqlx::query("DELETE FROM users WHERE email = $1")
        .bind("admin@example.com")
        .execute(app.db.pool())
        .await
        .expect("removed");
    for (viewer, why) in viewers.iter_mut().zip(["signed out", "expired", "user removed"]) {
        let said = viewer.closed(why).await;
        assert!(
            said.iter().any(|m| m["type"] == "error" && m["message"].as_str().is_some_and(|t| t.contains("sign in"))),
            "{why}: told why: {said:?}"
        );
    }
    for token in [&signed_out, &expiring, &removed] {
        assert_eq!(handshake(&app, &id, &[("authorization", format!("Bearer {token}"))]).await.err(), Some(401));
    }

    // The owner's own session still works; what was typed after signing out never reached the game.
    let mut live = viewer(&app, &owner, &id).await;
    live.send("say marker").await;
    live.lines_until("[Server] marker").await;
    let logs: Value =
        app.get_as(&owner, &format!("/api/servers/{id}/logs?tail=1000")).await.json().await.expect("json");
    let logs = logs["lines"].as_array().expect("lines");
    assert!(logs.iter().any(|l| l.as_str().is_some_and(|l| l.contains("marker"))), "{logs:?}");
    assert!(!logs.iter().any(|l| l.as_str().is_some_and(|l| l.contains("typed after signing out"))), "{logs:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_commands_are_throttled_per_server() {
    use server::servers::COMMANDS_PER_SECOND;
    let (app, token, id) = running_demo(|_| {}).await;
    let mut first = viewer(&app, &token, &id).await;
    let mut second = viewer(&app, &token, &id).await;
    // Eight each: neither viewer alone goes past the burst of ten, both together do (faster than the budget
    // refills, one a tenth of a second).
    for n in 0..16 {
        let viewer = if n % 2 == 0 { &mut first } else { &mut second };
        viewer.send(&format!("say burst {n}")).await;
    }
    // Both viewers type on one server's console: together they get one server's budget. A refusal goes to
    // whichever viewer sent the command refused.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let message = loop {
        let wait = deadline - tokio::time::Instant::now();
        let message = tokio::select! {
            message = first.next(wait) => message,
            message = second.next(wait) => message,
        };
        let message = message.expect("a throttled command within 30 s");
        if message["type"] == "error" {
            break message["message"].as_str().expect("text").to_owned();
        }
    };
    assert!(message.contains("try again"), "{message}");
    assert!(COMMANDS_PER_SECOND.get() == 10, "the burst this test is written for");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn game_output_reaches_the_console_cleaned_and_whole() {
    let dir = tempfile::tempdir().expect("temp dir");
    // Colour, a title change, cursor movement, then a line that is not UTF-8, then more output.
    let script = r"printf 'plain \033]0;pwned\007\033[31mred\033[0m\033[2Aup\033]8;;https://evil.example\033\\link\n'; \
                   printf '\377\376 not utf-8\n'; echo after; echo ready now; exec sleep 600";
    let catalog = crate::helpers::catalog_with(dir.path(), &[("painter", script)]);
    let app = spawn_app_with(Backend::Sqlite, |settings| settings.catalog_path = Some(catalog)).await;
    let token = app.signed_up("owner@example.com").await;
    let id = app.created(&token, "painter", "p").await;
    app.running(&token, &id).await;
    let mut viewer = viewer(&app, &token, &id).await;
    let lines = viewer.lines_until("ready now").await;
    assert!(
        lines.contains(&"plain \u{1b}[31mred\u{1b}[0muplink\u{1b}[0m".to_owned()),
        "colours kept, the rest gone: {lines:?}"
    );
    assert!(lines.contains(&"\u{fffd}\u{fffd} not utf-8".to_owned()), "{lines:?}");
    assert!(lines.contains(&"after".to_owned()), "output goes on after a line that is not UTF-8: {lines:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_connections_per_user_are_capped() {
    use server::auth::live::MAX_LIVE_PER_USER;
    let (app, token, id) = running_demo(|_| {}).await;
    let mut held = Vec::new();
    for _ in 0..MAX_LIVE_PER_USER / 2 {
        held.push(viewer(&app, &token, &id).await);
    }
    let mut streams = Vec::new();
    for _ in held.len()..MAX_LIVE_PER_USER {
        streams.push(app.events(&token, "").await);
    }
    let bearer = [("authorization", format!("Bearer {token}"))];
    assert_eq!(handshake(&app, &id, &bearer).await.err(), Some(429), "one console too many");
    let events = app.client.get(app.url("/api/servers/events")).bearer_auth(&token).send().await.expect("sent");
    assert_eq!(events.status(), 429, "one event stream too many");
    // Another user is not held to this one's count; closing a console gives its place back.
    let other = app.signed_up("other@example.com").await;
    let _theirs = app.events(&other, "").await;
    let mut closing = held.pop().expect("a console");
    closing.socket.close(None).await.expect("closed");
    let mut reopened = None;
    for _ in 0..100 {
        if let Ok(viewer) = handshake(&app, &id, &bearer).await {
            reopened = Some(viewer);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(reopened.is_some(), "the closed console's place was given back");
}
