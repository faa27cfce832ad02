//! Real, independently written games on the single box, through the API: a Minecraft Java server (npm's
//! flying-squid, started by a jar that PaperMC's downloads API — a loopback fake of it — serves) joined by a real
//! client (mineflayer) and queried with PyPI's mcstatus; and a Minecraft Bedrock server (npm's bedrock-protocol,
//! in a server zip as the official one comes) answering the RakNet ping.
//!
//! What they need is installed by the README's test command (`server/tests/games/`: `npm ci`, `pip install
//! mcstatus`; OpenJDK's `javac` and `jar`). Outside CI a machine without them skips with the reason.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use test_support::downloads::FakeDownloads;
use tokio::io::{AsyncBufReadExt as _, BufReader};

use crate::both_databases;
use crate::helpers::{Backend, one_real_game_at_a_time, spawn_app_with};

both_databases!(a_minecraft_server_installs_runs_plays_saves_and_follows_its_settings);
both_databases!(a_bedrock_server_installs_from_its_zip_and_answers_the_ping);

/// The test games' directory, if its packages are installed (else why not, or a failure under CI).
fn games() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/games");
    let missing = [
        (!dir.join("node_modules/flying-squid").is_dir()).then_some("npm packages in server/tests/games"),
        (!command_works("javac", &["-version"])).then_some("javac"),
        (!command_works("python3", &["-c", "import mcstatus"])).then_some("PyPI's mcstatus"),
    ];
    let missing: Vec<&str> = missing.into_iter().flatten().collect();
    if missing.is_empty() {
        return Some(dir);
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("the real games' tests need {}", missing.join(", "));
    }
    eprintln!("skipped: no {} (the README's test command installs them)", missing.join(", "));
    None
}

fn command_works(program: &str, args: &[&str]) -> bool {
    std::process::Command::new(program).args(args).output().is_ok_and(|out| out.status.success())
}

/// A server jar whose main runs flying-squid (with the console and output passed through, as the JVM's own), and
/// a megabyte of padding, stored uncompressed, so its download takes long enough to watch.
fn minecraft_jar(games: &Path, work: &Path) -> Vec<u8> {
    let script = games.join("minecraft-server.js");
    let source = format!(
        "public class Main {{ public static void main(String[] args) throws Exception {{ \
         Process game = new ProcessBuilder(\"node\", {:?}).inheritIO().start(); System.exit(game.waitFor()); }} }}",
        script.to_string_lossy()
    );
    let classes = work.join("classes");
    std::fs::create_dir_all(&classes).expect("classes dir");
    std::fs::write(work.join("Main.java"), source).expect("source");
    let padding: Vec<u8> = (0..1024 * 1024u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    std::fs::write(classes.join("padding.bin"), padding).expect("padding");
    let javac = std::process::Command::new("javac").arg("-d").arg(&classes).arg(work.join("Main.java")).status();
    assert!(javac.expect("javac runs").success(), "the jar's source compiles");
    let jar = work.join("server.jar");
    let status = std::process::Command::new("jar")
        .args(["--create", "--no-compress", "--main-class", "Main", "--file"])
        .arg(&jar)
        .arg("-C")
        .arg(&classes)
        .arg(".")
        .status();
    assert!(status.expect("jar runs").success(), "the jar is made");
    std::fs::read(&jar).expect("the jar")
}

/// `players online`, `players max` and the MOTD, as PyPI's mcstatus reads them (Java's Server List Ping, or
/// Bedrock's RakNet ping).
async fn status(kind: &str, address: &str) -> Option<(u32, u32, String)> {
    let script = format!(
        "from mcstatus import {kind}\ns = {kind}.lookup({address:?}).status()\n\
         motd = s.motd.to_plain() if hasattr(s, 'motd') else str(s.description)\n\
         print(s.players.online, s.players.max, motd, sep='\\n')"
    );
    let output = tokio::process::Command::new("python3").args(["-c", &script]).output().await.ok()?;
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let mut lines = text.lines();
    Some((lines.next()?.parse().ok()?, lines.next()?.parse().ok()?, lines.next().unwrap_or_default().to_owned()))
}

/// Polls `status` until `check` holds (30 s at most).
async fn status_until(kind: &str, address: &str, what: &str, check: impl Fn(&(u32, u32, String)) -> bool) {
    let mut last = None;
    for _ in 0..60 {
        last = status(kind, address).await;
        if last.as_ref().is_some_and(&check) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    panic!("{what}: last status {last:?}");
}

/// A mineflayer client, its output read line by line.
struct Player {
    child: tokio::process::Child,
    lines: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
}

impl Player {
    async fn join(games: &Path, address: &str, name: &str, say: &str) -> Self {
        let (host, port) = address.rsplit_once(':').expect("host:port");
        let mut child = tokio::process::Command::new("node")
            .arg(games.join("minecraft-client.js"))
            .args([host, port, name, say])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("the client starts");
        let lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let mut player = Self { child, lines };
        player.saw("joined").await;
        player
    }

    /// Reads until a line containing `text` (60 s at most); what came before it.
    async fn saw(&mut self, text: &str) -> Vec<String> {
        let mut seen = Vec::new();
        let found = tokio::time::timeout(Duration::from_secs(60), async {
            while let Ok(Some(line)) = self.lines.next_line().await {
                let done = line.contains(text);
                seen.push(line);
                if done {
                    return true;
                }
            }
            false
        })
        .await;
        assert!(matches!(found, Ok(true)), "the player never saw {text:?}; saw {seen:#?}");
        seen
    }
}

fn seed(lines: &[String]) -> Option<String> {
    lines.iter().rev().find_map(|line| line.split_once("World seed: ").map(|(_, seed)| seed.trim().to_owned()))
}

async fn a_minecraft_server_installs_runs_plays_saves_and_follows_its_settings(backend: Backend) {
    let Some(games) = games() else { return };
    let _turn = one_real_game_at_a_time().await;
    let work = tempfile::tempdir().expect("temp dir");
    let downloads = FakeDownloads::start().await;
    downloads.publish_file_slowly("paper-1.20.4-499.jar", minecraft_jar(&games, work.path()));
    downloads.paper_build("1.20.4", 499, "STABLE", "paper-1.20.4-499.jar", false);
    let app = spawn_app_with(backend, |settings| {
        settings.local.sources.paper_api = downloads.paper_api();
        settings.local.stop_grace = Duration::from_secs(15);
    })
    .await;
    let token = app.signed_up("player@example.com").await;

    // Created as the API documents it: variables, and the licence accepted.
    let body = json!({ "name": "survival", "game": "minecraft-java", "plan": "starter", "accept_eula": true,
                       "variables": { "MAX_PLAYERS": "3", "MOTD": "Spawnpoint test" } });
    let response = app.create_server(&token, body).await;
    assert_eq!(response.status(), 201);
    let id = response.json::<Value>().await.expect("json")["id"].as_str().expect("id").to_owned();

    // Installing, with the download's progress, then running.
    let installing = app
        .wait_for(&token, &id, "installing with progress", |s| {
            s["status"] == "installing"
                && s["install"]["step"] == "paper"
                && s["install"]["done_bytes"].as_u64() > Some(0)
        })
        .await;
    assert!(installing["install"]["total_bytes"].as_u64() > Some(1_000_000), "{installing}");
    let server = app.wait_for(&token, &id, "running", |s| s["status"] == "running").await;
    let address = server["address"].as_str().expect("an address").to_owned();
    let data = app.game_data(&id);
    assert_eq!(std::fs::read_to_string(data.join("eula.txt")).expect("eula.txt").trim(), "eula=true");
    let mut disk = Value::Null;
    for _ in 0..100 {
        disk = app.get_as(&token, &format!("/api/servers/{id}/disk")).await.json().await.expect("json");
        if disk["used_bytes"].as_u64() > Some(1_000_000) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(disk["used_bytes"].as_u64() > Some(1_000_000), "its disk use is measured: {disk}");
    assert_eq!(disk["limit_bytes"], 10 * 1024 * 1024 * 1024_u64, "against the plan's storage");

    // What the customer chose, as a status query sees it.
    status_until("JavaServer", &address, "0 of 3, with the MOTD", |(online, max, motd)| {
        *online == 0 && *max == 3 && motd == "Spawnpoint test"
    })
    .await;

    // A real client joins at the address shown and chats; a console command reaches it.
    let mut alice = Player::join(&games, &address, "alice", "hello from alice").await;
    assert!(app.log_shows(&token, &id, "<alice> hello from alice").await, "the chat is on the console");
    status_until("JavaServer", &address, "alice counted", |(online, ..)| *online == 1).await;
    let mut console = crate::console::viewer(&app, &token, &id).await;
    console.send("say welcome from the console").await;
    alice.saw("[Server] welcome from the console").await;
    let first_seed = seed(&app.log_lines(&token, &id).await).expect("the world's seed");

    // Stopped with the game's own stop command, which saves the world.
    assert_eq!(app.act(&token, &id, "stop").await.status(), 202);
    app.wait_for(&token, &id, "stopped", |s| s["status"] == "stopped").await;
    alice.saw("kicked").await;
    let _ = alice.child.wait().await;
    assert!(app.log_shows(&token, &id, "All dimensions are saved").await, "saved by its stop command, not killed");
    assert!(data.join("world/level.dat").is_file(), "the world is on disk");

    // Started again: the same world, and no second install.
    let fetched = downloads.requests().len();
    assert_eq!(app.act(&token, &id, "start").await.status(), 202);
    app.wait_for(&token, &id, "running again", |s| s["status"] == "running").await;
    assert!(app.log_shows(&token, &id, &format!("World seed: {first_seed}")).await, "the same world");
    assert_eq!(downloads.requests().len(), fetched, "nothing downloaded again");

    // A setting changed on a running server restarts it with the new value.
    let change = app
        .client
        .put(app.url(&format!("/api/servers/{id}/variables")))
        .bearer_auth(&token)
        .json(&json!({ "values": { "MAX_PLAYERS": "2" } }))
        .send()
        .await
        .expect("sent");
    assert_eq!(change.status(), 200);
    status_until("JavaServer", &address, "max players 2", |(_, max, _)| *max == 2).await;

    assert_eq!(app.act(&token, &id, "delete").await.status(), 202);
    app.wait_for(&token, &id, "gone", Value::is_null).await;
}

/// A zip as Mojang ships the Bedrock server: `bedrock_server` (here a script running bedrock-protocol's server)
/// beside its files.
fn bedrock_zip(games: &Path) -> Vec<u8> {
    use std::io::Write as _;
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default().unix_permissions(0o644);
    zip.start_file("bedrock_server", options).expect("entry");
    let script = format!("#!/bin/sh\nexec node {:?}\n", games.join("bedrock-server.js").to_string_lossy());
    zip.write_all(script.as_bytes()).expect("written");
    zip.start_file("server.properties", options).expect("entry");
    zip.write_all(b"server-name=Dedicated Server\nserver-port=19132\nmax-players=10\nlevel-name=Bedrock level\n")
        .expect("written");
    zip.finish().expect("zipped").into_inner()
}

async fn a_bedrock_server_installs_from_its_zip_and_answers_the_ping(backend: Backend) {
    let Some(games) = games() else { return };
    let _turn = one_real_game_at_a_time().await;
    let downloads = FakeDownloads::start().await;
    let zip = bedrock_zip(&games);
    let sha256 = sha256_hex(&zip);
    downloads.publish_file("bedrock-server.zip", zip);
    // The operator's settings for the official zip, here pointing at the fake.
    let url = format!("{}/files/bedrock-server.zip", downloads.paper_api());
    let catalog = catalog::yaml::BUILTIN_YAML
        .replace(r#"pattern: 'https://.+|',"#, r#"pattern: 'https?://.+|',"#)
        .replacen(
            r#"default: "", editable: false, reinstall: true }"#,
            &format!(r#"default: "{url}", editable: false, reinstall: true }}"#),
            1,
        )
        .replacen(
            r#"default: "", editable: false, reinstall: true }"#,
            &format!(r#"default: "{sha256}", editable: false, reinstall: true }}"#),
            1,
        );
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("games.yaml");
    std::fs::write(&path, catalog).expect("catalog");
    let app = spawn_app_with(backend, |settings| settings.catalog_path = Some(path.clone())).await;
    let token = app.signed_up("bedrock@example.com").await;
    let body = json!({ "name": "pocket", "game": "minecraft-bedrock", "plan": "starter", "accept_eula": true,
                       "variables": { "SERVER_NAME": "Spawnpoint Bedrock", "MAX_PLAYERS": "4" } });
    let response = app.create_server(&token, body).await;
    assert_eq!(response.status(), 201);
    let id = response.json::<Value>().await.expect("json")["id"].as_str().expect("id").to_owned();
    let server = app.wait_for(&token, &id, "running", |s| s["status"] == "running").await;
    let address = server["address"].as_str().expect("an address").to_owned();
    // The zip's own server.properties, with Spawnpoint's keys set in it.
    status_until("BedrockServer", &address, "the name and max players chosen", |(online, max, motd)| {
        *online == 0 && *max == 4 && motd == "Spawnpoint Bedrock"
    })
    .await;
    let properties = std::fs::read_to_string(app.game_data(&id).join("server.properties")).expect("properties");
    assert!(properties.contains("level-name=Bedrock level"), "the zip's other keys are kept: {properties}");
    assert!(!app.game_data(&id).join("bedrock-server.zip").exists(), "the archive is gone once unpacked");
    assert_eq!(app.act(&token, &id, "stop").await.status(), 202);
    app.wait_for(&token, &id, "stopped", |s| s["status"] == "stopped").await;
    assert!(app.log_shows(&token, &id, "Quit correctly").await, "stopped by its stop command");
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}
