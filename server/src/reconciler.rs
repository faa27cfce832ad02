//! The reconciler: makes the game servers the orchestrator runs match the rows in the database.
//!
//! Level-triggered and idempotent. Each pass over a server reads its row and what the orchestrator observes,
//! and does the one thing that brings them closer; a pass with nothing to do writes nothing. Passes are
//! triggered by row changes (user actions, and the reconciler's own writes), by orchestrator events (a game
//! became ready, a process exited) and by a full resync on an interval, the safety net for anything missed.
//!
//! Passes over one server never overlap (a trigger during a pass reruns it afterwards), while different
//! servers proceed independently: one game taking its time to stop holds up nobody else.
//!
//! What is remembered between passes lives in memory and only tunes timing (crash history, backoff): after a
//! restart of Spawnpoint every server simply gets a fresh pass.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use app::error::AppError;
use catalog::{Catalog, ServerStatus};
use tokio::sync::broadcast::error::RecvError;
use tokio::time::Instant;

use crate::orchestrator::{Observed, Orchestrator, Phase, ServerSpec};
use crate::servers::{Desired, ServerService};

/// A game that crashes this often within [`CRASH_WINDOW`] is marked failed instead of restarted again.
const CRASH_LIMIT: usize = 5;
const CRASH_WINDOW: Duration = Duration::from_secs(60);
/// Backoff never grows past these.
const MAX_RESTART_DELAY: Duration = Duration::from_secs(60);
const MAX_RETRY_DELAY: Duration = Duration::from_secs(10 * 60);
/// Passes running at once: a resync over thousands of servers queues its passes instead of opening thousands of
/// database queries and API requests together.
const CONCURRENT_PASSES: usize = 32;

#[derive(Debug, Clone)]
pub struct ReconcilerConfig {
    /// Time between full passes.
    pub resync_interval: Duration,
    /// The first wait before restarting a crashed game; retries of failed servers start at 15 times this.
    /// Both double with each further failure.
    pub backoff: Duration,
    /// How long a game may take to become ready: past this, what was started is stopped and the server fails.
    pub start_timeout: Duration,
    /// The host players are given on the single box, where Spawnpoint chooses ports itself.
    pub host: String,
}

pub struct Reconciler {
    servers: Arc<ServerService>,
    catalog: Arc<Catalog>,
    driver: Arc<dyn Orchestrator>,
    config: ReconcilerConfig,
    /// Servers with a pass under way, and whether another was asked for meanwhile.
    queue: Mutex<HashMap<String, bool>>,
    passes: tokio::sync::Semaphore,
    memory: Mutex<HashMap<String, Memory>>,
    /// Stored data without a row, found by the last resync, to be destroyed.
    orphans: Mutex<HashSet<String>>,
    stopping: AtomicBool,
}

/// What the reconciler remembers about one server between passes, for one generation of it (a user's start
/// or restart begins a new generation, and with it a clean slate).
#[derive(Debug, Default)]
struct Memory {
    generation: i64,
    /// When the game crashed recently.
    crashes: VecDeque<Instant>,
    /// Failures (crash loops, errors) since it last ran.
    failures: u32,
    /// No new attempt before this.
    not_before: Option<Instant>,
    /// A crash has been counted and its restart is waiting for its backoff.
    restart_due: bool,
    /// When the game was last seen starting, and not yet ready since.
    starting_since: Option<Instant>,
}

impl Reconciler {
    pub fn new(
        servers: Arc<ServerService>,
        catalog: Arc<Catalog>,
        driver: Arc<dyn Orchestrator>,
        config: ReconcilerConfig,
    ) -> Arc<Self> {
        Arc::new(Self {
            servers,
            catalog,
            driver,
            config,
            queue: Mutex::default(),
            passes: tokio::sync::Semaphore::new(CONCURRENT_PASSES),
            memory: Mutex::default(),
            orphans: Mutex::default(),
            stopping: AtomicBool::new(false),
        })
    }

    /// Runs until [`Reconciler::stop`]: a full pass at once and then on every interval, and a pass for each
    /// server that changes in the database or in the orchestrator.
    pub fn start(self: &Arc<Self>) {
        let this = self.clone();
        let (mut rows, mut world) = (self.servers.subscribe(), self.driver.events());
        tokio::spawn(async move {
            let mut resync = tokio::time::interval(this.config.resync_interval);
            resync.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            while !this.stopping.load(Ordering::Relaxed) {
                tokio::select! {
                    _ = resync.tick() => this.resync().await,
                    event = rows.recv() => match event {
                        Ok(event) => this.schedule(event.server_id()),
                        Err(RecvError::Lagged(_)) => this.resync().await,
                        Err(RecvError::Closed) => break,
                    },
                    event = world.recv() => match event {
                        Ok(observed) => this.schedule(&observed.id),
                        Err(RecvError::Lagged(_)) => this.resync().await,
                        Err(RecvError::Closed) => break,
                    },
                }
            }
        });
    }

    /// Stops starting passes and waits for those under way, so that nothing is started after this returns.
    pub async fn stop(&self) {
        self.stopping.store(true, Ordering::Relaxed);
        self.settled().await;
    }

    /// Returns once no pass is under way or asked for (timers set for later passes aside).
    pub async fn settled(&self) {
        while self.queue.lock().is_ok_and(|queue| !queue.is_empty()) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// A pass over every server with a row and every game server the orchestrator has, except those found in a
    /// steady state (see [`in_sync`]): one query and the driver's view, compared in memory.
    pub async fn resync(self: &Arc<Self>) {
        let rows = match self.servers.all_desired().await {
            Ok(rows) => rows,
            Err(error) => {
                tracing::warn!(%error, "resync could not list servers");
                return;
            }
        };
        let mut observed: HashMap<String, Observed> =
            self.driver.observe().await.into_iter().map(|o| (o.id.clone(), o)).collect();
        let mut due: Vec<String> = Vec::new();
        let mut with_rows = HashSet::new();
        for row in rows {
            if !in_sync(&row, observed.get(&row.id)) {
                due.push(row.id.clone());
            }
            observed.remove(&row.id);
            with_rows.insert(row.id);
        }
        // Running without a row.
        due.extend(observed.into_keys());
        match self.driver.stored().await {
            Ok(stored) => {
                let orphans: Vec<String> = stored.into_iter().filter(|id| !with_rows.contains(id)).collect();
                if let Ok(mut known) = self.orphans.lock() {
                    known.extend(orphans.iter().cloned());
                }
                due.extend(orphans);
            }
            Err(error) => tracing::warn!(%error, "resync could not list stored data"),
        }
        for id in due {
            self.schedule(&id);
        }
    }

    /// Asks for a pass over `id`: now, or right after the one under way.
    pub fn schedule(self: &Arc<Self>, id: &str) {
        if self.stopping.load(Ordering::Relaxed) {
            return;
        }
        let Ok(mut queue) = self.queue.lock() else { return };
        if let Some(again) = queue.get_mut(id) {
            *again = true;
            return;
        }
        queue.insert(id.to_owned(), false);
        let (this, id) = (self.clone(), id.to_owned());
        tokio::spawn(async move {
            loop {
                let Ok(_permit) = this.passes.acquire().await else { return };
                if let Err(error) = this.reconcile(&id).await {
                    tracing::warn!(server = %id, %error, "reconcile failed; the next pass retries");
                }
                let Ok(mut queue) = this.queue.lock() else { return };
                match queue.get_mut(&id) {
                    Some(again) if *again && !this.stopping.load(Ordering::Relaxed) => *again = false,
                    _ => {
                        queue.remove(&id);
                        return;
                    }
                }
            }
        });
    }

    fn schedule_after(self: &Arc<Self>, id: &str, delay: Duration) {
        let (this, id) = (self.clone(), id.to_owned());
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            this.schedule(&id);
        });
    }

    /// One pass over one server.
    async fn reconcile(self: &Arc<Self>, id: &str) -> Result<(), AppError> {
        let row = self.servers.desired(id).await?;
        let observed = self.driver.phase(id).await;
        let Some(row) = row else {
            self.forget(id);
            let stored_orphan = self.orphans.lock().is_ok_and(|mut orphans| orphans.remove(id));
            if observed.is_some() || stored_orphan {
                // Something runs that no row asks for: an orphan.
                tracing::warn!(server = %id, "removing a game server that has no row");
                self.driver.destroy(id).await.map_err(|e| crate::error::internal("removing an orphan", e))?;
            }
            return Ok(());
        };
        match row.status {
            ServerStatus::Pending | ServerStatus::Running | ServerStatus::Failed => {
                self.keep_running(row, observed).await
            }
            ServerStatus::Stopped | ServerStatus::Expired | ServerStatus::AwaitingPayment => {
                self.forget(id);
                if observed.is_some()
                    && let Err(error) = self.driver.stop(id).await
                {
                    self.servers.transition(id, row.status, row.status, Some(&error.to_string())).await?;
                    self.schedule_after(id, self.config.backoff);
                }
                Ok(())
            }
            ServerStatus::Deleted => match self.driver.destroy(id).await {
                Ok(()) => {
                    self.forget(id);
                    self.servers.forget(id).await
                }
                Err(error) => {
                    let message = format!("clean-up failed, retrying: {error}");
                    self.servers.transition(id, row.status, row.status, Some(&message)).await?;
                    self.schedule_after(id, self.retry_delay(id));
                    Ok(())
                }
            },
        }
    }

    /// A server that should run (pending, running, or failed and due for a retry).
    async fn keep_running(self: &Arc<Self>, row: Desired, observed: Option<Observed>) -> Result<(), AppError> {
        let id = row.id.as_str();
        self.remember(id, |memory| {
            if memory.generation != row.generation {
                *memory = Memory { generation: row.generation, ..Memory::default() };
            }
        });
        // What runs for an older generation is about to be replaced, so it counts as nothing.
        let current = observed.filter(|observed| observed.generation == row.generation).map(|observed| observed.phase);
        match current {
            Some(Phase::Ready { host, port }) => {
                self.remember(id, |memory| memory.starting_since = None);
                if self.servers.record_running(id, row.generation, &host, port).await? {
                    self.remember(id, |memory| memory.failures = 0);
                }
                return Ok(());
            }
            Some(Phase::Starting) => return self.starting(&row).await,
            // Exited by itself, and not yet counted: a crash.
            Some(Phase::Exited { reason })
                if row.status != ServerStatus::Failed && !self.remember(id, |memory| memory.restart_due) =>
            {
                return self.crashed(&row, &reason).await;
            }
            None if row.status == ServerStatus::Running => {
                // Running by the row, but nothing runs (Spawnpoint restarted, or someone removed it).
                let message = "the game server was gone; starting it again";
                self.servers.transition(id, row.status, ServerStatus::Pending, Some(message)).await?;
            }
            _ => {}
        }
        if let Some(wait) = self.remember(id, |memory| memory.not_before.map(|at| at - Instant::now().min(at)))
            && !wait.is_zero()
        {
            return Ok(()); // A timer set with the backoff brings the next attempt.
        }
        match self.run_game(&row).await {
            Ok(()) => {
                self.remember(id, |memory| {
                    memory.restart_due = false;
                    memory.not_before = None;
                    memory.starting_since = Some(Instant::now());
                });
                self.schedule_after(id, self.config.start_timeout);
                if row.status == ServerStatus::Failed {
                    let message = row.status_message.as_deref().map(|reason| format!("retrying after: {reason}"));
                    self.servers.transition(id, row.status, ServerStatus::Pending, message.as_deref()).await?;
                }
                Ok(())
            }
            Err(reason) => {
                tracing::warn!(server = %id, %reason, "could not start the game server");
                self.servers.transition(id, row.status, ServerStatus::Failed, Some(&reason)).await?;
                self.back_off_retry(id);
                Ok(())
            }
        }
    }

    /// The game is on its way up. One that takes longer than the start timeout (never scheduled, never says it
    /// is ready) is stopped and the server failed, to be retried with backoff like any failure.
    async fn starting(self: &Arc<Self>, row: &Desired) -> Result<(), AppError> {
        let since = self.remember(&row.id, |memory| *memory.starting_since.get_or_insert_with(Instant::now));
        if since.elapsed() < self.config.start_timeout {
            return Ok(());
        }
        let message = format!("did not become ready within {} s", self.config.start_timeout.as_secs_f32().ceil());
        tracing::warn!(server = %row.id, "{message}");
        self.driver.stop(&row.id).await.map_err(|e| crate::error::internal("stopping a stuck start", e))?;
        self.remember(&row.id, |memory| memory.starting_since = None);
        self.servers.transition(&row.id, row.status, ServerStatus::Failed, Some(&message)).await?;
        self.back_off_retry(&row.id);
        Ok(())
    }

    /// The game exited by itself: restart it after a backoff, or give up on a crash loop.
    async fn crashed(self: &Arc<Self>, row: &Desired, reason: &str) -> Result<(), AppError> {
        let now = Instant::now();
        let crashes = self.remember(&row.id, |memory| {
            memory.crashes.retain(|at| now.duration_since(*at) < CRASH_WINDOW);
            memory.crashes.push_back(now);
            memory.restart_due = true;
            memory.crashes.len()
        });
        tracing::warn!(server = %row.id, %reason, crashes, "game server crashed");
        if crashes >= CRASH_LIMIT {
            let message = format!(
                "crashed {crashes} times within {} s, so it is not restarted automatically; last: {reason}",
                CRASH_WINDOW.as_secs()
            );
            self.servers.transition(&row.id, row.status, ServerStatus::Failed, Some(&message)).await?;
            self.back_off_retry(&row.id);
            return Ok(());
        }
        let delay = doubled(self.config.backoff, crashes - 1, MAX_RESTART_DELAY);
        let message = format!("crashed ({reason}); restarting in {} s", delay.as_secs_f32().ceil());
        self.remember(&row.id, |memory| memory.not_before = Some(now + delay));
        self.servers.transition(&row.id, row.status, ServerStatus::Pending, Some(&message)).await?;
        self.schedule_after(&row.id, delay);
        Ok(())
    }

    /// Counts a failure and schedules the retry.
    fn back_off_retry(self: &Arc<Self>, id: &str) {
        let delay = self.retry_delay(id);
        self.remember(id, |memory| {
            memory.failures += 1;
            memory.crashes.clear();
            memory.restart_due = false;
            memory.not_before = Some(Instant::now() + delay);
        });
        self.schedule_after(id, delay);
    }

    fn retry_delay(&self, id: &str) -> Duration {
        let failures = self.remember(id, |memory| memory.failures);
        doubled(self.config.backoff * 15, failures as usize, MAX_RETRY_DELAY)
    }

    /// Asks the orchestrator to run the server's current generation, with a game port when it needs one.
    async fn run_game(&self, row: &Desired) -> Result<(), String> {
        let (game, plan) = self
            .catalog
            .plan(&row.game, &row.plan)
            .ok_or_else(|| format!("plan `{}` of game `{}` is no longer in the catalog", row.plan, row.game))?;
        let port = match self.driver.port_range() {
            None => None,
            Some(range) => {
                let (first, last) = (*range.start(), *range.end());
                let port = self.servers.allocate_port(&row.id, &self.config.host, range, port_is_free).await;
                let port = port.map_err(|error| error.to_string())?;
                Some(port.ok_or_else(|| format!("no free game port in {first}-{last}"))?)
            }
        };
        let spec = ServerSpec {
            id: row.id.clone(),
            user_id: row.user_id.clone(),
            game: game.clone(),
            plan: plan.clone(),
            port,
            generation: row.generation,
        };
        self.driver.ensure_running(&spec).await.map_err(|error| error.to_string())
    }

    fn remember<T>(&self, id: &str, f: impl FnOnce(&mut Memory) -> T) -> T {
        let mut memory = self.memory.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        f(memory.entry(id.to_owned()).or_default())
    }

    fn forget(&self, id: &str) {
        if let Ok(mut memory) = self.memory.lock() {
            memory.remove(id);
        }
    }
}

/// Whether a pass over this server would find nothing to do: running at the recorded address in the wanted
/// generation, or stopped with nothing running. Anything else gets a pass.
fn in_sync(row: &Desired, observed: Option<&Observed>) -> bool {
    match (row.status, observed.map(|o| (o.generation, &o.phase))) {
        (ServerStatus::Running, Some((generation, Phase::Ready { host, port }))) => {
            generation == row.generation && row.node_ip.as_deref() == Some(host.as_str()) && row.port == Some(*port)
        }
        (ServerStatus::Stopped | ServerStatus::Expired | ServerStatus::AwaitingPayment, None) => true,
        _ => false,
    }
}

/// `base`, doubled `times` times, at most `max`.
fn doubled(base: Duration, times: usize, max: Duration) -> Duration {
    base.saturating_mul(1 << times.min(16)).min(max)
}

/// Whether nothing else on this machine listens on `port` (a game given it could not start otherwise).
fn port_is_free(port: u16) -> bool {
    std::net::TcpListener::bind(("0.0.0.0", port)).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_steady_states_skip_a_resync_pass() {
        let row = |status, node_ip: Option<&str>, port| Desired {
            id: "s".into(),
            user_id: "u".into(),
            game: "demo".into(),
            plan: "tiny".into(),
            status,
            status_message: None,
            node_ip: node_ip.map(str::to_owned),
            port,
            generation: 2,
        };
        let ready = |generation, port| Observed {
            id: "s".into(),
            generation,
            phase: Phase::Ready { host: "10.0.0.1".into(), port },
        };
        let running = row(ServerStatus::Running, Some("10.0.0.1"), Some(7000));
        assert!(in_sync(&running, Some(&ready(2, 7000))));
        assert!(!in_sync(&running, Some(&ready(2, 7001))), "moved: the row must follow");
        assert!(!in_sync(&running, Some(&ready(1, 7000))), "an older generation is to be replaced");
        assert!(!in_sync(&running, None), "gone: to be started again");
        let starting = Observed { id: "s".into(), generation: 2, phase: Phase::Starting };
        assert!(!in_sync(&running, Some(&starting)));
        assert!(in_sync(&row(ServerStatus::Stopped, None, Some(7000)), None));
        assert!(!in_sync(&row(ServerStatus::Stopped, None, None), Some(&ready(2, 7000))), "to be stopped");
        for status in [ServerStatus::Pending, ServerStatus::Failed, ServerStatus::Deleted] {
            assert!(!in_sync(&row(status, Some("10.0.0.1"), Some(7000)), Some(&ready(2, 7000))), "{status:?}");
        }
    }

    #[test]
    fn backoff_doubles_up_to_its_ceiling() {
        let base = Duration::from_secs(2);
        let delays: Vec<u64> = (0..8).map(|n| doubled(base, n, MAX_RESTART_DELAY).as_secs()).collect();
        assert_eq!(delays, [2, 4, 8, 16, 32, 60, 60, 60]);
        assert_eq!(doubled(base, 1000, MAX_RETRY_DELAY), MAX_RETRY_DELAY);
    }
}
