//! A fake of the download services Spawnpoint's install steps use, on loopback, in their published shapes:
//! PaperMC's downloads API v3 (`GET /v3/projects/{project}/versions/{version}/builds`: a JSON array of builds,
//! newest first, each with `id`, `time`, `channel`, `commits` and `downloads."server:default"` holding `name`,
//! `checksums.sha256`, `size` and `url`; an unknown version answers 404 `{"ok": false, "error":
//! "version_not_found", …}`) and Mojang's launcher metadata (`version_manifest_v2.json` → a version's JSON →
//! `downloads.server.{sha1,size,url}` and `javaVersion.majorVersion`).
//!
//! Files are whatever the test publishes, so a test can serve a real jar, or a file whose checksum is wrong.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};
use sha2::Digest as _;

/// A build as the fake publishes it.
#[derive(Clone)]
struct Build {
    id: u64,
    channel: &'static str,
    file: String,
    /// What the listing claims the file's SHA-256 is (the real one unless a test lies).
    sha256: String,
}

#[derive(Default)]
struct Published {
    files: HashMap<String, Vec<u8>>,
    /// Files served in small pieces with pauses, so a download takes a while (its progress can be watched).
    slow: std::collections::HashSet<String>,
    /// `(project, version)` → builds, newest first.
    paper: HashMap<(String, String), Vec<Build>>,
    /// Minecraft version → (server jar file, its claimed SHA-1, the Java it needs).
    mojang: Vec<(String, String, String, u32)>,
    requests: Vec<String>,
}

pub struct FakeDownloads {
    state: Arc<Mutex<Published>>,
    base: String,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for FakeDownloads {
    fn drop(&mut self) {
        self.server.abort();
    }
}

type Shared = Arc<Mutex<Published>>;

impl FakeDownloads {
    pub async fn start() -> Self {
        let state: Shared = Arc::default();
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .unwrap_or_else(|error| panic!("the downloads fake cannot bind a port: {error}"));
        let base = format!("http://{}", listener.local_addr().map(|a| a.to_string()).unwrap_or_default());
        let router = Router::new()
            .route("/v3/projects/{project}/versions/{version}/builds", get(paper_builds))
            .route("/mojang/version_manifest_v2.json", get(manifest))
            .route("/mojang/v1/packages/{version}", get(version_json))
            .route("/files/{name}", get(file))
            .with_state(state.clone());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Self { state, base, server }
    }

    /// What `SPAWNPOINT_PAPER_API` is set to.
    pub fn paper_api(&self) -> String {
        self.base.clone()
    }

    /// What `SPAWNPOINT_MOJANG_MANIFEST` is set to.
    pub fn mojang_manifest(&self) -> String {
        format!("{}/mojang/version_manifest_v2.json", self.base)
    }

    /// Serves `bytes` at `/files/{name}`.
    pub fn publish_file(&self, name: &str, bytes: Vec<u8>) {
        self.lock().files.insert(name.to_owned(), bytes);
    }

    /// Serves `bytes` at `/files/{name}` at about 320 KB/s, in 16 KiB pieces.
    pub fn publish_file_slowly(&self, name: &str, bytes: Vec<u8>) {
        let mut state = self.lock();
        state.files.insert(name.to_owned(), bytes);
        state.slow.insert(name.to_owned());
    }

    /// Adds a Paper build of `version` serving file `name` (published before), newest first. With `lie`, the
    /// listing gives a wrong SHA-256.
    pub fn paper_build(&self, version: &str, id: u64, channel: &'static str, name: &str, lie: bool) {
        let mut state = self.lock();
        let sha256 = if lie { "0".repeat(64) } else { hex(&sha2::Sha256::digest(&state.files[name])) };
        let build = Build { id, channel, file: name.to_owned(), sha256 };
        let builds = state.paper.entry(("paper".to_owned(), version.to_owned())).or_default();
        builds.insert(0, build);
    }

    /// Lists Minecraft `version` in the manifest, its server jar being file `name`, needing `java`.
    pub fn mojang_version(&self, version: &str, name: &str, java: u32) {
        let mut state = self.lock();
        let sha1 = hex(&sha1::Sha1::digest(&state.files[name]));
        state.mojang.push((version.to_owned(), name.to_owned(), sha1, java));
    }

    /// Paths asked for, in order.
    pub fn requests(&self) -> Vec<String> {
        self.lock().requests.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Published> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn lock(state: &Shared, request: String) -> std::sync::MutexGuard<'_, Published> {
    let mut state = state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    state.requests.push(request);
    state
}

async fn paper_builds(
    State(state): State<Shared>,
    Path((project, version)): Path<(String, String)>,
    headers: axum::http::HeaderMap,
) -> Response {
    let base = origin(&headers);
    let state = lock(&state, format!("/v3/projects/{project}/versions/{version}/builds"));
    let Some(builds) = state.paper.get(&(project.clone(), version.clone())) else {
        let body = json!({ "ok": false, "error": "version_not_found", "message": "No version was found with the given identifier." });
        return (StatusCode::NOT_FOUND, Json(body)).into_response();
    };
    let listed: Vec<Value> = builds
        .iter()
        .map(|build| {
            let size = state.files.get(&build.file).map_or(0, Vec::len);
            json!({
                "id": build.id,
                "time": "2024-04-01T12:00:00Z",
                "channel": build.channel,
                "commits": [{ "sha": "0".repeat(40), "time": "2024-04-01T11:50:00Z", "message": "A change" }],
                "downloads": { "server:default": {
                    "name": format!("{project}-{version}-{}.jar", build.id),
                    "checksums": { "sha256": build.sha256 },
                    "size": size,
                    "url": format!("{base}/files/{}", build.file),
                }},
            })
        })
        .collect();
    Json(Value::Array(listed)).into_response()
}

async fn manifest(State(state): State<Shared>, headers: axum::http::HeaderMap) -> Json<Value> {
    let state = lock(&state, "/mojang/version_manifest_v2.json".to_owned());
    let base = origin(&headers);
    let versions: Vec<Value> = state
        .mojang
        .iter()
        .map(|(version, _, _, _)| {
            json!({
                "id": version, "type": "release",
                "url": format!("{base}/mojang/v1/packages/{version}"),
                "time": "2024-04-01T12:00:00+00:00", "releaseTime": "2024-04-01T12:00:00+00:00",
                "sha1": "0".repeat(40), "complianceLevel": 1,
            })
        })
        .collect();
    let latest = state.mojang.last().map(|(version, ..)| version.clone()).unwrap_or_default();
    Json(json!({ "latest": { "release": latest, "snapshot": latest }, "versions": versions }))
}

async fn version_json(
    State(state): State<Shared>,
    Path(version): Path<String>,
    headers: axum::http::HeaderMap,
) -> Response {
    let state = lock(&state, format!("/mojang/v1/packages/{version}"));
    let base = origin(&headers);
    match state.mojang.iter().find(|(listed, ..)| *listed == version) {
        Some((_, file, sha1, java)) => {
            let size = state.files.get(file).map_or(0, Vec::len);
            Json(json!({
                "id": version, "type": "release",
                "downloads": { "server": { "sha1": sha1, "size": size, "url": format!("{base}/files/{file}") } },
                "javaVersion": { "component": "java-runtime-gamma", "majorVersion": java },
            }))
            .into_response()
        }
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn file(State(state): State<Shared>, Path(name): Path<String>) -> Response {
    let state = lock(&state, format!("/files/{name}"));
    let Some(bytes) = state.files.get(&name).cloned() else { return StatusCode::NOT_FOUND.into_response() };
    if !state.slow.contains(&name) {
        return bytes.into_response();
    }
    let length = bytes.len();
    let pieces = futures_util::stream::unfold((bytes, 0), |(bytes, at)| async move {
        if at >= bytes.len() {
            return None;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let end = (at + 16 * 1024).min(bytes.len());
        let piece = axum::body::Bytes::copy_from_slice(&bytes[at..end]);
        Some((Ok::<_, std::io::Error>(piece), (bytes, end)))
    });
    ([(axum::http::header::CONTENT_LENGTH, length.to_string())], axum::body::Body::from_stream(pieces)).into_response()
}

/// `http://<host>` of the request, for absolute URLs in what the fake answers.
fn origin(headers: &axum::http::HeaderMap) -> String {
    let host = headers.get("host").and_then(|h| h.to_str().ok()).unwrap_or("127.0.0.1");
    format!("http://{host}")
}
