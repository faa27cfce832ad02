//! Registration, sign-in and sign-out through the REST routes, and what each refuses.

use serde_json::{Value, json};

use crate::both_databases;
use crate::helpers::{Backend, PASSWORD, one_page_test_at_a_time, spawn_app};

both_databases!(
    register_login_me_logout_with_a_bearer_token,
    the_browser_cookie_signs_in_and_out,
    invalid_registrations_name_the_field_and_create_nothing,
    sign_in_does_not_reveal_which_emails_exist,
    api_routes_need_a_signed_in_user_except_the_catalog,
    customers_cannot_reach_the_admin_area_or_raise_their_role,
    the_cli_creates_an_admin_from_a_password_on_stdin,
);

async fn register_login_me_logout_with_a_bearer_token(backend: Backend) {
    let app = spawn_app(backend).await;
    let response = app.register("  Alice@Example.COM ", PASSWORD).await;
    assert_eq!(response.status(), 201);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["user"]["email"], "alice@example.com", "emails are normalised");
    assert_eq!(body["user"]["role"], "customer");
    assert!(body["user"].get("password_hash").is_none(), "the hash never leaves the server");

    let response = app.post_json("/auth/login", &json!({ "email": "alice@example.com", "password": PASSWORD })).await;
    assert_eq!(response.status(), 200);
    let cookie = response.headers()["set-cookie"].to_str().expect("ascii").to_owned();
    let body: Value = response.json().await.expect("json");
    let token = body["token"].as_str().expect("token");
    assert_eq!(token.split('.').count(), 3, "a JWT");
    assert_eq!(body["user"]["email"], "alice@example.com");
    assert!(cookie.starts_with(&format!("spawnpoint_session={token};")), "{cookie}");
    for attribute in ["HttpOnly", "SameSite=Lax", "Path=/", "Max-Age=604800"] {
        assert!(cookie.contains(attribute), "{attribute} missing from {cookie}");
    }
    assert!(!cookie.contains("Secure"), "plain HTTP on loopback: a Secure cookie would never come back");

    let me: Value = app.get_as(token, "/api/me").await.json().await.expect("json");
    assert_eq!(me["email"], "alice@example.com");

    let response = app.client.post(app.url("/auth/logout")).bearer_auth(token).send().await.expect("sent");
    assert_eq!(response.status(), 204);
    let response = app.get_as(token, "/api/me").await;
    assert_eq!(response.status(), 401, "a signed-out token is refused");
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["error"]["code"], "unauthorized");
    assert_eq!(app.client.post(app.url("/auth/logout")).bearer_auth(token).send().await.expect("sent").status(), 401);
}

async fn the_browser_cookie_signs_in_and_out(backend: Backend) {
    let app = spawn_app(backend).await;
    app.register("bob@example.com", PASSWORD).await;
    let browser = app.browser();
    let login = browser.post(app.url("/auth/login")).json(&json!({ "email": "bob@example.com", "password": PASSWORD }));
    assert_eq!(login.send().await.expect("sent").status(), 200);
    let me = browser.get(app.url("/api/me")).send().await.expect("sent");
    assert_eq!(me.status(), 200, "the cookie authenticates");

    let logout = browser.post(app.url("/auth/logout")).send().await.expect("sent");
    assert_eq!(logout.status(), 204);
    assert!(logout.headers()["set-cookie"].to_str().expect("ascii").contains("Max-Age=0"), "the cookie is cleared");
    assert_eq!(browser.get(app.url("/api/me")).send().await.expect("sent").status(), 401);
}

async fn invalid_registrations_name_the_field_and_create_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    let cases = [
        (json!({ "email": "not-an-email", "password": PASSWORD }), 422, "email"),
        (json!({ "email": "", "password": PASSWORD }), 422, "email"),
        (json!({ "email": "carol@example.com", "password": "short" }), 422, "password"),
        (json!({ "email": "carol@example.com" }), 422, "password"),
        (json!({ "password": PASSWORD }), 422, "email"),
        (json!({ "email": "carol@example.com", "password": PASSWORD, "role": "admin" }), 422, "role"),
    ];
    for (body, status, field) in cases {
        let response = app.post_json("/auth/register", &body).await;
        assert_eq!(response.status(), status, "{body}");
        let error: Value = response.json().await.expect("json");
        assert_eq!(error["error"]["field"], field, "{body}: {error}");
        assert!(error["error"]["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    assert_eq!(app.count("users").await, 0, "nothing was created");

    assert_eq!(app.register("carol@example.com", PASSWORD).await.status(), 201);
    let response = app.register("CAROL@example.com ", "another long password").await;
    assert_eq!(response.status(), 409);
    let error: Value = response.json().await.expect("json");
    assert_eq!(error["error"]["field"], "email");
    assert_eq!(app.count("users").await, 1);
}

async fn sign_in_does_not_reveal_which_emails_exist(backend: Backend) {
    let app = spawn_app(backend).await;
    app.register("dave@example.com", PASSWORD).await;
    let wrong_password =
        app.post_json("/auth/login", &json!({ "email": "dave@example.com", "password": "wrong password!" })).await;
    let no_account =
        app.post_json("/auth/login", &json!({ "email": "nobody@example.com", "password": "wrong password!" })).await;
    assert_eq!(
        (wrong_password.status(), no_account.status()),
        (reqwest::StatusCode::UNAUTHORIZED, reqwest::StatusCode::UNAUTHORIZED)
    );
    let (a, b): (Value, Value) = (wrong_password.json().await.expect("json"), no_account.json().await.expect("json"));
    assert_eq!(a, b, "the same answer either way");
}

async fn api_routes_need_a_signed_in_user_except_the_catalog(backend: Backend) {
    let app = spawn_app(backend).await;
    for path in ["/api/me", "/api/admin/users", "/api/servers", "/api/anything"] {
        let response = app.get(path).await;
        assert_eq!(response.status(), 401, "{path}");
        let body: Value = response.json().await.expect("json");
        assert_eq!(body["error"]["code"], "unauthorized", "{path}");
    }
    assert_eq!(app.get("/api/games").await.status(), 200);
    assert_eq!(app.get("/api/games/valheim/plans").await.status(), 200);
    assert_eq!(app.post_json("/api/games", &json!({})).await.status(), 401, "only catalog reads are public");
    assert_eq!(app.get_as("not-a-token", "/api/me").await.status(), 401);
}

async fn customers_cannot_reach_the_admin_area_or_raise_their_role(backend: Backend) {
    let app = spawn_app(backend).await;
    let token = app.signed_up("eve@example.com").await;
    let response = app.get_as(&token, "/api/admin/users").await;
    assert_eq!(response.status(), 403);
    // The token's role claim is not trusted: even a forged "admin" claim would need the secret, and the
    // server reads the role from the database on every request.
    let me: Value = app.get_as(&token, "/api/me").await.json().await.expect("json");
    assert_eq!(me["role"], "customer");
    let _turn = one_page_test_at_a_time().await;
    let page = app.client.get(app.url("/admin")).bearer_auth(&token).send().await.expect("sent");
    assert_eq!(page.status(), 403);
    assert!(page.text().await.expect("body").contains("Administrators only"));
}

async fn the_cli_creates_an_admin_from_a_password_on_stdin(backend: Backend) {
    use std::io::Write as _;
    use std::process::{Command, Stdio};

    let app = spawn_app(backend).await;
    let mut child = Command::new(env!("CARGO_BIN_EXE_spawnpoint"))
        .args(["admin", "create", "--email", "Root@Example.com"])
        .env_clear()
        .env("SPAWNPOINT_DATA_DIR", app.data_dir())
        .env("DATABASE_URL", &app.database.url)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("runs");
    child.stdin.take().expect("stdin").write_all(format!("{PASSWORD}\n").as_bytes()).expect("password written");
    let output = child.wait_with_output().expect("finishes");
    let (stdout, stderr) = (String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "{stderr}");
    assert!(stdout.contains("created administrator root@example.com"), "{stdout}");
    assert!(!stdout.contains(PASSWORD) && !stderr.contains(PASSWORD), "the password is never printed");

    let app_token = app.login_token("root@example.com").await;
    let me: Value = app.get_as(&app_token, "/api/me").await.json().await.expect("json");
    assert_eq!(me["role"], "admin");
    let users: Vec<Value> = app.get_as(&app_token, "/api/admin/users").await.json().await.expect("json");
    assert_eq!(users.len(), 1);

    let again = Command::new(env!("CARGO_BIN_EXE_spawnpoint"))
        .args(["admin", "create", "--email", "root@example.com"])
        .env_clear()
        .env("SPAWNPOINT_DATA_DIR", app.data_dir())
        .env("DATABASE_URL", &app.database.url)
        .stdin(Stdio::null())
        .output()
        .expect("runs");
    assert!(!again.status.success(), "an empty password from stdin is refused");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_https_the_cookie_is_secure() {
    let app = crate::helpers::spawn_app_with(Backend::Sqlite, |settings| {
        settings.http.public_url = Some("https://panel.example.com".into());
    })
    .await;
    app.register("frank@example.com", PASSWORD).await;
    let response = app.post_json("/auth/login", &json!({ "email": "frank@example.com", "password": PASSWORD })).await;
    let cookie = response.headers()["set-cookie"].to_str().expect("ascii").to_owned();
    assert!(cookie.ends_with("; Secure"), "{cookie}");
}
