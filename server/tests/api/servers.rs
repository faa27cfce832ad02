//! Game servers through the REST routes: what is recorded, what is refused, and who may see what.
//! (What running them looks like from outside is in `lifecycle`.)

use serde_json::{Value, json};

use crate::both_databases;
use crate::helpers::{Backend, TestApp, spawn_app};

both_databases!(
    a_created_server_is_pending_with_a_dns_safe_id,
    bad_input_names_the_field_and_writes_nothing,
    the_quota_stops_a_fourth_server,
    twenty_creates_at_once_give_exactly_the_quota,
    actions_follow_the_state_machine_and_refusals_name_the_state,
    another_users_server_does_not_exist_for_them,
    a_minecraft_version_needs_the_java_it_runs_on,
);

async fn create(app: &TestApp, token: &str, body: Value) -> reqwest::Response {
    app.create_server(token, body).await
}

async fn action(app: &TestApp, token: &str, id: &str, action: &str) -> reqwest::Response {
    app.act(token, id, action).await
}

async fn a_created_server_is_pending_with_a_dns_safe_id(backend: Backend) {
    let app = spawn_app(backend).await;
    let token = app.signed_up("owner@example.com").await;
    let response = create(&app, &token, json!({ "name": "  Friday night ", "game": "demo", "plan": "tiny" })).await;
    assert_eq!(response.status(), 201);
    let server: Value = response.json().await.expect("json");
    assert_eq!(server["name"], "Friday night");
    assert_eq!((server["game"].as_str(), server["plan"].as_str()), (Some("demo"), Some("tiny")));
    assert_eq!(server["status"], "pending", "recorded at once, provisioned later");
    assert_eq!(server["status_message"], Value::Null);
    assert_eq!(server["address"], Value::Null, "no address until it runs");
    let id = server["id"].as_str().expect("id");
    assert!(id.len() <= 30 && id.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'), "{id}");
    assert!(id.starts_with("de-"), "{id}: the game shows in the id");
    // The id is the server's public DNS name: nothing in it may tie it to its owner's other servers.
    let me: Value = app.get_as(&token, "/api/me").await.json().await.expect("json");
    let owner = me["id"].as_str().expect("user id");
    assert!(!id.contains(&owner[..6]), "{id} carries a part of the owner's id {owner}");

    let mine: Vec<Value> = app.get_as(&token, "/api/servers").await.json().await.expect("json");
    assert_eq!(mine.len(), 1);
    assert_eq!(mine[0]["id"], id);
    let shown = app.running(&token, id).await;
    let address = shown["address"].as_str().expect("a running server shows where to connect");
    let port: u16 = address.strip_prefix("127.0.0.1:").and_then(|p| p.parse().ok()).expect("host:port");
    assert!((25000..=29999).contains(&port), "{address}: a port from the game port range");
}

async fn bad_input_names_the_field_and_writes_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    let token = app.signed_up("picky@example.com").await;
    let long_name = "x".repeat(65);
    let cases = [
        (json!({ "name": "", "game": "demo", "plan": "tiny" }), "name"),
        (json!({ "name": long_name, "game": "demo", "plan": "tiny" }), "name"),
        (json!({ "name": "bad\u{7}bell", "game": "demo", "plan": "tiny" }), "name"),
        (json!({ "name": "ok", "game": "tetris", "plan": "tiny" }), "game"),
        (json!({ "name": "ok", "game": "valheim", "plan": "tiny" }), "plan"),
        (json!({ "name": "ok", "game": "demo" }), "plan"),
        (json!({ "name": "ok", "game": "minecraft-bedrock", "plan": "starter", "accept_eula": true }), "game"),
        (json!({ "name": "ok", "game": "minecraft-java", "plan": "starter" }), "accept_eula"),
        (
            json!({ "name": "ok", "game": "minecraft-java", "plan": "starter", "accept_eula": true,
                 "variables": { "MAX_PLAYERS": "99" } }),
            "variables.MAX_PLAYERS",
        ),
        (
            json!({ "name": "ok", "game": "minecraft-java", "plan": "starter", "accept_eula": true,
                 "variables": { "SERVER_TYPE": "forge" } }),
            "variables.SERVER_TYPE",
        ),
        (
            json!({ "name": "ok", "game": "minecraft-java", "plan": "starter", "accept_eula": true,
                 "variables": { "NOPE": "1" } }),
            "variables.NOPE",
        ),
    ];
    for (body, field) in cases {
        let response = create(&app, &token, body.clone()).await;
        assert_eq!(response.status(), 422, "{body}");
        let error: Value = response.json().await.expect("json");
        assert_eq!(error["error"]["field"], field, "{body}: {error}");
    }
    let bedrock = json!({ "name": "ok", "game": "minecraft-bedrock", "plan": "starter", "accept_eula": true });
    let error: Value = create(&app, &token, bedrock).await.json().await.expect("json");
    let says = |text: &str| error["error"]["message"].as_str().is_some_and(|m| m.contains(text));
    assert!(says("needs the operator to set BEDROCK_ZIP_URL"), "{error}");
    let players: Value = create(
        &app,
        &token,
        json!({ "name": "ok", "game": "minecraft-java", "plan": "starter", "accept_eula": true, "variables": { "MAX_PLAYERS": "99" } }),
    )
    .await
    .json()
    .await
    .expect("json");
    assert_eq!(
        players["error"]["message"], "variables.MAX_PLAYERS: must be a whole number from 1 to 5",
        "the rule, for this plan"
    );
    assert_eq!(app.count("servers").await, 0);
}

async fn the_quota_stops_a_fourth_server(backend: Backend) {
    let app = spawn_app(backend).await;
    let token = app.signed_up("collector@example.com").await;
    let mut ids = Vec::new();
    for n in 1..=3 {
        let response =
            create(&app, &token, json!({ "name": format!("world {n}"), "game": "demo", "plan": "tiny" })).await;
        assert_eq!(response.status(), 201, "server {n}");
        ids.push(response.json::<Value>().await.expect("json")["id"].as_str().expect("id").to_owned());
    }
    let response = create(&app, &token, json!({ "name": "one too many", "game": "demo", "plan": "tiny" })).await;
    assert_eq!(response.status(), 403);
    let error: Value = response.json().await.expect("json");
    assert!(error["error"]["message"].as_str().is_some_and(|m| m.contains("3 servers")), "{error}");
    assert_eq!(app.count("servers").await, 3, "nothing written");

    // A server being deleted no longer counts.
    assert_eq!(action(&app, &token, &ids[0], "delete").await.status(), 202);
    assert_eq!(
        create(&app, &token, json!({ "name": "replacement", "game": "demo", "plan": "tiny" })).await.status(),
        201
    );
}

async fn twenty_creates_at_once_give_exactly_the_quota(backend: Backend) {
    let app = spawn_app(backend).await;
    let token = app.signed_up("racer@example.com").await;
    let creates =
        (0..20).map(|n| create(&app, &token, json!({ "name": format!("w{n}"), "game": "demo", "plan": "tiny" })));
    let statuses: Vec<u16> =
        futures_util::future::join_all(creates).await.iter().map(|response| response.status().as_u16()).collect();
    assert_eq!(statuses.iter().filter(|&&code| code == 201).count(), 3, "{statuses:?}");
    assert!(statuses.iter().all(|&code| code == 201 || code == 403), "the rest are refused by the quota: {statuses:?}");
    assert_eq!(app.count("servers").await, 3);
}

async fn actions_follow_the_state_machine_and_refusals_name_the_state(backend: Backend) {
    let app = spawn_app(backend).await;
    let token = app.signed_up("player@example.com").await;
    let server: Value =
        create(&app, &token, json!({ "name": "w", "game": "demo", "plan": "tiny" })).await.json().await.expect("json");
    let id = server["id"].as_str().expect("id");
    let status_after = |response: reqwest::Response| async move {
        let code = response.status().as_u16();
        let body: Value = response.json().await.expect("json");
        (code, body)
    };

    // Pending, or already running: either way it cannot be started, and the refusal names the state.
    let (code, body) = status_after(action(&app, &token, id, "start").await).await;
    assert_eq!(code, 409);
    let message = body["error"]["message"].as_str().expect("message");
    assert!(
        ["status: cannot start a server that is pending", "status: cannot start a server that is running"]
            .contains(&message),
        "{message}"
    );

    app.running(&token, id).await;
    let (code, body) = status_after(action(&app, &token, id, "restart").await).await;
    assert_eq!((code, body["status"].as_str()), (202, Some("pending")));
    app.running(&token, id).await;
    let (code, body) = status_after(action(&app, &token, id, "stop").await).await;
    assert_eq!((code, body["status"].as_str()), (202, Some("stopped")));
    assert_eq!(body["address"], Value::Null, "a stopped server has no address");
    let (code, _) = status_after(action(&app, &token, id, "stop").await).await;
    assert_eq!(code, 409, "stopping twice");
    let (code, body) = status_after(action(&app, &token, id, "start").await).await;
    assert_eq!((code, body["status"].as_str()), (202, Some("pending")));
    let (code, body) = status_after(action(&app, &token, id, "delete").await).await;
    assert_eq!((code, body["status"].as_str()), (202, Some("deleted")));
    // Deleting twice: refused while the deletion is under way, or not found once the reconciler has finished it
    // (which it may already have done, so both are right).
    let (code, body) = status_after(action(&app, &token, id, "delete").await).await;
    match code {
        409 => assert_eq!(body["error"]["message"], "status: cannot delete a server that is deleted"),
        404 => assert_eq!(app.get_as(&token, &format!("/api/servers/{id}")).await.status(), 404, "gone for good"),
        other => panic!("deleting twice answered {other}: {body}"),
    }
    let (code, _) = status_after(action(&app, &token, id, "explode").await).await;
    assert_eq!(code, 404, "unknown actions do not exist");
}

async fn another_users_server_does_not_exist_for_them(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.signed_up("alice@example.com").await;
    let bob = app.signed_up("bob@example.com").await;
    let server: Value = create(&app, &alice, json!({ "name": "alice's", "game": "demo", "plan": "tiny" }))
        .await
        .json()
        .await
        .expect("json");
    let id = server["id"].as_str().expect("id");

    assert_eq!(app.get_as(&bob, &format!("/api/servers/{id}")).await.status(), 404);
    for verb in ["start", "stop", "restart", "delete"] {
        assert_eq!(action(&app, &bob, id, verb).await.status(), 404, "{verb}");
    }
    assert_eq!(app.get_as(&bob, &format!("/api/servers/{id}/logs")).await.status(), 404);
    assert_eq!(app.get_as(&alice, &format!("/api/servers/{id}/logs")).await.status(), 200);
    for bad in ["0", "1001", "ten"] {
        let response = app.get_as(&alice, &format!("/api/servers/{id}/logs?tail={bad}")).await;
        assert_eq!(response.status(), 422, "tail={bad}");
        let error: Value = response.json().await.expect("json");
        assert_eq!(error["error"]["field"], "tail", "tail={bad}");
    }
    let missing = app.get_as(&bob, "/api/servers/nosuch-de-server").await;
    let hidden = app.get_as(&bob, &format!("/api/servers/{id}")).await;
    let (missing, hidden): (Value, Value) = (missing.json().await.expect("json"), hidden.json().await.expect("json"));
    assert_eq!(missing["error"]["code"], hidden["error"]["code"], "someone else's looks like nothing at all");
    let bobs: Vec<Value> = app.get_as(&bob, "/api/servers").await.json().await.expect("json");
    assert!(bobs.is_empty());
    assert_eq!(app.get_as(&bob, "/api/servers?all=true").await.status(), 403, "only administrators see all");
    let still: Value = app.get_as(&alice, &format!("/api/servers/{id}")).await.json().await.expect("json");
    assert_ne!(still["status"], "deleted", "bob's attempts changed nothing");
    assert_ne!(still["status"], "stopped", "bob's attempts changed nothing");

    // An administrator (as `spawnpoint admin create` makes them) sees and may act on everyone's servers.
    let root = app.signed_up("root@example.com").await;
    sqlx::query("UPDATE users SET role = 'admin' WHERE email = $1")
        .bind("root@example.com")
        .execute(app.db.pool())
        .await
        .expect("promote");
    let all: Vec<Value> = app.get_as(&root, "/api/servers?all=true").await.json().await.expect("json");
    assert_eq!(all.len(), 1);
    assert_eq!(all[0]["user_id"], server["user_id"]);
    assert_eq!(app.get_as(&root, &format!("/api/servers/{id}")).await.status(), 200);
    assert_eq!(action(&app, &root, id, "stop").await.status(), 202);
}

/// The Java major version on this machine's `PATH` (`openjdk version "17.0.15"` → 17), if any.
fn host_java() -> Option<u32> {
    let output = std::process::Command::new("java").arg("-version").output().ok()?;
    let text = String::from_utf8_lossy(&output.stderr).into_owned();
    text.split('"').nth(1)?.split('.').next()?.parse().ok()
}

async fn a_minecraft_version_needs_the_java_it_runs_on(backend: Backend) {
    let app = spawn_app(backend).await;
    let token = app.signed_up("crafter@example.com").await;
    let body = |version: &str| {
        json!({ "name": "mc", "game": "minecraft-java", "plan": "starter", "accept_eula": true,
                "variables": { "MINECRAFT_VERSION": version } })
    };
    let games: Value = app.get("/api/games/minecraft-java").await.json().await.expect("json");
    let response = create(&app, &token, body("1.21.4")).await;
    match host_java() {
        Some(java) if java < 21 => {
            assert_eq!(response.status(), 422);
            let error: Value = response.json().await.expect("json");
            let expected =
                format!("game: MINECRAFT_VERSION: Minecraft 1.21.4 needs Java 21; this host has Java {java}");
            assert_eq!(error["error"]["message"], expected.as_str());
            assert_eq!(games["unavailable"], Value::Null, "the default version, 1.20.4, runs on Java {java}");
            assert_eq!(app.count("servers").await, 0);
        }
        Some(_) => assert_eq!(response.status(), 201, "this host has Java 21"),
        None => {
            assert_eq!(response.status(), 422);
            assert!(games["unavailable"].as_str().is_some_and(|why| why.contains("needs Java")), "{games}");
        }
    }
}
