//! The `agones` orchestrator: each game server is an Agones `GameServer` named after it, with its data on a
//! PersistentVolumeClaim `<id>-data` that outlives the GameServer (stop deletes the GameServer, keeps the claim).
//!
//! A watcher on GameServers carrying Spawnpoint's managed-by label keeps a local cache (a reflector store):
//! phase changes reach the reconciler as events the moment the watch reports them, and observing costs no API
//! call. Nothing without the label is ever read, changed or deleted.

pub mod claim;
pub mod gameserver;
pub mod names;

use std::collections::HashMap;
use std::sync::Arc;

use catalog::output::LineSplitter;
use catalog::{Game, ServerId};
use futures_util::StreamExt as _;
use futures_util::stream::BoxStream;
use k8s_openapi::api::core::v1::{Node, PersistentVolumeClaim, Pod};
use kube::ResourceExt as _;
use kube::api::{
    Api, AttachParams, DeleteParams, ListParams, LogParams, Patch, PatchParams, PostParams, Preconditions,
};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt as _, watcher};
use tokio::sync::{Mutex, broadcast};

use self::gameserver::{GAME_PORT, GameServer, GameServerState};
use self::names::{FIELD_MANAGER, GENERATION_ANNOTATION, INSTALLATION_LABEL, SERVER_ID_LABEL, claim_name, selector};
use super::{BoxFuture, DriverError, Observed, Orchestrator, Output, Phase, ServerSpec};

#[derive(Debug, Clone)]
pub struct AgonesConfig {
    /// `SPAWNPOINT_NAMESPACE`: the namespace of GameServers and their claims (default `gameservers`).
    pub namespace: String,
    /// `SPAWNPOINT_PUBLIC_IP_LABEL`: the node label holding the public IP players connect to
    /// (default `platform.io/public-ip`).
    pub public_ip_label: String,
    /// `SPAWNPOINT_KUBE_API`: the Kubernetes API server URL. Unset: the kubeconfig, else the in-cluster config.
    pub kube_api: Option<String>,
}

pub struct AgonesDriver {
    gameservers: Api<GameServer>,
    claims: Api<PersistentVolumeClaim>,
    pods: Api<Pod>,
    nodes: Api<Node>,
    cache: Store<GameServer>,
    namespace: String,
    public_ip_label: String,
    /// This installation's id ([`INSTALLATION_LABEL`]).
    installation: String,
    /// Node name → public IP, filled on first use.
    node_ips: Mutex<HashMap<String, String>>,
    request_timeout: std::time::Duration,
    /// GameServer uid → why its game is gone, for GameServers that are (pruned to those still there).
    exit_reasons: Mutex<HashMap<String, String>>,
    events: broadcast::Sender<Observed>,
}

impl AgonesDriver {
    /// Starts watching the namespace's managed GameServers and waits for the first full listing, so that
    /// observing right after start already sees everything.
    /// Starts watching GameServers. `request_timeout`: how long one API request may take before it counts as
    /// failed (and the pass is retried).
    pub async fn start(
        client: kube::Client,
        config: &AgonesConfig,
        request_timeout: std::time::Duration,
        installation: &str,
    ) -> anyhow::Result<Arc<Self>> {
        let gameservers: Api<GameServer> = Api::namespaced(client.clone(), &config.namespace);
        let (cache, writer) = reflector::store();
        let driver = Arc::new(Self {
            gameservers: gameservers.clone(),
            claims: Api::namespaced(client.clone(), &config.namespace),
            pods: Api::namespaced(client.clone(), &config.namespace),
            nodes: Api::all(client),
            cache,
            namespace: config.namespace.clone(),
            public_ip_label: config.public_ip_label.clone(),
            installation: installation.to_owned(),
            request_timeout,
            node_ips: Mutex::default(),
            exit_reasons: Mutex::default(),
            events: broadcast::channel(1024).0,
        });
        let stream = watcher(gameservers, watcher::Config::default().labels(&selector(installation)))
            .default_backoff()
            .reflect(writer)
            .touched_objects();
        let weak = Arc::downgrade(&driver);
        tokio::spawn(async move {
            let mut stream = std::pin::pin!(stream);
            while let Some(item) = stream.next().await {
                let Some(driver) = weak.upgrade() else { return };
                match item {
                    Ok(gameserver) => {
                        let observed = driver.observed(&gameserver).await;
                        let _ = driver.events.send(observed);
                    }
                    Err(error) => tracing::warn!(%error, "the GameServer watch failed; it resumes by itself"),
                }
            }
        });
        driver.cache.wait_until_ready().await?;
        Ok(driver)
    }

    /// Takes over the game servers of `rows` that were made before objects carried their installation, so
    /// this installation sees them again; returns how many objects it stamped. Objects of servers without a
    /// row are left alone: they may be another installation's.
    pub async fn adopt(&self, rows: &[ServerId]) -> Result<usize, DriverError> {
        let rows: std::collections::HashSet<&str> = rows.iter().map(ServerId::as_str).collect();
        let adopted = self.stamp(&self.gameservers, &rows).await? + self.stamp(&self.claims, &rows).await?;
        if adopted > 0 {
            tracing::info!(adopted, "took over objects made before objects carried their installation");
        }
        Ok(adopted)
    }

    /// Stamps this installation on the objects `api` lists without one whose server is among `rows`; returns
    /// how many it stamped.
    async fn stamp<K>(&self, api: &Api<K>, rows: &std::collections::HashSet<&str>) -> Result<usize, DriverError>
    where
        K: kube::Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
    {
        let kind = K::kind(&()).into_owned();
        let unstamped = ListParams::default().labels(&names::unstamped());
        let listed =
            self.bounded(api.list(&unstamped)).await.map_err(api_error(format!("listing unstamped {kind}s")))?;
        let stamp = serde_json::json!({ "metadata": { "labels": { INSTALLATION_LABEL: self.installation } } });
        let params = PatchParams { field_manager: Some(FIELD_MANAGER.to_owned()), ..PatchParams::default() };
        let mut stamped = 0;
        for object in listed.items {
            let name = object.name_any();
            if object.labels().get(SERVER_ID_LABEL).is_some_and(|id| rows.contains(id.as_str())) {
                let patched = self.bounded(api.patch(&name, &params, &Patch::Merge(&stamp))).await;
                patched.map_err(api_error(format!("stamping {kind} {name}")))?;
                stamped += 1;
            }
        }
        Ok(stamped)
    }

    /// What a GameServer means for Spawnpoint.
    async fn observed(&self, gameserver: &GameServer) -> Observed {
        let generation =
            gameserver.annotations().get(GENERATION_ANNOTATION).and_then(|g| g.parse().ok()).unwrap_or_default();
        let status = gameserver.status.clone().unwrap_or_default();
        let phase = match &status.state {
            GameServerState::Ready | GameServerState::Allocated | GameServerState::Reserved => {
                let port = status.ports.iter().flatten().find(|p| p.name == GAME_PORT).map(|p| p.port);
                let host = match &status.node_name {
                    Some(node) => self.public_ip(node).await,
                    None => None,
                };
                match (host, port) {
                    (Some(host), Some(port)) => Phase::Ready { host, port },
                    // Ready but not reachable yet (no public IP on its node): still starting, as far as players go.
                    _ => Phase::Starting,
                }
            }
            state @ (GameServerState::Unhealthy | GameServerState::Error | GameServerState::Shutdown) => {
                Phase::Exited { reason: self.why_gone(gameserver, state.clone()).await }
            }
            _ => Phase::Starting,
        };
        Observed { id: ServerId::new(gameserver.name_any()), generation, phase }
    }

    /// Why a GameServer's game is gone: how its container ended, as its pod's status records it (read once per
    /// GameServer), else its state.
    async fn why_gone(&self, gameserver: &GameServer, state: GameServerState) -> String {
        let uid = gameserver.uid().unwrap_or_default();
        if let Some(reason) = self.exit_reasons.lock().await.get(&uid) {
            return reason.clone();
        }
        // Agones names a GameServer's pod after it.
        let pod = self.bounded(self.pods.get_opt(&gameserver.name_any())).await.ok().flatten();
        let terminated = pod.and_then(|pod| {
            pod.status?.container_statuses?.into_iter().find_map(|container| container.state?.terminated)
        });
        let reason = match terminated {
            Some(end) if end.signal.is_some() => super::exit_reason(None, end.signal),
            Some(end) => super::exit_reason(Some(end.exit_code), None),
            None => format!("the GameServer is {state:?}"),
        };
        self.exit_reasons.lock().await.insert(uid, reason.clone());
        reason
    }

    async fn public_ip(&self, node: &str) -> Option<String> {
        if let Some(ip) = self.node_ips.lock().await.get(node) {
            return Some(ip.clone());
        }
        let found = self.bounded(self.nodes.get_opt(node)).await.ok().flatten()?;
        let ip = found.labels().get(&self.public_ip_label)?.clone();
        self.node_ips.lock().await.insert(node.to_owned(), ip.clone());
        Some(ip)
    }

    /// One API request, bounded by the request timeout: an API server that hangs fails the pass (to be retried)
    /// instead of stalling it. (The watch is left to kube's own timeouts: it is meant to stay open.)
    async fn bounded<T>(&self, request: impl Future<Output = kube::Result<T>>) -> kube::Result<T> {
        let timeout = self.request_timeout;
        tokio::time::timeout(timeout, request).await.unwrap_or_else(|_| {
            Err(kube::Error::Service(format!("no answer from the API server within {timeout:?}").into()))
        })
    }

    /// The game's container in a server's pod (the pod also has Agones' SDK sidecar) and the uid of the
    /// GameServer running it, from the cache; `NotRunning` when there is no GameServer.
    fn game_container(&self, id: &ServerId) -> Result<(String, String), DriverError> {
        let gameserver = self.cached(id).ok_or_else(|| DriverError::NotRunning(id.clone()))?;
        let container = gameserver.spec.template.spec.as_ref().and_then(|pod| pod.containers.first());
        let container = container.ok_or_else(|| DriverError::NotRunning(id.clone()))?;
        Ok((container.name.clone(), gameserver.uid().unwrap_or_default()))
    }

    /// A lookup by name in the watch's cache: no API call, and no scan of the other GameServers.
    fn cached(&self, id: &ServerId) -> Option<Arc<GameServer>> {
        self.cache.get(&ObjectRef::new(id.as_str()).within(&self.namespace))
    }
}

fn api_error(context: String) -> impl FnOnce(kube::Error) -> DriverError {
    move |source| DriverError::Kube { context, source }
}

/// A container's log as lines, cut from the bytes as they come ([`LineSplitter`]) rather than read with
/// `lines()`, which fails on a line that is not UTF-8: the stream would end there, be followed again from the
/// same run, and end at the same line, for ever.
fn log_lines(log: impl futures_util::AsyncRead + Send + Unpin + 'static) -> BoxStream<'static, String> {
    use futures_util::AsyncReadExt as _;
    let state = Some((log, LineSplitter::default(), vec![0; 16 * 1024]));
    futures_util::stream::unfold(state, |state| async move {
        let (mut log, mut splitter, mut chunk) = state?;
        let (lines, next) = match log.read(&mut chunk).await {
            Ok(0) | Err(_) => (splitter.finish().into_iter().collect(), None),
            Ok(n) => (splitter.push(&chunk[..n]), Some((log, splitter, chunk))),
        };
        Some((futures_util::stream::iter(lines), next))
    })
    .flatten()
    .boxed()
}

/// 404 and 409 AlreadyExists are how an idempotent delete or create says "done already" (and 409 on a delete
/// with a uid precondition: that object is gone, replaced by another).
fn is_status(error: &kube::Error, code: u16) -> bool {
    matches!(error, kube::Error::Api(status) if status.code == code)
}

impl Orchestrator for AgonesDriver {
    fn check_runnable(&self, _game: &Game, _values: Option<&catalog::variables::Values>) -> Result<(), String> {
        Ok(())
    }

    fn ensure_running<'a>(&'a self, spec: &'a ServerSpec) -> BoxFuture<'a, Result<(), DriverError>> {
        Box::pin(async move {
            if let Some(current) = self.cached(&spec.id) {
                let observed = self.observed(&current).await;
                if observed.generation == spec.generation && !matches!(observed.phase, Phase::Exited { .. }) {
                    return Ok(());
                }
                // An older generation (a restart) or a dead one: replace it; the claim stays. Only that very
                // GameServer is deleted (uid precondition): the cache may lag behind a replacement already made.
                let exactly = Preconditions { uid: current.uid(), resource_version: None };
                let params = DeleteParams::default().preconditions(exactly);
                match self.bounded(self.gameservers.delete(spec.id.as_str(), &params)).await {
                    Err(error) if !is_status(&error, 404) && !is_status(&error, 409) => {
                        return Err(api_error(format!("replacing GameServer {}", spec.id))(error));
                    }
                    _ => {}
                }
            }
            let create = PostParams { field_manager: Some(FIELD_MANAGER.to_owned()), ..PostParams::default() };
            match self.bounded(self.claims.create(&create, &claim::build(spec, &self.installation))).await {
                Err(error) if !is_status(&error, 409) => {
                    return Err(api_error(format!("creating the claim of {}", spec.id))(error));
                }
                _ => {}
            }
            match self.bounded(self.gameservers.create(&create, &gameserver::build(spec, &self.installation))).await {
                Err(error) if !is_status(&error, 409) => {
                    Err(api_error(format!("creating GameServer {}", spec.id))(error))
                }
                _ => Ok(()),
            }
        })
    }

    fn stop<'a>(&'a self, id: &'a ServerId) -> BoxFuture<'a, Result<(), DriverError>> {
        Box::pin(async move {
            match self.bounded(self.gameservers.delete(id.as_str(), &DeleteParams::default())).await {
                Err(error) if !is_status(&error, 404) => Err(api_error(format!("deleting GameServer {id}"))(error)),
                _ => Ok(()),
            }
        })
    }

    fn destroy<'a>(&'a self, id: &'a ServerId) -> BoxFuture<'a, Result<(), DriverError>> {
        Box::pin(async move {
            self.stop(id).await?;
            match self.bounded(self.claims.delete(&claim_name(id), &DeleteParams::default())).await {
                Err(error) if !is_status(&error, 404) => Err(api_error(format!("deleting the claim of {id}"))(error)),
                _ => Ok(()),
            }
        })
    }

    fn observe(&self) -> BoxFuture<'_, Vec<Observed>> {
        Box::pin(async move {
            let gameservers = self.cache.state();
            let mut observed = Vec::new();
            for gameserver in &gameservers {
                observed.push(self.observed(gameserver).await);
            }
            let present: std::collections::HashSet<String> = gameservers.iter().filter_map(|gs| gs.uid()).collect();
            self.exit_reasons.lock().await.retain(|uid, _| present.contains(uid));
            observed
        })
    }

    fn stored(&self) -> BoxFuture<'_, Result<Vec<ServerId>, DriverError>> {
        Box::pin(async move {
            // One list call, whatever the number of servers; only claims carrying Spawnpoint's label.
            let selector = selector(&self.installation);
            let claims = self.bounded(self.claims.list(&ListParams::default().labels(&selector))).await;
            let claims = claims.map_err(api_error("listing claims".to_owned()))?;
            Ok(claims
                .items
                .iter()
                .filter_map(|claim| claim.labels().get(SERVER_ID_LABEL).cloned().map(ServerId::new))
                .collect())
        })
    }

    fn phase<'a>(&'a self, id: &'a ServerId) -> BoxFuture<'a, Option<Observed>> {
        Box::pin(async move {
            match self.cached(id) {
                Some(gameserver) => Some(self.observed(&gameserver).await),
                None => None,
            }
        })
    }

    fn events(&self) -> broadcast::Receiver<Observed> {
        self.events.subscribe()
    }

    fn logs<'a>(&'a self, id: &'a ServerId, tail: usize) -> BoxFuture<'a, Result<Vec<String>, DriverError>> {
        Box::pin(async move {
            let params = LogParams { tail_lines: i64::try_from(tail).ok(), ..LogParams::default() };
            // As a stream, cut by `log_lines`: the whole text would be refused if one line is not UTF-8.
            match self.bounded(self.pods.log_stream(id.as_str(), &params)).await {
                Ok(stream) => Ok(log_lines(stream).collect().await),
                // Not running: no pod, no output to show.
                Err(error) if is_status(&error, 404) => Ok(Vec::new()),
                Err(error) => Err(api_error(format!("reading the log of {id}"))(error)),
            }
        })
    }

    fn follow<'a>(&'a self, id: &'a ServerId, tail: usize) -> BoxFuture<'a, Result<Output, DriverError>> {
        Box::pin(async move {
            let (container, run) = self.game_container(id)?;
            let params = LogParams {
                container: Some(container),
                follow: true,
                tail_lines: i64::try_from(tail).ok(),
                ..LogParams::default()
            };
            match self.bounded(self.pods.log_stream(id.as_str(), &params)).await {
                // The stream ends when the container does, or when the connection drops (then it is followed
                // again, from the same run).
                Ok(stream) => Ok(Output { run, lines: log_lines(stream) }),
                // No pod yet (404), or its container has not started (400 "waiting to start").
                Err(error) if is_status(&error, 404) || is_status(&error, 400) => {
                    Err(DriverError::NotRunning(id.clone()))
                }
                Err(error) => Err(api_error(format!("following the log of {id}"))(error)),
            }
        })
    }

    fn send_input<'a>(&'a self, id: &'a ServerId, line: &'a str) -> BoxFuture<'a, Result<(), DriverError>> {
        Box::pin(async move {
            use tokio::io::AsyncWriteExt as _;
            let (container, _) = self.game_container(id)?;
            // Attached for one line: commands come at the pace of people typing, and a short attachment cannot
            // be left behind on a pod that was replaced meanwhile.
            let params = AttachParams::default().container(container).stdin(true).stdout(false).stderr(false);
            let mut attached = match self.bounded(self.pods.attach(id.as_str(), &params)).await {
                Ok(attached) => attached,
                Err(error) if is_status(&error, 404) || is_status(&error, 400) => {
                    return Err(DriverError::NotRunning(id.clone()));
                }
                Err(error) => return Err(api_error(format!("attaching to the console of {id}"))(error)),
            };
            let failed = |source: std::io::Error| DriverError::Io {
                context: format!("typing on server {id}'s console"),
                source,
            };
            let said = |why: String| failed(std::io::Error::other(why));
            // Taken before joining: the attachment ends with the API server's `Status`, which needs a receiver.
            let status = attached.take_status();
            let mut stdin = attached.stdin().ok_or_else(|| said("no stdin stream".into()))?;
            stdin.write_all(format!("{line}\n").as_bytes()).await.map_err(failed)?;
            // Closing our end of stdin (not the game's: its container keeps stdin open) sends what was written
            // and ends the attachment.
            stdin.shutdown().await.map_err(failed)?;
            match tokio::time::timeout(self.request_timeout, attached.join()).await {
                Ok(Ok(())) => {}
                Ok(Err(error)) => return Err(failed(std::io::Error::other(error))),
                Err(_) => return Err(said("the API server did not finish the attachment in time".into())),
            }
            match status {
                Some(status) => match status.await {
                    Some(status) if status.status.as_deref() == Some("Failure") => {
                        Err(said(status.message.unwrap_or_else(|| "the attachment failed".into())))
                    }
                    _ => Ok(()),
                },
                None => Ok(()),
            }
        })
    }

    fn shutdown(&self) -> BoxFuture<'_, ()> {
        // GameServers run on without Spawnpoint.
        Box::pin(async {})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec_for(game: &Game, plan: &catalog::Plan) -> ServerSpec {
        ServerSpec {
            id: format!("u1-{}-abc", &game.id[..2]).into(),
            user_id: "u1".into(),
            game: game.clone(),
            plan: plan.clone(),
            generation: 3,
            variables: Default::default(),
            eula_accepted: true,
            install_generation: 0,
        }
    }

    #[test]
    fn a_servers_variables_reach_its_container_beside_the_catalogs_env() {
        let catalog = catalog::Catalog::builtin();
        let (game, plan) = catalog.plan("minecraft-java", "starter").expect("java");
        let mut spec = spec_for(game, plan);
        spec.variables.0.insert("MAX_PLAYERS".into(), "4".into());
        let gs = serde_json::to_value(gameserver::build(&spec, "inst1")).expect("json");
        let env = gs["spec"]["template"]["spec"]["containers"][0]["env"].as_array().cloned().unwrap_or_default();
        let value = |name: &str| env.iter().find(|var| var["name"] == name).map(|var| var["value"].clone());
        assert_eq!(value("MAX_PLAYERS"), Some(serde_json::json!("4")));
        assert_eq!(value("EULA"), Some(serde_json::json!("TRUE")), "the catalog's own env stays");
    }

    #[test]
    fn every_catalog_game_makes_a_gameserver_and_claim_with_all_its_ports() {
        for game in catalog::Catalog::builtin().games() {
            for plan in &game.plans {
                let spec = spec_for(game, plan);
                let gs = serde_json::to_value(gameserver::build(&spec, "inst1")).expect("json");
                assert_eq!(gs["apiVersion"], "agones.dev/v1");
                assert_eq!(gs["metadata"]["annotations"][GENERATION_ANNOTATION], "3");
                assert_eq!(
                    gs["spec"]["ports"].as_array().map(Vec::len),
                    Some(1 + game.extra_ports.len()),
                    "{}",
                    game.id
                );
                assert_eq!(gs["spec"]["template"]["spec"]["containers"][0]["image"], game.image.as_str());
                let claim = serde_json::to_value(claim::build(&spec, "inst1")).expect("json");
                assert_eq!(claim["metadata"]["name"], claim_name(&spec.id));
                assert_eq!(claim["spec"]["resources"]["requests"]["storage"], plan.storage.as_str());
                assert_eq!(claim["metadata"]["labels"][names::MANAGED_BY.0], names::MANAGED_BY.1);
                for labels in [&claim["metadata"]["labels"], &gs["metadata"]["labels"]] {
                    assert_eq!(labels[INSTALLATION_LABEL], "inst1", "{}", game.id);
                }
                // Nothing a game pod runs may gain privileges, and it runs as the catalog's non-root user.
                let pod = &gs["spec"]["template"]["spec"];
                let container = &pod["containers"][0]["securityContext"];
                assert_eq!(container["allowPrivilegeEscalation"], false);
                assert_eq!(container["capabilities"]["drop"], serde_json::json!(["ALL"]));
                assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
                assert_eq!(pod["securityContext"]["runAsUser"], game.run_as.user);
                assert_eq!(pod["securityContext"]["fsGroup"], game.run_as.group);
                assert_eq!(pod["securityContext"]["seccompProfile"]["type"], "RuntimeDefault");
            }
        }
    }

    #[tokio::test]
    async fn a_log_line_that_is_not_utf8_neither_ends_the_stream_nor_repeats() {
        let log = futures_util::io::Cursor::new(b"first\n\xff\xfe broken\nlast without newline".to_vec());
        let lines: Vec<String> = log_lines(log).collect().await;
        assert_eq!(lines, ["first", "\u{fffd}\u{fffd} broken", "last without newline"]);
    }

    /// What is sent to the cluster for each catalog game (on its first plan), reviewed as a whole: a change to
    /// the catalog or the driver shows up here as a diff.
    #[test]
    fn gameserver_and_claim_snapshots_for_every_catalog_game() {
        for game in catalog::Catalog::builtin().games() {
            let spec = spec_for(game, &game.plans[0]);
            insta::assert_yaml_snapshot!(format!("{}-gameserver", game.id), gameserver::build(&spec, "inst1"));
            insta::assert_yaml_snapshot!(format!("{}-claim", game.id), claim::build(&spec, "inst1"));
        }
    }
}
