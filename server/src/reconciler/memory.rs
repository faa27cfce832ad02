//! What the reconciler remembers about each server between passes. It only tunes timing (crash history,
//! backoff): after a restart of Spawnpoint every server simply gets a fresh pass.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use catalog::ServerId;
use tokio::time::Instant;

/// What the reconciler remembers about one server's game between passes, for one generation of it (a user's
/// start or restart begins a new generation, and with it a clean slate).
#[derive(Debug, Default)]
pub struct Memory {
    pub generation: i64,
    /// When the game crashed recently.
    pub crashes: VecDeque<Instant>,
    /// Failures (crash loops, errors) since it last ran.
    pub failures: u32,
    /// No new attempt before this.
    pub not_before: Option<Instant>,
    /// A crash has been counted and its restart is waiting for its backoff.
    pub restart_due: bool,
    /// When the game was last seen starting, and not yet ready since.
    pub starting_since: Option<Instant>,
    /// Passes in a row that ended in an error (the error policy's backoff).
    pub errors: u32,
}

impl Memory {
    /// How long until the next attempt may be made; zero when it may be made now.
    pub fn wait(&self) -> Duration {
        self.not_before.map_or(Duration::ZERO, |at| at.saturating_duration_since(Instant::now()))
    }
}

/// What the reconciler remembers about one server's DNS records between passes.
#[derive(Debug, Default)]
pub struct DnsMemory {
    /// The zone does not hold exactly the records the row says (drift, or a publish cut short): the next
    /// publish looks up what is there instead of trusting the stored ids.
    pub suspect: bool,
    /// Failed publishes in a row.
    pub failures: u32,
    /// No new attempt before this.
    pub not_before: Option<Instant>,
}

/// Notes about each server, kept between passes.
pub struct Notes<T>(Mutex<HashMap<ServerId, T>>);

impl<T: Default> Notes<T> {
    /// Runs `f` on the server's notes (fresh ones if it has none). A panic elsewhere while the lock was held
    /// cannot leave a note half-written (each `f` is a few field updates), so a poisoned lock is used as is.
    pub fn with<R>(&self, id: &ServerId, f: impl FnOnce(&mut T) -> R) -> R {
        let mut notes = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        f(notes.entry(id.clone()).or_default())
    }

    /// Runs `f` on the server's notes if it has any (so a server that is gone leaves none behind).
    pub fn with_known(&self, id: &ServerId, f: impl FnOnce(&mut T)) {
        if let Some(notes) = self.0.lock().unwrap_or_else(PoisonError::into_inner).get_mut(id) {
            f(notes);
        }
    }

    pub fn forget(&self, id: &ServerId) {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).remove(id);
    }
}

impl<T> Default for Notes<T> {
    fn default() -> Self {
        Self(Mutex::default())
    }
}

/// `base`, doubled `times` times, at most `max`.
pub fn doubled(base: Duration, times: usize, max: Duration) -> Duration {
    base.saturating_mul(1 << times.min(16)).min(max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_ceiling() {
        let base = Duration::from_secs(2);
        let max = Duration::from_secs(60);
        let delays: Vec<u64> = (0..8).map(|n| doubled(base, n, max).as_secs()).collect();
        assert_eq!(delays, [2, 4, 8, 16, 32, 60, 60, 60]);
        assert_eq!(doubled(base, 1000, Duration::from_secs(600)), Duration::from_secs(600));
    }
}
