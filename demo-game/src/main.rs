//! `spawnpoint-demo-game`: a small but real game server, so Spawnpoint can be run and tested end to end without
//! downloading a real game.
//!
//! Players speak a line protocol over TCP:
//!
//! | client sends            | server answers                                                            |
//! |-------------------------|---------------------------------------------------------------------------|
//! | `GET_STATE`             | `STATE <open\|running\|stop>`                                             |
//! | `GET_RUNNING_LENGTH`    | `RUNNING_LENGTH <seconds>` (the current or last match's length, 0 if none) |
//! | `REQUEST_MATCH <secs>`  | starts a match of that length; the first request wins while one runs     |
//!
//! Every client is sent `STATE <state>` on each change and `RUNNING_LENGTH <seconds>` when a match starts;
//! when the match length has passed the state becomes `stop` (a new match may then be requested).
//!
//! The operator's console is standard input: `say <text>` prints `[Server] <text>`, `repeat <n> <text>` prints
//! it `n` times, numbered (a flood, for trying the live console), `list` prints the
//! connected players, `stop` (or SIGTERM, or the console closing) saves and exits cleanly. A world file in the
//! data directory counts the matches played, so persistence across restarts can be seen.

mod world;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Mutex, broadcast};

use crate::world::World;

/// Most lines one `repeat` prints.
const MAX_REPEAT: u32 = 1_000_000;
/// The longest match a client may ask for (a day): anything longer is a typo.
const MAX_MATCH_SECONDS: u64 = 86_400;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Open,
    Running,
    Stop,
}

impl Phase {
    fn as_str(self) -> &'static str {
        match self {
            Phase::Open => "open",
            Phase::Running => "running",
            Phase::Stop => "stop",
        }
    }
}

struct Game {
    phase: Phase,
    match_length: u64,
    /// Numbers each match, so a match's end timer cannot end a later match.
    match_number: u64,
    players: BTreeMap<u64, SocketAddr>,
    world: World,
    /// Off between `save-off` and `save-on`: the world file is then left alone until asked (`save-all`).
    autosave: bool,
}

struct Server {
    game: Mutex<Game>,
    /// Lines sent to every connected player.
    broadcast: broadcast::Sender<String>,
}

struct Args {
    bind: String,
    port: u16,
    data_dir: PathBuf,
}

/// `--port N` / `PORT`, `--data-dir DIR` / `DATA_DIR` (default: the current directory), `--bind ADDRESS` /
/// `BIND_ADDRESS` (default: every address).
fn parse_args() -> anyhow::Result<Args> {
    let mut bind = std::env::var("BIND_ADDRESS").ok();
    let mut port = std::env::var("PORT").ok();
    let mut data_dir = std::env::var("DATA_DIR").ok();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--port" => port = Some(args.next().context("--port needs a value")?),
            "--data-dir" => data_dir = Some(args.next().context("--data-dir needs a value")?),
            "--bind" => bind = Some(args.next().context("--bind needs a value")?),
            "--help" | "-h" => {
                println!(
                    "usage: spawnpoint-demo-game --port N [--data-dir DIR] [--bind ADDRESS]   (or PORT, DATA_DIR, BIND_ADDRESS)"
                );
                std::process::exit(0);
            }
            other => bail!("unknown argument `{other}`"),
        }
    }
    let port = port.context("the port is required: --port N or PORT")?;
    let port = port.parse().with_context(|| format!("port `{port}` is not a number between 0 and 65535"))?;
    Ok(Args {
        bind: bind.unwrap_or_else(|| "0.0.0.0".to_owned()),
        port,
        data_dir: data_dir.map_or_else(|| PathBuf::from("."), PathBuf::from),
    })
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    let world = World::load(&args.data_dir)?;
    let listener = TcpListener::bind((args.bind.as_str(), args.port))
        .await
        .with_context(|| format!("binding {}:{}", args.bind, args.port))?;
    let port = listener.local_addr()?.port();
    say(&format!("World loaded: {} match(es) played so far", world.matches_played));
    let server = Arc::new(Server {
        game: Mutex::new(Game {
            phase: Phase::Open,
            match_length: 0,
            match_number: 0,
            players: BTreeMap::new(),
            world,
            autosave: true,
        }),
        broadcast: broadcast::channel(64).0,
    });
    // Installed before the ready line: a SIGTERM right after it must still save the world, not kill us outright.
    let terminated = terminated()?;
    // Spawnpoint watches for this line to know the game is up.
    say(&format!("Server ready on port {port}"));

    tokio::select! {
        result = accept_players(listener, server.clone()) => result?,
        () = console(server.clone()) => {},
        () = terminated => say("Received SIGTERM"),
    }
    let game = server.game.lock().await;
    game.world.save()?;
    say("World saved, goodbye");
    // Exit now rather than return: tokio's runtime would otherwise wait at shutdown for the blocking thread
    // that is still reading standard input, which may never return.
    std::process::exit(0)
}

/// A line on standard output, flushed at once: it is the console Spawnpoint streams to browsers.
fn say(line: &str) {
    use std::io::Write as _;
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{line}");
    let _ = stdout.flush();
}

async fn accept_players(listener: TcpListener, server: Arc<Server>) -> anyhow::Result<()> {
    let mut next_id = 0u64;
    loop {
        let (stream, addr) = listener.accept().await.context("accepting a player")?;
        next_id += 1;
        let (id, server) = (next_id, server.clone());
        tokio::spawn(async move {
            server.game.lock().await.players.insert(id, addr);
            say(&format!("Player {addr} joined"));
            if let Err(error) = play(stream, &server).await {
                say(&format!("Player {addr}: {error}"));
            }
            server.game.lock().await.players.remove(&id);
            say(&format!("Player {addr} left"));
        });
    }
}

/// One player's connection: answers their commands and relays what happens to everyone.
async fn play(stream: TcpStream, server: &Arc<Server>) -> anyhow::Result<()> {
    let mut events = server.broadcast.subscribe();
    let (reader, mut writer) = stream.into_split();
    let mut lines = BufReader::new(reader).lines();
    loop {
        tokio::select! {
            line = lines.next_line() => {
                let Some(line) = line? else { return Ok(()) };
                if let Some(reply) = handle(server, line.trim()).await {
                    writer.write_all(format!("{reply}\n").as_bytes()).await?;
                }
            }
            event = events.recv() => match event {
                Ok(line) => writer.write_all(format!("{line}\n").as_bytes()).await?,
                // A player too slow to read misses old news, not the connection.
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return Ok(()),
            },
        }
    }
}

/// The reply to one protocol line, if it gets a direct one (match starts are announced to everyone instead).
async fn handle(server: &Arc<Server>, line: &str) -> Option<String> {
    let (command, argument) = line.split_once(' ').map_or((line, ""), |(c, a)| (c, a.trim()));
    let mut game = server.game.lock().await;
    match command {
        "GET_STATE" => Some(format!("STATE {}", game.phase.as_str())),
        "GET_RUNNING_LENGTH" => Some(format!("RUNNING_LENGTH {}", game.match_length)),
        "REQUEST_MATCH" => {
            if game.phase == Phase::Running {
                return Some("ERROR a match is already running".into());
            }
            let seconds = match argument.parse::<u64>() {
                Ok(seconds) if (1..=MAX_MATCH_SECONDS).contains(&seconds) => seconds,
                _ => return Some(format!("ERROR REQUEST_MATCH needs a length of 1 to {MAX_MATCH_SECONDS} seconds")),
            };
            game.phase = Phase::Running;
            game.match_length = seconds;
            game.match_number += 1;
            game.world.matches_played += 1;
            if game.autosave
                && let Err(error) = game.world.save()
            {
                say(&format!("Could not save the world: {error:#}"));
            }
            say(&format!("Match {} started for {seconds} s", game.world.matches_played));
            let _ = server.broadcast.send("STATE running".into());
            let _ = server.broadcast.send(format!("RUNNING_LENGTH {seconds}"));
            tokio::spawn(end_match(server.clone(), game.match_number, seconds));
            None
        }
        "" => None,
        other => Some(format!("ERROR unknown command `{other}`")),
    }
}

async fn end_match(server: Arc<Server>, number: u64, seconds: u64) {
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    let mut game = server.game.lock().await;
    if game.match_number == number && game.phase == Phase::Running {
        game.phase = Phase::Stop;
        say("Match over");
        let _ = server.broadcast.send("STATE stop".into());
    }
}

/// Operator commands on standard input. Returns when asked to stop or when the console closes (the process
/// that started us is gone, so nobody could stop us any more).
async fn console(server: Arc<Server>) {
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let line = line.trim();
        let (command, argument) = line.split_once(' ').map_or((line, ""), |(c, a)| (c, a.trim()));
        match command {
            "say" => say(&format!("[Server] {argument}")),
            // A chatty game, on demand: `repeat 3 hi` prints `[Server] hi 0` to `[Server] hi 2` at once.
            "repeat" => match argument.split_once(' ').map(|(n, text)| (n.parse::<u32>(), text)) {
                Some((Ok(times), text)) if times <= MAX_REPEAT => {
                    use std::io::Write as _;
                    let mut stdout = std::io::stdout().lock();
                    for i in 0..times {
                        let _ = writeln!(stdout, "[Server] {text} {i}");
                    }
                    let _ = stdout.flush();
                }
                _ => say(&format!("Usage: repeat <1-{MAX_REPEAT}> <text>")),
            },
            "list" => {
                let game = server.game.lock().await;
                let names: Vec<String> = game.players.values().map(ToString::to_string).collect();
                say(&format!("{} player(s) connected: {}", names.len(), names.join(", ")));
            }
            // Minecraft's commands around a backup: the world is written at once, and not again until saving is
            // back on, so its files stay still while they are copied.
            "save-off" => {
                server.game.lock().await.autosave = false;
                say("Automatic saving is now disabled");
            }
            "save-all" => {
                let game = server.game.lock().await;
                match game.world.save() {
                    Ok(()) => say("Saved the game"),
                    Err(error) => say(&format!("Could not save the game: {error:#}")),
                }
            }
            "save-on" => {
                server.game.lock().await.autosave = true;
                say("Automatic saving is now enabled");
            }
            "stop" => {
                say("Stopping");
                return;
            }
            "" => {}
            other => say(&format!(
                "Unknown command `{other}`; try say <text>, repeat <n> <text>, list, save-off, save-all, save-on or stop"
            )),
        }
    }
    say("Console closed, stopping");
}

/// Resolves on SIGTERM. The handler is installed when this is called, not when the future is first polled.
fn terminated() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    let mut signal = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    Ok(async move {
        signal.recv().await;
    })
}
