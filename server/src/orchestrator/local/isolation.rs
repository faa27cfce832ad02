//! Keeping games from the panel and from each other on the single box: a user per server, cgroup limits from
//! the plan, and data directories only their own game can read.
//!
//! When Spawnpoint runs as root, each server's game runs as its own user id, [`UID_BASE`] + its game port (game
//! ports are unique on the machine, so the ids are too), in the group of `SPAWNPOINT_GAME_USER` (created if
//! missing). Its data directory belongs to that id with mode 0700, so no other server's game can read it; the
//! panel's own data directory is 0711 (passable, not listable) and its files 0600.
//!
//! The plan's memory, CPU and a process cap are cgroup limits (v1's memory, cpu and pids controllers, or v2),
//! written here directly: a directory and a few files per server, fewer moving parts than a crate. Where cgroups
//! cannot be used (not root, or not writable), the supervisor sets rlimits instead (data size, processes of the
//! server's user), and Spawnpoint says so at start and in `/ready`.

use std::io;
use std::path::{Path, PathBuf};

use catalog::{Plan, ServerId};

use super::wire::{Launch, Rlimits};

/// Servers' user ids are this plus their game port: far above any id a distribution hands out.
pub const UID_BASE: u32 = 0x7000_0000;
/// Processes and threads one game may have (a JVM has a hundred or so).
const MAX_PROCESSES: u64 = 2048;
/// Where the cgroup file systems are mounted.
const CGROUP_ROOT: &str = "/sys/fs/cgroup";
/// The cgroup (under each controller) that holds the servers' ones.
const CGROUP_NAME: &str = "spawnpoint";
/// cgroup v1's CPU period, in microseconds.
const CPU_PERIOD_US: u64 = 100_000;

/// How games are isolated on this machine, found out once at start.
#[derive(Debug, Clone)]
pub struct Isolation {
    /// The game group's id, when running as root.
    group: Option<u32>,
    cgroups: Option<Cgroups>,
    /// What cannot be enforced here, for the operator.
    limitations: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cgroups {
    V1,
    V2,
}

impl Isolation {
    /// Looks at what this machine allows, creating the game user (as root) if it is missing.
    pub fn detect(game_user: &str) -> Self {
        let mut limitations = Vec::new();
        let root = nix::unistd::geteuid().is_root();
        // The panel's file work in games' directories takes the game's uid and gid (`as_game`), but a thread
        // keeps the process's supplementary groups (root's group, usually): dropped here, for the whole process,
        // so that work can reach nothing of root's group. Root needs none of them. Only when there are any: the
        // change is signalled to every thread of the process, which is not worth doing again and again.
        if root
            && nix::unistd::getgroups().is_ok_and(|groups| !groups.is_empty())
            && let Err(error) = nix::unistd::setgroups(&[])
        {
            limitations.push(format!("the panel's supplementary groups could not be dropped ({error})"));
        }
        let group = if root {
            match game_group(game_user) {
                Ok(gid) => Some(gid),
                Err(error) => {
                    limitations.push(format!(
                        "games run as Spawnpoint's own user: the user {game_user} could not be made ({error})"
                    ));
                    None
                }
            }
        } else {
            limitations.push(
                "games run as Spawnpoint's own user (it does not run as root), and can read its files".to_owned(),
            );
            None
        };
        let cgroups = match cgroup_version() {
            Ok(version) => Some(version),
            Err(reason) => {
                limitations.push(format!(
                    "cgroups cannot be used ({reason}): plan limits are rlimits only (memory as data size, no CPU limit)"
                ));
                None
            }
        };
        for limitation in &limitations {
            tracing::warn!("{limitation}");
        }
        Self { group, cgroups, limitations }
    }

    /// What cannot be enforced on this machine (empty when everything can).
    pub fn limitations(&self) -> &[String] {
        &self.limitations
    }

    /// The user and group a server's game runs as, `None` when games run as Spawnpoint's user.
    pub fn user_for(&self, port: u16) -> Option<(u32, u32)> {
        self.group.map(|group| (UID_BASE + u32::from(port), group))
    }

    /// Makes the server's cgroups afresh with the plan's limits, or the rlimits where there are none.
    pub fn limits(&self, id: &ServerId, plan: &Plan) -> io::Result<(Vec<PathBuf>, Option<Rlimits>)> {
        let Some(version) = self.cgroups else {
            return Ok((Vec::new(), Some(Rlimits { data_bytes: plan.memory.bytes(), processes: MAX_PROCESSES })));
        };
        self.release(id);
        let memory = plan.memory.bytes().to_string();
        let quota = (plan.cpu.millicores() * CPU_PERIOD_US / 1000).max(1000);
        let dirs = match version {
            Cgroups::V1 => {
                let dir =
                    |controller: &str| Path::new(CGROUP_ROOT).join(controller).join(CGROUP_NAME).join(id.as_str());
                let (mem, cpu, pids) = (dir("memory"), dir("cpu"), dir("pids"));
                for dir in [&mem, &cpu, &pids] {
                    std::fs::create_dir_all(dir)?;
                }
                std::fs::write(mem.join("memory.limit_in_bytes"), &memory)?;
                // Swap counts too where the kernel accounts it, so a game cannot page its way past the plan.
                if mem.join("memory.memsw.limit_in_bytes").exists() {
                    let _ = std::fs::write(mem.join("memory.memsw.limit_in_bytes"), &memory);
                }
                std::fs::write(cpu.join("cpu.cfs_period_us"), CPU_PERIOD_US.to_string())?;
                std::fs::write(cpu.join("cpu.cfs_quota_us"), quota.to_string())?;
                std::fs::write(pids.join("pids.max"), MAX_PROCESSES.to_string())?;
                vec![mem, cpu, pids]
            }
            Cgroups::V2 => {
                let parent = Path::new(CGROUP_ROOT).join(CGROUP_NAME);
                std::fs::create_dir_all(&parent)?;
                std::fs::write(parent.join("cgroup.subtree_control"), "+memory +cpu +pids")?;
                let dir = parent.join(id.as_str());
                std::fs::create_dir_all(&dir)?;
                std::fs::write(dir.join("memory.max"), &memory)?;
                let _ = std::fs::write(dir.join("memory.swap.max"), "0");
                std::fs::write(dir.join("cpu.max"), format!("{quota} {CPU_PERIOD_US}"))?;
                std::fs::write(dir.join("pids.max"), MAX_PROCESSES.to_string())?;
                vec![dir]
            }
        };
        Ok((dirs, None))
    }

    /// Ends whatever still runs in the server's cgroups and removes them (they are made afresh at each start).
    pub fn release(&self, id: &ServerId) {
        let dirs = self.cgroup_dirs(id);
        end_leftovers(&dirs);
        for dir in dirs {
            let _ = std::fs::remove_dir(dir);
        }
    }

    /// The server's cgroup directories (whether or not they exist).
    fn cgroup_dirs(&self, id: &ServerId) -> Vec<PathBuf> {
        match self.cgroups {
            None => Vec::new(),
            Some(Cgroups::V1) => ["memory", "cpu", "pids"]
                .iter()
                .map(|controller| Path::new(CGROUP_ROOT).join(controller).join(CGROUP_NAME).join(id.as_str()))
                .collect(),
            Some(Cgroups::V2) => vec![Path::new(CGROUP_ROOT).join(CGROUP_NAME).join(id.as_str())],
        }
    }
}

/// Makes a server's data directory, belonging to its game's user and readable by it alone. A directory still
/// Spawnpoint's own (written by a version from before per-server users, whose games ran as Spawnpoint's user) is
/// handed over with everything in it, once: no game of this version has had it yet, so nothing in it was planted.
pub fn prepare_data_dir(data: &Path, user: Option<(u32, u32)>) -> io::Result<()> {
    use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
    std::fs::create_dir_all(data)?;
    let Some((uid, gid)) = user else { return Ok(()) };
    let legacy = std::fs::symlink_metadata(data)?.uid() != uid;
    let mut pending = vec![data.to_path_buf()];
    while let Some(path) = pending.pop() {
        let meta = std::fs::symlink_metadata(&path)?;
        std::os::unix::fs::lchown(&path, Some(uid), Some(gid))?;
        if legacy && meta.is_dir() {
            for entry in std::fs::read_dir(&path)? {
                pending.push(entry?.path());
            }
        }
    }
    std::fs::set_permissions(data, std::fs::Permissions::from_mode(0o700))
}

/// Runs `work` on a blocking thread whose file-system identity (`setfsuid`, `setfsgid`) is the game's user. The
/// panel, which may be root, writes into a directory the game owns, where the game may have planted links: with
/// the game's identity every open, create and rename is held to what the game itself may do, so a link leads
/// nowhere the game could not go anyway, and what is created belongs to the game.
pub async fn as_game<T: Send + 'static>(
    user: Option<(u32, u32)>,
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, String> {
    tokio::task::spawn_blocking(move || {
        let _identity = user.map(FsIdentity::assume);
        work()
    })
    .await
    .map_err(|error| format!("the file work did not finish: {error}"))
}

/// A thread's file-system identity, given back when dropped.
struct FsIdentity {
    uid: nix::unistd::Uid,
    gid: nix::unistd::Gid,
}

impl FsIdentity {
    fn assume((uid, gid): (u32, u32)) -> Self {
        // The group first: once the uid is not root, the thread may no longer change it.
        let gid = nix::unistd::setfsgid(nix::unistd::Gid::from_raw(gid));
        let uid = nix::unistd::setfsuid(nix::unistd::Uid::from_raw(uid));
        Self { uid, gid }
    }
}

impl Drop for FsIdentity {
    fn drop(&mut self) {
        nix::unistd::setfsuid(self.uid);
        nix::unistd::setfsgid(self.gid);
    }
}

/// Ends every process left in the server's cgroups (a game's children that left its process group, say), so
/// that none outlives the server, nor is there when the next server of the same user id starts.
pub fn end_leftovers(cgroups: &[PathBuf]) {
    for _ in 0..50 {
        let pids: Vec<i32> = cgroups
            .iter()
            .filter_map(|dir| std::fs::read_to_string(dir.join("cgroup.procs")).ok())
            .flat_map(|text| text.lines().filter_map(|line| line.trim().parse().ok()).collect::<Vec<i32>>())
            .collect();
        if pids.is_empty() {
            return;
        }
        for pid in pids {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Keeps the panel's own data directory (where games' directories are too) from games: passable (their directories are inside it) but not
/// listable, and its files (the database, the signing secret) readable by Spawnpoint alone; and everything
/// Spawnpoint creates from now on private by default.
pub fn protect_data_dir(data_dir: &Path) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o077));
    std::fs::create_dir_all(data_dir)?;
    std::fs::set_permissions(data_dir, std::fs::Permissions::from_mode(0o711))?;
    for entry in std::fs::read_dir(data_dir)? {
        let entry = entry?;
        let mode = if entry.file_type()?.is_dir() { 0o711 } else { 0o600 };
        std::fs::set_permissions(entry.path(), std::fs::Permissions::from_mode(mode))?;
    }
    Ok(())
}

/// In the game's own process, just before it becomes the game (`spawnpoint game-exec`): joins the server's
/// cgroups, or sets the rlimits. The supervisor stays out of them, so a game at its limits cannot starve it.
pub fn enter(launch: &Launch) -> io::Result<()> {
    for dir in &launch.cgroups {
        std::fs::write(dir.join("cgroup.procs"), std::process::id().to_string())?;
    }
    if let Some(limits) = launch.rlimits {
        use nix::sys::resource::{Resource, setrlimit};
        setrlimit(Resource::RLIMIT_DATA, limits.data_bytes, limits.data_bytes).map_err(io::Error::from)?;
        setrlimit(Resource::RLIMIT_NPROC, limits.processes, limits.processes).map_err(io::Error::from)?;
    }
    Ok(())
}

/// Whether the kernel killed something in the server's memory cgroup for want of memory.
pub fn ran_out_of_memory(launch: &Launch) -> bool {
    launch.cgroups.iter().any(|dir| {
        // v1 counts kills in memory.oom_control, v2 in memory.events.
        ["memory.oom_control", "memory.events"].iter().any(|file| {
            std::fs::read_to_string(dir.join(file)).is_ok_and(|text| {
                text.lines().any(|line| {
                    line.strip_prefix("oom_kill ").and_then(|n| n.trim().parse::<u64>().ok()).is_some_and(|n| n > 0)
                })
            })
        })
    })
}

/// The game user's group id, creating the user (no home, no shell) if it does not exist.
fn game_group(name: &str) -> Result<u32, String> {
    let lookup = || nix::unistd::User::from_name(name).map_err(|e| e.to_string());
    if let Some(user) = lookup()? {
        return Ok(user.gid.as_raw());
    }
    let status = std::process::Command::new("useradd")
        .args(["--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent"])
        .args(["--shell", "/usr/sbin/nologin", name])
        .status()
        .map_err(|e| format!("useradd: {e}"))?;
    if !status.success() {
        return Err(format!("useradd {name}: {status}"));
    }
    tracing::info!(user = name, "created the game user");
    lookup()?.map(|user| user.gid.as_raw()).ok_or_else(|| format!("{name} is missing after useradd"))
}

/// Which cgroup version this machine can give games, or why none.
fn cgroup_version() -> Result<Cgroups, String> {
    if !nix::unistd::geteuid().is_root() {
        return Err("Spawnpoint does not run as root".to_owned());
    }
    let root = Path::new(CGROUP_ROOT);
    let (version, probe) = if root.join("cgroup.controllers").exists() {
        (Cgroups::V2, root.join(CGROUP_NAME))
    } else if ["memory", "cpu", "pids"].iter().all(|c| root.join(c).join("cgroup.procs").exists()) {
        (Cgroups::V1, root.join("memory").join(CGROUP_NAME))
    } else {
        return Err(format!("no cgroup v2 at {CGROUP_ROOT}, nor v1 memory, cpu and pids controllers"));
    };
    std::fs::create_dir_all(&probe).map_err(|e| format!("cannot create {}: {e}", probe.display()))?;
    Ok(version)
}
