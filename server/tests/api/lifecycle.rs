//! Game servers really running on the single box, seen from outside: through the REST routes and the
//! address a player is shown, with the reconciler and the local driver doing the work in between.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::TcpStream;

use crate::both_databases;
use crate::helpers::{
    Backend, TestApp, TestDatabase, alive, catalog_with, eventually, port_block, spawn_app, spawn_app_with,
};

both_databases!(
    a_demo_server_lives_through_stop_start_restart_and_delete,
    a_crash_is_restarted_and_a_crash_loop_fails_with_the_reason,
    status_changes_are_pushed_to_the_owner_only,
    resync_passes_change_nothing_when_all_is_well_and_remove_orphans,
    a_restarted_spawnpoint_brings_servers_back_without_strays,
);

/// Sends one line to a player connection and reads the answer.
async fn ask(player: &mut BufReader<TcpStream>, line: &str) -> String {
    player.get_mut().write_all(format!("{line}\n").as_bytes()).await.expect("sent");
    let mut answer = String::new();
    let read = tokio::time::timeout(Duration::from_secs(10), player.read_line(&mut answer)).await;
    read.expect("an answer in time").expect("readable");
    answer.trim().to_owned()
}

async fn join(address: &str) -> BufReader<TcpStream> {
    BufReader::new(TcpStream::connect(address).await.unwrap_or_else(|e| panic!("joining {address}: {e}")))
}

fn address(server: &Value) -> String {
    server["address"].as_str().expect("a running server has an address").to_owned()
}

async fn log_lines(app: &TestApp, token: &str, id: &str) -> Vec<String> {
    let response = app.get_as(token, &format!("/api/servers/{id}/logs?tail=50")).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("json");
    body["lines"].as_array().expect("lines").iter().map(|l| l.as_str().expect("text").to_owned()).collect()
}

/// The pid in a local game server's `pid` file, while it runs.
fn game_pid(data_dir: &std::path::Path, id: &str) -> Option<String> {
    let text = std::fs::read_to_string(data_dir.join("servers").join(id).join("pid")).ok()?;
    text.split(' ').next().map(str::to_owned)
}

/// Live processes whose working directory is `dir`: what a game server of this data dir is running.
fn processes_in(dir: &std::path::Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    entries
        .flatten()
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .filter(|pid| pid.chars().all(|c| c.is_ascii_digit()) && alive(pid))
        .filter(|pid| std::fs::read_link(format!("/proc/{pid}/cwd")).is_ok_and(|cwd| cwd == dir))
        .collect()
}

async fn a_demo_server_lives_through_stop_start_restart_and_delete(backend: Backend) {
    let app = spawn_app(backend).await;
    let token = app.signed_up("player@example.com").await;
    let id = app.created(&token, "demo", "tiny").await;

    // Running: a player joins at the address shown and plays a match.
    let server = app.running(&token, &id).await;
    let addr = address(&server);
    let mut player = join(&addr).await;
    assert_eq!(ask(&mut player, "GET_STATE").await, "STATE open");
    assert_eq!(ask(&mut player, "REQUEST_MATCH 1").await, "STATE running");
    let data = app.data_dir().join("servers").join(&id).join("data");
    assert!(log_lines(&app, &token, &id).await.iter().any(|l| l.contains("Match 1 started")));

    // Stopped: the port closes, the world stays.
    assert_eq!(app.act(&token, &id, "stop").await.status(), 202);
    let stopped = app.wait_for(&token, &id, "stopped and gone", |s| s["status"] == "stopped").await;
    assert_eq!(stopped["address"], Value::Null);
    let closed = TcpStream::connect(&addr).await.is_err();
    if !closed {
        eventually("the game port closes after a stop", || std::net::TcpStream::connect(&addr).is_err()).await;
    }
    eventually("no game process after a stop", || game_pid(app.data_dir(), &id).is_none()).await;
    assert_eq!(std::fs::read_to_string(data.join("world.txt")).expect("world kept"), "matches_played=1\n");

    // Started again: same address, same world.
    assert_eq!(app.act(&token, &id, "start").await.status(), 202);
    let server = app.running(&token, &id).await;
    assert_eq!(address(&server), addr, "the server keeps its port");
    let mut player = join(&addr).await;
    assert_eq!(ask(&mut player, "GET_STATE").await, "STATE open");
    assert!(log_lines(&app, &token, &id).await.iter().any(|l| l.contains("1 match(es) played so far")));

    // Restarted: a new process, running again.
    let before = game_pid(app.data_dir(), &id).expect("a pid while running");
    assert_eq!(app.act(&token, &id, "restart").await.status(), 202);
    app.wait_for(&token, &id, "running in a new process", |s| {
        s["status"] == "running" && game_pid(app.data_dir(), &id).is_some_and(|pid| pid != before)
    })
    .await;
    assert!(!alive(&before), "the old process is gone");
    let mut player = join(&addr).await;
    assert_eq!(ask(&mut player, "GET_STATE").await, "STATE open");

    // Deleted: process, data and row gone.
    let running = game_pid(app.data_dir(), &id).expect("pid");
    assert_eq!(app.act(&token, &id, "delete").await.status(), 202);
    app.wait_for(&token, &id, "gone", Value::is_null).await;
    assert!(!alive(&running), "the process is gone");
    assert!(!app.data_dir().join("servers").join(&id).exists(), "the data is gone");
    assert_eq!(app.count("servers").await, 0, "the row is gone");
    assert!(TcpStream::connect(&addr).await.is_err(), "nothing listens any more");
}

async fn a_crash_is_restarted_and_a_crash_loop_fails_with_the_reason(backend: Backend) {
    let app = spawn_app_with(backend, |settings| {
        settings.restart_backoff = Duration::from_millis(50);
        settings.catalog_path = Some(catalog_with(&settings.data_dir, &[
            // Crashes once, then stays up.
            ("once", "if [ -f crashed ]; then echo ready now; exec sleep 600; fi; touch crashed; echo ready now; sleep 0.3; exit 3"),
            ("always", "echo ready now; sleep 0.1; echo 'out of cheese' >&2; exit 7"),
        ]));
    })
    .await;
    let token = app.signed_up("unlucky@example.com").await;
    let mut events = app.events(&token, "").await;

    let once = app.created(&token, "once", "p").await;
    let seen =
        events.until(&once, |e| e["server"]["status"] == "running" && e["server"]["status_message"].is_null()).await;
    // That first `running` may be before the crash; follow on until it has crashed and run again.
    let mut statuses: Vec<Value> = seen;
    if !statuses.iter().any(|e| e["server"]["status_message"].as_str().is_some_and(|m| m.contains("crashed"))) {
        statuses.extend(events.until(&once, |e| e["server"]["status"] == "running").await);
    }
    let crash = statuses
        .iter()
        .find_map(|e| e["server"]["status_message"].as_str().filter(|m| m.contains("crashed")))
        .unwrap_or_else(|| panic!("the crash was reported: {statuses:#?}"));
    assert!(crash.contains("exit status: 3") && crash.contains("restarting"), "{crash}");
    let server = app.running(&token, &once).await;
    assert_eq!(server["status_message"], Value::Null, "running again, message cleared");

    let always = app.created(&token, "always", "p").await;
    let seen = events.until(&always, |e| e["server"]["status"] == "failed").await;
    let failed = seen.last().expect("the failure");
    let message = failed["server"]["status_message"].as_str().expect("a reason");
    assert!(message.contains("crashed 5 times") && message.contains("exit status: 7"), "{message}");
    let restarts =
        seen.iter().filter(|e| e["server"]["status_message"].as_str().is_some_and(|m| m.contains("restarting")));
    assert_eq!(restarts.count(), 4, "restarted four times before giving up: {seen:#?}");
    assert!(
        log_lines(&app, &token, &always).await.iter().any(|l| l.contains("out of cheese")),
        "the game's own complaint is in its log"
    );

    // A failed server can be stopped; nothing of it keeps running.
    assert_eq!(app.act(&token, &always, "stop").await.status(), 202);
    app.wait_for(&token, &always, "stopped", |s| s["status"] == "stopped").await;
}

async fn status_changes_are_pushed_to_the_owner_only(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.signed_up("alice@example.com").await;
    let bob = app.signed_up("bob@example.com").await;
    let mut bobs = app.events(&bob, "").await;
    let everyone = app.get_as(&bob, "/api/servers/events?all=true").await;
    assert_eq!(everyone.status(), 403, "only administrators watch everyone");

    let id = app.created(&alice, "demo", "tiny").await;
    // Alice connects after creating: the stream opens with the server as it is, then follows it.
    let mut alices = app.events(&alice, "").await;
    let seen = alices.until(&id, |e| e["server"]["status"] == "running").await;
    assert_eq!(seen[0]["type"], "changed");
    assert!(seen.last().is_some_and(|e| e["server"]["address"].is_string()), "running, with its address");

    assert_eq!(app.act(&alice, &id, "delete").await.status(), 202);
    let seen = alices.until(&id, |e| e["type"] == "removed").await;
    assert!(seen.iter().any(|e| e["server"]["status"] == "deleted"), "{seen:#?}");

    assert_eq!(bobs.next(Duration::from_millis(300)).await, None, "bob hears nothing of alice's server");
}

async fn resync_passes_change_nothing_when_all_is_well_and_remove_orphans(backend: Backend) {
    let app = spawn_app_with(backend, |settings| settings.resync_interval = Duration::from_millis(100)).await;
    let token = app.signed_up("calm@example.com").await;
    let id = app.created(&token, "demo", "tiny").await;
    let server = app.running(&token, &id).await;
    let pid = game_pid(app.data_dir(), &id).expect("pid");

    let mut events = app.events(&token, "").await;
    let snapshot = events.next(Duration::from_secs(5)).await.expect("the snapshot");
    assert_eq!(snapshot["server"], server);
    // About ten full passes.
    assert_eq!(events.next(Duration::from_secs(1)).await, None, "a pass over a running server writes nothing");
    assert_eq!(game_pid(app.data_dir(), &id), Some(pid.clone()), "and leaves its process alone");

    // The row vanishes behind Spawnpoint's back: the game it no longer asks for is removed.
    sqlx::query("DELETE FROM servers WHERE id = $1").bind(id.clone()).execute(app.db.pool()).await.expect("deleted");
    eventually("the orphaned game process is removed", || !alive(&pid)).await;
    let dir = app.data_dir().join("servers").join(&id);
    eventually("and its files after it", || !dir.exists()).await;
}

/// Runs the real binary, so it can be killed as an operator's machine might kill it.
struct Binary {
    child: std::process::Child,
    address: String,
}

impl Binary {
    fn start(data_dir: &std::path::Path, database: &TestDatabase, ports: &std::ops::RangeInclusive<u16>) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("free port").port();
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_spawnpoint"))
            .env_clear()
            .env("SPAWNPOINT_ADDR", format!("127.0.0.1:{port}"))
            .env("SPAWNPOINT_DATA_DIR", data_dir)
            .env("DATABASE_URL", &database.url)
            .env("SPAWNPOINT_CATALOG", data_dir.join("games.yaml"))
            .env("SPAWNPOINT_GAME_PORTS", format!("{}-{}", ports.start(), ports.end()))
            .env("SPAWNPOINT_STOP_GRACE", "2")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawnpoint starts");
        Self { child, address: format!("http://127.0.0.1:{port}") }
    }

    async fn healthy(&self) {
        let client = reqwest::Client::new();
        for _ in 0..200 {
            if client.get(format!("{}/health", self.address)).send().await.is_ok_and(|r| r.status() == 200) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("spawnpoint did not come up");
    }
}

async fn a_restarted_spawnpoint_brings_servers_back_without_strays(backend: Backend) {
    let dir = Arc::new(tempfile::tempdir().expect("temp dir"));
    let data_dir = dir.path().to_owned();
    let database = Arc::new(TestDatabase::create(backend, &data_dir).await);
    // A game that ignores its console closing, so a killed Spawnpoint really leaves it behind.
    catalog_with(&data_dir, &[("stubborn", "echo ready now; exec sleep 600")]);
    let ports = port_block();

    let first = Binary::start(&data_dir, &database, &ports);
    first.healthy().await;
    let app = TestApp::attach(&first.address, database.clone(), dir.clone()).await;
    let token = app.signed_up("owner@example.com").await;
    let demo = app.created(&token, "demo", "tiny").await;
    let stubborn = app.created(&token, "stubborn", "p").await;
    let addr = address(&app.running(&token, &demo).await);
    app.running(&token, &stubborn).await;
    assert_eq!(ask(&mut join(&addr).await, "REQUEST_MATCH 1").await, "STATE running");
    let old_pid = game_pid(&data_dir, &stubborn).expect("the stubborn game's pid");

    // Killed outright: no chance to stop anything.
    let mut first = first;
    first.child.kill().expect("killed");
    first.child.wait().expect("reaped");
    assert!(alive(&old_pid), "the stubborn game outlived spawnpoint, as it would on a real machine");

    let second = Binary::start(&data_dir, &database, &ports);
    second.healthy().await;
    let app = TestApp::attach(&second.address, database.clone(), dir.clone()).await;
    let token = app.login_token("owner@example.com").await;
    let server = app.running(&token, &demo).await;
    assert_eq!(address(&server), addr);
    let mut player = join(&addr).await;
    assert_eq!(ask(&mut player, "GET_STATE").await, "STATE open");
    assert!(log_lines(&app, &token, &demo).await.iter().any(|l| l.contains("1 match(es) played so far")));
    app.running(&token, &stubborn).await;
    assert!(!alive(&old_pid), "the leftover from before was ended");
    let stubborn_dir = data_dir.join("servers").join(&stubborn).join("data");
    eventually("exactly one process for the stubborn server", || processes_in(&stubborn_dir).len() == 1).await;

    // Stopped politely (SIGTERM): it stops its games on the way out, and they come back with it next time.
    let mut second = second;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(second.child.id()).expect("pid")),
        nix::sys::signal::Signal::SIGTERM,
    )
    .expect("signalled");
    second.child.wait().expect("exited");
    assert!(processes_in(&stubborn_dir).is_empty(), "no game outlives a clean shutdown");
    assert!(std::net::TcpStream::connect(&addr).is_err());
}
