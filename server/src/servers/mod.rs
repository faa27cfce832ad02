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
use app::billing::ssr::BillingPages;
use app::error::AppError;
use app::servers::ssr::Servers;
use catalog::account::{Resource, User};
use catalog::billing::{BillingOverview, Subscription};
use catalog::gameserver::{GameServer, ServerEvent, address, check_name, server_id};
use catalog::{Action, Catalog, Game, ServerStatus};
use sqlx::Row as _;
use sqlx::any::AnyRow;
use tokio::sync::broadcast;

use crate::billing::webhook::Change;
use crate::billing::{Billing, CHECKOUT_WINDOW, GRACE_PERIOD};
use crate::clock::Clock;
use crate::db::{Db, now};
use crate::dns::{RecordIds, ServerRecords};
use crate::error::internal;
use crate::orchestrator::{DriverError, Orchestrator};

const COLUMNS: &str = "id, user_id, name, game, plan, status, status_message, node_ip, port, dns_ip, dns_port, \
                       dns_address, created_at, checkout_url";

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
    /// With billing on, servers are paid for before they are provisioned.
    billing: Option<Arc<Billing>>,
    /// Judges billing deadlines (see [`Clock`]).
    clock: Clock,
}

/// What applying a payment event did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// The server moved to this state.
    Moved(ServerStatus),
    /// Its subscription's details were recorded; its state stays.
    Recorded,
    /// An event older than one already applied: ignored.
    Stale,
    /// No server has this subscription.
    UnknownServer,
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
    /// When an unpaid or expired server is due for deletion (Unix seconds).
    pub delete_after: Option<i64>,
    /// Its Stripe subscription, once paid for.
    pub subscription: Option<String>,
    /// The Checkout Session of its first payment.
    pub checkout_session: Option<String>,
    /// Whatever it had at Stripe has been cancelled.
    pub billing_settled: bool,
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
                               dns_ip, dns_port, dns_host_record, dns_srv_record, delete_after, \
                               stripe_subscription_id, checkout_session_id, subscription_ended_at";

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
        delete_after: row.try_get("delete_after")?,
        subscription: row.try_get("stripe_subscription_id")?,
        checkout_session: row.try_get("checkout_session_id")?,
        billing_settled: row.try_get::<Option<i64>, _>("subscription_ended_at")?.is_some(),
    })
}

fn read_port(row: &AnyRow, column: &str) -> Result<Option<u16>, sqlx::Error> {
    let port: Option<i64> = row.try_get(column)?;
    Ok(port.and_then(|port| u16::try_from(port).ok()))
}

impl ServerService {
    pub fn new(
        db: Db,
        catalog: Arc<Catalog>,
        driver: Arc<dyn Orchestrator>,
        max_per_customer: u32,
        billing: Option<Arc<Billing>>,
        clock: Clock,
    ) -> Self {
        Self { db, catalog, driver, max_per_customer, events: broadcast::channel(1024).0, billing, clock }
    }

    /// Whether servers are paid for.
    pub fn billing(&self) -> Option<&Arc<Billing>> {
        self.billing.as_ref()
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

    /// Records a new server after checking name, game, plan and the user's quota; writes nothing when any check
    /// fails. Without billing it is `pending` at once. With billing it is `awaiting_payment`, with a Checkout
    /// Session to pay at (`checkout_url`) and a deadline; if Stripe cannot open one, the row is removed again.
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
        let (status, delete_after) = match self.billing {
            None => (ServerStatus::Pending, None),
            Some(_) => (ServerStatus::AwaitingPayment, Some(self.clock.now() + secs(CHECKOUT_WINDOW))),
        };
        for _ in 0..3 {
            let id = server_id(&user.id, &game.id, &uuid::Uuid::new_v4().simple().to_string());
            // RETURNING: the answer is the row as written, before the reconciler has moved it on.
            let inserted = sqlx::query(sqlx::AssertSqlSafe(format!(
                "INSERT INTO servers (id, user_id, name, game, plan, status, created_at, updated_at, delete_after) \
                 SELECT $1, $2, $3, $4, $5, $6, $7, $7, $9 \
                 WHERE (SELECT COUNT(*) FROM servers WHERE user_id = $2 AND status <> 'deleted') < $8 \
                 ON CONFLICT (id) DO NOTHING RETURNING {COLUMNS}"
            )))
            .bind(&id)
            .bind(&user.id)
            .bind(&name)
            .bind(&game.id)
            .bind(&plan.id)
            .bind(status.as_str())
            .bind(created_at)
            .bind(limit)
            .bind(delete_after)
            .fetch_optional(self.db.pool())
            .await
            .map_err(|e| internal("inserting a server", e))?;
            if let Some(row) = inserted {
                tracing::info!(server = %id, user = %user.id, game = %game.id, plan = %plan.id, "server created");
                let mut server = from_row(&row)?;
                if let Some(billing) = &self.billing {
                    server.checkout_url = Some(self.open_checkout(billing, user, &server).await?);
                }
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

    /// Opens the new server's Checkout Session and records it; on failure removes the row, which was never
    /// shown to anyone, and tells the user to try again.
    async fn open_checkout(&self, billing: &Billing, user: &User, server: &GameServer) -> Result<String, AppError> {
        match billing.checkout(user, &server.id, &server.game, &server.plan).await {
            Ok(checkout) => {
                sqlx::query("UPDATE servers SET checkout_session_id = $1, checkout_url = $2 WHERE id = $3")
                    .bind(checkout.id)
                    .bind(checkout.url.clone())
                    .bind(server.id.clone())
                    .execute(self.db.pool())
                    .await
                    .map_err(|e| internal("recording a checkout", e))?;
                Ok(checkout.url)
            }
            Err(error) => {
                sqlx::query("DELETE FROM servers WHERE id = $1 AND status = 'awaiting_payment'")
                    .bind(server.id.clone())
                    .execute(self.db.pool())
                    .await
                    .map_err(|e| internal("removing an unpaid server", e))?;
                Err(error)
            }
        }
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

    /// Applies what a Stripe event says (created at `created`) to the server it concerns: its subscription's
    /// details, and the state the payment leads to ([`ServerStatus::on_payment`]). An expired server comes back
    /// only within its grace period; one that lapses gets a grace period of [`GRACE_PERIOD`]. An event older than
    /// one already applied to the server changes nothing, so late deliveries never roll a server back.
    pub async fn apply_payment(&self, change: &Change, created: i64) -> Result<Applied, AppError> {
        let Some(id) = self.server_for(change).await? else { return Ok(Applied::UnknownServer) };
        // Conditional on the state read, like `act`: a lost race is judged again.
        for _ in 0..5 {
            let row =
                sqlx::query("SELECT status, status_message, delete_after, billing_event_at FROM servers WHERE id = $1")
                    .bind(id.clone())
                    .fetch_optional(self.db.pool())
                    .await
                    .map_err(|e| internal("reading a server's billing", e))?;
            let Some(row) = row else { return Ok(Applied::UnknownServer) };
            let read = || -> Result<_, sqlx::Error> {
                let last: Option<i64> = row.try_get("billing_event_at")?;
                let delete_after: Option<i64> = row.try_get("delete_after")?;
                let message: Option<String> = row.try_get("status_message")?;
                Ok((parse_status(&row)?, message, delete_after, last))
            };
            let (status, message, delete_after, last) =
                read().map_err(|e| internal("reading a server's billing", e))?;
            if last.is_some_and(|last| last > created) {
                return Ok(Applied::Stale);
            }
            let deadline_now = self.clock.now();
            let in_grace = delete_after.is_none_or(|at| at > deadline_now);
            let next = change
                .payment
                .and_then(|payment| status.on_payment(payment))
                .filter(|next| !(status == ServerStatus::Expired && *next == ServerStatus::Pending && !in_grace));
            let (delete_after, message) = match next {
                Some(ServerStatus::Expired) => (
                    Some(deadline_now + secs(GRACE_PERIOD)),
                    Some(format!(
                        "the subscription is not paid: the server is stopped, and deleted with its data in {} days \
                         unless it is paid",
                        GRACE_PERIOD.as_secs() / 86_400
                    )),
                ),
                Some(ServerStatus::Pending) => (None, None),
                Some(ServerStatus::Deleted) => (delete_after, Some("the checkout was abandoned".to_owned())),
                _ => (delete_after, message),
            };
            let updated = sqlx::query(
                "UPDATE servers SET status = $1, status_message = $2, delete_after = $3, \
                 expired_at = CASE WHEN $1 = 'expired' THEN $4 ELSE expired_at END, \
                 stripe_subscription_id = COALESCE($5, stripe_subscription_id), \
                 subscription_status = COALESCE($6, subscription_status), \
                 current_period_end = COALESCE($7, current_period_end), \
                 billing_event_at = $8, updated_at = $9 \
                 WHERE id = $10 AND status = $11 AND (billing_event_at IS NULL OR billing_event_at <= $8)",
            )
            .bind(next.unwrap_or(status).as_str())
            .bind(message)
            .bind(delete_after)
            .bind(deadline_now)
            .bind(change.subscription.clone())
            .bind(change.status.clone())
            .bind(change.period_end)
            .bind(created)
            .bind(now())
            .bind(id.clone())
            .bind(status.as_str())
            .execute(self.db.pool())
            .await
            .map_err(|e| internal("recording a payment", e))?;
            if updated.rows_affected() == 1 {
                self.publish(&id).await;
                if let Some(next) = next {
                    tracing::info!(server = %id, from = %status, to = %next, "payment event applied");
                    return Ok(Applied::Moved(next));
                }
                return Ok(Applied::Recorded);
            }
        }
        Err(AppError::Conflict { field: "status".into(), message: "the server is changing; try again".into() })
    }

    /// The server an event concerns: the one its metadata names, else the one with its subscription.
    async fn server_for(&self, change: &Change) -> Result<Option<String>, AppError> {
        let by = |column: &'static str, value: String| async move {
            sqlx::query(sqlx::AssertSqlSafe(format!("SELECT id FROM servers WHERE {column} = $1")))
                .bind(value)
                .fetch_optional(self.db.pool())
                .await
                .and_then(|row| row.map(|row| row.try_get::<String, _>("id")).transpose())
                .map_err(|e| internal("finding a server for a payment", e))
        };
        if let Some(id) = &change.server_id
            && let Some(found) = by("id", id.clone()).await?
        {
            return Ok(Some(found));
        }
        match &change.subscription {
            Some(subscription) => by("stripe_subscription_id", subscription.clone()).await,
            None => Ok(None),
        }
    }

    /// Records that a deleted server has nothing left at Stripe (its subscription or checkout was ended).
    pub async fn record_settled(&self, id: &str) -> Result<(), AppError> {
        sqlx::query("UPDATE servers SET subscription_ended_at = $1, updated_at = $1 WHERE id = $2")
            .bind(now())
            .bind(id.to_owned())
            .execute(self.db.pool())
            .await
            .map_err(|e| internal("recording a cancelled subscription", e))?;
        Ok(())
    }

    /// The user's servers with what they cost and their subscriptions (the billing page).
    pub async fn billing_overview(&self, user: &User) -> Result<BillingOverview, AppError> {
        let rows = sqlx::query(
            "SELECT id, name, game, plan, status, subscription_status, current_period_end, delete_after, \
             checkout_url FROM servers WHERE user_id = $1 AND status <> 'deleted' ORDER BY created_at, id",
        )
        .bind(user.id.clone())
        .fetch_all(self.db.pool())
        .await
        .map_err(|e| internal("listing subscriptions", e))?;
        let read = |row: &AnyRow| -> Result<Subscription, sqlx::Error> {
            let (game, plan): (String, String) = (row.try_get("game")?, row.try_get("plan")?);
            let server_status = parse_status(row)?;
            Ok(Subscription {
                server_id: row.try_get("id")?,
                server_name: row.try_get("name")?,
                server_status,
                price_cents: self.catalog.plan(&game, &plan).map_or(0, |(_, plan)| plan.price_cents),
                game,
                plan,
                status: row.try_get("subscription_status")?,
                renews_at: row.try_get("current_period_end")?,
                delete_after: row.try_get("delete_after")?,
                checkout_url: read_checkout_url(row, server_status)?,
            })
        };
        let subscriptions =
            rows.iter().map(read).collect::<Result<_, _>>().map_err(|e| internal("reading subscriptions", e))?;
        let has_customer = match &self.billing {
            Some(billing) => billing.stored_customer(&user.id).await?.is_some(),
            None => false,
        };
        Ok(BillingOverview { enabled: self.billing.is_some(), has_customer, subscriptions })
    }

    /// A Stripe Customer Portal link for the user.
    pub async fn billing_portal(&self, user: &User) -> Result<String, AppError> {
        match &self.billing {
            Some(billing) => billing.portal(user).await,
            None => Err(AppError::NotFound("billing is off: servers here are free".into())),
        }
    }

    /// Whether `row` is unpaid or expired and its deadline has passed.
    pub fn overdue(&self, row: &Desired) -> bool {
        matches!(row.status, ServerStatus::AwaitingPayment | ServerStatus::Expired)
            && row.delete_after.is_some_and(|at| at <= self.clock.now())
    }

    /// Moves an overdue server (see [`ServerService::overdue`]) to `deleted`; returns whether it did.
    pub async fn delete_if_overdue(&self, row: &Desired) -> Result<bool, AppError> {
        if !self.overdue(row) {
            return Ok(false);
        }
        let message = match row.status {
            ServerStatus::AwaitingPayment => "not paid within a day of its creation",
            _ => "the subscription was not paid within its grace period",
        };
        tracing::info!(server = %row.id, status = %row.status, "deleting an overdue server");
        self.transition(&row.id, row.status, ServerStatus::Deleted, Some(message)).await
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

impl BillingPages for ServerService {
    fn overview<'a>(&'a self, user: &'a User) -> BoxFuture<'a, Result<BillingOverview, AppError>> {
        Box::pin(self.billing_overview(user))
    }

    fn portal<'a>(&'a self, user: &'a User) -> BoxFuture<'a, Result<String, AppError>> {
        Box::pin(self.billing_portal(user))
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

fn secs(duration: std::time::Duration) -> i64 {
    i64::try_from(duration.as_secs()).unwrap_or(i64::MAX)
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
            checkout_url: read_checkout_url(row, status)?,
        })
    };
    read().map_err(|e| internal("reading a server row", e))
}

/// Where to pay for the server: only while there is something to pay.
fn read_checkout_url(row: &AnyRow, status: ServerStatus) -> Result<Option<String>, sqlx::Error> {
    match status {
        ServerStatus::AwaitingPayment => row.try_get("checkout_url"),
        _ => Ok(None),
    }
}

fn parse_status(row: &AnyRow) -> Result<ServerStatus, sqlx::Error> {
    let status: String = row.try_get("status")?;
    status.parse().map_err(|e| sqlx::Error::Decode(Box::new(e)))
}
