//! Faults an installation must survive without losing customers' worlds: started against the wrong database
//! (or an empty one), or beside another installation on the same cluster.

use serde_json::Value;

use crate::helpers::{Backend, TestApp, TestDriver, eventually, spawn_app_beside, spawn_app_on};
use crate::{both_databases, every_driver};

every_driver!(a_database_without_the_servers_deletes_nothing_until_an_operator_says_so);

/// What of server `id` exists outside the database: its game running, and its stored data.
fn exists(app: &TestApp, id: &str) -> (bool, bool) {
    let running = app.game_pid(id).is_some_and(|pid| crate::helpers::alive(&pid));
    let stored = match &app.cluster {
        Some(cluster) => {
            cluster.objects("persistentvolumeclaims").iter().any(|c| c["metadata"]["name"] == format!("{id}-data"))
        }
        None => app.game_data(id).exists(),
    };
    (running, stored)
}

async fn three_running(app: &TestApp) -> Vec<String> {
    let token = app.signed_up("owner@example.com").await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        let id = app.created(&token, "demo", "tiny").await;
        app.running(&token, &id).await;
        ids.push(id);
    }
    ids
}

async fn a_database_without_the_servers_deletes_nothing_until_an_operator_says_so(
    backend: Backend,
    driver: TestDriver,
) {
    let app = spawn_app_on(backend, driver, |_| {}).await;
    let ids = three_running(&app).await;
    // An older dump restored: the rows are gone, the worlds are not.
    sqlx::query("DELETE FROM servers").execute(app.db.pool()).await.expect("rows gone");
    app.reconciled().await;
    for id in &ids {
        assert_eq!(exists(&app, id), (true, true), "{id} is left alone");
    }
    let ready = app.get("/ready").await;
    assert_eq!(ready.status(), 503, "not ready while holding back");
    let body: Value = ready.json().await.expect("json");
    assert_eq!(body["status"], "holding");
    assert_eq!(body["held"][0]["orphans"], 3);
    assert!(body["message"].as_str().is_some_and(|m| m.contains("spawnpoint orphans release")), "{body}");

    // The operator checked the database and releases the brake: now they go.
    app.db.release_collection(10).await.expect("released");
    app.reconciled().await;
    for id in &ids {
        eventually(&format!("{id} collected once released"), || exists(&app, id) == (false, false)).await;
    }
    assert_eq!(app.get("/ready").await.status(), 200);
}

/// Two installations (or one started against a fresh database by mistake) on one cluster: neither sees, nor
/// collects, the other's game servers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_installation_on_the_cluster_leaves_this_one_alone() {
    let first = spawn_app_on(Backend::Sqlite, TestDriver::Agones, |_| {}).await;
    let ids = three_running(&first).await;
    let cluster = first.cluster.as_ref().expect("a cluster");
    let before = cluster.objects("gameservers").len();

    let second = spawn_app_beside(Backend::Sqlite, &first).await;
    second.reconciled().await;
    assert_eq!(second.get("/ready").await.status(), 200, "it has nothing of its own to hold back");
    assert_eq!(cluster.objects("gameservers").len(), before);
    for id in &ids {
        assert_eq!(exists(&first, id), (true, true), "{id} is left alone");
    }
    // Its own servers run beside the first's, labelled as its own.
    let theirs = three_running(&second).await;
    let label = |id: &str| {
        let objects = cluster.objects("gameservers");
        let object = objects.iter().find(|o| o["metadata"]["name"] == id).expect("a GameServer").clone();
        object["metadata"]["labels"]["spawnpoint.io/installation"].as_str().expect("installation").to_owned()
    };
    assert_ne!(label(&ids[0]), label(&theirs[0]));
    first.reconciled().await;
    for id in &theirs {
        assert_eq!(exists(&second, id), (true, true), "{id} is left alone by the first");
    }
}

/// A PostgreSQL server of this test's own (the shared one cannot be restarted under other tests): `initdb` and
/// `pg_ctl` as the `postgres` user, on a free port.
struct OwnPostgres {
    bin: std::path::PathBuf,
    dir: tempfile::TempDir,
    port: u16,
}

impl OwnPostgres {
    fn start() -> Option<Self> {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .filter_map(Result::ok)
            .map(|e| e.path().join("bin"))
            .max()?;
        let dir = tempfile::tempdir().ok()?;
        let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).ok()?.port();
        std::process::Command::new("chown").arg("postgres:").arg(dir.path()).status().ok()?;
        let postgres = Self { bin, dir, port };
        postgres.pg(&["initdb", "-D", &postgres.data(), "--auth=trust", "-U", "postgres"]).then_some(())?;
        postgres.up().then_some(postgres)
    }

    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    fn pg(&self, args: &[&str]) -> bool {
        let (program, args) = args.split_first().expect("a program");
        let status = std::process::Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join(program))
            .args(args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
        status.is_ok_and(|status| status.success())
    }

    fn up(&self) -> bool {
        let options = format!("-p {} -k {} -c listen_addresses=127.0.0.1", self.port, self.dir.path().display());
        let log = self.dir.path().join("log").display().to_string();
        self.pg(&["pg_ctl", "-D", &self.data(), "-l", &log, "-w", "-o", &options, "start"])
    }

    fn down(&self) -> bool {
        self.pg(&["pg_ctl", "-D", &self.data(), "-m", "fast", "-w", "stop"])
    }
}

impl Drop for OwnPostgres {
    fn drop(&mut self) {
        self.down();
    }
}

/// PostgreSQL goes away under load and comes back: meanwhile `/ready` says so and requests fail cleanly; after,
/// the panel has reconnected by itself, no server was lost or doubled, and the games ran on throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_panel_rides_out_a_postgresql_restart() {
    let Some(postgres) = OwnPostgres::start() else {
        assert!(std::env::var_os("CI").is_none(), "PostgreSQL's initdb and pg_ctl are needed under CI");
        eprintln!("skipped: no PostgreSQL binaries to start a server of this test's own");
        return;
    };
    let url = postgres.url();
    let app = spawn_app_on(Backend::Sqlite, TestDriver::Local, |settings| {
        settings.database_url = secrecy::SecretString::from(url);
    })
    .await;
    let ids = three_running(&app).await;
    let token = app.login_token("owner@example.com").await;
    let pids: Vec<String> = ids.iter().map(|id| app.game_pid(id).expect("running")).collect();

    // Load: a steady stream of reads while the database goes down and comes back.
    let load = {
        let (client, url, token) = (app.client.clone(), app.url("/api/servers"), token.clone());
        tokio::spawn(async move {
            let mut statuses = std::collections::BTreeMap::<u16, usize>::new();
            for _ in 0..200 {
                let status = client.get(&url).bearer_auth(&token).send().await.map_or(0, |r| r.status().as_u16());
                *statuses.entry(status).or_default() += 1;
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            statuses
        })
    };
    assert!(postgres.down(), "PostgreSQL stopped");
    let ready = app.get("/ready").await;
    assert_eq!(ready.status(), 503, "not ready while the database is down");
    assert!(!ready.text().await.expect("text").contains("127.0.0.1"), "and the database's whereabouts stay private");
    assert!(postgres.up(), "PostgreSQL started again");
    eventually_async("ready again", || async { app.get("/ready").await.status() == 200 }).await;
    let statuses = load.await.expect("the load ran");
    assert!(statuses.keys().all(|status| [200, 401, 500, 503].contains(status)), "clean answers only: {statuses:?}");
    assert!(statuses.get(&200).is_some_and(|&n| n > 0), "{statuses:?}");

    // Nothing lost, nothing doubled, nothing restarted.
    app.reconciled().await;
    let listed: Vec<Value> = app.get_as(&token, "/api/servers").await.json().await.expect("json");
    assert_eq!(listed.len(), 3, "{listed:?}");
    for (id, pid) in ids.iter().zip(&pids) {
        assert_eq!(app.game_pid(id).as_ref(), Some(pid), "{id} ran on throughout");
    }
}

async fn eventually_async<F: Future<Output = bool>>(what: &str, check: impl Fn() -> F) {
    for _ in 0..200 {
        if check().await {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("{what}: not within 20 s");
}

both_databases!(api_errors_on_stop_and_delete_and_a_kill_mid_delete_leave_nothing_behind);

/// The Kubernetes API fails stops and deletes, and Spawnpoint is killed while a delete is held up: each ends
/// with the server stopped or gone, and nothing of it left on the cluster.
async fn api_errors_on_stop_and_delete_and_a_kill_mid_delete_leave_nothing_behind(backend: Backend) {
    use axum::http::Method;
    let binary = crate::helpers::Binary::fresh(backend, TestDriver::Agones).await;
    let cluster = binary.cluster().expect("a cluster");
    let first = binary.start();
    let app = first.healthy().await;
    let token = app.signed_up("unlucky@example.com").await;
    let kept = app.created(&token, "demo", "tiny").await;
    let doomed = app.created(&token, "demo", "tiny").await;
    app.running(&token, &kept).await;
    app.running(&token, &doomed).await;
    let named = |plural: &str, name: &str| cluster.objects(plural).iter().any(|o| o["metadata"]["name"] == name);

    // Stop: the first two deletes of its GameServer fail; it is stopped all the same, its world kept.
    cluster.fail_next(Method::DELETE, "gameservers", 500, 2);
    assert_eq!(app.act(&token, &kept, "stop").await.status(), 202);
    app.wait_for(&token, &kept, "stopped", |s| s["status"] == "stopped").await;
    eventually("its GameServer is gone", || !named("gameservers", &kept)).await;
    assert!(named("persistentvolumeclaims", &format!("{kept}-data")), "its world is kept");

    // Delete: the claim's delete fails, and Spawnpoint is killed while it does.
    cluster.fail_next(Method::DELETE, "persistentvolumeclaims", 500, 1000);
    assert_eq!(app.act(&token, &doomed, "delete").await.status(), 202);
    eventually("the clean-up was tried", || cluster.arrived(&Method::DELETE, "persistentvolumeclaims") > 0).await;
    first.kill();
    cluster.clear_faults();
    let second = binary.start();
    let app = second.healthy().await;
    let token = app.login_token("unlucky@example.com").await;
    app.wait_for(&token, &doomed, "gone", Value::is_null).await;
    assert!(!named("gameservers", &doomed) && !named("persistentvolumeclaims", &format!("{doomed}-data")), "no orphan");
    // Nothing lost: the stopped server is still there, and starts with its world.
    assert_eq!(app.act(&token, &kept, "start").await.status(), 202);
    app.running(&token, &kept).await;
    assert_eq!(cluster.objects("gameservers").len(), 1, "no duplicate");
    assert_eq!(cluster.objects("persistentvolumeclaims").len(), 1);
}
