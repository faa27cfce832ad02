//! Backup, restore and upload throughput of a 1 GiB server, and the panel's memory while they run.
//!
//! `cargo bench -p server --bench backups [-- MIB]` (default 1024). Spawnpoint runs on the single box in this
//! process with a game that idles; its data directory gets MIB MiB of files (half incompressible, half zeros, in
//! 64 MiB files, as a world's region files are). Reported for the local store and, when moto is installed, for
//! moto's S3 server on loopback: the backup's time, throughput (of the files' size) and archive size, then the
//! restore's; and an upload of one MIB-sized file through `POST …/files/upload`. Memory is the process's peak
//! resident set (`VmHWM`, reset before each step) over what it was before the step.

mod common;

use std::io::Write as _;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use server::backups::store::{BackupTarget, S3Target};

const CATALOG: &str = r#"
games:
  - id: idle
    name: Idle
    image: test/idle
    port: { port: 1, protocol: TCP }
    stop_command: stop
    local:
      command: sh
      args: ["-c", "echo ready now; while read line; do [ \"$line\" = stop ] && exit 0; done"]
      ready_line: ready now
    plans: [{ id: p, name: P, players: { min: 1, max: 1 }, cpu: "2", memory: 1Gi, storage: 8Gi, price_cents: 1, backups: 5 }]
"#;
const FILE_MIB: usize = 64;

fn main() -> anyhow::Result<()> {
    let mib = std::env::args().skip(1).find_map(|arg| arg.parse().ok()).unwrap_or(1024usize);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async move {
        server::install_crypto_provider();
        run("local store", mib, None).await?;
        match test_support::s3::Moto::start("bench").await {
            Some(moto) => {
                let target = BackupTarget::S3(S3Target {
                    bucket: moto.bucket.clone(),
                    prefix: "bench".into(),
                    endpoint: Some(moto.endpoint.clone()),
                    region: Some("us-east-1".into()),
                    access_key_id: Some(moto.access_key_id.clone()),
                    secret_access_key: Some(moto.secret_access_key.clone().into()),
                    allow_http: true,
                });
                run("S3 (moto on loopback)", mib, Some(target)).await
            }
            None => Ok(()),
        }
    })
}

/// Resident memory now and at its peak since the last reset, in KiB.
fn memory() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.trim().trim_end_matches(" kB").parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Resets the peak, and returns the resident memory it starts from.
fn memory_baseline() -> u64 {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    memory().0
}

fn growth_mib(baseline: u64) -> f64 {
    memory().1.saturating_sub(baseline) as f64 / 1024.0
}

async fn run(store: &str, mib: usize, target: Option<BackupTarget>) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let catalog = dir.path().join("games.yaml");
    std::fs::write(&catalog, CATALOG)?;
    let mut settings = common::settings(dir.path())?;
    settings.catalog_path = Some(catalog);
    if let Some(target) = target {
        settings.backups = target;
    }
    let common::Bench { http, base, token, id } = common::start(&settings, "idle", "p").await?;
    wait(&http, &token, &format!("{base}/api/servers/{id}"), |s| s["status"] == "running").await;

    // The world: half noise, half zeros, written straight into the server's directory.
    let data = dir.path().join("servers").join(&id).join("data");
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    for index in 0..mib.div_ceil(FILE_MIB) {
        let mut file = std::io::BufWriter::new(std::fs::File::create(data.join(format!("r.{index}.mca")))?);
        for chunk in 0..FILE_MIB * 16 {
            let mut block = [0u8; 65_536];
            if chunk % 2 == 0 {
                for word in block.chunks_mut(8) {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    word.copy_from_slice(&state.to_le_bytes());
                }
            }
            file.write_all(&block)?;
        }
    }
    if let Some(user) = std::fs::metadata(&data).ok().map(|m| std::os::unix::fs::MetadataExt::uid(&m)) {
        // As the game's own files would be.
        for entry in std::fs::read_dir(&data)? {
            let _ = std::os::unix::fs::lchown(entry?.path(), Some(user), None);
        }
    }
    let bytes = (mib * 1024 * 1024) as f64;
    println!("\n{store}, {mib} MiB of files:");

    let baseline = memory_baseline();
    let started = Instant::now();
    let pending: Value = http
        .post(format!("{base}/api/servers/{id}/backups"))
        .bearer_auth(&token)
        .json(&json!({ "name": "bench" }))
        .send()
        .await?
        .json()
        .await?;
    let backup_url = format!("{base}/api/servers/{id}/backups/{}", pending["id"].as_str().expect("an id"));
    let backup = wait(&http, &token, &backup_url, |b| b["status"] != "pending").await;
    let took = started.elapsed();
    assert_eq!(backup["status"], "ok", "{backup}");
    let archive = backup["size"].as_u64().unwrap_or(0) as f64 / 1024.0 / 1024.0;
    println!(
        "  backup:  {:6.1} s  {:6.1} MB/s  archive {archive:.0} MiB  memory +{:.1} MiB",
        took.as_secs_f64(),
        bytes / 1e6 / took.as_secs_f64(),
        growth_mib(baseline)
    );

    let baseline = memory_baseline();
    let started = Instant::now();
    http.post(format!("{backup_url}/restore")).bearer_auth(&token).send().await?.error_for_status()?;
    let restored = wait(&http, &token, &backup_url, |b| b["restoring"] == false).await;
    let took = started.elapsed();
    assert_eq!(restored["restore_error"], Value::Null, "{restored}");
    println!(
        "  restore: {:6.1} s  {:6.1} MB/s  (stop, unpack, check, swap, start)  memory +{:.1} MiB",
        took.as_secs_f64(),
        bytes / 1e6 / took.as_secs_f64(),
        growth_mib(baseline)
    );

    // One file as big as the world, uploaded as a browser does (multipart), generated as it is sent.
    for entry in std::fs::read_dir(&data)? {
        let path = entry?.path();
        let _ = std::fs::remove_file(&path).or_else(|_| std::fs::remove_dir_all(&path));
    }
    let baseline = memory_baseline();
    let started = Instant::now();
    let pieces = futures_util::stream::iter((0..mib * 16).map(|_| Ok::<_, std::io::Error>(vec![7u8; 65_536])));
    let part = reqwest::multipart::Part::stream_with_length(reqwest::Body::wrap_stream(pieces), bytes as u64)
        .file_name("world.bin");
    let form = reqwest::multipart::Form::new().part("file", part);
    let response =
        http.post(format!("{base}/api/servers/{id}/files/upload")).bearer_auth(&token).multipart(form).send().await?;
    let took = started.elapsed();
    anyhow::ensure!(response.status().is_success(), "upload: {}", response.text().await?);
    println!(
        "  upload:  {:6.1} s  {:6.1} MB/s  memory +{:.1} MiB",
        took.as_secs_f64(),
        bytes / 1e6 / took.as_secs_f64(),
        growth_mib(baseline)
    );
    Ok(())
}

async fn wait(http: &reqwest::Client, token: &str, url: &str, until: impl Fn(&Value) -> bool) -> Value {
    loop {
        let value: Value = match http.get(url).bearer_auth(token).send().await {
            Ok(response) => response.json().await.unwrap_or(Value::Null),
            Err(_) => Value::Null,
        };
        if until(&value) {
            return value;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
