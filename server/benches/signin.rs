//! A sign-in flood: how much memory Spawnpoint holds while many clients try passwords at once.
//!
//! `cargo bench -p server --bench signin [-- REQUESTS [PERMITS [PER_SECOND]]]` (defaults: 400 requests, the
//! default cap of two hashes per core, the default process-wide budget of sign-ins per second). Spawnpoint runs in this process on SQLite, behind a "proxy" (loopback is trusted), so
//! each request can come from an address of its own and no per-address limit applies: the flood is held back
//! only by the cap on concurrent hashing and the process-wide sign-in budget. All requests are sent at once.
//! Reported: the answers (401 judged, 429 told to come back), the time the flood took, and the process's peak
//! memory (VmHWM) above what it held before. Run it with a large PERMITS (512, the blocking pool's size) and
//! PER_SECOND (100000) for the behaviour without either defence: argon2id holds 19 MiB per hash in progress.

use std::time::Instant;

use secrecy::SecretString;
use serde_json::json;
use server::Application;
use server::auth::proxy::TrustedProxies;
use server::config::Settings;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1).filter_map(|arg| arg.parse::<usize>().ok());
    let requests = args.next().unwrap_or(400);
    let (permits, per_second) = (args.next(), args.next());
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(run(requests, permits, per_second))
}

/// The process's peak resident memory so far, in KiB.
fn peak_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

async fn run(requests: usize, permits: Option<usize>, per_second: Option<usize>) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mut settings = Settings::from_lookup(|_| None)?;
    settings.sftp.addr = None;
    settings.http.addr = "127.0.0.1:0".parse()?;
    settings.data_dir = dir.path().to_owned();
    settings.database_url = SecretString::from(format!("sqlite://{}/spawnpoint.db", dir.path().display()));
    settings.http.trusted_proxies = TrustedProxies::parse("127.0.0.1").map_err(anyhow::Error::msg)?;
    if let Some(permits) = permits {
        settings.tuning.password_hashes = permits;
    }
    if let Some(per_second) = per_second.and_then(|n| u32::try_from(n).ok()).and_then(std::num::NonZeroU32::new) {
        settings.tuning.sign_ins_per_second = per_second;
    }
    let (permits, per_second) = (settings.tuning.password_hashes, settings.tuning.sign_ins_per_second);
    let app = Application::build(&settings).await?;
    let base = format!("http://{}", app.local_addr()?);
    tokio::spawn(app.serve());

    let http = reqwest::Client::builder().pool_max_idle_per_host(requests).build()?;
    let account = json!({ "email": "owner@example.com", "password": "correct horse battery" });
    http.post(format!("{base}/auth/register")).json(&account).send().await?.error_for_status()?;
    let before = peak_kib();

    let started = Instant::now();
    let attempts = (0..requests).map(|n| {
        let request = http
            .post(format!("{base}/auth/login"))
            .header("cf-connecting-ip", format!("10.{}.{}.{}", n >> 16 & 255, n >> 8 & 255, n & 255))
            .json(&json!({ "email": format!("user{n}@example.com"), "password": "a wrong guess" }));
        async move { request.send().await.map(|response| response.status().as_u16()).unwrap_or(0) }
    });
    let statuses = futures_util::future::join_all(attempts).await;
    let took = started.elapsed();
    let count = |code: u16| statuses.iter().filter(|&&status| status == code).count();
    let growth_mib = peak_kib().saturating_sub(before) as f64 / 1024.0;
    println!(
        "{requests} sign-ins at once, {permits} hashes at a time, {per_second}/s overall: {} judged (401), {} told to come back (429), \
         {} other; {:.1} s; peak memory +{growth_mib:.0} MiB",
        count(401),
        count(429),
        requests - count(401) - count(429),
        took.as_secs_f64(),
    );
    Ok(())
}
