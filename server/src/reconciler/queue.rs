//! The reconciler's work queue: which servers are due for a pass, now or after a delay.
//!
//! Passes over one server never overlap: asking for a pass while one is under way reruns it right afterwards.
//! Delays (backoff, start timeouts) sit in one [`DelayQueue`] owned by a timer task; asking again for the same
//! server replaces its delay, so a pass that chose a new wait cancels the old one instead of adding another
//! sleeping task. [`WorkQueue::settled`] wakes on a [`Notify`] when the last pass ends.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use catalog::ServerId;
use tokio::sync::{Notify, mpsc};
use tokio_util::time::{DelayQueue, delay_queue};

/// The longest delay kept.
const MAX_DELAY: Duration = Duration::from_secs(24 * 60 * 60);

/// What the timer task is asked to do.
enum Timer {
    /// A pass over the server after this long, replacing any delay it had.
    After(ServerId, Duration),
    /// The server is gone: no delayed pass.
    Cancel(ServerId),
}

/// A pass under way, and whether another was asked for meanwhile.
#[derive(Debug, Default)]
struct Running {
    again: bool,
}

pub struct WorkQueue {
    running: Mutex<HashMap<ServerId, Running>>,
    idle: Notify,
    timers: mpsc::UnboundedSender<Timer>,
}

/// The receiving end of [`WorkQueue`]'s delays, for the timer task ([`WorkQueue::run_timers`]).
pub struct Timers {
    commands: mpsc::UnboundedReceiver<Timer>,
}

/// What to do after asking for a pass.
#[derive(Debug, PartialEq, Eq)]
pub enum Claim {
    /// Start one now: nothing runs for this server.
    Start,
    /// One is under way and will run again.
    Queued,
}

impl WorkQueue {
    pub fn new() -> (Self, Timers) {
        let (timers, commands) = mpsc::unbounded_channel();
        (Self { running: Mutex::default(), idle: Notify::new(), timers }, Timers { commands })
    }

    /// A lock that a panic elsewhere cannot make unusable: the map stays consistent whatever panicked, because
    /// each change to it is a single insert or remove.
    fn running(&self) -> MutexGuard<'_, HashMap<ServerId, Running>> {
        self.running.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Asks for a pass over `id` now.
    pub fn claim(&self, id: &ServerId) -> Claim {
        let mut running = self.running();
        match running.get_mut(id) {
            Some(pass) => {
                pass.again = true;
                Claim::Queued
            }
            None => {
                running.insert(id.clone(), Running::default());
                Claim::Start
            }
        }
    }

    /// A pass over `id` ended: `true` when another is to run at once (asked for meanwhile, and `more` allows).
    pub fn finish(&self, id: &ServerId, more: bool) -> bool {
        let mut running = self.running();
        if let Some(pass) = running.get_mut(id)
            && pass.again
            && more
        {
            pass.again = false;
            return true;
        }
        running.remove(id);
        if running.is_empty() {
            self.idle.notify_waiters();
        }
        false
    }

    /// A pass over `id` after `delay` (at most a day: the resync looks more often anyway, and the timer wheel has
    /// a limit), replacing the delay it had.
    pub fn after(&self, id: &ServerId, delay: Duration) {
        let delay = delay.min(MAX_DELAY);
        // Closed only once the timer task has stopped, and then nothing is to run anyway.
        let _ = self.timers.send(Timer::After(id.clone(), delay));
    }

    /// No delayed pass over `id` any more.
    pub fn cancel(&self, id: &ServerId) {
        let _ = self.timers.send(Timer::Cancel(id.clone()));
    }

    /// Returns once no pass is under way or asked for (delayed passes aside).
    pub async fn settled(&self) {
        loop {
            let idle = self.idle.notified();
            tokio::pin!(idle);
            // Registered before looking, so an end of the last pass in between is not missed.
            idle.as_mut().enable();
            if self.running().is_empty() {
                return;
            }
            idle.await;
        }
    }
}

impl Timers {
    /// Runs the delays until the queue is dropped, calling `due` for each server whose delay is over.
    pub async fn run(mut self, due: impl Fn(ServerId)) {
        let mut delays: DelayQueue<ServerId> = DelayQueue::new();
        let mut keys: HashMap<ServerId, delay_queue::Key> = HashMap::new();
        loop {
            tokio::select! {
                command = self.commands.recv() => match command {
                    None => return,
                    Some(Timer::After(id, delay)) => match keys.get(&id) {
                        Some(key) => delays.reset(key, delay),
                        None => {
                            let key = delays.insert(id.clone(), delay);
                            keys.insert(id, key);
                        }
                    },
                    Some(Timer::Cancel(id)) => {
                        if let Some(key) = keys.remove(&id) {
                            delays.remove(&key);
                        }
                    }
                },
                Some(expired) = std::future::poll_fn(|cx| delays.poll_expired(cx)) => {
                    let id = expired.into_inner();
                    keys.remove(&id);
                    due(id);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_new_delay_replaces_the_old_one_and_a_cancelled_one_never_fires() {
        let (queue, timers) = WorkQueue::new();
        let (fired, mut due) = mpsc::unbounded_channel();
        tokio::spawn(timers.run(move |id| {
            let _ = fired.send((id, tokio::time::Instant::now()));
        }));
        let start = tokio::time::Instant::now();
        let (a, b) = (ServerId::from("a"), ServerId::from("b"));
        queue.after(&a, Duration::from_secs(60));
        queue.after(&a, Duration::from_secs(5));
        queue.after(&b, Duration::from_secs(10));
        queue.cancel(&b);
        let (id, at) = due.recv().await.expect("a fires");
        assert_eq!(id, a);
        assert_eq!(at - start, Duration::from_secs(5), "the newer delay replaced the older");
        // A marker due after both the replaced delay (60 s) and the cancelled one (10 s): it comes next.
        let marker = ServerId::from("marker");
        queue.after(&marker, Duration::from_secs(120));
        let (id, at) = due.recv().await.expect("the marker fires");
        assert_eq!(id, marker, "neither the replaced delay nor the cancelled one fired before it");
        assert_eq!(at - start, Duration::from_secs(125));
    }

    #[tokio::test]
    async fn passes_over_one_server_never_overlap_and_settled_waits_for_the_last() {
        let (queue, _timers) = WorkQueue::new();
        let queue = std::sync::Arc::new(queue);
        let id = ServerId::from("s");
        assert_eq!(queue.claim(&id), Claim::Start);
        assert_eq!(queue.claim(&id), Claim::Queued, "a trigger during a pass reruns it");
        assert!(queue.finish(&id, true), "so the pass runs again");
        let settled = tokio::spawn({
            let queue = queue.clone();
            async move { queue.settled().await }
        });
        tokio::task::yield_now().await;
        assert!(!settled.is_finished(), "a pass is still under way");
        assert!(!queue.finish(&id, true), "nothing more was asked for");
        tokio::time::timeout(Duration::from_secs(5), settled).await.expect("settled once idle").expect("joined");
    }
}
