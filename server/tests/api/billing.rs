//! Billing with Stripe, against the fake Stripe on loopback (which answers with the reference's objects) and
//! webhooks signed as Stripe signs them: checkout on create, what each event does to a server, cancelling on
//! delete, price sync, and a paid server's whole life with an injected clock.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use catalog::Catalog;
use catalog::billing::{lookup_key, product_id};
use secrecy::SecretString;
use serde_json::{Value, json};
use server::billing::stripe::StripeConfig;
use server::billing::stripe_api::{StripeApi, Synced};
use server::billing::webhook::{self, SignatureError};
use server::clock::Clock;
use server::config::BillingMode;
use server::db::now;
use test_support::stripe::{FakeStripe, SECRET_KEY};
use test_support::{reference_dir, reference_json};
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};

use crate::helpers::{Backend, TestApp, TestDriver, alive, eventually, one_page_test_at_a_time, spawn_app_on};
use crate::{both_databases, every_driver};

both_databases!(
    a_bad_signature_is_refused_and_changes_nothing,
    checkout_sends_the_plans_price_and_metadata_and_reuses_the_customer,
    reference_events_drive_the_right_transitions_once_and_in_order,
    deleting_cancels_the_subscription_first_and_retries_while_stripe_is_down,
    an_abandoned_checkout_is_deleted_after_a_day,
    an_event_whose_handler_dies_before_applying_it_is_applied_when_redelivered,
    a_subscription_for_another_plan_does_not_pay_for_the_server,
);

every_driver!(a_paid_server_expires_comes_back_with_its_data_and_is_deleted_after_the_grace_period);

const WEBHOOK_SECRET: &str = "whsec_spawnpoint_test";
/// How long an expired server's data is kept for a late payment.
const GRACE_PERIOD: Duration = Duration::from_secs(catalog::billing::GRACE_PERIOD_SECS as u64);

/// An app with Stripe billing against a fake Stripe whose prices were synced, as an operator would.
struct Billed {
    app: TestApp,
    stripe: FakeStripe,
    clock: Clock,
    /// Set: the webhook handler dies between recording an event and applying it.
    crash_after_claim: Arc<AtomicBool>,
}

async fn billed(backend: Backend, driver: TestDriver) -> Option<Billed> {
    let stripe = FakeStripe::start().await?;
    api(&stripe).sync(&Catalog::builtin(), |_, _| {}).await.expect("prices synced");
    let clock = Clock::default();
    let crash_after_claim = Arc::new(AtomicBool::new(false));
    let app = spawn_app_on(backend, driver, |settings| {
        settings.tuning.crash_after_claim = crash_after_claim.clone();
        settings.billing = BillingMode::Stripe(StripeConfig {
            secret_key: SecretString::from(SECRET_KEY),
            webhook_secret: SecretString::from(WEBHOOK_SECRET),
            api_base: stripe.url().to_owned(),
        });
        settings.http.public_url = Some("https://panel.example.com".into());
        settings.tuning.clock = clock.clone();
        settings.reconciler.resync_interval = Duration::from_secs(1);
        settings.tuning.restart_backoff = Duration::from_millis(100);
    })
    .await;
    Some(Billed { app, stripe, clock, crash_after_claim })
}

fn api(stripe: &FakeStripe) -> StripeApi {
    server::install_crypto_provider();
    StripeApi::new(&SecretString::from(SECRET_KEY), stripe.url()).expect("client")
}

/// An event envelope around `object`, as Stripe delivers it.
fn event(kind: &str, object: &Value, created: i64) -> Value {
    json!({
        "id": format!("evt_{}", uuid::Uuid::new_v4().simple()),
        "object": "event",
        "api_version": "2026-09-30.endive",
        "created": created,
        "data": { "object": object },
        "livemode": false,
        "pending_webhooks": 1,
        "request": { "id": null, "idempotency_key": null },
        "type": kind,
    })
}

/// Posts `body` to the webhook with `signature` (none: no header); returns the status.
async fn post_webhook(app: &TestApp, body: &str, signature: Option<&str>) -> u16 {
    let mut request = app.client.post(app.url("/webhooks/stripe")).body(body.to_owned());
    if let Some(signature) = signature {
        request = request.header("Stripe-Signature", signature);
    }
    request.send().await.expect("sent").status().as_u16()
}

/// Delivers `event` signed as Stripe would, now; returns the status.
async fn deliver(app: &TestApp, event: &Value) -> u16 {
    let body = event.to_string();
    let signature = webhook::sign(body.as_bytes(), WEBHOOK_SECRET.as_bytes(), now());
    post_webhook(app, &body, Some(&signature)).await
}

async fn server(app: &TestApp, token: &str, id: &str) -> Value {
    app.get_as(token, &format!("/api/servers/{id}")).await.json().await.expect("json")
}

async fn billing(app: &TestApp, token: &str) -> Value {
    let response = app.get_as(token, "/api/billing").await;
    assert_eq!(response.status(), 200);
    response.json().await.expect("json")
}

async fn create(app: &TestApp, token: &str, plan: &str) -> Value {
    let response = app.create_server(token, json!({ "name": "Paid", "game": "demo", "plan": plan })).await;
    assert_eq!(response.status(), 201);
    response.json().await.expect("json")
}

fn session_of(server: &Value) -> String {
    let url = server["checkout_url"].as_str().expect("an unpaid server has a checkout URL");
    url.rsplit('/').next().expect("session id").to_owned()
}

/// Pays the server's checkout as its customer would, and delivers what Stripe then sends; returns the
/// subscription.
async fn pay(b: &Billed, server: &Value) -> Value {
    let period_end = b.clock.now() + 30 * 86_400;
    let (session, subscription) = b.stripe.complete_checkout(&session_of(server), period_end);
    assert_eq!(deliver(&b.app, &event("checkout.session.completed", &session, now())).await, 200);
    assert_eq!(deliver(&b.app, &event("customer.subscription.created", &subscription, now())).await, 200);
    subscription
}

fn in_state(status: &'static [&'static str]) -> impl Fn(&Value) -> bool {
    move |server| status.iter().any(|s| server["status"] == *s)
}

#[test]
fn every_reference_signature_vector_is_judged_as_stripes_sdks_do() {
    let Some(reference) = reference_dir() else { return };
    let vectors = reference_json(&reference, "stripe/webhook-signature-vectors.json");
    let tolerance = vectors["scheme"]["default_tolerance_seconds"].as_i64().expect("tolerance");
    assert_eq!(tolerance, webhook::TOLERANCE);

    for vector in vectors["vectors"].as_array().expect("vectors") {
        let secret = vector["secret"].as_str().expect("secret").as_bytes();
        let header = vector["header"].as_str().expect("header");
        // The exact signed bytes, trailing newline included.
        let file = vector["payload_file"].as_str().expect("file");
        let payload = std::fs::read(reference.join("stripe").join(file)).expect("payload file");
        assert_eq!(payload, vector["payload"].as_str().expect("payload").as_bytes());
        let timestamp = vector["timestamp"].as_i64().expect("timestamp");
        let expected = vector["expected_v1"].as_str().expect("v1");
        let signed = [format!("{timestamp}.").into_bytes(), payload.clone()].concat();
        assert_eq!(webhook::hmac_hex(secret, &signed), expected);
        for case in vector["cases"].as_array().expect("cases") {
            let now = case["now"].as_i64().unwrap_or(timestamp);
            let mut body = payload.clone();
            if case["payload_mutation"].is_string() {
                body.extend_from_slice(b"this_changes_the_json");
            }
            let verdict = webhook::verify(header, &body, secret, now, case["tolerance"].as_i64().unwrap_or(tolerance));
            assert_eq!(verdict.is_ok(), case["expect"] == "accept", "{case}: {verdict:?}");
        }
    }

    let raw = &vectors["raw_hmac_vectors"];
    let secret = raw["secret"].as_str().expect("secret").as_bytes();
    for case in raw["cases"].as_array().expect("cases") {
        let payload = case["payload"].as_str().expect("payload").as_bytes();
        assert_eq!(webhook::hmac_hex(secret, payload), case["expected"], "{}", case["name"]);
    }

    // The SDKs' header cases, with their placeholders filled in. Secret `a` is the endpoint's; while a secret
    // is rolled, the header also carries a signature under the old one.
    let (now, body, a) = (1_700_000_000, br#"{"id":"evt_1"}"#.as_slice(), b"secret-a".as_slice());
    let hmac = |secret: &[u8], t: i64| webhook::hmac_hex(secret, &[format!("{t}.").as_bytes(), body].concat());
    let valid = webhook::sign(body, a, now);
    for case in vectors["header_parsing_cases_from_sdk_tests"].as_array().expect("cases") {
        let template = case["header"].as_str().expect("header");
        let expect = case["expect"].as_str().expect("expect");
        let header = template
            .replace("<valid header>", &valid)
            .replace("<now-15s>", &(now - 15).to_string())
            .replace("<now>", &now.to_string())
            .replace("<correct hmac>", &hmac(a, now))
            .replace("<sig secret A>", &hmac(b"the-old-secret", now))
            .replace("<sig secret B>", &hmac(a, now))
            .replace("<ok>", &hmac(a, if template.starts_with("t=12345") { 12_345 } else { now - 15 }));
        let check = |tolerance| webhook::verify(&header, body, a, now, tolerance);
        match template {
            "t=<now-15s>,v1=<ok>" => {
                assert_eq!(check(10), Err(SignatureError::TooOld), "{template}");
                assert_eq!(check(20), Ok(()), "{template}");
            }
            "t=12345,v1=<ok>" => {
                assert_eq!(check(0), Ok(()), "{template}: tolerance ignored");
                assert_eq!(check(webhook::TOLERANCE), Err(SignatureError::TooOld), "{template}");
            }
            _ => assert_eq!(check(webhook::TOLERANCE).is_ok(), expect.starts_with("accept"), "{template}: {expect}"),
        }
    }
}

async fn a_bad_signature_is_refused_and_changes_nothing(backend: Backend) {
    let Some(b) = billed(backend, TestDriver::Local).await else { return };
    let token = b.app.signed_up("payer@example.com").await;
    let created = create(&b.app, &token, "tiny").await;
    let id = created["id"].as_str().expect("id");
    let (session, _) = b.stripe.complete_checkout(&session_of(&created), now() + 86_400);
    let body = event("checkout.session.completed", &session, now()).to_string();
    let right = webhook::sign(body.as_bytes(), WEBHOOK_SECRET.as_bytes(), now());

    let wrong_secret = webhook::sign(body.as_bytes(), b"whsec_someone_else", now());
    let too_old = webhook::sign(body.as_bytes(), WEBHOOK_SECRET.as_bytes(), now() - 301);
    let v0_only = right.replace("v1=", "v0=");
    for (what, body, signature) in [
        ("no signature", body.clone(), None),
        ("another secret", body.clone(), Some(wrong_secret)),
        ("older than 300 s", body.clone(), Some(too_old)),
        ("v0 only", body.clone(), Some(v0_only)),
        ("a changed body", body.replace("complete", "Complete"), Some(right.clone())),
        ("garbage", body.clone(), Some("bad_header".into())),
    ] {
        assert_eq!(post_webhook(&b.app, &body, signature.as_deref()).await, 400, "{what}");
    }
    assert_eq!(server(&b.app, &token, id).await["status"], "awaiting_payment", "nothing changed");
    assert_eq!(b.app.count("stripe_events").await, 0, "no event was recorded");

    // The same delivery, signed right, is taken.
    assert_eq!(post_webhook(&b.app, &body, Some(&right)).await, 200);
    b.app.wait_for(&token, id, "paid", in_state(&["pending", "running"])).await;
}

async fn checkout_sends_the_plans_price_and_metadata_and_reuses_the_customer(backend: Backend) {
    let Some(b) = billed(backend, TestDriver::Local).await else { return };
    let token = b.app.signed_up("payer@example.com").await;
    let user: Value = b.app.get_as(&token, "/api/me").await.json().await.expect("json");
    let user_id = user["id"].as_str().expect("user id");

    let first = create(&b.app, &token, "tiny").await;
    let second = create(&b.app, &token, "tiny").await;
    for server in [&first, &second] {
        assert_eq!(server["status"], "awaiting_payment");
        assert!(server["checkout_url"].as_str().is_some_and(|url| url.starts_with(b.stripe.url())), "{server}");
    }
    let requests = b.stripe.requests();
    let customers: Vec<_> = requests.iter().filter(|r| r.is("POST", "/v1/customers")).collect();
    assert_eq!(customers.len(), 1, "one Stripe customer per user, reused");
    assert_eq!(customers[0].param("email"), Some("payer@example.com"));
    assert_eq!(customers[0].param("metadata[user_id]"), Some(user_id));
    let customer = b.stripe.customers()[0]["id"].as_str().expect("customer id").to_owned();
    let price =
        b.stripe.prices().into_iter().find(|p| p["lookup_key"] == "spawnpoint:demo:tiny").expect("synced price");
    let sessions: Vec<_> = requests.iter().filter(|r| r.is("POST", "/v1/checkout/sessions")).collect();
    assert_eq!(sessions.len(), 2);
    for (request, server) in sessions.iter().zip([&first, &second]) {
        let id = server["id"].as_str().expect("id");
        assert_eq!(request.param("mode"), Some("subscription"));
        assert_eq!(request.param("customer"), Some(customer.as_str()));
        assert_eq!(request.param("line_items[0][price]"), price["id"].as_str());
        assert_eq!(request.param("line_items[0][quantity]"), Some("1"));
        assert_eq!(request.param("client_reference_id"), Some(id));
        assert_eq!(request.param("metadata[server_id]"), Some(id));
        assert_eq!(request.param("metadata[user_id]"), Some(user_id));
        assert_eq!(request.param("subscription_data[metadata][server_id]"), Some(id));
        assert_eq!(request.param("subscription_data[metadata][user_id]"), Some(user_id));
        let back = format!("https://panel.example.com/servers/{id}");
        assert_eq!(request.param("cancel_url"), Some(back.as_str()));
        assert!(request.param("success_url").is_some_and(|url| url.starts_with(&back)));
        assert!(request.idempotency_key.is_some(), "a repeated request cannot open a second checkout");
    }

    // Nothing is provisioned before payment, and an unpaid server cannot be started.
    let id = first["id"].as_str().expect("id");
    b.app.reconciled_server(id).await;
    assert!(b.app.game_pid(id).is_none() && !b.app.game_data(id).exists(), "nothing runs or is stored");
    assert_eq!(b.app.act(&token, id, "start").await.status(), 409);

    // Stripe down: no server, and the user is told to try again. An open dashboard, which saw the row written,
    // hears that it is gone.
    let mut dashboard = b.app.events(&token, "").await;
    b.stripe.set_down(true);
    let response = b.app.create_server(&token, json!({ "name": "Later", "game": "demo", "plan": "tiny" })).await;
    assert_eq!(response.status(), 503);
    let body: Value = response.json().await.expect("json");
    assert!(body["error"]["message"].as_str().is_some_and(|m| m.contains("payment provider")), "{body}");
    b.stripe.set_down(false);
    assert_eq!(b.app.count("servers").await, 2, "the failed create left no row");
    let known = [id.to_owned(), second["id"].as_str().expect("id").to_owned()];
    let unpaid = loop {
        let event = dashboard.next(Duration::from_secs(10)).await.expect("the failed create's row is seen");
        let about = event["server"]["id"].as_str().unwrap_or_default().to_owned();
        if !known.contains(&about) {
            break about;
        }
    };
    dashboard.until(&unpaid, |event| event["type"] == "removed").await;

    // The billing page's data: both unpaid, at the plan's price.
    let overview = billing(&b.app, &token).await;
    assert_eq!(overview["enabled"], true);
    let subscriptions = overview["subscriptions"].as_array().expect("subscriptions");
    assert_eq!(subscriptions.len(), 2);
    let tiny = Catalog::builtin().plan("demo", "tiny").map(|(_, plan)| plan.price_cents).expect("plan");
    assert!(subscriptions.iter().all(|s| s["price_cents"] == tiny && s["checkout_url"].is_string()));
}

async fn reference_events_drive_the_right_transitions_once_and_in_order(backend: Backend) {
    let Some(b) = billed(backend, TestDriver::Local).await else { return };
    let reference = reference_dir().expect("the fake started, so the reference is here");
    let token = b.app.signed_up("payer@example.com").await;
    let created = create(&b.app, &token, "tiny").await;
    let id = created["id"].as_str().expect("id").to_owned();
    let fixture = |file: &str| reference_json(&reference, &format!("stripe/events/{file}"));
    // A subscription event about `server`: the fixtures' prices are not Spawnpoint's, and a subscription pays
    // for a server only when its price is for that server's plan.
    let subscription_event = |file: &str, server: &str| {
        let mut event = fixture(file);
        event["data"]["object"]["metadata"] = json!({ "server_id": server });
        for item in event["data"]["object"]["items"]["data"].as_array_mut().into_iter().flatten() {
            item["price"]["product"] = product_id("demo").into();
            item["price"]["metadata"] = json!({ "plan": "tiny" });
        }
        event
    };
    // Each delivery gets its own id (two fixtures share one) and a later `created`.
    let mut step = now();
    let mut next = |mut event: Value| {
        step += 1;
        event["id"] = format!("{}_{step}", event["id"].as_str().unwrap_or("evt")).into();
        event["created"] = step.into();
        event
    };
    let paid = in_state(&["pending", "running"]);
    let expired = in_state(&["expired"]);

    // Checkout completed: what Spawnpoint's checkout sets is the reference id and metadata.
    let mut completed = fixture("checkout.session.completed.stripe-sync-engine.json");
    let object = &mut completed["data"]["object"];
    object["client_reference_id"] = id.clone().into();
    object["metadata"] = json!({ "server_id": id });
    object["mode"] = "subscription".into();
    object["subscription"] = "sub_JsuPyCPhXWfZar".into();
    assert_eq!(deliver(&b.app, &next(completed)).await, 200);
    b.app.wait_for(&token, &id, "provisioned", &paid).await;

    // An invoice of a 2016 API version: the subscription's metadata only on its line.
    let mut failed = fixture("invoice.payment_failed.zulip.json");
    failed["data"]["object"]["lines"]["data"][0]["metadata"] = json!({ "server_id": id });
    let failed = next(failed);
    assert_eq!(deliver(&b.app, &failed).await, 200);
    let lapsed = b.app.wait_for(&token, &id, "expired", &expired).await;
    assert!(lapsed["status_message"].as_str().is_some_and(|m| m.contains("7 days")), "{lapsed}");
    let overview = billing(&b.app, &token).await;
    let deadline = overview["subscriptions"][0]["delete_after"].as_i64().expect("a deadline");
    assert!((deadline - (b.clock.now() + GRACE_PERIOD.as_secs() as i64)).abs() < 60, "{overview}");

    let mut succeeded = fixture("invoice.payment_succeeded.zulip.json");
    succeeded["data"]["object"]["lines"]["data"][0]["metadata"] = json!({ "server_id": id });
    assert_eq!(deliver(&b.app, &next(succeeded)).await, 200);
    b.app.wait_for(&token, &id, "paid again", &paid).await;

    // The current (basil) shape: metadata under parent.subscription_details. The fixture is the event's data.
    let mut basil = fixture("invoice.payment_failed.data-only.pay-basil-shape.json");
    basil["object"]["parent"]["subscription_details"]["metadata"] = json!({ "server_id": id });
    assert_eq!(deliver(&b.app, &next(event("invoice.payment_failed", &basil["object"], 0))).await, 200);
    b.app.wait_for(&token, &id, "expired again", &expired).await;

    // invoice.paid of a 2020 version, found by its line's metadata; its period is the renewal.
    let mut invoice_paid = fixture("invoice.paid.stripe-sync-engine.json");
    invoice_paid["data"]["object"]["lines"]["data"][0]["metadata"] = json!({ "server_id": id });
    assert_eq!(deliver(&b.app, &next(invoice_paid)).await, 200);
    b.app.wait_for(&token, &id, "paid by invoice.paid", &paid).await;
    assert_eq!(billing(&b.app, &token).await["subscriptions"][0]["renews_at"], 1_645_323_680);

    let deleted = next(subscription_event("customer.subscription.deleted.stripe-sync-engine.json", &id));
    assert_eq!(deliver(&b.app, &deleted).await, 200);
    b.app.wait_for(&token, &id, "expired by a cancelled subscription", &expired).await;
    assert_eq!(billing(&b.app, &token).await["subscriptions"][0]["status"], "canceled");

    let updated = subscription_event("customer.subscription.updated.stripe-sync-engine.json", &id);
    assert_eq!(deliver(&b.app, &next(updated)).await, 200);
    b.app.wait_for(&token, &id, "active again", &paid).await;
    assert_eq!(billing(&b.app, &token).await["subscriptions"][0]["status"], "active");

    // A redelivery of an event already handled changes nothing, even though it would expire the server.
    let events = b.app.count("stripe_events").await;
    assert_eq!(deliver(&b.app, &deleted).await, 200);
    assert_eq!(b.app.count("stripe_events").await, events);
    // An event older than the last one applied (delivered late) changes nothing either.
    let mut late = failed.clone();
    late["id"] = "evt_late".into();
    assert!(late["created"].as_i64() < deleted["created"].as_i64(), "created before the last applied");
    assert_eq!(deliver(&b.app, &late).await, 200);
    // Unknown types, and events about servers not known here: taken, and nothing changes.
    let dotnet = reference_json(&reference, "stripe/stripe-dotnet-event_test_signature.json");
    assert_eq!(deliver(&b.app, &next(dotnet)).await, 200);
    let strangers = subscription_event("customer.subscription.created.stripe-sync-engine.json", "nosuchserver");
    assert_eq!(deliver(&b.app, &next(strangers)).await, 200);
    b.app.reconciled_server(&id).await;
    b.app.reconciled().await;
    assert!(paid(&server(&b.app, &token, &id).await), "still paid for");
    assert_eq!(b.app.count("servers").await, 1);

    // customer.subscription.created (active) alone provisions an unpaid server too.
    let other = create(&b.app, &token, "tiny").await;
    let other_id = other["id"].as_str().expect("id");
    let mine = subscription_event("customer.subscription.created.stripe-sync-engine.json", other_id);
    assert_eq!(deliver(&b.app, &next(mine)).await, 200);
    b.app.wait_for(&token, other_id, "provisioned by subscription.created", &paid).await;
}

async fn deleting_cancels_the_subscription_first_and_retries_while_stripe_is_down(backend: Backend) {
    let Some(b) = billed(backend, TestDriver::Local).await else { return };
    let token = b.app.signed_up("payer@example.com").await;
    let created = create(&b.app, &token, "tiny").await;
    let id = created["id"].as_str().expect("id");
    let subscription = pay(&b, &created).await;
    b.app.running(&token, id).await;
    let data = b.app.game_data(id);

    b.stripe.set_down(true);
    assert_eq!(b.app.act(&token, id, "delete").await.status(), 202);
    let waiting = b
        .app
        .wait_for(&token, id, "told the cancel is retried", |s| {
            s["status"] == "deleted"
                && s["status_message"].as_str().is_some_and(|m| m.contains("subscription not cancelled"))
        })
        .await;
    assert_eq!(waiting["status"], "deleted", "deleted for the user at once");
    assert!(data.exists(), "nothing is removed before the subscription is cancelled");
    let sub_id = subscription["id"].as_str().expect("subscription id");
    assert_eq!(b.stripe.subscription(sub_id).expect("subscription")["status"], "active");

    b.stripe.set_down(false);
    b.app.wait_for(&token, id, "gone", Value::is_null).await;
    assert_eq!(b.stripe.subscription(sub_id).expect("subscription")["status"], "canceled", "never billed again");
    eventually("the data is gone", || !data.exists()).await;
    let cancels = b.stripe.requests().into_iter().filter(|r| r.is("DELETE", "/v1/subscriptions/")).count();
    assert!(cancels >= 2, "retried until Stripe answered: {cancels}");

    // An unpaid server's checkout is closed, so it can no longer be paid.
    let unpaid = create(&b.app, &token, "tiny").await;
    let unpaid_id = unpaid["id"].as_str().expect("id");
    assert_eq!(b.app.act(&token, unpaid_id, "delete").await.status(), 202);
    b.app.wait_for(&token, unpaid_id, "gone", Value::is_null).await;
    assert_eq!(b.stripe.session(&session_of(&unpaid)).expect("session")["status"], "expired");
}

async fn an_abandoned_checkout_is_deleted_after_a_day(backend: Backend) {
    let Some(b) = billed(backend, TestDriver::Local).await else { return };
    let token = b.app.signed_up("payer@example.com").await;
    let created = create(&b.app, &token, "tiny").await;
    let id = created["id"].as_str().expect("id");
    b.clock.advance(Duration::from_secs(23 * 3600));
    b.app.reconciled().await;
    assert_eq!(server(&b.app, &token, id).await["status"], "awaiting_payment", "a day is not over yet");
    b.clock.advance(Duration::from_secs(3600));
    b.app.wait_for(&token, id, "gone", Value::is_null).await;
    assert_eq!(b.stripe.session(&session_of(&created)).expect("session")["status"], "expired");
}

async fn ask(player: &mut BufReader<tokio::net::TcpStream>, line: &str) -> String {
    player.get_mut().write_all(format!("{line}\n").as_bytes()).await.expect("sent");
    let mut answer = String::new();
    let read = tokio::time::timeout(Duration::from_secs(10), player.read_line(&mut answer)).await;
    read.expect("an answer in time").expect("readable");
    answer.trim().to_owned()
}

async fn play_a_match(server: &Value) {
    let address = server["address"].as_str().expect("address");
    let stream = tokio::net::TcpStream::connect(address).await.unwrap_or_else(|e| panic!("joining {address}: {e}"));
    let mut player = BufReader::new(stream);
    assert_eq!(ask(&mut player, "REQUEST_MATCH 1").await, "STATE running");
}

async fn a_paid_server_expires_comes_back_with_its_data_and_is_deleted_after_the_grace_period(
    backend: Backend,
    driver: TestDriver,
) {
    let Some(b) = billed(backend, driver).await else { return };
    let token = b.app.signed_up("payer@example.com").await;
    let created = create(&b.app, &token, "tiny").await;
    let id = created["id"].as_str().expect("id");

    let subscription = pay(&b, &created).await;
    let running = b.app.running(&token, id).await;
    play_a_match(&running).await;
    let data = b.app.game_data(id);
    eventually("the match is saved", || data.join("world.txt").exists()).await;

    // Payment fails: expired, stopped, data kept.
    let pid = b.app.game_pid(id).expect("a running game");
    let failed = b.stripe.invoice(&subscription, false, b.clock.now());
    assert_eq!(deliver(&b.app, &event("invoice.payment_failed", &failed, now())).await, 200);
    let expired = b.app.wait_for(&token, id, "expired", |s| s["status"] == "expired").await;
    assert_eq!(expired["address"], Value::Null);
    eventually("the game is stopped", || !alive(&pid) && b.app.game_pid(id).is_none()).await;
    assert_eq!(std::fs::read_to_string(data.join("world.txt")).expect("data kept"), "matches_played=1\n");

    // Paid after all, within the grace period: running again with its world.
    let paid = b.stripe.invoice(&subscription, true, b.clock.now() + 30 * 86_400);
    assert_eq!(deliver(&b.app, &event("invoice.payment_succeeded", &paid, now() + 1)).await, 200);
    let again = b.app.running(&token, id).await;
    play_a_match(&again).await;
    eventually("the second match is saved on the same world", || {
        std::fs::read_to_string(data.join("world.txt")).is_ok_and(|w| w == "matches_played=2\n")
    })
    .await;

    // Fails again and stays unpaid: 7 days later the server and its data are gone, and the subscription too.
    let failed = b.stripe.invoice(&subscription, false, b.clock.now());
    assert_eq!(deliver(&b.app, &event("invoice.payment_failed", &failed, now() + 2)).await, 200);
    b.app.wait_for(&token, id, "expired", |s| s["status"] == "expired").await;
    b.clock.advance(GRACE_PERIOD - Duration::from_secs(3600));
    b.app.reconciled().await;
    assert_eq!(server(&b.app, &token, id).await["status"], "expired", "still within the grace period");
    b.clock.advance(Duration::from_secs(3601));
    b.app.wait_for(&token, id, "gone", Value::is_null).await;
    eventually("the data is gone", || !data.exists()).await;
    let sub_id = subscription["id"].as_str().expect("id");
    assert_eq!(b.stripe.subscription(sub_id).expect("subscription")["status"], "canceled");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stripe_sync_is_idempotent_follows_price_changes_and_survives_an_outage() {
    let Some(stripe) = FakeStripe::start().await else { return };
    let api = api(&stripe);
    let catalog = Catalog::builtin();
    let plans: usize = catalog.games().iter().map(|game| game.plans.len()).sum();

    // Stripe down: the sync fails and has changed nothing.
    stripe.set_down(true);
    let error = api.sync(&catalog, |_, _| {}).await.expect_err("Stripe is down");
    assert!(error.to_string().contains("unavailable"), "{error}");
    stripe.set_down(false);
    assert!(stripe.products().is_empty() && stripe.prices().is_empty());

    let mut report = Vec::new();
    api.sync(&catalog, |what, synced| report.push((what.to_owned(), synced))).await.expect("sync");
    assert_eq!(report.len(), catalog.games().len() + plans);
    assert!(report.iter().all(|(_, synced)| *synced == Synced::Created), "{report:?}");
    assert_eq!(stripe.products().len(), catalog.games().len());
    for game in catalog.games() {
        for plan in &game.plans {
            let key = format!("spawnpoint:{}:{}", game.id, plan.id);
            let price = stripe.prices().into_iter().find(|p| p["lookup_key"] == key.as_str()).expect(&key);
            assert_eq!(price["unit_amount"], plan.price_cents);
            assert_eq!(price["currency"], "usd");
            assert_eq!(price["recurring"]["interval"], "month");
            assert_eq!(price["product"], format!("spawnpoint-{}", game.id));
        }
    }

    // Again: nothing to change, and nothing is written.
    let writes = |stripe: &FakeStripe| stripe.requests().iter().filter(|r| r.method != "GET").count();
    let before = writes(&stripe);
    let mut again = Vec::new();
    api.sync(&catalog, |_, synced| again.push(synced)).await.expect("sync");
    assert!(again.iter().all(|synced| *synced == Synced::Unchanged));
    assert_eq!(writes(&stripe), before, "a second run sends no change");

    // A plan's price changes: a new price takes over the lookup key, the old one is archived.
    let yaml = include_str!("../../../catalog/games.yaml").replace("price_cents: 300", "price_cents: 350");
    let changed = Catalog::from_yaml(&yaml).expect("catalog");
    let mut updated = Vec::new();
    api.sync(&changed, |what, synced| {
        if synced != Synced::Unchanged {
            updated.push(what.to_owned());
        }
    })
    .await
    .expect("sync");
    assert!(!updated.is_empty() && updated.iter().all(|what| what.starts_with("price")), "{updated:?}");
    let holders: Vec<Value> =
        stripe.prices().into_iter().filter(|p| p["lookup_key"] == "spawnpoint:minecraft-java:starter").collect();
    assert_eq!(holders.len(), 1);
    assert_eq!(holders[0]["unit_amount"], 350);
    assert!(stripe.prices().iter().any(|p| p["unit_amount"] == 300 && p["active"] == false), "the old is archived");
}

#[test]
fn the_stripe_sync_command_reports_and_a_second_run_changes_nothing() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let Some(stripe) = runtime.block_on(FakeStripe::start()) else { return };
    let _serving = runtime.enter();
    let dir = tempfile::tempdir().expect("temp dir");
    let run = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_spawnpoint"))
            .args(["stripe", "sync"])
            .env_clear()
            .env("SPAWNPOINT_DATA_DIR", dir.path())
            .env("SPAWNPOINT_BILLING", "stripe")
            .env("SPAWNPOINT_PUBLIC_URL", "https://panel.example.com")
            .env("STRIPE_SECRET_KEY", SECRET_KEY)
            .env("STRIPE_WEBHOOK_SECRET", WEBHOOK_SECRET)
            .env("STRIPE_API_BASE", stripe.url())
            .output()
            .expect("runs")
    };
    let first = run();
    let text = String::from_utf8_lossy(&first.stdout).into_owned();
    assert!(first.status.success(), "{text}{}", String::from_utf8_lossy(&first.stderr));
    assert!(text.contains("created   price spawnpoint:valheim:"), "{text}");
    let second = run();
    let text = String::from_utf8_lossy(&second.stdout).into_owned();
    assert!(second.status.success() && text.contains("0 created or updated"), "{text}");
    assert!(!String::from_utf8_lossy(&second.stderr).contains(SECRET_KEY), "the key is never printed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_billing_page_shows_plan_price_status_and_renewal_and_opens_the_portal() {
    let _turn = one_page_test_at_a_time().await;
    let Some(b) = billed(Backend::Sqlite, TestDriver::Local).await else { return };
    let token = b.app.signed_up("payer@example.com").await;
    let paid = create(&b.app, &token, "tiny").await;
    let unpaid = create(&b.app, &token, "tiny").await;
    let subscription = pay(&b, &paid).await;
    let period_end = subscription["items"]["data"][0]["current_period_end"].as_i64().expect("period end");
    let paid_id = paid["id"].as_str().expect("id");
    b.app.wait_for(&token, paid_id, "paid", in_state(&["pending", "running"])).await;

    // The page as the server renders it (a token instead of the cookie: with this public URL the cookie is
    // `Secure`, which a client on plain http does not send).
    let page = b.app.client.get(b.app.url("/billing")).bearer_auth(&token).send().await.expect("sent");
    assert_eq!(page.status(), 200);
    let html = page.text().await.expect("html");
    assert!(html.contains("Paid"), "server names are listed");
    assert!(html.contains("$1.00/mo"), "the plan's price: {html}");
    assert!(html.contains(">active<"), "the subscription's status");
    assert!(html.contains(&app::billing::date(period_end)), "the next renewal");
    assert!(html.contains(unpaid["checkout_url"].as_str().expect("url")), "an unpaid server links to its checkout");
    assert!(html.contains("Payment methods and invoices"), "the portal button");

    let portal = b.app.client.post(b.app.url("/api/billing/portal")).bearer_auth(&token).send().await.expect("sent");
    assert_eq!(portal.status(), 200);
    let portal: Value = portal.json().await.expect("json");
    assert!(portal["url"].as_str().is_some_and(|url| url.starts_with(b.stripe.url())), "{portal}");
    let request =
        b.stripe.requests().into_iter().rfind(|r| r.is("POST", "/v1/billing_portal/sessions")).expect("asked");
    assert_eq!(request.param("return_url"), Some("https://panel.example.com/billing"));
    // The portal may change payment methods and show invoices, never switch the plan a server is paid for.
    let configuration = b
        .stripe
        .requests()
        .into_iter()
        .find(|r| r.is("POST", "/v1/billing_portal/configurations"))
        .expect("a portal configuration was made");
    assert_eq!(configuration.param("features[subscription_update][enabled]"), Some("false"));
    assert_eq!(configuration.param("features[payment_method_update][enabled]"), Some("true"));
    let made = b.stripe.portal_configurations();
    assert_eq!(made.len(), 1);
    assert_eq!(request.param("configuration"), made[0]["id"].as_str(), "the session uses it");
    // A second visit reuses it.
    let again = b.app.client.post(b.app.url("/api/billing/portal")).bearer_auth(&token).send().await.expect("sent");
    assert_eq!(again.status(), 200);
    assert_eq!(b.stripe.portal_configurations().len(), 1);

    // Someone else sees none of it.
    let other = b.app.signed_up("other@example.com").await;
    assert_eq!(billing(&b.app, &other).await["subscriptions"], json!([]));
    assert_eq!(
        b.app.client.post(b.app.url("/api/billing/portal")).bearer_auth(&other).send().await.expect("sent").status(),
        404
    );
    assert_eq!(b.app.get("/api/billing").await.status(), 401, "signed out");
}

async fn an_event_whose_handler_dies_before_applying_it_is_applied_when_redelivered(backend: Backend) {
    let Some(b) = billed(backend, TestDriver::Local).await else { return };
    let token = b.app.signed_up("unlucky-payer@example.com").await;
    let created = create(&b.app, &token, "tiny").await;
    let id = created["id"].as_str().expect("id");
    let period_end = b.clock.now() + 30 * 86_400;
    let (session, _) = b.stripe.complete_checkout(&session_of(&created), period_end);
    let paid = event("checkout.session.completed", &session, now());
    let body = paid.to_string();
    let signature = webhook::sign(body.as_bytes(), WEBHOOK_SECRET.as_bytes(), now());

    // The handler dies after recording the event and before applying it: Stripe gets no answer.
    b.crash_after_claim.store(true, Ordering::SeqCst);
    let cut =
        b.app.client.post(b.app.url("/webhooks/stripe")).header("Stripe-Signature", &signature).body(body.clone());
    let answer = cut.send().await.map(|response| response.status().as_u16());
    assert!(answer.is_err() || answer.as_ref().is_ok_and(|status| *status >= 500), "{answer:?}");
    b.app.reconciled_server(id).await;
    assert_eq!(server(&b.app, &token, id).await["status"], "awaiting_payment", "nothing was applied");

    // Stripe delivers it again: this time it is applied, not taken for a redelivery of a handled event.
    b.crash_after_claim.store(false, Ordering::SeqCst);
    assert_eq!(post_webhook(&b.app, &body, Some(&signature)).await, 200);
    b.app.wait_for(&token, id, "paid and provisioned", in_state(&["pending", "running"])).await;
    let stored: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM stripe_events WHERE id = $1")
        .bind(paid["id"].as_str().expect("id").to_owned())
        .fetch_one(b.app.db.pool())
        .await
        .expect("count");
    assert_eq!(stored, 1, "recorded once");
    // And a third delivery is a redelivery: answered, and nothing changes.
    assert_eq!(post_webhook(&b.app, &body, Some(&signature)).await, 200);
}

async fn a_subscription_for_another_plan_does_not_pay_for_the_server(backend: Backend) {
    let Some(b) = billed(backend, TestDriver::Local).await else { return };
    let token = b.app.signed_up("payer@example.com").await;
    let created = create(&b.app, &token, "small").await;
    let id = created["id"].as_str().expect("id");
    let subscription = pay(&b, &created).await;
    assert_eq!(subscription["items"]["data"][0]["price"]["lookup_key"], lookup_key("demo", "small"));
    b.app.running(&token, id).await;

    // The customer switches the subscription to the cheaper plan at the provider: the server is not paid for.
    let tiny = b.stripe.prices().into_iter().find(|p| p["lookup_key"] == lookup_key("demo", "tiny")).expect("tiny");
    let mut cheaper = subscription.clone();
    cheaper["items"]["data"][0]["price"] = tiny;
    assert_eq!(deliver(&b.app, &event("customer.subscription.updated", &cheaper, now())).await, 200);
    let shown = b.app.wait_for(&token, id, "unpaid", in_state(&["expired"])).await;
    let message = shown["status_message"].as_str().expect("a message");
    assert!(message.contains("not this server's plan"), "{message}");
    // Its invoices, paid, do not pay for it either while the subscription is for another plan.
    let invoice = b.stripe.invoice(&subscription, true, now() + 30 * 86_400);
    assert_eq!(deliver(&b.app, &event("invoice.paid", &invoice, now() + 1)).await, 200);
    b.app.reconciled_server(id).await;
    assert_eq!(server(&b.app, &token, id).await["status"], "expired");

    // Back on its own plan (an older price of it, as after a price change, counts the same): paid again.
    let mut older = subscription.clone();
    older["items"]["data"][0]["price"]["lookup_key"] = serde_json::Value::Null;
    older["items"]["data"][0]["price"]["id"] = "price_old".into();
    let subscription = older;
    assert_eq!(deliver(&b.app, &event("customer.subscription.updated", &subscription, now() + 2)).await, 200);
    b.app.running(&token, id).await;
}
