//! The `servers` table: its one row type and every statement that reads or writes it.
//!
//! Every write goes through [`ServerRepo::update`], which makes it conditional on what the caller read (so a
//! transition computed from a stale state never applies), bumps the row's version, and publishes the row as it
//! now is on the [`EventBus`]: open dashboards show it and the reconciler acts on it.

use catalog::billing::Billed;
use catalog::gameserver::{InstallProgress, ServerEvent};
use catalog::variables::Values;
use catalog::{Action, Notice, ServerId, ServerStatus, UserId};
use sqlx::any::AnyArguments;
use sqlx::query::Query;
use sqlx::{Any, Row as _};

use super::events::EventBus;
pub use super::row::{Result, ServerRow};
use crate::billing::{Change, Checkout};
use crate::db::{Db, now};
use crate::dns::{RecordIds, ServerRecords};
use crate::orchestrator::{BoxFuture, DriverError, PortBook, PortClaim};

/// Every column of a server row ([`ServerRow::read`] reads them by name).
const COLUMNS: &str = "id, user_id, name, game, plan, status, status_message, status_detail, node_ip, port, \
                       generation, dns_ip, dns_port, dns_address, dns_host_record, dns_srv_record, dns_error, dns_detail, \
                       delete_after, stripe_subscription_id, checkout_session_id, checkout_url, subscription_status, \
                       current_period_end, subscription_ended_at, billing_event_at, price_mismatch, variables, eula_accepted, \
                       install_generation, install_step, install_done, install_total, created_at, version";

/// A server to record.
pub struct NewServer<'a> {
    pub id: &'a ServerId,
    pub user_id: &'a UserId,
    pub name: &'a str,
    pub game: &'a str,
    pub plan: &'a str,
    pub billed: Billed,
    pub variables: &'a Values,
    pub eula_accepted: bool,
}

/// The outcome of a conditional write of a payment.
pub struct PaymentWrite<'a> {
    pub from: ServerStatus,
    pub to: Billed,
    /// The status message it then has.
    pub message: Option<String>,
    pub change: &'a Change,
    /// What the subscription's price is for, when that is not the server's plan, as recorded from now on.
    pub price_mismatch: Option<String>,
    /// When the event was created at the provider.
    pub created: i64,
}

pub struct ServerRepo {
    db: Db,
    events: EventBus,
}

impl ServerRepo {
    pub fn new(db: Db, events: EventBus) -> Self {
        Self { db, events }
    }

    pub fn events(&self) -> &EventBus {
        &self.events
    }

    /// The user's servers, or with `None` everyone's, oldest first.
    pub async fn list(&self, owner: Option<&UserId>) -> Result<Vec<ServerRow>> {
        let rows = match owner {
            None => {
                sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM servers ORDER BY created_at, id")))
                    .fetch_all(self.db.pool())
                    .await?
            }
            Some(owner) => {
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "SELECT {COLUMNS} FROM servers WHERE user_id = $1 ORDER BY created_at, id"
                )))
                .bind(owner.to_string())
                .fetch_all(self.db.pool())
                .await?
            }
        };
        rows.iter().map(ServerRow::read).collect()
    }

    pub async fn get(&self, id: &ServerId) -> Result<Option<ServerRow>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM servers WHERE id = $1")))
            .bind(id.to_string())
            .fetch_optional(self.db.pool())
            .await?;
        row.as_ref().map(ServerRow::read).transpose()
    }

    /// Records a new server unless its owner already has `limit` servers (deleted ones aside), in one statement
    /// so that checking and writing cannot be split by a concurrent create. `None`: nothing was written (the
    /// quota, or an id already taken).
    pub async fn insert(&self, new: &NewServer<'_>, limit: i64) -> Result<Option<ServerRow>> {
        let at = now();
        let mut tx = self.db.pool().begin().await?;
        // The count below and the insert are one statement, but under PostgreSQL's READ COMMITTED two of them
        // running at once each count the other's row as absent. Writing the owner's row first makes a second
        // create of the same owner wait for the first to commit, then count afresh (a new statement, a new
        // snapshot); on SQLite the write takes the database's one write lock, with the same effect.
        sqlx::query("UPDATE users SET id = id WHERE id = $1").bind(new.user_id.to_string()).execute(&mut *tx).await?;
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO servers (id, user_id, name, game, plan, status, created_at, updated_at, delete_after, \
                                  variables, eula_accepted) \
             SELECT $1, $2, $3, $4, $5, $6, $7, $7, $9, $10, $11 \
             WHERE (SELECT COUNT(*) FROM servers WHERE user_id = $2 AND status <> 'deleted') < $8 \
             ON CONFLICT (id) DO NOTHING RETURNING {COLUMNS}"
        )))
        .bind(new.id.to_string())
        .bind(new.user_id.to_string())
        .bind(new.name.to_owned())
        .bind(new.game.to_owned())
        .bind(new.plan.to_owned())
        .bind(new.billed.status.as_str())
        .bind(at)
        .bind(limit)
        .bind(new.billed.delete_after)
        .bind(serde_json::to_string(new.variables).map_err(|e| sqlx::Error::Encode(Box::new(e)))?)
        .bind(new.eula_accepted.then_some(at))
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        let row = row.as_ref().map(ServerRow::read).transpose()?;
        if let Some(row) = &row {
            self.publish(row);
        }
        Ok(row)
    }

    /// How many servers the user has, deleted ones aside.
    pub async fn count_active(&self, owner: &UserId) -> Result<i64> {
        sqlx::query("SELECT COUNT(*) AS n FROM servers WHERE user_id = $1 AND status <> 'deleted'")
            .bind(owner.to_string())
            .fetch_one(self.db.pool())
            .await
            .and_then(|row| row.try_get("n"))
    }

    /// The one conditional write: `UPDATE servers SET {set} WHERE id = $1 AND ({only_if})`, which also stamps
    /// the time and bumps the version, then publishes the row as written. `$1` is the id and `$2` the time;
    /// `bind` adds the caller's values from `$3` on. `None` when the condition did not hold (a concurrent change,
    /// or nothing to change).
    async fn update<'q>(
        &self,
        set: &str,
        only_if: &str,
        id: &ServerId,
        bind: impl FnOnce(Query<'q, Any, AnyArguments>) -> Query<'q, Any, AnyArguments>,
    ) -> Result<Option<ServerRow>> {
        let query = sqlx::query(sqlx::AssertSqlSafe(update_statement(set, only_if))).bind(id.to_string()).bind(now());
        let row = bind(query).fetch_optional(self.db.pool()).await?;
        let row = row.as_ref().map(ServerRow::read).transpose()?;
        if let Some(row) = &row {
            self.publish(row);
        }
        Ok(row)
    }

    /// Records the Checkout Session of a new, unpaid server.
    pub async fn record_checkout(&self, id: &ServerId, checkout: &Checkout) -> Result<Option<ServerRow>> {
        self.update("checkout_session_id = $3, checkout_url = $4", "status = 'awaiting_payment'", id, |q| {
            q.bind(checkout.id.clone()).bind(checkout.url.clone())
        })
        .await
    }

    /// Removes a server that was never paid for (its checkout could not be opened); open dashboards, which saw
    /// it created, hear that it is gone.
    pub async fn remove_unpaid(&self, id: &ServerId) -> Result<()> {
        self.delete(id, ServerStatus::AwaitingPayment).await.map(drop)
    }

    /// A user action: `from` → `to`, clearing the status message; start, restart and reinstall begin a new
    /// generation, which replaces a game running an older one and forgets its crashes, and a reinstall also a new
    /// install generation, which installs the game's files again.
    pub async fn act(
        &self,
        id: &ServerId,
        from: ServerStatus,
        to: ServerStatus,
        action: Action,
    ) -> Result<Option<ServerRow>> {
        let new_generation = matches!(action, Action::Start | Action::Restart | Action::Reinstall);
        let reinstall = action == Action::Reinstall;
        self.update(
            "status = $3, status_message = NULL, status_detail = NULL, dns_error = NULL, dns_detail = NULL, \
             stopped_at = CASE WHEN $3 = 'stopped' THEN $2 ELSE stopped_at END, generation = generation + $5, \
             install_generation = install_generation + $6, install_step = NULL",
            "status = $4",
            id,
            |q| q.bind(to.as_str()).bind(from.as_str()).bind(i64::from(new_generation)).bind(i64::from(reinstall)),
        )
        .await
    }

    /// Replaces a server's startup variables, if it is still in `status` (the caller judged the change against
    /// it). A change that `restart`s the server begins a new generation, so the game starts again with them.
    pub async fn set_variables(
        &self,
        id: &ServerId,
        status: ServerStatus,
        values: &Values,
        restart: bool,
    ) -> Result<Option<ServerRow>> {
        let json = serde_json::to_string(values).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
        self.update(
            "variables = $3, generation = generation + $5, \
             status = CASE WHEN $5 = 1 AND status = 'running' THEN 'pending' ELSE status END",
            "status = $4",
            id,
            |q| q.bind(json).bind(status.as_str()).bind(i64::from(restart)),
        )
        .await
    }

    /// Records that the game of `generation` is installing, at `progress`: a pending (or already installing)
    /// server shows it.
    pub async fn record_install(&self, id: &ServerId, generation: i64, progress: &InstallProgress) -> Result<bool> {
        let to_i64 = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        let written = self
            .update(
                "status = 'installing', status_message = NULL, status_detail = NULL, install_step = $3, \
                 install_done = $4, install_total = $5",
                "generation = $6 AND status IN ('pending', 'failed', 'installing') \
                 AND (status <> 'installing' OR install_step IS DISTINCT FROM $3 OR install_done IS DISTINCT FROM $4 \
                      OR install_total IS DISTINCT FROM $5)",
                id,
                |q| {
                    q.bind(progress.step.clone())
                        .bind(to_i64(progress.done_bytes))
                        .bind(progress.total_bytes.map(to_i64))
                        .bind(generation)
                },
            )
            .await?;
        Ok(written.is_some())
    }

    /// Moves a server from `from` to `to` with `notice` (and the `detail` behind it), unless something changed
    /// it meanwhile. Writes nothing when the row already says exactly that. Returns whether it wrote.
    pub async fn transition(
        &self,
        id: &ServerId,
        from: ServerStatus,
        to: ServerStatus,
        notice: Option<&Notice>,
        detail: Option<&str>,
    ) -> Result<bool> {
        let message = notice.map(Notice::to_string);
        let written = self
            .update(
                "status = $3, status_message = $4, status_detail = $6",
                "status = $5 AND (status <> $3 OR status_message IS DISTINCT FROM $4 \
                 OR status_detail IS DISTINCT FROM $6)",
                id,
                |q| q.bind(to.as_str()).bind(message).bind(from.as_str()).bind(detail.map(str::to_owned)),
            )
            .await?;
        Ok(written.is_some())
    }

    /// Records that the game server of `generation` is up at `host:port`: a pending or failed server becomes
    /// running, and a running one follows its game server to a new address. Nothing happens if a user changed
    /// the server meanwhile (another status or a newer generation).
    pub async fn record_running(&self, id: &ServerId, generation: i64, host: &str, port: u16) -> Result<bool> {
        let written = self
            .update(
                "status = 'running', status_message = NULL, status_detail = NULL, node_ip = $3, port = $4",
                "generation = $5 AND status IN ('pending', 'failed', 'running', 'installing') \
                 AND (status <> 'running' OR node_ip IS DISTINCT FROM $3 OR port IS DISTINCT FROM $4)",
                id,
                |q| q.bind(host.to_owned()).bind(i64::from(port)).bind(generation),
            )
            .await?;
        Ok(written.is_some())
    }

    /// Records that the server's DNS records now lead to `published` (`None`: it has none) with the provider
    /// ids `ids`, and clears a DNS error. Written whatever the status, so that a server deleted meanwhile still
    /// has its records' ids for its clean-up.
    pub async fn record_dns(&self, id: &ServerId, published: Option<&ServerRecords>, ids: &RecordIds) -> Result<()> {
        self.update(
            "dns_ip = $3, dns_port = $4, dns_address = $5, dns_host_record = $6, dns_srv_record = $7, \
             dns_error = NULL, dns_detail = NULL",
            "1 = 1",
            id,
            |q| {
                q.bind(published.map(|records| records.ip.to_string()))
                    .bind(published.map(|records| i64::from(records.port)))
                    .bind(published.map(ServerRecords::address))
                    .bind(ids.host.clone())
                    .bind(ids.srv.clone())
            },
        )
        .await
        .map(drop)
    }

    /// Records why the server's DNS records could not be updated (`None`: they are as they should be), and the
    /// provider's words for administrators. Writes nothing when the row already says exactly that.
    pub async fn record_dns_error(&self, id: &ServerId, notice: Option<&Notice>, detail: Option<&str>) -> Result<()> {
        self.update(
            "dns_error = $3, dns_detail = $4",
            "dns_error IS DISTINCT FROM $3 OR dns_detail IS DISTINCT FROM $4",
            id,
            |q| q.bind(notice.map(Notice::to_string)).bind(detail.map(str::to_owned)),
        )
        .await
        .map(drop)
    }

    /// The game ports taken on this machine, with the server holding each.
    async fn ports(&self) -> Result<Vec<(ServerId, u16)>> {
        let rows = sqlx::query("SELECT id, port FROM servers WHERE port IS NOT NULL").fetch_all(self.db.pool()).await?;
        rows.iter()
            .map(|row| {
                let port: i64 = row.try_get("port")?;
                Ok((ServerId::new(row.try_get::<String, _>("id")?), u16::try_from(port).unwrap_or_default()))
            })
            .collect()
    }

    /// Gives the server `port` on `host`, unless it has a port already. The unique `(node_ip, port)` index
    /// settles a race with another claim.
    async fn claim_port(&self, id: &ServerId, host: &str, port: u16) -> Result<PortClaim> {
        let claimed = self
            .update("node_ip = $3, port = $4", "port IS NULL", id, |q| q.bind(host.to_owned()).bind(i64::from(port)))
            .await;
        match claimed {
            Ok(Some(_)) => Ok(PortClaim::Claimed),
            Ok(None) => Ok(PortClaim::NotNeeded),
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Ok(PortClaim::Taken),
            Err(e) => Err(e),
        }
    }

    /// The server a payment event concerns: the one its metadata names, else the one with its subscription.
    /// Read on `conn`, the transaction that handles the event: a second connection while it holds the write
    /// lock (SQLite) or an uncommitted event row (PostgreSQL) could wait on it.
    pub async fn find_for_payment(&self, conn: &mut sqlx::AnyConnection, change: &Change) -> Result<Option<ServerRow>> {
        let by = |column: &str| sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM servers WHERE {column} = $1"));
        if let Some(id) = &change.server_id
            && let Some(row) = sqlx::query(by("id")).bind(id.to_string()).fetch_optional(&mut *conn).await?
        {
            return ServerRow::read(&row).map(Some);
        }
        let Some(subscription) = &change.subscription else { return Ok(None) };
        let row =
            sqlx::query(by("stripe_subscription_id")).bind(subscription.clone()).fetch_optional(&mut *conn).await?;
        row.as_ref().map(ServerRow::read).transpose()
    }

    /// Writes what a payment event did, on `conn` (the transaction that also records the event as handled),
    /// unless the server changed meanwhile or a newer event was applied already. The row is not published: the
    /// caller does that once the transaction is committed ([`ServerRepo::publish`]).
    pub async fn write_payment(
        &self,
        conn: &mut sqlx::AnyConnection,
        id: &ServerId,
        write: &PaymentWrite<'_>,
    ) -> Result<Option<ServerRow>> {
        let statement = update_statement(
            "status = $3, status_message = $4, delete_after = $5, \
             expired_at = CASE WHEN $3 = 'expired' THEN $2 ELSE expired_at END, \
             stripe_subscription_id = COALESCE($6, stripe_subscription_id), \
             subscription_status = COALESCE($7, subscription_status), \
             current_period_end = COALESCE($8, current_period_end), billing_event_at = $9, price_mismatch = $11",
            "status = $10 AND (billing_event_at IS NULL OR billing_event_at <= $9)",
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(statement))
            .bind(id.to_string())
            .bind(now())
            .bind(write.to.status.as_str())
            .bind(write.message.clone())
            .bind(write.to.delete_after)
            .bind(write.change.subscription.clone())
            .bind(write.change.status.as_ref().map(|status| status.as_str().to_owned()))
            .bind(write.change.period_end)
            .bind(write.created)
            .bind(write.from.as_str())
            .bind(write.price_mismatch.clone())
            .fetch_optional(&mut *conn)
            .await?;
        row.as_ref().map(ServerRow::read).transpose()
    }

    /// Records that a deleted server has nothing left at the payment provider.
    pub async fn record_settled(&self, id: &ServerId) -> Result<()> {
        self.update("subscription_ended_at = $2", "1 = 1", id, |q| q).await.map(drop)
    }

    /// Deletes the row of a deleted server whose clean-up is done.
    pub async fn forget(&self, id: &ServerId) -> Result<()> {
        if self.delete(id, ServerStatus::Deleted).await? {
            tracing::info!(server = %id, "server deleted");
        }
        Ok(())
    }

    /// Deletes the row if the server is `status`, and tells subscribers it is gone; returns whether it was.
    async fn delete(&self, id: &ServerId, status: ServerStatus) -> Result<bool> {
        let owner: Option<String> = sqlx::query("DELETE FROM servers WHERE id = $1 AND status = $2 RETURNING user_id")
            .bind(id.to_string())
            .bind(status.as_str())
            .fetch_optional(self.db.pool())
            .await
            .and_then(|row| row.map(|row| row.try_get("user_id")).transpose())?;
        let Some(owner) = owner else { return Ok(false) };
        self.events.send(ServerEvent::Removed { id: id.clone(), user_id: UserId::new(owner) });
        Ok(true)
    }

    /// Tells subscribers how the server is now.
    pub fn publish(&self, row: &ServerRow) {
        self.events.send(ServerEvent::Changed { server: Box::new(row.view(false)) });
    }

    pub fn db(&self) -> &Db {
        &self.db
    }
}

/// The rows are the local driver's record of who holds which game port.
impl PortBook for ServerRepo {
    fn held(&self) -> BoxFuture<'_, Result<Vec<(ServerId, u16)>, DriverError>> {
        Box::pin(async move { self.ports().await.map_err(|e| DriverError::Ports(Box::new(e))) })
    }

    fn claim<'a>(
        &'a self,
        server: &'a ServerId,
        host: &'a str,
        port: u16,
    ) -> BoxFuture<'a, Result<PortClaim, DriverError>> {
        Box::pin(async move { self.claim_port(server, host, port).await.map_err(|e| DriverError::Ports(Box::new(e))) })
    }
}

fn update_statement(set: &str, only_if: &str) -> String {
    format!(
        "UPDATE servers SET {set}, updated_at = $2, version = version + 1 WHERE id = $1 AND ({only_if}) \
         RETURNING {COLUMNS}"
    )
}
