//! Spawns Spawnpoint on port 0 with a fresh database, SQLite or PostgreSQL.
//!
//! PostgreSQL: each test gets its own database on the server named by `SPAWNPOINT_TEST_POSTGRES`
//! (default `postgres://postgres@127.0.0.1:5432/postgres`), dropped when the test ends.

use std::sync::Arc;

use k8s_sim::{SimConfig, SimImage, SimNode, Simulator};
use secrecy::SecretString;
use server::Application;
use server::config::{Driver, Settings};
use server::db::Db;
use server::reconciler::Reconciler;
use sqlx::Connection as _;

#[derive(Debug, Clone, Copy)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Runs an `async fn(Backend)` test once per database engine: `both_databases!(name);` makes
/// `name::sqlite` and `name::postgres`.
#[macro_export]
macro_rules! both_databases {
    ($($test:ident),+ $(,)?) => {$(
        mod $test {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$test($crate::helpers::Backend::Sqlite).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$test($crate::helpers::Backend::Postgres).await
            }
        }
    )+};
}

/// Where the app under test runs its game servers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TestDriver {
    /// Local processes on this machine.
    Local,
    /// Agones on the Kubernetes API simulator, whose kubelet runs the catalog's games as local processes.
    Agones,
}

/// Runs an `async fn(Backend, TestDriver)` test on each database engine with each driver:
/// `every_driver!(name);` makes `name::local_sqlite`, `name::local_postgres`, `name::agones_sqlite` and
/// `name::agones_postgres`.
#[macro_export]
macro_rules! every_driver {
    ($($test:ident),+ $(,)?) => {$(
        mod $test {
            use $crate::helpers::{Backend, TestDriver};
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn local_sqlite() {
                super::$test(Backend::Sqlite, TestDriver::Local).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn local_postgres() {
                super::$test(Backend::Postgres, TestDriver::Local).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn agones_sqlite() {
                super::$test(Backend::Sqlite, TestDriver::Agones).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn agones_postgres() {
                super::$test(Backend::Postgres, TestDriver::Agones).await
            }
        }
    )+};
}

pub struct TestApp {
    /// `http://127.0.0.1:<port>`
    pub address: String,
    pub client: reqwest::Client,
    pub db: Db,
    pub database: Arc<TestDatabase>,
    data_dir: Arc<tempfile::TempDir>,
    /// The simulated cluster, when the app runs game servers with the `agones` driver.
    pub cluster: Option<Arc<Simulator>>,
    /// The app's reconciler, when it runs in this process.
    reconciler: Option<Arc<Reconciler>>,
    /// Where its SFTP listens.
    pub sftp: Option<std::net::SocketAddr>,
}

impl TestApp {
    /// Waits for a full reconciler pass that starts now, and every server pass it asks for: what a test waits
    /// for before asserting that the reconciler left something alone.
    pub async fn reconciled(&self) {
        self.reconciler().reconciled().await;
    }

    /// Waits for a pass over server `id` that starts now (even one in a steady state, which a full pass skips).
    pub async fn reconciled_server(&self, id: &str) {
        let reconciler = self.reconciler();
        reconciler.schedule(&catalog::ServerId::from(id));
        reconciler.settled().await;
    }

    fn reconciler(&self) -> &Arc<Reconciler> {
        self.reconciler.as_ref().expect("the app runs in this process")
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.expect("request sent")
    }

    pub fn data_dir(&self) -> &std::path::Path {
        self.data_dir.path()
    }

    /// The pid of the process running server `id`'s game, while it runs: what its supervisor wrote in
    /// `game.pid`, or the process the simulated kubelet runs for its pod.
    pub fn game_pid(&self, id: &str) -> Option<String> {
        match &self.cluster {
            Some(cluster) => cluster.pod_pid(NAMESPACE, id).map(|pid| pid.to_string()),
            None => {
                let text = std::fs::read_to_string(self.data_dir().join("servers").join(id).join("game.pid")).ok()?;
                Some(text.trim().to_owned()).filter(|pid| crate::helpers::alive(pid))
            }
        }
    }

    /// Where server `id`'s game keeps its files (its working directory): the local driver's data directory, or
    /// the volume of its claim.
    pub fn game_data(&self, id: &str) -> std::path::PathBuf {
        match &self.cluster {
            Some(cluster) => cluster.volume(NAMESPACE, &format!("{id}-data")).expect("the cluster has volumes"),
            None => self.data_dir().join("servers").join(id).join("data"),
        }
    }

    /// A client that behaves like the app's own pages in a browser: it keeps cookies and sends the app's
    /// origin on every request.
    pub fn browser(&self) -> reqwest::Client {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(reqwest::header::ORIGIN, self.address.parse().expect("origin"));
        http().cookie_store(true).default_headers(headers).timeout(REQUEST_TIMEOUT).build().expect("client")
    }

    /// `POST path` with a JSON body from a plain API client (no cookies, no Origin).
    pub async fn post_json(&self, path: &str, body: &serde_json::Value) -> reqwest::Response {
        self.client.post(self.url(path)).json(body).send().await.expect("request sent")
    }

    pub async fn register(&self, email: &str, password: &str) -> reqwest::Response {
        self.post_json("/auth/register", &serde_json::json!({ "email": email, "password": password })).await
    }

    /// Registers and signs in; returns the bearer token.
    pub async fn signed_up(&self, email: &str) -> String {
        assert_eq!(self.register(email, PASSWORD).await.status(), 201, "registering {email}");
        self.login_token(email).await
    }

    /// Signs `email` up and makes it an administrator, as `spawnpoint admin create` would; returns its token.
    pub async fn admin(&self, email: &str) -> String {
        let token = self.signed_up(email).await;
        sqlx::query("UPDATE users SET role = 'admin' WHERE email = $1")
            .bind(email.to_owned())
            .execute(self.db.pool())
            .await
            .expect("promote");
        token
    }

    pub async fn login_token(&self, email: &str) -> String {
        let response =
            self.post_json("/auth/login", &serde_json::json!({ "email": email, "password": PASSWORD })).await;
        assert_eq!(response.status(), 200, "signing in {email}");
        let body: serde_json::Value = response.json().await.expect("json");
        body["token"].as_str().expect("token").to_owned()
    }

    /// `GET path` with a bearer token.
    pub async fn get_as(&self, token: &str, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).bearer_auth(token).send().await.expect("request sent")
    }

    /// `POST /api/servers` as the holder of `token`.
    pub async fn create_server(&self, token: &str, body: serde_json::Value) -> reqwest::Response {
        self.client.post(self.url("/api/servers")).bearer_auth(token).json(&body).send().await.expect("sent")
    }

    /// Creates a server that must be accepted; returns its id.
    pub async fn created(&self, token: &str, game: &str, plan: &str) -> String {
        // The licence accepted, as the create form asks of games that have one.
        let body = serde_json::json!({ "name": "test", "game": game, "plan": plan, "accept_eula": true });
        let response = self.create_server(token, body);
        let response = response.await;
        assert_eq!(response.status(), 201, "creating a {game} server");
        let server: serde_json::Value = response.json().await.expect("json");
        server["id"].as_str().expect("id").to_owned()
    }

    /// A user action: `start`, `stop`, `restart` or `delete`.
    pub async fn act(&self, token: &str, id: &str, action: &str) -> reqwest::Response {
        let request = if action == "delete" {
            self.client.delete(self.url(&format!("/api/servers/{id}")))
        } else {
            self.client.post(self.url(&format!("/api/servers/{id}/{action}")))
        };
        request.bearer_auth(token).send().await.expect("sent")
    }

    /// Polls `GET /api/servers/{id}` until `until` holds for it; panics with the last answer after a while.
    pub async fn wait_for(
        &self,
        token: &str,
        id: &str,
        what: &str,
        until: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let mut last = serde_json::Value::Null;
        for _ in 0..300 {
            let response = self.get_as(token, &format!("/api/servers/{id}")).await;
            last =
                if response.status() == 404 { serde_json::Value::Null } else { response.json().await.expect("json") };
            if until(&last) {
                return last;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("server {id} never became {what}; last seen: {last}");
    }

    /// The last 500 lines of server `id`'s output (`GET /api/servers/{id}/logs`).
    pub async fn log_lines(&self, token: &str, id: &str) -> Vec<String> {
        let response = self.get_as(token, &format!("/api/servers/{id}/logs?tail=500")).await;
        assert_eq!(response.status(), 200);
        let body: serde_json::Value = response.json().await.expect("json");
        body["lines"].as_array().into_iter().flatten().filter_map(|l| l.as_str().map(str::to_owned)).collect()
    }

    /// Waits (up to 30 s) for a line containing `text` in server `id`'s output; whether one came.
    pub async fn log_shows(&self, token: &str, id: &str, text: &str) -> bool {
        for _ in 0..300 {
            if self.log_lines(token, id).await.iter().any(|line| line.contains(text)) {
                return true;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        false
    }

    /// Waits until the server runs; returns it.
    pub async fn running(&self, token: &str, id: &str) -> serde_json::Value {
        self.wait_for(token, id, "running", |server| server["status"] == "running").await
    }

    /// `GET /api/servers/events` as the holder of `token`, read event by event.
    pub async fn events(&self, token: &str, query: &str) -> EventStream {
        let response = self
            .client
            .get(self.url(&format!("/api/servers/events{query}")))
            .bearer_auth(token)
            .timeout(std::time::Duration::from_secs(600))
            .send()
            .await
            .expect("sent");
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        EventStream { response, buffer: String::new() }
    }

    pub async fn count(&self, table: &str) -> i64 {
        count(&self.db, table).await
    }

    /// This installation's id, as its database holds it.
    pub async fn installation(&self) -> String {
        self.db.installation().await.expect("the installation id")
    }
}

/// Server-sent events as they arrive: each `data:` payload parsed as JSON.
pub struct EventStream {
    response: reqwest::Response,
    buffer: String,
}

impl EventStream {
    /// The next event, or `None` if none comes within `wait`.
    pub async fn next(&mut self, wait: std::time::Duration) -> Option<serde_json::Value> {
        tokio::time::timeout(wait, async {
            loop {
                if let Some(end) = self.buffer.find("\n\n") {
                    let event: String = self.buffer.drain(..end + 2).collect();
                    let data: String =
                        event.lines().filter_map(|line| line.strip_prefix("data:")).map(str::trim_start).collect();
                    if data.is_empty() {
                        continue; // a keep-alive comment
                    }
                    return serde_json::from_str(&data).expect("event data is JSON");
                }
                let chunk = self.response.chunk().await.expect("stream readable").expect("stream still open");
                self.buffer.push_str(&String::from_utf8_lossy(&chunk));
            }
        })
        .await
        .ok()
    }

    /// Whether the server ends the stream within `wait` (events before the end are read and dropped).
    pub async fn ends_within(&mut self, wait: std::time::Duration) -> bool {
        let ended = async { while let Ok(Some(_)) = self.response.chunk().await {} };
        tokio::time::timeout(wait, ended).await.is_ok()
    }

    /// Reads events until one about server `id` satisfies `until`; returns every event about `id` seen.
    pub async fn until(&mut self, id: &str, until: impl Fn(&serde_json::Value) -> bool) -> Vec<serde_json::Value> {
        let mut seen = Vec::new();
        loop {
            let event = self.next(std::time::Duration::from_secs(20)).await;
            let event = event.unwrap_or_else(|| panic!("no awaited event about {id}; saw {seen:#?}"));
            let about = event["server"]["id"] == id || event["id"] == id;
            if about {
                let done = until(&event);
                seen.push(event);
                if done {
                    return seen;
                }
            }
        }
    }
}

/// Whether `pid` is a live process. A killed orphan can linger as a zombie until something reaps it (this
/// container's init does not); it runs nothing, so it counts as gone.
pub fn alive(pid: &str) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|stat| stat.rsplit_once(") ").is_some_and(|(_, rest)| !rest.starts_with('Z')))
        .unwrap_or(false)
}

/// Polls `check` for up to 10 s; panics with `what` if it never holds.
pub async fn eventually(what: &str, check: impl Fn() -> bool) {
    for _ in 0..200 {
        if check() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("{what}");
}

/// Page-rendering tests take turns. Leptos keeps some rendering state process-wide, and with several apps
/// rendering at once in one test process (never the case in production, one app per process) a render has
/// been seen to stall now and then; one app under concurrent page load does not (checked with 400 concurrent
/// requests against the binary).
pub async fn one_page_test_at_a_time() -> tokio::sync::MutexGuard<'static, ()> {
    static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    TURN.lock().await
}

/// The tests that run real third-party games (a JVM and Node.js each) take turns: two cores shared with every
/// other test, several at once have slowed everything else past its timeouts.
pub async fn one_real_game_at_a_time() -> tokio::sync::MutexGuard<'static, ()> {
    static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    TURN.lock().await
}

/// Each app under test gets game ports of its own, so apps running side by side never race for one.
pub fn port_block() -> std::ops::RangeInclusive<u16> {
    static NEXT: std::sync::atomic::AtomicU16 = std::sync::atomic::AtomicU16::new(0);
    let block = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let first = 25_000 + (block % 240) * 20;
    first..=first + 19
}

/// A catalog file with the demo game and shell-script games, for tests that need games that misbehave.
/// Each entry of `shell_games` is `(id, script)`; the script says `ready now` when players may join.
pub fn catalog_with(dir: &std::path::Path, shell_games: &[(&str, &str)]) -> std::path::PathBuf {
    let builtin = include_str!("../../../catalog/games.yaml");
    let demo = &builtin[builtin.find("  - id: demo").expect("the demo game is in the catalog")..];
    let mut yaml = format!("games:\n{demo}");
    for (id, script) in shell_games {
        yaml.push_str(&format!(
            "  - id: {id}\n    name: {id}\n    image: test/{id}\n    port: {{ port: 1, protocol: TCP }}\n    stop_command: stop\n    local: {{ command: sh, args: [\"-c\", {script:?}], ready_line: ready now }}\n    plans: [{{ id: p, name: P, players: {{ min: 1, max: 1 }}, cpu: 100m, memory: 64Mi, storage: 1Gi, price_cents: 1 }}]\n"
        ));
    }
    let path = dir.join("games.yaml");
    std::fs::write(&path, yaml).expect("catalog written");
    path
}

pub async fn count(db: &Db, table: &str) -> i64 {
    use sqlx::Row as _;
    sqlx::query(sqlx::AssertSqlSafe(format!("SELECT COUNT(*) AS n FROM {table}")))
        .fetch_one(db.pool())
        .await
        .and_then(|row| row.try_get::<i64, _>("n"))
        .expect("count")
}

/// A migrated database with no Spawnpoint running on it (so no reconciler acts on rows a test writes).
pub struct TestDb {
    pub db: Db,
    _database: TestDatabase,
    _dir: tempfile::TempDir,
}

impl TestDb {
    pub async fn new(backend: Backend) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let database = TestDatabase::create(backend, dir.path()).await;
        let db = Db::connect(&SecretString::from(database.url.clone())).await.expect("connect");
        db.migrate().await.expect("migrate");
        Self { db, _database: database, _dir: dir }
    }

    pub async fn count(&self, table: &str) -> i64 {
        count(&self.db, table).await
    }
}

/// A reqwest client builder for tests: the process's crypto provider installed first, as the binary does at
/// start (reqwest has none of its own in this workspace).
pub fn http() -> reqwest::ClientBuilder {
    server::install_crypto_provider();
    reqwest::Client::builder()
}

const REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// A password that satisfies the rules.
pub const PASSWORD: &str = "correct horse battery";

/// A database that exists for one test.
pub struct TestDatabase {
    pub url: String,
    /// PostgreSQL only: (admin URL, database name) to drop it afterwards.
    postgres: Option<(String, String)>,
}

impl TestDatabase {
    pub async fn create(backend: Backend, data_dir: &std::path::Path) -> Self {
        match backend {
            Backend::Sqlite => Self { url: format!("sqlite://{}/spawnpoint.db", data_dir.display()), postgres: None },
            Backend::Postgres => {
                let admin = postgres_admin_url();
                let name = format!("spawnpoint_test_{}", uuid::Uuid::new_v4().simple());
                let mut conn = admin_connection(&admin).await;
                sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                    .execute(&mut conn)
                    .await
                    .expect("create test database");
                let base = admin.rsplit_once('/').map(|(base, _)| base).unwrap_or(&admin);
                Self { url: format!("{base}/{name}"), postgres: Some((admin, name)) }
            }
        }
    }

    /// Drops a PostgreSQL test database now, as if the server had lost it.
    pub async fn drop_now(&self) {
        if let Some((admin, name)) = &self.postgres {
            drop_database(admin, name).await;
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let Some((admin, name)) = self.postgres.take() else { return };
        // Drop runs inside the test's runtime, which cannot be blocked on; a short-lived one of our own can.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            runtime.block_on(drop_database(&admin, &name));
        })
        .join();
    }
}

/// `WITH (FORCE)`: the app under test may still hold connections.
async fn drop_database(admin: &str, name: &str) {
    let mut conn = admin_connection(admin).await;
    sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")))
        .execute(&mut conn)
        .await
        .expect("drop test database");
}

fn postgres_admin_url() -> String {
    std::env::var("SPAWNPOINT_TEST_POSTGRES").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

async fn admin_connection(url: &str) -> sqlx::AnyConnection {
    sqlx::any::install_default_drivers();
    sqlx::AnyConnection::connect(url).await.unwrap_or_else(|error| {
        panic!(
            "PostgreSQL is needed for the database tests and was not reachable at {url} ({error}). \
             scripts/test.sh starts one; or point SPAWNPOINT_TEST_POSTGRES at a server."
        )
    })
}

/// Settings as an operator would give them, on port 0 with a fresh data directory and database.
pub async fn spawn_app(backend: Backend) -> TestApp {
    spawn_app_with(backend, |_| {}).await
}

pub async fn spawn_app_with(backend: Backend, adjust: impl FnOnce(&mut Settings)) -> TestApp {
    spawn_app_on(backend, TestDriver::Local, adjust).await
}

/// As [`spawn_app_with`], running game servers with `driver`; with `agones`, on a simulated cluster of its own.
pub async fn spawn_app_on(backend: Backend, driver: TestDriver, adjust: impl FnOnce(&mut Settings)) -> TestApp {
    let data_dir = tempfile::tempdir().expect("temp dir");
    let (settings, database) = test_settings(backend, data_dir.path(), adjust).await;
    let cluster = match driver {
        TestDriver::Local => None,
        TestDriver::Agones => Some(Arc::new(cluster_running(&settings, data_dir.path()).await)),
    };
    start_app(settings, database, data_dir, cluster).await
}

/// Another Spawnpoint, with a fresh database and data directory, on the simulated cluster of `other`: a second
/// installation, or the same one started against the wrong database.
pub async fn spawn_app_beside(backend: Backend, other: &TestApp) -> TestApp {
    let data_dir = tempfile::tempdir().expect("temp dir");
    let (settings, database) = test_settings(backend, data_dir.path(), |_| {}).await;
    start_app(settings, database, data_dir, other.cluster.clone()).await
}

async fn test_settings(
    backend: Backend,
    data_dir: &std::path::Path,
    adjust: impl FnOnce(&mut Settings),
) -> (Settings, TestDatabase) {
    let database = TestDatabase::create(backend, data_dir).await;
    let mut settings = Settings::from_lookup(|_| None).expect("defaults");
    settings.http.addr = "127.0.0.1:0".parse().expect("address");
    settings.data_dir = data_dir.to_owned();
    settings.database_url = SecretString::from(database.url.clone());
    settings.local.ports = port_block();
    settings.local.stop_grace = std::time::Duration::from_secs(3);
    settings.sftp.addr = Some("127.0.0.1:0".parse().expect("address"));
    adjust(&mut settings);
    (settings, database)
}

async fn start_app(
    mut settings: Settings,
    database: TestDatabase,
    data_dir: tempfile::TempDir,
    cluster: Option<Arc<Simulator>>,
) -> TestApp {
    if let Some(cluster) = &cluster {
        settings.driver = Driver::Agones;
        settings.agones.kube_api = Some(cluster.url().to_owned());
    }

    let app = Application::build(&settings).await.expect("the app starts");
    let address = format!("http://{}", app.local_addr().expect("bound"));
    let db = app.state().db.clone();
    let reconciler = Some(app.reconciler());
    let sftp = app.sftp_addr();
    tokio::spawn(app.serve());
    // A bounded wait: a request that hangs fails its test instead of stalling the whole run.
    let client = http().timeout(REQUEST_TIMEOUT).build().expect("client");
    let (database, data_dir) = (Arc::new(database), Arc::new(data_dir));
    TestApp { address, client, db, database, data_dir, cluster, reconciler, sftp }
}

/// The namespace Spawnpoint's game servers live in on the simulated cluster (the driver's default).
pub const NAMESPACE: &str = "gameservers";

/// A simulated cluster whose kubelet runs the catalog's ready-to-run games as the single box would (their
/// `local` command for their image), with volumes under `dir`. Its three nodes have loopback addresses of their own
/// (`127.<n>.0.1-3`), so games on different nodes, and of clusters side by side, can share host ports.
pub async fn cluster_running(settings: &Settings, dir: &std::path::Path) -> Simulator {
    static NEXT: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(0);
    let block = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % 250 + 1;
    let catalog = settings.load_catalog().expect("the catalog");
    let images = catalog
        .games()
        .iter()
        .filter_map(|game| {
            // Games the single box installs by steps come installed in their images on a real cluster; here
            // there is no such image, and the simulator plays those containers without a process.
            let local = game.local.as_ref().filter(|local| local.install.is_empty())?;
            let image = SimImage {
                program: server::orchestrator::local::resolve_command(&local.command),
                args: local.args.clone(),
                ready_line: local.ready_line.clone(),
            };
            Some((game.image.clone(), image))
        })
        .collect();
    Simulator::start(SimConfig {
        nodes: SimNode::numbered(3, |n| format!("127.{block}.0.{n}")),
        ready_after: std::time::Duration::from_millis(100),
        images,
        volumes: Some(dir.join("cluster-volumes")),
        termination_grace: settings.local.stop_grace,
        ..SimConfig::default()
    })
    .await
}

impl TestApp {
    /// A `TestApp` for a Spawnpoint running elsewhere (the binary, started by the test) on `database`.
    pub async fn attach(
        address: &str,
        database: Arc<TestDatabase>,
        data_dir: Arc<tempfile::TempDir>,
        cluster: Option<Arc<Simulator>>,
    ) -> TestApp {
        let db = Db::connect(&SecretString::from(database.url.clone())).await.expect("the test database");
        let client = http().timeout(REQUEST_TIMEOUT).build().expect("client");
        TestApp { address: address.to_owned(), client, db, database, data_dir, cluster, reconciler: None, sftp: None }
    }
}

/// The real `spawnpoint` binary on a test's data directory and database (and, for `agones`, a simulated cluster
/// that outlives it), so it can be killed as an operator's machine might kill it. Each `start` is a new process
/// on the same state.
pub struct Binary {
    dir: Arc<tempfile::TempDir>,
    database: Arc<TestDatabase>,
    ports: std::ops::RangeInclusive<u16>,
    cluster: Option<Arc<Simulator>>,
}

impl Binary {
    /// Uses `dir/games.yaml` as the catalog when the test wrote one.
    pub async fn new(driver: TestDriver, dir: Arc<tempfile::TempDir>, database: Arc<TestDatabase>) -> Self {
        let mut settings = Settings::from_lookup(|_| None).expect("defaults");
        settings.catalog_path = Some(dir.path().join("games.yaml")).filter(|path| path.exists());
        settings.local.stop_grace = std::time::Duration::from_secs(2);
        let cluster = match driver {
            TestDriver::Local => None,
            TestDriver::Agones => Some(Arc::new(cluster_running(&settings, dir.path()).await)),
        };
        Self { dir, database, ports: port_block(), cluster }
    }

    /// A binary on a data directory and database of its own, fresh.
    pub async fn fresh(backend: Backend, driver: TestDriver) -> Self {
        let dir = Arc::new(tempfile::tempdir().expect("temp dir"));
        let database = Arc::new(TestDatabase::create(backend, dir.path()).await);
        Self::new(driver, dir, database).await
    }

    pub fn start(&self) -> RunningBinary {
        let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("free port").port();
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_spawnpoint"));
        command
            .env_clear()
            .env("SPAWNPOINT_ADDR", format!("127.0.0.1:{port}"))
            .env("SPAWNPOINT_SFTP_ADDR", "127.0.0.1:0")
            .env("SPAWNPOINT_DATA_DIR", self.dir.path())
            .env("DATABASE_URL", &self.database.url)
            .env("SPAWNPOINT_GAME_PORTS", format!("{}-{}", self.ports.start(), self.ports.end()))
            .env("SPAWNPOINT_STOP_GRACE", "2")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        let catalog = self.dir.path().join("games.yaml");
        if catalog.exists() {
            command.env("SPAWNPOINT_CATALOG", catalog);
        }
        if let Some(cluster) = &self.cluster {
            command.env("SPAWNPOINT_DRIVER", "agones").env("SPAWNPOINT_KUBE_API", cluster.url());
        }
        RunningBinary {
            child: command.spawn().expect("spawnpoint starts"),
            address: format!("http://127.0.0.1:{port}"),
            dir: self.dir.clone(),
            database: self.database.clone(),
            cluster: self.cluster.clone(),
        }
    }

    pub fn cluster(&self) -> Option<&Simulator> {
        self.cluster.as_deref()
    }
}

pub struct RunningBinary {
    child: std::process::Child,
    address: String,
    dir: Arc<tempfile::TempDir>,
    database: Arc<TestDatabase>,
    cluster: Option<Arc<Simulator>>,
}

impl RunningBinary {
    /// Waits until it answers `/health`; returns a `TestApp` speaking to it.
    pub async fn healthy(&self) -> TestApp {
        let client = http().build().expect("client");
        for _ in 0..200 {
            if client.get(format!("{}/health", self.address)).send().await.is_ok_and(|r| r.status() == 200) {
                let (database, dir, cluster) = (self.database.clone(), self.dir.clone(), self.cluster.clone());
                return TestApp::attach(&self.address, database, dir, cluster).await;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("spawnpoint did not come up");
    }

    /// SIGKILL: no chance to stop anything.
    pub fn kill(mut self) {
        self.child.kill().expect("killed");
        self.child.wait().expect("reaped");
    }

    /// SIGTERM, as an operator stops it; waits for it to exit.
    pub fn terminate(mut self) {
        let pid = nix::unistd::Pid::from_raw(i32::try_from(self.child.id()).expect("pid"));
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("signalled");
        self.child.wait().expect("exited");
    }
}

impl Drop for RunningBinary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
