//! One pass over one server: compare its row with what the orchestrator observes, do the one thing that brings
//! them closer, and say when to look again.

use std::collections::VecDeque;
use std::sync::{Arc, PoisonError};
use std::time::Duration;

use catalog::notice::{CleanupStep, StartFailure};
use catalog::{Notice, ServerId, ServerStatus};
use tokio::time::Instant;

use super::memory::{Memory, doubled};
use super::{Action, Reconciler, Result};
use crate::orchestrator::{Observed, Phase, ServerSpec};
use crate::servers::repo::ServerRow;

/// A game that crashes this often within [`CRASH_WINDOW`] is marked failed instead of restarted again.
const CRASH_LIMIT: usize = 5;
const CRASH_WINDOW: Duration = Duration::from_secs(60);
/// Backoff never grows past these.
const MAX_RESTART_DELAY: Duration = Duration::from_secs(60);
const MAX_RETRY_DELAY: Duration = Duration::from_secs(10 * 60);

/// A game server that could not be started: what its owner is told, and the outside system's words.
struct StartError {
    failure: StartFailure,
    detail: Option<String>,
}

impl Reconciler {
    /// One pass over one server.
    pub(super) async fn reconcile(self: &Arc<Self>, id: &ServerId) -> Result<Action> {
        let row = self.repo.get(id).await?;
        let observed = self.driver.phase(id).await;
        let Some(row) = row else {
            self.forget(id);
            // Something runs or is stored that no row asks for: an orphan, destroyed only once a resync has
            // counted it among the others and the guard let it through.
            let collected = self.orphans.lock().unwrap_or_else(PoisonError::into_inner).remove(id);
            if collected {
                tracing::warn!(server = %id, "removing a game server that has no row");
                self.driver.destroy(id).await?;
            }
            return Ok(Action::Await);
        };
        match row.status {
            ServerStatus::Pending | ServerStatus::Running | ServerStatus::Failed | ServerStatus::Installing => {
                let action = self.keep_running(row, observed).await?;
                Ok(action.min(self.keep_dns(id).await?))
            }
            // A failed install waits for its owner (start or reinstall); what is left of it is cleared away.
            ServerStatus::Stopped
            | ServerStatus::Expired
            | ServerStatus::AwaitingPayment
            | ServerStatus::InstallFailed => {
                // Unpaid past its deadline: deleted, and the deletion's pass follows.
                if self.subscriptions.delete_if_overdue(&row).await? {
                    return Ok(Action::Await);
                }
                self.memory.forget(id);
                let mut action = Action::Await;
                if observed.is_some()
                    && let Err(error) = self.driver.stop(id).await
                {
                    let detail = crate::error::chain(&error);
                    tracing::warn!(server = %id, error = %detail, "could not stop the game server");
                    self.repo.transition(id, row.status, row.status, Some(&Notice::StopFailed), Some(&detail)).await?;
                    action = Action::RequeueAfter(self.backoff);
                }
                Ok(action.min(self.keep_dns(id).await?))
            }
            ServerStatus::Deleted => match self.clean_up(&row).await {
                Ok(()) => {
                    self.forget(id);
                    self.repo.forget(id).await?;
                    Ok(Action::Await)
                }
                Err((step, detail)) => {
                    tracing::warn!(server = %id, %step, error = %detail, "clean-up failed; retrying");
                    let notice = Notice::CleanupFailed(step);
                    self.repo.transition(id, row.status, row.status, Some(&notice), Some(&detail)).await?;
                    Ok(Action::RequeueAfter(self.retry_delay(id)))
                }
            },
        }
    }

    /// A server that should run (pending, running, or failed and due for a retry).
    async fn keep_running(self: &Arc<Self>, row: ServerRow, observed: Option<Observed>) -> Result<Action> {
        let id = &row.id;
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
                if self.repo.record_running(id, row.generation, &host, port).await? {
                    self.memory.with(id, |memory| memory.failures = 0);
                }
                return Ok(Action::Await);
            }
            Some(Phase::Installing(progress)) => {
                // The start timeout counts from the end of the install, which may take long (SteamCMD).
                self.memory.with(id, |memory| memory.starting_since = None);
                self.repo.record_install(id, row.generation, &progress).await?;
                return Ok(Action::Await);
            }
            Some(Phase::InstallFailed { reason }) => {
                tracing::warn!(server = %id, %reason, "install failed");
                let notice = Notice::InstallFailed { reason };
                self.repo.transition(id, row.status, ServerStatus::InstallFailed, Some(&notice), None).await?;
                return Ok(Action::Await);
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
                self.repo.transition(id, row.status, ServerStatus::Pending, Some(&Notice::Vanished), None).await?;
            }
            _ => {}
        }
        let wait = self.memory.with(id, |memory| memory.wait());
        if !wait.is_zero() {
            return Ok(Action::RequeueAfter(wait));
        }
        match self.run_game(&row).await {
            Ok(()) => {
                self.memory.with(id, |memory| {
                    memory.restart_due = false;
                    memory.not_before = None;
                    memory.starting_since = Some(Instant::now());
                });
                if row.status == ServerStatus::Failed {
                    let notice = row.status_message.clone().map(|after| Notice::Retrying { after });
                    let detail = row.status_detail.as_deref();
                    self.repo.transition(id, row.status, ServerStatus::Pending, notice.as_ref(), detail).await?;
                }
                Ok(Action::RequeueAfter(self.config.start_timeout))
            }
            Err(error) => {
                tracing::warn!(server = %id, failure = %error.failure, detail = ?error.detail, "could not start the game server");
                let notice = Notice::StartFailed(error.failure);
                self.repo
                    .transition(id, row.status, ServerStatus::Failed, Some(&notice), error.detail.as_deref())
                    .await?;
                Ok(self.back_off_retry(id))
            }
        }
    }

    /// The game is on its way up. One that takes longer than the start timeout (never scheduled, never says it
    /// is ready) is stopped and the server failed, to be retried with backoff like any failure.
    async fn starting(self: &Arc<Self>, row: &ServerRow) -> Result<Action> {
        let since = self.memory.with(&row.id, |memory| *memory.starting_since.get_or_insert_with(Instant::now));
        let elapsed = since.elapsed();
        if elapsed < self.config.start_timeout {
            return Ok(Action::RequeueAfter(self.config.start_timeout - elapsed));
        }
        let notice = Notice::StartTimeout { secs: self.config.start_timeout.as_secs_f32().ceil() as u64 };
        tracing::warn!(server = %row.id, "{notice}");
        self.driver.stop(&row.id).await?;
        self.memory.with(&row.id, |memory| memory.starting_since = None);
        self.repo.transition(&row.id, row.status, ServerStatus::Failed, Some(&notice), None).await?;
        Ok(self.back_off_retry(&row.id))
    }

    /// The game exited by itself: restart it after a backoff, or give up on a crash loop.
    async fn crashed(self: &Arc<Self>, row: &ServerRow, exit: &str) -> Result<Action> {
        let now = Instant::now();
        let crashes = self.memory.with(&row.id, |memory| {
            memory.crashes.retain(|at| now.duration_since(*at) < CRASH_WINDOW);
            memory.crashes.push_back(now);
            memory.restart_due = true;
            memory.crashes.len()
        });
        tracing::warn!(server = %row.id, reason = %exit, crashes, "game server crashed");
        if crashes >= CRASH_LIMIT {
            let notice = Notice::CrashLoop { crashes, window_secs: CRASH_WINDOW.as_secs(), exit: exit.to_owned() };
            self.repo.transition(&row.id, row.status, ServerStatus::Failed, Some(&notice), None).await?;
            return Ok(self.back_off_retry(&row.id));
        }
        let delay = doubled(self.backoff, crashes - 1, MAX_RESTART_DELAY);
        let notice = Notice::Crashed { exit: exit.to_owned(), restart_in_secs: delay.as_secs_f32().ceil() as u64 };
        self.memory.with(&row.id, |memory| memory.not_before = Some(now + delay));
        self.repo.transition(&row.id, row.status, ServerStatus::Pending, Some(&notice), None).await?;
        Ok(Action::RequeueAfter(delay))
    }

    /// Counts a failure; the retry is due after the returned action's delay.
    fn back_off_retry(&self, id: &ServerId) -> Action {
        let delay = self.retry_delay(id);
        self.memory.with(id, |memory| {
            memory.failures += 1;
            memory.crashes = VecDeque::new();
            memory.restart_due = false;
            memory.not_before = Some(Instant::now() + delay);
        });
        Action::RequeueAfter(delay)
    }

    fn retry_delay(&self, id: &ServerId) -> Duration {
        let failures = self.memory.with(id, |memory| memory.failures);
        doubled(self.backoff * 15, failures as usize, MAX_RETRY_DELAY)
    }

    /// Everything of a deleted server but its row: first what it has at the payment provider (so it is never
    /// billed again, even if the rest takes a while), then the game server and its data, then its DNS records, then its backups.
    /// A failure names the step and carries the outside system's words.
    async fn clean_up(&self, row: &ServerRow) -> std::result::Result<(), (CleanupStep, String)> {
        let failed = |step| move |error: &dyn std::error::Error| (step, crate::error::chain(error));
        if let Some(open) = row.open_at_provider() {
            let subscription = failed(CleanupStep::Subscription);
            self.payments.settle(&open).await.map_err(|e| subscription(&e))?;
            self.repo.record_settled(&row.id).await.map_err(|e| subscription(&e))?;
        }
        self.driver.destroy(&row.id).await.map_err(|e| failed(CleanupStep::GameServer)(&e))?;
        if let Some(dns) = &self.dns {
            dns.remove(row.id.as_str(), &row.dns_ids).await.map_err(|e| failed(CleanupStep::Dns)(&e))?;
        }
        // Their rows go with the server's.
        self.backups.delete_all(row.id.as_str()).await.map_err(|e| failed(CleanupStep::Backups)(&e))?;
        Ok(())
    }

    /// Asks the orchestrator to run the server's current generation, with a game port when it needs one.
    async fn run_game(&self, row: &ServerRow) -> std::result::Result<(), StartError> {
        let plan_gone = || StartError {
            failure: StartFailure::PlanGone { game: row.game.clone(), plan: row.plan.clone() },
            detail: None,
        };
        let (game, plan) = self.catalog.plan(&row.game, &row.plan).ok_or_else(plan_gone)?;
        let spec = ServerSpec {
            id: row.id.clone(),
            user_id: row.user_id.clone(),
            game: game.clone(),
            plan: plan.clone(),
            generation: row.generation,
            variables: row.variables.clone(),
            eula_accepted: row.eula_accepted,
            install_generation: row.install_generation,
        };
        self.driver
            .ensure_running(&spec)
            .await
            .map_err(|error| StartError { failure: error.start_failure(), detail: Some(crate::error::chain(&error)) })
    }
}

/// Whether a pass over this server would find nothing to do: running at the recorded address in the wanted
/// generation (and with `dns`, its records leading there), or stopped with nothing running; and no DNS error
/// shown that a pass would clear. Anything else gets a pass.
pub(super) fn in_sync(row: &ServerRow, observed: Option<&Observed>, dns: bool) -> bool {
    if row.dns_error.is_some() {
        return false;
    }
    match (row.status, observed.map(|o| (o.generation, &o.phase))) {
        (ServerStatus::Running, Some((generation, Phase::Ready { host, port }))) => {
            generation == row.generation
                && row.node_ip.as_deref() == Some(host.as_str())
                && row.port == Some(*port)
                && (!dns || row.dns_published() == row.dns_target())
        }
        (
            ServerStatus::Stopped | ServerStatus::Expired | ServerStatus::AwaitingPayment | ServerStatus::InstallFailed,
            None,
        ) => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::RecordIds;

    fn row(status: ServerStatus, node_ip: Option<&str>, port: Option<u16>) -> ServerRow {
        ServerRow {
            id: "s".into(),
            user_id: "u".into(),
            name: "n".into(),
            game: "demo".into(),
            plan: "tiny".into(),
            status,
            status_message: None,
            status_detail: None,
            node_ip: node_ip.map(str::to_owned),
            port,
            generation: 2,
            dns_ip: None,
            dns_port: None,
            dns_address: None,
            dns_ids: RecordIds::default(),
            dns_error: None,
            dns_detail: None,
            delete_after: None,
            subscription: None,
            subscription_status: None,
            checkout_session: None,
            checkout_url: None,
            current_period_end: None,
            billing_settled: false,
            billing_event_at: None,
            price_mismatch: None,
            variables: Default::default(),
            eula_accepted: false,
            install_generation: 0,
            install: None,
            created_at: 0,
            version: 0,
        }
    }

    #[test]
    fn only_steady_states_skip_a_resync_pass() {
        let ready = |generation, port| Observed {
            id: "s".into(),
            generation,
            phase: Phase::Ready { host: "10.0.0.1".into(), port },
        };
        let in_sync = |row: &ServerRow, observed: Option<&Observed>| in_sync(row, observed, false);
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
        let with_dns = |row: &ServerRow| super::in_sync(row, Some(&ready(2, 7000)), true);
        assert!(!with_dns(&running), "never published");
        let published = |ip: &str, port| ServerRow { dns_ip: Some(ip.into()), dns_port: Some(port), ..running.clone() };
        assert!(with_dns(&published("10.0.0.1", 7000)));
        assert!(!with_dns(&published("10.0.0.9", 7000)), "the records lead to the old node");
        assert!(!with_dns(&published("10.0.0.1", 7009)), "the SRV record names the old port");
        let stopped =
            ServerRow { dns_ip: Some("10.0.0.9".into()), dns_port: Some(1), ..row(ServerStatus::Stopped, None, None) };
        assert!(super::in_sync(&stopped, None, true), "a stopped server keeps the records it has");
        let told = ServerRow { dns_error: Some("DNS not updated".into()), ..stopped };
        assert!(!super::in_sync(&told, None, true), "a DNS error shown gets a pass, which clears it once over");
    }
}
