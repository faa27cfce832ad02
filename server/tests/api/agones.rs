//! Game servers on Kubernetes: the same routes and reconciler with the `agones` driver, against the
//! Kubernetes API simulator (which plays the API server and the Agones controller).

use std::time::Duration;

use k8s_sim::{SimConfig, Simulator};
use serde_json::{Value, json};
use server::config::Driver;

use crate::both_databases;
use crate::helpers::{Backend, Binary, TestApp, TestDriver, eventually, spawn_app_with};

both_databases!(
    a_server_lives_as_a_gameserver_with_a_claim_through_stop_start_restart_and_delete,
    a_server_follows_its_gameserver_to_another_node,
    only_labelled_orphans_are_removed,
    api_errors_and_broken_watches_are_survived,
    an_api_server_that_hangs_fails_the_start_which_is_retried,
    a_create_cut_short_by_a_killed_spawnpoint_is_finished_when_it_is_back,
    objects_made_before_installations_are_taken_over_without_a_restart,
);

async fn on_simulator(backend: Backend) -> (Simulator, TestApp) {
    on_simulator_with(backend, |_| {}).await
}

/// An app on a simulator of its own, with fast resyncs and retries, then `adjust`.
async fn on_simulator_with(
    backend: Backend,
    adjust: impl FnOnce(&mut server::config::Settings),
) -> (Simulator, TestApp) {
    let sim = Simulator::start(SimConfig { ready_after: Duration::from_millis(100), ..SimConfig::default() }).await;
    let url = sim.url().to_owned();
    let app = spawn_app_with(backend, move |settings| {
        settings.driver = Driver::Agones;
        settings.agones.kube_api = Some(url);
        settings.reconciler.resync_interval = Duration::from_millis(500);
        settings.tuning.restart_backoff = Duration::from_millis(20);
        adjust(settings);
    })
    .await;
    (sim, app)
}

fn named<'a>(objects: &'a [Value], name: &str) -> Option<&'a Value> {
    objects.iter().find(|o| o["metadata"]["name"] == name)
}

/// Where the simulator says players reach a GameServer: its node's public IP and its game host port.
fn address_in(sim: &Simulator, id: &str) -> String {
    let gameservers = sim.objects("gameservers");
    let gameserver = named(&gameservers, id).expect("a GameServer");
    let nodes = sim.objects("nodes");
    let node = named(&nodes, gameserver["status"]["nodeName"].as_str().expect("scheduled")).expect("its node");
    let ip = node["metadata"]["labels"]["platform.io/public-ip"].as_str().expect("public ip");
    format!("{ip}:{}", gameserver["status"]["ports"][0]["port"])
}

async fn a_server_lives_as_a_gameserver_with_a_claim_through_stop_start_restart_and_delete(backend: Backend) {
    let (sim, app) = on_simulator(backend).await;
    let token = app.signed_up("kube@example.com").await;
    let id = app.created(&token, "minecraft-java", "starter").await;

    let server = app.running(&token, &id).await;
    assert_eq!(server["address"], address_in(&sim, &id), "node public IP and allocated host port");
    let gameservers = sim.objects("gameservers");
    let gameserver = named(&gameservers, &id).expect("GameServer");
    let labels = &gameserver["metadata"]["labels"];
    assert_eq!(labels["app.kubernetes.io/managed-by"], "spawnpoint");
    assert_eq!(
        (labels["spawnpoint.io/server-id"].as_str(), labels["spawnpoint.io/game"].as_str()),
        (Some(id.as_str()), Some("minecraft-java"))
    );
    let container = &gameserver["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["name"], "minecraft-java");
    assert_eq!(container["image"], "itzg/minecraft-server:latest");
    assert_eq!(container["resources"]["limits"], json!({ "cpu": "2", "memory": "2Gi" }));
    assert_eq!(container["volumeMounts"][0]["mountPath"], "/data");
    assert_eq!(
        gameserver["spec"]["ports"][0],
        json!({ "name": "game", "portPolicy": "Dynamic", "containerPort": 25565, "protocol": "TCP", "container": "minecraft-java" })
    );
    let claims = sim.objects("persistentvolumeclaims");
    let claim = named(&claims, &format!("{id}-data")).expect("its claim");
    assert_eq!(claim["spec"]["resources"]["requests"]["storage"], "10Gi");
    assert_eq!(claim["metadata"]["labels"]["spawnpoint.io/plan"], "starter");

    // Stopped: the GameServer goes, the claim stays.
    assert_eq!(app.act(&token, &id, "stop").await.status(), 202);
    app.wait_for(&token, &id, "stopped", |s| s["status"] == "stopped").await;
    eventually("the GameServer is deleted", || named(&sim.objects("gameservers"), &id).is_none()).await;
    assert!(named(&sim.objects("persistentvolumeclaims"), &format!("{id}-data")).is_some(), "data kept");

    // Started again on the same claim; restarted into a new GameServer.
    assert_eq!(app.act(&token, &id, "start").await.status(), 202);
    app.running(&token, &id).await;
    let uid = |sim: &Simulator| named(&sim.objects("gameservers"), &id).map(|gs| gs["metadata"]["uid"].clone());
    let before = uid(&sim).expect("running");
    assert_eq!(app.act(&token, &id, "restart").await.status(), 202);
    app.wait_for(&token, &id, "running in a new GameServer", |s| {
        s["status"] == "running" && uid(&sim).is_some_and(|now| now != before)
    })
    .await;
    assert_eq!(sim.objects("persistentvolumeclaims").len(), 1, "still the one claim");

    // Deleted: GameServer, claim and row gone.
    assert_eq!(app.act(&token, &id, "delete").await.status(), 202);
    app.wait_for(&token, &id, "gone", Value::is_null).await;
    assert!(sim.objects("gameservers").is_empty() && sim.objects("persistentvolumeclaims").is_empty());
    assert_eq!(
        sim.requests()
            .iter()
            .filter(|r| r.method == "POST" && r.status == 201 && r.uri.starts_with("/apis/agones.dev/"))
            .count(),
        3,
        "one GameServer per start and restart (a repeated create is refused as AlreadyExists)"
    );
}

async fn a_server_follows_its_gameserver_to_another_node(backend: Backend) {
    let (sim, app) = on_simulator(backend).await;
    let token = app.signed_up("nomad@example.com").await;
    let id = app.created(&token, "valheim", "starter").await;
    let first = app.running(&token, &id).await;
    let node =
        named(&sim.objects("gameservers"), &id).expect("gs")["status"]["nodeName"].as_str().expect("node").to_owned();

    sim.kill_node(&node);
    let moved = app
        .wait_for(&token, &id, "running on another node", |s| {
            s["status"] == "running" && s["address"] != first["address"]
        })
        .await;
    assert_eq!(moved["address"], address_in(&sim, &id));
    assert_ne!(named(&sim.objects("gameservers"), &id).expect("gs")["status"]["nodeName"], node.as_str());
}

async fn only_labelled_orphans_are_removed(backend: Backend) {
    let (sim, app) = on_simulator(backend).await;
    let spec = json!({
        "ports": [{ "name": "game", "containerPort": 7000 }],
        "template": { "spec": { "containers": [{ "name": "x", "image": "x" }] } },
    });
    sim.insert("gameservers", "gameservers", json!({ "metadata": { "name": "someone-elses" }, "spec": spec }));
    let installation = app.installation().await;
    let managed = |installation: &str| json!({ "app.kubernetes.io/managed-by": "spawnpoint", "spawnpoint.io/installation": installation });
    sim.insert(
        "gameservers",
        "gameservers",
        json!({ "metadata": { "name": "left-behind", "labels": managed(&installation) }, "spec": spec }),
    );
    // Another installation's (another panel on the cluster, or this one's world before a database mix-up).
    sim.insert(
        "gameservers",
        "gameservers",
        json!({ "metadata": { "name": "theirs", "labels": managed("another") }, "spec": spec }),
    );
    let claim = |name: &str, labels: Value| {
        json!({
            "metadata": { "name": name, "labels": labels },
            "spec": { "accessModes": ["ReadWriteOnce"], "resources": { "requests": { "storage": "1Gi" } } },
        })
    };
    let mut ours = managed(&installation);
    ours["spawnpoint.io/server-id"] = "gone-de-123456".into();
    let mut theirs = managed("another");
    theirs["spawnpoint.io/server-id"] = "their-de-123456".into();
    sim.insert("persistentvolumeclaims", "gameservers", claim("their-de-123456-data", theirs));
    sim.insert("persistentvolumeclaims", "gameservers", claim("gone-de-123456-data", ours));
    sim.insert("persistentvolumeclaims", "gameservers", claim("someones-data", json!({ "app": "db" })));
    eventually("the managed orphan is removed", || named(&sim.objects("gameservers"), "left-behind").is_none()).await;
    eventually("the managed orphan claim is removed", || {
        named(&sim.objects("persistentvolumeclaims"), "gone-de-123456-data").is_none()
    })
    .await;
    assert!(named(&sim.objects("persistentvolumeclaims"), "someones-data").is_some(), "a claim it does not own stays");
    app.reconciled().await;
    assert!(named(&sim.objects("gameservers"), "someone-elses").is_some(), "what Spawnpoint does not own is untouched");
    assert!(named(&sim.objects("gameservers"), "theirs").is_some(), "nor another installation's");
    assert!(named(&sim.objects("persistentvolumeclaims"), "their-de-123456-data").is_some(), "nor its claims");
    drop(app);
}

async fn api_errors_and_broken_watches_are_survived(backend: Backend) {
    let (sim, app) = on_simulator(backend).await;
    let token = app.signed_up("unlucky@example.com").await;
    // The API server fails the first three GameServer creates: the server is failed with the reason, then
    // retried. Its owner reads Spawnpoint's words; an administrator also sees the API server's.
    sim.fail_next(axum::http::Method::POST, "gameservers", 500, 3);
    let id = app.created(&token, "minecraft-bedrock", "starter").await;
    let failed = app.wait_for(&token, &id, "failed", |s| s["status"] == "failed").await;
    assert_eq!(failed["status_message"], "could not start: the cluster refused the game server", "{failed}");
    assert!(failed.get("status_detail").is_none(), "{failed}");
    let admin = app.admin("ops@example.com").await;
    app.wait_for(&admin, &id, "failed, with the cluster's words", |s| {
        s["status"] == "failed" && s["status_detail"].as_str().is_some_and(|d| d.contains("injected"))
    })
    .await;
    app.running(&token, &id).await;
    assert_eq!(sim.objects("gameservers").len(), 1, "nothing duplicated");

    // A create answered 409 although nothing was created: taken as done, and the next pass finds it missing.
    sim.fail_next(axum::http::Method::POST, "gameservers", 409, 1);
    assert_eq!(app.act(&token, &id, "restart").await.status(), 202);
    app.wait_for(&token, &id, "running again", |s| {
        s["status"] == "running" && named(&sim.objects("gameservers"), &id).is_some()
    })
    .await;
    assert_eq!(sim.faults_left(), 0, "the injected conflict was met");
    assert_eq!(sim.objects("gameservers").len(), 1);
    assert_eq!(sim.objects("gameservers").len(), 1);

    // Every watch breaks and history is compacted: the watcher relists, and changes still arrive.
    sim.compact();
    sim.drop_watches();
    assert_eq!(app.act(&token, &id, "stop").await.status(), 202);
    app.wait_for(&token, &id, "stopped", |s| s["status"] == "stopped").await;
    assert_eq!(app.act(&token, &id, "start").await.status(), 202);
    let server = app.running(&token, &id).await;
    assert_eq!(server["address"], address_in(&sim, &id));
}

async fn a_create_cut_short_by_a_killed_spawnpoint_is_finished_when_it_is_back(backend: Backend) {
    let binary = Binary::fresh(backend, TestDriver::Agones).await;
    let cluster = binary.cluster().expect("a cluster");

    let first = binary.start();
    let app = first.healthy().await;
    let token = app.signed_up("patient@example.com").await;
    // The API server answers slowly: the row is written at once, the Kubernetes objects are still on their way
    // when Spawnpoint is killed.
    cluster.set_latency(Duration::from_secs(5));
    let id = app.created(&token, "demo", "tiny").await;
    eventually("the create reached the API server", || {
        cluster.arrived(&axum::http::Method::POST, "persistentvolumeclaims") > 0
    })
    .await;
    first.kill();
    assert_eq!(app.count("servers").await, 1, "the server was written");
    assert!(cluster.objects("gameservers").is_empty(), "and nothing was created for it yet");

    cluster.set_latency(Duration::ZERO);
    let second = binary.start();
    let app = second.healthy().await;
    let token = app.login_token("patient@example.com").await;
    let server = app.running(&token, &id).await;
    assert_eq!(cluster.objects("gameservers").len(), 1);
    assert_eq!(cluster.objects("persistentvolumeclaims").len(), 1);
    let address = server["address"].as_str().expect("an address");
    assert!(tokio::net::TcpStream::connect(address).await.is_ok(), "players can join at {address}");
}

async fn an_api_server_that_hangs_fails_the_start_which_is_retried(backend: Backend) {
    let (sim, app) =
        on_simulator_with(backend, |settings| settings.tuning.kube_request_timeout = Duration::from_millis(300)).await;
    let token = app.signed_up("hung@example.com").await;
    sim.set_latency(Duration::from_secs(1));
    let id = app.created(&token, "valheim", "starter").await;
    let failed = app.wait_for(&token, &id, "failed", |s| s["status"] == "failed").await;
    assert_eq!(failed["status_message"], "could not start: the cluster did not answer in time", "{failed}");
    let admin = app.admin("ops@example.com").await;
    let seen: Value = app.get_as(&admin, &format!("/api/servers/{id}")).await.json().await.expect("json");
    assert!(seen["status_detail"].as_str().is_some_and(|d| d.contains("no answer")), "{seen}");

    sim.set_latency(Duration::ZERO);
    app.running(&token, &id).await;
    assert_eq!(sim.objects("gameservers").len(), 1, "nothing duplicated");
    assert_eq!(sim.objects("persistentvolumeclaims").len(), 1);
}

/// GameServers and claims made by a Spawnpoint from before objects carried their installation: the next start
/// stamps those of its own rows (and only those) and carries on with them, the game never restarted.
async fn objects_made_before_installations_are_taken_over_without_a_restart(backend: Backend) {
    let binary = Binary::fresh(backend, TestDriver::Agones).await;
    let cluster = binary.cluster().expect("a cluster");
    let first = binary.start();
    let app = first.healthy().await;
    let token = app.signed_up("old@example.com").await;
    let id = app.created(&token, "demo", "tiny").await;
    app.running(&token, &id).await;
    let pid = app.game_pid(&id).expect("running");
    first.kill();

    // As the older version left them: no installation label. And a stranger's unlabelled claim, with no row.
    let unstamp = |object: &mut Value| {
        object["metadata"]["labels"].as_object_mut().expect("labels").remove("spawnpoint.io/installation");
    };
    cluster.edit("gameservers", "gameservers", &id, unstamp);
    cluster.edit("persistentvolumeclaims", "gameservers", &format!("{id}-data"), unstamp);
    let stranger = json!({
        "metadata": { "name": "old-de-000000-data", "labels": { "app.kubernetes.io/managed-by": "spawnpoint", "spawnpoint.io/server-id": "old-de-000000" } },
        "spec": { "accessModes": ["ReadWriteOnce"], "resources": { "requests": { "storage": "1Gi" } } },
    });
    cluster.insert("persistentvolumeclaims", "gameservers", stranger);

    let second = binary.start();
    let app = second.healthy().await;
    let token = app.login_token("old@example.com").await;
    let installation = app.installation().await;
    let label = |plural: &str, name: &str| {
        let objects = cluster.objects(plural);
        let object = objects.iter().find(|o| o["metadata"]["name"] == name).cloned().unwrap_or_default();
        object["metadata"]["labels"]["spawnpoint.io/installation"].as_str().map(str::to_owned)
    };
    assert_eq!(label("gameservers", &id), Some(installation.clone()));
    assert_eq!(label("persistentvolumeclaims", &format!("{id}-data")), Some(installation));
    assert_eq!(app.running(&token, &id).await["status"], "running");
    assert_eq!(app.game_pid(&id), Some(pid), "the same game, never restarted");
    // What no row asks for is not stamped (so never listed as this installation's): it may be another's.
    assert_eq!(label("persistentvolumeclaims", "old-de-000000-data"), None);
}
