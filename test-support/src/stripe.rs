//! A fake of the Stripe API on loopback, for the real client (async-stripe).
//!
//! It follows Stripe's conventions as the reference data shows them: form-encoded requests with bracketed keys
//! (`metadata[server_id]`, `line_items[0][price]`), `Authorization: Bearer <secret key>`, `Idempotency-Key`
//! (a repeat gets the first answer), objects shaped as `stripe/objects-fixtures3/` (each answer is that fixture
//! with the request's values laid over it), lists as `{object: "list", data, has_more, url}`, and errors as
//! `{"error": {type, code, message, param}}` with Stripe's statuses (401 bad key, 404 `resource_missing`,
//! 400 `invalid_request_error`, 500 `api_error`). Tests can complete a checkout as a customer would, take it
//! down, and read every request that was made.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// The secret key the fake accepts.
pub const SECRET_KEY: &str = "sk_test_fake_spawnpoint";

/// A request as the fake received it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: Method,
    pub path: String,
    /// Decoded form (or query) parameters, keys as sent: `metadata[server_id]`.
    pub params: Vec<(String, String)>,
    pub idempotency_key: Option<String>,
    /// The status answered.
    pub status: u16,
}

impl Recorded {
    /// The first value of parameter `key`.
    pub fn param(&self, key: &str) -> Option<&str> {
        self.params.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// Whether this is `method` on a path starting with `prefix`.
    pub fn is(&self, method: &str, prefix: &str) -> bool {
        self.method.as_str() == method && self.path.starts_with(prefix)
    }
}

#[derive(Default)]
struct Account {
    templates: HashMap<&'static str, Value>,
    base: String,
    customers: Vec<Value>,
    products: Vec<Value>,
    prices: Vec<Value>,
    sessions: Vec<Value>,
    subscriptions: Vec<Value>,
    portal_configurations: Vec<Value>,
    requests: Vec<Recorded>,
    replies: HashMap<String, (u16, Value)>,
    down: bool,
    ids: u64,
}

/// A running fake. Dropping it stops serving.
pub struct FakeStripe {
    account: Arc<Mutex<Account>>,
    url: String,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for FakeStripe {
    fn drop(&mut self) {
        self.server.abort();
    }
}

const FIXTURES: [(&str, &str); 6] = [
    ("customer", "customer.json"),
    ("product", "product.json"),
    ("price", "price.json"),
    ("checkout.session", "checkout.session.json"),
    ("subscription", "subscription.json"),
    ("invoice", "invoice.json"),
];

impl FakeStripe {
    /// Starts the fake; `None` (with the reason printed) without the reference data its objects come from.
    pub async fn start() -> Option<Self> {
        let reference = crate::reference_dir()?;
        let mut templates: HashMap<&'static str, Value> = FIXTURES
            .iter()
            .map(|(kind, file)| (*kind, crate::reference_json(&reference, &format!("stripe/objects-fixtures3/{file}"))))
            .collect();
        let fixtures = crate::reference_json(&reference, "stripe/openapi-fixtures3.json");
        for kind in ["billing_portal.session", "billing_portal.configuration"] {
            templates.insert(kind, fixtures["resources"][kind].clone());
        }
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .unwrap_or_else(|error| panic!("the Stripe fake cannot bind a port: {error}"));
        let url = format!("http://{}", listener.local_addr().map(|a| a.to_string()).unwrap_or_default());
        let account = Arc::new(Mutex::new(Account { templates, base: url.clone(), ..Account::default() }));
        let router = axum::Router::new().fallback(handle).with_state(account.clone());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Some(Self { account, url, server })
    }

    /// `http://127.0.0.1:<port>`, the API base for a client (`STRIPE_API_BASE`).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// While down, every request is answered 500 `api_error` and changes nothing.
    pub fn set_down(&self, down: bool) {
        self.account().down = down;
    }

    /// Every request so far, oldest first.
    pub fn requests(&self) -> Vec<Recorded> {
        self.account().requests.clone()
    }

    pub fn customers(&self) -> Vec<Value> {
        self.account().customers.clone()
    }

    pub fn prices(&self) -> Vec<Value> {
        self.account().prices.clone()
    }

    /// The Customer Portal configurations made, oldest first.
    pub fn portal_configurations(&self) -> Vec<Value> {
        self.account().portal_configurations.clone()
    }

    pub fn products(&self) -> Vec<Value> {
        self.account().products.clone()
    }

    pub fn session(&self, id: &str) -> Option<Value> {
        self.account().sessions.iter().find(|s| s["id"] == id).cloned()
    }

    pub fn subscription(&self, id: &str) -> Option<Value> {
        self.account().subscriptions.iter().find(|s| s["id"] == id).cloned()
    }

    /// Pays an open checkout as the customer would: the session completes and a subscription is created (with
    /// the metadata the checkout asked for), active until `period_end`. Returns the completed session and the
    /// subscription, as the objects of the events Stripe would send.
    pub fn complete_checkout(&self, session_id: &str, period_end: i64) -> (Value, Value) {
        let mut account = self.account();
        let id = account.id("sub");
        let index = account.sessions.iter().position(|s| s["id"] == session_id).expect("no such checkout session");
        assert_eq!(account.sessions[index]["status"], "open", "only an open checkout can be paid");
        let session = &account.sessions[index];
        let (customer, metadata) = (session["customer"].clone(), session["_subscription_metadata"].clone());
        // The item is for the price the checkout sold, expanded as subscription events carry it.
        let price = account.prices.iter().find(|p| p["id"] == session["_price"]).map(public).unwrap_or_default();
        let mut subscription = account.templates["subscription"].clone();
        merge(
            &mut subscription,
            json!({
                "id": id, "customer": customer, "metadata": metadata, "status": "active", "cancel_at_period_end": false,
                "canceled_at": null, "ended_at": null, "latest_invoice": null, "schedule": null, "test_clock": null,
            }),
        );
        if let Some(item) = subscription["items"]["data"].get_mut(0) {
            merge(item, json!({ "current_period_end": period_end, "subscription": id }));
            item["price"] = price;
        }
        account.subscriptions.push(subscription.clone());
        let session = &mut account.sessions[index];
        merge(session, json!({ "status": "complete", "payment_status": "paid", "subscription": id }));
        (public(session), subscription)
    }

    /// An invoice of `subscription` in the current shape (`parent.subscription_details`), `paid` or not.
    pub fn invoice(&self, subscription: &Value, paid: bool, period_end: i64) -> Value {
        let mut account = self.account();
        let id = account.id("in");
        let mut invoice = account.templates["invoice"].clone();
        merge(
            &mut invoice,
            json!({
                "id": id,
                "customer": subscription["customer"],
                "status": if paid { "paid" } else { "open" },
                "parent": {
                    "type": "subscription_details",
                    "quote_details": null,
                    "subscription_details": { "subscription": subscription["id"], "metadata": subscription["metadata"] },
                },
                "lines": { "object": "list", "has_more": false, "url": format!("/v1/invoices/{id}/lines"), "data": [
                    { "object": "line_item", "period": { "start": period_end - 30 * 86_400, "end": period_end } },
                ] },
            }),
        );
        invoice
    }

    fn account(&self) -> MutexGuard<'_, Account> {
        self.account.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Account {
    fn id(&mut self, prefix: &str) -> String {
        self.ids += 1;
        format!("{prefix}_fake{:014}", self.ids)
    }

    fn object(&self, kind: &str, fields: Value) -> Value {
        let mut object = self.templates[kind].clone();
        merge(&mut object, fields);
        object
    }
}

/// Lays `fields` over `object`, key by key at the top level.
fn merge(object: &mut Value, fields: Value) {
    if let (Some(object), Value::Object(fields)) = (object.as_object_mut(), fields) {
        object.extend(fields);
    }
}

/// An object as the API shows it: without the fake's own `_` notes.
fn public(object: &Value) -> Value {
    let mut shown = object.clone();
    if let Some(fields) = shown.as_object_mut() {
        fields.retain(|key, _| !key.starts_with('_'));
    }
    shown
}

struct ApiError {
    status: u16,
    kind: &'static str,
    code: Option<&'static str>,
    message: String,
    param: Option<String>,
}

impl ApiError {
    fn invalid(message: impl Into<String>, param: Option<&str>) -> Self {
        Self {
            status: 400,
            kind: "invalid_request_error",
            code: None,
            message: message.into(),
            param: param.map(Into::into),
        }
    }

    fn missing(what: &str, id: &str) -> Self {
        Self {
            status: 404,
            kind: "invalid_request_error",
            code: Some("resource_missing"),
            message: format!("No such {what}: '{id}'"),
            param: Some("id".into()),
        }
    }

    fn body(&self) -> Value {
        json!({ "error": { "type": self.kind, "code": self.code, "message": self.message, "param": self.param } })
    }
}

/// Decodes `a=1&b%5Bc%5D=2` into pairs.
fn decode(text: &str) -> Vec<(String, String)> {
    let unescape = |part: &str| {
        let bytes = part.replace('+', " ").into_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'%'
                && let Some(byte) = bytes
                    .get(i + 1..i + 3)
                    .and_then(|hex| std::str::from_utf8(hex).ok())
                    .and_then(|hex| u8::from_str_radix(hex, 16).ok())
            {
                out.push(byte);
                i += 3;
                continue;
            }
            out.push(bytes[i]);
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    };
    text.split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (unescape(key), unescape(value))
        })
        .collect()
}

async fn handle(
    State(account): State<Arc<Mutex<Account>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let text = if method == Method::GET {
        uri.query().unwrap_or_default().to_owned()
    } else {
        String::from_utf8_lossy(&body).into_owned()
    };
    let params = decode(&text);
    let idempotency_key = headers.get("idempotency-key").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let authorized =
        headers.get("authorization").and_then(|v| v.to_str().ok()) == Some(&format!("Bearer {SECRET_KEY}"));
    let mut account = account.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let path = uri.path().to_owned();
    let (status, reply) = match (&idempotency_key, account.down) {
        (_, true) => (
            500,
            ApiError {
                status: 500,
                kind: "api_error",
                code: None,
                message: "An unknown error occurred".into(),
                param: None,
            }
            .body(),
        ),
        _ if !authorized => (
            401,
            ApiError {
                status: 401,
                kind: "invalid_request_error",
                code: None,
                message: "Invalid API Key provided".into(),
                param: None,
            }
            .body(),
        ),
        (Some(key), false) if account.replies.contains_key(key) => account.replies[key].clone(),
        _ => {
            let answer =
                route(&mut account, &method, &path, &params).unwrap_or_else(|error| (error.status, error.body()));
            if let Some(key) = &idempotency_key {
                account.replies.insert(key.clone(), answer.clone());
            }
            answer
        }
    };
    account.requests.push(Recorded { method, path, params, idempotency_key, status });
    (StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR), axum::Json(reply)).into_response()
}

fn route(
    account: &mut Account,
    method: &Method,
    path: &str,
    params: &[(String, String)],
) -> Result<(u16, Value), ApiError> {
    let param = |key: &str| params.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone());
    let prefixed = |prefix: &str| -> Value {
        params
            .iter()
            .filter_map(|(k, v)| {
                k.strip_prefix(prefix)
                    .and_then(|rest| rest.strip_suffix(']'))
                    .map(|name| (name.to_owned(), Value::from(v.clone())))
            })
            .collect::<serde_json::Map<_, _>>()
            .into()
    };
    let segments: Vec<&str> = path.trim_start_matches("/v1/").split('/').collect();
    let ok = |object: Value| Ok((200, public(&object)));
    match (method.as_str(), segments.as_slice()) {
        ("POST", ["customers"]) => {
            let id = account.id("cus");
            let customer = account
                .object("customer", json!({ "id": id, "email": param("email"), "metadata": prefixed("metadata[") }));
            account.customers.push(customer.clone());
            ok(customer)
        }
        ("GET", ["products", id]) => account
            .products
            .iter()
            .find(|p| p["id"] == *id)
            .cloned()
            .map_or_else(|| Err(ApiError::missing("product", id)), ok),
        ("POST", ["products"]) => {
            let id = param("id").unwrap_or_else(|| account.id("prod"));
            if account.products.iter().any(|p| p["id"] == id) {
                return Err(ApiError {
                    code: Some("resource_already_exists"),
                    ..ApiError::invalid(format!("Product already exists: {id}"), Some("id"))
                });
            }
            let name = param("name").ok_or_else(|| ApiError::invalid("Missing required param: name.", Some("name")))?;
            let product = account.object("product", json!({ "id": id, "name": name, "active": true, "metadata": prefixed("metadata["), "default_price": null }));
            account.products.push(product.clone());
            ok(product)
        }
        ("POST", ["products", id]) => {
            let product =
                account.products.iter_mut().find(|p| p["id"] == *id).ok_or_else(|| ApiError::missing("product", id))?;
            if let Some(name) = param("name") {
                product["name"] = name.into();
            }
            if let Some(active) = param("active") {
                product["active"] = (active == "true").into();
            }
            ok(product.clone())
        }
        ("GET", ["prices"]) => {
            let keys: Vec<String> =
                params.iter().filter(|(k, _)| k.starts_with("lookup_keys[")).map(|(_, v)| v.clone()).collect();
            let active = param("active").map(|a| a == "true");
            let data: Vec<Value> = account
                .prices
                .iter()
                .filter(|p| keys.is_empty() || keys.iter().any(|k| p["lookup_key"] == *k.as_str()))
                .filter(|p| active.is_none_or(|active| p["active"] == active))
                .cloned()
                .collect();
            Ok((200, json!({ "object": "list", "data": data, "has_more": false, "url": "/v1/prices" })))
        }
        ("POST", ["prices"]) => {
            let product = param("product")
                .ok_or_else(|| ApiError::invalid("Missing required param: product.", Some("product")))?;
            if !account.products.iter().any(|p| p["id"] == product.as_str()) {
                return Err(ApiError {
                    code: Some("resource_missing"),
                    ..ApiError::invalid(format!("No such product: '{product}'"), Some("product"))
                });
            }
            let amount: i64 = param("unit_amount")
                .and_then(|a| a.parse().ok())
                .ok_or_else(|| ApiError::invalid("Missing required param: unit_amount.", Some("unit_amount")))?;
            let key = param("lookup_key");
            if let Some(key) = &key {
                let holder = account.prices.iter_mut().find(|p| p["lookup_key"] == key.as_str());
                match (holder, param("transfer_lookup_key").as_deref()) {
                    (Some(holder), Some("true")) => holder["lookup_key"] = Value::Null,
                    (Some(_), _) => {
                        return Err(ApiError::invalid(
                            format!("A price (lookup_key: {key}) already uses that lookup key."),
                            Some("lookup_key"),
                        ));
                    }
                    (None, _) => {}
                }
            }
            let id = account.id("price");
            let interval = param("recurring[interval]");
            let recurring = interval.map(|interval| json!({ "interval": interval, "interval_count": 1, "meter": null, "trial_period_days": null, "usage_type": "licensed" }));
            let price = account.object("price", json!({
                "id": id, "product": product, "unit_amount": amount, "unit_amount_decimal": amount.to_string(),
                "currency": param("currency"), "recurring": recurring, "type": if recurring.is_some() { "recurring" } else { "one_time" },
                "lookup_key": key, "nickname": param("nickname"), "active": true, "metadata": prefixed("metadata["),
            }));
            account.prices.push(price.clone());
            ok(price)
        }
        ("POST", ["prices", id]) => {
            let price =
                account.prices.iter_mut().find(|p| p["id"] == *id).ok_or_else(|| ApiError::missing("price", id))?;
            if let Some(active) = param("active") {
                price["active"] = (active == "true").into();
            }
            ok(price.clone())
        }
        ("POST", ["checkout", "sessions"]) => {
            let price = param("line_items[0][price]")
                .ok_or_else(|| ApiError::invalid("Missing required param: line_items.", Some("line_items")))?;
            if !account.prices.iter().any(|p| p["id"] == price.as_str() && p["active"] == true) {
                return Err(ApiError::invalid(format!("No such price: '{price}'"), Some("line_items[0][price]")));
            }
            if param("mode").as_deref() != Some("subscription") || param("success_url").is_none() {
                return Err(ApiError::invalid("mode subscription and success_url are required here", Some("mode")));
            }
            let id = account.id("cs_test");
            let url = format!("{}/checkout/pay/{id}", account.base);
            let session = account.object("checkout.session", json!({
                "id": id, "url": url, "status": "open", "payment_status": "unpaid", "mode": "subscription",
                "customer": param("customer"), "client_reference_id": param("client_reference_id"),
                "metadata": prefixed("metadata["), "success_url": param("success_url"), "cancel_url": param("cancel_url"),
                "subscription": null, "invoice": null, "payment_intent": null, "setup_intent": null,
                "_price": price, "_subscription_metadata": prefixed("subscription_data[metadata]["),
            }));
            account.sessions.push(session.clone());
            ok(session)
        }
        ("GET", ["checkout", "sessions", id]) => account
            .sessions
            .iter()
            .find(|s| s["id"] == *id)
            .cloned()
            .map_or_else(|| Err(ApiError::missing("checkout.session", id)), ok),
        ("POST", ["checkout", "sessions", id, "expire"]) => {
            let session = account
                .sessions
                .iter_mut()
                .find(|s| s["id"] == *id)
                .ok_or_else(|| ApiError::missing("checkout.session", id))?;
            if session["status"] != "open" {
                return Err(ApiError::invalid(
                    format!(
                        "Only Checkout Sessions with a status in [\"open\"] can be expired. This Checkout Session has a status of \"{}\".",
                        session["status"].as_str().unwrap_or_default()
                    ),
                    None,
                ));
            }
            session["status"] = "expired".into();
            ok(session.clone())
        }
        ("GET", ["subscriptions", id]) => {
            let subscription = account
                .subscriptions
                .iter()
                .find(|s| s["id"] == *id)
                .ok_or_else(|| ApiError::missing("subscription", id))?;
            ok(subscription.clone())
        }
        ("DELETE", ["subscriptions", id]) => {
            let subscription = account
                .subscriptions
                .iter_mut()
                .find(|s| s["id"] == *id)
                .ok_or_else(|| ApiError::missing("subscription", id))?;
            if subscription["status"] == "canceled" {
                return Err(ApiError::invalid(
                    format!(
                        "A canceled subscription can only update its cancellation_details and metadata. Subscription {id} is canceled."
                    ),
                    None,
                ));
            }
            subscription["status"] = "canceled".into();
            ok(subscription.clone())
        }
        ("POST", ["billing_portal", "configurations"]) => {
            let id = account.id("bpc");
            let enabled = |feature: &str| param(&format!("features[{feature}][enabled]")).as_deref() == Some("true");
            let mut configuration = account.object(
                "billing_portal.configuration",
                json!({ "id": id, "is_default": false, "metadata": prefixed("metadata[") }),
            );
            for feature in ["subscription_update", "payment_method_update", "invoice_history", "subscription_cancel"] {
                configuration["features"][feature]["enabled"] = enabled(feature).into();
            }
            account.portal_configurations.push(configuration.clone());
            ok(configuration)
        }
        ("GET", ["billing_portal", "configurations"]) => {
            let data = account.portal_configurations.clone();
            Ok((
                200,
                json!({ "object": "list", "data": data, "has_more": false, "url": "/v1/billing_portal/configurations" }),
            ))
        }
        ("POST", ["billing_portal", "sessions"]) => {
            let customer = param("customer")
                .ok_or_else(|| ApiError::invalid("Missing required param: customer.", Some("customer")))?;
            if !account.customers.iter().any(|c| c["id"] == customer.as_str()) {
                return Err(ApiError {
                    code: Some("resource_missing"),
                    ..ApiError::invalid(format!("No such customer: '{customer}'"), Some("customer"))
                });
            }
            let configuration = param("configuration");
            if let Some(configuration) = &configuration
                && !account.portal_configurations.iter().any(|c| c["id"] == configuration.as_str())
            {
                return Err(ApiError::missing("billing_portal.configuration", configuration));
            }
            let id = account.id("bps");
            let url = format!("{}/portal/{id}", account.base);
            let session = account.object(
                "billing_portal.session",
                json!({ "id": id, "customer": customer, "return_url": param("return_url"), "url": url, "flow": null, "configuration": configuration }),
            );
            ok(session)
        }
        _ => Err(ApiError {
            status: 404,
            ..ApiError::invalid(format!("Unrecognized request URL ({method}: {path})."), None)
        }),
    }
}
