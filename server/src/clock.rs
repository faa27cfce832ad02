//! The time that deadlines are judged by: when an unpaid or expired server is due for deletion.
//!
//! It is the system clock, plus an offset that tests move forward to see what happens days later without
//! waiting for it. Timestamps that only record when something happened use [`crate::db::now`] directly.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

/// Cheap to clone; clones share the offset.
#[derive(Debug, Clone, Default)]
pub struct Clock {
    offset: Arc<AtomicI64>,
}

impl Clock {
    /// Unix seconds.
    pub fn now(&self) -> i64 {
        crate::db::now() + self.offset.load(Ordering::Relaxed)
    }

    /// Moves this clock (and its clones) `by` into the future.
    pub fn advance(&self, by: Duration) {
        self.offset.fetch_add(i64::try_from(by.as_secs()).unwrap_or(i64::MAX), Ordering::Relaxed);
    }
}
