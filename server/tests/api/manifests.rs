//! The cluster manifests in `k8s/`, rendered by kubectl's kustomize as an operator's `kubectl apply -k k8s/`
//! would render them, and checked object by object: security settings on every workload, RBAC that grants
//! exactly what the Agones driver uses, a NetworkPolicy that agrees with the Agones port range and the catalog,
//! and the catalog ConfigMap being `catalog/games.yaml` itself.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::{Backend, NAMESPACE, TestDriver, catalog_with, spawn_app_on};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `kubectl kustomize k8s/`, one JSON value per object.
fn rendered() -> Vec<Value> {
    let output = std::process::Command::new("kubectl")
        .arg("kustomize")
        .arg(repo().join("k8s"))
        .output()
        .unwrap_or_else(|e| panic!("kubectl is needed to render k8s/ (scripts/test.sh installs it): {e}"));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "kubectl kustomize k8s/ failed: {stderr}");
    let text = String::from_utf8(output.stdout).expect("utf-8");
    serde_yaml_ng::Deserializer::from_str(&text)
        .map(|document| serde::Deserialize::deserialize(document).expect("a rendered object"))
        .filter(|object: &Value| !object.is_null())
        .collect()
}

fn find<'a>(objects: &'a [Value], kind: &str, name: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name} in k8s/"))
}

fn of_kind<'a>(objects: &'a [Value], kind: &'a str) -> impl Iterator<Item = &'a Value> {
    objects.iter().filter(move |o| o["kind"] == kind)
}

fn text(value: &Value) -> &str {
    value.as_str().unwrap_or_default()
}

/// The pod template of a workload.
fn pod_spec(workload: &Value) -> &Value {
    match text(&workload["kind"]) {
        "CronJob" => &workload["spec"]["jobTemplate"]["spec"]["template"]["spec"],
        _ => &workload["spec"]["template"]["spec"],
    }
}

fn containers(pod: &Value) -> Vec<&Value> {
    ["initContainers", "containers"].iter().flat_map(|field| pod[field].as_array().into_iter().flatten()).collect()
}

fn env<'a>(container: &'a Value, name: &str) -> &'a Value {
    let vars = container["env"].as_array().into_iter().flatten();
    vars.into_iter().find(|var| var["name"] == name).map_or(&Value::Null, |var| &var["value"])
}

#[test]
fn every_workload_runs_unprivileged_with_resources() {
    let objects = rendered();
    let workloads: Vec<&Value> =
        objects.iter().filter(|o| ["Deployment", "StatefulSet", "CronJob"].contains(&text(&o["kind"]))).collect();
    assert_eq!(workloads.len(), 4, "spawnpoint, postgres, cloudflared, postgres-backup");
    for workload in workloads {
        let name = text(&workload["metadata"]["name"]);
        let pod = pod_spec(workload);
        assert_eq!(pod["securityContext"]["runAsNonRoot"], true, "{name}: runAsNonRoot");
        assert!(pod["securityContext"]["runAsUser"].as_u64().is_some_and(|uid| uid > 0), "{name}: a user id");
        assert_eq!(pod["securityContext"]["seccompProfile"]["type"], "RuntimeDefault", "{name}: `restricted` asks it");
        for container in containers(pod) {
            let what = format!("{name}/{}", text(&container["name"]));
            let security = &container["securityContext"];
            assert_eq!(security["allowPrivilegeEscalation"], false, "{what}: no privilege escalation");
            assert_eq!(security["readOnlyRootFilesystem"], true, "{what}: read-only root filesystem");
            assert_eq!(security["capabilities"]["drop"], serde_json::json!(["ALL"]), "{what}: no capabilities");
            assert!(security["privileged"] != true && security["capabilities"]["add"].is_null(), "{what}");
            for bound in ["requests", "limits"] {
                for resource in ["cpu", "memory"] {
                    assert!(container["resources"][bound][resource].is_string(), "{what}: {bound}.{resource}");
                }
            }
        }
    }

    let spawnpoint = find(&objects, "Deployment", "spawnpoint");
    let container = containers(pod_spec(spawnpoint))[0];
    let port = &container["ports"][0];
    assert_eq!((&port["name"], &port["containerPort"]), (&serde_json::json!("http"), &serde_json::json!(3000)));
    assert_eq!(env(container, "SPAWNPOINT_ADDR"), "0.0.0.0:3000", "it listens where the probes and Service look");
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/health");
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/ready");
    assert_eq!(container["image"], "spawnpoint/spawnpoint:latest");

    let postgres = find(&objects, "StatefulSet", "postgres");
    assert_eq!(containers(pod_spec(postgres))[0]["image"], "postgres:16-alpine");
    assert_eq!(postgres["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"], "20Gi");
    assert_eq!(find(&objects, "CronJob", "postgres-backup")["spec"]["schedule"], "0 */6 * * *");
}

#[test]
fn services_and_the_disruption_budget_select_their_pods() {
    let objects = rendered();
    let pod_labels =
        |kind: &str, name: &str| find(&objects, kind, name)["spec"]["template"]["metadata"]["labels"].clone();
    let selects = |selector: &Value, labels: &Value| {
        selector.as_object().is_some_and(|s| !s.is_empty() && s.iter().all(|(k, v)| &labels[k] == v))
    };
    let spawnpoint = pod_labels("Deployment", "spawnpoint");
    assert!(selects(&find(&objects, "Service", "spawnpoint")["spec"]["selector"], &spawnpoint));
    let budget = find(&objects, "PodDisruptionBudget", "spawnpoint");
    assert!(selects(&budget["spec"]["selector"]["matchLabels"], &spawnpoint));
    assert!(selects(
        &find(&objects, "Service", "postgres")["spec"]["selector"],
        &pod_labels("StatefulSet", "postgres")
    ));
    // The database URL points at that Service.
    let container = containers(pod_spec(find(&objects, "Deployment", "spawnpoint")))[0];
    assert!(text(env(container, "DATABASE_URL")).contains("@postgres.platform.svc:5432/"));
}

#[test]
fn secrets_are_placeholders_and_every_reference_resolves() {
    let objects = rendered();
    let secrets: Vec<&Value> = of_kind(&objects, "Secret").collect();
    assert_eq!(secrets.len(), 1);
    let secret = secrets[0];
    let data = secret["stringData"].as_object().expect("stringData");
    for key in [
        "postgres-password",
        "jwt-secret",
        "cloudflare-api-token",
        "cloudflare-tunnel-token",
        "stripe-secret-key",
        "stripe-webhook-secret",
    ] {
        assert_eq!(data.get(key).and_then(Value::as_str), Some("REPLACE-ME"), "{key}: a placeholder, never a value");
    }
    assert!(data.values().all(|v| v == "REPLACE-ME"), "nothing real in the template");
    for workload in &objects {
        for container in containers(pod_spec(workload)) {
            for var in container["env"].as_array().into_iter().flatten() {
                let reference = &var["valueFrom"]["secretKeyRef"];
                if reference.is_object() {
                    assert_eq!(reference["name"], secret["metadata"]["name"]);
                    assert!(data.contains_key(text(&reference["key"])), "{} refers to a missing key", var["name"]);
                    assert_eq!(workload["metadata"]["namespace"], secret["metadata"]["namespace"]);
                }
            }
        }
    }
}

#[test]
fn the_catalog_config_map_is_the_catalog_file_and_is_what_spawnpoint_reads() {
    let objects = rendered();
    let config_map = find(&objects, "ConfigMap", "spawnpoint-catalog");
    let builtin = std::fs::read_to_string(repo().join("catalog/games.yaml")).expect("the catalog");
    assert_eq!(config_map["data"]["games.yaml"], builtin.as_str(), "the ConfigMap is catalog/games.yaml");
    assert_eq!(config_map["metadata"]["namespace"], "platform");

    let spawnpoint = find(&objects, "Deployment", "spawnpoint");
    let pod = pod_spec(spawnpoint);
    let container = containers(pod)[0];
    let path = PathBuf::from(text(env(container, "SPAWNPOINT_CATALOG")));
    let mount =
        container["volumeMounts"].as_array().into_iter().flatten().find(|m| path.starts_with(text(&m["mountPath"])));
    let mount = mount.expect("SPAWNPOINT_CATALOG is inside a mount");
    let volume = pod["volumes"].as_array().into_iter().flatten().find(|v| v["name"] == mount["name"]).expect("volume");
    assert_eq!(volume["configMap"]["name"], "spawnpoint-catalog");
    assert_eq!(path.file_name().and_then(|f| f.to_str()), Some("games.yaml"));
}

#[test]
fn the_network_policy_agrees_with_agones_and_the_catalog() {
    let objects = rendered();
    let values: Value = serde_yaml_ng::from_str(
        &std::fs::read_to_string(repo().join("k8s/agones-values.yaml")).expect("agones-values.yaml"),
    )
    .expect("yaml");
    let (min, max) = (&values["gameservers"]["minPort"], &values["gameservers"]["maxPort"]);
    assert_eq!(values["gameservers"]["namespaces"], serde_json::json!([NAMESPACE]), "Agones serves our namespace");

    let policy = find(&objects, "NetworkPolicy", "gameservers");
    assert_eq!(policy["metadata"]["namespace"], NAMESPACE);
    assert_eq!(policy["spec"]["podSelector"], serde_json::json!({}), "every pod in the namespace");
    let ingress = policy["spec"]["ingress"].as_array().expect("ingress rules");
    assert_eq!(ingress.len(), 1);
    assert_eq!(ingress[0]["from"], serde_json::json!([{ "ipBlock": { "cidr": "0.0.0.0/0" } }]));
    let ports = ingress[0]["ports"].as_array().expect("ports");
    for protocol in ["TCP", "UDP"] {
        let range = ports.iter().find(|p| p["protocol"] == protocol && p["endPort"].is_u64());
        let range = range.unwrap_or_else(|| panic!("a {protocol} port range"));
        assert_eq!((&range["port"], &range["endPort"]), (min, max), "{protocol}: the Agones port range");
    }
    let open = |port: u16, protocol: &str| {
        ports.iter().any(|p| {
            let first = p["port"].as_u64().unwrap_or(0);
            let last = p["endPort"].as_u64().unwrap_or(first);
            p["protocol"] == protocol && (first..=last).contains(&u64::from(port))
        })
    };
    for game in catalog::Catalog::builtin().games() {
        let ports = std::iter::once((game.port.port, game.port.protocol.to_string()))
            .chain(game.extra_ports.iter().map(|extra| (extra.port, extra.protocol.to_string())));
        for (port, protocol) in ports {
            assert!(open(port, &protocol), "{}: container port {port}/{protocol} is let in", game.id);
        }
    }

    let egress = &policy["spec"]["egress"];
    let anywhere = egress.as_array().and_then(|rules| {
        rules.iter().find_map(|rule| rule["to"].as_array()?.iter().find(|to| to["ipBlock"]["cidr"] == "0.0.0.0/0"))
    });
    let except: BTreeSet<&str> = anywhere.expect("egress to the Internet")["ipBlock"]["except"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    for private in ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16", "192.0.2.0/24"] {
        assert!(except.contains(private), "egress to {private} (private, or the nodes' public addresses) is blocked");
    }
}

#[test]
fn the_platform_namespace_lets_in_only_what_each_part_needs() {
    let objects = rendered();
    let deny = find(&objects, "NetworkPolicy", "platform-default-deny");
    assert_eq!((&deny["spec"]["podSelector"], &deny["spec"]["policyTypes"]), (&json!({}), &json!(["Ingress"])));
    // Who may reach each workload: the pod names of the `from` selectors, and the ports.
    let reached_by = |name: &str| {
        let policy = find(&objects, "NetworkPolicy", name);
        assert_eq!(policy["metadata"]["namespace"], "platform");
        assert_eq!(policy["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/name"], name);
        let rules = policy["spec"]["ingress"].as_array().expect("ingress rules");
        let from: BTreeSet<&str> = rules
            .iter()
            .flat_map(|rule| rule["from"].as_array().into_iter().flatten())
            .map(|peer| {
                assert!(peer.get("ipBlock").is_none() && peer.get("namespaceSelector").is_none(), "{name}: {peer}");
                text(&peer["podSelector"]["matchLabels"]["app.kubernetes.io/name"])
            })
            .collect();
        let ports: BTreeSet<u64> = rules
            .iter()
            .flat_map(|rule| rule["ports"].as_array().into_iter().flatten())
            .filter_map(|port| port["port"].as_u64())
            .collect();
        (from, ports)
    };
    assert_eq!(reached_by("spawnpoint"), (BTreeSet::from(["cloudflared"]), BTreeSet::from([3000])));
    assert_eq!(reached_by("postgres"), (BTreeSet::from(["postgres-backup", "spawnpoint"]), BTreeSet::from([5432])));

    // Pod Security: game pods cannot be privileged; the platform's own meet the strictest level.
    let labels = |namespace: &str| find(&objects, "Namespace", namespace)["metadata"]["labels"].clone();
    assert_eq!(labels("gameservers")["pod-security.kubernetes.io/enforce"], "baseline");
    assert_eq!(labels("gameservers")["pod-security.kubernetes.io/warn"], "restricted");
    assert_eq!(labels("platform")["pod-security.kubernetes.io/enforce"], "restricted");
}

/// `(api group, resource, verb)` for every request the driver made to the simulator.
fn used_permissions(requests: &[k8s_sim::Recorded]) -> BTreeSet<(String, String, String)> {
    requests
        .iter()
        .map(|request| {
            let (path, query) = request.uri.split_once('?').unwrap_or((&request.uri, ""));
            let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
            let (group, rest) = match segments.as_slice() {
                ["api", "v1", rest @ ..] => (String::new(), rest),
                ["apis", group, _version, rest @ ..] => ((*group).to_owned(), rest),
                _ => panic!("an unexpected path {path}"),
            };
            let rest = match rest {
                ["namespaces", _, rest @ ..] => rest,
                rest => rest,
            };
            let (resource, named) = match rest {
                [plural] => ((*plural).to_owned(), false),
                [plural, _name] => ((*plural).to_owned(), true),
                [plural, _name, sub] => (format!("{plural}/{sub}"), true),
                _ => panic!("an unexpected path {path}"),
            };
            let verb = match (request.method.as_str(), named) {
                // A WebSocket upgrade: kube-apiserver authorizes attach (and exec) as `create` whatever the method.
                ("GET", true) if resource == "pods/attach" => "create",
                ("GET", true) => "get",
                ("GET", false) if query.contains("watch=true") || query.contains("watch=1") => "watch",
                ("GET", false) => "list",
                ("POST", _) => "create",
                ("DELETE", _) => "delete",
                ("PATCH", _) => "patch",
                ("PUT", _) => "update",
                (other, _) => panic!("an unexpected method {other}"),
            };
            (group, resource, verb.to_owned())
        })
        .collect()
}

fn granted(role: &Value) -> BTreeSet<(String, String, String)> {
    let mut granted = BTreeSet::new();
    for rule in role["rules"].as_array().expect("rules") {
        for list in ["apiGroups", "resources", "verbs"] {
            let items = rule[list].as_array().expect(list);
            assert!(items.iter().all(|item| item != "*"), "no wildcards: {rule}");
        }
        for group in rule["apiGroups"].as_array().into_iter().flatten() {
            for resource in rule["resources"].as_array().into_iter().flatten() {
                for verb in rule["verbs"].as_array().into_iter().flatten() {
                    granted.insert((text(group).to_owned(), text(resource).to_owned(), text(verb).to_owned()));
                }
            }
        }
    }
    granted
}

/// The Role and ClusterRole grant exactly what the driver uses through a server's whole life (created, running,
/// its output read, crashed and restarted, its console watched and typed on, stopped, started, deleted), bound
/// to the Deployment's account.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rbac_grants_exactly_what_the_agones_driver_uses() {
    let objects = rendered();
    let app = spawn_app_on(Backend::Sqlite, TestDriver::Agones, |settings| {
        settings.tuning.restart_backoff = Duration::from_millis(50);
        let once = "if [ -f crashed ]; then echo ready now; exec sleep 600; fi; touch crashed; echo ready now; exit 3";
        settings.catalog_path = Some(catalog_with(&settings.data_dir, &[("once", once)]));
    })
    .await;
    let token = app.signed_up("rbac@example.com").await;
    let id = app.created(&token, "once", "p").await;
    app.wait_for(&token, &id, "running", |s| s["status"] == "running" && app.game_pid(&id).is_some()).await;
    let crashed = crate::helpers::eventually("the crash was seen", || {
        let cluster = app.cluster.as_ref().expect("cluster");
        cluster.requests().iter().any(|r| r.method == "GET" && r.uri.contains("/pods/") && !r.uri.contains("/log"))
    });
    crashed.await;
    assert_eq!(app.get_as(&token, &format!("/api/servers/{id}/logs")).await.status(), 200);
    let mut console = crate::console::viewer(&app, &token, &id).await;
    console.send("hello").await;
    crate::helpers::eventually("the command was attached", || {
        let cluster = app.cluster.as_ref().expect("cluster");
        cluster.requests().iter().any(|r| r.uri.contains("/attach?") && r.status == 101)
    })
    .await;
    drop(console);
    for action in ["stop", "start", "delete"] {
        assert_eq!(app.act(&token, &id, action).await.status(), 202);
        let want = match action {
            "stop" => "stopped",
            "start" => "running",
            _ => "gone",
        };
        app.wait_for(&token, &id, want, |s| if want == "gone" { s.is_null() } else { s["status"] == want }).await;
    }
    let cluster = app.cluster.as_ref().expect("cluster");
    let used = used_permissions(&cluster.requests());

    let role = find(&objects, "Role", "spawnpoint-gameservers");
    assert_eq!(role["metadata"]["namespace"], NAMESPACE);
    let cluster_role = find(&objects, "ClusterRole", "spawnpoint-nodes");
    let mut rules = granted(role);
    let cluster_wide = granted(cluster_role);
    assert!(cluster_wide.iter().all(|(_, resource, verb)| resource == "nodes" && verb == "get"), "{cluster_wide:?}");
    rules.extend(cluster_wide);
    // Stamping objects made before installations patches them, once, at start (exercised by
    // `agones::objects_made_before_installations_are_taken_over_without_a_restart`), not in this life cycle.
    let mut used = used;
    for resource in [("agones.dev", "gameservers"), ("", "persistentvolumeclaims")] {
        used.insert((resource.0.to_owned(), resource.1.to_owned(), "patch".to_owned()));
    }
    assert_eq!(rules, used, "granted (left) and used (right) differ");

    // Both bound to the account the Deployment runs as, and only that.
    let account = text(&pod_spec(find(&objects, "Deployment", "spawnpoint"))["serviceAccountName"]).to_owned();
    for (kind, name, role_kind) in
        [("RoleBinding", "spawnpoint-gameservers", "Role"), ("ClusterRoleBinding", "spawnpoint-nodes", "ClusterRole")]
    {
        let binding = find(&objects, kind, name);
        assert_eq!((text(&binding["roleRef"]["kind"]), text(&binding["roleRef"]["name"])), (role_kind, name));
        let subjects = binding["subjects"].as_array().expect("subjects");
        assert_eq!(subjects.len(), 1);
        assert_eq!((text(&subjects[0]["name"]), text(&subjects[0]["namespace"])), (account.as_str(), "platform"));
    }
    // And the Deployment points the driver at the namespace the Role is in.
    let container = containers(pod_spec(find(&objects, "Deployment", "spawnpoint")))[0];
    assert_eq!(env(container, "SPAWNPOINT_NAMESPACE"), NAMESPACE);
    let defaults = server::config::Settings::from_lookup(|_| None).expect("defaults");
    assert_eq!(env(container, "SPAWNPOINT_NAMESPACE"), defaults.agones.namespace.as_str());
    assert_eq!(env(container, "SPAWNPOINT_PUBLIC_IP_LABEL"), defaults.agones.public_ip_label.as_str());
}

/// Spawnpoint accepts the Deployment's configuration once an operator has filled in the placeholders (secrets
/// from the Secret, `REPLACE-ME…` values): the cluster mode it describes is the one Spawnpoint starts.
#[test]
fn the_deployment_configures_the_cluster_mode() {
    let objects = rendered();
    let container = containers(pod_spec(find(&objects, "Deployment", "spawnpoint")))[0];
    let vars = container["env"].as_array().expect("env");
    let filled_in = |var: &Value| -> String {
        match var["value"].as_str() {
            Some(value) if value.starts_with("REPLACE-ME") => "023e105f4ecef8ad9ca31a8372d0c353".into(),
            Some(value) => value.into(),
            None => "an operator's secret value, at least 32 characters long".into(),
        }
    };
    let settings =
        server::config::Settings::from_lookup(|name| vars.iter().find(|var| var["name"] == name).map(filled_in))
            .expect("the Deployment's settings are accepted");
    assert_eq!(settings.driver, server::config::Driver::Agones);
    assert_eq!(settings.database_kind(), "postgres");
    let server::config::DnsProvider::Cloudflare(dns) = &settings.dns else { panic!("servers are named on a cluster") };
    assert_eq!(dns.api_base, "https://api.cloudflare.com/client/v4");
    assert!(!format!("{settings:?}").contains("an operator's secret value"), "secrets stay out of debug output");
}

#[test]
fn the_image_runs_as_a_user_not_root() {
    let dockerfile = std::fs::read_to_string(repo().join("Dockerfile")).expect("Dockerfile");
    let stages: Vec<&str> = dockerfile.split("\nFROM ").skip(1).collect();
    assert!(stages.len() >= 2, "a multi-stage build");
    let last = stages.last().expect("the image's stage");
    let user = last.lines().find_map(|line| line.strip_prefix("USER ")).expect("a USER");
    assert!(!user.starts_with("root") && !user.starts_with('0'), "runs as {user}");
    assert!(last.contains("ENTRYPOINT [\"spawnpoint\"]"));
}

/// Every object parses as its Kubernetes API type and says nothing the type does not know: read into
/// k8s-openapi's types and written back, everything it said is still there (a misspelt or misplaced field would
/// be dropped).
#[test]
fn every_object_is_a_well_formed_kubernetes_object() {
    use k8s_openapi::api::{apps, batch, core, networking, policy, rbac};
    fn round_trip<T: serde::de::DeserializeOwned + serde::Serialize>(object: &Value) -> Value {
        let typed: T = serde_json::from_value(object.clone())
            .unwrap_or_else(|e| panic!("{} {}: {e}", object["kind"], object["metadata"]["name"]));
        serde_json::to_value(typed).expect("json")
    }
    for object in rendered() {
        let again = match text(&object["kind"]) {
            "Namespace" => round_trip::<core::v1::Namespace>(&object),
            "Secret" => round_trip::<core::v1::Secret>(&object),
            "ConfigMap" => round_trip::<core::v1::ConfigMap>(&object),
            "Service" => round_trip::<core::v1::Service>(&object),
            "ServiceAccount" => round_trip::<core::v1::ServiceAccount>(&object),
            "Deployment" => round_trip::<apps::v1::Deployment>(&object),
            "StatefulSet" => round_trip::<apps::v1::StatefulSet>(&object),
            "CronJob" => round_trip::<batch::v1::CronJob>(&object),
            "PodDisruptionBudget" => round_trip::<policy::v1::PodDisruptionBudget>(&object),
            "NetworkPolicy" => round_trip::<networking::v1::NetworkPolicy>(&object),
            "Role" => round_trip::<rbac::v1::Role>(&object),
            "RoleBinding" => round_trip::<rbac::v1::RoleBinding>(&object),
            "ClusterRole" => round_trip::<rbac::v1::ClusterRole>(&object),
            "ClusterRoleBinding" => round_trip::<rbac::v1::ClusterRoleBinding>(&object),
            other => panic!("a {other} in k8s/: add it here"),
        };
        let mut lost = Vec::new();
        kept(&object, &again, String::new(), &mut lost);
        assert!(lost.is_empty(), "{} {}: not Kubernetes fields: {lost:?}", object["kind"], object["metadata"]["name"]);
    }
}

/// Collects the paths of what `original` says and `again` does not.
fn kept(original: &Value, again: &Value, path: String, lost: &mut Vec<String>) {
    match (original, again) {
        (Value::Object(fields), Value::Object(again)) => {
            for (key, value) in fields {
                match again.get(key) {
                    Some(other) => kept(value, other, format!("{path}.{key}"), lost),
                    None => lost.push(format!("{path}.{key}")),
                }
            }
        }
        (Value::Array(items), Value::Array(again)) if items.len() == again.len() => {
            for (i, (item, other)) in items.iter().zip(again).enumerate() {
                kept(item, other, format!("{path}[{i}]"), lost);
            }
        }
        (value, other) if value == other => {}
        _ => lost.push(path),
    }
}
