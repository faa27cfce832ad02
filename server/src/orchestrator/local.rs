//! The `local` orchestrator: each game server is a child process with its own data directory.
//!
//! Layout under `<data dir>/servers/<id>/`: `data/` (the game's working directory, kept across stop and start),
//! `console.log` (its output, rotated by size) and, while it runs, `pid`. Each game runs in a process group of
//! its own, so stopping it also ends whatever it started. Stop: the game's stop command on its console, then
//! SIGTERM to the group after a grace period, then SIGKILL.
//!
//! Game processes are not tied to Spawnpoint's life (that would need `unsafe` pre-exec code), so a Spawnpoint
//! that was killed leaves them behind. The `pid` files are how the next start finds and ends them
//! ([`LocalDriver::end_leftovers`]) before the reconciler starts fresh ones: never two of one server.

use std::collections::{HashMap, HashSet, VecDeque};
use std::ops::RangeInclusive;
use std::os::unix::process::ExitStatusExt as _;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex as SyncMutex};
use std::time::Duration;

use catalog::output::LineSplitter;
use catalog::{Game, ServerId};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWriteExt as _, BufWriter};
use tokio::process::{ChildStdin, Command};
use tokio::sync::{Mutex, broadcast, watch};

use futures_util::StreamExt as _;
use tokio::sync::broadcast::error::RecvError;

use super::{BoxFuture, DriverError, Observed, Orchestrator, Output, Phase, PortBook, PortClaim, ServerSpec};

/// Output lines kept in memory per server (the console backlog).
const BACKLOG_LINES: usize = catalog::console::BACKLOG_LINES;
/// Output lines a follower may fall behind by before it misses some. The console reads them at once, so this
/// only matters for bursts while it is busy.
const FOLLOW_BUFFER: usize = 4096;
/// How long the output reader waits for followers that are behind before reading on.
const FOLLOWER_PATIENCE: Duration = Duration::from_millis(100);
/// How long typing one command may take before the game is reported as not reading its input.
const TYPE_TIMEOUT: Duration = Duration::from_secs(5);
/// `console.log` is moved to `console.log.1` past this size, so a chatty game cannot fill the disk.
const LOG_ROTATE_BYTES: u64 = 5 * 1024 * 1024;

/// How the local driver is set up.
#[derive(Debug, Clone)]
pub struct LocalConfig {
    /// `SPAWNPOINT_GAME_HOST`: the host part of addresses players are given. Default: the host of
    /// `SPAWNPOINT_PUBLIC_URL`, else 127.0.0.1.
    pub host: String,
    /// `SPAWNPOINT_GAME_PORTS`: game ports are chosen from here (default 25000-29999).
    pub ports: RangeInclusive<u16>,
    /// `SPAWNPOINT_STOP_GRACE`: how long a game gets after each polite stop step before the next, firmer one
    /// (default 10 s).
    pub stop_grace: Duration,
}

pub struct LocalDriver {
    book: Arc<dyn PortBook>,
    root: PathBuf,
    host: String,
    ports: RangeInclusive<u16>,
    stop_grace: Duration,
    processes: Mutex<HashMap<ServerId, Arc<Process>>>,
    events: broadcast::Sender<Observed>,
}

struct Process {
    id: ServerId,
    generation: i64,
    pid: i32,
    stop_command: Option<String>,
    stdin: Mutex<Option<ChildStdin>>,
    phase: watch::Sender<Phase>,
    backlog: SyncMutex<VecDeque<String>>,
    /// Each output line as it comes, for [`Orchestrator::follow`]. Only the output readers hold the sender, so
    /// followers' streams end when the game's output does.
    output: broadcast::WeakSender<String>,
}

impl LocalDriver {
    /// A driver keeping game servers under `servers/` in Spawnpoint's data directory `data_dir`, with the game
    /// ports it hands out recorded in `book`.
    pub fn new(data_dir: &std::path::Path, config: LocalConfig, book: Arc<dyn PortBook>) -> Self {
        Self {
            book,
            root: data_dir.join("servers"),
            host: config.host,
            ports: config.ports,
            stop_grace: config.stop_grace,
            processes: Mutex::new(HashMap::new()),
            events: broadcast::channel(256).0,
        }
    }

    /// Ends every game process a previous Spawnpoint left running (found by its `pid` file, and only if
    /// that pid still belongs to the process that was started, not to one that reused the number).
    pub async fn end_leftovers(&self) {
        let Ok(mut dirs) = tokio::fs::read_dir(&self.root).await else { return };
        while let Ok(Some(dir)) = dirs.next_entry().await {
            let pid_file = dir.path().join("pid");
            let Ok(text) = tokio::fs::read_to_string(&pid_file).await else { continue };
            if let Some((pid, started)) = text.trim().split_once(' ')
                && let Ok(pid) = pid.parse::<i32>()
                && process_start_time(pid).is_some_and(|now| now == started)
            {
                tracing::warn!(server = %dir.file_name().to_string_lossy(), pid, "ending a game process left from before");
                let gone = || async move {
                    while process_start_time(pid).is_some() {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                };
                for signal in [Signal::SIGTERM, Signal::SIGKILL] {
                    let _ = killpg(Pid::from_raw(pid), signal);
                    if tokio::time::timeout(self.stop_grace, gone()).await.is_ok() {
                        break;
                    }
                }
                let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
            }
            let _ = tokio::fs::remove_file(&pid_file).await;
        }
    }

    /// The server's game port: the one it holds, else the first of the range that no other server holds and
    /// nothing else on this machine listens on, recorded in the port book.
    async fn port_for(&self, id: &ServerId) -> Result<u16, DriverError> {
        let held = self.book.held().await?;
        if let Some((_, port)) = held.iter().find(|(owner, _)| owner == id) {
            return Ok(*port);
        }
        let taken: HashSet<u16> = held.into_iter().map(|(_, port)| port).collect();
        for port in self.ports.clone().filter(|port| !taken.contains(port) && port_is_free(*port)) {
            match self.book.claim(id, &self.host, port).await? {
                PortClaim::Claimed => return Ok(port),
                PortClaim::Taken => continue,
                // It holds one after all (whatever the book says now), or it has no record any more.
                PortClaim::NotNeeded => {
                    let held = self.book.held().await?;
                    let port = held.into_iter().find(|(owner, _)| owner == id).map(|(_, port)| port);
                    return port.ok_or_else(|| DriverError::NotRunnable(format!("server {id} is not recorded")));
                }
            }
        }
        Err(DriverError::NoFreePort { first: *self.ports.start(), last: *self.ports.end() })
    }

    fn server_dir(&self, id: &ServerId) -> PathBuf {
        self.root.join(id.as_str())
    }

    async fn spawn(&self, spec: &ServerSpec) -> Result<Arc<Process>, DriverError> {
        let game = &spec.game;
        let local = game.local.as_ref().ok_or_else(|| {
            DriverError::NotRunnable(format!("{} runs only on a cluster (it has no local command)", game.name))
        })?;
        let port = self.port_for(&spec.id).await?;
        let dir = self.server_dir(&spec.id);
        let data = dir.join("data");
        let io = |context: String| move |source| DriverError::Io { context, source };
        tokio::fs::create_dir_all(&data).await.map_err(io(format!("creating {}", data.display())))?;

        let fill = |text: &str| {
            text.replace("{port}", &port.to_string())
                .replace("{data_dir}", &data.to_string_lossy())
                .replace("{memory_mib}", &spec.plan.memory.mebibytes().to_string())
        };
        let mut child = Command::new(resolve_command(&local.command))
            .args(local.args.iter().map(|arg| fill(arg)))
            .envs(&game.env)
            .envs(local.env.iter().map(|(k, v)| (k, fill(v))))
            .env("PORT", port.to_string())
            .current_dir(&data)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            // Only if the driver itself is torn down without stopping its games (tests, panics).
            .kill_on_drop(true)
            .spawn()
            .map_err(io(format!("starting `{}` for server {}", local.command, spec.id)))?;
        let pid = child
            .id()
            .and_then(|pid| i32::try_from(pid).ok())
            .ok_or_else(|| DriverError::NotRunning(spec.id.clone()))?;
        let pid_file = dir.join("pid");
        if let Some(started) = process_start_time(pid) {
            let written = tokio::fs::write(&pid_file, format!("{pid} {started}\n")).await;
            written.map_err(io(format!("writing {}", pid_file.display())))?;
        }

        let followers = broadcast::channel(FOLLOW_BUFFER).0;
        let process = Arc::new(Process {
            id: spec.id.clone(),
            generation: spec.generation,
            pid,
            stop_command: game.stop_command.clone(),
            stdin: Mutex::new(child.stdin.take()),
            phase: watch::channel(Phase::Starting).0,
            backlog: SyncMutex::new(VecDeque::new()),
            output: followers.downgrade(),
        });
        let ready = Phase::Ready { host: self.host.clone(), port };
        let log = Arc::new(Mutex::new(LogFile::new(dir.join("console.log"), LOG_ROTATE_BYTES)));
        let ready_line = local.ready_line.clone();
        for output in [child.stdout.take().map(boxed), child.stderr.take().map(boxed)].into_iter().flatten() {
            let (process, log, events) = (process.clone(), log.clone(), self.events.clone());
            let followers = followers.clone();
            let (ready_line, ready) = (ready_line.clone(), ready.clone());
            tokio::spawn(async move {
                // Bytes, not `lines()`: a line that is not UTF-8 would end that reader, and then the pipe would
                // fill and the game block on its next write.
                let (mut output, mut splitter) = (output, LineSplitter::default());
                let mut chunk = vec![0; 64 * 1024];
                loop {
                    let (lines, ended) = match output.read(&mut chunk).await {
                        Ok(0) | Err(_) => (splitter.finish().into_iter().collect(), true),
                        Ok(n) => (splitter.push(&chunk[..n]), false),
                    };
                    // Backpressure: while what was read is still waiting for the console, wait (a little) before
                    // reading on, so a game printing in a loop is slowed by its pipe instead of lapping its
                    // followers. Bounded, so no follower can stall the game's output for long.
                    let deadline = tokio::time::Instant::now() + FOLLOWER_PATIENCE;
                    while followers.len() > FOLLOW_BUFFER / 2 && tokio::time::Instant::now() < deadline {
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                    let mut log = log.lock().await;
                    for line in lines {
                        log.append(&line).await;
                        if ready_line.as_deref().is_some_and(|ready| line.contains(ready)) {
                            process.set_phase(ready.clone(), &events);
                        }
                        process.remember(line, &followers);
                    }
                    // Once per read rather than per line: a game printing in a loop is written out in large
                    // writes, and what it printed is in the file as soon as it pauses.
                    log.flush().await;
                    if ended {
                        break;
                    }
                }
            });
        }
        if ready_line.is_none() {
            tokio::spawn(probe_until_ready(process.clone(), port, ready, self.events.clone()));
        }
        let (waiter, events) = (process.clone(), self.events.clone());
        tokio::spawn(async move {
            let reason = match child.wait().await {
                Ok(status) => super::exit_reason(status.code(), status.signal()),
                Err(error) => format!("the game could not be waited for: {error}"),
            };
            let _ = tokio::fs::remove_file(&pid_file).await;
            waiter.set_phase(Phase::Exited { reason }, &events);
        });
        tracing::info!(server = %spec.id, pid, port, "game process started");
        Ok(process)
    }
}

/// Ends a process: the stop command, then SIGTERM, then SIGKILL to its group, each after the grace period.
async fn end(process: &Process, grace: Duration) {
    let mut phase = process.phase.subscribe();
    let exited = |phase: &Phase| matches!(phase, Phase::Exited { .. });
    if let Some(command) = &process.stop_command {
        // A game that stopped reading its input (or a command stuck writing to it) must not hold up the stop:
        // the signals come next either way.
        let _ = process.type_line(command, grace).await;
    }
    for signal in [None, Some(Signal::SIGTERM), Some(Signal::SIGKILL)] {
        if let Some(signal) = signal {
            // The group may be gone already; that is the goal, not an error.
            let _ = killpg(Pid::from_raw(process.pid), signal);
        }
        if tokio::time::timeout(grace, phase.wait_for(exited)).await.is_ok() {
            break;
        }
    }
    // The game may have left children in its group; none may outlive it.
    let _ = killpg(Pid::from_raw(process.pid), Signal::SIGKILL);
    tracing::info!(server = %process.id, "game process stopped");
}

impl Process {
    fn set_phase(&self, phase: Phase, events: &broadcast::Sender<Observed>) {
        // Once exited, a late "ready" line must not bring it back to life.
        let changed = self.phase.send_if_modified(|current| {
            let allowed = !matches!(current, Phase::Exited { .. }) && *current != phase;
            if allowed {
                *current = phase.clone();
            }
            allowed
        });
        if changed {
            let _ = events.send(Observed { id: self.id.clone(), generation: self.generation, phase });
        }
    }

    fn observed(&self) -> Observed {
        Observed { id: self.id.clone(), generation: self.generation, phase: self.phase.borrow().clone() }
    }

    /// Writes `line` and a newline to the game's input, giving up after `timeout` (a game that does not read
    /// its input fills the pipe, and the write would wait for ever). A write given up on may have left part of
    /// its line in the pipe, which the game reads joined to the next one; a game in that state is not reading
    /// its input anyway.
    async fn type_line(&self, line: &str, timeout: Duration) -> Result<(), Typed> {
        let typed = async {
            let mut stdin = self.stdin.lock().await;
            let stdin = stdin.as_mut().ok_or(Typed::Closed)?;
            stdin.write_all(format!("{line}\n").as_bytes()).await.map_err(Typed::Failed)?;
            stdin.flush().await.map_err(Typed::Failed)
        };
        tokio::time::timeout(timeout, typed).await.unwrap_or_else(|_| {
            Err(Typed::Failed(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the game is not reading its console input",
            )))
        })
    }

    fn has_exited(&self) -> bool {
        matches!(*self.phase.borrow(), Phase::Exited { .. })
    }

    /// Keeps a line in the backlog and passes it to followers, under the backlog's lock so that a follower that
    /// starts meanwhile gets it exactly once (in the backlog it copies, or live).
    fn remember(&self, line: String, output: &broadcast::Sender<String>) {
        if let Ok(mut backlog) = self.backlog.lock() {
            if backlog.len() == BACKLOG_LINES {
                backlog.pop_front();
            }
            backlog.push_back(line.clone());
            let _ = output.send(line);
        }
    }
}

impl Orchestrator for LocalDriver {
    fn check_runnable(&self, game: &Game) -> Result<(), String> {
        match game.local {
            Some(_) => Ok(()),
            None => {
                Err(format!("{} runs only on a cluster; this host runs games that have a local command", game.name))
            }
        }
    }

    fn ensure_running<'a>(&'a self, spec: &'a ServerSpec) -> BoxFuture<'a, Result<(), DriverError>> {
        Box::pin(async move {
            let current = self.processes.lock().await.get(&spec.id).cloned();
            match current {
                Some(process) if !process.has_exited() && process.generation == spec.generation => return Ok(()),
                // Started for an older generation: the user asked for a restart since.
                Some(process) if !process.has_exited() => self.stop(&process.id).await?,
                _ => {}
            }
            let process = self.spawn(spec).await?;
            self.processes.lock().await.insert(spec.id.clone(), process);
            Ok(())
        })
    }

    fn stop<'a>(&'a self, id: &'a ServerId) -> BoxFuture<'a, Result<(), DriverError>> {
        Box::pin(async move {
            let process = self.processes.lock().await.remove(id);
            if let Some(process) = process {
                end(&process, self.stop_grace).await;
            }
            Ok(())
        })
    }

    fn destroy<'a>(&'a self, id: &'a ServerId) -> BoxFuture<'a, Result<(), DriverError>> {
        Box::pin(async move {
            self.stop(id).await?;
            let dir = self.server_dir(id);
            match tokio::fs::remove_dir_all(&dir).await {
                Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
                    Err(DriverError::Io { context: format!("deleting {}", dir.display()), source: error })
                }
                _ => Ok(()),
            }
        })
    }

    fn observe(&self) -> BoxFuture<'_, Vec<Observed>> {
        Box::pin(async move { self.processes.lock().await.values().map(|process| process.observed()).collect() })
    }

    fn stored(&self) -> BoxFuture<'_, Result<Vec<ServerId>, DriverError>> {
        // Data directories are removed only through a deleted row, never for lacking one: a Spawnpoint started
        // on the wrong database must not wipe every world on the machine.
        Box::pin(async { Ok(Vec::new()) })
    }

    fn phase<'a>(&'a self, id: &'a ServerId) -> BoxFuture<'a, Option<Observed>> {
        Box::pin(async move { self.processes.lock().await.get(id).map(|process| process.observed()) })
    }

    fn events(&self) -> broadcast::Receiver<Observed> {
        self.events.subscribe()
    }

    fn logs<'a>(&'a self, id: &'a ServerId, tail: usize) -> BoxFuture<'a, Result<Vec<String>, DriverError>> {
        Box::pin(async move {
            if let Some(process) = self.processes.lock().await.get(id)
                && let Ok(backlog) = process.backlog.lock()
            {
                return Ok(backlog.iter().skip(backlog.len().saturating_sub(tail)).cloned().collect());
            }
            // Not running: what the log file kept.
            let path = self.server_dir(id).join("console.log");
            match tokio::fs::read_to_string(&path).await {
                Ok(text) => {
                    let lines: Vec<&str> = text.lines().collect();
                    Ok(lines[lines.len().saturating_sub(tail)..].iter().map(|l| (*l).to_owned()).collect())
                }
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
                Err(error) => Err(DriverError::Io { context: format!("reading {}", path.display()), source: error }),
            }
        })
    }

    fn follow<'a>(&'a self, id: &'a ServerId, tail: usize) -> BoxFuture<'a, Result<Output, DriverError>> {
        Box::pin(async move {
            let not_running = || DriverError::NotRunning(id.to_owned());
            let process = self.processes.lock().await.get(id).cloned().ok_or_else(not_running)?;
            let (recent, live) = {
                let backlog = process.backlog.lock().map_err(|_| not_running())?;
                // Gone once both output readers have ended: the game's output is over.
                let output = process.output.upgrade().ok_or_else(not_running)?;
                let recent: Vec<String> = backlog.iter().skip(backlog.len().saturating_sub(tail)).cloned().collect();
                (recent, output.subscribe())
            };
            let live = futures_util::stream::unfold(live, |mut live| async move {
                loop {
                    match live.recv().await {
                        Ok(line) => return Some((line, live)),
                        // Not expected (the console reads at once); what was missed is in `console.log`.
                        Err(RecvError::Lagged(_)) => {}
                        Err(RecvError::Closed) => return None,
                    }
                }
            });
            Ok(Output { run: process.pid.to_string(), lines: futures_util::stream::iter(recent).chain(live).boxed() })
        })
    }

    fn send_input<'a>(&'a self, id: &'a ServerId, line: &'a str) -> BoxFuture<'a, Result<(), DriverError>> {
        Box::pin(async move {
            let process =
                self.processes.lock().await.get(id).cloned().ok_or_else(|| DriverError::NotRunning(id.clone()))?;
            process.type_line(line, TYPE_TIMEOUT).await.map_err(|error| match error {
                Typed::Closed => DriverError::NotRunning(id.clone()),
                Typed::Failed(source) => {
                    DriverError::Io { context: format!("typing on server {id}'s console"), source }
                }
            })
        })
    }

    fn shutdown(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            let processes: Vec<_> = self.processes.lock().await.drain().map(|(_, process)| process).collect();
            let mut ending = tokio::task::JoinSet::new();
            for process in processes {
                let grace = self.stop_grace;
                ending.spawn(async move { end(&process, grace).await });
            }
            ending.join_all().await;
        })
    }
}

fn boxed(output: impl AsyncRead + Send + Unpin + 'static) -> Box<dyn AsyncRead + Send + Unpin> {
    Box::new(output)
}

/// A game without a ready line is ready once its port takes a TCP connection.
async fn probe_until_ready(process: Arc<Process>, port: u16, ready: Phase, events: broadcast::Sender<Observed>) {
    loop {
        if process.has_exited() {
            return;
        }
        if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
            process.set_phase(ready, &events);
            return;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The start time of process `pid` (field 22 of `/proc/<pid>/stat`, in clock ticks since boot): with the pid,
/// it names one process for good, where a pid alone may be reused. `None` when no such process runs (a zombie
/// runs nothing, so it counts as gone).
fn process_start_time(pid: i32) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may itself hold spaces or parentheses.
    let (_, rest) = stat.rsplit_once(") ")?;
    let mut fields = rest.split_whitespace();
    if fields.next()? == "Z" {
        return None;
    }
    // `rest` starts at field 3 (state); field 22 is 19 further on.
    fields.nth(18).map(str::to_owned)
}

/// A bare command name is looked for beside the `spawnpoint` binary first (where a build puts
/// `spawnpoint-demo-game`), then on `PATH`.
pub fn resolve_command(command: &str) -> PathBuf {
    if command.contains('/') {
        return PathBuf::from(command);
    }
    let beside_us = std::env::current_exe().ok().and_then(|exe| {
        // Test binaries live one level deeper (`target/debug/deps`) than the binaries they test.
        exe.ancestors().skip(1).take(2).map(|dir| dir.join(command)).find(|candidate| candidate.is_file())
    });
    beside_us.unwrap_or_else(|| PathBuf::from(command))
}

/// `console.log`, appended to and rotated by size. The file stays open between lines.
struct LogFile {
    path: PathBuf,
    /// Rotate past this many bytes.
    limit: u64,
    open: Option<(BufWriter<tokio::fs::File>, u64)>,
}

/// Why a line could not be typed on a game's console.
enum Typed {
    /// The game's input is closed: it is not running.
    Closed,
    Failed(std::io::Error),
}

impl LogFile {
    fn new(path: PathBuf, limit: u64) -> Self {
        Self { path, limit, open: None }
    }

    /// Adds a line; it reaches the file at the next [`Self::flush`].
    async fn append(&mut self, line: &str) {
        if self.open.as_ref().is_some_and(|(_, written)| *written > self.limit) {
            self.flush().await;
            self.open = None;
            let _ = tokio::fs::rename(&self.path, self.path.with_extension("log.1")).await;
        }
        if self.open.is_none() {
            let file = tokio::fs::OpenOptions::new().create(true).append(true).open(&self.path).await;
            let Ok(file) = file else { return };
            let written = file.metadata().await.map(|m| m.len()).unwrap_or(0);
            self.open = Some((BufWriter::with_capacity(64 * 1024, file), written));
        }
        if let Some((file, written)) = self.open.as_mut()
            && file.write_all(line.as_bytes()).await.is_ok()
            && file.write_all(b"\n").await.is_ok()
        {
            *written += line.len() as u64 + 1;
        }
    }

    /// Makes what was appended readable in the file.
    async fn flush(&mut self) {
        if let Some((file, _)) = self.open.as_mut() {
            let _ = file.flush().await;
        }
    }
}

/// Whether nothing else on this machine listens on `port` (a game given it could not start otherwise).
fn port_is_free(port: u16) -> bool {
    std::net::TcpListener::bind(("0.0.0.0", port)).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_log_rotates_by_size_keeping_one_old_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("console.log");
        let mut log = LogFile::new(path.clone(), 1000);
        let line = "x".repeat(99); // 100 bytes with its newline
        for _ in 0..25 {
            log.append(&line).await;
        }
        log.flush().await;
        let size = |path: &std::path::Path| std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        // Rotated after lines 11 and 22: the oldest batch is dropped, the one before the current file is kept.
        let old = path.with_extension("log.1");
        assert_eq!(size(&old), 1100, "console.log.1 holds the previous batch");
        assert_eq!(size(&path), 300, "console.log holds what came since");

        // A fresh writer (a restarted game) continues the existing file and its count.
        let before = size(&path);
        let mut again = LogFile::new(path.clone(), 1000);
        again.append("after a restart").await;
        assert_eq!(size(&path), before, "held until flushed");
        again.flush().await;
        assert_eq!(size(&path), before + 16);
    }
}
