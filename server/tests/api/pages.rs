//! The app's pages as a browser without JavaScript gets them: complete HTML from the server.

use crate::both_databases;
use crate::helpers::{Backend, PASSWORD, one_page_test_at_a_time, spawn_app};

both_databases!(the_catalog_page_lists_every_game_without_javascript, a_game_page_shows_plans_and_prices);

async fn the_catalog_page_lists_every_game_without_javascript(backend: Backend) {
    let _turn = one_page_test_at_a_time().await;
    let app = spawn_app(backend).await;
    let response = app.get("/").await;
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"].to_str().is_ok_and(|t| t.starts_with("text/html")));
    let html = response.text().await.expect("body");
    for name in ["Minecraft: Java Edition", "Minecraft: Bedrock Edition", "Valheim", "Rust", "ARK: Survival Evolved"] {
        assert!(html.contains(name), "{name} missing from the page");
    }
    assert!(html.contains(r#"href="/games/valheim""#), "games are plain links");
    assert!(html.contains("from $5.00/mo"), "cheapest Valheim plan is shown");
    // The page loads the WASM app to hydrate itself.
    assert!(html.contains("/pkg/spawnpoint.js"), "hydration script is referenced");
    assert!(html.contains("/pkg/spawnpoint.css"), "stylesheet is referenced");
}

async fn a_game_page_shows_plans_and_prices(backend: Backend) {
    let _turn = one_page_test_at_a_time().await;
    let app = spawn_app(backend).await;
    let html = app.get("/games/minecraft-java").await.text().await.expect("body");
    for text in [
        "Minecraft: Java Edition plans",
        "Starter",
        "Standard",
        "Performance",
        "$3.00/mo",
        "$6.00/mo",
        "$12.00/mo",
        "4 GiB",
        "25 GiB",
        "3 vCPU",
        "5–15",
    ] {
        assert!(html.contains(text), "{text} missing from the page");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_pages_and_games_say_so() {
    let _turn = one_page_test_at_a_time().await;
    let app = spawn_app(Backend::Sqlite).await;
    let response = app.get("/no/such/page").await;
    assert_eq!(response.status(), 404);
    assert!(response.text().await.expect("body").contains("Page not found"));

    let html = app.get("/games/tetris").await.text().await.expect("body");
    assert!(html.contains("There is no game called"), "{html}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_function_serves_the_catalog_to_the_browser() {
    let _turn = one_page_test_at_a_time().await;
    let app = spawn_app(Backend::Sqlite).await;
    let response = app.client.post(app.url("/rpc/games")).send().await.expect("sent");
    assert_eq!(response.status(), 200);
    let games: Vec<catalog::PublicGame> = response.json().await.expect("the public catalog");
    // As the public sees it, each game also saying whether this host runs it.
    let shown: Vec<_> = games.iter().map(|game| catalog::PublicGame { unavailable: None, ..game.clone() }).collect();
    assert_eq!(shown, catalog::Catalog::builtin().public());
    let says = |id: &str| games.iter().find(|g| g.id == id).and_then(|g| g.unavailable.clone());
    assert_eq!(says("demo"), None);
    assert!(
        says("minecraft-bedrock").is_some_and(|why| why.contains("BEDROCK_ZIP_URL")),
        "{:?}",
        says("minecraft-bedrock")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_functions_answer_with_the_status_of_their_error() {
    let _turn = one_page_test_at_a_time().await;
    let app = spawn_app(Backend::Sqlite).await;
    let refused = app
        .browser()
        .post(app.url("/rpc/sign_in"))
        .form(&[("email", "nobody@example.com"), ("password", "wrong password!"), ("next", "/account")])
        .header("accept", "application/json")
        .send()
        .await
        .expect("sent");
    assert_eq!(refused.status(), 401, "a wrong password is a 401, not a server failure");
    let admin_only = app.browser().post(app.url("/rpc/list_users")).send().await.expect("sent");
    assert_eq!(admin_only.status(), 401, "signed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_out_visitor_is_sent_to_sign_in_and_back() {
    let _turn = one_page_test_at_a_time().await;
    let app = spawn_app(Backend::Sqlite).await;
    let no_redirects = crate::helpers::http().redirect(reqwest::redirect::Policy::none()).build().expect("client");
    for (page, next) in [
        ("/account", "%2Faccount"),
        ("/admin", "%2Fadmin"),
        ("/servers", "%2Fservers"),
        ("/servers/x", "%2Fservers%2Fx"),
    ] {
        // As a browser navigates: leptos answers 302 to requests that accept HTML.
        let response = no_redirects.get(app.url(page)).header("accept", "text/html").send().await.expect("sent");
        assert_eq!(response.status(), 302, "{page}");
        assert_eq!(response.headers()["location"], format!("/signin?next={next}").as_str(), "{page}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_renders_my_servers_and_only_mine() {
    let _turn = one_page_test_at_a_time().await;
    let app = spawn_app(Backend::Sqlite).await;
    let alice = app.browser();
    let form = [("email", "alice@example.com"), ("password", PASSWORD), ("next", "/servers")];
    assert!(alice.post(app.url("/rpc/sign_up")).form(&form).send().await.expect("sent").status().is_success());
    let html = alice.get(app.url("/servers")).send().await.expect("sent").text().await.expect("body");
    assert!(html.contains("My servers") && html.contains("No servers yet."), "{html}");
    assert!(html.contains(r#"<option value="demo""#), "the demo game is offered: {html}");
    assert!(!html.contains(r#"<option value="valheim""#), "a cluster-only game is not: {html}");

    let created = alice
        .post(app.url("/rpc/create_server"))
        .form(&[("name", "Alice's world"), ("game", "demo"), ("plan", "tiny")])
        .header("accept", "application/json")
        .send()
        .await
        .expect("sent");
    assert!(created.status().is_success(), "{}", created.status());
    let server: serde_json::Value = created.json().await.expect("json");
    let id = server["id"].as_str().expect("id");
    let list = alice.get(app.url("/servers")).send().await.expect("sent").text().await.expect("body");
    assert!(list.contains("Alice&#x27;s world") || list.contains("Alice's world"), "{list}");
    let page = alice.get(app.url(&format!("/servers/{id}"))).send().await.expect("sent").text().await.expect("body");
    assert!(page.contains(id) && page.contains("aria-label=\"Console output\""), "{page}");

    let bob = app.browser();
    let form = [("email", "bob@example.com"), ("password", PASSWORD), ("next", "/servers")];
    assert!(bob.post(app.url("/rpc/sign_up")).form(&form).send().await.expect("sent").status().is_success());
    let theirs = bob.get(app.url(&format!("/servers/{id}"))).send().await.expect("sent").text().await.expect("body");
    assert!(theirs.contains("No such server") && !theirs.contains("Alice"), "{theirs}");
    let acted = bob
        .post(app.url("/rpc/power"))
        .form(&[("id", id), ("action", "stop")])
        .header("accept", "application/json")
        .send()
        .await
        .expect("sent");
    assert_eq!(acted.status(), 404, "bob cannot touch alice's server");
}
