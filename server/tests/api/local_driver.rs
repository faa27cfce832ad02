//! The `local` orchestrator with real processes: the demo game, and small shell games that crash or refuse
//! to stop. (Needs `spawnpoint-demo-game` built beside the test binary; `cargo test --workspace` builds it.)

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use catalog::{Catalog, ServerId};
use server::orchestrator::local::{LocalConfig, LocalDriver};
use server::orchestrator::{BoxFuture, DriverError, Observed, Orchestrator, Phase, PortBook, PortClaim, ServerSpec};
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::TcpStream;
use tokio::sync::broadcast;

use crate::helpers::alive;

/// How long a test waits for a game to do what it should (a bound, not a pause: it goes on as soon as it does).
pub(crate) const WAIT: Duration = Duration::from_secs(30);

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port()
}

/// The game ports the tests' drivers hand out, by server id (unique across the tests). Each server is given a
/// port that is free on this machine before its driver asks, as the servers' rows would hold it.
static PORTS: LazyLock<Mutex<HashMap<ServerId, u16>>> = LazyLock::new(Mutex::default);

/// The servers' rows, as far as the local driver is concerned.
pub(crate) struct Book;

impl PortBook for Book {
    fn held(&self) -> BoxFuture<'_, Result<Vec<(ServerId, u16)>, DriverError>> {
        let held = PORTS.lock().expect("ports").iter().map(|(id, port)| (id.clone(), *port)).collect();
        Box::pin(async move { Ok(held) })
    }

    fn claim<'a>(
        &'a self,
        server: &'a ServerId,
        _host: &'a str,
        port: u16,
    ) -> BoxFuture<'a, Result<PortClaim, DriverError>> {
        let mut ports = PORTS.lock().expect("ports");
        let claim = if ports.contains_key(server) {
            PortClaim::NotNeeded
        } else if ports.values().any(|held| *held == port) {
            PortClaim::Taken
        } else {
            ports.insert(server.clone(), port);
            PortClaim::Claimed
        };
        Box::pin(async move { Ok(claim) })
    }
}

pub(crate) fn spec(catalog: &Catalog, game: &str, plan: &str, id: &str) -> ServerSpec {
    let (game, plan) = catalog.plan(game, plan).expect("in the catalog");
    PORTS.lock().expect("ports").insert(id.into(), free_port());
    ServerSpec {
        id: id.into(),
        user_id: "u1".into(),
        game: game.clone(),
        plan: plan.clone(),
        generation: 0,
        variables: Default::default(),
        eula_accepted: false,
        install_generation: 0,
    }
}

pub(crate) fn config(stop_grace: Duration) -> LocalConfig {
    LocalConfig {
        host: "127.0.0.1".into(),
        ports: 1..=1,
        stop_grace,
        game_user: "spawnpoint-game".into(),
        keep_games: false,
        sources: Default::default(),
    }
}

pub(crate) fn driver(dir: &tempfile::TempDir, stop_grace: Duration) -> LocalDriver {
    LocalDriver::new(dir.path(), config(stop_grace), Arc::new(Book))
}

pub(crate) fn port(spec: &ServerSpec) -> u16 {
    PORTS.lock().expect("ports")[&spec.id]
}

/// A one-game catalog whose game is a shell script.
pub(crate) fn shell_game(script: &str) -> Catalog {
    Catalog::from_yaml(&format!(
        "games:\n  - id: shell\n    name: Shell\n    image: none\n    port: {{ port: 1, protocol: TCP }}\n    stop_command: stop\n    local: {{ command: sh, args: [\"-c\", {script:?}], ready_line: ready now }}\n    plans: [{{ id: p, name: P, players: {{ min: 1, max: 1 }}, cpu: 100m, memory: 64Mi, storage: 1Gi, price_cents: 1 }}]\n"
    ))
    .expect("valid test catalog")
}

pub(crate) async fn next_phase(events: &mut broadcast::Receiver<Observed>, id: &ServerId) -> Phase {
    let wait = async {
        loop {
            match events.recv().await {
                Ok(observed) if observed.id == *id => return observed.phase,
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => panic!("event stream closed"),
            }
        }
    };
    tokio::time::timeout(WAIT, wait).await.expect("a phase change in time")
}

/// The next `Ready`, skipping the `Exited` that a stopped process reports on its way out.
pub(crate) async fn next_ready(events: &mut broadcast::Receiver<Observed>, id: &ServerId) -> Phase {
    loop {
        match next_phase(events, id).await {
            Phase::Exited { .. } => continue,
            phase => return phase,
        }
    }
}

pub(crate) async fn logs_contain(driver: &LocalDriver, id: &ServerId, needle: &str) -> bool {
    let deadline = tokio::time::Instant::now() + WAIT;
    while tokio::time::Instant::now() < deadline {
        if driver.logs(id, 100).await.expect("logs").iter().any(|line| line.contains(needle)) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

async fn ask(stream: &mut BufReader<TcpStream>, line: &str) -> String {
    stream.get_mut().write_all(format!("{line}\n").as_bytes()).await.expect("sent");
    let mut answer = String::new();
    tokio::time::timeout(WAIT, stream.read_line(&mut answer)).await.expect("answer in time").expect("read");
    answer.trim().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_demo_server_runs_keeps_its_world_across_stop_and_start_and_is_destroyed() {
    let dir = tempfile::tempdir().expect("temp dir");
    let driver = driver(&dir, Duration::from_secs(5));
    let catalog = Catalog::builtin();
    let spec = spec(&catalog, "demo", "tiny", "u1-de-abc123");
    let mut events = driver.events();

    driver.ensure_running(&spec).await.expect("starts");
    assert_eq!(next_phase(&mut events, &spec.id).await, Phase::Ready { host: "127.0.0.1".into(), port: port(&spec) });
    let mut player = BufReader::new(TcpStream::connect(("127.0.0.1", port(&spec))).await.expect("the game listens"));
    assert_eq!(ask(&mut player, "GET_STATE").await, "STATE open");
    assert_eq!(ask(&mut player, "REQUEST_MATCH 1").await, "STATE running");

    driver.ensure_running(&spec).await.expect("idempotent");
    assert_eq!(driver.observe().await.len(), 1, "no second process");

    driver.send_input(&spec.id, "say hello").await.expect("typed");
    assert!(logs_contain(&driver, &spec.id, "[Server] hello").await, "console input reaches the game");

    driver.stop(&spec.id).await.expect("stops");
    assert!(TcpStream::connect(("127.0.0.1", port(&spec))).await.is_err(), "the port is closed");
    assert!(driver.observe().await.is_empty());
    let world = dir.path().join("servers/u1-de-abc123/data/world.txt");
    assert_eq!(std::fs::read_to_string(&world).expect("world kept"), "matches_played=1\n");
    assert!(logs_contain(&driver, &spec.id, "[Server] hello").await, "a stopped server's log is still readable");

    driver.ensure_running(&spec).await.expect("starts again");
    assert!(matches!(next_ready(&mut events, &spec.id).await, Phase::Ready { .. }));
    assert!(logs_contain(&driver, &spec.id, "1 match(es) played so far").await, "the same world");

    driver.destroy(&spec.id).await.expect("destroyed");
    assert!(!dir.path().join("servers/u1-de-abc123").exists(), "data and logs are gone");
    assert!(TcpStream::connect(("127.0.0.1", port(&spec))).await.is_err());
    driver.destroy(&spec.id).await.expect("destroying twice is fine");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_is_reported_with_its_reason_and_the_server_can_run_again() {
    let dir = tempfile::tempdir().expect("temp dir");
    let driver = driver(&dir, Duration::from_secs(5));
    let catalog = shell_game("echo ready now; sleep 0.3; exit 3");
    let spec = spec(&catalog, "shell", "p", "u1-sh-crash1");
    let mut events = driver.events();

    driver.ensure_running(&spec).await.expect("starts");
    assert!(matches!(next_phase(&mut events, &spec.id).await, Phase::Ready { .. }));
    match next_phase(&mut events, &spec.id).await {
        Phase::Exited { reason } => assert!(reason.contains("exited with code 3"), "{reason}"),
        other => panic!("expected an exit, got {other:?}"),
    }
    assert!(matches!(driver.observe().await[0].phase, Phase::Exited { .. }), "the reconciler can see it died");
    driver.ensure_running(&spec).await.expect("runs again");
    assert!(matches!(next_phase(&mut events, &spec.id).await, Phase::Ready { .. }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newer_generation_replaces_the_running_game() {
    let dir = tempfile::tempdir().expect("temp dir");
    let driver = driver(&dir, Duration::from_secs(5));
    let catalog = shell_game("echo $$ > game.pid; echo ready now; while read line; do :; done");
    let mut spec = spec(&catalog, "shell", "p", "u1-sh-gener1");
    let pid_file = dir.path().join("servers/u1-sh-gener1/data/game.pid");
    let pid = || std::fs::read_to_string(&pid_file).expect("pid file").trim().to_owned();
    let mut events = driver.events();

    driver.ensure_running(&spec).await.expect("starts");
    assert!(matches!(next_phase(&mut events, &spec.id).await, Phase::Ready { .. }));
    let first = pid();
    assert!(alive(&first));
    driver.ensure_running(&spec).await.expect("same generation: left alone");
    assert_eq!(pid(), first);

    spec.generation = 1;
    driver.ensure_running(&spec).await.expect("replaced");
    assert!(matches!(next_ready(&mut events, &spec.id).await, Phase::Ready { .. }));
    assert_ne!(pid(), first, "a new process");
    assert!(!alive(&first), "the old one is gone");
    let observed = driver.observe().await;
    assert_eq!((observed.len(), observed[0].generation), (1, 1));

    let last = pid();
    driver.stop(&spec.id).await.expect("stops");
    assert!(!alive(&last), "stopped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_game_deaf_to_stop_and_sigterm_is_killed_with_everything_it_started() {
    let dir = tempfile::tempdir().expect("temp dir");
    let driver = driver(&dir, Duration::from_millis(300));
    // Ignores its console and SIGTERM, and starts a child of its own.
    let catalog = shell_game(
        "trap '' TERM; sleep 600 & echo $! > child.pid; echo $$ > game.pid; echo ready now; while true; do sleep 0.1; done",
    );
    let spec = spec(&catalog, "shell", "p", "u1-sh-deaf01");
    let mut events = driver.events();
    driver.ensure_running(&spec).await.expect("starts");
    assert!(matches!(next_phase(&mut events, &spec.id).await, Phase::Ready { .. }));

    driver.stop(&spec.id).await.expect("stops");
    let data = dir.path().join("servers/u1-sh-deaf01/data");
    for file in ["game.pid", "child.pid"] {
        let pid = std::fs::read_to_string(data.join(file)).expect("pid written").trim().to_owned();
        // Give the kernel a moment; a process still running after that is a stray.
        let mut gone = false;
        for _ in 0..50 {
            if !alive(&pid) {
                gone = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(gone, "{file}: process {pid} survived the stop");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_game_without_a_local_command_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let driver = driver(&dir, Duration::from_secs(1));
    let cluster_only = Catalog::from_yaml(
        "games:\n  - id: big\n    name: Big\n    image: big:1\n    port: { port: 1, protocol: UDP }\n    plans: [{ id: p, name: P, players: { min: 1, max: 1 }, cpu: \"1\", memory: 1Gi, storage: 1Gi, price_cents: 1 }]\n",
    )
    .expect("valid test catalog");
    let spec = spec(&cluster_only, "big", "p", "u1-bi-nolocl");
    match driver.ensure_running(&spec).await {
        Err(DriverError::NotRunnable(message)) => assert!(message.contains("only on a cluster"), "{message}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert!(driver.observe().await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_game_that_stops_reading_its_console_can_still_be_stopped() {
    let dir = tempfile::tempdir().expect("temp dir");
    let driver = Arc::new(driver(&dir, Duration::from_millis(300)));
    // `sleep` never reads its input: once the pipe is full, every write to it waits.
    let catalog = shell_game("echo ready now; exec sleep 600");
    let spec = spec(&catalog, "shell", "p", "u1-sh-deaf02");
    let mut events = driver.events();
    driver.ensure_running(&spec).await.expect("starts");
    assert!(matches!(next_phase(&mut events, &spec.id).await, Phase::Ready { .. }));

    let line = "x".repeat(1000);
    let refused = async {
        // The pipe, the supervisor's queue and the socket between hold some; not megabytes.
        for _ in 0..4000 {
            if let Err(error) = driver.send_input(&spec.id, &line).await {
                return error;
            }
        }
        panic!("4 MB went into a pipe nobody reads");
    };
    let error = tokio::time::timeout(Duration::from_secs(30), refused).await.expect("a write gives up in time");
    assert!(matches!(error, DriverError::Io { .. }), "{error:?}");
    // One more command, stuck on the full pipe while the stop comes.
    let stuck = tokio::spawn({
        let (driver, id) = (driver.clone(), spec.id.clone());
        async move { driver.send_input(&id, "stuck").await }
    });
    tokio::time::timeout(Duration::from_secs(20), driver.stop(&spec.id))
        .await
        .expect("the stop is not held up")
        .expect("stops");
    assert!(driver.phase(&spec.id).await.is_none_or(|o| matches!(o.phase, Phase::Exited { .. })), "the game is gone");
    assert!(stuck.await.expect("joined").is_err(), "the stuck command failed");
}
