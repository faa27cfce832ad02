//! The `local` orchestrator: each game server is a process on this machine with its own data directory.
//!
//! Layout under `<data dir>/servers/<id>/`: `data/` (the game's working directory, kept across stop and start,
//! owned by the game's user), `installed` (what was last installed), `launch.json`, `console.log` (its output,
//! rotated by size), `console.sock` while it runs, and `supervisor.log`.
//!
//! A start installs the game's files if they are not installed yet (or a reinstall or another version asks for
//! it: [`install`]), sets the keys of its config files ([`config_files`]), then starts its supervisor
//! ([`shim`]), which runs the game detached from the panel: the game outlives a panel that crashes or is upgraded,
//! and the next panel re-attaches to it ([`LocalDriver::adopt`]) instead of starting it again. Stop: the game's
//! stop command on its console, then SIGTERM to its process group after a grace period, then SIGKILL. A panel
//! that stops cleanly stops its games too, unless `SPAWNPOINT_KEEP_GAMES` says to leave them running.

mod config_files;
mod files;
pub mod install;
mod isolation;
mod log_file;
mod server_files;
pub mod shim;
mod wire;

use std::collections::{HashMap, HashSet, VecDeque};
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex as SyncMutex};
use std::time::Duration;

use catalog::gameserver::InstallProgress;
use catalog::install::java_for_minecraft;
use catalog::variables::{Values, fill};
use catalog::{Game, ServerId};
use futures_util::StreamExt as _;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::UnixStream;
use tokio::net::unix::OwnedWriteHalf;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{Mutex, broadcast, watch};

use self::install::{Installer, Report, Sources};
use self::isolation::Isolation;
use self::server_files::LocalFiles;
use self::wire::{Event, Input, Launch};
use super::files::{FilesError, ServerFiles};
use super::{BoxFuture, DriverError, Observed, Orchestrator, Output, Phase, PortBook, PortClaim, ServerSpec};

/// Output lines kept in memory per server (the console backlog).
const BACKLOG_LINES: usize = catalog::console::BACKLOG_LINES;
/// Output lines a follower may fall behind by before it misses some.
const FOLLOW_BUFFER: usize = 4096;
/// How long typing one command may take before the game is reported as not reading its input.
const TYPE_TIMEOUT: Duration = Duration::from_secs(5);
/// `console.log` is moved to `console.log.1` past this size, so a chatty game cannot fill the disk.
pub(crate) const LOG_ROTATE_BYTES: u64 = 5 * 1024 * 1024;
/// How long the output of a game waits for followers that are behind before going on without them.
const FOLLOWER_PATIENCE: Duration = Duration::from_millis(100);
/// How long a server's measured disk use is shown before it is measured again.
const DISK_MEASURED_EVERY: Duration = Duration::from_secs(5);
/// How long a new supervisor has to open its socket.
const SUPERVISOR_START: Duration = Duration::from_secs(10);
/// The `PATH` games get: the system's, not the panel's.
const GAME_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

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
    /// `SPAWNPOINT_GAME_USER`: the group games run in, as their own users, when Spawnpoint runs as root
    /// (default `spawnpoint-game`, created if missing).
    pub game_user: String,
    /// `SPAWNPOINT_KEEP_GAMES`: a panel that stops cleanly leaves its games running (default false: it stops
    /// them; a panel that crashes leaves them running either way).
    pub keep_games: bool,
    /// `SPAWNPOINT_PAPER_API`, `SPAWNPOINT_MOJANG_MANIFEST`: where install steps fetch from.
    pub sources: Sources,
}

pub struct LocalDriver {
    inner: Arc<Inner>,
    processes: Mutex<HashMap<ServerId, Arc<Process>>>,
    /// Each server's disk use, when it was last measured (a walk of its files, so not at every request).
    disk: Mutex<HashMap<ServerId, (tokio::time::Instant, u64)>>,
}

/// What every server's run needs from the driver.
struct Inner {
    book: Arc<dyn PortBook>,
    root: PathBuf,
    host: String,
    ports: RangeInclusive<u16>,
    stop_grace: Duration,
    keep_games: bool,
    sources: Sources,
    http: reqwest::Client,
    isolation: Isolation,
    /// The Java major version on this host's `PATH`, if any.
    java: Option<u32>,
    events: broadcast::Sender<Observed>,
}

/// One server's run: installing, then its game under a supervisor.
struct Process {
    id: ServerId,
    generation: i64,
    stop_command: Option<String>,
    /// The game's process (and process group), once its supervisor said; 0 before.
    pid: AtomicI32,
    /// Input to the game, through its supervisor.
    input: Mutex<Option<OwnedWriteHalf>>,
    phase: watch::Sender<Phase>,
    backlog: SyncMutex<VecDeque<String>>,
    /// Each output line as it comes, for [`Orchestrator::follow`]; taken when the run ends, so that followers'
    /// streams end with it.
    output: SyncMutex<Option<broadcast::Sender<String>>>,
    /// The install or start in progress, stopped if the server is stopped meanwhile.
    task: SyncMutex<Option<tokio::task::AbortHandle>>,
}

impl LocalDriver {
    /// A driver keeping game servers under `servers/` in Spawnpoint's data directory `data_dir`, with the game
    /// ports it hands out recorded in `book`.
    pub fn new(data_dir: &Path, config: LocalConfig, book: Arc<dyn PortBook>) -> Self {
        // Install steps fetch over TLS (the process's provider, as every client of Spawnpoint's uses).
        crate::install_crypto_provider();
        let http = reqwest::Client::builder()
            .user_agent(concat!("Spawnpoint/", env!("CARGO_PKG_VERSION"), " (game server hosting)"))
            .connect_timeout(Duration::from_secs(10))
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        if let Err(error) = isolation::protect_data_dir(data_dir) {
            tracing::warn!(%error, dir = %data_dir.display(), "could not make the data directory private");
        }
        let inner = Inner {
            book,
            root: data_dir.join("servers"),
            host: config.host,
            ports: config.ports,
            stop_grace: config.stop_grace,
            keep_games: config.keep_games,
            sources: config.sources,
            http,
            isolation: Isolation::detect(&config.game_user),
            java: java_major(),
            events: broadcast::channel(256).0,
        };
        Self { inner: Arc::new(inner), processes: Mutex::new(HashMap::new()), disk: Mutex::new(HashMap::new()) }
    }

    /// Re-attaches to the games a previous Spawnpoint left running (each one's supervisor answers on its
    /// socket), so they go on without a restart. Games of Spawnpoint versions before supervisors, found by their
    /// `pid` file, are ended instead: nothing can re-attach to them, and they must not run twice.
    pub async fn adopt(&self) {
        let Ok(mut dirs) = tokio::fs::read_dir(&self.inner.root).await else { return };
        while let Ok(Some(dir)) = dirs.next_entry().await {
            let dir = dir.path();
            self.inner.end_legacy_game(&dir).await;
            let swept = dir.clone();
            let _ = tokio::task::spawn_blocking(move || server_files::finish_restores(&swept)).await;
            let Some(id) = dir.file_name().map(|name| ServerId::new(name.to_string_lossy().into_owned())) else {
                continue;
            };
            let Ok(stream) = UnixStream::connect(dir.join("console.sock")).await else { continue };
            let Some(launch) = read_launch(&dir) else { continue };
            let Some(attached) = attach(stream).await else { continue };
            let process = Process::new(&id, launch.generation, launch.stop_command.clone());
            process.pid.store(attached.pid, Ordering::SeqCst);
            tracing::info!(server = %id, pid = attached.pid, "re-attached to a game that kept running");
            let task = tokio::spawn(self.inner.clone().follow_supervisor(process.clone(), attached, launch));
            process.hold(task.abort_handle());
            self.processes.lock().await.insert(id, process);
        }
    }

    /// What this machine cannot enforce of the plans (no cgroups, not root), for `/ready`.
    pub fn limitations(&self) -> Vec<String> {
        self.inner.isolation.limitations().to_vec()
    }

    async fn start(&self, spec: &ServerSpec) -> Result<Arc<Process>, DriverError> {
        let game = &spec.game;
        if game.local.is_none() {
            return Err(DriverError::NotRunnable(format!("{} runs only on a cluster", game.name)));
        }
        let port = self.inner.port_for(&spec.id).await?;
        let process = Process::new(&spec.id, spec.generation, game.stop_command.clone());
        let task = tokio::spawn(self.inner.clone().run(spec.clone(), port, process.clone()));
        process.hold(task.abort_handle());
        Ok(process)
    }
}

impl Inner {
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

    /// The server's directory and its data directory, made if missing and belonging to its game's user.
    fn prepare_dirs(&self, id: &ServerId, port: u16) -> Result<LocalFiles, String> {
        let dir = self.server_dir(id);
        let data = dir.join("data");
        std::fs::create_dir_all(&dir).map_err(|e| format!("creating the server's directory: {e}"))?;
        // The game passes through these to its own directory; it may not list them.
        for passage in [&self.root, &dir] {
            let mode = std::os::unix::fs::PermissionsExt::from_mode(0o711);
            std::fs::set_permissions(passage, mode).map_err(|e| format!("preparing the server's directory: {e}"))?;
        }
        let user = self.isolation.user_for(port);
        isolation::prepare_data_dir(&data, user).map_err(|e| format!("preparing the server's files: {e}"))?;
        Ok(LocalFiles { server_dir: dir, data, user })
    }

    /// One run: install if needed, configure, start the supervisor, then follow it until the game ends.
    async fn run(self: Arc<Self>, spec: ServerSpec, port: u16, process: Arc<Process>) {
        let launched = self.prepare(&spec, port, &process).await;
        match launched {
            Ok(Some((attached, launch))) => self.follow_supervisor(process, attached, launch).await,
            Ok(None) => {}
            Err(reason) => {
                process.line(format!("[Spawnpoint] {reason}"));
                process.set_phase(Phase::Exited { reason }, &self.events);
                process.end_output();
            }
        }
    }

    /// Everything up to a running supervisor; `None` when the install failed (the phase says so).
    async fn prepare(
        &self,
        spec: &ServerSpec,
        port: u16,
        process: &Arc<Process>,
    ) -> Result<Option<(Attached, Launch)>, String> {
        let (game, plan) = (&spec.game, &spec.plan);
        let local = game.local.as_ref().ok_or("the game has no local section")?;
        let LocalFiles { server_dir: dir, data, user } = self.prepare_dirs(&spec.id, port)?;
        let variables = effective_values(spec);
        let values = |name: &str| template_value(name, spec, &variables, port, &data);
        let env = game_env(game, local, &values, port, &data)?;

        // Install, when what was installed is not what this run needs.
        let steps = install::filled(&local.install, &variables, |text| fill(text, values).map_err(|e| e.to_string()))
            .map_err(|e| e.to_string())?;
        let key = install::key(spec.install_generation, &steps);
        let key_file = install::key_file(&dir);
        if std::fs::read_to_string(&key_file).ok().as_deref() != Some(key.as_str()) {
            let _ = std::fs::remove_file(&key_file);
            let report = Reporter { process: process.clone(), events: self.events.clone() };
            let installer = Installer {
                http: &self.http,
                sources: &self.sources,
                data: &data,
                user,
                env: &env,
                max_unpacked: &plan.storage,
                java: self.java,
                report: &report,
            };
            if let Err(failed) = installer.run(&steps).await {
                let reason = failed.to_string();
                tracing::warn!(server = %spec.id, %reason, "install failed");
                process.line(format!("[install] failed: {reason}"));
                process.set_phase(Phase::InstallFailed { reason }, &self.events);
                process.end_output();
                return Ok(None);
            }
            std::fs::write(&key_file, &key).map_err(|e| format!("recording the install: {e}"))?;
        }

        let mut edits = Vec::new();
        for file in &local.config_files {
            let set: Vec<(String, String)> = file
                .set
                .iter()
                .map(|(key, value)| fill(value, values).map(|value| (key.clone(), value)).map_err(|e| e.to_string()))
                .collect::<Result<_, _>>()?;
            edits.push((file.clone(), set));
        }
        let into = data.clone();
        isolation::as_game(user, move || config_files::write_all(&into, &edits)).await??;

        let command = fill(&local.command, values).map_err(|e| e.to_string())?;
        let program = if installed_by_steps(&command) { data.join(&command) } else { resolve_command(&command) };
        let args = local.args.iter().map(|arg| fill(arg, values)).collect::<Result<Vec<_>, _>>();
        let (cgroups, rlimits) =
            self.isolation.limits(&spec.id, plan).map_err(|e| format!("setting the plan's limits: {e}"))?;
        let launch = Launch {
            generation: spec.generation,
            port,
            program,
            args: args.map_err(|e| e.to_string())?,
            env,
            cwd: data.clone(),
            user,
            cgroups,
            rlimits,
            memory_limit: plan.memory.to_string(),
            ready_line: local.ready_line.clone(),
            stop_command: game.stop_command.clone(),
        };
        let json = serde_json::to_vec_pretty(&launch).map_err(|e| e.to_string())?;
        files::replace_file(&dir.join("launch.json"), &json).map_err(|e| format!("writing launch.json: {e}"))?;
        let stream = self.start_supervisor(&dir).await?;
        let attached = attach(stream).await.ok_or("the game's supervisor did not answer")?;
        process.pid.store(attached.pid, Ordering::SeqCst);
        tracing::info!(server = %spec.id, port, pid = attached.pid, "game started");
        Ok(Some((attached, launch)))
    }

    /// Starts the server's supervisor and connects to it.
    async fn start_supervisor(&self, dir: &Path) -> Result<UnixStream, String> {
        let socket = dir.join("console.sock");
        let _ = std::fs::remove_file(&socket);
        let log = std::fs::File::create(dir.join("supervisor.log")).map_err(|e| format!("supervisor.log: {e}"))?;
        let errors = log.try_clone().map_err(|e| format!("supervisor.log: {e}"))?;
        let mut child = tokio::process::Command::new(supervisor_binary())
            .arg("game-supervisor")
            .arg(dir)
            // The panel's environment holds its secrets; the supervisor needs none of it.
            .env_clear()
            .env("PATH", GAME_PATH)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(errors)
            .spawn()
            .map_err(|e| format!("starting the game's supervisor: {e}"))?;
        let deadline = tokio::time::Instant::now() + SUPERVISOR_START;
        loop {
            if let Ok(stream) = UnixStream::connect(&socket).await {
                // Reaped when it ends; it is not ended with the panel.
                tokio::spawn(async move { child.wait().await });
                return Ok(stream);
            }
            if let Ok(Some(_)) = child.try_wait() {
                // Its last line says why, with this machine's paths: for the log, not for the owner's status.
                let said = std::fs::read_to_string(dir.join("supervisor.log")).unwrap_or_default();
                let last = said.lines().last().unwrap_or("it exited");
                tracing::warn!(dir = %dir.display(), cause = last, "a game's supervisor could not start it");
                return Err("the game could not be started (its program is missing or not executable)".to_owned());
            }
            if tokio::time::Instant::now() > deadline {
                let _ = child.start_kill();
                return Err("the game's supervisor did not start".to_owned());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Follows a supervisor until its game ends (or the supervisor goes).
    async fn follow_supervisor(self: Arc<Self>, process: Arc<Process>, attached: Attached, launch: Launch) {
        let Attached { pid: _, mut lines, input } = attached;
        *process.input.lock().await = Some(input);
        let ready = Phase::Ready { host: self.host.clone(), port: launch.port };
        if launch.ready_line.is_none() {
            tokio::spawn(probe_until_ready(process.clone(), launch.port, ready.clone(), self.events.clone()));
        }
        let (mut ended, mut patience) = (None, Patience::default());
        while let Some(event) = shim::next_event(&mut lines).await {
            match event {
                // Only ever first, and read by `attach`.
                Event::Hello { .. } => {}
                Event::Line(line) => {
                    patience.wait(|| process.followers_behind() > FOLLOW_BUFFER / 2).await;
                    process.line(line);
                }
                Event::Ready => process.set_phase(ready.clone(), &self.events),
                Event::Exited { reason } => {
                    ended = Some(reason);
                    break;
                }
            }
        }
        let reason = ended.unwrap_or_else(|| "the game's supervisor ended unexpectedly".to_owned());
        *process.input.lock().await = None;
        process.set_phase(Phase::Exited { reason }, &self.events);
        process.end_output();
        self.isolation.release(&process.id);
    }

    /// Ends a game left by a Spawnpoint from before supervisors (a `pid` file: the pid and its start time, so a
    /// reused pid is never signalled).
    async fn end_legacy_game(&self, dir: &Path) {
        let pid_file = dir.join("pid");
        let Ok(text) = tokio::fs::read_to_string(&pid_file).await else { return };
        if let Some((pid, started)) = text.trim().split_once(' ')
            && let Ok(pid) = pid.parse::<i32>()
            && process_start_time(pid).is_some_and(|now| now == started)
        {
            tracing::warn!(dir = %dir.display(), pid, "ending a game process left from before");
            for signal in [Signal::SIGTERM, Signal::SIGKILL] {
                let _ = killpg(Pid::from_raw(pid), signal);
                let gone = async {
                    while process_start_time(pid).is_some() {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                };
                if tokio::time::timeout(self.stop_grace, gone).await.is_ok() {
                    break;
                }
            }
        }
        let _ = tokio::fs::remove_file(&pid_file).await;
    }
}

/// A connection to a game's supervisor, past its hello.
struct Attached {
    /// The game's process (and process group).
    pid: i32,
    lines: tokio::io::Lines<BufReader<tokio::net::unix::OwnedReadHalf>>,
    input: OwnedWriteHalf,
}

/// Reads a supervisor's hello: every connection starts with one.
async fn attach(stream: UnixStream) -> Option<Attached> {
    let (read, input) = stream.into_split();
    let mut lines = BufReader::new(read).lines();
    let hello = tokio::time::timeout(SUPERVISOR_START, shim::next_event(&mut lines)).await.ok()??;
    let Event::Hello { pid } = hello else { return None };
    Some(Attached { pid, lines, input })
}

/// Every variable of the server's game: its own value, else the default (a game may have gained variables since
/// the server was made).
fn effective_values(spec: &ServerSpec) -> Values {
    let players = spec.plan.players.max;
    let values = spec.game.variables.iter().map(|variable| {
        let value = spec.variables.get(&variable.key).cloned().unwrap_or_else(|| variable.default_for(players));
        (variable.key.clone(), value)
    });
    Values(values.collect())
}

/// The value of a template placeholder for one server.
fn template_value(name: &str, spec: &ServerSpec, variables: &Values, port: u16, data: &Path) -> Option<String> {
    match name {
        "port" => Some(port.to_string()),
        "data_dir" => Some(data.to_string_lossy().into_owned()),
        "memory_mib" => Some(spec.plan.memory.mebibytes().to_string()),
        "eula" => Some(spec.eula_accepted.to_string()),
        key => variables.get(key).cloned(),
    }
}

/// The game's whole environment: the catalog's, its variables, `PORT`, a system `PATH` and `HOME` (its data
/// directory). Nothing of the panel's own (its database URL, signing secret, provider keys).
fn game_env(
    game: &Game,
    local: &catalog::LocalProcess,
    values: &dyn Fn(&str) -> Option<String>,
    port: u16,
    data: &Path,
) -> Result<Vec<(String, String)>, String> {
    let mut env: Vec<(String, String)> = vec![
        ("PATH".into(), GAME_PATH.into()),
        ("HOME".into(), data.to_string_lossy().into_owned()),
        ("LANG".into(), "C.UTF-8".into()),
    ];
    env.extend(game.env.iter().map(|(k, v)| (k.clone(), v.clone())));
    for variable in &game.variables {
        env.extend(values(&variable.key).map(|value| (variable.key.clone(), value)));
    }
    for (key, value) in &local.env {
        env.push((key.clone(), fill(value, values).map_err(|e| e.to_string())?));
    }
    env.push(("PORT".into(), port.to_string()));
    Ok(env)
}

/// Install output and progress, on the server's console and its phase.
struct Reporter {
    process: Arc<Process>,
    events: broadcast::Sender<Observed>,
}

impl Report for Reporter {
    fn line(&self, line: String) {
        self.process.line(line);
    }

    fn progress(&self, progress: InstallProgress) {
        self.process.set_phase(Phase::Installing(progress), &self.events);
    }
}

/// Ends a run: the stop command, then SIGTERM, then SIGKILL to the game's group, each after the grace period.
async fn end(process: &Process, grace: Duration, isolation: &Isolation) {
    if let Some(task) = process.task.lock().ok().and_then(|mut task| task.take())
        && process.pid.load(Ordering::SeqCst) == 0
    {
        // Still installing or starting: nothing runs yet to stop politely. A game its supervisor started in the
        // meantime is in the server's cgroups, and ends with them.
        task.abort();
        isolation.release(&process.id);
        return;
    }
    let mut phase = process.phase.subscribe();
    let exited = |phase: &Phase| matches!(phase, Phase::Exited { .. });
    if let Some(command) = &process.stop_command {
        // A game that stopped reading its input must not hold up the stop: the signals come next either way.
        let _ = process.type_line(command, grace).await;
    }
    let pid = process.pid.load(Ordering::SeqCst);
    for signal in [None, Some(Signal::SIGTERM), Some(Signal::SIGKILL)] {
        if let Some(signal) = signal {
            // The group may be gone already; that is the goal, not an error.
            let _ = killpg(Pid::from_raw(pid), signal);
        }
        if tokio::time::timeout(grace, phase.wait_for(exited)).await.is_ok() {
            break;
        }
    }
    tracing::info!(server = %process.id, "game stopped");
}

impl Process {
    fn new(id: &ServerId, generation: i64, stop_command: Option<String>) -> Arc<Self> {
        Arc::new(Self {
            id: id.clone(),
            generation,
            stop_command,
            pid: AtomicI32::new(0),
            input: Mutex::new(None),
            phase: watch::channel(Phase::Starting).0,
            backlog: SyncMutex::new(VecDeque::new()),
            output: SyncMutex::new(Some(broadcast::channel(FOLLOW_BUFFER).0)),
            task: SyncMutex::new(None),
        })
    }

    fn hold(&self, task: tokio::task::AbortHandle) {
        if let Ok(mut held) = self.task.lock() {
            *held = Some(task);
        }
    }

    fn set_phase(&self, phase: Phase, events: &broadcast::Sender<Observed>) {
        // Once over, a late "ready" line or progress report must not bring it back.
        let over = |phase: &Phase| matches!(phase, Phase::Exited { .. } | Phase::InstallFailed { .. });
        let changed = self.phase.send_if_modified(|current| {
            let allowed = !over(current) && *current != phase;
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

    /// Writes `line` to the game's input through its supervisor, giving up after `timeout`.
    async fn type_line(&self, line: &str, timeout: Duration) -> Result<(), Typed> {
        let typed = async {
            let mut input = self.input.lock().await;
            let input = input.as_mut().ok_or(Typed::Closed)?;
            let mut message =
                serde_json::to_vec(&Input { input: line.to_owned() }).map_err(|e| Typed::Failed(e.into()))?;
            message.push(b'\n');
            input.write_all(&message).await.map_err(Typed::Failed)
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
    fn line(&self, line: String) {
        if let Ok(mut backlog) = self.backlog.lock() {
            if backlog.len() == BACKLOG_LINES {
                backlog.pop_front();
            }
            backlog.push_back(line.clone());
            if let Ok(output) = self.output.lock()
                && let Some(output) = output.as_ref()
            {
                let _ = output.send(line);
            }
        }
    }

    /// How many lines the slowest follower has yet to read.
    fn followers_behind(&self) -> usize {
        self.output.lock().ok().and_then(|output| output.as_ref().map(broadcast::Sender::len)).unwrap_or(0)
    }

    /// The run's output is over: followers' streams end.
    fn end_output(&self) {
        if let Ok(mut output) = self.output.lock() {
            output.take();
        }
    }
}

impl Orchestrator for LocalDriver {
    fn check_runnable(&self, game: &Game, values: Option<&Values>) -> Result<(), String> {
        let local = game.local.as_ref().ok_or_else(|| {
            format!("{} runs only on a cluster; this host runs games that have a local section", game.name)
        })?;
        let value = |key: &str| -> String {
            values
                .and_then(|values| values.get(key).cloned())
                .or_else(|| game.variables.iter().find(|v| v.key == key).map(|v| v.default.clone()))
                .unwrap_or_default()
        };
        if let Some(unset) = game.variables.iter().find(|v| !v.editable && value(&v.key).is_empty()) {
            return Err(format!("{} needs the operator to set {} in the catalog", game.name, unset.key));
        }
        if let Some(variable) = &local.needs.java_for_minecraft {
            let version = value(variable);
            let needed = java_for_minecraft(&version)
                .ok_or_else(|| format!("{variable}: `{version}` is not a Minecraft version like 1.20.4"))?;
            match self.inner.java {
                None => return Err(format!("needs Java {needed} on the host (none is installed)")),
                Some(have) if have < needed => {
                    return Err(format!(
                        "{variable}: Minecraft {version} needs Java {needed}; this host has Java {have}"
                    ));
                }
                Some(_) => {}
            }
        } else if !installed_by_steps(&local.command) && which(&local.command).is_none() {
            return Err(format!("needs `{}` on the host", local.command));
        }
        let steam =
            local.install.iter().any(|step| matches!(step.action, catalog::install::StepAction::Steamcmd { .. }));
        if steam && which(&self.inner.sources.steamcmd).is_none() {
            return Err("needs SteamCMD (`steamcmd`) on the host".to_owned());
        }
        Ok(())
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
            let process = self.start(spec).await?;
            self.processes.lock().await.insert(spec.id.clone(), process);
            Ok(())
        })
    }

    fn stop<'a>(&'a self, id: &'a ServerId) -> BoxFuture<'a, Result<(), DriverError>> {
        Box::pin(async move {
            let process = self.processes.lock().await.remove(id);
            if let Some(process) = process {
                end(&process, self.inner.stop_grace, &self.inner.isolation).await;
            }
            Ok(())
        })
    }

    fn destroy<'a>(&'a self, id: &'a ServerId) -> BoxFuture<'a, Result<(), DriverError>> {
        Box::pin(async move {
            self.stop(id).await?;
            self.inner.isolation.release(id);
            let dir = self.inner.server_dir(id);
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
        self.inner.events.subscribe()
    }

    fn limitations(&self) -> Vec<String> {
        LocalDriver::limitations(self)
    }

    /// Before its first start too (a world uploaded first): the server gets its port, and with it its user.
    fn files<'a>(&'a self, id: &'a ServerId) -> BoxFuture<'a, Result<Box<dyn ServerFiles>, FilesError>> {
        Box::pin(async move {
            let port = self.inner.port_for(id).await.map_err(|error| FilesError::Unsupported(error.to_string()))?;
            let inner = self.inner.clone();
            let id = id.clone();
            let files = tokio::task::spawn_blocking(move || inner.prepare_dirs(&id, port))
                .await
                .map_err(|error| FilesError::Io { context: error.to_string(), source: std::io::Error::other("") })?
                .map_err(|reason| FilesError::Io { context: reason, source: std::io::Error::other("") })?;
            Ok(Box::new(files) as Box<dyn ServerFiles>)
        })
    }

    fn disk_usage<'a>(&'a self, id: &'a ServerId) -> BoxFuture<'a, Option<u64>> {
        Box::pin(async move {
            if let Some((at, bytes)) = self.disk.lock().await.get(id).copied()
                && at.elapsed() < DISK_MEASURED_EVERY
            {
                return Some(bytes);
            }
            let data = self.inner.server_dir(id).join("data");
            let bytes = tokio::task::spawn_blocking(move || files::size_of(&data)).await.ok()??;
            self.disk.lock().await.insert(id.clone(), (tokio::time::Instant::now(), bytes));
            Some(bytes)
        })
    }

    fn logs<'a>(&'a self, id: &'a ServerId, tail: usize) -> BoxFuture<'a, Result<Vec<String>, DriverError>> {
        Box::pin(async move {
            if let Some(process) = self.processes.lock().await.get(id)
                && let Ok(backlog) = process.backlog.lock()
            {
                return Ok(backlog.iter().skip(backlog.len().saturating_sub(tail)).cloned().collect());
            }
            // Not running: what the log file kept.
            let path = self.inner.server_dir(id).join("console.log");
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
                let output = process.output.lock().map_err(|_| not_running())?;
                // Gone once the run's output is over.
                let live = output.as_ref().ok_or_else(not_running)?.subscribe();
                let recent: Vec<String> = backlog.iter().skip(backlog.len().saturating_sub(tail)).cloned().collect();
                (recent, live)
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
            let run = format!("{}-{}", process.generation, process.pid.load(Ordering::SeqCst));
            Ok(Output { run, lines: futures_util::stream::iter(recent).chain(live).boxed() })
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
            if self.inner.keep_games {
                tracing::info!(games = processes.len(), "leaving the games running (SPAWNPOINT_KEEP_GAMES)");
                return;
            }
            let mut ending = tokio::task::JoinSet::new();
            for process in processes {
                let inner = self.inner.clone();
                ending.spawn(async move { end(&process, inner.stop_grace, &inner.isolation).await });
            }
            ending.join_all().await;
        })
    }
}

/// Backpressure on a game's output: while a follower is behind, the output waits a little (so a game printing
/// in a loop is slowed by its pipe instead of lapping its console), but never long: after a wait that ran out,
/// the next [`PATIENCE_SKIPS`] go on at once, so a stuck follower slows a game only a little.
#[derive(Default)]
pub(crate) struct Patience {
    skip: u32,
}

/// How many waits a [`Patience`] skips after one that ran out.
const PATIENCE_SKIPS: u32 = 256;

impl Patience {
    pub(crate) async fn wait(&mut self, behind: impl Fn() -> bool) {
        if !behind() {
            self.skip = 0;
            return;
        }
        if self.skip > 0 {
            self.skip -= 1;
            return;
        }
        let deadline = tokio::time::Instant::now() + FOLLOWER_PATIENCE;
        while behind() {
            if tokio::time::Instant::now() >= deadline {
                self.skip = PATIENCE_SKIPS;
                return;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
}

/// Why a line could not be typed on a game's console.
enum Typed {
    /// The game's input is closed: it is not running.
    Closed,
    Failed(std::io::Error),
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

fn read_launch(dir: &Path) -> Option<Launch> {
    serde_json::from_str(&std::fs::read_to_string(dir.join("launch.json")).ok()?).ok()
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
/// `spawnpoint-demo-game`), then on `PATH`; a path is taken as it is.
pub fn resolve_command(command: &str) -> PathBuf {
    which(command).unwrap_or_else(|| PathBuf::from(command))
}

/// Whether a game's command is a path inside its data directory (`./bedrock_server`,
/// `ShooterGame/Binaries/Linux/ShooterGameServer`), put there by its install steps, rather than a program of the
/// host's (`java`, `/usr/bin/node`).
fn installed_by_steps(command: &str) -> bool {
    command.contains('/') && Path::new(command).is_relative()
}

/// Where `program` is: beside the `spawnpoint` binary or on `PATH`, if it is there and executable.
fn which(program: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt as _;
    let executable = |path: &Path| {
        std::fs::metadata(path).is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
    };
    if program.contains('/') {
        return Some(PathBuf::from(program)).filter(|path| executable(path));
    }
    // Test binaries live one level deeper (`target/debug/deps`) than the binaries they test.
    let beside_us = std::env::current_exe().ok().and_then(|exe| {
        exe.ancestors().skip(1).take(2).map(|dir| dir.join(program)).find(|candidate| executable(candidate))
    });
    // Without a PATH of its own (a service started with an empty environment), the system's, as `execvp` does.
    let path = std::env::var_os("PATH").unwrap_or_else(|| GAME_PATH.into());
    beside_us
        .or_else(|| std::env::split_paths(&path).map(|dir| dir.join(program)).find(|candidate| executable(candidate)))
}

/// The binary that runs supervisors: this one when it is `spawnpoint`, else (tests run the driver inside their
/// own binaries) the `spawnpoint` beside it.
fn supervisor_binary() -> PathBuf {
    let this = std::env::current_exe().ok();
    match this {
        Some(exe) if exe.file_name().is_some_and(|name| name == "spawnpoint") => exe,
        _ => resolve_command("spawnpoint"),
    }
}

/// The major version of the `java` on `PATH` (`openjdk version "17.0.15"` → 17; `1.8.0` → 8), if any.
fn java_major() -> Option<u32> {
    let java = which("java")?;
    let output = std::process::Command::new(java).arg("-version").stdin(Stdio::null()).output().ok()?;
    let text = String::from_utf8_lossy(&output.stderr);
    let version = text.split('"').nth(1)?;
    let mut parts = version.split(['.', '-', '+']);
    match parts.next()?.parse::<u32>().ok()? {
        1 => parts.next()?.parse().ok(),
        major => Some(major),
    }
}

/// Whether nothing else on this machine listens on `port`, over TCP or UDP (a game given it could not start
/// otherwise; most games but Minecraft Java are UDP).
fn port_is_free(port: u16) -> bool {
    std::net::TcpListener::bind(("0.0.0.0", port)).is_ok() && std::net::UdpSocket::bind(("0.0.0.0", port)).is_ok()
}
