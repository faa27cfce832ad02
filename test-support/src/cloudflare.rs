//! A fake of Cloudflare's API v4 DNS records endpoints on loopback, for the real Cloudflare client.
//!
//! It follows the reference data (`cloudflare/` in the reference directory): the `{success, errors, messages,
//! result}` envelope with `result_info` on lists, records shaped as the API returns them (SRV with `data` and a
//! derived `content`), the documented list filters (`name`, `type`, `content`, `comment`, `comment.startswith`,
//! `comment.present`, `page`, `per_page`), and the error codes a client meets: 81058 for an identical record,
//! 81044 for a missing one, 7003 for a wrong zone, 10000 for a bad token. Tests can lower the page size to force
//! pagination, seed the zone with the reference's own records (octoDNS's three pages), change records behind the
//! client's back, inject throttling and outages, and read every request that was made.

use std::collections::VecDeque;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

/// What the fake serves and expects.
#[derive(Debug, Clone)]
pub struct FakeConfig {
    pub zone_id: String,
    pub zone_name: String,
    /// The API token clients must send as `Authorization: Bearer …`.
    pub token: String,
    /// The largest page a list returns, whatever `per_page` asks for (the API's default page is 100).
    pub max_per_page: usize,
}

impl Default for FakeConfig {
    /// The zone of the reference's octoDNS fixtures.
    fn default() -> Self {
        Self {
            zone_id: "ff12ab34cd5611334422ab3322997650".into(),
            zone_name: "unit.tests".into(),
            token: "fake-cloudflare-token".into(),
            max_per_page: 5000,
        }
    }
}

/// A request as the fake received it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: Method,
    pub path: String,
    pub query: Vec<(String, String)>,
    pub body: Value,
    /// The status answered.
    pub status: u16,
}

impl Recorded {
    /// Whether this changed the zone (or tried to).
    pub fn is_write(&self) -> bool {
        self.method != Method::GET
    }
}

struct Fault {
    status: u16,
    retry_after: Option<u64>,
}

struct Zone {
    config: FakeConfig,
    records: Vec<Value>,
    requests: Vec<Recorded>,
    faults: VecDeque<Fault>,
}

/// A running fake. Dropping it stops serving.
pub struct FakeCloudflare {
    zone: Arc<Mutex<Zone>>,
    url: String,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for FakeCloudflare {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl FakeCloudflare {
    pub async fn start(config: FakeConfig) -> Self {
        let zone =
            Arc::new(Mutex::new(Zone { config, records: Vec::new(), requests: Vec::new(), faults: VecDeque::new() }));
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .unwrap_or_else(|error| panic!("the Cloudflare fake cannot bind a port: {error}"));
        let url = format!("http://{}/client/v4", listener.local_addr().map(|a| a.to_string()).unwrap_or_default());
        let router = axum::Router::new().fallback(handle).with_state(zone.clone());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Self { zone, url, server }
    }

    /// `http://127.0.0.1:<port>/client/v4`, the API base for a client.
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn config(&self) -> FakeConfig {
        self.zone().config.clone()
    }

    /// Every record in the zone, as the API would return it.
    pub fn records(&self) -> Vec<Value> {
        self.zone().records.clone()
    }

    /// Adds a record as if created elsewhere (the dashboard, another tool); returns it as stored.
    pub fn insert(&self, record: Value) -> Value {
        let mut zone = self.zone();
        let stored = zone.stored(None, &record).unwrap_or_else(|error| panic!("a record the API refuses: {error:?}"));
        zone.records.push(stored.clone());
        stored
    }

    /// Changes a record behind the client's back (drift); `false` if there is no such record.
    pub fn edit(&self, id: &str, change: impl FnOnce(&mut Value)) -> bool {
        let mut zone = self.zone();
        let Some(record) = zone.records.iter_mut().find(|r| r["id"] == id) else { return false };
        change(record);
        true
    }

    /// Removes a record behind the client's back; `false` if there is no such record.
    pub fn remove(&self, id: &str) -> bool {
        let mut zone = self.zone();
        let before = zone.records.len();
        zone.records.retain(|r| r["id"] != id);
        zone.records.len() < before
    }

    /// Seeds the zone with the reference's octoDNS fixture records (27, over three pages), as records someone
    /// else made. Returns them as stored, or `None` without reference data.
    pub fn seed_reference_records(&self) -> Option<Vec<Value>> {
        let reference = crate::reference_dir()?;
        let mut seeded = Vec::new();
        for page in 1..=3 {
            let file = format!("cloudflare/octodns-cloudflare-dns_records-page-{page}.json");
            let fixture = crate::reference_json(&reference, &file);
            let records = fixture["result"].as_array().cloned().unwrap_or_default();
            // As the API has them: the fixture's own ids and timestamps are kept.
            let mut zone = self.zone();
            for record in records {
                zone.records.push(record.clone());
                seeded.push(record);
            }
        }
        Some(seeded)
    }

    /// The next `times` requests are answered with `status` (429 with `Retry-After: <retry_after>` seconds when
    /// given), and change nothing.
    pub fn fail_next(&self, status: u16, times: usize, retry_after: Option<u64>) {
        let mut zone = self.zone();
        zone.faults.extend((0..times).map(|_| Fault { status, retry_after }));
    }

    /// Drops the injected faults not yet answered (the outage is over).
    pub fn clear_faults(&self) {
        self.zone().faults.clear();
    }

    /// Injected faults not yet answered.
    pub fn faults_left(&self) -> usize {
        self.zone().faults.len()
    }

    /// Every request so far, oldest first.
    pub fn requests(&self) -> Vec<Recorded> {
        self.zone().requests.clone()
    }

    fn zone(&self) -> MutexGuard<'_, Zone> {
        self.zone.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// An API error: the HTTP status and `errors[]` entries.
#[derive(Debug)]
struct ApiError(u16, Vec<(u32, String)>);

impl ApiError {
    fn one(status: u16, code: u32, message: impl Into<String>) -> Self {
        Self(status, vec![(code, message.into())])
    }

    fn validation(message: impl Into<String>) -> Self {
        Self::one(400, 1004, format!("DNS Validation Error: {}", message.into()))
    }
}

async fn handle(
    State(zone): State<Arc<Mutex<Zone>>>,
    method: Method,
    uri: Uri,
    Query(query): Query<Vec<(String, String)>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let mut zone = zone.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let (status, response, retry_after) = match zone.faults.pop_front() {
        Some(fault) => {
            let error = match fault.status {
                429 => ApiError::one(429, 971, "Please wait and consider throttling your request speed"),
                status => ApiError::one(status, 10000 + u32::from(status), "Internal Server Error"),
            };
            let (status, body) = failure(error);
            (status, body, fault.retry_after)
        }
        None => {
            let (status, body) = match zone.answer(&method, uri.path(), &query, &headers, &body) {
                Ok(body) => (200, body),
                Err(error) => failure(error),
            };
            (status, body, None)
        }
    };
    zone.requests.push(Recorded { method, path: uri.path().to_owned(), query, body, status });
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = (status, axum::Json(response)).into_response();
    if let Some(seconds) = retry_after {
        response.headers_mut().insert("retry-after", seconds.into());
    }
    response
}

fn failure(ApiError(status, errors): ApiError) -> (u16, Value) {
    let errors: Vec<Value> =
        errors.into_iter().map(|(code, message)| json!({"code": code, "message": message})).collect();
    (status, json!({"success": false, "errors": errors, "messages": [], "result": null}))
}

fn success(result: Value) -> Value {
    json!({"success": true, "errors": [], "messages": [], "result": result})
}

impl Zone {
    fn answer(
        &mut self,
        method: &Method,
        path: &str,
        query: &[(String, String)],
        headers: &HeaderMap,
        body: &Value,
    ) -> Result<Value, ApiError> {
        let authorization = headers.get("authorization").and_then(|value| value.to_str().ok());
        match authorization.and_then(|value| value.strip_prefix("Bearer ")) {
            None => return Err(ApiError::one(400, 6003, "Invalid request headers")),
            Some(token) if token != self.config.token => return Err(ApiError::one(403, 10000, "Authentication error")),
            Some(_) => {}
        }
        let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        let (zone_id, record_id) = match segments.as_slice() {
            ["client", "v4", "zones", zone, "dns_records"] => (*zone, None),
            ["client", "v4", "zones", zone, "dns_records", id] => (*zone, Some(*id)),
            _ => return Err(ApiError::one(404, 7003, "No route for the URI")),
        };
        if zone_id != self.config.zone_id {
            return Err(ApiError::one(
                404,
                7003,
                format!("Could not route to {path}, perhaps your object identifier is invalid?"),
            ));
        }
        match (method.as_str(), record_id) {
            ("GET", None) => Ok(self.list(query)),
            ("POST", None) => {
                let record = self.stored(None, body)?;
                self.refuse_identical(&record, None)?;
                self.records.push(record.clone());
                Ok(success(record))
            }
            ("GET", Some(id)) => Ok(success(self.find(id)?.clone())),
            ("PUT", Some(id)) => {
                self.find(id)?;
                let record = self.stored(Some(id), body)?;
                self.replace(id, record)
            }
            ("PATCH", Some(id)) => {
                let mut merged = self.find(id)?.clone();
                if let (Some(merged), Some(changes)) = (merged.as_object_mut(), body.as_object()) {
                    merged.extend(changes.iter().map(|(k, v)| (k.clone(), v.clone())));
                }
                let record = self.stored(Some(id), &merged)?;
                self.replace(id, record)
            }
            ("DELETE", Some(id)) => {
                self.find(id)?;
                self.records.retain(|r| r["id"] != id);
                Ok(success(json!({"id": id})))
            }
            _ => Err(ApiError::one(405, 7001, "Method not allowed for this endpoint")),
        }
    }

    fn find(&self, id: &str) -> Result<&Value, ApiError> {
        self.records.iter().find(|r| r["id"] == id).ok_or_else(|| ApiError::one(404, 81044, "Record does not exist."))
    }

    fn replace(&mut self, id: &str, record: Value) -> Result<Value, ApiError> {
        self.refuse_identical(&record, Some(id))?;
        if let Some(slot) = self.records.iter_mut().find(|r| r["id"] == id) {
            *slot = record.clone();
        }
        Ok(success(record))
    }

    /// The API refuses a second record of the same type, name and content.
    fn refuse_identical(&self, record: &Value, except: Option<&str>) -> Result<(), ApiError> {
        let same = |other: &&Value| {
            except != other["id"].as_str()
                && other["type"] == record["type"]
                && other["name"] == record["name"]
                && other["content"] == record["content"]
                && other["data"] == record["data"]
        };
        match self.records.iter().find(same) {
            Some(_) => Err(ApiError::one(400, 81058, "An identical record already exists.")),
            None => Ok(()),
        }
    }

    /// A list page with `result_info`, after the documented filters.
    fn list(&self, query: &[(String, String)]) -> Value {
        let param = |name: &str| query.iter().find(|(key, _)| key == name).map(|(_, value)| value.as_str());
        let lower = |value: &Value| value.as_str().unwrap_or_default().to_ascii_lowercase();
        let matches = |record: &&Value| {
            param("name").is_none_or(|name| lower(&record["name"]) == name.to_ascii_lowercase())
                && param("type").is_none_or(|kind| record["type"] == kind)
                && param("content").is_none_or(|content| record["content"] == content)
                && param("comment").is_none_or(|comment| record["comment"] == comment)
                && param("comment.present").is_none_or(|_| record["comment"].is_string())
                && param("comment.startswith")
                    .is_none_or(|prefix| lower(&record["comment"]).starts_with(&prefix.to_ascii_lowercase()))
        };
        let found: Vec<&Value> = self.records.iter().filter(matches).collect();
        let per_page = param("per_page").and_then(|n| n.parse().ok()).unwrap_or(100).clamp(1, self.config.max_per_page);
        let page = param("page").and_then(|n| n.parse().ok()).unwrap_or(1usize).max(1);
        let result: Vec<Value> =
            found.iter().skip((page - 1) * per_page).take(per_page).map(|r| (*r).clone()).collect();
        let mut body = success(Value::Array(result.clone()));
        body["result_info"] = json!({
            "page": page,
            "per_page": per_page,
            "count": result.len(),
            "total_count": found.len(),
            "total_pages": found.len().div_ceil(per_page),
        });
        body
    }

    /// A record body checked as the API checks it (the reference's OpenAPI schemas for A, AAAA and SRV; other
    /// types need a `content`) and completed with what the API adds.
    fn stored(&self, id: Option<&str>, body: &Value) -> Result<Value, ApiError> {
        let Some(fields) = body.as_object() else { return Err(ApiError::validation("the body must be a JSON object")) };
        let text = |name: &str| fields.get(name).and_then(Value::as_str);
        let kind = text("type").ok_or_else(|| ApiError::validation("type is required"))?;
        let name = text("name").ok_or_else(|| ApiError::validation("name is required"))?.to_ascii_lowercase();
        let zone = &self.config.zone_name;
        if name != *zone && !name.ends_with(&format!(".{zone}")) {
            return Err(ApiError::one(400, 9007, format!("Name {name} is not in the zone {zone}")));
        }
        let ttl = fields.get("ttl").map_or(Some(1), Value::as_u64).filter(|&t| t == 1 || (60..=86400).contains(&t));
        let ttl = ttl.ok_or_else(|| {
            ApiError::one(400, 9021, "Invalid TTL. Must be between 60 and 86400 seconds, or 1 for Automatic.")
        })?;
        let comment = match fields.get("comment") {
            None | Some(Value::Null) => Value::Null,
            Some(Value::String(comment)) if comment.chars().count() <= 100 => Value::String(comment.clone()),
            Some(_) => return Err(ApiError::validation("comment must be a string of at most 100 characters")),
        };
        let proxied = fields.get("proxied").map_or(Some(false), Value::as_bool);
        let proxied = proxied.ok_or_else(|| ApiError::validation("proxied must be true or false"))?;
        let proxiable = matches!(kind, "A" | "AAAA" | "CNAME");
        if proxied && !proxiable {
            return Err(ApiError::one(400, 9004, format!("{kind} records cannot be proxied")));
        }
        let mut record = Map::new();
        let (content, data) = match kind {
            "A" => (address::<Ipv4Addr>(text("content"), "A", "IPv4")?, None),
            "AAAA" => (address::<Ipv6Addr>(text("content"), "AAAA", "IPv6")?, None),
            "SRV" => {
                let data = fields.get("data").and_then(Value::as_object).ok_or_else(|| {
                    ApiError::validation("SRV records need data with priority, weight, port and target")
                })?;
                let number = |field: &str| {
                    data.get(field).and_then(Value::as_u64).filter(|&n| n <= 65535).ok_or_else(|| {
                        ApiError::validation(format!("data.{field} must be a number between 0 and 65535"))
                    })
                };
                let (priority, weight, port) = (number("priority")?, number("weight")?, number("port")?);
                let target = data.get("target").and_then(Value::as_str).filter(|t| is_hostname(t));
                let target = target.ok_or_else(|| ApiError::validation("data.target must be a valid hostname"))?;
                record.insert("priority".into(), json!(priority));
                let data = json!({"priority": priority, "weight": weight, "port": port, "target": target});
                (format!("{weight} {port} {target}"), Some(data))
            }
            _ => (text("content").ok_or_else(|| ApiError::validation("content is required"))?.to_owned(), None),
        };
        let generated = uuid::Uuid::new_v4().simple().to_string();
        record.extend([
            ("id".to_owned(), json!(id.unwrap_or(&generated))),
            ("zone_id".to_owned(), json!(self.config.zone_id)),
            ("zone_name".to_owned(), json!(self.config.zone_name)),
            ("name".to_owned(), json!(name)),
            ("type".to_owned(), json!(kind)),
            ("content".to_owned(), json!(content)),
            ("proxiable".to_owned(), json!(proxiable)),
            ("proxied".to_owned(), json!(proxied)),
            ("ttl".to_owned(), json!(ttl)),
            ("locked".to_owned(), json!(false)),
            ("meta".to_owned(), json!({"auto_added": false, "source": "primary"})),
            ("comment".to_owned(), comment),
            ("tags".to_owned(), fields.get("tags").cloned().unwrap_or_else(|| json!([]))),
            ("created_on".to_owned(), json!(TIMESTAMP)),
            ("modified_on".to_owned(), json!(TIMESTAMP)),
        ]);
        if let Some(data) = data {
            record.insert("data".into(), data);
        }
        Ok(Value::Object(record))
    }
}

/// What the fake stamps on records (nothing here reads the times).
const TIMESTAMP: &str = "2026-01-01T00:00:00.000000Z";

fn address<T: std::str::FromStr>(content: Option<&str>, kind: &str, family: &str) -> Result<String, ApiError> {
    match content {
        Some(text) if text.parse::<T>().is_ok() => Ok(text.to_owned()),
        _ => Err(ApiError::one(
            400,
            9005,
            format!("Content for {kind} record is invalid. Must be a valid {family} address."),
        )),
    }
}

fn is_hostname(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.trim_end_matches('.').split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        })
}
