//! Game servers really running, seen from outside: through the REST routes and the address a player is shown,
//! with the reconciler and a driver doing the work in between. Every test runs with both drivers: `local`
//! (processes on this machine) and `agones` (on the Kubernetes API simulator, whose kubelet runs the same games
//! as real processes on loopback node addresses).

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::TcpStream;

use crate::every_driver;
use crate::helpers::{Backend, Binary, TestDatabase, TestDriver, alive, catalog_with, eventually, spawn_app_on};

every_driver!(
    a_demo_server_lives_through_stop_start_restart_and_delete,
    a_crash_is_restarted_and_a_crash_loop_fails_with_the_reason,
    status_changes_are_pushed_to_the_owner_only,
    resync_passes_change_nothing_when_all_is_well_and_remove_orphans,
    a_restarted_spawnpoint_brings_servers_back_without_strays,
    a_game_that_never_becomes_ready_fails_and_is_stopped,
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

async fn a_demo_server_lives_through_stop_start_restart_and_delete(backend: Backend, driver: TestDriver) {
    let app = spawn_app_on(backend, driver, |_| {}).await;
    let token = app.signed_up("player@example.com").await;
    let id = app.created(&token, "demo", "tiny").await;

    // Running: a player joins at the address shown and plays a match.
    let server = app.running(&token, &id).await;
    let addr = address(&server);
    let mut player = join(&addr).await;
    assert_eq!(ask(&mut player, "GET_STATE").await, "STATE open");
    assert_eq!(ask(&mut player, "REQUEST_MATCH 1").await, "STATE running");
    let data = app.game_data(&id);
    assert!(app.log_shows(&token, &id, "Match 1 started").await);

    // Stopped: the port closes, the world stays.
    assert_eq!(app.act(&token, &id, "stop").await.status(), 202);
    let stopped = app.wait_for(&token, &id, "stopped and gone", |s| s["status"] == "stopped").await;
    assert_eq!(stopped["address"], Value::Null);
    let closed = TcpStream::connect(&addr).await.is_err();
    if !closed {
        eventually("the game port closes after a stop", || std::net::TcpStream::connect(&addr).is_err()).await;
    }
    eventually("no game process after a stop", || app.game_pid(&id).is_none()).await;
    assert_eq!(std::fs::read_to_string(data.join("world.txt")).expect("world kept"), "matches_played=1\n");

    // Started again: same address, same world.
    assert_eq!(app.act(&token, &id, "start").await.status(), 202);
    let server = app.running(&token, &id).await;
    assert_eq!(address(&server), addr, "the server keeps its port");
    let mut player = join(&addr).await;
    assert_eq!(ask(&mut player, "GET_STATE").await, "STATE open");
    assert!(app.log_shows(&token, &id, "1 match(es) played so far").await);

    // Restarted: a new process, running again.
    let before = app.game_pid(&id).expect("a pid while running");
    assert_eq!(app.act(&token, &id, "restart").await.status(), 202);
    let server = app
        .wait_for(&token, &id, "running in a new process", |s| {
            s["status"] == "running" && app.game_pid(&id).is_some_and(|pid| pid != before)
        })
        .await;
    assert!(!alive(&before), "the old process is gone");
    // At the address shown now: on a cluster the new GameServer may have been placed on another node.
    let mut player = join(&address(&server)).await;
    assert_eq!(ask(&mut player, "GET_STATE").await, "STATE open");

    // Deleted: process, data and row gone.
    let running = app.game_pid(&id).expect("pid");
    assert_eq!(app.act(&token, &id, "delete").await.status(), 202);
    app.wait_for(&token, &id, "gone", Value::is_null).await;
    eventually("the process is gone", || !alive(&running)).await;
    eventually("the data is gone", || !data.exists()).await;
    assert_eq!(app.count("servers").await, 0, "the row is gone");
    assert!(TcpStream::connect(&addr).await.is_err(), "nothing listens any more");
}

async fn a_crash_is_restarted_and_a_crash_loop_fails_with_the_reason(backend: Backend, driver: TestDriver) {
    let app = spawn_app_on(backend, driver, |settings| {
        settings.tuning.restart_backoff = Duration::from_millis(50);
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
    assert!(crash.contains("exited with code 3") && crash.contains("restarting"), "{crash}");
    let server = app.running(&token, &once).await;
    assert_eq!(server["status_message"], Value::Null, "running again, message cleared");

    let always = app.created(&token, "always", "p").await;
    let seen = events.until(&always, |e| e["server"]["status"] == "failed").await;
    let failed = seen.last().expect("the failure");
    let message = failed["server"]["status_message"].as_str().expect("a reason");
    assert!(message.contains("crashed 5 times") && message.contains("exited with code 7"), "{message}");
    let restarts =
        seen.iter().filter(|e| e["server"]["status_message"].as_str().is_some_and(|m| m.contains("restarting")));
    assert_eq!(restarts.count(), 4, "restarted four times before giving up: {seen:#?}");
    assert!(
        app.log_lines(&token, &always).await.iter().any(|l| l.contains("out of cheese")),
        "the game's own complaint is in its log"
    );

    // A failed server can be stopped; nothing of it keeps running.
    assert_eq!(app.act(&token, &always, "stop").await.status(), 202);
    app.wait_for(&token, &always, "stopped", |s| s["status"] == "stopped").await;
}

async fn a_game_that_never_becomes_ready_fails_and_is_stopped(backend: Backend, driver: TestDriver) {
    let app = spawn_app_on(backend, driver, |settings| {
        settings.reconciler.start_timeout = Duration::from_millis(800);
        settings.tuning.restart_backoff = Duration::from_secs(60); // no retry during the test
        let silent = ("silent", "echo starting up; exec sleep 600");
        settings.catalog_path = Some(catalog_with(&settings.data_dir, &[silent]));
    })
    .await;
    let token = app.signed_up("waiting@example.com").await;
    let id = app.created(&token, "silent", "p").await;
    eventually("its game runs", || app.game_pid(&id).is_some()).await;
    let pid = app.game_pid(&id).expect("pid");
    let failed = app.wait_for(&token, &id, "failed", |s| s["status"] == "failed").await;
    assert_eq!(failed["status_message"], "did not become ready within 1 s");
    assert_eq!(failed["address"], Value::Null);
    eventually("what was started is stopped", || !alive(&pid)).await;
}

async fn status_changes_are_pushed_to_the_owner_only(backend: Backend, driver: TestDriver) {
    let app = spawn_app_on(backend, driver, |_| {}).await;
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

    // Bob's own new server marks the end of everything before it: what bob hears first is about his.
    let marker = app.created(&bob, "demo", "tiny").await;
    let first = bobs.next(Duration::from_secs(10)).await.expect("bob hears of his own server");
    assert_eq!(first["server"]["id"], marker.as_str(), "bob hears nothing of alice's server");
}

async fn resync_passes_change_nothing_when_all_is_well_and_remove_orphans(backend: Backend, driver: TestDriver) {
    let app =
        spawn_app_on(backend, driver, |settings| settings.reconciler.resync_interval = Duration::from_millis(100))
            .await;
    let token = app.signed_up("calm@example.com").await;
    let id = app.created(&token, "demo", "tiny").await;
    let server = app.running(&token, &id).await;
    let pid = app.game_pid(&id).expect("pid");

    let mut events = app.events(&token, "").await;
    let snapshot = events.next(Duration::from_secs(5)).await.expect("the snapshot");
    assert_eq!(snapshot["server"], server);
    // A pass over it and a full pass, both finished; then a second server marks the end of what they wrote.
    app.reconciled_server(&id).await;
    app.reconciled().await;
    let marker = app.created(&token, "demo", "tiny").await;
    let next = events.next(Duration::from_secs(10)).await.expect("the marker's event");
    assert_eq!(next["server"]["id"], marker.as_str(), "a pass over a running server writes nothing");
    assert_eq!(app.game_pid(&id), Some(pid.clone()), "and leaves its process alone");

    // The row vanishes behind Spawnpoint's back: the game it no longer asks for is removed.
    sqlx::query("DELETE FROM servers WHERE id = $1").bind(id.clone()).execute(app.db.pool()).await.expect("deleted");
    eventually("the orphaned game process is removed", || !alive(&pid)).await;
    let dir = app.game_data(&id);
    eventually("and its files after it", || !dir.exists()).await;
}

async fn a_restarted_spawnpoint_brings_servers_back_without_strays(backend: Backend, driver: TestDriver) {
    let dir = Arc::new(tempfile::tempdir().expect("temp dir"));
    let database = Arc::new(TestDatabase::create(backend, dir.path()).await);
    // A game that ignores its console closing, so a killed Spawnpoint really leaves it behind.
    catalog_with(dir.path(), &[("stubborn", "echo ready now; exec sleep 600")]);
    let binary = Binary::new(driver, dir.clone(), database.clone()).await;

    let first = binary.start();
    let app = first.healthy().await;
    let token = app.signed_up("owner@example.com").await;
    let demo = app.created(&token, "demo", "tiny").await;
    let stubborn = app.created(&token, "stubborn", "p").await;
    let addr = address(&app.running(&token, &demo).await);
    app.running(&token, &stubborn).await;
    assert_eq!(ask(&mut join(&addr).await, "REQUEST_MATCH 1").await, "STATE running");
    let (old_demo, old_stubborn) = (app.game_pid(&demo).expect("demo pid"), app.game_pid(&stubborn).expect("pid"));

    // Killed outright: no chance to stop anything. The games were never the panel's children to lose: on the
    // single box each runs under a supervisor of its own, on a cluster in its pod.
    first.kill();
    assert!(alive(&old_stubborn), "the stubborn game outlived spawnpoint");

    let second = binary.start();
    let app = second.healthy().await;
    let token = app.login_token("owner@example.com").await;
    let server = app.running(&token, &demo).await;
    assert_eq!(address(&server), addr);
    let mut player = join(&addr).await;
    app.running(&token, &stubborn).await;
    let stubborn_dir = app.game_data(&stubborn);
    // Nothing was restarted: the same processes, the match still on, and no server running twice.
    assert_eq!(app.game_pid(&demo), Some(old_demo), "the demo game ran on undisturbed");
    assert_eq!(ask(&mut player, "GET_RUNNING_LENGTH").await, "RUNNING_LENGTH 1", "it remembers the match");
    assert_eq!(app.game_pid(&stubborn), Some(old_stubborn), "so did the stubborn one");
    assert_eq!(processes_in(&stubborn_dir).len(), 1);

    // Stopped politely (SIGTERM): on the single box it stops its games on the way out (they come back with it
    // next time); on a cluster they play on.
    second.terminate();
    match driver {
        TestDriver::Local => {
            assert!(processes_in(&stubborn_dir).is_empty(), "no game outlives a clean shutdown");
            assert!(std::net::TcpStream::connect(&addr).is_err());
        }
        TestDriver::Agones => {
            assert_eq!(processes_in(&stubborn_dir).len(), 1, "games on a cluster outlive Spawnpoint");
            assert_eq!(ask(&mut join(&addr).await, "GET_RUNNING_LENGTH").await, "RUNNING_LENGTH 1");
        }
    }
}
