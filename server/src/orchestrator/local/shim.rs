//! A game's supervisor: the small process (`spawnpoint game-supervisor <server dir>`) that owns one running game,
//! so that the game outlives the panel.
//!
//! The panel starts it in a session of its own; it becomes the child subreaper of everything the game starts,
//! and starts the game (through [`exec`], which joins the server's cgroups, takes the game's user and its
//! environment from `launch.json`, and becomes the game; the supervisor stays outside the game's limits) (its pid in `game.pid`). It writes the game's output to `console.log`, keeps the last lines, and
//! serves `console.sock`: a panel that connects (the one that started it, or the next one after a crash or an
//! upgrade) gets the backlog and then each line live, and its input lines go to the game. When the game ends the
//! supervisor ends whatever the game left in its process group, says how the game ended, and exits.
//!
//! The game is reaped here by `waitpid(-1)` (which also reaps the orphans it leaves, as their subreaper), so it
//! is started with `std::process` and its pipes are read by plain threads rather than through tokio's child
//! handling, which would race that reaping.

use std::collections::VecDeque;
use std::io::{Read as _, Write as _};
use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use catalog::output::LineSplitter;
use nix::sys::signal::{Signal, killpg};
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{broadcast, mpsc};

use super::isolation;
use super::log_file::LogFile;
use super::wire::{Event, Input, Launch};
use super::{LOG_ROTATE_BYTES, Patience};

/// Output lines kept for a panel that connects later.
const BACKLOG_LINES: usize = catalog::console::BACKLOG_LINES;
/// Lines a connected panel may fall behind by before it misses some.
const FOLLOW_BUFFER: usize = 4096;

/// Runs the supervisor for the server in `dir` until its game has ended.
pub async fn run(dir: &Path) -> anyhow::Result<()> {
    // Its own session: a panel that dies (or its terminal) takes no signal to the game with it.
    let _ = nix::unistd::setsid();
    nix::sys::prctl::set_child_subreaper(true).context("becoming the game's subreaper")?;
    let launch = read_launch(&dir.join("launch.json"))?;

    let socket = dir.join("console.sock");
    let _ = std::fs::remove_file(&socket);
    let listener = UnixListener::bind(&socket).with_context(|| format!("listening on {}", socket.display()))?;

    // The game starts as `spawnpoint game-exec`, which places itself in the cgroups and then becomes the game.
    let mut child = std::process::Command::new(std::env::current_exe().context("finding this binary")?)
        .arg("game-exec")
        .arg(dir.join("launch.json"))
        .env_clear()
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .with_context(|| format!("starting {}", launch.program.display()))?;
    let pid = i32::try_from(child.id()).context("the game's pid")?;
    // For the operator (and `ps`): which process is this server's game.
    let pid_file = dir.join("game.pid");
    std::fs::write(&pid_file, format!("{pid}\n")).context("writing game.pid")?;

    let (lines_tx, mut lines_rx) = mpsc::channel::<Vec<String>>(64);
    for output in [child.stdout.take().map(boxed), child.stderr.take().map(boxed)].into_iter().flatten() {
        let lines_tx = lines_tx.clone();
        std::thread::spawn(move || read_lines(output, &lines_tx));
    }
    drop(lines_tx);
    // Bounded: a game that does not read its input holds up the panel's writes (which time out) rather than
    // filling the supervisor's memory.
    let (input_tx, mut input_rx) = mpsc::channel::<String>(64);
    if let Some(stdin) = child.stdin.take() {
        std::thread::spawn(move || write_lines(stdin, &mut input_rx));
    }
    let (exit_tx, mut exit_rx) = mpsc::channel::<WaitStatus>(1);
    std::thread::spawn(move || reap(pid, &exit_tx));

    let shared = Arc::new(Shared { backlog: Mutex::new(VecDeque::new()), ready: Mutex::new(false), pid });
    let events = broadcast::channel::<Event>(FOLLOW_BUFFER).0;
    let accepting = tokio::spawn(accept(listener, shared.clone(), events.clone(), input_tx));

    let mut log = LogFile::new(dir.join("console.log"), LOG_ROTATE_BYTES);
    let mut patience = Patience::default();
    while let Some(lines) = lines_rx.recv().await {
        patience.wait(|| events.len() > FOLLOW_BUFFER / 2).await;
        for line in lines {
            log.append(&line).await;
            let became_ready = launch.ready_line.as_deref().is_some_and(|ready| line.contains(ready))
                && !std::mem::replace(&mut *lock(&shared.ready), true);
            shared.remember(line, &events);
            if became_ready {
                let _ = events.send(Event::Ready);
            }
        }
        log.flush().await;
    }
    // The output is over: the game has ended or is about to.
    let status = exit_rx.recv().await;
    // Nothing the game started may outlive it: not in its process group, nor anywhere in its cgroups.
    let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
    isolation::end_leftovers(&launch.cgroups);
    let reason = match status {
        Some(WaitStatus::Signaled(_, Signal::SIGKILL, _)) if isolation::ran_out_of_memory(&launch) => {
            format!("the game ran out of memory (plan limit {})", launch.memory_limit)
        }
        Some(WaitStatus::Exited(_, code)) => crate::orchestrator::exit_reason(Some(code), None),
        Some(WaitStatus::Signaled(_, signal, _)) => crate::orchestrator::exit_reason(None, Some(signal as i32)),
        _ => crate::orchestrator::exit_reason(None, None),
    };
    log.append(&format!("[Spawnpoint] {reason}")).await;
    log.flush().await;
    // Gone before the panel hears of the end, so that the next supervisor's socket and pid file, which a panel
    // may start at once, are never this one's to remove. Connections already open stay open.
    accepting.abort();
    let _ = std::fs::remove_file(&socket);
    let _ = std::fs::remove_file(&pid_file);
    let _ = events.send(Event::Exited { reason });
    // Let connected panels read it before the process goes.
    tokio::time::sleep(Duration::from_millis(200)).await;
    Ok(())
}

/// `spawnpoint game-exec <launch.json>`, the game's own process: joins the server's cgroups (or sets the
/// rlimits), then becomes the game, as its user, with its environment alone. Returns only if it could not.
pub fn exec(launch_file: &Path) -> anyhow::Error {
    let launch = match read_launch(launch_file) {
        Ok(launch) => launch,
        Err(error) => return error,
    };
    if let Err(error) = isolation::enter(&launch) {
        return anyhow::Error::from(error).context("placing the game in its cgroups");
    }
    let mut command = std::process::Command::new(&launch.program);
    command.args(&launch.args).env_clear().envs(launch.env.iter().map(|(k, v)| (k, v))).current_dir(&launch.cwd);
    if let Some((user, group)) = launch.user {
        command.uid(user).gid(group);
    }
    anyhow::Error::from(command.exec()).context(format!("starting {}", launch.program.display()))
}

fn read_launch(path: &Path) -> anyhow::Result<Launch> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("reading {}", path.display()))
}

/// What connections share: the backlog, whether the game is ready, its pid.
struct Shared {
    backlog: Mutex<VecDeque<String>>,
    ready: Mutex<bool>,
    pid: i32,
}

impl Shared {
    /// Keeps a line and passes it on, under the backlog's lock so that a panel connecting meanwhile gets it
    /// exactly once (in the backlog it copies, or live).
    fn remember(&self, line: String, events: &broadcast::Sender<Event>) {
        let mut backlog = lock(&self.backlog);
        if backlog.len() == BACKLOG_LINES {
            backlog.pop_front();
        }
        backlog.push_back(line.clone());
        let _ = events.send(Event::Line(line));
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

async fn accept(
    listener: UnixListener,
    shared: Arc<Shared>,
    events: broadcast::Sender<Event>,
    input: mpsc::Sender<String>,
) {
    while let Ok((stream, _)) = listener.accept().await {
        tokio::spawn(serve(stream, shared.clone(), events.clone(), input.clone()));
    }
}

/// One panel's connection: hello, backlog, then live events out; input lines in.
async fn serve(stream: UnixStream, shared: Arc<Shared>, events: broadcast::Sender<Event>, input: mpsc::Sender<String>) {
    let (read, mut write) = stream.into_split();
    let (first, mut live) = {
        let backlog = lock(&shared.backlog);
        let mut first = vec![Event::Hello { pid: shared.pid }];
        first.extend(backlog.iter().cloned().map(Event::Line));
        if *lock(&shared.ready) {
            first.push(Event::Ready);
        }
        (first, events.subscribe())
    };
    let sending = async move {
        for event in first {
            send(&mut write, &event).await?;
        }
        loop {
            match live.recv().await {
                Ok(event) => send(&mut write, &event).await?,
                // What it missed is in console.log.
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return Ok::<_, std::io::Error>(()),
            }
        }
    };
    let receiving = async move {
        let mut lines = BufReader::new(read).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            if let Ok(Input { input: text }) = serde_json::from_str::<Input>(&line)
                && input.send(text).await.is_err()
            {
                break;
            }
        }
    };
    tokio::select! {
        _ = sending => {}
        () = receiving => {}
    }
}

async fn send(write: &mut tokio::net::unix::OwnedWriteHalf, event: &Event) -> std::io::Result<()> {
    let mut line = serde_json::to_vec(event).map_err(std::io::Error::other)?;
    line.push(b'\n');
    write.write_all(&line).await
}

fn boxed(output: impl std::io::Read + Send + 'static) -> Box<dyn std::io::Read + Send> {
    Box::new(output)
}

/// Reads one of the game's output pipes until it closes, in whole lines (see [`LineSplitter`]).
fn read_lines(mut output: Box<dyn std::io::Read + Send>, lines: &mpsc::Sender<Vec<String>>) {
    let mut splitter = LineSplitter::default();
    let mut chunk = vec![0; 64 * 1024];
    loop {
        let (batch, ended) = match output.read(&mut chunk) {
            Ok(0) | Err(_) => (splitter.finish().into_iter().collect(), true),
            Ok(n) => (splitter.push(&chunk[..n]), false),
        };
        // A full channel blocks this thread, and so the game's writes: backpressure instead of lost lines.
        if (!batch.is_empty() && lines.blocking_send(batch).is_err()) || ended {
            return;
        }
    }
}

/// Types each line it is given on the game's standard input, until the game closes it.
fn write_lines(mut stdin: std::process::ChildStdin, lines: &mut mpsc::Receiver<String>) {
    while let Some(line) = lines.blocking_recv() {
        if stdin.write_all(format!("{line}\n").as_bytes()).and_then(|()| stdin.flush()).is_err() {
            return;
        }
    }
}

/// Reaps every child until the game itself has ended, and reports how it did.
fn reap(game: i32, exit: &mpsc::Sender<WaitStatus>) {
    loop {
        match waitpid(None, None) {
            Ok(status) if status.pid() == Some(Pid::from_raw(game)) => {
                let _ = exit.blocking_send(status);
                break;
            }
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => {}
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
    // Orphans of the game's that are still going are reaped as they end, until the supervisor exits.
    while !matches!(waitpid(None, None), Err(nix::errno::Errno::ECHILD)) {}
}

/// Reads a supervisor's event stream (for the panel): one JSON event per line.
pub async fn next_event(lines: &mut tokio::io::Lines<BufReader<tokio::net::unix::OwnedReadHalf>>) -> Option<Event> {
    loop {
        let line = lines.next_line().await.ok()??;
        if let Ok(event) = serde_json::from_str(&line) {
            return Some(event);
        }
    }
}
