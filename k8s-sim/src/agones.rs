//! The Agones controller's part: admission defaults, scheduling a new GameServer onto a node with host ports,
//! its pod, the walk to `Ready`, and what a lost node does to its GameServers.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;

use crate::store::{GAMESERVERS, NODES, PODS};
use crate::{Shared, kubelet, lock, sdk};

/// Defaults and checks the Agones mutating and validating webhooks apply to a new GameServer.
pub(crate) fn admit(object: &mut Value) -> Result<(), Vec<(String, String)>> {
    let mut causes = Vec::new();
    let containers = object["spec"]["template"]["spec"]["containers"].as_array().cloned().unwrap_or_default();
    if containers.is_empty() {
        causes.push(("spec.template.spec.containers".into(), "Required value: a container is required".into()));
    }
    let first_container = containers.first().and_then(|c| c["name"].as_str()).unwrap_or_default().to_owned();
    match object["spec"]["ports"].as_array_mut() {
        Some(ports) if !ports.is_empty() => {
            for (i, port) in ports.iter_mut().enumerate() {
                if port["containerPort"].as_u64().is_none_or(|p| p == 0 || p > 65_535) {
                    causes.push((format!("spec.ports[{i}].containerPort"), "Required value: a port number".into()));
                }
                let policy = port["portPolicy"].as_str().unwrap_or("Dynamic").to_owned();
                if !["Dynamic", "Static", "Passthrough", "None"].contains(&policy.as_str()) {
                    causes.push((format!("spec.ports[{i}].portPolicy"), format!("Unsupported value: \"{policy}\"")));
                }
                port["portPolicy"] = json!(policy);
                if port["protocol"].is_null() {
                    port["protocol"] = json!("UDP");
                }
                if port["container"].is_null() && !first_container.is_empty() {
                    port["container"] = json!(first_container);
                }
            }
        }
        _ => causes.push(("spec.ports".into(), "Required value: at least one port".into())),
    }
    if object["status"].is_object() {
        // Clients do not get to write status on create.
        object["status"] = json!({});
    }
    if causes.is_empty() { Ok(()) } else { Err(causes) }
}

/// Watches the store for new GameServers and provisions each.
pub(crate) fn start_controller(shared: Arc<Shared>) {
    let mut changes = shared.store().subscribe();
    tokio::spawn(async move {
        loop {
            match changes.recv().await {
                Ok(change) if change.resource == GAMESERVERS && change.kind == "ADDED" => {
                    let name = change.object["metadata"]["name"].as_str().unwrap_or_default().to_owned();
                    tokio::spawn(provision(shared.clone(), change.namespace.clone(), name));
                }
                Ok(_) => {}
                // Fell behind a burst of changes: whatever was missed still has no state.
                Err(RecvError::Lagged(_)) => {
                    let waiting: Vec<(String, String)> = shared
                        .store()
                        .list(GAMESERVERS, None)
                        .into_iter()
                        .filter(|gs| gs["status"]["state"].is_null())
                        .map(|gs| {
                            let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
                            (text(&gs["metadata"]["namespace"]), text(&gs["metadata"]["name"]))
                        })
                        .collect();
                    for (namespace, name) in waiting {
                        tokio::spawn(provision(shared.clone(), namespace, name));
                    }
                }
                Err(RecvError::Closed) => return,
            }
        }
    });
}

/// Creating → Scheduled (node, host ports, pod) → Ready.
async fn provision(shared: Arc<Shared>, namespace: String, name: String) {
    let set_state = |state: &str, extra: Value| {
        let mut store = shared.store();
        store
            .update(GAMESERVERS, &namespace, &name, None, |object| {
                let status = &mut object["status"];
                if !status.is_object() {
                    *status = json!({});
                }
                status["state"] = json!(state);
                crate::store::merge_patch(status, &extra);
            })
            .is_ok()
    };
    // Only one provisioning per GameServer, however it was noticed: the one that moves it out of no state.
    let claimed = {
        let mut store = shared.store();
        let unclaimed = store.get(GAMESERVERS, &namespace, &name).is_some_and(|gs| gs["status"]["state"].is_null());
        unclaimed
            && store
                .update(GAMESERVERS, &namespace, &name, None, |gs| gs["status"] = json!({ "state": "Creating" }))
                .is_ok()
    };
    if !claimed {
        return;
    }
    let Some((node, ports)) = schedule(&shared, &namespace, &name) else {
        // No node can take it: Agones leaves it waiting; so does the simulator.
        return;
    };
    let node_name = node["metadata"]["name"].as_str().unwrap_or_default().to_owned();
    let address = node["status"]["addresses"]
        .as_array()
        .and_then(|addresses| addresses.iter().find(|a| a["type"] == "InternalIP"))
        .and_then(|a| a["address"].as_str())
        .unwrap_or_default()
        .to_owned();
    // The pod runs the GameServer's containers (Agones also adds its SDK sidecar, which nothing here needs).
    let containers = shared.store().get(GAMESERVERS, &namespace, &name).unwrap_or_default()["spec"]["template"]["spec"]
        ["containers"]
        .clone();
    let pod = json!({
        "metadata": { "name": name, "labels": { "agones.dev/gameserver": name, "agones.dev/role": "gameserver" } },
        "spec": { "nodeName": node_name, "containers": containers },
        "status": { "phase": "Running" },
    });
    if shared.store().create(PODS, &namespace, pod).is_err() {
        return;
    }
    let scheduled = json!({
        "nodeName": node_name,
        "address": address,
        "addresses": [{ "type": "InternalIP", "address": address }],
        "ports": ports,
    });
    if !set_state("Scheduled", scheduled) {
        return;
    }
    shared.append_pod_log(&name, format!("[sim] scheduled on {node_name}"));
    let gameserver = shared.store().get(GAMESERVERS, &namespace, &name).unwrap_or_default();
    let container = gameserver["spec"]["template"]["spec"]["containers"][0].clone();
    if let Some(image) = kubelet::image_for(&shared, &container).cloned() {
        let claim = gameserver["spec"]["template"]["spec"]["volumes"]
            .as_array()
            .and_then(|volumes| volumes.iter().find_map(|v| v["persistentVolumeClaim"]["claimName"].as_str()))
            .map(str::to_owned);
        let host_port = ports.first().and_then(|p| p["port"].as_u64()).and_then(|p| u16::try_from(p).ok());
        let start = kubelet::PodStart {
            uid: gameserver["metadata"]["uid"].clone(),
            namespace,
            name,
            node: node_name,
            node_ip: node["metadata"]["labels"][crate::PUBLIC_IP_LABEL].as_str().unwrap_or_default().to_owned(),
            host_port: host_port.unwrap_or_default(),
            container,
            claim,
        };
        kubelet::run(shared, start, image).await;
        return;
    }
    tokio::time::sleep(shared.config.ready_after).await;
    if sdk::ready(&shared, &namespace, &name, &gameserver["metadata"]["uid"]) {
        shared.append_pod_log(&name, "[sim] ready".to_owned());
    }
}

/// Picks the live node running the fewest GameServers, and a free host port on it for each game port.
fn schedule(shared: &Shared, namespace: &str, name: &str) -> Option<(Value, Vec<Value>)> {
    let (nodes, gameserver) = {
        let store = shared.store();
        (store.list(NODES, None), store.get(GAMESERVERS, namespace, name)?)
    };
    let mut placements = lock(&shared.placements);
    let node = nodes.into_iter().min_by_key(|node| placements.load(node["metadata"]["name"].as_str().unwrap_or("")))?;
    let node_name = node["metadata"]["name"].as_str().unwrap_or_default().to_owned();
    // Ports of GameServers on the node, and of processes there still shutting down.
    let mut used: HashSet<u64> = placements.ports(&node_name);
    used.extend(kubelet::ports_in_use(shared, &node_name));
    let mut ports = Vec::new();
    for port in gameserver["spec"]["ports"].as_array().cloned().unwrap_or_default() {
        let host_port = match port["portPolicy"].as_str() {
            Some("Static") => port["hostPort"].as_u64()?,
            Some("None") => continue,
            _ => {
                let free = shared.config.host_ports.clone().map(u64::from).find(|p| !used.contains(p))?;
                used.insert(free);
                free
            }
        };
        ports.push(json!({ "name": port["name"], "port": host_port }));
    }
    let host_ports = ports.iter().filter_map(|p| p["port"].as_u64()).collect();
    placements.place((namespace.to_owned(), name.to_owned()), node_name, host_ports);
    Some((node, ports))
}

/// Which node each GameServer was given and its host ports, tallied per node: scheduling stays cheap with
/// thousands of GameServers.
#[derive(Default)]
pub(crate) struct Placements {
    by_gameserver: HashMap<(String, String), (String, Vec<u64>)>,
    by_node: HashMap<String, (usize, HashSet<u64>)>,
}

impl Placements {
    fn place(&mut self, gameserver: (String, String), node: String, ports: Vec<u64>) {
        self.remove(&gameserver);
        let tally = self.by_node.entry(node.clone()).or_default();
        tally.0 += 1;
        tally.1.extend(ports.iter().copied());
        self.by_gameserver.insert(gameserver, (node, ports));
    }

    pub(crate) fn remove(&mut self, gameserver: &(String, String)) {
        let Some((node, ports)) = self.by_gameserver.remove(gameserver) else { return };
        if let Some(tally) = self.by_node.get_mut(&node) {
            tally.0 -= 1;
            for port in ports {
                tally.1.remove(&port);
            }
        }
    }

    fn load(&self, node: &str) -> usize {
        self.by_node.get(node).map_or(0, |tally| tally.0)
    }

    fn ports(&self, node: &str) -> HashSet<u64> {
        self.by_node.get(node).map(|tally| tally.1.clone()).unwrap_or_default()
    }
}

pub(crate) fn kill_node(shared: &Arc<Shared>, node: &str) {
    // (namespace, name, uid): the uid, so that only these GameServers go, not replacements of the same name.
    let victims: Vec<(String, String, Value)> = {
        let mut store = shared.store();
        let _ = store.delete(NODES, "", node);
        let victims: Vec<(String, String, Value)> = store
            .list(GAMESERVERS, None)
            .into_iter()
            .filter(|gs| gs["status"]["nodeName"] == node)
            .map(|gs| {
                let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
                (text(&gs["metadata"]["namespace"]), text(&gs["metadata"]["name"]), gs["metadata"]["uid"].clone())
            })
            .collect();
        for (namespace, name, _) in &victims {
            let _ = store.delete(PODS, namespace, name);
            kubelet::stop(shared, namespace, name, Duration::ZERO);
            let _ = store.update(GAMESERVERS, namespace, name, None, |gs| gs["status"]["state"] = json!("Unhealthy"));
        }
        victims
    };
    let (shared, delay) = (shared.clone(), shared.config.ready_after);
    tokio::spawn(async move {
        tokio::time::sleep(delay).await;
        for (namespace, name, uid) in victims {
            let same =
                shared.store().get(GAMESERVERS, &namespace, &name).is_some_and(|gs| gs["metadata"]["uid"] == uid);
            if same && shared.store().delete(GAMESERVERS, &namespace, &name).is_ok() {
                shared.deleted(GAMESERVERS, &namespace, &name);
            }
        }
    });
}
