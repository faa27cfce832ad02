//! The simulator as the real kube client sees it.

use std::time::Duration;

use futures_util::StreamExt as _;
use k8s_openapi::api::core::v1::{Node, PersistentVolumeClaim, Pod};
use k8s_sim::{SimConfig, Simulator};
use kube::api::{
    Api, DeleteParams, DynamicObject, ListParams, LogParams, Patch, PatchParams, PostParams, Preconditions,
};
use kube::core::{ApiResource, GroupVersionKind};
use kube::runtime::{WatchStreamExt as _, watcher};
use serde_json::json;

const NAMESPACE: &str = "gameservers";

async fn client(sim: &Simulator) -> kube::Client {
    let config = kube::Config::new(sim.url().parse().expect("url"));
    kube::Client::try_from(config).expect("client")
}

fn gameservers(client: &kube::Client) -> Api<DynamicObject> {
    let resource =
        ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk("agones.dev", "v1", "GameServer"), "gameservers");
    Api::namespaced_with(client.clone(), NAMESPACE, &resource)
}

fn fleets(client: &kube::Client) -> Api<DynamicObject> {
    let resource = ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk("agones.dev", "v1", "Fleet"), "fleets");
    Api::namespaced_with(client.clone(), NAMESPACE, &resource)
}

fn gameserver(name: &str, labels: serde_json::Value) -> DynamicObject {
    serde_json::from_value(json!({
        "apiVersion": "agones.dev/v1",
        "kind": "GameServer",
        "metadata": { "name": name, "labels": labels },
        "spec": {
            "ports": [{ "name": "game", "containerPort": 7000, "protocol": "TCP" }],
            "template": { "spec": { "containers": [{ "name": "demo", "image": "spawnpoint/demo-game" }] } },
        },
    }))
    .expect("a GameServer")
}

fn api_error(error: kube::Error) -> (u16, String) {
    match error {
        kube::Error::Api(status) => (status.code, status.reason.clone()),
        other => panic!("expected an API error, got {other}"),
    }
}

async fn state_of(api: &Api<DynamicObject>, name: &str) -> Option<String> {
    let object = api.get_opt(name).await.expect("get")?;
    object.data["status"]["state"].as_str().map(str::to_owned)
}

async fn wait_for_state(api: &Api<DynamicObject>, name: &str, state: Option<&str>) -> Option<DynamicObject> {
    for _ in 0..100 {
        let current = api.get_opt(name).await.expect("get");
        if current.as_ref().and_then(|o| o.data["status"]["state"].as_str()) == state
            || (state.is_none() && current.is_none())
        {
            return current;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{name} never reached {state:?}; now {:?}", state_of(api, name).await);
}

#[tokio::test]
async fn nodes_carry_their_public_ip_labels() {
    let sim = Simulator::start(SimConfig::default()).await;
    let nodes: Api<Node> = Api::all(client(&sim).await);
    let list = nodes.list(&ListParams::default()).await.expect("list");
    assert_eq!(list.items.len(), 3);
    let node = nodes.get("node-2").await.expect("get");
    assert_eq!(node.metadata.labels.expect("labels")["platform.io/public-ip"], "203.0.113.2");
    let (code, reason) = api_error(nodes.get("node-9").await.expect_err("no such node"));
    assert_eq!((code, reason.as_str()), (404, "NotFound"));
}

#[tokio::test]
async fn claims_are_created_once_listed_by_label_and_deleted() {
    let sim = Simulator::start(SimConfig::default()).await;
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client(&sim).await, NAMESPACE);
    let claim: PersistentVolumeClaim = serde_json::from_value(json!({
        "metadata": { "name": "s1-data", "labels": { "app.kubernetes.io/managed-by": "spawnpoint" } },
        "spec": { "accessModes": ["ReadWriteOnce"], "resources": { "requests": { "storage": "1Gi" } } },
    }))
    .expect("a claim");
    let created = claims.create(&PostParams::default(), &claim).await.expect("created");
    assert!(created.metadata.uid.is_some() && created.metadata.resource_version.is_some());
    let (code, reason) = api_error(claims.create(&PostParams::default(), &claim).await.expect_err("twice"));
    assert_eq!((code, reason.as_str()), (409, "AlreadyExists"));

    let ours =
        claims.list(&ListParams::default().labels("app.kubernetes.io/managed-by=spawnpoint")).await.expect("list");
    assert_eq!(ours.items.len(), 1);
    let others =
        claims.list(&ListParams::default().labels("app.kubernetes.io/managed-by=someone-else")).await.expect("list");
    assert!(others.items.is_empty());

    // A delete meant for another object of the same name (a uid precondition) is refused and changes nothing.
    let someone_else = Preconditions { uid: Some("not-its-uid".into()), resource_version: None };
    let refused = claims.delete("s1-data", &DeleteParams::default().preconditions(someone_else)).await;
    assert_eq!(api_error(refused.expect_err("refused")), (409, "Conflict".to_owned()));
    let exactly = Preconditions { uid: created.metadata.uid.clone(), resource_version: None };
    claims.delete("s1-data", &DeleteParams::default().preconditions(exactly)).await.expect("deleted");
    let (code, _) = api_error(claims.delete("s1-data", &DeleteParams::default()).await.expect_err("gone"));
    assert_eq!(code, 404);
}

#[tokio::test]
async fn a_gameserver_is_scheduled_with_host_ports_and_becomes_ready() {
    let sim = Simulator::start(SimConfig::default()).await;
    let client = client(&sim).await;
    let api = gameservers(&client);
    api.create(&PostParams::default(), &gameserver("gs-1", json!({}))).await.expect("created");
    let ready = wait_for_state(&api, "gs-1", Some("Ready")).await.expect("ready");
    let status = &ready.data["status"];
    let port = status["ports"][0]["port"].as_u64().expect("a host port");
    assert!((7000..=8000).contains(&port), "{port}");
    assert_eq!(ready.data["spec"]["ports"][0]["portPolicy"], "Dynamic", "defaulted as Agones does");
    let node = status["nodeName"].as_str().expect("a node");
    let pods: Api<Pod> = Api::namespaced(client.clone(), NAMESPACE);
    let pod = pods.get("gs-1").await.expect("its pod exists");
    assert_eq!(pod.spec.expect("spec").node_name.as_deref(), Some(node));
    let log = pods.logs("gs-1", &LogParams { tail_lines: Some(1), ..LogParams::default() }).await.expect("log");
    assert_eq!(log, "[sim] ready\n");

    // A second one on the same node would get another port; spread, it lands on another node.
    api.create(&PostParams::default(), &gameserver("gs-2", json!({}))).await.expect("created");
    let second = wait_for_state(&api, "gs-2", Some("Ready")).await.expect("ready");
    assert_ne!(second.data["status"]["nodeName"], status["nodeName"], "spread over the nodes");

    let invalid = gameserver("gs-bad", json!({}));
    let mut invalid = serde_json::to_value(invalid).expect("json");
    invalid["spec"]["ports"] = json!([]);
    let invalid: DynamicObject = serde_json::from_value(invalid).expect("object");
    let (code, reason) = api_error(api.create(&PostParams::default(), &invalid).await.expect_err("no ports"));
    assert_eq!((code, reason.as_str()), (422, "Invalid"));

    api.delete("gs-1", &DeleteParams::default()).await.expect("deleted");
    assert!(pods.get_opt("gs-1").await.expect("get").is_none(), "its pod went with it");
}

#[tokio::test]
async fn a_watcher_follows_changes_through_dropped_watches_and_compaction() {
    let sim =
        Simulator::start(SimConfig { bookmark_interval: Duration::from_millis(100), ..SimConfig::default() }).await;
    let client = client(&sim).await;
    let api = gameservers(&client);
    let config = watcher::Config::default().labels("app.kubernetes.io/managed-by=spawnpoint");
    let mut events = watcher(api.clone(), config).applied_objects().boxed();
    // The watcher reports a failed watch as an error item and then recovers by itself (relisting after a 410).
    let mut errors = Vec::new();
    let mut next_name = async || loop {
        match tokio::time::timeout(Duration::from_secs(10), events.next()).await.expect("in time").expect("open") {
            Ok(object) => return object.metadata.name.expect("name"),
            Err(error) => errors.push(error.to_string()),
        }
    };

    let ours = json!({ "app.kubernetes.io/managed-by": "spawnpoint" });
    api.create(&PostParams::default(), &gameserver("watched-1", ours.clone())).await.expect("created");
    assert_eq!(next_name().await, "watched-1");
    api.create(&PostParams::default(), &gameserver("not-ours", json!({}))).await.expect("created");

    sim.compact();
    sim.drop_watches();
    api.create(&PostParams::default(), &gameserver("watched-2", ours.clone())).await.expect("created");
    let mut seen = Vec::new();
    while !seen.contains(&"watched-2".to_owned()) {
        seen.push(next_name().await);
    }
    assert!(!seen.contains(&"not-ours".to_owned()), "the label selector holds: {seen:?}");
    assert!(sim.list_calls("gameservers") >= 2, "after the 410 the watcher listed again");
    assert!(
        errors.iter().any(|e| e.contains("too old resource version")),
        "resuming from a compacted version was refused: {errors:?}"
    );
}

#[tokio::test]
async fn faults_are_injected_and_requests_recorded() {
    let sim = Simulator::start(SimConfig::default()).await;
    let api = gameservers(&client(&sim).await);
    sim.fail_next(axum::http::Method::POST, "gameservers", 500, 1);
    let (code, _) =
        api_error(api.create(&PostParams::default(), &gameserver("f-1", json!({}))).await.expect_err("500"));
    assert_eq!(code, 500);
    api.create(&PostParams::default(), &gameserver("f-1", json!({}))).await.expect("then it works");
    let patch = Patch::Merge(json!({ "metadata": { "labels": { "x": "y" } } }));
    let patched = api.patch("f-1", &PatchParams::default(), &patch).await.expect("patched");
    assert_eq!(patched.metadata.labels.expect("labels")["x"], "y");
    let posts = sim.requests().into_iter().filter(|r| r.method == axum::http::Method::POST).count();
    assert_eq!(posts, 2);
}

#[tokio::test]
async fn a_lost_node_takes_its_gameservers_with_it() {
    let sim = Simulator::start(SimConfig::default()).await;
    let api = gameservers(&client(&sim).await);
    api.create(&PostParams::default(), &gameserver("doomed", json!({}))).await.expect("created");
    let ready = wait_for_state(&api, "doomed", Some("Ready")).await.expect("ready");
    let node = ready.data["status"]["nodeName"].as_str().expect("node").to_owned();
    sim.kill_node(&node);
    assert_eq!(state_of(&api, "doomed").await.as_deref(), Some("Unhealthy"));
    wait_for_state(&api, "doomed", None).await;
    assert_eq!(sim.objects("nodes").len(), 2);
}

#[tokio::test]
async fn gameservers_are_pruned_and_validated_by_the_real_agones_schema() {
    if k8s_sim::agones_schemas().is_empty() {
        return; // the reason is printed; under CI the reference data is required
    }
    let sim = Simulator::start(SimConfig::default()).await;
    let api = gameservers(&client(&sim).await);
    let mut object = serde_json::to_value(gameserver("pruned", json!({}))).expect("json");
    object["spec"]["madeUpField"] = json!("dropped");
    object["spec"]["ports"][0]["alsoMadeUp"] = json!(1);
    let created =
        api.create(&PostParams::default(), &serde_json::from_value(object).expect("object")).await.expect("created");
    assert!(created.data["spec"].get("madeUpField").is_none(), "unknown fields are pruned: {}", created.data["spec"]);
    assert!(created.data["spec"]["ports"][0].get("alsoMadeUp").is_none());
    assert_eq!(created.data["spec"]["ports"][0]["containerPort"], 7000, "known fields stay");
    assert_eq!(created.data["spec"]["template"]["spec"]["containers"][0]["image"], "spawnpoint/demo-game");

    let mut wrong = serde_json::to_value(gameserver("wrong", json!({}))).expect("json");
    wrong["spec"]["ports"][0]["containerPort"] = json!("seven thousand");
    let error =
        api.create(&PostParams::default(), &serde_json::from_value(wrong).expect("object")).await.expect_err("invalid");
    match error {
        kube::Error::Api(status) => {
            assert_eq!((status.code, status.reason.as_str()), (422, "Invalid"));
            assert!(status.message.contains("spec.ports[0].containerPort"), "{}", status.message);
        }
        other => panic!("expected 422, got {other}"),
    }
}

#[tokio::test]
async fn fleets_are_pruned_and_validated_by_the_real_agones_schema() {
    if k8s_sim::agones_schemas().is_empty() {
        return; // the reason is printed; under CI the reference data is required
    }
    let sim = Simulator::start(SimConfig::default()).await;
    let api = fleets(&client(&sim).await);
    let template = serde_json::to_value(gameserver("ignored", json!({}))).expect("json");
    let fleet = |replicas: serde_json::Value| -> DynamicObject {
        serde_json::from_value(json!({
            "apiVersion": "agones.dev/v1",
            "kind": "Fleet",
            "metadata": { "name": "matches" },
            "spec": { "replicas": replicas, "madeUpField": true, "template": { "spec": template["spec"] } },
        }))
        .expect("a Fleet")
    };
    let created = api.create(&PostParams::default(), &fleet(json!(3))).await.expect("created");
    assert!(created.data["spec"].get("madeUpField").is_none(), "unknown fields are pruned: {}", created.data["spec"]);
    assert_eq!(created.data["spec"]["replicas"], 3);
    assert_eq!(created.data["spec"]["template"]["spec"]["ports"][0]["containerPort"], 7000, "the template stays");

    let error = api.create(&PostParams::default(), &fleet(json!("three"))).await.expect_err("invalid");
    assert_eq!(api_error(error), (422, "Invalid".to_owned()));
    assert_eq!(sim.objects("fleets").len(), 1);
}
