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
    the_event_stream_ends_with_its_session,
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

/// Guessing at one email from many addresses (a botnet, or anyone wanting the owner locked out) must not keep
/// the owner, signing in from an address that never failed, out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guesses_from_everywhere_do_not_lock_the_owner_out() {
    let app = crate::helpers::spawn_app_with(Backend::Sqlite, |settings| {
        settings.http.trusted_proxies = server::auth::proxy::TrustedProxies::parse("127.0.0.1").expect("valid");
        // The per-network and per-email limits are under test; the process-wide budget has a test of its own.
        settings.tuning.sign_ins_per_second = std::num::NonZeroU32::new(1000).expect("non-zero");
    })
    .await;
    app.register("owner@example.com", PASSWORD).await;
    let sign_in_as = |email: String, from: String, password: &str| {
        let body = json!({ "email": email, "password": password });
        let request = app.client.post(app.url("/auth/login")).header("cf-connecting-ip", from).json(&body);
        async move { request.send().await.expect("sent").status().as_u16() }
    };
    let sign_in = |from: String, password: &str| sign_in_as("owner@example.com".into(), from, password);
    for n in 0..25 {
        assert_eq!(sign_in(format!("198.51.100.{n}"), "a wrong guess").await, 401, "guess {n} is judged");
    }
    assert_eq!(sign_in("198.51.100.3".into(), "another wrong guess").await, 429, "a guesser is held off now");
    assert_eq!(sign_in("198.51.100.3".into(), PASSWORD).await, 429, "even when right, so holding off tells nothing");
    assert_eq!(sign_in("203.0.113.50".into(), PASSWORD).await, 200, "the owner, elsewhere, signs in");
    // An IPv6 subscriber's addresses are one /64: changing the last 64 bits buys no fresh budget.
    let guess = |n: u32, from: &str| sign_in_as(format!("user{n}@example.com"), from.to_owned(), "guess");
    for n in 0..10 {
        assert_eq!(guess(n, &format!("2001:db8:0:7::{n:x}")).await, 401, "attempt {n}");
    }
    assert_eq!(guess(10, "2001:db8:0:7:ffff::1").await, 429, "the same /64");
    assert_eq!(guess(11, "2001:db8:0:8::1").await, 401, "another /64");
}

async fn the_event_stream_ends_with_its_session(backend: Backend) {
    let app = spawn_app(backend).await;
    let token = app.signed_up("watcher@example.com").await;
    let mut events = app.events(&token, "").await;
    let logout = app.client.post(app.url("/auth/logout")).bearer_auth(&token).send().await.expect("sent");
    assert_eq!(logout.status(), 204);
    assert!(events.ends_within(std::time::Duration::from_secs(10)).await, "the stream ended with the session");
    assert_eq!(app.get_as(&token, "/api/servers/events").await.status(), 401, "and cannot be reopened");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_this_panels_host_names_are_served_with_protective_headers() {
    let app = crate::helpers::spawn_app_with(Backend::Sqlite, |settings| {
        settings.http.allowed_hosts = server::auth::hosts::AllowedHosts::new(None, "panel.example.net").expect("valid");
    })
    .await;
    let port = app.address.rsplit(':').next().expect("port").to_owned();
    let get = |host: String, path: &'static str| {
        let request = app.client.get(app.url(path)).header("host", host);
        async move { request.send().await.expect("sent") }
    };
    // DNS rebinding: a page on evil.example, its name pointed at 127.0.0.1, talks to the panel as "same origin".
    let rebound = get(format!("evil.example:{port}"), "/").await;
    assert_eq!(rebound.status(), 421);
    assert!(rebound.text().await.expect("text").contains("evil.example"), "says which host is not served");
    let login = app
        .client
        .post(app.url("/auth/register"))
        .header("host", format!("evil.example:{port}"))
        .header("origin", format!("http://evil.example:{port}"))
        .json(&json!({ "email": "rebound@example.com", "password": PASSWORD }))
        .send()
        .await
        .expect("sent");
    assert_eq!(login.status(), 421);
    assert_eq!(app.count("users").await, 0, "nothing was done");
    for host in [format!("127.0.0.1:{port}"), format!("localhost:{port}"), "panel.example.net".to_owned()] {
        assert_eq!(get(host.clone(), "/").await.status(), 200, "{host}");
    }
    assert_eq!(get("evil.example".into(), "/health").await.status(), 200, "probes name the pod's address");

    // Pages and API answers alike: no framing, no sniffing, scripts only from here, referrers cut to the origin.
    for path in ["/", "/api/games"] {
        let response = app.get(path).await;
        let header = |name: &str| response.headers()[name].to_str().expect("ascii").to_owned();
        let policy = header("content-security-policy");
        for directive in ["frame-ancestors 'none'", "object-src 'none'", "default-src 'self'"] {
            assert!(policy.contains(directive), "{path}: {policy}");
        }
        assert_eq!(header("x-frame-options"), "DENY", "{path}");
        assert_eq!(header("x-content-type-options"), "nosniff", "{path}");
        assert_eq!(header("referrer-policy"), "strict-origin-when-cross-origin", "{path}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_administrators_view_of_everyone_ends_with_a_demotion() {
    let app = spawn_app(Backend::Sqlite).await;
    let admin = app.admin("ops@example.com").await;
    let mut everyone = app.events(&admin, "?all=true").await;
    sqlx::query("UPDATE users SET role = 'customer' WHERE email = $1")
        .bind("ops@example.com")
        .execute(app.db.pool())
        .await
        .expect("demoted");
    assert!(everyone.ends_within(std::time::Duration::from_secs(10)).await, "the view of everyone's servers ended");
    assert_eq!(app.get_as(&admin, "/api/servers/events?all=true").await.status(), 403, "and is not given again");
}
