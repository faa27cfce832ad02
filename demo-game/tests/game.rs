//! The demo game as Spawnpoint and players see it: the real binary, its TCP protocol and its console.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader, Lines};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::time::timeout;

const WAIT: Duration = Duration::from_secs(10);

struct Demo {
    child: Child,
    /// `None` once the console is closed.
    stdin: Option<ChildStdin>,
    stdout: Lines<BufReader<ChildStdout>>,
    /// Where players connect.
    host: &'static str,
    port: u16,
}

impl Demo {
    async fn start(data_dir: &Path) -> Self {
        Self::start_on(data_dir, None).await
    }

    /// Starts it listening on `bind` only (`--bind`), or on every address.
    async fn start_on(data_dir: &Path, bind: Option<&'static str>) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_spawnpoint-demo-game"));
        command.args(["--port", "0", "--data-dir"]).arg(data_dir);
        if let Some(bind) = bind {
            command.args(["--bind", bind]);
        }
        let mut child =
            command.stdin(Stdio::piped()).stdout(Stdio::piped()).kill_on_drop(true).spawn().expect("starts");
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let mut demo = Self { child, stdin, stdout, host: bind.unwrap_or("127.0.0.1"), port: 0 };
        let ready = demo.console_line("Server ready on port ").await;
        demo.port = ready.rsplit(' ').next().and_then(|p| p.parse().ok()).expect("a port");
        demo
    }

    /// The next console line containing `needle` (earlier lines are skipped).
    async fn console_line(&mut self, needle: &str) -> String {
        let search = async {
            while let Some(line) = self.stdout.next_line().await.expect("stdout readable") {
                if line.contains(needle) {
                    return line;
                }
            }
            panic!("the game exited before printing {needle:?}");
        };
        timeout(WAIT, search).await.unwrap_or_else(|_| panic!("no console line with {needle:?}"))
    }

    async fn type_command(&mut self, command: &str) {
        let stdin = self.stdin.as_mut().expect("console open");
        stdin.write_all(format!("{command}\n").as_bytes()).await.expect("stdin writable");
    }

    /// Closes standard input, as happens when the process that started the game goes away.
    fn close_console(&mut self) {
        self.stdin = None;
    }

    async fn player(&self) -> Player {
        let (reader, writer) = TcpStream::connect((self.host, self.port)).await.expect("connects").into_split();
        Player { lines: BufReader::new(reader).lines(), writer }
    }
}

struct Player {
    lines: Lines<BufReader<OwnedReadHalf>>,
    writer: OwnedWriteHalf,
}

impl Player {
    async fn send(&mut self, line: &str) {
        self.writer.write_all(format!("{line}\n").as_bytes()).await.expect("sent");
    }

    async fn receive(&mut self) -> String {
        timeout(WAIT, self.lines.next_line())
            .await
            .expect("a line in time")
            .expect("readable")
            .expect("still connected")
    }

    async fn ask(&mut self, line: &str) -> String {
        self.send(line).await;
        self.receive().await
    }
}

#[tokio::test]
async fn players_request_a_match_and_everyone_follows_it_to_the_end() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut demo = Demo::start(dir.path()).await;
    let mut alice = demo.player().await;
    let mut bob = demo.player().await;

    assert_eq!(alice.ask("GET_STATE").await, "STATE open");
    assert_eq!(alice.ask("GET_RUNNING_LENGTH").await, "RUNNING_LENGTH 0");
    assert_eq!(alice.ask("DANCE").await, "ERROR unknown command `DANCE`");
    assert!(alice.ask("REQUEST_MATCH soon").await.starts_with("ERROR"));

    alice.send("REQUEST_MATCH 1").await;
    for player in [&mut alice, &mut bob] {
        assert_eq!(player.receive().await, "STATE running");
        assert_eq!(player.receive().await, "RUNNING_LENGTH 1");
    }
    assert_eq!(bob.ask("REQUEST_MATCH 5").await, "ERROR a match is already running", "the first request wins");
    assert_eq!(bob.ask("GET_STATE").await, "STATE running");

    for player in [&mut alice, &mut bob] {
        assert_eq!(player.receive().await, "STATE stop", "the match ends by itself");
    }
    assert_eq!(alice.ask("GET_RUNNING_LENGTH").await, "RUNNING_LENGTH 1");
    demo.console_line("Match over").await;
}

#[tokio::test]
async fn the_console_says_lists_and_stops_and_the_world_persists() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut demo = Demo::start(dir.path()).await;
    demo.type_command("say hello").await;
    assert_eq!(demo.console_line("[Server]").await, "[Server] hello");

    let mut player = demo.player().await;
    demo.console_line("joined").await;
    demo.type_command("list").await;
    assert!(demo.console_line("player(s) connected").await.starts_with("1 player(s) connected: 127.0.0.1:"));

    player.send("REQUEST_MATCH 60").await;
    assert_eq!(player.receive().await, "STATE running");
    demo.type_command("stop").await;
    demo.console_line("World saved").await;
    let status = timeout(WAIT, demo.child.wait()).await.expect("exits").expect("status");
    assert!(status.success(), "a clean stop: {status}");

    let mut again = Demo::start(dir.path()).await;
    let mut player = again.player().await;
    assert_eq!(player.ask("GET_STATE").await, "STATE open");
    again.type_command("stop").await;
    let loaded = std::fs::read_to_string(dir.path().join("world.txt")).expect("world file");
    assert_eq!(loaded, "matches_played=1\n", "the match played before the restart is remembered");
}

#[tokio::test]
async fn sigterm_and_a_closed_console_both_stop_it_cleanly() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut demo = Demo::start(dir.path()).await;
    let pid = demo.child.id().expect("running");
    let kill = std::process::Command::new("kill").args(["-TERM", &pid.to_string()]).status().expect("kill runs");
    assert!(kill.success());
    demo.console_line("World saved").await;
    assert!(timeout(WAIT, demo.child.wait()).await.expect("exits").expect("status").success());

    let mut orphan = Demo::start(dir.path()).await;
    orphan.close_console();
    orphan.console_line("Console closed").await;
    assert!(timeout(WAIT, orphan.child.wait()).await.expect("exits").expect("status").success());
}

#[tokio::test]
async fn it_listens_only_on_the_address_it_is_bound_to() {
    let dir = tempfile::tempdir().expect("temp dir");
    let demo = Demo::start_on(dir.path(), Some("127.0.0.2")).await;
    assert_eq!(demo.player().await.ask("GET_STATE").await, "STATE open");
    assert!(TcpStream::connect(("127.0.0.1", demo.port)).await.is_err(), "nothing on another address");
}
