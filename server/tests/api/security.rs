//! Attacks a panel must shrug off: forged, expired and revoked tokens, cross-site requests, password guessing.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use crate::both_databases;
use crate::helpers::{Backend, PASSWORD, TestApp, spawn_app};

both_databases!(
    forged_expired_and_orphaned_tokens_are_refused,
    cookie_requests_from_another_origin_are_refused,
    the_eleventh_sign_in_attempt_in_a_minute_is_rate_limited,
);

fn claims_of(token: &str) -> Value {
    let payload = token.split('.').nth(1).expect("payload");
    serde_json::from_slice(&B64.decode(payload).expect("base64")).expect("json")
}

fn secret_of(app: &TestApp) -> Vec<u8> {
    std::fs::read_to_string(app.data_dir().join("jwt-secret")).expect("generated secret").trim().as_bytes().to_vec()
}

/// A token with `header` and `claims`, its signature made of `signature` bytes.
fn assemble(header: &Value, claims: &Value, signature: &[u8]) -> String {
    format!("{}.{}.{}", B64.encode(header.to_string()), B64.encode(claims.to_string()), B64.encode(signature))
}

async fn status_with(app: &TestApp, token: &str) -> u16 {
    app.get_as(token, "/api/me").await.status().as_u16()
}

async fn forged_expired_and_orphaned_tokens_are_refused(backend: Backend) {
    let app = spawn_app(backend).await;
    let token = app.signed_up("mallory@example.com").await;
    assert_eq!(status_with(&app, &token).await, 200, "the genuine token works");
    let claims = claims_of(&token);
    let secret = secret_of(&app);

    // Tampered: the payload claims to be someone else, the signature is the original.
    let mut parts: Vec<&str> = token.split('.').collect();
    let mut forged_claims = claims.clone();
    forged_claims["sub"] = "someone-else".into();
    let forged_payload = B64.encode(forged_claims.to_string());
    parts[1] = &forged_payload;
    assert_eq!(status_with(&app, &parts.join(".")).await, 401, "tampered payload");
    let flipped = format!("{}x", &token[..token.len() - 1]);
    assert_eq!(status_with(&app, &flipped).await, 401, "tampered signature");

    // Wrong algorithms: `none`, RS256 (key confusion), and HS512 even with the right secret.
    let none = assemble(&json!({ "alg": "none", "typ": "JWT" }), &claims, b"");
    assert_eq!(status_with(&app, &none).await, 401, "alg none");
    let none_unsigned =
        format!("{}.{}.", B64.encode(json!({ "alg": "none" }).to_string()), B64.encode(claims.to_string()));
    assert_eq!(status_with(&app, &none_unsigned).await, 401, "alg none, empty signature");
    let rs256 = assemble(&json!({ "alg": "RS256", "typ": "JWT" }), &claims, &secret);
    assert_eq!(status_with(&app, &rs256).await, 401, "alg RS256");
    let hs512 = jsonwebtoken::encode(&Header::new(Algorithm::HS512), &claims, &EncodingKey::from_secret(&secret))
        .expect("signs");
    assert_eq!(status_with(&app, &hs512).await, 401, "alg HS512");

    // Expired: correctly signed for a live session, but past its expiry.
    let mut expired = claims.clone();
    expired["exp"] = json!(claims["iat"].as_i64().expect("iat") - 3600);
    let expired = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &expired, &EncodingKey::from_secret(&secret))
        .expect("signs");
    assert_eq!(status_with(&app, &expired).await, 401, "expired");

    // Correctly signed for a session that never existed.
    let mut invented = claims.clone();
    invented["sid"] = "invented-session".into();
    let invented = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &invented, &EncodingKey::from_secret(&secret))
        .expect("signs");
    assert_eq!(status_with(&app, &invented).await, 401, "unknown session");

    // The user is gone: their token dies with them.
    sqlx::query("DELETE FROM users WHERE email = $1")
        .bind("mallory@example.com")
        .execute(app.db.pool())
        .await
        .expect("delete");
    assert_eq!(status_with(&app, &token).await, 401, "deleted user");
}

async fn cookie_requests_from_another_origin_are_refused(backend: Backend) {
    let app = spawn_app(backend).await;
    app.register("victim@example.com", PASSWORD).await;
    let browser = app.browser();
    let login =
        browser.post(app.url("/auth/login")).json(&json!({ "email": "victim@example.com", "password": PASSWORD }));
    let token = login.send().await.expect("sent").json::<Value>().await.expect("json")["token"]
        .as_str()
        .expect("token")
        .to_owned();

    // A page on another site makes the victim's browser post, cookie attached.
    let forged =
        browser.post(app.url("/auth/logout")).header("origin", "https://evil.example").send().await.expect("sent");
    assert_eq!(forged.status(), 403);
    let body: Value = forged.json().await.expect("json");
    assert!(body["error"]["message"].as_str().is_some_and(|m| m.contains("cross-site")), "{body}");
    assert_eq!(browser.get(app.url("/api/me")).send().await.expect("sent").status(), 200, "still signed in");

    let by_referer = browser.post(app.url("/auth/logout")).header("origin", "null").send().await.expect("sent");
    assert_eq!(by_referer.status(), 403, "an opaque origin is not ours");

    let server_fn =
        browser.post(app.url("/rpc/sign_out")).header("origin", "https://evil.example").send().await.expect("sent");
    assert_eq!(server_fn.status(), 403, "server functions are covered too");

    // Without Origin or Referer a cookie request cannot be placed: refused.
    let plain = crate::helpers::http()
        .build()
        .expect("client")
        .post(app.url("/auth/logout"))
        .header("cookie", format!("spawnpoint_session={token}"))
        .send()
        .await
        .expect("sent");
    assert_eq!(plain.status(), 403);

    // A bearer token is never sent by a browser on its own, so its Origin does not matter.
    let bearer = app.client.get(app.url("/api/me")).bearer_auth(&token).header("origin", "https://evil.example");
    assert_eq!(bearer.send().await.expect("sent").status(), 200);

    // The app's own pages: accepted.
    let own = browser.post(app.url("/auth/logout")).send().await.expect("sent");
    assert_eq!(own.status(), 204);
    assert_eq!(app.get_as(&token, "/api/me").await.status(), 401, "and the session is gone");
}

async fn the_eleventh_sign_in_attempt_in_a_minute_is_rate_limited(backend: Backend) {
    let app = spawn_app(backend).await;
    app.register("target@example.com", PASSWORD).await;
    let guess = json!({ "email": "target@example.com", "password": "guess guess guess" });
    let attempt = || app.post_json("/auth/login", &guess);
    for n in 1..=10 {
        assert_eq!(attempt().await.status(), 401, "attempt {n} is judged on the password");
    }
    let refused = attempt().await;
    assert_eq!(refused.status(), 429);
    let retry_after: u64 = refused.headers()["retry-after"].to_str().expect("ascii").parse().expect("seconds");
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    let body: Value = refused.json().await.expect("json");
    assert_eq!(body["error"]["code"], "rate_limited");
    // Even the right password waits: otherwise the limit would tell a guesser when they were right.
    let right = app.post_json("/auth/login", &json!({ "email": "target@example.com", "password": PASSWORD })).await;
    assert_eq!(right.status(), 429);
}

/// Behind a proxy every connection comes from the proxy: the client's address is taken from its header, but
/// only when the proxy is trusted (anyone can send the header).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_follow_the_client_behind_a_trusted_proxy_only() {
    let sign_up = |app: &TestApp, n: u32, client: &'static str| {
        let body = json!({ "email": format!("user{n}@example.com"), "password": PASSWORD });
        let request = app.client.post(app.url("/auth/register")).header("cf-connecting-ip", client).json(&body);
        async move { request.send().await.expect("sent").status() }
    };
    let behind = crate::helpers::spawn_app_with(Backend::Sqlite, |settings| {
        settings.http.trusted_proxies = server::auth::proxy::TrustedProxies::parse("127.0.0.1").expect("valid");
    })
    .await;
    for n in 1..=10 {
        assert_eq!(sign_up(&behind, n, "203.0.113.1").await, 201, "sign-up {n}");
    }
    assert_eq!(sign_up(&behind, 11, "203.0.113.1").await, 429, "that client has used its attempts");
    assert_eq!(sign_up(&behind, 12, "203.0.113.2").await, 201, "another client behind the same proxy has not");

    let direct = spawn_app(Backend::Sqlite).await;
    for n in 1..=10 {
        assert_eq!(sign_up(&direct, n, "203.0.113.1").await, 201, "sign-up {n}");
    }
    assert_eq!(sign_up(&direct, 11, "203.0.113.2").await, 429, "an untrusted peer's header changes nothing");
}
