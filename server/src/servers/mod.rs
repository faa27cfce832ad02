//! Customers' game servers in the database: creating them, and recording what a user asks of them.
//!
//! Database first: every action writes the desired state in one statement and returns at once; it never
//! waits for a game server. Making the world match the rows is the reconciler's job.

pub mod routes;

use std::sync::Arc;

use app::auth::ssr::authorize;
use app::error::AppError;
use catalog::account::{Resource, User};
use catalog::gameserver::{GameServer, check_name, server_id};
use catalog::{Action, Catalog, ServerStatus};
use sqlx::Row as _;
use sqlx::any::AnyRow;

use crate::db::{Db, now};
use crate::error::internal;

const COLUMNS: &str = "id, user_id, name, game, plan, status, status_message, node_ip, port, created_at";

pub struct ServerService {
    db: Db,
    catalog: Arc<Catalog>,
    /// How many servers (not counting deleted ones) a customer may have; administrators are not limited.
    max_per_customer: u32,
}

impl ServerService {
    pub fn new(db: Db, catalog: Arc<Catalog>, max_per_customer: u32) -> Self {
        Self { db, catalog, max_per_customer }
    }

    /// The user's servers, or with `all` (administrators only) everyone's.
    pub async fn list(&self, user: &User, all: bool) -> Result<Vec<GameServer>, AppError> {
        let query = if all {
            authorize(user, Resource::AdminArea, "the list of all servers")?;
            sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM servers ORDER BY created_at, id")))
        } else {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {COLUMNS} FROM servers WHERE user_id = $1 ORDER BY created_at, id"
            )))
            .bind(user.id.clone())
        };
        let rows = query.fetch_all(self.db.pool()).await.map_err(|e| internal("listing servers", e))?;
        rows.iter().map(from_row).collect()
    }

    /// Records a new server, `pending`, after checking name, game, plan and the user's quota. Writes nothing
    /// when any check fails.
    pub async fn create(&self, user: &User, name: &str, game: &str, plan: &str) -> Result<GameServer, AppError> {
        let name = check_name(name)?;
        let game =
            self.catalog.game(game).ok_or_else(|| AppError::invalid("game", format!("there is no game `{game}`")))?;
        let plan =
            game.plan(plan).ok_or_else(|| AppError::invalid("plan", format!("{} has no plan `{plan}`", game.name)))?;
        // Administrators are not held to the quota; the condition is in the INSERT itself so that checking and
        // writing are one statement.
        let limit = if user.is_admin() { i64::MAX } else { i64::from(self.max_per_customer) };
        let created_at = now();
        for _ in 0..3 {
            let id = server_id(&user.id, &game.id, &uuid::Uuid::new_v4().simple().to_string());
            let inserted = sqlx::query(
                "INSERT INTO servers (id, user_id, name, game, plan, status, created_at, updated_at) \
                 SELECT $1, $2, $3, $4, $5, $6, $7, $7 \
                 WHERE (SELECT COUNT(*) FROM servers WHERE user_id = $2 AND status <> 'deleted') < $8 \
                 ON CONFLICT (id) DO NOTHING",
            )
            .bind(&id)
            .bind(&user.id)
            .bind(&name)
            .bind(&game.id)
            .bind(&plan.id)
            .bind(ServerStatus::Pending.as_str())
            .bind(created_at)
            .bind(limit)
            .execute(self.db.pool())
            .await
            .map_err(|e| internal("inserting a server", e))?;
            if inserted.rows_affected() == 1 {
                tracing::info!(server = %id, user = %user.id, game = %game.id, plan = %plan.id, "server created");
                return self.get(user, &id).await;
            }
            if self.count_active(&user.id).await? >= limit {
                return Err(AppError::Forbidden(format!(
                    "you already have {limit} servers, the most your account allows; delete one first"
                )));
            }
            // Otherwise the random part of the id collided with another server's: draw again.
        }
        Err(internal("inserting a server", "no free server id after 3 draws"))
    }

    /// One server, if the user may see it (its owner or an administrator); anyone else gets "not found".
    pub async fn get(&self, user: &User, id: &str) -> Result<GameServer, AppError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM servers WHERE id = $1")))
            .bind(id.to_owned())
            .fetch_optional(self.db.pool())
            .await
            .map_err(|e| internal("reading a server", e))?;
        let server = row.as_ref().map(from_row).transpose()?;
        let what = format!("server `{id}`");
        let server = server.ok_or_else(|| AppError::NotFound(format!("{what} does not exist")))?;
        authorize(user, Resource::OwnedBy(&server.user_id), &what)?;
        Ok(server)
    }

    /// Applies a user action if the shared state machine allows it from the server's current state.
    pub async fn act(&self, user: &User, id: &str, action: Action) -> Result<GameServer, AppError> {
        let server = self.get(user, id).await?;
        let next = server.status.apply(action).map_err(conflict)?;
        let at = now();
        // Only if nobody changed the status meanwhile: a concurrent change is reported, not overwritten.
        let updated = sqlx::query(
            "UPDATE servers SET status = $1, status_message = NULL, updated_at = $2, \
             stopped_at = CASE WHEN $1 = 'stopped' THEN $2 ELSE stopped_at END \
             WHERE id = $3 AND status = $4",
        )
        .bind(next.as_str())
        .bind(at)
        .bind(id.to_owned())
        .bind(server.status.as_str())
        .execute(self.db.pool())
        .await
        .map_err(|e| internal("updating a server", e))?;
        let current = self.get(user, id).await?;
        if updated.rows_affected() == 0 {
            // Someone changed the status between our read and write: report the state it is in now.
            return Err(conflict(catalog::TransitionError { action, status: current.status }));
        }
        tracing::info!(server = %id, user = %user.id, %action, from = %server.status, to = %next, "server action");
        Ok(current)
    }

    async fn count_active(&self, user_id: &str) -> Result<i64, AppError> {
        sqlx::query("SELECT COUNT(*) AS n FROM servers WHERE user_id = $1 AND status <> 'deleted'")
            .bind(user_id.to_owned())
            .fetch_one(self.db.pool())
            .await
            .and_then(|row| row.try_get("n"))
            .map_err(|e| internal("counting servers", e))
    }
}

/// 409 naming the state that refused the action.
fn conflict(error: catalog::TransitionError) -> AppError {
    AppError::Conflict { field: "status".into(), message: error.to_string() }
}

fn from_row(row: &AnyRow) -> Result<GameServer, AppError> {
    let read = || -> Result<GameServer, sqlx::Error> {
        let status: String = row.try_get("status")?;
        let status: ServerStatus = status.parse().map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
        let node_ip: Option<String> = row.try_get("node_ip")?;
        let port: Option<i64> = row.try_get("port")?;
        // An address only means something while the game is up.
        let address = match (status, node_ip, port) {
            (ServerStatus::Running, Some(host), Some(port)) => Some(format!("{host}:{port}")),
            _ => None,
        };
        Ok(GameServer {
            id: row.try_get("id")?,
            name: row.try_get("name")?,
            game: row.try_get("game")?,
            plan: row.try_get("plan")?,
            status,
            status_message: row.try_get("status_message")?,
            address,
            user_id: row.try_get("user_id")?,
            created_at: row.try_get("created_at")?,
        })
    };
    read().map_err(|e| internal("reading a server row", e))
}
