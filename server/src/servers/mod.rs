//! Customers' game servers in the database: creating them, recording what a user asks of them, and recording
//! what the reconciler finds.
//!
//! Database first: every action writes the desired state in one statement and returns at once; it never
//! waits for a game server. Making the world match the rows is the reconciler's job. Every write that changes
//! a row is published as a [`ServerEvent`]: open dashboards show it, and the reconciler acts on it.

pub mod routes;

use std::ops::RangeInclusive;
use std::sync::Arc;

use app::auth::ssr::{BoxFuture, authorize};
use app::error::AppError;
use app::servers::ssr::Servers;
use catalog::account::{Resource, User};
use catalog::gameserver::{GameServer, ServerEvent, address, check_name, server_id};
use catalog::{Action, Catalog, Game, ServerStatus};
use sqlx::Row as _;
use sqlx::any::AnyRow;
use tokio::sync::broadcast;

use crate::db::{Db, now};
use crate::dns::{RecordIds, ServerRecords};
use crate::error::internal;
use crate::orchestrator::{DriverError, Orchestrator};

const COLUMNS: &str =
    "id, user_id, name, game, plan, status, status_message, node_ip, port, dns_ip, dns_port, dns_address, created_at";

/// How a status message about DNS begins: a successful publish clears such a message and no other.
pub const DNS_NOT_UPDATED: &str = "DNS not updated:";

/// Most log lines one request may ask for (what the local driver keeps in memory).
pub const MAX_LOG_TAIL: usize = 1000;

pub struct ServerService {
    db: Db,
    catalog: Arc<Catalog>,
    driver: Arc<dyn Orchestrator>,
    /// How many servers (not counting deleted ones) a customer may have; administrators are not limited.
    max_per_customer: u32,
    events: broadcast::Sender<ServerEvent>,
}

/// A server's row as the reconciler reads it: what should be, and what was last recorded.
#[derive(Debug, Clone)]
pub struct Desired {
    pub id: String,
    pub user_id: String,
    pub game: String,
    pub plan: String,
    pub status: ServerStatus,
    pub status_message: Option<String>,
    /// Where players reach it, as last recorded.
    pub node_ip: Option<String>,
    pub port: Option<u16>,
    pub generation: i64,
    /// Where its published DNS records lead, if it has any.
    pub dns_ip: Option<String>,
    pub dns_port: Option<u16>,
    pub dns_ids: RecordIds,
}

impl Desired {
    /// Where its DNS records should lead: where it runs, while it runs; otherwise where they lead now (a
    /// stopped or expired server keeps its name).
    pub fn dns_target(&self) -> Option<(&str, u16)> {
        match (self.status, self.node_ip.as_deref(), self.port) {
            (ServerStatus::Running, Some(ip), Some(port)) => Some((ip, port)),
            _ => self.dns_published(),
        }
    }

    /// Where its published DNS records lead.
    pub fn dns_published(&self) -> Option<(&str, u16)> {
        self.dns_ip.as_deref().zip(self.dns_port)
    }
}

const DESIRED_COLUMNS: &str = "id, user_id, game, plan, status, status_message, node_ip, port, generation, \
                               dns_ip, dns_port, dns_host_record, dns_srv_record";

fn read_desired(row: &AnyRow) -> Result<Desired, sqlx::Error> {
    Ok(Desired {
        id: row.try_get("id")?,
        user_id: row.try_get("user_id")?,
        game: row.try_get("game")?,
        plan: row.try_get("plan")?,
        status: parse_status(row)?,
        status_message: row.try_get("status_message")?,
        node_ip: row.try_get("node_ip")?,
        port: read_port(row, "port")?,
        generation: row.try_get("generation")?,
        dns_ip: row.try_get("dns_ip")?,
        dns_port: read_port(row, "dns_port")?,
        dns_ids: RecordIds { host: row.try_get("dns_host_record")?, srv: row.try_get("dns_srv_record")? },
    })
}

fn read_port(row: &AnyRow, column: &str) -> Result<Option<u16>, sqlx::Error> {
    let port: Option<i64> = row.try_get(column)?;
    Ok(port.and_then(|port| u16::try_from(port).ok()))
}

impl ServerService {
    pub fn new(db: Db, catalog: Arc<Catalog>, driver: Arc<dyn Orchestrator>, max_per_customer: u32) -> Self {
        Self { db, catalog, driver, max_per_customer, events: broadcast::channel(1024).0 }
    }

    /// Every change to any server from now on. A receiver that falls behind gets `Lagged` and should reload.
    pub fn subscribe(&self) -> broadcast::Receiver<ServerEvent> {
        self.events.subscribe()
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
        self.driver.check_runnable(game).map_err(|reason| AppError::invalid("game", reason))?;
        // Administrators are not held to the quota; the condition is in the INSERT itself so that checking and
        // writing are one statement.
        let limit = if user.is_admin() { i64::MAX } else { i64::from(self.max_per_customer) };
        let created_at = now();
        for _ in 0..3 {
            let id = server_id(&user.id, &game.id, &uuid::Uuid::new_v4().simple().to_string());
            // RETURNING: the answer is the row as written, before the reconciler has moved it on.
            let inserted = sqlx::query(sqlx::AssertSqlSafe(format!(
                "INSERT INTO servers (id, user_id, name, game, plan, status, created_at, updated_at) \
                 SELECT $1, $2, $3, $4, $5, $6, $7, $7 \
                 WHERE (SELECT COUNT(*) FROM servers WHERE user_id = $2 AND status <> 'deleted') < $8 \
                 ON CONFLICT (id) DO NOTHING RETURNING {COLUMNS}"
            )))
            .bind(&id)
            .bind(&user.id)
            .bind(&name)
            .bind(&game.id)
            .bind(&plan.id)
            .bind(ServerStatus::Pending.as_str())
            .bind(created_at)
            .bind(limit)
            .fetch_optional(self.db.pool())
            .await
            .map_err(|e| internal("inserting a server", e))?;
            if let Some(row) = inserted {
                tracing::info!(server = %id, user = %user.id, game = %game.id, plan = %plan.id, "server created");
                let server = from_row(&row)?;
                let _ = self.events.send(ServerEvent::Changed { server: server.clone() });
                return Ok(server);
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
        // The reconciler may change the status between our read and our write (pending → running, say). The
        // write is conditional on the status read, so it never applies a transition computed from a stale
        // state; after a lost race the action is judged again against the state as it is now.
        for _ in 0..5 {
            let server = self.get(user, id).await?;
            let next = server.status.apply(action).map_err(conflict)?;
            let at = now();
            // Start and restart begin a new generation: the orchestrator replaces a game running an older one,
            // and the reconciler forgets the old one's crashes and backoff.
            let updated = sqlx::query(sqlx::AssertSqlSafe(format!(
                "UPDATE servers SET status = $1, status_message = NULL, updated_at = $2, \
                 stopped_at = CASE WHEN $1 = 'stopped' THEN $2 ELSE stopped_at END, \
                 generation = generation + $5 \
                 WHERE id = $3 AND status = $4 RETURNING {COLUMNS}"
            )))
            .bind(next.as_str())
            .bind(at)
            .bind(id.to_owned())
            .bind(server.status.as_str())
            .bind(i64::from(matches!(action, Action::Start | Action::Restart)))
            .fetch_optional(self.db.pool())
            .await
            .map_err(|e| internal("updating a server", e))?;
            if let Some(row) = updated {
                tracing::info!(server = %id, user = %user.id, %action, from = %server.status, to = %next, "server action");
                let changed = from_row(&row)?;
                let _ = self.events.send(ServerEvent::Changed { server: changed.clone() });
                return Ok(changed);
            }
        }
        Err(AppError::Conflict { field: "status".into(), message: "the server is changing; try again".into() })
    }

    /// The last `tail` lines of the server's output, for its owner or an administrator.
    pub async fn logs(&self, user: &User, id: &str, tail: usize) -> Result<Vec<String>, AppError> {
        if !(1..=MAX_LOG_TAIL).contains(&tail) {
            return Err(AppError::invalid("tail", format!("must be between 1 and {MAX_LOG_TAIL}")));
        }
        self.get(user, id).await?;
        self.driver.logs(id, tail).await.map_err(|e| internal("reading a server's log", e))
    }

    /// Types `line` on the server's console, for its owner or an administrator.
    pub async fn type_command(&self, user: &User, id: &str, line: &str) -> Result<(), AppError> {
        self.get(user, id).await?;
        self.driver.send_input(id, line).await.map_err(|error| match error {
            DriverError::NotRunning(_) => AppError::Conflict {
                field: "status".into(),
                message: "the server is not running; start it first".into(),
            },
            error => internal(&format!("typing on server {id}'s console"), error),
        })?;
        // The command itself is not logged: people type passwords into game consoles.
        tracing::info!(server = %id, user = %user.id, bytes = line.len(), "console command");
        Ok(())
    }

    /// The reconciler's view of one server; `None` when it has no row.
    pub async fn desired(&self, id: &str) -> Result<Option<Desired>, AppError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {DESIRED_COLUMNS} FROM servers WHERE id = $1")))
            .bind(id.to_owned())
            .fetch_optional(self.db.pool())
            .await
            .map_err(|e| internal("reading a server", e))?;
        row.as_ref().map(read_desired).transpose().map_err(|e| internal("reading a server row", e))
    }

    /// What every server should be, in one query (the resync's view).
    pub async fn all_desired(&self) -> Result<Vec<Desired>, AppError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {DESIRED_COLUMNS} FROM servers")))
            .fetch_all(self.db.pool())
            .await
            .map_err(|e| internal("listing servers", e))?;
        rows.iter().map(read_desired).collect::<Result<_, _>>().map_err(|e| internal("reading server rows", e))
    }

    /// Moves a server from `from` to `to` with `message`, unless something changed it meanwhile. Writes (and
    /// publishes) nothing when the row already says exactly that. Returns whether it wrote.
    pub async fn transition(
        &self,
        id: &str,
        from: ServerStatus,
        to: ServerStatus,
        message: Option<&str>,
    ) -> Result<bool, AppError> {
        let updated = sqlx::query(
            "UPDATE servers SET status = $1, status_message = $2, updated_at = $3 \
             WHERE id = $4 AND status = $5 AND (status <> $1 OR status_message IS DISTINCT FROM $2)",
        )
        .bind(to.as_str())
        .bind(message.map(str::to_owned))
        .bind(now())
        .bind(id.to_owned())
        .bind(from.as_str())
        .execute(self.db.pool())
        .await
        .map_err(|e| internal("updating a server's status", e))?;
        self.published_if(id, updated.rows_affected()).await
    }

    /// Records that the game server of `generation` is up at `host:port`: a pending or failed server becomes
    /// running, and a running one follows its game server to a new address. Nothing happens if a user changed
    /// the server meanwhile (another status or a newer generation).
    pub async fn record_running(&self, id: &str, generation: i64, host: &str, port: u16) -> Result<bool, AppError> {
        let updated = sqlx::query(
            "UPDATE servers SET status = 'running', status_message = NULL, node_ip = $1, port = $2, updated_at = $3 \
             WHERE id = $4 AND generation = $5 AND status IN ('pending', 'failed', 'running') \
             AND (status <> 'running' OR node_ip IS DISTINCT FROM $1 OR port IS DISTINCT FROM $2)",
        )
        .bind(host.to_owned())
        .bind(i64::from(port))
        .bind(now())
        .bind(id.to_owned())
        .bind(generation)
        .execute(self.db.pool())
        .await
        .map_err(|e| internal("recording a running server", e))?;
        self.published_if(id, updated.rows_affected()).await
    }

    /// Records that the server's DNS records now lead to `published` (its records; `None`: it has none) and
    /// have the provider ids `ids`, and clears a status message about DNS trouble. Written whatever the status,
    /// so that a server deleted meanwhile still has its records' ids for its clean-up.
    pub async fn record_dns(
        &self,
        id: &str,
        published: Option<&ServerRecords>,
        ids: &RecordIds,
    ) -> Result<bool, AppError> {
        let updated = sqlx::query(
            "UPDATE servers SET dns_ip = $1, dns_port = $2, dns_address = $3, dns_host_record = $4, \
             dns_srv_record = $5, updated_at = $6, \
             status_message = CASE WHEN status_message LIKE $7 THEN NULL ELSE status_message END \
             WHERE id = $8",
        )
        .bind(published.map(|records| records.ip.to_string()))
        .bind(published.map(|records| i64::from(records.port)))
        .bind(published.map(ServerRecords::address))
        .bind(ids.host.clone())
        .bind(ids.srv.clone())
        .bind(now())
        .bind(format!("{DNS_NOT_UPDATED}%"))
        .bind(id.to_owned())
        .execute(self.db.pool())
        .await
        .map_err(|e| internal("recording a server's DNS records", e))?;
        self.published_if(id, updated.rows_affected()).await
    }

    /// Gives the server a game port of its own from `range` on `host`, unless it has one; returns its port.
    /// `is_free` is asked before a port is taken, so one that something else on the machine holds is skipped.
    pub async fn allocate_port(
        &self,
        id: &str,
        host: &str,
        range: RangeInclusive<u16>,
        is_free: impl Fn(u16) -> bool,
    ) -> Result<Option<u16>, AppError> {
        let rows = sqlx::query("SELECT id, port FROM servers WHERE port IS NOT NULL")
            .fetch_all(self.db.pool())
            .await
            .map_err(|e| internal("reading allocated ports", e))?;
        let mut taken = std::collections::HashSet::new();
        for row in &rows {
            let owner: String = row.try_get("id").map_err(|e| internal("reading a port", e))?;
            let port: i64 = row.try_get("port").map_err(|e| internal("reading a port", e))?;
            if owner == id {
                return Ok(u16::try_from(port).ok());
            }
            taken.insert(port);
        }
        for port in range.filter(|port| !taken.contains(&i64::from(*port))) {
            if !is_free(port) {
                continue;
            }
            // The unique (node_ip, port) index settles a race with another allocation: the loser tries the next.
            let claimed = sqlx::query(
                "UPDATE servers SET node_ip = $1, port = $2, updated_at = $3 WHERE id = $4 AND port IS NULL",
            )
            .bind(host.to_owned())
            .bind(i64::from(port))
            .bind(now())
            .bind(id.to_owned())
            .execute(self.db.pool())
            .await;
            match claimed {
                Ok(done) if done.rows_affected() == 1 => return Ok(Some(port)),
                // It has a port after all (or no row any more): whatever the row says now.
                Ok(_) => return Ok(self.desired(id).await?.and_then(|server| server.port)),
                Err(sqlx::Error::Database(e)) if e.is_unique_violation() => continue,
                Err(e) => return Err(internal("allocating a port", e)),
            }
        }
        Ok(None)
    }

    /// Deletes the row of a server whose clean-up is done.
    pub async fn forget(&self, id: &str) -> Result<(), AppError> {
        let user_id: Option<String> =
            sqlx::query("DELETE FROM servers WHERE id = $1 AND status = 'deleted' RETURNING user_id")
                .bind(id.to_owned())
                .fetch_optional(self.db.pool())
                .await
                .and_then(|row| row.map(|row| row.try_get("user_id")).transpose())
                .map_err(|e| internal("deleting a server row", e))?;
        if let Some(user_id) = user_id {
            tracing::info!(server = %id, "server deleted");
            let _ = self.events.send(ServerEvent::Removed { id: id.to_owned(), user_id });
        }
        Ok(())
    }

    async fn published_if(&self, id: &str, rows_affected: u64) -> Result<bool, AppError> {
        if rows_affected == 0 {
            return Ok(false);
        }
        self.publish(id).await;
        Ok(true)
    }

    /// Tells subscribers how the server is now.
    async fn publish(&self, id: &str) {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM servers WHERE id = $1")))
            .bind(id.to_owned())
            .fetch_optional(self.db.pool())
            .await;
        // A row that is gone or unreadable has nothing to tell (a read error is logged by `internal`).
        if let Ok(Some(server)) =
            row.map_err(|e| internal("reading a server", e)).and_then(|row| row.as_ref().map(from_row).transpose())
        {
            let _ = self.events.send(ServerEvent::Changed { server });
        }
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

impl Servers for ServerService {
    fn list<'a>(&'a self, user: &'a User, all: bool) -> BoxFuture<'a, Result<Vec<GameServer>, AppError>> {
        Box::pin(ServerService::list(self, user, all))
    }

    fn runnable_games(&self) -> Vec<Game> {
        self.catalog.games().iter().filter(|game| self.driver.check_runnable(game).is_ok()).cloned().collect()
    }

    fn create<'a>(
        &'a self,
        user: &'a User,
        name: &'a str,
        game: &'a str,
        plan: &'a str,
    ) -> BoxFuture<'a, Result<GameServer, AppError>> {
        Box::pin(ServerService::create(self, user, name, game, plan))
    }

    fn get<'a>(&'a self, user: &'a User, id: &'a str) -> BoxFuture<'a, Result<GameServer, AppError>> {
        Box::pin(ServerService::get(self, user, id))
    }

    fn act<'a>(&'a self, user: &'a User, id: &'a str, action: Action) -> BoxFuture<'a, Result<GameServer, AppError>> {
        Box::pin(ServerService::act(self, user, id, action))
    }
}

/// 409 naming the state that refused the action.
fn conflict(error: catalog::TransitionError) -> AppError {
    AppError::Conflict { field: "status".into(), message: error.to_string() }
}

fn from_row(row: &AnyRow) -> Result<GameServer, AppError> {
    let read = || -> Result<GameServer, sqlx::Error> {
        let status = parse_status(row)?;
        let node_ip: Option<String> = row.try_get("node_ip")?;
        let port = read_port(row, "port")?;
        let dns_ip: Option<String> = row.try_get("dns_ip")?;
        let dns_port = read_port(row, "dns_port")?;
        let dns_address: Option<String> = row.try_get("dns_address")?;
        // An address only means something while the game is up; its DNS name only while the records lead there.
        let address = match (status, node_ip, port) {
            (ServerStatus::Running, Some(host), Some(port)) => match dns_address {
                Some(name) if dns_ip.as_ref() == Some(&host) && dns_port == Some(port) => Some(name),
                _ => Some(address(&host, port)),
            },
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

fn parse_status(row: &AnyRow) -> Result<ServerStatus, sqlx::Error> {
    let status: String = row.try_get("status")?;
    status.parse().map_err(|e| sqlx::Error::Decode(Box::new(e)))
}
