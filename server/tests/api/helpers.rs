//! Spawns Spawnpoint on port 0 with a fresh database, SQLite or PostgreSQL.
//!
//! PostgreSQL: each test gets its own database on the server named by `SPAWNPOINT_TEST_POSTGRES`
//! (default `postgres://postgres@127.0.0.1:5432/postgres`), dropped when the test ends.

use secrecy::SecretString;
use server::Application;
use server::config::Settings;
use server::db::Db;
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

pub struct TestApp {
    /// `http://127.0.0.1:<port>`
    pub address: String,
    pub client: reqwest::Client,
    pub db: Db,
    pub database: TestDatabase,
    _data_dir: tempfile::TempDir,
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.expect("request sent")
    }

    pub fn data_dir(&self) -> &std::path::Path {
        self._data_dir.path()
    }

    /// A client that behaves like the app's own pages in a browser: it keeps cookies and sends the app's
    /// origin on every request.
    pub fn browser(&self) -> reqwest::Client {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(reqwest::header::ORIGIN, self.address.parse().expect("origin"));
        reqwest::Client::builder()
            .cookie_store(true)
            .default_headers(headers)
            .timeout(REQUEST_TIMEOUT)
            .build()
            .expect("client")
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

    pub async fn count(&self, table: &str) -> i64 {
        use sqlx::Row as _;
        sqlx::query(sqlx::AssertSqlSafe(format!("SELECT COUNT(*) AS n FROM {table}")))
            .fetch_one(self.db.pool())
            .await
            .and_then(|row| row.try_get::<i64, _>("n"))
            .expect("count")
    }
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
    let data_dir = tempfile::tempdir().expect("temp dir");
    let database = TestDatabase::create(backend, data_dir.path()).await;
    let mut settings = Settings::from_lookup(|_| None).expect("defaults");
    settings.addr = "127.0.0.1:0".parse().expect("address");
    settings.data_dir = data_dir.path().to_owned();
    settings.database_url = SecretString::from(database.url.clone());
    adjust(&mut settings);

    let app = Application::build(&settings).await.expect("the app starts");
    let address = format!("http://{}", app.local_addr().expect("bound"));
    let db = app.state().db.clone();
    tokio::spawn(app.serve());
    // A bounded wait: a request that hangs fails its test instead of stalling the whole run.
    let client = reqwest::Client::builder().timeout(REQUEST_TIMEOUT).build().expect("client");
    TestApp { address, client, db, database, _data_dir: data_dir }
}
