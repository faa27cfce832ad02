//! The Cloudflare DNS provider: API v4 `dns_records` of one zone, with an API token.
//!
//! Records are marked as Spawnpoint's by their comment (`spawnpoint:<installation>:<server id>`), which is also how drift
//! repair finds them (`comment.startswith`, every page); records without the mark, or outside the base domain,
//! are never changed. Requests answered 429 or 5xx, or not answered, are retried with backoff, waiting as long
//! as `Retry-After` asks; "an identical record already exists" (a create whose response was lost) is success
//! once the record is looked up.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Dns, DnsError, OwnedRecord, Record, RecordIds, RecordValue, ServerRecords};
use crate::orchestrator::BoxFuture;

/// The comment that marks a record as Spawnpoint's: `spawnpoint:<installation>:<server id>`. Only records
/// with this installation's mark are ever listed as owned, so another installation's are never collected.
const MARK: &str = "spawnpoint:";
/// Short, so a game that moves is found at its new node soon.
const TTL: u32 = 60;
/// Records per list page: few requests for a big zone (the API allows far more per page).
const PAGE_SIZE: usize = 1000;
/// Cloudflare's error codes that change what the client does.
const IDENTICAL_RECORD_EXISTS: u32 = 81058;
const RECORD_DOES_NOT_EXIST: u32 = 81044;
/// Never wait longer than this for one retry, whatever `Retry-After` says: the reconciler retries later anyway.
const MAX_RETRY_WAIT: Duration = Duration::from_secs(60);

#[derive(Clone)]
pub struct CloudflareConfig {
    /// `CLOUDFLARE_API_BASE`, e.g. `https://api.cloudflare.com/client/v4`.
    pub api_base: String,
    /// `CLOUDFLARE_API_TOKEN`: needs Zone DNS edit on the zone.
    pub token: SecretString,
    /// `CLOUDFLARE_ZONE_ID`
    pub zone_id: String,
    /// `DNS_BASE_DOMAIN`: servers are named `<id>.<base>`; it is the zone or a name within it.
    pub base_domain: String,
    /// How long one request may take.
    pub request_timeout: Duration,
    /// Attempts per request when throttled, failing or unreachable.
    pub attempts: u32,
    /// The wait before the first retry (without `Retry-After`); doubled for each further one.
    pub first_retry: Duration,
}

impl std::fmt::Debug for CloudflareConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CloudflareConfig")
            .field("api_base", &self.api_base)
            .field("zone_id", &self.zone_id)
            .field("base_domain", &self.base_domain)
            .finish_non_exhaustive()
    }
}

impl CloudflareConfig {
    pub fn new(api_base: String, token: SecretString, zone_id: String, base_domain: String) -> Self {
        Self {
            api_base: api_base.trim_end_matches('/').to_owned(),
            token,
            zone_id,
            base_domain: base_domain.trim_end_matches('.').to_ascii_lowercase(),
            request_timeout: Duration::from_secs(10),
            attempts: 4,
            first_retry: Duration::from_millis(500),
        }
    }
}

pub struct Cloudflare {
    http: reqwest::Client,
    config: CloudflareConfig,
    /// `spawnpoint:<installation>:`, what every mark of this installation starts with.
    mark: String,
}

/// Why a request failed, before it becomes a message for people.
#[derive(Debug)]
enum Failure {
    Api { status: StatusCode, errors: Vec<ApiMessage> },
    Transport(String),
}

impl Failure {
    fn has_code(&self, code: u32) -> bool {
        matches!(self, Failure::Api { errors, .. } if errors.iter().any(|error| error.code == code))
    }

    /// The record (or whatever the path named) is not there.
    fn is_missing(&self) -> bool {
        matches!(self, Failure::Api { status, .. } if *status == StatusCode::NOT_FOUND)
            || self.has_code(RECORD_DOES_NOT_EXIST)
    }
}

impl From<Failure> for DnsError {
    fn from(failure: Failure) -> Self {
        match failure {
            Failure::Transport(reason) => DnsError(format!("Cloudflare could not be reached: {reason}")),
            Failure::Api { status, errors } if errors.is_empty() => {
                DnsError(format!("Cloudflare answered {}", status.as_u16()))
            }
            Failure::Api { status, errors } => {
                let said: Vec<String> = errors.iter().map(|e| format!("{} ({})", e.message, e.code)).collect();
                DnsError(format!("Cloudflare answered {}: {}", status.as_u16(), said.join("; ")))
            }
        }
    }
}

#[derive(Debug, Deserialize)]
struct ApiMessage {
    code: u32,
    message: String,
}

/// The API's `{success, errors, messages, result}` envelope (`result_info` on lists).
#[derive(Debug, Deserialize)]
struct Envelope {
    success: bool,
    #[serde(default)]
    errors: Vec<ApiMessage>,
    #[serde(default)]
    result: Value,
    result_info: Option<ResultInfo>,
}

#[derive(Debug, Deserialize)]
struct ResultInfo {
    total_pages: Option<usize>,
}

/// A record as the API returns it (the fields this client reads).
#[derive(Debug, Deserialize)]
struct ApiRecord {
    id: String,
    #[serde(rename = "type")]
    kind: String,
    name: String,
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    data: Option<SrvData>,
    #[serde(default)]
    comment: Option<String>,
}

#[derive(Debug, Deserialize)]
struct SrvData {
    priority: Option<u16>,
    weight: Option<u16>,
    port: Option<u16>,
    target: Option<String>,
}

impl ApiRecord {
    /// What it says, for the kinds Spawnpoint makes.
    fn record(&self) -> Option<Record> {
        let value = match self.kind.as_str() {
            "A" => RecordValue::A(self.content.as_deref()?.parse().ok()?),
            "AAAA" => RecordValue::Aaaa(self.content.as_deref()?.parse().ok()?),
            "SRV" => {
                let data = self.data.as_ref()?;
                RecordValue::Srv {
                    priority: data.priority?,
                    weight: data.weight?,
                    port: data.port?,
                    target: data.target.clone()?,
                }
            }
            _ => return None,
        };
        Some(Record { name: self.name.clone(), value })
    }

    /// The server whose mark (after `prefix`, this installation's) it carries.
    fn server_id(&self, prefix: &str) -> Option<&str> {
        self.comment.as_deref()?.strip_prefix(prefix).filter(|id| !id.is_empty())
    }
}

impl Cloudflare {
    /// A client for `config`'s zone, marking records as `installation`'s.
    pub fn new(config: CloudflareConfig, installation: &str) -> Result<Self, DnsError> {
        crate::install_crypto_provider();
        let http = reqwest::Client::builder()
            .timeout(config.request_timeout)
            .build()
            .map_err(|error| DnsError(format!("the HTTP client could not be built: {error}")))?;
        Ok(Self { http, config, mark: format!("{MARK}{installation}:") })
    }

    fn mark(&self, server_id: &str) -> String {
        format!("{}{server_id}", self.mark)
    }

    fn records_url(&self) -> String {
        format!("{}/zones/{}/dns_records", self.config.api_base, self.config.zone_id)
    }

    /// One API call, retried while throttled, failing (5xx) or unanswered; a refusal is returned at once.
    async fn call(
        &self,
        method: Method,
        url: &str,
        query: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Result<Envelope, Failure> {
        let mut attempt = 1;
        loop {
            let mut request =
                self.http.request(method.clone(), url).bearer_auth(self.config.token.expose_secret()).query(query);
            if let Some(body) = body {
                request = request.json(body);
            }
            let (failure, wait) = match request.send().await {
                Ok(response) => {
                    let status = response.status();
                    let retry_after = retry_after(response.headers());
                    let envelope = response.json::<Envelope>().await;
                    match envelope {
                        Ok(envelope) if envelope.success && status.is_success() => return Ok(envelope),
                        Ok(envelope) => (Failure::Api { status, errors: envelope.errors }, retry_after),
                        Err(_) => (Failure::Api { status, errors: Vec::new() }, retry_after),
                    }
                }
                Err(error) => (Failure::Transport(error.without_url().to_string()), None),
            };
            let retryable = match &failure {
                Failure::Api { status, .. } => *status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error(),
                Failure::Transport(_) => true,
            };
            if !retryable || attempt >= self.config.attempts {
                return Err(failure);
            }
            let backoff = self.config.first_retry.saturating_mul(1 << (attempt - 1).min(16));
            let wait = wait.unwrap_or(backoff).min(MAX_RETRY_WAIT);
            tracing::info!(%method, attempt, wait_ms = wait.as_millis() as u64, "Cloudflare asked to wait; retrying");
            tokio::time::sleep(wait).await;
            attempt += 1;
        }
    }

    /// Every record matching `filter`, over all pages.
    async fn list(&self, filter: &[(&str, &str)]) -> Result<Vec<ApiRecord>, Failure> {
        let url = self.records_url();
        let per_page = PAGE_SIZE.to_string();
        let mut records = Vec::new();
        for page in 1.. {
            let page_text = page.to_string();
            let mut query = filter.to_vec();
            query.extend([("per_page", per_page.as_str()), ("page", page_text.as_str())]);
            let envelope = self.call(Method::GET, &url, &query, None).await?;
            let found: Vec<ApiRecord> = serde_json::from_value(envelope.result)
                .map_err(|error| Failure::Transport(format!("an unreadable list of records: {error}")))?;
            let empty = found.is_empty();
            records.extend(found);
            let pages = envelope.result_info.and_then(|info| info.total_pages).unwrap_or(page);
            if empty || page >= pages {
                break;
            }
        }
        Ok(records)
    }

    /// The records carrying server `server_id`'s mark.
    async fn owned_by(&self, server_id: &str) -> Result<Vec<ApiRecord>, Failure> {
        let mark = self.mark(server_id);
        let records = self.list(&[("comment", mark.as_str())]).await?;
        Ok(records.into_iter().filter(|record| self.in_base_domain(&record.name)).collect())
    }

    fn in_base_domain(&self, name: &str) -> bool {
        let name = name.to_ascii_lowercase();
        name.strip_suffix(&self.config.base_domain).is_some_and(|rest| rest.ends_with('.'))
    }

    /// The request body that makes a record `record` of server `server_id`.
    fn body(&self, record: &Record, server_id: &str) -> Value {
        let mut body = match &record.value {
            RecordValue::A(ip) => json!({"type": "A", "content": ip.to_string(), "proxied": false}),
            RecordValue::Aaaa(ip) => json!({"type": "AAAA", "content": ip.to_string(), "proxied": false}),
            RecordValue::Srv { priority, weight, port, target } => json!({
                "type": "SRV",
                "data": {"priority": priority, "weight": weight, "port": port, "target": target},
            }),
        };
        body["name"] = json!(record.name);
        body["ttl"] = json!(TTL);
        body["comment"] = json!(self.mark(server_id));
        body
    }

    /// Creates a record. One that exists already, identical (a create whose answer was lost, say), is looked up
    /// and taken over.
    async fn create(&self, record: &Record, server_id: &str) -> Result<String, Failure> {
        let body = self.body(record, server_id);
        match self.call(Method::POST, &self.records_url(), &[], Some(&body)).await {
            Ok(envelope) => created_id(envelope),
            Err(failure) if failure.has_code(IDENTICAL_RECORD_EXISTS) => {
                let kind = body["type"].as_str().unwrap_or_default().to_owned();
                let same_name = self.list(&[("name", record.name.as_str()), ("type", kind.as_str())]).await?;
                let twin = same_name.into_iter().find(|found| found.record().is_some_and(|r| r.same_as(record)));
                let twin = twin.ok_or(failure)?;
                if twin.server_id(&self.mark) != Some(server_id) {
                    // Marked as ours, so drift repair keeps it and deletion removes it.
                    return self.update(&twin.id, record, server_id).await;
                }
                Ok(twin.id)
            }
            Err(failure) => Err(failure),
        }
    }

    /// Overwrites record `id` with `record`.
    async fn update(&self, id: &str, record: &Record, server_id: &str) -> Result<String, Failure> {
        let url = format!("{}/{id}", self.records_url());
        self.call(Method::PUT, &url, &[], Some(&self.body(record, server_id))).await.and_then(created_id)
    }

    async fn delete_record(&self, id: &str) -> Result<(), Failure> {
        let url = format!("{}/{id}", self.records_url());
        match self.call(Method::DELETE, &url, &[], None).await {
            Ok(_) => Ok(()),
            Err(failure) if failure.is_missing() => Ok(()),
            Err(failure) => Err(failure),
        }
    }

    async fn publish_records(
        &self,
        records: &ServerRecords,
        known: &RecordIds,
        thorough: bool,
    ) -> Result<RecordIds, Failure> {
        let server_id = records.server_id.as_str();
        let mut present = if thorough { self.owned_by(server_id).await? } else { Vec::new() };
        let mut ids = RecordIds::default();
        for wanted in records.wanted() {
            let slot = wanted.slot();
            // What to update: an owned record that is already right, else the one stored, else any in its slot.
            let in_slot = |found: &ApiRecord| found.record().is_some_and(|r| r.slot() == slot);
            let pick = present
                .iter()
                .position(|found| found.record().is_some_and(|r| r.same_as(&wanted)))
                .map(|at| (at, true))
                .or_else(|| {
                    present.iter().position(|found| Some(found.id.as_str()) == known.get(slot)).map(|at| (at, false))
                })
                .or_else(|| present.iter().position(in_slot).map(|at| (at, false)));
            let existing = match pick {
                Some((at, right)) => Some((present.swap_remove(at).id, right)),
                None if !thorough => known.get(slot).map(|id| (id.to_owned(), false)),
                None => None,
            };
            let id = match existing {
                Some((id, true)) => id,
                Some((id, false)) => match self.update(&id, &wanted, server_id).await {
                    Err(failure) if failure.is_missing() => self.create(&wanted, server_id).await?,
                    updated => updated?,
                },
                None => self.create(&wanted, server_id).await?,
            };
            ids.set(slot, id);
        }
        // What is left of what was there: strays and duplicates.
        for stray in present {
            self.delete_record(&stray.id).await?;
        }
        Ok(ids)
    }
}

impl Dns for Cloudflare {
    fn hostname(&self, server_id: &str) -> String {
        format!("{server_id}.{}", self.config.base_domain)
    }

    fn publish<'a>(
        &'a self,
        records: &'a ServerRecords,
        known: &'a RecordIds,
        thorough: bool,
    ) -> BoxFuture<'a, Result<RecordIds, DnsError>> {
        Box::pin(async move { Ok(self.publish_records(records, known, thorough).await?) })
    }

    fn remove<'a>(&'a self, server_id: &'a str, known: &'a RecordIds) -> BoxFuture<'a, Result<(), DnsError>> {
        Box::pin(async move {
            let owned = self.owned_by(server_id).await?;
            let mut ids: Vec<&str> = known.all().collect();
            ids.extend(owned.iter().map(|record| record.id.as_str()).filter(|id| !known.all().any(|k| k == *id)));
            for id in ids {
                self.delete_record(id).await?;
            }
            Ok(())
        })
    }

    fn owned(&self) -> BoxFuture<'_, Result<Vec<OwnedRecord>, DnsError>> {
        Box::pin(async move {
            let found = self.list(&[("comment.startswith", self.mark.as_str())]).await?;
            Ok(found
                .into_iter()
                .filter(|record| self.in_base_domain(&record.name))
                .filter_map(|record| {
                    let server_id = record.server_id(&self.mark)?.to_owned();
                    Some(OwnedRecord { record: record.record(), id: record.id, server_id })
                })
                .collect())
        })
    }

    fn delete<'a>(&'a self, record_id: &'a str) -> BoxFuture<'a, Result<(), DnsError>> {
        Box::pin(async move { Ok(self.delete_record(record_id).await?) })
    }
}

fn created_id(envelope: Envelope) -> Result<String, Failure> {
    envelope.result["id"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| Failure::Transport("Cloudflare answered without a record id".into()))
}

/// `Retry-After` in seconds (the form Cloudflare sends).
fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let seconds = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?.trim().parse::<u64>().ok()?;
    Some(Duration::from_secs(seconds))
}
