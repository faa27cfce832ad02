//! The file manager's REST API (`/api/servers/{id}/files…`) on the local driver: what a customer does with
//! their server's files, what the game then sees, and every way out of the server's files refused.

use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};

use crate::both_databases;
use crate::helpers::{Backend, TestApp, TestDriver, spawn_app_on, spawn_app_with};

both_databases!(
    files_are_listed_edited_uploaded_and_packed_and_the_game_sees_them,
    paths_leaving_the_server_are_refused_and_change_nothing,
    the_plans_storage_bounds_uploads_and_archives,
    another_customers_files_are_not_found,
    on_a_cluster_the_files_say_they_cannot_be_reached_yet
);

/// A game that prints its greeting file at start, then waits for `stop`; its plan has 1 MiB of storage.
pub const CATALOG: &str = r#"
games:
  - id: reader
    name: Reader
    image: test/reader
    port: { port: 1, protocol: TCP }
    stop_command: stop
    local:
      command: sh
      args: ["-c", "echo \"greeting: $(cat greeting.txt 2>/dev/null || echo none)\"; echo ready now; while read line; do [ \"$line\" = stop ] && exit 0; done"]
      ready_line: ready now
    plans: [{ id: p, name: P, players: { min: 1, max: 1 }, cpu: 100m, memory: 64Mi, storage: 1Mi, price_cents: 1 }]
"#;

pub async fn app(backend: Backend) -> (TestApp, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("games.yaml");
    std::fs::write(&path, CATALOG).expect("catalog");
    let app = spawn_app_with(backend, |settings| settings.catalog_path = Some(path.clone())).await;
    (app, dir)
}

fn files_url(app: &TestApp, id: &str, rest: &str) -> String {
    app.url(&format!("/api/servers/{id}/files{rest}"))
}

async fn upload(app: &TestApp, token: &str, id: &str, dir: &str, files: &[(&str, Vec<u8>)]) -> reqwest::Response {
    let mut form = Form::new();
    for (name, bytes) in files {
        form = form.part("file", Part::bytes(bytes.clone()).file_name(name.to_string()));
    }
    let url = files_url(app, id, &format!("/upload?path={dir}"));
    app.client.post(url).bearer_auth(token).multipart(form).send().await.expect("sent")
}

async fn post(app: &TestApp, token: &str, id: &str, route: &str, body: Value) -> reqwest::Response {
    app.client.post(files_url(app, id, route)).bearer_auth(token).json(&body).send().await.expect("sent")
}

async fn put(app: &TestApp, token: &str, id: &str, path: &str, text: &str) -> reqwest::Response {
    let url = files_url(app, id, &format!("/content?path={path}"));
    app.client.put(url).bearer_auth(token).body(text.to_owned()).send().await.expect("sent")
}

pub async fn content(app: &TestApp, token: &str, id: &str, path: &str) -> reqwest::Response {
    app.get_as(token, &format!("/api/servers/{id}/files/content?path={path}")).await
}

pub async fn names(app: &TestApp, token: &str, id: &str, dir: &str) -> Vec<String> {
    let response = app.get_as(token, &format!("/api/servers/{id}/files?path={dir}")).await;
    assert_eq!(response.status(), 200, "listing {dir:?}");
    let listing: Value = response.json().await.expect("json");
    listing["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| e["name"].as_str().expect("name").to_owned())
        .collect()
}

async fn versions_of(app: &TestApp, token: &str, id: &str, path: &str) -> usize {
    let listed = app.get_as(token, &format!("/api/servers/{id}/files/versions?path={path}")).await;
    json_of(listed).await.as_array().expect("versions").len()
}

async fn json_of(response: reqwest::Response) -> Value {
    response.json().await.expect("json")
}

async fn files_are_listed_edited_uploaded_and_packed_and_the_game_sees_them(backend: Backend) {
    let (app, _dir) = app(backend).await;
    let token = app.signed_up("owner@example.com").await;
    let id = app.created(&token, "reader", "p").await;
    app.running(&token, &id).await;
    assert!(app.log_shows(&token, &id, "greeting: none").await);

    // Uploaded (several files in one request), then read by the game at its next start.
    let response =
        upload(&app, &token, &id, "", &[("greeting.txt", b"hello from the panel".to_vec()), ("b.bin", vec![7; 3000])])
            .await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        json_of(response).await["files"],
        json!([{ "name": "greeting.txt", "size": 20 }, { "name": "b.bin", "size": 3000 }])
    );
    app.act(&token, &id, "restart").await;
    assert!(app.log_shows(&token, &id, "greeting: hello from the panel").await, "the game reads what was uploaded");
    #[cfg(target_os = "linux")]
    if nix::unistd::geteuid().is_root() {
        use std::os::unix::fs::MetadataExt as _;
        let owner = std::fs::metadata(app.game_data(&id).join("greeting.txt")).expect("uploaded").uid();
        assert!(owner >= 0x7000_0000, "an uploaded file belongs to the game's own user, not to the panel: {owner}");
    }

    // Directories first, then by name; paged.
    assert_eq!(post(&app, &token, &id, "/mkdir", json!({ "path": "world/region" })).await.status(), 201);
    assert_eq!(names(&app, &token, &id, "").await, ["world", "b.bin", "greeting.txt"]);
    let page: Value = json_of(app.get_as(&token, &format!("/api/servers/{id}/files?offset=1&limit=1")).await).await;
    assert_eq!((page["total"].as_u64(), page["entries"][0]["name"].as_str()), (Some(3), Some("b.bin")));
    assert_eq!(page["entries"][0]["kind"], "file");
    assert_eq!(page["entries"][0]["size"], 3000);

    // Edited: the earlier content is kept as a version and can be put back.
    assert_eq!(put(&app, &token, &id, "server.properties", "motd=first\n").await.status(), 200);
    let saved = json_of(put(&app, &token, &id, "server.properties", "motd=second\n").await).await;
    assert_eq!(saved["size"], 12);
    assert_eq!(content(&app, &token, &id, "server.properties").await.text().await.expect("text"), "motd=second\n");
    let versions: Value =
        json_of(app.get_as(&token, &format!("/api/servers/{id}/files/versions?path=server.properties")).await).await;
    let versions = versions.as_array().expect("versions");
    assert_eq!(versions.len(), 1, "the first save had nothing before it: {versions:?}");
    let version = versions[0]["id"].as_str().expect("id");
    let old = app.get_as(&token, &format!("/api/servers/{id}/files/versions/{version}?path=server.properties")).await;
    assert_eq!(old.text().await.expect("text"), "motd=first\n");
    let url = files_url(&app, &id, &format!("/versions/{version}/restore?path=server.properties"));
    assert_eq!(app.client.post(url).bearer_auth(&token).send().await.expect("sent").status(), 200);
    assert_eq!(content(&app, &token, &id, "server.properties").await.text().await.expect("text"), "motd=first\n");
    // Versions follow their file into a moved directory, and go when it is deleted.
    assert_eq!(put(&app, &token, &id, "configs/game.properties", "a=1\n").await.status(), 200);
    assert_eq!(put(&app, &token, &id, "configs/game.properties", "a=2\n").await.status(), 200);
    assert_eq!(post(&app, &token, &id, "/rename", json!({ "from": "configs", "to": "settings" })).await.status(), 204);
    assert_eq!(versions_of(&app, &token, &id, "settings/game.properties").await, 1);
    assert_eq!(post(&app, &token, &id, "/delete", json!({ "paths": ["settings"] })).await.status(), 204);
    assert_eq!(put(&app, &token, &id, "settings/game.properties", "a=3\n").await.status(), 200);
    assert_eq!(
        versions_of(&app, &token, &id, "settings/game.properties").await,
        0,
        "a new file has no versions of the deleted one"
    );
    assert_eq!(post(&app, &token, &id, "/delete", json!({ "paths": ["settings"] })).await.status(), 204);

    // Renamed, copied, compressed, extracted, deleted.
    assert_eq!(post(&app, &token, &id, "/rename", json!({ "from": "b.bin", "to": "world/b.bin" })).await.status(), 204);
    assert_eq!(post(&app, &token, &id, "/copy", json!({ "from": "world", "to": "world-copy" })).await.status(), 204);
    assert_eq!(names(&app, &token, &id, "world-copy").await, ["region", "b.bin"]);
    let response = post(&app, &token, &id, "/compress", json!({ "paths": ["world"], "to": "world.tar.zst" })).await;
    assert_eq!(response.status(), 201);
    let response = post(&app, &token, &id, "/extract", json!({ "path": "world.tar.zst", "to": "unpacked" })).await;
    assert_eq!(json_of(response).await["files"], 1);
    let unpacked = content(&app, &token, &id, "unpacked/world/b.bin").await;
    assert_eq!(unpacked.bytes().await.expect("bytes").to_vec(), vec![7; 3000]);
    let response =
        post(&app, &token, &id, "/delete", json!({ "paths": ["world-copy", "unpacked", "world.tar.zst"] })).await;
    assert_eq!(response.status(), 204);
    assert_eq!(names(&app, &token, &id, "").await, ["world", "greeting.txt", "server.properties"]);

    // Searched by name and by content.
    let found: Value =
        json_of(app.get_as(&token, &format!("/api/servers/{id}/files/search?q=MOTD&content=true")).await).await;
    assert_eq!(found["hits"], json!([{ "path": "server.properties", "line": 1, "text": "motd=first" }]));
    let found: Value = json_of(app.get_as(&token, &format!("/api/servers/{id}/files/search?q=greet")).await).await;
    assert_eq!(found["hits"], json!([{ "path": "greeting.txt" }]));

    // A directory downloads as a tar, made as it is sent.
    let response = app.get_as(&token, &format!("/api/servers/{id}/files/download?path=world")).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-disposition"], "attachment; filename=\"world.tar\"");
    let tar = response.bytes().await.expect("bytes");
    let mut archive = tar::Archive::new(&tar[..]);
    let mut entries: Vec<String> = archive
        .entries()
        .expect("a tar")
        .map(|entry| entry.expect("entry").path().expect("path").to_string_lossy().into_owned())
        .collect();
    entries.sort();
    assert_eq!(entries, ["world/", "world/b.bin", "world/region/"]);

    // And all of it while the server is stopped too.
    app.act(&token, &id, "stop").await;
    app.wait_for(&token, &id, "stopped", |server| server["status"] == "stopped").await;
    assert_eq!(put(&app, &token, &id, "greeting.txt", "while stopped").await.status(), 200);
    assert_eq!(content(&app, &token, &id, "greeting.txt").await.text().await.expect("text"), "while stopped");
}

async fn paths_leaving_the_server_are_refused_and_change_nothing(backend: Backend) {
    let (app, _dir) = app(backend).await;
    let token = app.signed_up("owner@example.com").await;
    let id = app.created(&token, "reader", "p").await;
    app.running(&token, &id).await;
    // What a game could plant: links out of its directory.
    let data = app.game_data(&id);
    std::os::unix::fs::symlink("/etc", data.join("etc")).expect("link");
    std::os::unix::fs::symlink("/etc/hostname", data.join("hostname")).expect("link");

    let listed: Value = json_of(app.get_as(&token, &format!("/api/servers/{id}/files")).await).await;
    let kinds: Vec<(&str, &str)> = listed["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| (e["name"].as_str().expect("name"), e["kind"].as_str().expect("kind")))
        .collect();
    assert!(kinds.contains(&("etc", "symlink")), "links are shown as links: {kinds:?}");

    let refused = [
        app.get_as(&token, &format!("/api/servers/{id}/files/content?path=../../../../etc/passwd")).await,
        app.get_as(&token, &format!("/api/servers/{id}/files/content?path=/etc/passwd")).await,
        app.get_as(&token, &format!("/api/servers/{id}/files/content?path=etc/passwd")).await,
        app.get_as(&token, &format!("/api/servers/{id}/files/content?path=hostname")).await,
        app.get_as(&token, &format!("/api/servers/{id}/files?path=etc")).await,
        app.get_as(&token, &format!("/api/servers/{id}/files/content?path=a%00b")).await,
        put(&app, &token, &id, "etc/evil", "x").await,
        put(&app, &token, &id, "hostname", "x").await,
        upload(&app, &token, &id, "etc", &[("evil", b"x".to_vec())]).await,
        post(&app, &token, &id, "/rename", json!({ "from": "etc/hostname", "to": "stolen" })).await,
        post(&app, &token, &id, "/copy", json!({ "from": "etc", "to": "stolen" })).await,
        post(&app, &token, &id, "/delete", json!({ "paths": ["etc/hostname"] })).await,
        post(&app, &token, &id, "/compress", json!({ "paths": ["etc"], "to": "etc.zip" })).await,
        post(&app, &token, &id, "/mkdir", json!({ "path": "etc/x" })).await,
    ];
    for response in refused {
        let url = response.url().to_string();
        assert_eq!(response.status(), 400, "{url}");
        let body: Value = response.json().await.expect("json");
        let field = body["error"]["field"].as_str().unwrap_or_default().to_owned();
        assert!(["path", "paths", "from", "to"].contains(&field.as_str()), "{url}: {body}");
    }
    let response = post(&app, &token, &id, "/rename", json!({ "from": "../x", "to": "y" })).await;
    assert_eq!(json_of(response).await["error"]["field"], "from");
    assert!(!data.join("stolen").exists() && !data.join("etc.zip").exists(), "nothing was made");
    assert_eq!(std::fs::read_link(data.join("hostname")).expect("still a link"), std::path::Path::new("/etc/hostname"));
    // The link itself can be deleted; what it points to stays.
    assert_eq!(post(&app, &token, &id, "/delete", json!({ "paths": ["hostname"] })).await.status(), 204);
    assert!(data.join("hostname").symlink_metadata().is_err(), "the link is gone");
    assert!(std::path::Path::new("/etc/hostname").exists(), "not what it pointed to");

    // An archive whose entries climb out is refused as a whole.
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    zip.start_file("../../escaped.txt", zip::write::SimpleFileOptions::default()).expect("entry");
    std::io::Write::write_all(&mut zip, b"out").expect("write");
    let bytes = zip.finish().expect("zip").into_inner();
    assert_eq!(upload(&app, &token, &id, "", &[("climb.zip", bytes)]).await.status(), 200);
    let response = post(&app, &token, &id, "/extract", json!({ "path": "climb.zip" })).await;
    assert_eq!(response.status(), 422);
    assert!(!app.data_dir().join("servers").join("escaped.txt").exists());
}

async fn the_plans_storage_bounds_uploads_and_archives(backend: Backend) {
    let (app, _dir) = app(backend).await;
    let token = app.signed_up("owner@example.com").await;
    let id = app.created(&token, "reader", "p").await;
    app.running(&token, &id).await;

    // The plan has 1 MiB: a 2 MiB upload is refused and leaves nothing behind. (Refused before its body is all
    // read, its connection is closed after the answer: a client of its own, so no later request reuses it.)
    let form = Form::new().part("file", Part::bytes(vec![1; 2 * 1024 * 1024]).file_name("big.bin"));
    let response = crate::helpers::http()
        .build()
        .expect("client")
        .post(files_url(&app, &id, "/upload?path="))
        .bearer_auth(&token)
        .multipart(form)
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 409);
    let body = json_of(response).await;
    assert_eq!(body["error"]["field"], "storage");
    assert!(body["error"]["message"].as_str().expect("message").contains("(1 MiB)"), "{body}");
    assert_eq!(names(&app, &token, &id, "").await, Vec::<String>::new(), "no partial file");

    // A small archive that unpacks to far more (a zip bomb, in miniature) is stopped at the storage left.
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    zip.start_file("zeros", options).expect("entry");
    std::io::Write::write_all(&mut zip, &vec![0; 8 * 1024 * 1024]).expect("write");
    let bomb = zip.finish().expect("zip").into_inner();
    assert!(bomb.len() < 100_000, "it is small packed: {}", bomb.len());
    assert_eq!(upload(&app, &token, &id, "", &[("bomb.zip", bomb)]).await.status(), 200);
    let response = post(&app, &token, &id, "/extract", json!({ "path": "bomb.zip", "to": "out" })).await;
    assert_eq!(response.status(), 409);
    assert_eq!(json_of(response).await["error"]["field"], "storage");
    let disk: Value = json_of(app.get_as(&token, &format!("/api/servers/{id}/disk")).await).await;
    assert!(disk["used_bytes"].as_u64().expect("used") < 1024 * 1024, "the disk is not filled: {disk}");
}

async fn another_customers_files_are_not_found(backend: Backend) {
    let (app, _dir) = app(backend).await;
    let owner = app.signed_up("owner@example.com").await;
    let other = app.signed_up("other@example.com").await;
    let id = app.created(&owner, "reader", "p").await;
    assert_eq!(put(&app, &owner, &id, "secret.txt", "mine").await.status(), 200, "before the first start too");
    for path in ["/files", "/files/content?path=secret.txt", "/files/download?path=", "/files/search?q=secret"] {
        let response = app.get_as(&other, &format!("/api/servers/{id}{path}")).await;
        assert_eq!(response.status(), 404, "{path}");
    }
    assert_eq!(put(&app, &other, &id, "secret.txt", "theirs").await.status(), 404);
    assert_eq!(post(&app, &other, &id, "/delete", json!({ "paths": ["secret.txt"] })).await.status(), 404);
    let anonymous = app.client.get(files_url(&app, &id, "")).send().await.expect("sent");
    assert_eq!(anonymous.status(), 401);
    assert_eq!(content(&app, &owner, &id, "secret.txt").await.text().await.expect("text"), "mine");
}

/// Until the Agones driver reaches files through the pod, it says so rather than pretending.
async fn on_a_cluster_the_files_say_they_cannot_be_reached_yet(backend: Backend) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("games.yaml");
    std::fs::write(&path, CATALOG).expect("catalog");
    let app = spawn_app_on(backend, TestDriver::Agones, |settings| settings.catalog_path = Some(path.clone())).await;
    let token = app.signed_up("owner@example.com").await;
    let id = app.created(&token, "reader", "p").await;
    let response = app.get_as(&token, &format!("/api/servers/{id}/files")).await;
    assert_eq!(response.status(), 503);
    let body = json_of(response).await;
    assert!(body["error"]["message"].as_str().expect("message").contains("cannot reach servers' files yet"), "{body}");
}
