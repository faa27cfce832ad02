//! The Agones driver and the reconciler at scale, against the Kubernetes API simulator (20 nodes).
//!
//! `cargo bench -p server --bench agones [-- SERVERS ...]` (default: 1000 and 10000). For each size: servers are
//! written to a fresh SQLite database, Spawnpoint starts and provisions them all (a claim and a GameServer
//! each), then the games report `Ready` one by one at a steady rate and the time from each `Ready` in the
//! simulator to `running` in the database is measured. With everything running, full resync passes are timed:
//! CPU (user + system, of this whole process, so the simulator's answers to the resync's calls are included)
//! and every API call made.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use k8s_sim::{SimConfig, SimNode, Simulator};
use nix::sys::resource::{UsageWho, getrusage};
use secrecy::SecretString;
use server::Application;
use server::config::{Driver, Settings};
use server::db::Db;

const NAMESPACE: &str = "gameservers";
const NODES: usize = 20;
/// Games reporting ready per second while latency is measured.
const READY_RATE: u32 = 500;
const RESYNCS: usize = 5;

fn main() -> anyhow::Result<()> {
    let sizes: Vec<usize> = std::env::args().skip(1).filter_map(|arg| arg.parse().ok()).collect();
    let sizes = if sizes.is_empty() { vec![1_000, 10_000] } else { sizes };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    for servers in sizes {
        runtime.block_on(run(servers))?;
    }
    Ok(())
}

async fn run(count: usize) -> anyhow::Result<()> {
    println!("\n== {count} servers on {NODES} nodes ==");
    let sim = Simulator::start(SimConfig {
        nodes: SimNode::numbered(NODES, |n| format!("198.51.100.{n}")),
        // The games say when they are ready (below), not a timer.
        ready_after: Duration::from_secs(86_400),
        history: count * 4,
        ..SimConfig::default()
    })
    .await;
    let dir = tempfile::tempdir()?;
    let url = format!("sqlite://{}/spawnpoint.db", dir.path().display());
    let ids = write_servers(&url, count).await?;

    let mut settings = Settings::from_lookup(|_| None)?;
    settings.sftp.addr = None;
    settings.http.addr = "127.0.0.1:0".parse()?;
    settings.data_dir = dir.path().to_owned();
    settings.database_url = SecretString::from(url);
    settings.driver = Driver::Agones;
    settings.agones.kube_api = Some(sim.url().to_owned());
    settings.reconciler.resync_interval = Duration::from_secs(86_400); // only the first pass, and the ones timed below
    let app = Application::build(&settings).await?;
    let reconciler = app.reconciler();
    let mut events = app.state().servers.subscribe();
    let started = Instant::now();
    tokio::spawn(app.serve());

    // Provisioning: the first full pass creates every claim and GameServer.
    loop {
        let scheduled = sim.objects("gameservers").iter().filter(|gs| gs["status"]["state"] == "Scheduled").count();
        if scheduled == count {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    reconciler.settled().await;
    println!("provisioned (claim + GameServer each): {:.1} s", started.elapsed().as_secs_f64());

    // Ready → running, one game after another at a steady rate.
    let running = tokio::spawn(async move {
        let mut at = HashMap::new();
        let mut lagged = 0;
        while at.len() < count {
            match events.recv().await {
                Ok(catalog::gameserver::ServerEvent::Changed { server })
                    if server.status == catalog::ServerStatus::Running =>
                {
                    at.entry(server.id).or_insert_with(Instant::now);
                }
                Ok(_) => {}
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => lagged += n,
                Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
            }
        }
        (at, lagged)
    });
    let mut ready_at = HashMap::new();
    let mut pace = tokio::time::interval(Duration::from_secs(1) / READY_RATE);
    pace.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    for id in &ids {
        pace.tick().await;
        assert!(sim.mark_ready(NAMESPACE, id), "{id} was scheduled");
        ready_at.insert(id.clone(), Instant::now());
    }
    let (running_at, lagged) = tokio::time::timeout(Duration::from_secs(120), running).await??;
    assert_eq!(lagged, 0, "the event stream kept up");
    let mut latencies: Vec<Duration> = ids
        .iter()
        .map(|id| running_at[&catalog::ServerId::from(id.as_str())].saturating_duration_since(ready_at[id]))
        .collect();
    latencies.sort();
    let percentile = |p: f64| latencies[((latencies.len() - 1) as f64 * p).round() as usize];
    println!(
        "Ready → running ({READY_RATE}/s): p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        ms(percentile(0.50)),
        ms(percentile(0.99)),
        ms(percentile(1.0))
    );
    reconciler.settled().await;

    // Full resyncs over servers that are all running.
    let mut cpu = Vec::new();
    for _ in 0..RESYNCS {
        let (requests, lists) = (sim.requests().len(), list_calls(&sim));
        let before = cpu_time()?;
        let wall = Instant::now();
        reconciler.resync().await;
        reconciler.settled().await;
        let (wall, used) = (wall.elapsed(), cpu_time()? - before);
        cpu.push(used);
        let mut calls = std::collections::BTreeMap::<String, usize>::new();
        for request in &sim.requests()[requests..] {
            let path = request.uri.split('?').next().unwrap_or_default();
            *calls.entry(format!("{} {path}", request.method)).or_default() += 1;
        }
        println!(
            "resync: {:.0} ms CPU, {:.0} ms wall, {} API calls, {} of them lists: {calls:?}",
            ms(used),
            ms(wall),
            calls.values().sum::<usize>(),
            list_calls(&sim) - lists,
        );
    }
    cpu.sort();
    println!("resync CPU, median of {RESYNCS}: {:.0} ms", ms(cpu[RESYNCS / 2]));
    let rss = getrusage(UsageWho::RUSAGE_SELF)?.max_rss();
    println!("peak RSS of the process (Spawnpoint + simulator): {} MiB", rss / 1024);
    Ok(())
}

/// `count` pending servers of one customer, written as the API would write them.
async fn write_servers(url: &str, count: usize) -> anyhow::Result<Vec<String>> {
    let db = Db::connect(&SecretString::from(url.to_owned())).await?;
    db.migrate().await?;
    let mut tx = db.pool().begin().await?;
    sqlx::query("INSERT INTO users (id, email, password_hash, created_at) VALUES ('u1', 'bench@example.com', 'x', 0)")
        .execute(&mut *tx)
        .await?;
    let mut ids = Vec::with_capacity(count);
    for n in 0..count {
        let id = format!("u1-demo-{n:06}");
        sqlx::query(
            "INSERT INTO servers (id, user_id, name, game, plan, status, created_at, updated_at) \
             VALUES ($1, 'u1', $2, 'demo', 'tiny', 'pending', 0, 0)",
        )
        .bind(&id)
        .bind(format!("bench {n}"))
        .execute(&mut *tx)
        .await?;
        ids.push(id);
    }
    tx.commit().await?;
    Ok(ids)
}

fn list_calls(sim: &Simulator) -> usize {
    ["nodes", "pods", "persistentvolumeclaims", "gameservers"].iter().map(|plural| sim.list_calls(plural)).sum()
}

/// User + system CPU time of this process so far.
fn cpu_time() -> anyhow::Result<Duration> {
    let usage = getrusage(UsageWho::RUSAGE_SELF)?;
    let time = |t: nix::sys::time::TimeVal| {
        Duration::from_secs(t.tv_sec().unsigned_abs()) + Duration::from_micros(t.tv_usec().unsigned_abs())
    };
    Ok(time(usage.user_time()) + time(usage.system_time()))
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}
