//! What the panel and a game's supervisor ([`super::shim`]) say to each other: the launch file the panel writes
//! for it, and the JSON lines they exchange over the supervisor's socket.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// `launch.json` in a server's directory: everything the supervisor needs to start the game, written by the panel
/// before it starts the supervisor (and read again by a later panel that re-attaches).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Launch {
    /// The generation of the server this run is for.
    pub generation: i64,
    /// The game port players connect to.
    pub port: u16,
    pub program: PathBuf,
    pub args: Vec<String>,
    /// The game's whole environment (nothing of the panel's is inherited).
    pub env: Vec<(String, String)>,
    pub cwd: PathBuf,
    /// The user and group the game runs as, when the panel runs as root.
    pub user: Option<(u32, u32)>,
    /// The cgroup directories the game is placed in (one per controller on cgroup v1, one on v2).
    pub cgroups: Vec<PathBuf>,
    /// Resource limits set instead, where cgroups cannot be used.
    pub rlimits: Option<Rlimits>,
    /// The plan's memory, as a customer reads it ("2 GiB"), for an out-of-memory exit.
    pub memory_limit: String,
    /// A piece of the line the game prints once it is ready.
    pub ready_line: Option<String>,
    /// What a panel types to stop it (read again by a panel that re-attaches).
    pub stop_command: Option<String>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Rlimits {
    /// Bytes of data segment (heap) the game may use.
    pub data_bytes: u64,
    /// Processes (threads included) its user may have.
    pub processes: u64,
}

/// From the supervisor to the panel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Event {
    /// First on every connection: the game's process (also its process group). The backlog follows as `line`s,
    /// then `ready` if the game printed its ready line already, in the order the game printed them.
    Hello {
        pid: i32,
    },
    Line(String),
    Ready,
    /// The game ended; the supervisor exits next.
    Exited {
        reason: String,
    },
}

/// From the panel to the supervisor: a line for the game's standard input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Input {
    pub input: String,
}
