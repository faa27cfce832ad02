//! Brute-force protection for sign-in and sign-up: at most 10 attempts a minute per client address and,
//! for sign-in, per email (as Pterodactyl does), with the wait a refused client must observe.
//!
//! Built on `governor` (GCRA): a burst of 10, refilled one every 6 s, so a steady 10 a minute passes and the
//! 11th attempt in a burst is refused.

use std::hash::Hash;
use std::net::IpAddr;
use std::num::NonZeroU32;

use app::error::AppError;
use governor::clock::{Clock as _, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};

/// Attempts allowed per minute, per key.
pub const PER_MINUTE: NonZeroU32 = NonZeroU32::new(10).expect("non-zero");

/// Past this many remembered keys, keys whose budget has fully refilled are forgotten, so a flood of
/// distinct addresses or emails cannot grow memory without bound.
const PRUNE_ABOVE: usize = 10_000;

/// Separate budgets, so signing up does not use up an address's sign-in attempts or the other way round.
pub struct Limits {
    sign_in_by_ip: DefaultKeyedRateLimiter<IpAddr>,
    sign_in_by_email: DefaultKeyedRateLimiter<String>,
    sign_up_by_ip: DefaultKeyedRateLimiter<IpAddr>,
}

impl Default for Limits {
    fn default() -> Self {
        let quota = Quota::per_minute(PER_MINUTE);
        Self {
            sign_in_by_ip: DefaultKeyedRateLimiter::keyed(quota),
            sign_in_by_email: DefaultKeyedRateLimiter::keyed(quota),
            sign_up_by_ip: DefaultKeyedRateLimiter::keyed(quota),
        }
    }
}

impl Limits {
    /// Counts one sign-in attempt from `ip` for `email`; refuses once either is over its quota.
    pub fn sign_in(&self, ip: IpAddr, email: &str) -> Result<(), AppError> {
        check(&self.sign_in_by_ip, &ip)?;
        check(&self.sign_in_by_email, &email.to_owned())
    }

    /// Counts one sign-up attempt from `ip`.
    pub fn sign_up(&self, ip: IpAddr) -> Result<(), AppError> {
        check(&self.sign_up_by_ip, &ip)
    }
}

fn check<K: Hash + Eq + Clone>(limiter: &DefaultKeyedRateLimiter<K>, key: &K) -> Result<(), AppError> {
    if limiter.len() > PRUNE_ABOVE {
        limiter.retain_recent();
    }
    limiter.check_key(key).map_err(|not_until| {
        let wait = not_until.wait_time_from(DefaultClock::default().now());
        // Whole seconds, rounded up: a client that waits exactly this long is let in.
        AppError::RateLimited { retry_after: wait.as_secs() + u64::from(wait.subsec_nanos() > 0) }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_eleventh_attempt_in_a_minute_is_refused_with_a_wait() {
        let limits = Limits::default();
        let ip: IpAddr = [10, 0, 0, 1].into();
        for attempt in 1..=10 {
            assert_eq!(limits.sign_in(ip, &format!("user{attempt}@example.com")), Ok(()), "attempt {attempt}");
        }
        match limits.sign_in(ip, "new@example.com") {
            Err(AppError::RateLimited { retry_after }) => assert!((1..=6).contains(&retry_after), "{retry_after}"),
            other => panic!("expected a refusal, got {other:?}"),
        }
        assert_eq!(limits.sign_in([10, 0, 0, 2].into(), "new@example.com"), Ok(()), "other addresses are unaffected");
        assert_eq!(limits.sign_up(ip), Ok(()), "signing up has its own budget");
    }

    #[test]
    fn one_email_is_limited_across_addresses() {
        let limits = Limits::default();
        for n in 0..10u8 {
            assert_eq!(limits.sign_in([10, 0, 1, n].into(), "victim@example.com"), Ok(()));
        }
        assert!(limits.sign_in([10, 0, 2, 0].into(), "victim@example.com").is_err());
        assert_eq!(limits.sign_in([10, 0, 2, 1].into(), "other@example.com"), Ok(()));
    }
}
