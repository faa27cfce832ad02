//! Backups through the REST API (`/api/servers/{id}/backups…`), in the default store (the local file system
//! under the data directory): taken while the game runs with its save hooks around them, restored, rotated
//! within the plan's count, locked, checked on restore, and removed with their server.

use std::io::Read as _;

use serde_json::{Value, json};
use sha2::Digest as _;

use crate::both_databases;
use crate::helpers::{Backend, TestApp, spawn_app_with};

both_databases!(
    a_backup_of_a_running_server_is_consistent_and_restores_it,
    backups_rotate_within_the_plan_and_locked_ones_stay,
    a_damaged_archive_is_not_restored,
    backups_go_with_their_server_and_are_their_owners_alone
);

/// A game that answers Minecraft's save commands, and says when its files were restored under it.
pub const CATALOG: &str = r#"
games:
  - id: saver
    name: Saver
    image: test/saver
    port: { port: 1, protocol: TCP }
    stop_command: stop
    backup: { before: [save-off, save-all], after: [save-on] }
    local:
      command: sh
      args: ["-c", "echo \"world: $(cat world.txt 2>/dev/null || echo new)\"; echo ready now; while read line; do case \"$line\" in stop) exit 0;; save-off) echo 'Automatic saving is now disabled';; save-all) echo 'Saved the game';; save-on) echo 'Automatic saving is now enabled';; esac; done"]
      ready_line: ready now
    plans: [{ id: p, name: P, players: { min: 1, max: 1 }, cpu: 100m, memory: 64Mi, storage: 32Mi, price_cents: 1, backups: 2 }]
"#;

pub async fn app(backend: Backend, adjust: impl FnOnce(&mut server::config::Settings)) -> (TestApp, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("games.yaml");
    std::fs::write(&path, CATALOG).expect("catalog");
    let app = spawn_app_with(backend, |settings| {
        settings.catalog_path = Some(path.clone());
        adjust(settings);
    })
    .await;
    (app, dir)
}

pub async fn put(app: &TestApp, token: &str, id: &str, path: &str, text: &str) {
    let url = app.url(&format!("/api/servers/{id}/files/content?path={path}"));
    let response = app.client.put(url).bearer_auth(token).body(text.to_owned()).send().await.expect("sent");
    assert_eq!(response.status(), 200, "writing {path}");
}

pub async fn read(app: &TestApp, token: &str, id: &str, path: &str) -> reqwest::Response {
    app.get_as(token, &format!("/api/servers/{id}/files/content?path={path}")).await
}

pub async fn start_backup(app: &TestApp, token: &str, id: &str, body: Value) -> reqwest::Response {
    let url = app.url(&format!("/api/servers/{id}/backups"));
    app.client.post(url).bearer_auth(token).json(&body).send().await.expect("sent")
}

/// Polls the backup until `until` holds; panics with the last answer after 30 s.
pub async fn backup_until(app: &TestApp, token: &str, id: &str, backup: &str, until: impl Fn(&Value) -> bool) -> Value {
    let mut last = Value::Null;
    for _ in 0..300 {
        last = app.get_as(token, &format!("/api/servers/{id}/backups/{backup}")).await.json().await.expect("json");
        if until(&last) {
            return last;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("backup {backup} never got there; last seen: {last}");
}

/// Takes a backup and waits for it to finish (ok or failed).
pub async fn backed_up(app: &TestApp, token: &str, id: &str, body: Value) -> Value {
    let response = start_backup(app, token, id, body).await;
    assert_eq!(response.status(), 202);
    let pending: Value = response.json().await.expect("json");
    assert_eq!(pending["status"], "pending");
    let backup = pending["id"].as_str().expect("id").to_owned();
    backup_until(app, token, id, &backup, |b| b["status"] != "pending").await
}

pub async fn act_on(app: &TestApp, token: &str, id: &str, backup: &str, action: &str) -> reqwest::Response {
    let url = app.url(&format!("/api/servers/{id}/backups/{backup}/{action}"));
    app.client.post(url).bearer_auth(token).send().await.expect("sent")
}

pub async fn restored(app: &TestApp, token: &str, id: &str, backup: &str) -> Value {
    let response = act_on(app, token, id, backup, "restore").await;
    assert_eq!(response.status(), 202);
    backup_until(app, token, id, backup, |b| b["restoring"] == false).await
}

/// `len` letters that do not compress much (xorshift): a world's worth of bytes that stays big in an archive.
pub fn noise(len: usize) -> String {
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            char::from(b'a' + (state % 26) as u8)
        })
        .collect()
}

/// The names and contents of a `.tar.zst` archive's files.
pub fn unpacked(archive: &[u8]) -> Vec<(String, String)> {
    let decoder = zstd::Decoder::new(archive).expect("zstd");
    let mut tar = tar::Archive::new(decoder);
    let mut files = Vec::new();
    for entry in tar.entries().expect("tar") {
        let mut entry = entry.expect("entry");
        if entry.header().entry_type().is_file() {
            let name = entry.path().expect("path").to_string_lossy().into_owned();
            let mut text = String::new();
            entry.read_to_string(&mut text).expect("text");
            files.push((name, text));
        }
    }
    files.sort();
    files
}

async fn a_backup_of_a_running_server_is_consistent_and_restores_it(backend: Backend) {
    let (app, _dir) = app(backend, |_| {}).await;
    let token = app.signed_up("owner@example.com").await;
    let id = app.created(&token, "saver", "p").await;
    app.running(&token, &id).await;
    put(&app, &token, &id, "world.txt", "v1").await;
    put(&app, &token, &id, "logs/latest.log", "noise").await;

    let backup = backed_up(&app, &token, &id, json!({ "name": "before the update", "ignore": "logs/" })).await;
    assert_eq!(backup["status"], "ok", "{backup}");
    assert_eq!(backup["name"], "before the update");
    let bid = backup["id"].as_str().expect("id").to_owned();
    // The game was told to save and hold still, then to carry on, in that order.
    let lines = app.log_lines(&token, &id).await;
    let at =
        |text: &str| lines.iter().position(|line| line.contains(text)).unwrap_or_else(|| panic!("{text}: {lines:?}"));
    assert!(at("saving is now disabled") < at("Saved the game") && at("Saved the game") < at("saving is now enabled"));

    // What was stored is what is listed and downloaded: its checksum and size match, and it holds the files.
    let download = app.get_as(&token, &format!("/api/servers/{id}/backups/{bid}/download")).await;
    assert_eq!(download.status(), 200);
    let archive = download.bytes().await.expect("bytes");
    assert_eq!(backup["size"].as_u64(), Some(archive.len() as u64));
    assert_eq!(backup["sha256"].as_str(), Some(hex::encode(sha2::Sha256::digest(&archive)).as_str()));
    assert_eq!(unpacked(&archive), [("world.txt".to_owned(), "v1".to_owned())], "the log was ignored");
    let listed: Value = app.get_as(&token, &format!("/api/servers/{id}/backups")).await.json().await.expect("json");
    assert_eq!(listed[0]["id"], bid.as_str());

    // Changed after the backup, then restored: the server is stopped, its files are the backup's, and it runs
    // again with them.
    put(&app, &token, &id, "world.txt", "v2").await;
    put(&app, &token, &id, "griefed.txt", "x").await;
    let done = restored(&app, &token, &id, &bid).await;
    assert_eq!(done["restore_error"], Value::Null, "{done}");
    app.running(&token, &id).await;
    assert_eq!(read(&app, &token, &id, "world.txt").await.text().await.expect("text"), "v1");
    assert_eq!(read(&app, &token, &id, "griefed.txt").await.status(), 404);
    assert!(app.log_shows(&token, &id, "world: v1").await, "the game started again on the restored files");
}

async fn backups_rotate_within_the_plan_and_locked_ones_stay(backend: Backend) {
    let (app, _dir) = app(backend, |_| {}).await;
    let token = app.signed_up("owner@example.com").await;
    let id = app.created(&token, "saver", "p").await;
    app.running(&token, &id).await;

    // The plan keeps 2.
    let first = backed_up(&app, &token, &id, json!({ "name": "first" })).await;
    let second = backed_up(&app, &token, &id, json!({ "name": "second" })).await;
    let (first, second) = (first["id"].as_str().expect("id").to_owned(), second["id"].as_str().expect("id").to_owned());
    assert_eq!(act_on(&app, &token, &id, &first, "lock").await.status(), 200);
    let third = backed_up(&app, &token, &id, json!({ "name": "third" })).await;
    let third = third["id"].as_str().expect("id").to_owned();
    let listed: Value = app.get_as(&token, &format!("/api/servers/{id}/backups")).await.json().await.expect("json");
    let names: Vec<&str> = listed.as_array().expect("list").iter().filter_map(|b| b["name"].as_str()).collect();
    assert_eq!(names, ["third", "first"], "the oldest unlocked one made room");
    let store = app.data_dir().join("backups").join(&id);
    assert!(!store.join(format!("{second}.tar.zst")).exists(), "its archive went with it");

    // All locked: nothing more is taken, nothing is deleted.
    assert_eq!(act_on(&app, &token, &id, &third, "lock").await.status(), 200);
    let response = start_backup(&app, &token, &id, json!({ "name": "fourth" })).await;
    assert_eq!(response.status(), 409);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["error"]["field"], "backups");
    let delete = app.client.delete(app.url(&format!("/api/servers/{id}/backups/{first}"))).bearer_auth(&token);
    assert_eq!(delete.send().await.expect("sent").status(), 409, "a locked backup is not deleted");

    assert_eq!(act_on(&app, &token, &id, &first, "unlock").await.status(), 200);
    let delete = app.client.delete(app.url(&format!("/api/servers/{id}/backups/{first}"))).bearer_auth(&token);
    assert_eq!(delete.send().await.expect("sent").status(), 204);
    assert!(!store.join(format!("{first}.tar.zst")).exists());
    assert!(store.join(format!("{third}.tar.zst")).exists());

    // Bad input names its field and takes nothing.
    let response = start_backup(&app, &token, &id, json!({ "name": "x".repeat(101) })).await;
    assert_eq!(response.json::<Value>().await.expect("json")["error"]["field"], "name");
    let response = start_backup(&app, &token, &id, json!({ "ignore": "/" })).await;
    assert_eq!(response.json::<Value>().await.expect("json")["error"]["field"], "ignore");
    let listed: Value = app.get_as(&token, &format!("/api/servers/{id}/backups")).await.json().await.expect("json");
    assert_eq!(listed.as_array().map(Vec::len), Some(1));
}

async fn a_damaged_archive_is_not_restored(backend: Backend) {
    let (app, _dir) = app(backend, |_| {}).await;
    let token = app.signed_up("owner@example.com").await;
    let id = app.created(&token, "saver", "p").await;
    app.running(&token, &id).await;
    put(&app, &token, &id, "world.txt", "v1").await;
    let backup = backed_up(&app, &token, &id, json!({})).await;
    let bid = backup["id"].as_str().expect("id").to_owned();
    put(&app, &token, &id, "world.txt", "v2").await;

    // Someone with access to the store changes the archive (a valid one, with other files).
    let path = app.data_dir().join("backups").join(&id).join(format!("{bid}.tar.zst"));
    let mut tar = tar::Builder::new(zstd::Encoder::new(Vec::new(), 3).expect("zstd"));
    let mut header = tar::Header::new_gnu();
    header.set_size(5);
    header.set_mode(0o644);
    tar.append_data(&mut header, "world.txt", &b"EVIL!"[..]).expect("entry");
    std::fs::write(&path, tar.into_inner().expect("tar").finish().expect("zstd")).expect("replaced");

    let done = restored(&app, &token, &id, &bid).await;
    let error = done["restore_error"].as_str().expect("the restore failed");
    assert!(error.contains("does not match its checksum"), "{error}");
    assert_eq!(read(&app, &token, &id, "world.txt").await.text().await.expect("text"), "v2", "left as they were");
}

async fn backups_go_with_their_server_and_are_their_owners_alone(backend: Backend) {
    let (app, _dir) = app(backend, |_| {}).await;
    let token = app.signed_up("owner@example.com").await;
    let other = app.signed_up("other@example.com").await;
    let id = app.created(&token, "saver", "p").await;
    app.running(&token, &id).await;
    let backup = backed_up(&app, &token, &id, json!({})).await;
    let bid = backup["id"].as_str().expect("id").to_owned();

    for path in ["".to_owned(), format!("/{bid}"), format!("/{bid}/download")] {
        let response = app.get_as(&other, &format!("/api/servers/{id}/backups{path}")).await;
        assert_eq!(response.status(), 404, "{path}");
    }
    for action in ["restore", "lock", "unlock"] {
        assert_eq!(act_on(&app, &other, &id, &bid, action).await.status(), 404, "{action}");
    }
    assert_eq!(start_backup(&app, &other, &id, json!({})).await.status(), 404);
    let delete = app.client.delete(app.url(&format!("/api/servers/{id}/backups/{bid}"))).bearer_auth(&other);
    assert_eq!(delete.send().await.expect("sent").status(), 404);

    let store = app.data_dir().join("backups").join(&id);
    assert!(store.join(format!("{bid}.tar.zst")).exists());
    assert_eq!(app.act(&token, &id, "delete").await.status(), 202);
    app.wait_for(&token, &id, "gone", |server| server.is_null()).await;
    assert!(!store.join(format!("{bid}.tar.zst")).exists(), "the backups went with the server");
    assert_eq!(app.count("backups").await, 0);
}
