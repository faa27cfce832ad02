//! A Kubernetes API server simulator for tests: the real kube client talks to it over HTTP on loopback.
//!
//! It serves what Spawnpoint's Agones driver uses — core v1 nodes, pods (and pods/log), persistentvolumeclaims,
//! and agones.dev/v1 gameservers — with kube-apiserver's bodies, `Status` errors and watch framing, and it plays
//! the Agones controller: a new GameServer is given a node from the pool and host ports from a range, gets its
//! pod, and turns `Ready` after a configurable delay. Tests can kill nodes, inject faults (error codes, latency,
//! dropped watches, compaction) and read every request that was made.

mod agones;
mod answers;
mod api;
mod kubelet;
pub mod schema;
mod sdk;
pub mod store;
mod streams;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::http::Method;
use serde_json::{Value, json};
use tokio::sync::watch;

pub use crate::kubelet::SimImage;
use crate::store::{NODES, Store};

/// The node label holding the public IP players connect to.
pub const PUBLIC_IP_LABEL: &str = "platform.io/public-ip";

/// A node in the simulated cluster.
#[derive(Debug, Clone)]
pub struct SimNode {
    pub name: String,
    /// The `platform.io/public-ip` label: where players reach game servers on this node.
    pub public_ip: String,
    pub internal_ip: String,
}

impl SimNode {
    /// `count` nodes named `node-1`, `node-2`, …, with `public_ip(n)` and internal IP `10.0.<n / 256>.<n % 256>`.
    pub fn numbered(count: usize, public_ip: impl Fn(usize) -> String) -> Vec<SimNode> {
        (1..=count)
            .map(|n| SimNode {
                name: format!("node-{n}"),
                public_ip: public_ip(n),
                internal_ip: format!("10.0.{}.{}", n / 256, n % 256),
            })
            .collect()
    }
}

#[derive(Debug, Clone)]
pub struct SimConfig {
    pub nodes: Vec<SimNode>,
    /// How long a scheduled GameServer takes to become `Ready`.
    pub ready_after: Duration,
    /// Host ports handed out for `Dynamic` port policies (Agones' default range is 7000-8000).
    pub host_ports: RangeInclusive<u16>,
    /// Time between watch bookmarks, for watches that allow them.
    pub bookmark_interval: Duration,
    /// How many changes are kept for watches to resume from.
    pub history: usize,
    /// CRD `openAPIV3Schema`s by resource plural: every object of such a resource is pruned and validated
    /// against its schema when created. By default the real Agones GameServer and Fleet CRDs from the reference
    /// data (none, with a printed note, where that is absent outside CI).
    pub schemas: HashMap<&'static str, Arc<Value>>,
    /// Images the kubelet runs as real local processes, by image name; pods of other images run nothing.
    pub images: HashMap<String, SimImage>,
    /// Where claims' volumes live (a directory per claim); needed when `images` is not empty.
    pub volumes: Option<PathBuf>,
    /// How long a deleted pod's process has between SIGTERM and SIGKILL.
    pub termination_grace: Duration,
}

/// The real Agones CRD schemas (GameServer, Fleet) by resource plural, read once; empty without reference data.
pub fn agones_schemas() -> HashMap<&'static str, Arc<Value>> {
    static SCHEMAS: std::sync::OnceLock<HashMap<&'static str, Arc<Value>>> = std::sync::OnceLock::new();
    SCHEMAS
        .get_or_init(|| {
            let Some(reference) = test_support::reference_dir() else { return HashMap::new() };
            [(store::GAMESERVERS, "gameservers"), (store::FLEETS, "fleets")]
                .into_iter()
                .map(|(resource, crd)| {
                    let file = format!("agones/crds/{crd}.agones.dev.yaml");
                    (resource.plural, Arc::new(schema::crd_schema(&reference, &file)))
                })
                .collect()
        })
        .clone()
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            nodes: SimNode::numbered(3, |n| format!("203.0.113.{n}")),
            ready_after: Duration::from_millis(200),
            host_ports: 7000..=8000,
            bookmark_interval: Duration::from_secs(1),
            history: 10_000,
            schemas: agones_schemas(),
            images: HashMap::new(),
            volumes: None,
            termination_grace: Duration::from_secs(3),
        }
    }
}

/// A request as the simulator received it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: Method,
    /// Path and query.
    pub uri: String,
    pub body: String,
    /// The status answered (a watch: 200 when it opened).
    pub status: u16,
}

/// What the HTTP handlers and the controller share.
pub(crate) struct Shared {
    store: Mutex<Store>,
    config: SimConfig,
    requests: Mutex<Vec<Recorded>>,
    /// Every request as it arrived (method and path), before any latency or answer.
    arrivals: Mutex<Vec<(Method, String)>>,
    faults: Mutex<HashMap<(Method, String), Vec<u16>>>,
    latency: Mutex<Duration>,
    drops: watch::Sender<u64>,
    lists: Mutex<HashMap<String, usize>>,
    watches: Mutex<HashMap<String, usize>>,
    pod_logs: Mutex<HashMap<String, PodLog>>,
    processes: Mutex<kubelet::Processes>,
    placements: Mutex<agones::Placements>,
}

/// A pod's output: every line so far, and while its container runs, each new line for `follow` requests.
#[derive(Default)]
pub(crate) struct PodLog {
    lines: Vec<String>,
    live: Option<tokio::sync::broadcast::Sender<String>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Shared {
    pub(crate) fn store(&self) -> MutexGuard<'_, Store> {
        lock(&self.store)
    }

    fn log_arrival(&self, method: &Method, path: &str) {
        lock(&self.arrivals).push((method.clone(), path.to_owned()));
    }

    fn log_request(&self, method: &Method, uri: &str, body: &[u8], status: u16) {
        let body = String::from_utf8_lossy(body).into_owned();
        lock(&self.requests).push(Recorded { method: method.clone(), uri: uri.to_owned(), body, status });
    }

    fn take_fault(&self, method: &Method, plural: &str) -> Option<u16> {
        let mut faults = lock(&self.faults);
        let codes = faults.get_mut(&(method.clone(), plural.to_owned()))?;
        let code = codes.pop();
        if codes.is_empty() {
            faults.remove(&(method.clone(), plural.to_owned()));
        }
        code
    }

    fn latency(&self) -> Duration {
        *lock(&self.latency)
    }

    fn drops(&self) -> watch::Receiver<u64> {
        self.drops.subscribe()
    }

    fn bookmark_interval(&self) -> Duration {
        self.config.bookmark_interval
    }

    fn count_list(&self, plural: &str) {
        *lock(&self.lists).entry(plural.to_owned()).or_default() += 1;
    }

    fn count_watch(&self, plural: &str) {
        *lock(&self.watches).entry(plural.to_owned()).or_default() += 1;
    }

    /// A pod's log: its last `tail` lines (all without a tail) and, while its container runs, a subscription to
    /// what comes next (taken together, so no line is missed or repeated). `None` when its container never
    /// started.
    fn pod_log(
        &self,
        name: &str,
        tail: Option<usize>,
    ) -> Option<(Vec<String>, Option<tokio::sync::broadcast::Receiver<String>>)> {
        let logs = lock(&self.pod_logs);
        let log = logs.get(name)?;
        let tail = tail.unwrap_or(log.lines.len());
        let lines = log.lines[log.lines.len().saturating_sub(tail)..].to_vec();
        Some((lines, log.live.as_ref().map(tokio::sync::broadcast::Sender::subscribe)))
    }

    pub(crate) fn append_pod_log(&self, name: &str, line: String) {
        let mut logs = lock(&self.pod_logs);
        let log = logs.entry(name.to_owned()).or_default();
        if let Some(live) = &log.live {
            let _ = live.send(line.clone());
        }
        log.lines.push(line);
    }

    /// The pod's container started (`true`) or ended: `follow` requests stream its output while it runs.
    pub(crate) fn container_running(&self, name: &str, running: bool) {
        let mut logs = lock(&self.pod_logs);
        if running {
            logs.entry(name.to_owned()).or_default().live = Some(tokio::sync::broadcast::channel(4096).0);
        } else if let Some(log) = logs.get_mut(name) {
            // (A deleted pod's log is gone already and stays gone.)
            log.live = None;
        }
    }

    /// Admission: defaults and validation, as the Agones webhooks do, before an object is stored.
    fn admit(&self, resource: store::Resource, object: &mut Value) -> Result<(), Vec<(String, String)>> {
        // As kube-apiserver orders it: pruning and schema validation, then the Agones webhooks.
        if let Some(schema) = self.config.schemas.get(resource.plural) {
            schema::validate(object, schema)?;
        }
        if resource == store::GAMESERVERS { agones::admit(object) } else { Ok(()) }
    }

    /// Cascades, as garbage collection and the controllers do.
    pub(crate) fn deleted(self: &Arc<Self>, resource: store::Resource, namespace: &str, name: &str) {
        if resource == store::GAMESERVERS {
            lock(&self.placements).remove(&(namespace.to_owned(), name.to_owned()));
            let _ = self.store().delete(store::PODS, namespace, name);
            lock(&self.pod_logs).remove(name);
            kubelet::stop(self, namespace, name, self.config.termination_grace);
        } else if resource == store::PVCS {
            kubelet::release_volume(self, namespace, name);
        }
    }
}

/// A running simulator. Dropping it stops serving.
pub struct Simulator {
    shared: Arc<Shared>,
    url: String,
    server: tokio::task::JoinHandle<()>,
}

impl Simulator {
    pub async fn start(config: SimConfig) -> Self {
        assert!(config.images.is_empty() || config.volumes.is_some(), "running images needs a volumes directory");
        let mut store = Store::new(config.history);
        for node in &config.nodes {
            let created = store.create(NODES, "", node_object(node));
            created.unwrap_or_else(|error| panic!("node {} could not be created: {error:?}", node.name));
        }
        let shared = Arc::new(Shared {
            store: Mutex::new(store),
            config,
            requests: Mutex::default(),
            arrivals: Mutex::default(),
            faults: Mutex::default(),
            latency: Mutex::new(Duration::ZERO),
            drops: watch::channel(0).0,
            lists: Mutex::default(),
            watches: Mutex::default(),
            pod_logs: Mutex::default(),
            processes: Mutex::default(),
            placements: Mutex::default(),
        });
        agones::start_controller(shared.clone());
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .unwrap_or_else(|error| panic!("the simulator cannot bind a port: {error}"));
        let url = format!("http://{}", listener.local_addr().map(|a| a.to_string()).unwrap_or_default());
        let router = axum::Router::new().fallback(api::handle).with_state(shared.clone());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Self { shared, url, server }
    }

    /// `http://127.0.0.1:<port>`, the API server URL for a kube client.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The stored objects of a resource (`"gameservers"`, `"pods"`, …) in every namespace.
    pub fn objects(&self, plural: &str) -> Vec<Value> {
        let resource = store::RESOURCES.into_iter().find(|r| r.plural == plural);
        resource.map(|resource| self.shared.store().list(resource, None)).unwrap_or_default()
    }

    /// Stores an object directly, as another client of the cluster would (e.g. something Spawnpoint must not
    /// touch).
    pub fn insert(&self, plural: &str, namespace: &str, object: Value) -> Value {
        let resource = store::RESOURCES.into_iter().find(|r| r.plural == plural).expect("a served resource");
        self.shared.store().create(resource, namespace, object).expect("a new object")
    }

    /// Changes a stored object directly, as another client of the cluster would (watchers see the change).
    pub fn edit(&self, plural: &str, namespace: &str, name: &str, change: impl FnOnce(&mut Value)) -> Value {
        let resource = store::RESOURCES.into_iter().find(|r| r.plural == plural).expect("a served resource");
        self.shared.store().update(resource, namespace, name, None, change).expect("an existing object")
    }

    /// Answers the next `times` requests of `method` on `plural` with status `code`.
    pub fn fail_next(&self, method: Method, plural: &str, code: u16, times: usize) {
        lock(&self.shared.faults)
            .entry((method, plural.to_owned()))
            .or_default()
            .extend(std::iter::repeat_n(code, times));
    }

    /// Forgets every fault not yet met.
    pub fn clear_faults(&self) {
        lock(&self.shared.faults).clear();
    }

    /// How many injected faults are still to be met.
    pub fn faults_left(&self) -> usize {
        lock(&self.shared.faults).values().map(Vec::len).sum()
    }

    /// Delays every request by `latency`.
    pub fn set_latency(&self, latency: Duration) {
        *lock(&self.shared.latency) = latency;
    }

    /// Ends every open watch, as a restarting API server or a broken connection would.
    pub fn drop_watches(&self) {
        self.shared.drops.send_modify(|n| *n += 1);
    }

    /// Forgets the change history: a watch resuming from an older resourceVersion gets 410 Gone.
    pub fn compact(&self) {
        self.shared.store().compact();
    }

    /// The node is lost: its GameServers turn `Unhealthy` and are then deleted, its pods go, and it leaves the
    /// node list.
    pub fn kill_node(&self, name: &str) {
        agones::kill_node(&self.shared, name);
    }

    /// How many `method` requests on a path containing `path` have arrived, answered or not (a request held
    /// by the latency counts at once).
    pub fn arrived(&self, method: &Method, path: &str) -> usize {
        lock(&self.shared.arrivals).iter().filter(|(m, p)| m == method && p.contains(path)).count()
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<Recorded> {
        lock(&self.shared.requests).clone()
    }

    /// How many list (not watch) calls were made on `plural`.
    pub fn list_calls(&self, plural: &str) -> usize {
        lock(&self.shared.lists).get(plural).copied().unwrap_or(0)
    }

    /// How many watches were opened on `plural`.
    pub fn watch_calls(&self, plural: &str) -> usize {
        lock(&self.shared.watches).get(plural).copied().unwrap_or(0)
    }

    /// The pid of the process running a pod (named after its GameServer), for images the kubelet runs.
    pub fn pod_pid(&self, namespace: &str, pod: &str) -> Option<u32> {
        kubelet::pid(&self.shared, namespace, pod)
    }

    /// The directory standing in for a claim's volume (it exists while the claim does, once a pod used it).
    pub fn volume(&self, namespace: &str, claim: &str) -> Option<PathBuf> {
        kubelet::volume(&self.shared, namespace, claim)
    }

    /// The game in a GameServer says it is ready, as its Agones SDK call would: a `Scheduled` GameServer turns
    /// `Ready`. Whether it did.
    pub fn mark_ready(&self, namespace: &str, name: &str) -> bool {
        let uid = self.shared.store().get(store::GAMESERVERS, namespace, name).map(|gs| gs["metadata"]["uid"].clone());
        uid.is_some_and(|uid| sdk::ready(&self.shared, namespace, name, &uid))
    }

    /// Adds a line to a pod's log, as its game would print it.
    pub fn log_line(&self, pod: &str, line: &str) {
        self.shared.append_pod_log(pod, line.to_owned());
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        self.server.abort();
    }
}

fn node_object(node: &SimNode) -> Value {
    json!({
        "metadata": {
            "name": node.name,
            "labels": {
                "kubernetes.io/hostname": node.name,
                PUBLIC_IP_LABEL: node.public_ip,
            },
        },
        "spec": {},
        "status": {
            "addresses": [
                { "type": "InternalIP", "address": node.internal_ip },
                { "type": "Hostname", "address": node.name },
            ],
            "conditions": [{ "type": "Ready", "status": "True" }],
        },
    })
}
