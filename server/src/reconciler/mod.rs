//! The reconciler: makes the game servers the orchestrator runs match the rows in the database.
//!
//! Shaped as a controller (kube-rs's controller-rs is the model): a [`queue`] of servers due for a pass, one
//! [`pass`] per server that reads its row and what the orchestrator observes, does the one thing that brings
//! them closer and says when to look again ([`Action`]), and an error policy that retries a failed pass with
//! backoff. Level-triggered and idempotent: a pass with nothing to do writes nothing. Passes are triggered by
//! row changes (user actions, and the reconciler's own writes), by orchestrator events (a game became ready, a
//! process exited) and by a full [`Reconciler::resync`] on an interval, the safety net for anything missed.
//!
//! Passes over one server never overlap, while different servers proceed independently: one game taking its
//! time to stop holds up nobody else. With a DNS provider, each pass also keeps the server's records leading to
//! where its game runs ([`dns`]).

mod dns;
pub mod guard;
mod memory;
mod pass;
mod queue;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use catalog::{Catalog, ServerId};
use tokio::sync::broadcast::error::RecvError;
use tokio::time::Instant;

use self::guard::DeletionGuard;
use self::memory::{DnsMemory, Memory, Notes, doubled};
use self::queue::{Claim, Timers, WorkQueue};
use crate::backups::store::BackupStore;
use crate::billing::Payments;
use crate::dns::Dns;
use crate::orchestrator::{Observed, Orchestrator};
use crate::servers::repo::ServerRepo;
use crate::subscriptions::Subscriptions;

/// Passes running at once: a resync over thousands of servers queues its passes instead of opening thousands of
/// database queries and API requests together.
const CONCURRENT_PASSES: usize = 32;
/// A pass that fails is retried after the backoff doubled per failure in a row, at most this.
const MAX_ERROR_DELAY: Duration = Duration::from_secs(5 * 60);

#[derive(Debug, Clone)]
pub struct ReconcilerConfig {
    /// `SPAWNPOINT_RESYNC_INTERVAL`: time between full passes (default 30 s). Driver events and user actions
    /// are handled at once; the pass is the safety net.
    pub resync_interval: Duration,
    /// `SPAWNPOINT_START_TIMEOUT`: how long a game may take to become ready (default 900 s: big games generate
    /// worlds on first start); past this, what was started is stopped and the server fails.
    pub start_timeout: Duration,
    /// `SPAWNPOINT_DNS_REPAIR_INTERVAL`: time between comparisons of the DNS zone with the rows (default 300 s;
    /// a listing of every record Spawnpoint owns, so less often than the resync: API requests are rate-limited).
    pub dns_repair_interval: Duration,
}

/// What a pass says about the next one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Nothing is due: the next row change, orchestrator event or resync brings the next pass.
    Await,
    /// Look again after this long (a backoff, a start timeout), unless something brings a pass sooner.
    RequeueAfter(Duration),
}

impl Action {
    /// The sooner of two.
    fn min(self, other: Action) -> Action {
        match (self, other) {
            (Action::RequeueAfter(a), Action::RequeueAfter(b)) => Action::RequeueAfter(a.min(b)),
            (Action::RequeueAfter(a), Action::Await) | (Action::Await, Action::RequeueAfter(a)) => {
                Action::RequeueAfter(a)
            }
            (Action::Await, Action::Await) => Action::Await,
        }
    }
}

/// Why a pass failed (the servers' own error: the rows or the orchestrator); the error policy retries it.
pub use crate::servers::Error;

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The rows and the outside systems a reconciler works with.
pub struct Clients {
    pub repo: Arc<ServerRepo>,
    pub subscriptions: Arc<Subscriptions>,
    pub catalog: Arc<Catalog>,
    pub driver: Arc<dyn Orchestrator>,
    /// Who publishes servers' DNS names, if anyone.
    pub dns: Option<Arc<dyn Dns>>,
    /// The brake on deleting many orphans at once, which `/ready` reports.
    pub guard: Arc<DeletionGuard>,
    /// Where servers' backups are, removed with them.
    pub backups: Arc<BackupStore>,
}

/// What the reconciler works with: the rows, the outside systems and its memory of each server.
pub struct Reconciler {
    repo: Arc<ServerRepo>,
    subscriptions: Arc<Subscriptions>,
    catalog: Arc<Catalog>,
    driver: Arc<dyn Orchestrator>,
    /// Who publishes servers' DNS names, if anyone.
    dns: Option<Arc<dyn Dns>>,
    payments: Arc<dyn Payments>,
    backups: Arc<BackupStore>,
    config: ReconcilerConfig,
    /// The first wait before restarting a crashed game; retries of failed servers start at 15 times this.
    /// Both double with each further failure.
    backoff: Duration,
    queue: WorkQueue,
    /// The queue's delays, until [`Reconciler::start`] runs them.
    timers: Mutex<Option<Timers>>,
    passes: tokio::sync::Semaphore,
    memory: Notes<Memory>,
    dns_memory: Notes<DnsMemory>,
    /// Game servers and stored data without a row, found by the last resync and let through by the guard: the
    /// only ones a pass destroys.
    orphans: Mutex<HashSet<ServerId>>,
    guard: Arc<DeletionGuard>,
    /// When the zone was last compared with the rows.
    dns_compared: Mutex<Option<Instant>>,
    stopping: AtomicBool,
}

impl Reconciler {
    /// A reconciler over `clients`; `backoff` as in [`Reconciler`]'s field.
    pub fn new(clients: Clients, config: ReconcilerConfig, backoff: Duration) -> Arc<Self> {
        let Clients { repo, subscriptions, catalog, driver, dns, guard, backups } = clients;
        let (queue, timers) = WorkQueue::new();
        let payments = subscriptions.payments().clone();
        Arc::new(Self {
            repo,
            subscriptions,
            catalog,
            driver,
            dns,
            payments,
            backups,
            config,
            backoff,
            queue,
            timers: Mutex::new(Some(timers)),
            passes: tokio::sync::Semaphore::new(CONCURRENT_PASSES),
            memory: Notes::default(),
            dns_memory: Notes::default(),
            orphans: Mutex::default(),
            guard,
            dns_compared: Mutex::default(),
            stopping: AtomicBool::new(false),
        })
    }

    /// Runs until [`Reconciler::stop`]: a full pass at once and then on every interval, and a pass for each
    /// server that changes in the database or in the orchestrator, or whose delay is over.
    pub fn start(self: &Arc<Self>) {
        if let Some(timers) = self.timers.lock().unwrap_or_else(PoisonError::into_inner).take() {
            let this = Arc::downgrade(self);
            tokio::spawn(timers.run(move |id| {
                if let Some(this) = this.upgrade() {
                    this.schedule(&id);
                }
            }));
        }
        let this = self.clone();
        let (mut rows, mut world) = (self.repo.events().subscribe(), self.driver.events());
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

    /// Returns once no pass is under way or asked for (delayed passes aside).
    pub async fn settled(&self) {
        self.queue.settled().await;
    }

    /// A full pass that starts now, and every server pass it asks for, finished: what a test waits for before it
    /// asserts that the reconciler left something alone.
    pub async fn reconciled(self: &Arc<Self>) {
        // The zone too: a comparison is due however recently the last was made.
        *self.dns_compared.lock().unwrap_or_else(PoisonError::into_inner) = None;
        self.resync().await;
        self.settled().await;
    }

    /// A pass over every server with a row and every game server the orchestrator has, except those found in a
    /// steady state (see [`pass::in_sync`]): one query and the driver's view, compared in memory. With DNS, the
    /// records Spawnpoint owns are listed too: a server whose records differ from its row gets a thorough pass,
    /// and records of servers that no longer exist are deleted.
    pub async fn resync(self: &Arc<Self>) {
        // Listed before the rows are read: records are only made for a row that exists, so a record found
        // without a row belongs to a server that was deleted.
        let owned = match &self.dns {
            Some(dns) if self.dns_comparison_due() => match dns.owned().await {
                Ok(owned) => Some(owned),
                Err(error) => {
                    tracing::warn!(error = %crate::error::chain(&error), "resync could not list the DNS records");
                    None
                }
            },
            _ => None,
        };
        let rows = match self.repo.list(None).await {
            Ok(rows) => rows,
            Err(error) => {
                tracing::warn!(%error, "resync could not list servers");
                return;
            }
        };
        let mut observed: HashMap<ServerId, Observed> =
            self.driver.observe().await.into_iter().map(|o| (o.id.clone(), o)).collect();
        let mut due: Vec<ServerId> = Vec::new();
        if let Some(owned) = owned {
            due.extend(self.compare_dns(&rows, owned).await);
        }
        let mut with_rows = HashSet::new();
        let seen_ids: HashSet<ServerId> = observed.keys().cloned().collect();
        for row in rows {
            let seen = observed.remove(&row.id);
            if !pass::in_sync(&row, seen.as_ref(), self.dns.is_some()) || self.subscriptions.overdue(&row) {
                due.push(row.id.clone());
            }
            with_rows.insert(row.id);
        }
        // Running without a row, or stored without one: orphans, collected unless there are too many at once.
        let mut existing: HashSet<ServerId> = with_rows.iter().filter(|id| seen_ids.contains(*id)).cloned().collect();
        let mut orphans: HashSet<ServerId> = observed.into_keys().collect();
        match self.driver.stored().await {
            Ok(stored) => {
                existing.extend(stored.iter().filter(|id| with_rows.contains(*id)).cloned());
                orphans.extend(stored.into_iter().filter(|id| !with_rows.contains(id)));
            }
            Err(error) => tracing::warn!(error = %crate::error::chain(&error), "resync could not list stored data"),
        }
        let (found, everything) = (orphans.len(), orphans.len() + existing.len());
        if self.may_collect("game servers", found, everything).await {
            self.orphans.lock().unwrap_or_else(PoisonError::into_inner).extend(orphans.iter().cloned());
            due.extend(orphans);
        }
        for id in due {
            self.schedule(&id);
        }
    }

    /// Whether `orphans` of `existing` `what`s may be deleted now ([`guard`]); an operator's release
    /// (`spawnpoint orphans release`) is only looked up when it is needed.
    async fn may_collect(&self, what: &'static str, orphans: usize, existing: usize) -> bool {
        let released = guard::too_many(orphans, existing)
            && match self.repo.db().collection_released().await {
                Ok(released) => released,
                Err(error) => {
                    tracing::warn!(%error, "cannot read whether orphan collection is released; holding");
                    false
                }
            };
        self.guard.allow(what, orphans, existing, released)
    }

    /// Whether the zone is due to be compared with the rows; if so, the comparison counts as made now.
    fn dns_comparison_due(&self) -> bool {
        let mut last = self.dns_compared.lock().unwrap_or_else(PoisonError::into_inner);
        let due = last.is_none_or(|at| at.elapsed() >= self.config.dns_repair_interval);
        if due {
            *last = Some(Instant::now());
        }
        due
    }

    /// Asks for a pass over `id`: now, or right after the one under way.
    pub fn schedule(self: &Arc<Self>, id: &ServerId) {
        if self.stopping.load(Ordering::Relaxed) || self.queue.claim(id) == Claim::Queued {
            return;
        }
        let (this, id) = (self.clone(), id.clone());
        tokio::spawn(async move {
            // A pass that panics still ends, so that the server's later passes are not taken for reruns of it.
            let guard = Unfinished { queue: &this.queue, id: &id };
            loop {
                let Ok(permit) = this.passes.acquire().await else { return };
                let action = match this.reconcile(&id).await {
                    Ok(action) => {
                        this.memory.with_known(&id, |memory| memory.errors = 0);
                        action
                    }
                    Err(error) => this.error_policy(&id, &error),
                };
                drop(permit);
                if let Action::RequeueAfter(delay) = action {
                    this.queue.after(&id, delay);
                }
                if !this.queue.finish(&id, !this.stopping.load(Ordering::Relaxed)) {
                    std::mem::forget(guard);
                    return;
                }
            }
        });
    }

    /// A failed pass is logged with its causes and retried after a backoff that doubles while it keeps failing.
    fn error_policy(&self, id: &ServerId, error: &Error) -> Action {
        let errors = self.memory.with(id, |memory| {
            memory.errors += 1;
            memory.errors
        });
        let delay = doubled(self.backoff, errors as usize - 1, MAX_ERROR_DELAY);
        tracing::warn!(server = %id, error = %crate::error::chain(error), errors, ?delay, "reconcile failed; retrying");
        Action::RequeueAfter(delay)
    }

    /// Forgets everything about a server that is gone.
    fn forget(&self, id: &ServerId) {
        self.memory.forget(id);
        self.dns_memory.forget(id);
        self.queue.cancel(id);
    }
}

/// Ends a server's pass in the work queue if the task running it stops without doing so (a panic).
struct Unfinished<'a> {
    queue: &'a WorkQueue,
    id: &'a ServerId,
}

impl Drop for Unfinished<'_> {
    fn drop(&mut self) {
        self.queue.finish(self.id, false);
    }
}
