//! The Agones `GameServer` of a server: a small hand-written subset of Agones' CRD (agones.dev/v1), typed, and
//! the one function that builds it from the server's spec.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Capabilities, Container, EnvVar, PersistentVolumeClaimVolumeSource, PodSecurityContext, PodSpec, PodTemplateSpec,
    ResourceRequirements, SeccompProfile, SecurityContext, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::CustomResource;
use serde::{Deserialize, Serialize};

use super::names::{GENERATION_ANNOTATION, claim_name, labels};
use crate::orchestrator::ServerSpec;

/// The catalog's main port is named this in every GameServer.
pub const GAME_PORT: &str = "game";
/// Where the game's container finds its data (the claim).
const DATA_PATH: &str = "/data";

/// The subset of Agones' `GameServer` (agones.dev/v1) that Spawnpoint writes and reads.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(group = "agones.dev", version = "v1", kind = "GameServer", namespaced, status = "GameServerStatus")]
#[kube(schema = "disabled")]
#[serde(rename_all = "camelCase")]
pub struct GameServerSpec {
    // Defaults throughout: the watch also reads GameServers written by others (with the managed-by label
    // copied, say), and one that lacks a field must not stop it.
    #[serde(default)]
    pub ports: Vec<GameServerPort>,
    #[serde(default)]
    pub template: k8s_openapi::api::core::v1::PodTemplateSpec,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct GameServerPort {
    pub name: String,
    pub port_policy: String,
    pub container_port: u16,
    pub protocol: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct GameServerStatus {
    #[serde(default)]
    pub state: GameServerState,
    #[serde(default)]
    pub node_name: Option<String>,
    #[serde(default)]
    pub ports: Option<Vec<StatusPort>>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct StatusPort {
    pub name: String,
    pub port: u16,
}

/// `status.state`. A state this Spawnpoint does not know (a newer Agones) is kept as it came, not an error.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(from = "String", into = "String")]
pub enum GameServerState {
    PortAllocation,
    Creating,
    Starting,
    Scheduled,
    RequestReady,
    Ready,
    Shutdown,
    Error,
    Unhealthy,
    Reserved,
    Allocated,
    /// Not set yet.
    #[default]
    Unset,
    Unknown(String),
}

/// The states by their names in the CRD.
const STATES: [(&str, GameServerState); 11] = [
    ("PortAllocation", GameServerState::PortAllocation),
    ("Creating", GameServerState::Creating),
    ("Starting", GameServerState::Starting),
    ("Scheduled", GameServerState::Scheduled),
    ("RequestReady", GameServerState::RequestReady),
    ("Ready", GameServerState::Ready),
    ("Shutdown", GameServerState::Shutdown),
    ("Error", GameServerState::Error),
    ("Unhealthy", GameServerState::Unhealthy),
    ("Reserved", GameServerState::Reserved),
    ("Allocated", GameServerState::Allocated),
];

impl From<String> for GameServerState {
    fn from(name: String) -> Self {
        match STATES.iter().find(|(known, _)| *known == name) {
            Some((_, state)) => state.clone(),
            None if name.is_empty() => GameServerState::Unset,
            None => GameServerState::Unknown(name),
        }
    }
}

impl From<GameServerState> for String {
    fn from(state: GameServerState) -> Self {
        match state {
            GameServerState::Unknown(name) => name,
            GameServerState::Unset => String::new(),
            known => STATES
                .iter()
                .find(|(_, state)| *state == known)
                .map_or_else(String::new, |(name, _)| (*name).to_owned()),
        }
    }
}

/// The GameServer for a server: one container named after the game, with the catalog image, env and the server's
/// variables, the plan's
/// cpu and memory as requests and limits, the claim at `/data`, standard input kept open for the console, and
/// every port with a dynamic host port.
pub fn build(spec: &ServerSpec, installation: &str) -> GameServer {
    let game = &spec.game;
    let port = |name: &str, port: &catalog::GamePort| GameServerPort {
        name: name.to_owned(),
        port_policy: "Dynamic".to_owned(),
        container_port: port.port,
        protocol: port.protocol.to_string(),
    };
    let mut ports = vec![port(GAME_PORT, &game.port)];
    ports.extend(game.extra_ports.iter().map(|extra| port(&extra.name, extra)));
    let resources = BTreeMap::from([
        ("cpu".to_owned(), Quantity(spec.plan.cpu.as_str().to_owned())),
        ("memory".to_owned(), Quantity(spec.plan.memory.as_str().to_owned())),
    ]);
    // The catalog's environment, then the server's startup variables by key (as the single box gives them too).
    let mut vars = game.env.clone();
    vars.extend(spec.variables.0.iter().map(|(key, value)| (key.clone(), value.clone())));
    let env = vars.into_iter().map(|(name, value)| EnvVar { name, value: Some(value), ..EnvVar::default() });
    let container = Container {
        name: game.id.clone(),
        image: Some(game.image.clone()),
        env: Some(env.collect()),
        resources: Some(ResourceRequirements {
            requests: Some(resources.clone()),
            limits: Some(resources),
            ..ResourceRequirements::default()
        }),
        volume_mounts: Some(vec![VolumeMount {
            name: "data".to_owned(),
            mount_path: DATA_PATH.to_owned(),
            ..VolumeMount::default()
        }]),
        // The console types commands on the game's standard input (pods/attach), which stays open between
        // attachments.
        stdin: Some(true),
        // What the namespace's `restricted` Pod Security level asks of a container: no way to gain privileges.
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            capabilities: Some(Capabilities { drop: Some(vec!["ALL".to_owned()]), ..Capabilities::default() }),
            ..SecurityContext::default()
        }),
        ..Container::default()
    };
    let run_as = game.run_as;
    // The game's own non-root user; `fsGroup` makes the claim's files its group's, so the game can write them.
    let pod_security = PodSecurityContext {
        run_as_non_root: Some(true),
        run_as_user: Some(i64::from(run_as.user)),
        run_as_group: Some(i64::from(run_as.group)),
        fs_group: Some(i64::from(run_as.group)),
        seccomp_profile: Some(SeccompProfile { type_: "RuntimeDefault".to_owned(), ..SeccompProfile::default() }),
        ..PodSecurityContext::default()
    };
    let template = PodTemplateSpec {
        metadata: Some(ObjectMeta { labels: Some(labels(spec, installation)), ..ObjectMeta::default() }),
        spec: Some(PodSpec {
            containers: vec![container],
            security_context: Some(pod_security),
            volumes: Some(vec![Volume {
                name: "data".to_owned(),
                persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                    claim_name: claim_name(&spec.id),
                    ..PersistentVolumeClaimVolumeSource::default()
                }),
                ..Volume::default()
            }]),
            ..PodSpec::default()
        }),
    };
    let mut gameserver = GameServer::new(spec.id.as_str(), GameServerSpec { ports, template });
    gameserver.metadata.labels = Some(labels(spec, installation));
    gameserver.metadata.annotations =
        Some(BTreeMap::from([(GENERATION_ANNOTATION.to_owned(), spec.generation.to_string())]));
    gameserver
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_state_reads_as_unknown() {
        let status: GameServerStatus =
            serde_json::from_value(serde_json::json!({ "state": "Hibernating" })).expect("parses");
        assert_eq!(status.state, GameServerState::Unknown("Hibernating".into()));
        assert_eq!(String::from(status.state), "Hibernating", "kept as it came");
        let status: GameServerStatus = serde_json::from_value(serde_json::json!({ "state": "Ready" })).expect("parses");
        assert_eq!(status.state, GameServerState::Ready);
    }
}
