//! The kubelet's part, for the images a test says how to run: such a pod's container is a real local process,
//! so players can connect to a game on the simulated cluster exactly as they would on a real one.
//!
//! The process listens on its node's public IP (a loopback address in tests) at the host port Agones gave the
//! game port, as a real pod's port mapping would make it appear; its working directory and `/data` is the claim's
//! volume, a directory that lives as long as the claim. Its output is the pod's log. It turns its GameServer
//! `Ready` when it prints the image's ready line (what a game's Agones SDK call would do) and `Unhealthy` when it
//! exits; the exit code is kept in the pod's status, as Kubernetes keeps it. Deleting the GameServer ends the
//! process as a pod deletion does: SIGTERM, then SIGKILL after the grace period.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt as _, AsyncRead, BufReader};
use tokio::sync::watch;

use crate::store::{GAMESERVERS, PODS};
use crate::{Shared, lock};

/// How the simulated kubelet runs a container image: the local program its entrypoint amounts to.
#[derive(Debug, Clone)]
pub struct SimImage {
    pub program: PathBuf,
    /// `{port}` becomes the host port of the GameServer's first port, `{data_dir}` the pod's `/data` volume.
    /// The environment also has `BIND_ADDRESS`: the node address the pod's ports appear on, standing in for the
    /// pod's own network namespace (all pods share this machine's).
    pub args: Vec<String>,
    /// The output line on which the game counts as ready; without one, it is ready after `ready_after`.
    pub ready_line: Option<String>,
}

/// Where a kubelet-run pod stands.
pub(crate) struct PodProcess {
    pid: i32,
    /// The container's standard input, open while it runs (for `pods/attach`; a container with `stdin: true`).
    pub(crate) stdin: tokio::sync::Mutex<Option<tokio::process::ChildStdin>>,
    node: String,
    host_port: u16,
    volume: PathBuf,
    exited: watch::Receiver<bool>,
}

/// What the controller hands the kubelet for one scheduled GameServer.
pub(crate) struct PodStart {
    pub namespace: String,
    pub name: String,
    pub uid: Value,
    pub node: String,
    pub node_ip: String,
    pub host_port: u16,
    pub container: Value,
    pub claim: Option<String>,
}

/// The image's run instructions, when this simulator runs the container's image as a process.
pub(crate) fn image_for<'a>(shared: &'a Shared, container: &Value) -> Option<&'a SimImage> {
    shared.config.images.get(container["image"].as_str()?)
}

/// The directory standing in for a claim's volume.
pub(crate) fn volume(shared: &Shared, namespace: &str, claim: &str) -> Option<PathBuf> {
    Some(shared.config.volumes.as_ref()?.join(namespace).join(claim))
}

/// Host ports held by processes on `node`, including ones still shutting down.
pub(crate) fn ports_in_use(shared: &Shared, node: &str) -> HashSet<u64> {
    lock(&shared.processes).values().filter(|p| p.node == node).map(|p| u64::from(p.host_port)).collect()
}

/// A pod's running process.
pub(crate) fn process(shared: &Shared, namespace: &str, name: &str) -> Option<Arc<PodProcess>> {
    lock(&shared.processes).get(&(namespace.to_owned(), name.to_owned())).cloned()
}

/// The pid of a pod's running process.
pub(crate) fn pid(shared: &Shared, namespace: &str, name: &str) -> Option<u32> {
    let processes = lock(&shared.processes);
    processes.get(&(namespace.to_owned(), name.to_owned())).and_then(|p| u32::try_from(p.pid).ok())
}

/// Starts the pod's process once its volume is free (a ReadWriteOnce volume is attached to one pod at a time:
/// a replacement waits for its predecessor to let go).
pub(crate) async fn run(shared: Arc<Shared>, start: PodStart, image: SimImage) {
    // A pod without a claim gets a scratch directory of its own.
    let uid = start.uid.as_str().unwrap_or_default();
    let claim = start.claim.clone().unwrap_or_else(|| format!("scratch-{uid}"));
    let Some(volume) = volume(&shared, &start.namespace, &claim) else { return };
    wait_until_free(&shared, &volume).await;
    if !same_gameserver(&shared, &start.namespace, &start.name, &start.uid) {
        return; // deleted while waiting
    }
    if let Err(error) = tokio::fs::create_dir_all(&volume).await {
        terminated(&shared, &start, None, &format!("the volume could not be made: {error}"));
        return;
    }
    let fill = |arg: &str| {
        arg.replace("{port}", &start.host_port.to_string()).replace("{data_dir}", &volume.to_string_lossy())
    };
    let mut command = tokio::process::Command::new(&image.program);
    command
        .args(image.args.iter().map(|arg| fill(arg)))
        .current_dir(&volume)
        .env("BIND_ADDRESS", &start.node_ip)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    for var in start.container["env"].as_array().into_iter().flatten() {
        if let (Some(name), Some(value)) = (var["name"].as_str(), var["value"].as_str()) {
            command.env(name, value);
        }
    }
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(error) => {
            terminated(&shared, &start, None, &format!("{}: {error}", image.program.display()));
            return;
        }
    };
    let pid = child.id().and_then(|pid| i32::try_from(pid).ok()).unwrap_or_default();
    let (exited_tx, exited) = watch::channel(false);
    let key = (start.namespace.clone(), start.name.clone());
    // Kept open for as long as the process runs: a game may read its console, and `pods/attach` writes to it.
    let stdin = start.container["stdin"].as_bool().unwrap_or(false).then(|| child.stdin.take()).flatten();
    shared.container_running(&start.name, true);
    lock(&shared.processes).insert(
        key.clone(),
        Arc::new(PodProcess {
            pid,
            stdin: tokio::sync::Mutex::new(stdin),
            node: start.node.clone(),
            host_port: start.host_port,
            volume: volume.clone(),
            exited,
        }),
    );
    let start = Arc::new(start);
    let mut readers = Vec::new();
    for output in [child.stdout.take().map(boxed), child.stderr.take().map(boxed)].into_iter().flatten() {
        let (shared, start, ready_line) = (shared.clone(), start.clone(), image.ready_line.clone());
        readers.push(tokio::spawn(async move {
            let mut lines = BufReader::new(output).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if ready_line.as_deref().is_some_and(|ready| line.contains(ready)) {
                    crate::sdk::ready(&shared, &start.namespace, &start.name, &start.uid);
                }
                shared.append_pod_log(&start.name, line);
            }
        }));
    }
    if image.ready_line.is_none() {
        let (shared, start) = (shared.clone(), start.clone());
        tokio::spawn(async move {
            tokio::time::sleep(shared.config.ready_after).await;
            crate::sdk::ready(&shared, &start.namespace, &start.name, &start.uid);
        });
    }
    // Without `stdin: true` the container's stdin is still a pipe held open, as the runtime's would be.
    let _stdin = child.stdin.take();
    let status = child.wait().await;
    let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL); // nothing of the pod outlives it
    // Its last lines are in the log before followers' streams end.
    for reader in readers {
        let _ = tokio::time::timeout(Duration::from_secs(1), reader).await;
    }
    shared.container_running(&start.name, false);
    {
        let mut processes = lock(&shared.processes);
        if processes.get(&key).is_some_and(|p| p.pid == pid) {
            processes.remove(&key);
        }
    }
    let _ = exited_tx.send(true);
    let status = status.ok();
    terminated(&shared, &start, status, "");
}

fn boxed(output: impl AsyncRead + Send + Unpin + 'static) -> Box<dyn AsyncRead + Send + Unpin> {
    Box::new(output)
}

fn same_gameserver(shared: &Shared, namespace: &str, name: &str, uid: &Value) -> bool {
    shared.store().get(GAMESERVERS, namespace, name).is_some_and(|gs| gs["metadata"]["uid"] == *uid)
}

async fn wait_until_free(shared: &Shared, volume: &PathBuf) {
    loop {
        let holder = lock(&shared.processes).values().find(|p| &p.volume == volume).map(|p| p.exited.clone());
        match holder {
            Some(mut exited) => {
                let _ = exited.wait_for(|done| *done).await;
            }
            None => return,
        }
    }
}

/// The container ended (or never started): its pod says how, and its GameServer, if still the same one, turns
/// `Unhealthy` as Agones marks a GameServer whose game has gone.
fn terminated(shared: &Shared, start: &PodStart, status: Option<std::process::ExitStatus>, message: &str) {
    use std::os::unix::process::ExitStatusExt as _;
    let code = status.and_then(|s| s.code()).or_else(|| status.and_then(|s| s.signal()).map(|signal| 128 + signal));
    let mut terminated = json!({
        "exitCode": code.unwrap_or(128),
        "reason": if code == Some(0) { "Completed" } else { "Error" },
        "finishedAt": crate::store::timestamp(),
    });
    if let Some(signal) = status.and_then(|s| s.signal()) {
        terminated["signal"] = json!(signal);
    }
    if !message.is_empty() {
        terminated["message"] = json!(message);
    }
    let name = start.container["name"].clone();
    let phase = if code == Some(0) { "Succeeded" } else { "Failed" };
    let mut store = shared.store();
    let _ = store.update(PODS, &start.namespace, &start.name, None, |pod| {
        pod["status"]["phase"] = json!(phase);
        pod["status"]["containerStatuses"] =
            json!([{ "name": name, "ready": false, "restartCount": 0, "state": { "terminated": terminated } }]);
    });
    let same =
        store.get(GAMESERVERS, &start.namespace, &start.name).is_some_and(|gs| gs["metadata"]["uid"] == start.uid);
    if same {
        let _ = store.update(GAMESERVERS, &start.namespace, &start.name, None, |gs| {
            gs["status"]["state"] = json!("Unhealthy");
        });
    }
}

/// Ends a pod's process as a pod deletion does: SIGTERM to it, SIGKILL after `grace` (at once for a lost node).
pub(crate) fn stop(shared: &Shared, namespace: &str, name: &str, grace: Duration) {
    let Some(process) = lock(&shared.processes).get(&(namespace.to_owned(), name.to_owned())).cloned() else {
        return;
    };
    let first = if grace.is_zero() { Signal::SIGKILL } else { Signal::SIGTERM };
    let _ = killpg(Pid::from_raw(process.pid), first);
    let mut exited = process.exited.clone();
    tokio::spawn(async move {
        if tokio::time::timeout(grace, exited.wait_for(|done| *done)).await.is_err() {
            let _ = killpg(Pid::from_raw(process.pid), Signal::SIGKILL);
        }
    });
}

/// A deleted claim's volume goes once no process holds it (dynamic provisioning with reclaim policy Delete).
pub(crate) fn release_volume(shared: &Arc<Shared>, namespace: &str, claim: &str) {
    let Some(volume) = volume(shared, namespace, claim) else { return };
    let shared = shared.clone();
    tokio::spawn(async move {
        wait_until_free(&shared, &volume).await;
        let _ = tokio::fs::remove_dir_all(&volume).await;
    });
}

/// Processes by (namespace, pod name).
pub(crate) type Processes = HashMap<(String, String), Arc<PodProcess>>;
