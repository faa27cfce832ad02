//! The brake on collecting orphans. A game server (or DNS record) without a row is normally a leftover of a
//! deleted server and is removed. But a database that is wrong — a typo in `DATABASE_URL`, an older dump
//! restored, an empty one — makes *every* customer's world look like a leftover. So when more than a small
//! share of what exists would go at once, nothing goes: the reconciler logs an error, `/ready` says so, and the
//! deletion waits until an operator who has checked the database runs `spawnpoint orphans release`.
//!
//! `/ready` then answers 503 on purpose, which takes the panel out of its Service: a panel on the wrong database
//! would show customers none of their servers and take new ones into a database about to be replaced.

use std::sync::{Mutex, PoisonError};

use serde::Serialize;

/// Orphans up to this many are always collected (a deleted server leaves one GameServer, claim or record set).
pub const ALWAYS_ALLOWED: usize = 2;
/// Beyond [`ALWAYS_ALLOWED`], orphans may be at most this share of what exists, in percent.
pub const MAX_SHARE_PERCENT: usize = 10;

/// Whether deleting `orphans` of `existing` things at once is more than the brake allows.
pub fn too_many(orphans: usize, existing: usize) -> bool {
    orphans > ALWAYS_ALLOWED && orphans * 100 > existing * MAX_SHARE_PERCENT
}

/// A deletion being held back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Held {
    /// `game servers` or `DNS records`.
    pub what: &'static str,
    pub orphans: usize,
    pub existing: usize,
}

impl std::fmt::Display for Held {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "refusing to delete {} of {} {} that have no row in the database: if the database is the right one, \
             run `spawnpoint orphans release`",
            self.orphans, self.existing, self.what
        )
    }
}

/// What is held back now, shared with `/ready`.
#[derive(Debug, Default)]
pub struct DeletionGuard {
    held: Mutex<Vec<Held>>,
}

impl DeletionGuard {
    /// Decides on deleting `orphans` of `existing` `what`s: allowed when few enough or `released` by an
    /// operator; otherwise held (and said so). Each decision replaces the last one for `what`.
    pub fn allow(&self, what: &'static str, orphans: usize, existing: usize, released: bool) -> bool {
        let hold = too_many(orphans, existing) && !released;
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        held.retain(|h| h.what != what);
        if hold {
            let entry = Held { what, orphans, existing };
            tracing::error!(what, orphans, existing, "{entry}");
            held.push(entry);
        }
        !hold
    }

    /// Every deletion held back now.
    pub fn held(&self) -> Vec<Held> {
        self.held.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_few_orphans_go_a_mass_of_them_waits_for_the_operator() {
        assert!(!too_many(2, 2), "a deleted server's leftovers");
        assert!(!too_many(10, 100));
        assert!(too_many(11, 100));
        assert!(too_many(50, 50), "an empty database");
        let guard = DeletionGuard::default();
        assert!(!guard.allow("game servers", 50, 50, false));
        assert_eq!(guard.held(), vec![Held { what: "game servers", orphans: 50, existing: 50 }]);
        assert!(guard.held()[0].to_string().contains("spawnpoint orphans release"));
        assert!(guard.allow("game servers", 50, 50, true), "released by an operator");
        assert_eq!(guard.held(), vec![]);
    }
}
