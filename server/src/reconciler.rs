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
//! With a DNS provider, each pass also keeps the server's records leading to where its game runs (a failure
//! there never holds the game up: it is shown in the status message and retried), a deleted server's records
//! go before its row, and the resync compares the zone's records that Spawnpoint owns with the rows.
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

use crate::billing::Billing;
use crate::dns::{Dns, OwnedRecord, RecordIds, ServerRecords};
use crate::orchestrator::{Observed, Orchestrator, Phase, ServerSpec};
use crate::servers::{DNS_NOT_UPDATED, Desired, ServerService};

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
    /// Time between comparisons of the DNS zone with the rows (a listing of every record Spawnpoint owns, so
    /// less often than the resync: API requests are rate-limited).
    pub dns_repair_interval: Duration,
    /// The host players are given on the single box, where Spawnpoint chooses ports itself.
    pub host: String,
}

pub struct Reconciler {
    servers: Arc<ServerService>,
    catalog: Arc<Catalog>,
    driver: Arc<dyn Orchestrator>,
    /// Who publishes servers' DNS names, if anyone.
    dns: Option<Arc<dyn Dns>>,
    /// Where servers' subscriptions are, with billing on.
    billing: Option<Arc<Billing>>,
    config: ReconcilerConfig,
    /// Servers with a pass under way, and whether another was asked for meanwhile.
    queue: Mutex<HashMap<String, bool>>,
    passes: tokio::sync::Semaphore,
    memory: Notes<Memory>,
    /// Stored data without a row, found by the last resync, to be destroyed.
    orphans: Mutex<HashSet<String>>,
    /// Servers' DNS upkeep: which need a thorough look, and the backoff of failing ones.
    dns_memory: Notes<DnsMemory>,
    /// When the zone was last compared with the rows.
    dns_compared: Mutex<Option<Instant>>,
    stopping: AtomicBool,
}

/// What the reconciler remembers about one server's DNS records between passes.
#[derive(Debug, Default)]
struct DnsMemory {
    /// The zone does not hold exactly the records the row says (drift, or a publish cut short): the next
    /// publish looks up what is there instead of trusting the stored ids.
    suspect: bool,
    /// Failed publishes in a row.
    failures: u32,
    /// No new attempt before this.
    not_before: Option<Instant>,
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
        dns: Option<Arc<dyn Dns>>,
        billing: Option<Arc<Billing>>,
        config: ReconcilerConfig,
    ) -> Arc<Self> {
        Arc::new(Self {
            servers,
            catalog,
            driver,
            dns,
            billing,
            config,
            queue: Mutex::default(),
            passes: tokio::sync::Semaphore::new(CONCURRENT_PASSES),
            memory: Notes::default(),
            orphans: Mutex::default(),
            dns_memory: Notes::default(),
            dns_compared: Mutex::default(),
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
    /// steady state (see [`in_sync`]): one query and the driver's view, compared in memory. With DNS, the
    /// records Spawnpoint owns are listed too: a server whose records differ from its row gets a thorough pass,
    /// and records of servers that no longer exist are deleted.
    pub async fn resync(self: &Arc<Self>) {
        // Listed before the rows are read: records are only made for a row that exists, so a record found
        // without a row belongs to a server that was deleted.
        let owned = match &self.dns {
            Some(dns) if self.dns_comparison_due() => match dns.owned().await {
                Ok(owned) => Some(owned),
                Err(error) => {
                    tracing::warn!(%error, "resync could not list the DNS records");
                    None
                }
            },
            _ => None,
        };
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
        if let Some(owned) = owned {
            due.extend(self.compare_dns(&rows, owned).await);
        }
        let mut with_rows = HashSet::new();
        for row in rows {
            if !in_sync(&row, observed.get(&row.id), self.dns.is_some()) || self.servers.overdue(&row) {
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

    /// Whether the zone is due to be compared with the rows; if so, the comparison counts as made now.
    fn dns_comparison_due(&self) -> bool {
        let Ok(mut last) = self.dns_compared.lock() else { return false };
        let due = last.is_none_or(|at| at.elapsed() >= self.config.dns_repair_interval);
        if due {
            *last = Some(Instant::now());
        }
        due
    }

    /// Compares the owned records in the zone with what the rows say was published. Returns the servers whose
    /// records differ (marked for a thorough pass); deletes the records of servers without a row.
    async fn compare_dns(&self, rows: &[Desired], owned: Vec<OwnedRecord>) -> Vec<String> {
        let mut found: HashMap<String, Vec<OwnedRecord>> = HashMap::new();
        for record in owned {
            found.entry(record.server_id.clone()).or_default().push(record);
        }
        let mut suspects = Vec::new();
        for row in rows {
            let theirs = found.remove(&row.id).unwrap_or_default();
            // A deleted server's pass removes its records.
            if row.status == ServerStatus::Deleted {
                continue;
            }
            let ours = match row.dns_published() {
                Some((ip, port)) => self.records(row, ip, port).map(|records| records.wanted()).unwrap_or_default(),
                None => Vec::new(),
            };
            let matches = theirs.len() == ours.len()
                && ours.iter().all(|wanted| {
                    theirs.iter().any(|there| {
                        there.record.as_ref().is_some_and(|record| record.same_as(wanted))
                            && row.dns_ids.get(wanted.slot()) == Some(there.id.as_str())
                    })
                });
            if !matches {
                tracing::info!(server = %row.id, "DNS records differ from what was published; repairing");
                self.dns_memory.with(&row.id, |memory| memory.suspect = true);
                suspects.push(row.id.clone());
            }
        }
        let Some(dns) = &self.dns else { return suspects };
        for (server, records) in found {
            for record in records {
                tracing::info!(%server, record = %record.id, "deleting a DNS record of a server that no longer exists");
                if let Err(error) = dns.delete(&record.id).await {
                    tracing::warn!(%server, %error, "could not delete a stray DNS record; the next resync retries");
                }
            }
        }
        suspects
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
            self.memory.forget(id);
            self.dns_memory.forget(id);
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
                self.keep_running(row, observed).await?;
                self.keep_dns(id).await
            }
            ServerStatus::Stopped | ServerStatus::Expired | ServerStatus::AwaitingPayment => {
                // Unpaid past its deadline: deleted, and the deletion's pass follows.
                if self.servers.delete_if_overdue(&row).await? {
                    return Ok(());
                }
                self.memory.forget(id);
                if observed.is_some()
                    && let Err(error) = self.driver.stop(id).await
                {
                    self.servers.transition(id, row.status, row.status, Some(&error.to_string())).await?;
                    self.schedule_after(id, self.config.backoff);
                }
                self.keep_dns(id).await
            }
            ServerStatus::Deleted => match self.clean_up(&row).await {
                Ok(()) => {
                    self.memory.forget(id);
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
        self.memory.with(id, |memory| {
            if memory.generation != row.generation {
                *memory = Memory { generation: row.generation, ..Memory::default() };
            }
        });
        // What runs for an older generation is about to be replaced, so it counts as nothing.
        let current = observed.filter(|observed| observed.generation == row.generation).map(|observed| observed.phase);
        match current {
            Some(Phase::Ready { host, port }) => {
                self.memory.with(id, |memory| memory.starting_since = None);
                if self.servers.record_running(id, row.generation, &host, port).await? {
                    self.memory.with(id, |memory| memory.failures = 0);
                }
                return Ok(());
            }
            Some(Phase::Starting) => return self.starting(&row).await,
            // Exited by itself, and not yet counted: a crash.
            Some(Phase::Exited { reason })
                if row.status != ServerStatus::Failed && !self.memory.with(id, |memory| memory.restart_due) =>
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
        if let Some(wait) = self.memory.with(id, |memory| memory.not_before.map(|at| at - Instant::now().min(at)))
            && !wait.is_zero()
        {
            return Ok(()); // A timer set with the backoff brings the next attempt.
        }
        match self.run_game(&row).await {
            Ok(()) => {
                self.memory.with(id, |memory| {
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
        let since = self.memory.with(&row.id, |memory| *memory.starting_since.get_or_insert_with(Instant::now));
        if since.elapsed() < self.config.start_timeout {
            return Ok(());
        }
        let message = format!("did not become ready within {} s", self.config.start_timeout.as_secs_f32().ceil());
        tracing::warn!(server = %row.id, "{message}");
        self.driver.stop(&row.id).await.map_err(|e| crate::error::internal("stopping a stuck start", e))?;
        self.memory.with(&row.id, |memory| memory.starting_since = None);
        self.servers.transition(&row.id, row.status, ServerStatus::Failed, Some(&message)).await?;
        self.back_off_retry(&row.id);
        Ok(())
    }

    /// The game exited by itself: restart it after a backoff, or give up on a crash loop.
    async fn crashed(self: &Arc<Self>, row: &Desired, reason: &str) -> Result<(), AppError> {
        let now = Instant::now();
        let crashes = self.memory.with(&row.id, |memory| {
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
        self.memory.with(&row.id, |memory| memory.not_before = Some(now + delay));
        self.servers.transition(&row.id, row.status, ServerStatus::Pending, Some(&message)).await?;
        self.schedule_after(&row.id, delay);
        Ok(())
    }

    /// Counts a failure and schedules the retry.
    fn back_off_retry(self: &Arc<Self>, id: &str) {
        let delay = self.retry_delay(id);
        self.memory.with(id, |memory| {
            memory.failures += 1;
            memory.crashes.clear();
            memory.restart_due = false;
            memory.not_before = Some(Instant::now() + delay);
        });
        self.schedule_after(id, delay);
    }

    fn retry_delay(&self, id: &str) -> Duration {
        let failures = self.memory.with(id, |memory| memory.failures);
        doubled(self.config.backoff * 15, failures as usize, MAX_RETRY_DELAY)
    }

    /// Everything of a deleted server but its row: first its subscription (so it is never billed again, even if
    /// the rest takes a while), then the game server and its data, then its DNS records.
    async fn clean_up(&self, row: &Desired) -> Result<(), String> {
        if !row.billing_settled && (row.subscription.is_some() || row.checkout_session.is_some()) {
            match &self.billing {
                Some(billing) => {
                    billing.settle(row).await.map_err(|error| format!("subscription not cancelled: {error}"))?;
                    self.servers.record_settled(&row.id).await.map_err(|error| error.to_string())?;
                }
                // Switched off since: nothing here can reach Stripe, and holding the deletion would not help.
                None => {
                    tracing::error!(server = %row.id, "billing is off; cancel this server's subscription at Stripe")
                }
            }
        }
        self.driver.destroy(&row.id).await.map_err(|error| error.to_string())?;
        if let Some(dns) = &self.dns {
            dns.remove(&row.id, &row.dns_ids).await.map_err(|error| format!("DNS records not removed: {error}"))?;
        }
        Ok(())
    }

    /// Keeps the server's DNS records leading to where its game runs (see [`Desired::dns_target`]). Reads the
    /// row afresh: the pass may have just recorded a new address. A failure is shown in the status message
    /// and retried with backoff; the game itself is never held up by it.
    async fn keep_dns(self: &Arc<Self>, id: &str) -> Result<(), AppError> {
        let Some(dns) = &self.dns else { return Ok(()) };
        let Some(row) = self.servers.desired(id).await? else { return Ok(()) };
        let suspect = self.dns_memory.with(id, |memory| memory.suspect);
        let target = row.dns_target();
        if row.status == ServerStatus::Deleted || (target == row.dns_published() && !suspect) {
            return Ok(());
        }
        if self.dns_memory.with(id, |memory| memory.not_before.is_some_and(|at| at > Instant::now())) {
            return Ok(()); // A timer set with the backoff brings the next attempt.
        }
        let published = match target {
            Some((ip, port)) => match self.records(&row, ip, port) {
                Ok(records) => {
                    // Trusting stored ids saves a lookup; without any, or when in doubt, look first.
                    let thorough = suspect || row.dns_ids == RecordIds::default();
                    dns.publish(&records, &row.dns_ids, thorough).await.map(|ids| (Some(records), ids))
                }
                Err(reason) => Err(crate::dns::DnsError(reason)),
            },
            None => dns.remove(id, &row.dns_ids).await.map(|()| (None, RecordIds::default())),
        };
        match published {
            Ok((records, ids)) => {
                self.dns_memory.forget(id);
                self.servers.record_dns(id, records.as_ref(), &ids).await?;
            }
            Err(error) => {
                let failures = self.dns_memory.with(id, |memory| {
                    memory.failures += 1;
                    memory.failures
                });
                let delay = doubled(self.config.backoff, failures as usize - 1, MAX_RETRY_DELAY);
                self.dns_memory.with(id, |memory| memory.not_before = Some(Instant::now() + delay));
                tracing::warn!(server = %id, %error, failures, "DNS records not updated");
                let message = format!("{DNS_NOT_UPDATED} {error}; retrying in {} s", delay.as_secs_f32().ceil());
                self.servers.transition(id, row.status, row.status, Some(&message)).await?;
                self.schedule_after(id, delay);
            }
        }
        Ok(())
    }

    /// The DNS records server `row` has when its game is at `ip:port`.
    fn records(&self, row: &Desired, ip: &str, port: u16) -> Result<ServerRecords, String> {
        let dns = self.dns.as_ref().ok_or("no DNS provider")?;
        let srv_prefix = self.catalog.game(&row.game).and_then(catalog::Game::srv_prefix);
        ServerRecords::new(&row.id, dns.hostname(&row.id), ip, port, srv_prefix)
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
}

/// Notes about each server, kept between passes.
struct Notes<T>(Mutex<HashMap<String, T>>);

impl<T: Default> Notes<T> {
    /// Runs `f` on the server's notes (fresh ones if it has none).
    fn with<R>(&self, id: &str, f: impl FnOnce(&mut T) -> R) -> R {
        let mut notes = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        f(notes.entry(id.to_owned()).or_default())
    }

    fn forget(&self, id: &str) {
        if let Ok(mut notes) = self.0.lock() {
            notes.remove(id);
        }
    }
}

impl<T> Default for Notes<T> {
    fn default() -> Self {
        Self(Mutex::default())
    }
}

/// Whether a pass over this server would find nothing to do: running at the recorded address in the wanted
/// generation (and with `dns`, its records leading there), or stopped with nothing running. Anything else gets
/// a pass.
fn in_sync(row: &Desired, observed: Option<&Observed>, dns: bool) -> bool {
    match (row.status, observed.map(|o| (o.generation, &o.phase))) {
        (ServerStatus::Running, Some((generation, Phase::Ready { host, port }))) => {
            generation == row.generation
                && row.node_ip.as_deref() == Some(host.as_str())
                && row.port == Some(*port)
                && (!dns || row.dns_published() == row.dns_target())
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
            dns_ip: None,
            dns_port: None,
            dns_ids: RecordIds::default(),
            delete_after: None,
            subscription: None,
            checkout_session: None,
            billing_settled: false,
        };
        let ready = |generation, port| Observed {
            id: "s".into(),
            generation,
            phase: Phase::Ready { host: "10.0.0.1".into(), port },
        };
        let in_sync = |row: &Desired, observed: Option<&Observed>| in_sync(row, observed, false);
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

        // With DNS, a running server is settled only once its records lead to where it runs.
        let with_dns = |row: &Desired| super::in_sync(row, Some(&ready(2, 7000)), true);
        assert!(!with_dns(&running), "never published");
        let published = |ip: &str, port| Desired { dns_ip: Some(ip.into()), dns_port: Some(port), ..running.clone() };
        assert!(with_dns(&published("10.0.0.1", 7000)));
        assert!(!with_dns(&published("10.0.0.9", 7000)), "the records lead to the old node");
        assert!(!with_dns(&published("10.0.0.1", 7009)), "the SRV record names the old port");
        let stopped =
            Desired { dns_ip: Some("10.0.0.9".into()), dns_port: Some(1), ..row(ServerStatus::Stopped, None, None) };
        assert!(super::in_sync(&stopped, None, true), "a stopped server keeps the records it has");
    }

    #[test]
    fn backoff_doubles_up_to_its_ceiling() {
        let base = Duration::from_secs(2);
        let delays: Vec<u64> = (0..8).map(|n| doubled(base, n, MAX_RESTART_DELAY).as_secs()).collect();
        assert_eq!(delays, [2, 4, 8, 16, 32, 60, 60, 60]);
        assert_eq!(doubled(base, 1000, MAX_RETRY_DELAY), MAX_RETRY_DELAY);
    }
}
