//! Startup variables through the API (`GET`/`PUT /api/servers/{id}/variables`) and reinstalling
//! (`POST /api/servers/{id}/reinstall`), with a small game that prints what it was given.

use serde_json::{Value, json};

use crate::both_databases;
use crate::helpers::{Backend, TestApp, spawn_app_with};

both_databases!(variables_are_checked_applied_with_a_restart_and_reinstall_runs_the_steps_again);

const CATALOG: &str = r#"
games:
  - id: settable
    name: Settable
    image: test/settable
    port: { port: 1, protocol: TCP }
    stop_command: stop
    variables:
      - { key: GREETING, name: Greeting, type: text, max_len: 20, default: hello }
      - { key: MAX_PLAYERS, name: Max players, type: number, min: 1, max: plan, default: 10 }
      - { key: BRANCH, name: Branch, type: text, max_len: 20, default: stable, editable: false }
    local:
      command: sh
      args: ["-c", "echo \"greeting=$GREETING players=$(grep max-players game.properties)\"; echo ready now; while read line; do [ \"$line\" = stop ] && exit 0; done"]
      ready_line: ready now
      install:
        - command: [sh, -c, "echo installed >> installs.txt"]
      config_files:
        - { path: game.properties, format: properties, set: { max-players: "{MAX_PLAYERS}" } }
    plans: [{ id: p, name: P, players: { min: 1, max: 6 }, cpu: 100m, memory: 64Mi, storage: 1Gi, price_cents: 1 }]
"#;

async fn put(app: &TestApp, token: &str, id: &str, values: Value) -> reqwest::Response {
    let url = app.url(&format!("/api/servers/{id}/variables"));
    app.client.put(url).bearer_auth(token).json(&json!({ "values": values })).send().await.expect("sent")
}

async fn values(app: &TestApp, token: &str, id: &str) -> Value {
    let response = app.get_as(token, &format!("/api/servers/{id}/variables")).await;
    assert_eq!(response.status(), 200);
    response.json::<Value>().await.expect("json")
}

async fn variables_are_checked_applied_with_a_restart_and_reinstall_runs_the_steps_again(backend: Backend) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("games.yaml");
    std::fs::write(&path, CATALOG).expect("catalog");
    let app = spawn_app_with(backend, |settings| settings.catalog_path = Some(path.clone())).await;
    let token = app.signed_up("owner@example.com").await;
    let body = json!({ "name": "s", "game": "settable", "plan": "p", "variables": { "GREETING": "hi" } });
    let response = app.create_server(&token, body).await;
    assert_eq!(response.status(), 201);
    let id = response.json::<Value>().await.expect("json")["id"].as_str().expect("id").to_owned();
    app.running(&token, &id).await;
    assert!(app.log_shows(&token, &id, "greeting=hi players=max-players=6").await, "given, and bounded by the plan");

    // What the owner sees: their variables with rules, not the operator's.
    let shown = values(&app, &token, &id).await;
    assert_eq!(shown["values"], json!({ "GREETING": "hi", "MAX_PLAYERS": "6" }));
    assert_eq!(shown["plan_players"], 6);
    let keys: Vec<&str> =
        shown["variables"].as_array().expect("list").iter().filter_map(|v| v["key"].as_str()).collect();
    assert_eq!(keys, ["GREETING", "MAX_PLAYERS"]);
    assert_eq!(shown["variables"][1]["rule"], json!({ "type": "number", "min": 1, "max": "plan_players" }));

    // Refused, naming the variable and its rule; nothing changes.
    for (change, field, message) in [
        (
            json!({ "MAX_PLAYERS": "7" }),
            "variables.MAX_PLAYERS",
            "variables.MAX_PLAYERS: must be a whole number from 1 to 6",
        ),
        (
            json!({ "GREETING": "x".repeat(21) }),
            "variables.GREETING",
            "variables.GREETING: must be text of at most 20 characters",
        ),
        (
            json!({ "BRANCH": "beta" }),
            "variables.BRANCH",
            "variables.BRANCH: is set by the operator and cannot be changed",
        ),
        (json!({ "NOPE": "1" }), "variables.NOPE", "variables.NOPE: is not a variable of this game"),
    ] {
        let response = put(&app, &token, &id, change.clone()).await;
        assert_eq!(response.status(), 422, "{change}");
        let error: Value = response.json().await.expect("json");
        assert_eq!(
            (error["error"]["field"].as_str(), error["error"]["message"].as_str()),
            (Some(field), Some(message))
        );
    }
    assert_eq!(values(&app, &token, &id).await["values"]["GREETING"], "hi");

    // Someone else's server is not there for them.
    let stranger = app.signed_up("stranger@example.com").await;
    assert_eq!(app.get_as(&stranger, &format!("/api/servers/{id}/variables")).await.status(), 404);
    assert_eq!(put(&app, &stranger, &id, json!({ "GREETING": "mine" })).await.status(), 404);

    // Accepted on a running server: it restarts with the new values.
    let response = put(&app, &token, &id, json!({ "GREETING": "yo", "MAX_PLAYERS": "2" })).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.json::<Value>().await.expect("json")["values"]["GREETING"], "yo");
    assert!(app.log_shows(&token, &id, "greeting=yo players=max-players=2").await, "restarted with them");

    // On a stopped server they wait for its next start.
    assert_eq!(app.act(&token, &id, "stop").await.status(), 202);
    app.wait_for(&token, &id, "stopped", |s| s["status"] == "stopped").await;
    assert_eq!(put(&app, &token, &id, json!({ "GREETING": "later" })).await.status(), 200);
    let server: Value = app.get_as(&token, &format!("/api/servers/{id}")).await.json().await.expect("json");
    assert_eq!(server["status"], "stopped", "a change does not start a stopped server");

    // Reinstall: the install steps run again, the files stay.
    let installs = || std::fs::read_to_string(app.game_data(&id).join("installs.txt")).unwrap_or_default();
    assert_eq!(installs().lines().count(), 1, "installed once so far");
    assert_eq!(app.act(&token, &id, "reinstall").await.status(), 202);
    app.running(&token, &id).await;
    assert_eq!(installs().lines().count(), 2, "installed again, the earlier files kept");
    assert!(app.log_shows(&token, &id, "greeting=later").await);
}
