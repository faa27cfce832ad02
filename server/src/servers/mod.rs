//! Customers' game servers: what a user may ask of them.
//!
//! Database first: every action writes the desired state in one statement and returns at once; it never waits
//! for a game server. Making the world match the rows is the reconciler's job. The rows live in [`repo`], which
//! publishes every write on the [`events`] bus.
//!
//! The service's user actions are the app's [`Servers`] trait, implemented once here and used by the server
//! functions and the REST routes alike.

pub mod events;
pub mod repo;
pub mod routes;
pub mod row;

use std::num::NonZeroU32;
use std::sync::Arc;

use app::context::{BoxFuture, authorize};
use app::error::AppError;
use app::servers::ssr::Servers;
use catalog::account::{Resource, User};
use catalog::billing::Billed;
use catalog::gameserver::{DiskUsage, GameServer, NewServer, ServerEvent, ServerVariables, check_name, server_id};
use catalog::variables::{Values, VariableError};
use catalog::{Action, Catalog, PublicGame, ServerId, ServerStatus};
use governor::{DefaultKeyedRateLimiter, Quota};
use tokio::sync::broadcast;

use self::repo::{NewServer as NewRow, ServerRepo, ServerRow};
use crate::billing::{Payments, PaymentsError};
use crate::error::log_cause;
use crate::orchestrator::{DriverError, Orchestrator};

/// Most log lines one request may ask for (what the local driver keeps in memory).
pub const MAX_LOG_TAIL: usize = 1000;

/// Why a server action failed inside the server. Converted into what the client sees (and logged with its
/// causes) where it leaves the service.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the servers table could not be read or written")]
    Database(#[from] sqlx::Error),
    #[error("the orchestrator failed")]
    Driver(#[from] DriverError),
    #[error(transparent)]
    Payments(#[from] PaymentsError),
    #[error("no free server id after 3 draws")]
    NoFreeId,
    #[error("the server kept changing while it was written")]
    Busy,
}

impl From<Error> for AppError {
    fn from(error: Error) -> Self {
        match error {
            Error::Payments(error) => error.into(),
            Error::Driver(DriverError::NotRunning(_)) => AppError::Conflict {
                field: "status".into(),
                message: "the server is not running; start it first".into(),
            },
            error => {
                log_cause(&error);
                AppError::Internal
            }
        }
    }
}

pub struct ServerService {
    repo: Arc<ServerRepo>,
    catalog: Arc<Catalog>,
    driver: Arc<dyn Orchestrator>,
    payments: Arc<dyn Payments>,
    /// How many servers (not counting deleted ones) a customer may have; administrators are not limited.
    max_per_customer: u32,
    /// The time billing deadlines are judged by.
    clock: crate::clock::Clock,
    /// Console commands per server: each one is a write to the game's input, and on Kubernetes a
    /// `pods/attach` call, so however many consoles are open they come at most this fast.
    commands: DefaultKeyedRateLimiter<ServerId>,
}

/// Console commands a server takes per second (and at once, in a burst).
pub const COMMANDS_PER_SECOND: NonZeroU32 = NonZeroU32::new(10).expect("non-zero");

impl ServerService {
    pub fn new(
        repo: Arc<ServerRepo>,
        catalog: Arc<Catalog>,
        driver: Arc<dyn Orchestrator>,
        payments: Arc<dyn Payments>,
        max_per_customer: u32,
        clock: crate::clock::Clock,
    ) -> Self {
        let commands = DefaultKeyedRateLimiter::keyed(Quota::per_second(COMMANDS_PER_SECOND));
        Self { repo, catalog, driver, payments, max_per_customer, clock, commands }
    }

    /// Every change to any server from now on. A receiver that falls behind gets `Lagged` and should reload.
    pub fn subscribe(&self) -> broadcast::Receiver<ServerEvent> {
        self.repo.events().subscribe()
    }

    /// What this host cannot enforce of the plans (for `/ready`).
    pub fn host_limitations(&self) -> Vec<String> {
        self.driver.limitations()
    }

    /// The server's row, if `user` may see it (its owner or an administrator); anyone else gets "not found".
    pub(crate) async fn visible(&self, user: &User, id: &ServerId) -> Result<ServerRow, AppError> {
        let row = self.repo.get(id).await.map_err(Error::from)?;
        let what = format!("server `{id}`");
        let row = row.ok_or_else(|| AppError::NotFound(format!("{what} does not exist")))?;
        authorize(user, Resource::OwnedBy(&row.user_id), &what)?;
        Ok(row)
    }

    /// Who owns the server (scheduled tasks act as them).
    pub(crate) async fn owner_of(&self, id: &ServerId) -> Result<catalog::UserId, AppError> {
        let row = self.repo.get(id).await.map_err(Error::from)?;
        row.map(|row| row.user_id).ok_or_else(|| AppError::NotFound(format!("server `{id}` does not exist")))
    }

    /// The last `tail` lines of the server's output, for its owner or an administrator.
    pub async fn logs(&self, user: &User, id: &ServerId, tail: usize) -> Result<Vec<String>, AppError> {
        if !(1..=MAX_LOG_TAIL).contains(&tail) {
            return Err(AppError::invalid("tail", format!("must be between 1 and {MAX_LOG_TAIL}")));
        }
        self.visible(user, id).await?;
        Ok(self.driver.logs(id, tail).await.map_err(Error::from)?)
    }

    /// Types `line` on the server's console, for its owner or an administrator.
    pub async fn type_command(&self, user: &User, id: &ServerId, line: &str) -> Result<(), AppError> {
        self.visible(user, id).await?;
        if self.commands.len() > 10_000 {
            self.commands.retain_recent();
        }
        self.commands.check_key(id).map_err(|_| AppError::RateLimited { retry_after: 1 })?;
        self.driver.send_input(id, line).await.map_err(Error::from)?;
        // The command itself is not logged: people type passwords into game consoles.
        tracing::info!(server = %id, user = %user.id, bytes = line.len(), "console command");
        Ok(())
    }

    /// What the settings page shows: the variables the user may see (an administrator sees the operator's too).
    fn variables_of(&self, row: &ServerRow, user: &User) -> Result<ServerVariables, AppError> {
        let (game, plan) = self.catalog.plan(&row.game, &row.plan).ok_or_else(|| AppError::Conflict {
            field: "plan".into(),
            message: format!("{} · {} is no longer offered", row.game, row.plan),
        })?;
        let shown: Vec<_> = game.variables.iter().filter(|v| v.editable || user.is_admin()).cloned().collect();
        let players = plan.players.max;
        let values = shown
            .iter()
            .map(|v| (v.key.clone(), row.variables.get(&v.key).cloned().unwrap_or_else(|| v.default_for(players))))
            .collect();
        Ok(ServerVariables { variables: shown, values, plan_players: players })
    }

    /// Records the new server's Checkout Session; if it cannot be opened, removes the row again (it was never
    /// paid for) and tells the user to try again.
    async fn open_checkout(&self, user: &User, row: &ServerRow) -> Result<ServerRow, AppError> {
        match self.payments.checkout(user, &row.id, &row.game, &row.plan).await {
            Ok(checkout) => {
                let recorded = self.repo.record_checkout(&row.id, &checkout).await.map_err(Error::from)?;
                Ok(recorded.unwrap_or_else(|| row.clone()))
            }
            Err(error) => {
                self.repo.remove_unpaid(&row.id).await.map_err(Error::from)?;
                Err(Error::from(error).into())
            }
        }
    }
}

impl Servers for ServerService {
    /// The user's servers, or with `all` (administrators only) everyone's.
    fn list<'a>(&'a self, user: &'a User, all: bool) -> BoxFuture<'a, Result<Vec<GameServer>, AppError>> {
        Box::pin(async move {
            if all {
                authorize(user, Resource::AdminArea, "the list of all servers")?;
            }
            let rows = self.repo.list((!all).then_some(&user.id)).await.map_err(Error::from)?;
            Ok(rows.iter().map(|row| row.view(user.is_admin())).collect())
        })
    }

    fn games(&self) -> Vec<PublicGame> {
        self.catalog
            .games()
            .iter()
            .map(|game| PublicGame { unavailable: self.driver.check_runnable(game, None).err(), ..game.public() })
            .collect()
    }

    /// Records a new server after checking name, game, plan and the user's quota; writes nothing when any check
    /// fails. Without billing it is `pending` at once. With billing it is `awaiting_payment`, with a Checkout
    /// Session to pay at (`checkout_url`) and a deadline; if the provider cannot open one, the row is removed.
    fn create<'a>(&'a self, user: &'a User, new: &'a NewServer) -> BoxFuture<'a, Result<GameServer, AppError>> {
        Box::pin(async move {
            let name = check_name(&new.name)?;
            let game = self
                .catalog
                .game(&new.game)
                .ok_or_else(|| AppError::invalid("game", format!("there is no game `{}`", new.game)))?;
            let plan = game
                .plan(&new.plan)
                .ok_or_else(|| AppError::invalid("plan", format!("{} has no plan `{}`", game.name, new.plan)))?;
            let variables =
                Values::merge(&game.variables, plan.players.max, &Values::default(), &new.variables, user.is_admin())
                    .map_err(variable_error)?;
            if let Some(eula) = &game.eula
                && !new.accept_eula
            {
                return Err(AppError::invalid(
                    "accept_eula",
                    format!("{} runs only once you accept its licence: {eula}", game.name),
                ));
            }
            self.driver.check_runnable(game, Some(&variables)).map_err(|reason| AppError::invalid("game", reason))?;
            // Administrators are not held to the quota.
            let limit = if user.is_admin() { i64::MAX } else { i64::from(self.max_per_customer) };
            let billed = Billed::created(self.payments.enabled(), self.clock.now());
            for _ in 0..3 {
                let id = server_id(&game.id, &uuid::Uuid::new_v4().simple().to_string());
                let row = NewRow {
                    id: &id,
                    user_id: &user.id,
                    name: &name,
                    game: &game.id,
                    plan: &plan.id,
                    billed,
                    variables: &variables,
                    eula_accepted: new.accept_eula && game.eula.is_some(),
                };
                // The answer is the row as written, before the reconciler has moved it on.
                if let Some(row) = self.repo.insert(&row, limit).await.map_err(Error::from)? {
                    tracing::info!(server = %id, user = %user.id, game = %game.id, plan = %plan.id, "server created");
                    let row = if self.payments.enabled() { self.open_checkout(user, &row).await? } else { row };
                    return Ok(row.view(user.is_admin()));
                }
                if self.repo.count_active(&user.id).await.map_err(Error::from)? >= limit {
                    return Err(AppError::Forbidden(format!(
                        "you already have {limit} servers, the most your account allows; delete one first"
                    )));
                }
                // Otherwise the random part of the id collided with another server's: draw again.
            }
            Err(Error::NoFreeId.into())
        })
    }

    /// One server, if the user may see it (its owner or an administrator); anyone else gets "not found".
    fn get<'a>(&'a self, user: &'a User, id: &'a ServerId) -> BoxFuture<'a, Result<GameServer, AppError>> {
        Box::pin(async move { Ok(self.visible(user, id).await?.view(user.is_admin())) })
    }

    /// How much of its plan's storage the server's files take, where the driver can tell.
    fn disk<'a>(&'a self, user: &'a User, id: &'a ServerId) -> BoxFuture<'a, Result<Option<DiskUsage>, AppError>> {
        Box::pin(async move {
            let row = self.visible(user, id).await?;
            let limit = self.catalog.plan(&row.game, &row.plan).map(|(_, plan)| plan.storage.bytes());
            let used = self.driver.disk_usage(id).await;
            Ok(used.zip(limit).map(|(used_bytes, limit_bytes)| DiskUsage { used_bytes, limit_bytes }))
        })
    }

    /// The server's startup variables with their rules, for its owner or an administrator.
    fn variables<'a>(&'a self, user: &'a User, id: &'a ServerId) -> BoxFuture<'a, Result<ServerVariables, AppError>> {
        Box::pin(async move {
            let row = self.visible(user, id).await?;
            self.variables_of(&row, user)
        })
    }

    /// Changes startup variables; every value is checked before anything is written. While the server runs
    /// the change restarts it; a new game version installs it again at that start.
    fn set_variables<'a>(
        &'a self,
        user: &'a User,
        id: &'a ServerId,
        given: &'a std::collections::BTreeMap<String, String>,
    ) -> BoxFuture<'a, Result<ServerVariables, AppError>> {
        Box::pin(async move {
            for _ in 0..5 {
                let row = self.visible(user, id).await?;
                let (game, plan) = self.catalog.plan(&row.game, &row.plan).ok_or_else(|| AppError::Conflict {
                    field: "plan".into(),
                    message: format!("{} · {} is no longer offered", row.game, row.plan),
                })?;
                let values = Values::merge(&game.variables, plan.players.max, &row.variables, given, user.is_admin())
                    .map_err(variable_error)?;
                let restart = match row.status {
                    ServerStatus::Running => true,
                    ServerStatus::Stopped | ServerStatus::Failed | ServerStatus::InstallFailed => false,
                    status => {
                        return Err(AppError::Conflict {
                            field: "status".into(),
                            message: format!(
                                "variables can be changed while a server is running or stopped, not while it is {status}"
                            ),
                        });
                    }
                };
                self.driver
                    .check_runnable(game, Some(&values))
                    .map_err(|reason| AppError::invalid("variables", reason))?;
                let changed = values != row.variables;
                if !changed {
                    return self.variables_of(&row, user);
                }
                if let Some(written) =
                    self.repo.set_variables(id, row.status, &values, restart).await.map_err(Error::from)?
                {
                    tracing::info!(server = %id, user = %user.id, restart, "variables changed");
                    return self.variables_of(&written, user);
                }
            }
            Err(AppError::Conflict { field: "status".into(), message: "the server is changing; try again".into() })
        })
    }

    /// Applies a user action if the shared state machine allows it from the server's current state.
    fn act<'a>(
        &'a self,
        user: &'a User,
        id: &'a ServerId,
        action: Action,
    ) -> BoxFuture<'a, Result<GameServer, AppError>> {
        Box::pin(async move {
            // The reconciler may change the status between our read and our write (pending → running, say).
            // The write is conditional on the status read, so it never applies a transition computed from a
            // stale state; after a lost race the action is judged again against the state as it is now.
            for _ in 0..5 {
                let row = self.visible(user, id).await?;
                let next = row.status.apply(action).map_err(conflict)?;
                if let Some(changed) = self.repo.act(id, row.status, next, action).await.map_err(Error::from)? {
                    tracing::info!(server = %id, user = %user.id, %action, from = %row.status, to = %next, "server action");
                    return Ok(changed.view(user.is_admin()));
                }
            }
            Err(AppError::Conflict { field: "status".into(), message: "the server is changing; try again".into() })
        })
    }
}

/// 422 naming the variable and its rule.
fn variable_error(error: VariableError) -> AppError {
    AppError::invalid(&format!("variables.{}", error.key), error.problem)
}

/// 409 naming the state that refused the action.
fn conflict(error: catalog::TransitionError) -> AppError {
    AppError::Conflict { field: "status".into(), message: error.to_string() }
}
