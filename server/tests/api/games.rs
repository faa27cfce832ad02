use serde_json::Value;

use crate::both_databases;
use crate::helpers::{Backend, spawn_app};

both_databases!(lists_every_game_with_its_plans, lists_the_plans_of_one_game, unknown_game_is_a_json_404);

async fn lists_every_game_with_its_plans(backend: Backend) {
    let app = spawn_app(backend).await;
    let response = app.get("/api/games").await;
    assert_eq!(response.status(), 200);
    let games: Vec<Value> = response.json().await.expect("json");
    let ids: Vec<&str> = games.iter().filter_map(|g| g["id"].as_str()).collect();
    assert_eq!(ids, ["minecraft-java", "minecraft-bedrock", "valheim", "rust", "ark", "demo"]);

    let java = &games[0];
    assert_eq!(java["name"], "Minecraft: Java Edition");
    assert_eq!(java["port"]["port"], 25565);
    assert_eq!(java["port"]["protocol"], "TCP");
    let standard = &java["plans"][1];
    assert_eq!(standard["id"], "standard");
    assert_eq!(standard["price_cents"], 600);
    assert_eq!(standard["cpu"], "3");
    assert_eq!(standard["memory"], "4Gi");
    assert_eq!(standard["storage"], "25Gi");
    assert_eq!(standard["players"]["max"], 15);
}

async fn lists_the_plans_of_one_game(backend: Backend) {
    let app = spawn_app(backend).await;
    let response = app.get("/api/games/ark/plans").await;
    assert_eq!(response.status(), 200);
    let plans: Vec<Value> = response.json().await.expect("json");
    let summary: Vec<(String, i64)> = plans
        .iter()
        .map(|p| (p["id"].as_str().unwrap_or_default().to_owned(), p["price_cents"].as_i64().unwrap_or_default()))
        .collect();
    assert_eq!(summary, [("starter".to_owned(), 1200), ("standard".to_owned(), 2000)]);

    let game: Value = app.get("/api/games/valheim").await.json().await.expect("json");
    assert_eq!(game["extra_ports"][0]["name"], "query");
    assert_eq!(game["extra_ports"][0]["port"], 2457);
}

async fn unknown_game_is_a_json_404(backend: Backend) {
    let app = spawn_app(backend).await;
    for path in ["/api/games/tetris/plans", "/api/games/tetris"] {
        let response = app.get(path).await;
        assert_eq!(response.status(), 404, "{path}");
        assert_eq!(response.headers()["content-type"], "application/json");
        let body: Value = response.json().await.expect("json");
        assert_eq!(body["error"]["code"], "not_found");
        assert!(body["error"]["message"].as_str().is_some_and(|m| m.contains("tetris")), "{body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_catalog_file_replaces_the_built_in_one() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("games.yaml");
    std::fs::write(
        &path,
        "games:\n  - id: chess\n    name: Chess\n    image: example/chess:1\n    port: { port: 5000, protocol: TCP }\n    plans:\n      - { id: club, name: Club, players: { min: 2, max: 2 }, cpu: 100m, memory: 64Mi, storage: 1Gi, price_cents: 99 }\n",
    )
    .expect("write catalog");
    let app = crate::helpers::spawn_app_with(Backend::Sqlite, |s| s.catalog_path = Some(path.clone())).await;
    let games: Vec<Value> = app.get("/api/games").await.json().await.expect("json");
    assert_eq!(games.len(), 1);
    assert_eq!(games[0]["id"], "chess");
}
