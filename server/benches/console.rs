//! The live console's fan-out: 100 viewers on one game server.
//!
//! `cargo bench -p server --bench console [-- VIEWERS]` (default 100). Spawnpoint runs with the `agones` driver
//! against the Kubernetes API simulator (in this process); the server's pod runs a real (silent) process, and
//! lines are added to its log at a steady rate through the simulator, as the game would print them. Each line
//! carries the time it was added; every viewer, a real WebSocket client, notes when it arrives. Reported: the
//! `pods/log?follow=true` streams Spawnpoint opened (must be 1 however many viewers), delivery latency from the
//! pod's log to each viewer (p50 / p99 / max), and the process's memory growth per connected viewer (both ends of
//! each socket are in this process, so it is an upper bound).

mod common;

use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use k8s_sim::{SimConfig, SimImage, SimNode, Simulator};
use serde_json::Value;
use server::config::Driver;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;

const LINES: usize = 500;
const LINE_EVERY: Duration = Duration::from_millis(5);

fn main() -> anyhow::Result<()> {
    let viewers = std::env::args().skip(1).find_map(|arg| arg.parse().ok()).unwrap_or(100);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(run(viewers))
}

async fn run(viewers: usize) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mut settings = common::settings(dir.path())?;
    let demo = settings.load_catalog()?.game("demo").expect("the demo game").image.clone();
    let sim = Simulator::start(SimConfig {
        nodes: SimNode::numbered(1, |n| format!("127.0.0.{n}")),
        ready_after: Duration::from_millis(100),
        images: [(demo, SimImage { program: "sleep".into(), args: vec!["3600".into()], ready_line: None })].into(),
        volumes: Some(dir.path().join("volumes")),
        ..SimConfig::default()
    })
    .await;
    settings.driver = Driver::Agones;
    settings.agones.kube_api = Some(sim.url().to_owned());
    let common::Bench { http, base, token, id } = common::start(&settings, "demo", "tiny").await?;
    loop {
        let now: Value = http.get(format!("{base}/api/servers/{id}")).bearer_auth(&token).send().await?.json().await?;
        if now["status"] == "running" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let rss_before = rss_kib();
    let epoch = Instant::now();
    let mut readers = Vec::new();
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel(viewers);
    for _ in 0..viewers {
        let url = format!("{base}/api/servers/{id}/console").replacen("http://", "ws://", 1);
        let mut request = url.into_client_request()?;
        request.headers_mut().insert("authorization", format!("Bearer {token}").parse()?);
        let (mut socket, _) = tokio_tungstenite::connect_async(request).await?;
        let ready = ready_tx.clone();
        readers.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(LINES);
            while let Some(Ok(message)) = socket.next().await {
                let Message::Text(text) = message else { continue };
                let event: Value = serde_json::from_str(&text).unwrap_or_default();
                if event["type"] == "backlog" {
                    let _ = ready.send(()).await;
                }
                for line in event["lines"].as_array().into_iter().flatten().filter_map(Value::as_str) {
                    if let Some(sent) = line.strip_prefix("bench ").and_then(|micros| micros.parse::<u64>().ok()) {
                        latencies.push(epoch.elapsed().as_micros() as u64 - sent);
                        if latencies.len() == LINES {
                            return latencies;
                        }
                    }
                }
            }
            latencies
        }));
    }
    for _ in 0..viewers {
        ready_rx.recv().await;
    }
    let rss_after = rss_kib();

    for _ in 0..LINES {
        sim.log_line(&id, &format!("bench {}", epoch.elapsed().as_micros()));
        tokio::time::sleep(LINE_EVERY).await;
    }
    let mut latencies = Vec::new();
    for reader in readers {
        latencies.extend(tokio::time::timeout(Duration::from_secs(30), reader).await??);
    }
    latencies.sort_unstable();
    let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize] as f64 / 1000.0;
    let follows = sim.requests().iter().filter(|r| r.uri.contains("/log?") && r.uri.contains("follow=true")).count();
    println!("\n== {viewers} viewers on one server, {LINES} lines, one every {LINE_EVERY:?} ==");
    println!("upstream log streams opened: {follows}");
    println!("lines delivered: {} of {}", latencies.len(), viewers * LINES);
    println!("delivery latency p50 / p99 / max: {:.2} / {:.2} / {:.2} ms", at(0.5), at(0.99), at(1.0));
    println!(
        "memory: {} KiB before, {} KiB with the viewers: {:.1} KiB per viewer (both ends)",
        rss_before,
        rss_after,
        (rss_after.saturating_sub(rss_before)) as f64 / viewers as f64
    );
    Ok(())
}

/// This process's resident memory (`VmRSS`), in KiB.
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let line = status.lines().find(|line| line.starts_with("VmRSS:")).unwrap_or_default();
    line.split_whitespace().nth(1).and_then(|kib| kib.parse().ok()).unwrap_or(0)
}
