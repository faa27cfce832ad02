use serde_json::Value;

use crate::both_databases;
use crate::helpers::{Backend, spawn_app};

both_databases!(health_answers_while_the_process_is_up, ready_when_the_database_answers);

async fn health_answers_while_the_process_is_up(backend: Backend) {
    let app = spawn_app(backend).await;
    let response = app.get("/health").await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["status"], "ok");
}

async fn ready_when_the_database_answers(backend: Backend) {
    let app = spawn_app(backend).await;
    let response = app.get("/ready").await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["status"], "ready");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_ready_with_a_reason_when_the_database_is_gone() {
    let app = spawn_app(Backend::Postgres).await;
    assert_eq!(app.get("/ready").await.status(), 200);

    app.database.drop_now().await;

    let response = app.get("/ready").await;
    assert_eq!(response.status(), 503);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["error"]["code"], "unavailable");
    let message = body["error"]["message"].as_str().expect("message");
    // Why is for the log: whoever probes is not told the database's own words (its name, its host).
    assert_eq!(message, "database unreachable");
    // The liveness probe must not follow the database down, or Kubernetes would restart a healthy process.
    assert_eq!(app.get("/health").await.status(), 200);
}
