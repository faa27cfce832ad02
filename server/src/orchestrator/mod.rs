//! Orchestrators run game servers: `local` as child processes on this machine, `agones` on Kubernetes.
//!
//! The trait speaks of game servers only (create, stop, destroy, observe, logs, input), never of processes or
//! pods, so the reconciler drives either the same way.

pub mod agones;
pub mod files;
pub mod local;

use std::future::Future;
use std::pin::Pin;

use catalog::gameserver::InstallProgress;
use catalog::notice::StartFailure;
use catalog::variables::Values;
use catalog::{Game, Plan, ServerId, UserId};
use futures_util::stream::BoxStream;
use tokio::sync::broadcast;

use self::files::{FilesError, ServerFiles};

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A running game's output, live: the last lines it printed (up to the `tail` asked for), then each new line as
/// it comes. The stream ends when the game does.
pub struct Output {
    /// Names this run of the game (a process, a GameServer): output followed again from the same run repeats its
    /// recent lines, output from a new run does not.
    pub run: String,
    pub lines: BoxStream<'static, String>,
}

/// Everything needed to run one game server.
#[derive(Debug, Clone)]
pub struct ServerSpec {
    pub id: ServerId,
    /// The owner, for labelling what the orchestrator creates.
    pub user_id: UserId,
    pub game: Game,
    pub plan: Plan,
    /// Bumped by every user restart: a game server running an older generation is replaced.
    pub generation: i64,
    /// Its startup variables, filled into the game's templates.
    pub variables: Values,
    /// Whether its owner accepted the game's licence (`{eula}`).
    pub eula_accepted: bool,
    /// Bumped by every reinstall: the game's files are installed again when it changes.
    pub install_generation: i64,
}

/// Where a game server is, as the orchestrator sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Phase {
    /// The game's files are being installed (the single box; a cluster's images come installed).
    Installing(InstallProgress),
    /// An install step failed; `reason` names the step and the cause. Nothing runs until the server is started
    /// again (a new generation).
    InstallFailed {
        reason: String,
    },
    Starting,
    /// Players can connect, at `host:port`.
    Ready {
        host: String,
        port: u16,
    },
    /// It is gone by itself (crashed or quit); `reason` says how.
    Exited {
        reason: String,
    },
}

/// One game server's phase; also what the event stream carries on every change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    pub id: ServerId,
    /// The generation of the spec it was started from.
    pub generation: i64,
    pub phase: Phase,
}

/// How a game's end reads in its server's status message, whichever orchestrator saw it: an exit code as the
/// process or the pod's container status gives it, or the signal that killed it.
pub fn exit_reason(code: Option<i32>, signal: Option<i32>) -> String {
    match (code, signal) {
        (Some(code), _) => format!("the game exited with code {code}"),
        (None, Some(signal)) => format!("the game was killed by signal {signal}"),
        (None, None) => "the game exited".to_owned(),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    #[error("{0}")]
    NotRunnable(String),
    #[error("server `{0}` is not running")]
    NotRunning(ServerId),
    #[error("{context}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    /// Every game port of this machine's range is held.
    #[error("no free game port in {first}-{last}")]
    NoFreePort { first: u16, last: u16 },
    /// The record of who holds which port could not be read or written.
    #[error("the game ports could not be allocated")]
    Ports(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The Kubernetes API refused (`kube::Error::Api`) or could not be reached.
    #[error("{context}")]
    Kube {
        context: String,
        #[source]
        source: kube::Error,
    },
}

impl DriverError {
    /// What a server's owner is told when this kept their game server from starting.
    pub fn start_failure(&self) -> StartFailure {
        match self {
            DriverError::Kube { source: kube::Error::Api(_), .. } => StartFailure::ClusterRefused,
            DriverError::Kube { .. } => StartFailure::ClusterUnreachable,
            DriverError::NoFreePort { first, last } => StartFailure::NoFreePort { first: *first, last: *last },
            DriverError::NotRunnable(_)
            | DriverError::NotRunning(_)
            | DriverError::Io { .. }
            | DriverError::Ports(_) => StartFailure::Local,
        }
    }
}

/// What claiming a game port found.
#[derive(Debug, PartialEq, Eq)]
pub enum PortClaim {
    Claimed,
    /// Another server holds it (it got there first).
    Taken,
    /// The server has a port already, or no record any more.
    NotNeeded,
}

/// Where the game ports the local driver hands out are recorded (the servers' rows), so that no port is ever
/// given to two servers, and a server keeps its port across restarts of its game and of Spawnpoint.
pub trait PortBook: Send + Sync + 'static {
    /// Every port held, with the server holding it.
    fn held(&self) -> BoxFuture<'_, Result<Vec<(ServerId, u16)>, DriverError>>;
    /// Records `port` on `host` as `server`'s, unless it holds one already.
    fn claim<'a>(
        &'a self,
        server: &'a ServerId,
        host: &'a str,
        port: u16,
    ) -> BoxFuture<'a, Result<PortClaim, DriverError>>;
}

pub trait Orchestrator: Send + Sync + 'static {
    /// Whether this orchestrator can run `game` with these variable values (`None`: the defaults); the reason
    /// when not ("needs Java 21"), told to the customer at create.
    fn check_runnable(&self, game: &Game, values: Option<&Values>) -> Result<(), String>;
    /// Makes sure the game server runs (or is starting). Idempotent: a running server is left alone.
    fn ensure_running<'a>(&'a self, spec: &'a ServerSpec) -> BoxFuture<'a, Result<(), DriverError>>;
    /// Stops the game server; its data is kept. Stopping a server that is not running is success.
    fn stop<'a>(&'a self, id: &'a ServerId) -> BoxFuture<'a, Result<(), DriverError>>;
    /// Stops the game server and deletes its data. Destroying what is already gone is success.
    fn destroy<'a>(&'a self, id: &'a ServerId) -> BoxFuture<'a, Result<(), DriverError>>;
    /// Every game server this orchestrator runs or saw exit.
    fn observe(&self) -> BoxFuture<'_, Vec<Observed>>;
    /// One game server, if this orchestrator runs it or saw it exit.
    fn phase<'a>(&'a self, id: &'a ServerId) -> BoxFuture<'a, Option<Observed>>;
    /// Servers whose stored data this orchestrator holds and would remove if their row were gone (beyond what
    /// `observe` reports as running). The reconciler destroys those without a row.
    fn stored(&self) -> BoxFuture<'_, Result<Vec<ServerId>, DriverError>>;
    /// Phase changes as they happen, so the reconciler reacts at once instead of at the next resync.
    fn events(&self) -> broadcast::Receiver<Observed>;
    /// The last `tail` lines of the game's output.
    fn logs<'a>(&'a self, id: &'a ServerId, tail: usize) -> BoxFuture<'a, Result<Vec<String>, DriverError>>;
    /// The game's output as it comes, starting with its last `tail` lines; [`DriverError::NotRunning`] when no game
    /// runs (or its output cannot be read yet).
    fn follow<'a>(&'a self, id: &'a ServerId, tail: usize) -> BoxFuture<'a, Result<Output, DriverError>>;
    /// Types a line on the game's console (its standard input).
    fn send_input<'a>(&'a self, id: &'a ServerId, line: &'a str) -> BoxFuture<'a, Result<(), DriverError>>;
    /// How many bytes the server's files take, where this orchestrator can tell (the single box).
    fn disk_usage<'a>(&'a self, _id: &'a ServerId) -> BoxFuture<'a, Option<u64>> {
        Box::pin(async { None })
    }
    /// The server's files, whether it runs or not; [`FilesError::Unsupported`] where this orchestrator cannot
    /// reach them.
    fn files<'a>(&'a self, _id: &'a ServerId) -> BoxFuture<'a, Result<Box<dyn ServerFiles>, FilesError>> {
        Box::pin(async { Err(FilesError::Unsupported("this host cannot reach servers' files yet".into())) })
    }
    /// What this orchestrator cannot enforce here (a plan's limits without cgroups, say), for the operator.
    fn limitations(&self) -> Vec<String> {
        Vec::new()
    }
    /// Spawnpoint is stopping. Local processes are stopped politely (their rows still say running, so they
    /// start again with Spawnpoint); an orchestrator whose game servers outlive Spawnpoint does nothing.
    fn shutdown(&self) -> BoxFuture<'_, ()>;
}
