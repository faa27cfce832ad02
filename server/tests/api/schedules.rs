//! Schedules through the REST API (`/api/servers/{id}/schedules…`): cron in the server's time zone, tasks run
//! in order (a console command, a backup kept within the schedule's retention, a restart), run by hand,
//! skipped while the server is offline when asked, and refused with the field named when wrong.

use serde_json::{Value, json};

use crate::backups::app;
use crate::both_databases;
use crate::helpers::{Backend, TestApp};

both_databases!(a_schedule_runs_its_tasks_in_order_and_keeps_its_retention, schedules_refuse_bad_input_and_strangers);

async fn create(app: &TestApp, token: &str, id: &str, body: Value) -> reqwest::Response {
    let url = app.url(&format!("/api/servers/{id}/schedules"));
    app.client.post(url).bearer_auth(token).json(&body).send().await.expect("sent")
}

/// Runs the schedule by hand and waits for the run to end; returns the schedule then.
async fn run_once(app: &TestApp, token: &str, id: &str, schedule: &str) -> Value {
    let url = app.url(&format!("/api/servers/{id}/schedules/{schedule}/run"));
    let response = app.client.post(url).bearer_auth(token).send().await.expect("sent");
    assert_eq!(response.status(), 202);
    // Marked running before the answer: the run has ended once it is not.
    let mut last = Value::Null;
    for _ in 0..600 {
        last = app.get_as(token, &format!("/api/servers/{id}/schedules/{schedule}")).await.json().await.expect("json");
        if last["running"] == false {
            return last;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("the run never ended: {last}");
}

async fn backups_of(app: &TestApp, token: &str, id: &str, schedule: &str) -> usize {
    let listed: Value = app.get_as(token, &format!("/api/servers/{id}/backups")).await.json().await.expect("json");
    listed.as_array().expect("list").iter().filter(|b| b["schedule_id"] == schedule && b["status"] == "ok").count()
}

async fn a_schedule_runs_its_tasks_in_order_and_keeps_its_retention(backend: Backend) {
    let (app, _dir) = app(backend, |_| {}).await;
    let token = app.signed_up("owner@example.com").await;
    let id = app.created(&token, "saver", "p").await;
    app.running(&token, &id).await;
    let body = json!({
        "name": "nightly",
        "cron": "0 4 * * *",
        "timezone": "Europe/Berlin",
        "only_when_online": true,
        "tasks": [
            { "action": "command", "command": "save-all" },
            { "action": "backup", "ignore": "", "offset_s": 1 },
            { "action": "power", "power": "restart" }
        ],
        "retention": { "keep_last": 1 }
    });
    let response = create(&app, &token, &id, body).await;
    assert_eq!(response.status(), 201);
    let schedule: Value = response.json().await.expect("json");
    let sid = schedule["id"].as_str().expect("id").to_owned();
    // 04:00 in Berlin is 03:00 UTC in winter (the tests run in December's time zone rules or July's).
    let next = schedule["next_run_at"].as_i64().expect("a next run");
    assert!(next > 0 && [3 * 3600, 2 * 3600].contains(&(next % 86_400)), "{schedule}");

    let pid = app.game_pid(&id).expect("the game runs");
    let done = run_once(&app, &token, &id, &sid).await;
    assert_eq!(done["last_result"], "ok", "{done}");
    assert_eq!(backups_of(&app, &token, &id, &sid).await, 1);
    // The restart came last: another process runs the game now.
    app.running(&token, &id).await;
    crate::helpers::eventually("the game restarted", || app.game_pid(&id).is_some_and(|now| now != pid)).await;

    // A console command alone: the game answers it.
    let body = json!({ "name": "save", "cron": "@hourly", "tasks": [{ "action": "command", "command": "save-all" }] });
    let saving: Value = create(&app, &token, &id, body).await.json().await.expect("json");
    let done = run_once(&app, &token, &id, saving["id"].as_str().expect("id")).await;
    assert_eq!(done["last_result"], "ok", "{done}");
    assert!(app.log_shows(&token, &id, "Saved the game").await, "the command was typed on the console");

    // Run again: its retention keeps only the newest of its own backups.
    let done = run_once(&app, &token, &id, &sid).await;
    assert_eq!(done["last_result"], "ok", "{done}");
    assert_eq!(backups_of(&app, &token, &id, &sid).await, 1);

    // Offline, a schedule that runs only while online is skipped, and says so.
    app.act(&token, &id, "stop").await;
    app.wait_for(&token, &id, "stopped", |server| server["status"] == "stopped").await;
    let skipped = run_once(&app, &token, &id, &sid).await;
    assert!(skipped["last_result"].as_str().expect("result").starts_with("skipped"), "{skipped}");

    // Changed and deleted.
    let url = app.url(&format!("/api/servers/{id}/schedules/{sid}"));
    let patched: Value = app
        .client
        .patch(&url)
        .bearer_auth(&token)
        .json(&json!({ "enabled": false }))
        .send()
        .await
        .expect("sent")
        .json()
        .await
        .expect("json");
    assert_eq!((patched["enabled"].clone(), patched["next_run_at"].clone()), (json!(false), Value::Null));
    assert_eq!(app.client.delete(&url).bearer_auth(&token).send().await.expect("sent").status(), 204);
    let listed: Value = app.get_as(&token, &format!("/api/servers/{id}/schedules")).await.json().await.expect("json");
    assert_eq!(listed.as_array().map(|list| list.iter().any(|s| s["id"] == sid.as_str())), Some(false));
}

async fn schedules_refuse_bad_input_and_strangers(backend: Backend) {
    let (app, _dir) = app(backend, |_| {}).await;
    let token = app.signed_up("owner@example.com").await;
    let other = app.signed_up("other@example.com").await;
    let id = app.created(&token, "saver", "p").await;
    let task = json!([{ "action": "command", "command": "say hi" }]);
    for (body, field) in [
        (json!({ "name": "x", "cron": "61 * * * *", "tasks": task }), "cron"),
        (json!({ "name": "x", "cron": "@daily", "timezone": "Mars/Olympus", "tasks": task }), "timezone"),
        (json!({ "name": "x", "cron": "@daily", "tasks": [] }), "tasks"),
        (
            json!({ "name": "x", "cron": "@daily", "tasks": [{ "action": "power", "power": "explode" }] }),
            "tasks[0].power",
        ),
        (
            json!({ "name": "x", "cron": "@daily", "tasks": [{ "action": "command", "command": "a", "offset_s": 90000 }] }),
            "tasks[0].offset_s",
        ),
        (json!({ "cron": "@daily", "tasks": task }), "name"),
    ] {
        let response = create(&app, &token, &id, body.clone()).await;
        assert_eq!(response.status(), 422, "{body}");
        let error: Value = response.json().await.expect("json");
        assert_eq!(error["error"]["field"], field, "{body}: {error}");
    }
    let listed: Value = app.get_as(&token, &format!("/api/servers/{id}/schedules")).await.json().await.expect("json");
    assert_eq!(listed, json!([]), "nothing was made");

    let made: Value = create(&app, &token, &id, json!({ "name": "x", "cron": "@hourly", "tasks": task }))
        .await
        .json()
        .await
        .expect("json");
    let sid = made["id"].as_str().expect("id");
    assert_eq!(app.get_as(&other, &format!("/api/servers/{id}/schedules")).await.status(), 404);
    assert_eq!(app.get_as(&other, &format!("/api/servers/{id}/schedules/{sid}")).await.status(), 404);
    assert_eq!(create(&app, &other, &id, json!({ "name": "x", "cron": "@hourly", "tasks": task })).await.status(), 404);
    let run = app.client.post(app.url(&format!("/api/servers/{id}/schedules/{sid}/run"))).bearer_auth(&other);
    assert_eq!(run.send().await.expect("sent").status(), 404);

    // A server holds a bounded number of schedules.
    for _ in 1..catalog::backups::MAX_SCHEDULES {
        let made = create(&app, &token, &id, json!({ "name": "more", "cron": "@daily", "tasks": task })).await;
        assert_eq!(made.status(), 201);
    }
    let response = create(&app, &token, &id, json!({ "name": "one too many", "cron": "@daily", "tasks": task })).await;
    assert_eq!(response.status(), 409);
    let error: Value = response.json().await.expect("json");
    assert_eq!(error["error"]["field"], "schedules", "{error}");
}
