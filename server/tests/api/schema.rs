//! The schema behaves the same on both engines: defaults, uniqueness, checks and cascades.

use server::db::{MIGRATOR, now};
use sqlx::Row as _;

use crate::both_databases;
use crate::helpers::{Backend, TestDb};

both_databases!(
    migrations_are_applied_once_and_rerunning_them_changes_nothing,
    users_servers_and_stripe_events_store_and_cascade,
    the_schema_refuses_what_must_not_be_stored,
);

async fn insert_user(pool: &sqlx::AnyPool, id: &str, email: &str) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO users (id, email, password_hash, created_at) VALUES ($1, $2, $3, $4)")
        .bind(id)
        .bind(email)
        .bind("$argon2id$placeholder")
        .bind(now())
        .execute(pool)
        .await
        .map(drop)
}

async fn insert_server(pool: &sqlx::AnyPool, id: &str, user_id: &str) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO servers (id, user_id, name, game, plan, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $6)",
    )
    .bind(id)
    .bind(user_id)
    .bind("My world")
    .bind("minecraft-java")
    .bind("starter")
    .bind(now())
    .execute(pool)
    .await
    .map(drop)
}

async fn migrations_are_applied_once_and_rerunning_them_changes_nothing(backend: Backend) {
    let app = TestDb::new(backend).await;
    let pool = app.db.pool();
    insert_user(pool, "u1", "a@example.com").await.expect("insert");
    MIGRATOR.run(pool).await.expect("re-running migrations is a no-op");
    app.db.migrate().await.expect("and so is migrating through the app");
    assert_eq!(app.count("users").await, 1, "data survives");
    let applied = sqlx::query("SELECT version FROM _sqlx_migrations").fetch_all(pool).await.expect("migrations table");
    assert_eq!(applied.len(), MIGRATOR.iter().count());
}

async fn users_servers_and_stripe_events_store_and_cascade(backend: Backend) {
    let app = TestDb::new(backend).await;
    let pool = app.db.pool();
    insert_user(pool, "u1", "a@example.com").await.expect("user");
    insert_server(pool, "u1srv", "u1").await.expect("server");
    sqlx::query("UPDATE servers SET stripe_subscription_id = $1, subscription_status = $2 WHERE id = $3")
        .bind("sub_123")
        .bind("active")
        .bind("u1srv")
        .execute(pool)
        .await
        .expect("a server's subscription");
    let event = "INSERT INTO stripe_events (id, type, created, received_at) VALUES ($1, $2, $3, $3)";
    sqlx::query(event).bind("evt_1").bind("invoice.paid").bind(now()).execute(pool).await.expect("event");
    let again = sqlx::query(event).bind("evt_1").bind("invoice.paid").bind(now()).execute(pool).await;
    assert!(again.is_err(), "an event id is stored once");

    let row = sqlx::query(
        "SELECT u.role, s.status, s.port, s.status_message FROM servers s JOIN users u ON u.id = s.user_id",
    )
    .fetch_one(pool)
    .await
    .expect("joined row");
    assert_eq!(row.try_get::<String, _>("role").expect("role"), "customer", "new users are customers");
    assert_eq!(row.try_get::<String, _>("status").expect("status"), "pending", "new servers are pending");
    assert_eq!(row.try_get::<Option<i64>, _>("port").expect("port"), None);
    assert_eq!(row.try_get::<Option<String>, _>("status_message").expect("message"), None);

    sqlx::query("DELETE FROM users WHERE id = $1").bind("u1").execute(pool).await.expect("delete user");
    assert_eq!(app.count("servers").await, 0, "a user's servers go with the user");
    assert_eq!(app.count("stripe_events").await, 1, "handled events are kept (they are not a user's)");
}

async fn the_schema_refuses_what_must_not_be_stored(backend: Backend) {
    let app = TestDb::new(backend).await;
    let pool = app.db.pool();
    insert_user(pool, "u1", "a@example.com").await.expect("user");
    assert!(insert_user(pool, "u2", "a@example.com").await.is_err(), "emails are unique");
    assert!(insert_server(pool, "orphan", "nobody").await.is_err(), "a server needs an existing user");
    insert_server(pool, "s1", "u1").await.expect("server");
    let bogus =
        sqlx::query("UPDATE servers SET status = $1 WHERE id = $2").bind("exploded").bind("s1").execute(pool).await;
    assert!(bogus.is_err(), "only the state machine's statuses can be stored");
    let admin = sqlx::query("UPDATE users SET role = $1 WHERE id = $2").bind("root").bind("u1").execute(pool).await;
    assert!(admin.is_err(), "only known roles can be stored");
    assert_eq!(app.count("users").await, 1);
}
