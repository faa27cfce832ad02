//! Brute-force protection for sign-in and sign-up.
//!
//! - Per client network (an IPv4 address, or an IPv6 /64, which one subscriber usually holds whole): at most
//!   10 attempts a minute, separately for sign-in and sign-up (governor's GCRA: a burst of 10, one more every
//!   6 s).
//! - For the whole process: a budget of sign-ins and sign-ups together ([`GLOBAL_PER_SECOND`]), so many
//!   networks together cannot keep the password hasher busy. While a flood that large lasts it refuses
//!   everyone, the owner too: the last line of defence keeps the process up rather than letting it fall over.
//! - Per email: only *failures* count, and only against networks that have failed before. A correct password
//!   from a network with no recent failure is never held off by the email's count, so nobody can lock an
//!   owner out by guessing
//!   at their email from elsewhere; a guesser, having failed once, is held to the email's failure budget from
//!   every network it has used. That costs a spread-out guesser one guess per fresh network (bounded by the
//!   global budget) and needs no captcha, which a game panel's API clients could not solve.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::Duration;

use app::error::AppError;
use governor::clock::{Clock as _, DefaultClock};
use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota};
use tokio::time::Instant;

/// Attempts allowed per minute, per client network.
pub const PER_MINUTE: NonZeroU32 = NonZeroU32::new(10).expect("non-zero");
/// Sign-ins per second for the whole process (and the burst it may take at once): well above what people
/// signing in produce, well below what keeps every core hashing.
pub const GLOBAL_PER_SECOND: NonZeroU32 = NonZeroU32::new(20).expect("non-zero");
/// Failed sign-ins per email per [`FAILURE_WINDOW`] before networks that have failed are held off it.
pub const FAILURES_PER_EMAIL: u32 = 10;
/// How long a failure is remembered, for its email and for the network it came from.
pub const FAILURE_WINDOW: Duration = Duration::from_secs(15 * 60);

/// Past this many remembered keys, keys whose budget has fully refilled are forgotten, so a flood of
/// distinct addresses or emails cannot grow memory without bound.
const PRUNE_ABOVE: usize = 10_000;

/// Where an attempt comes from, for limits: an IPv4 address, or the /64 an IPv6 address is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Network(u128);

impl From<IpAddr> for Network {
    fn from(ip: IpAddr) -> Self {
        match ip.to_canonical() {
            IpAddr::V4(v4) => Self(u128::from(v4.to_bits())),
            // Bit 63 (in the host half, which a /64 leaves zero) marks IPv6 keys, so no /64 collides with an
            // IPv4 address.
            IpAddr::V6(v6) => Self((v6.to_bits() >> 64 << 64) | 1 << 63),
        }
    }
}

/// Separate budgets, so signing up does not use up a network's sign-in attempts or the other way round.
pub struct Limits {
    sign_in_by_network: DefaultKeyedRateLimiter<Network>,
    sign_up_by_network: DefaultKeyedRateLimiter<Network>,
    overall: DefaultDirectRateLimiter,
    failures: Mutex<Failures>,
}

#[derive(Default)]
struct Failures {
    /// Per email: when its current window began and how many failures it has seen since.
    by_email: HashMap<String, (Instant, u32)>,
    /// Per network: its last failure.
    by_network: HashMap<Network, Instant>,
}

impl Default for Limits {
    fn default() -> Self {
        Self::new(GLOBAL_PER_SECOND)
    }
}

impl Limits {
    /// The limits, with `overall` sign-ins a second for the whole process.
    pub fn new(overall: NonZeroU32) -> Self {
        let per_network = Quota::per_minute(PER_MINUTE);
        Self {
            sign_in_by_network: DefaultKeyedRateLimiter::keyed(per_network),
            sign_up_by_network: DefaultKeyedRateLimiter::keyed(per_network),
            overall: DefaultDirectRateLimiter::direct(Quota::per_second(overall)),
            failures: Mutex::default(),
        }
    }

    /// Counts one sign-in attempt from `ip` for `email`; refuses it when the network or the process is over
    /// its budget, or when this network has failed before and the email has had too many failures.
    pub fn sign_in(&self, ip: IpAddr, email: &str) -> Result<(), AppError> {
        let network = Network::from(ip);
        check(&self.sign_in_by_network, &network)?;
        if let Some(retry_after) = self.locked_for(network, email, Instant::now()) {
            return Err(AppError::RateLimited { retry_after });
        }
        self.take_overall()
    }

    /// Records a failed sign-in from `ip` for `email`.
    pub fn failed(&self, ip: IpAddr, email: &str) {
        let now = Instant::now();
        let mut failures = self.failures.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if failures.by_email.len() > PRUNE_ABOVE || failures.by_network.len() > PRUNE_ABOVE {
            failures.by_email.retain(|_, (since, _)| now.duration_since(*since) < FAILURE_WINDOW);
            failures.by_network.retain(|_, last| now.duration_since(*last) < FAILURE_WINDOW);
        }
        failures.by_network.insert(Network::from(ip), now);
        let window = failures.by_email.entry(email.to_owned()).or_insert((now, 0));
        if now.duration_since(window.0) >= FAILURE_WINDOW {
            *window = (now, 0);
        }
        window.1 += 1;
    }

    /// Seconds `network` must wait before trying `email` again, if it is held off it.
    fn locked_for(&self, network: Network, email: &str, now: Instant) -> Option<u64> {
        let failures = self.failures.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let failed_before = failures.by_network.get(&network).is_some_and(|&last| now - last < FAILURE_WINDOW);
        let &(since, count) = failures.by_email.get(email)?;
        let ends = since + FAILURE_WINDOW;
        (failed_before && count >= FAILURES_PER_EMAIL && now < ends).then(|| whole_seconds(ends - now))
    }

    /// Counts one sign-up attempt from `ip` (a sign-up hashes a password too, so it also takes from the
    /// process's budget).
    pub fn sign_up(&self, ip: IpAddr) -> Result<(), AppError> {
        check(&self.sign_up_by_network, &Network::from(ip))?;
        self.take_overall()
    }

    fn take_overall(&self) -> Result<(), AppError> {
        let now = DefaultClock::default().now();
        self.overall.check().map_err(|not_until| refusal(not_until.wait_time_from(now)))
    }
}

fn check<K: Hash + Eq + Clone>(limiter: &DefaultKeyedRateLimiter<K>, key: &K) -> Result<(), AppError> {
    if limiter.len() > PRUNE_ABOVE {
        limiter.retain_recent();
    }
    limiter.check_key(key).map_err(|not_until| refusal(not_until.wait_time_from(DefaultClock::default().now())))
}

fn refusal(wait: Duration) -> AppError {
    AppError::RateLimited { retry_after: whole_seconds(wait).max(1) }
}

/// Whole seconds, rounded up: a client that waits exactly this long is let in.
fn whole_seconds(wait: Duration) -> u64 {
    wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
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
    fn an_ipv6_subscriber_s_whole_64_shares_one_budget() {
        let limits = Limits::default();
        for n in 0..10u16 {
            let ip = IpAddr::from([0x2001, 0xdb8, 0, 7, n, n, n, n]);
            assert_eq!(limits.sign_in(ip, "a@example.com"), Ok(()), "address {n}");
        }
        let same_64 = IpAddr::from([0x2001, 0xdb8, 0, 7, 0xffff, 1, 2, 3]);
        assert!(limits.sign_in(same_64, "a@example.com").is_err(), "a new address in the same /64 is refused");
        assert_eq!(limits.sign_in(IpAddr::from([0x2001, 0xdb8, 0, 8, 0, 0, 0, 1]), "a@example.com"), Ok(()));
        assert_ne!(Network::from(IpAddr::from([0, 0, 0, 0, 0, 0, 0, 1])), Network::from(IpAddr::from([0, 0, 0, 1])));
    }

    #[test]
    fn guessing_from_anywhere_does_not_lock_the_owner_out() {
        let limits = Limits::new(NonZeroU32::new(1000).expect("non-zero"));
        let victim = "victim@example.com";
        for n in 0..30u8 {
            let guesser: IpAddr = [198, 51, 100, n].into();
            assert_eq!(limits.sign_in(guesser, victim), Ok(()), "a first try from a fresh address is let through");
            limits.failed(guesser, victim);
        }
        // The owner, from an address that never failed, signs in.
        assert_eq!(limits.sign_in([203, 0, 113, 9].into(), victim), Ok(()));
        // Every guesser is held off that email now, though not off others.
        let guesser: IpAddr = [198, 51, 100, 3].into();
        match limits.sign_in(guesser, victim) {
            Err(AppError::RateLimited { retry_after }) => assert!(retry_after > 60, "{retry_after}"),
            other => panic!("expected a refusal, got {other:?}"),
        }
        assert_eq!(limits.sign_in(guesser, "other@example.com"), Ok(()));
    }

    #[test]
    fn the_whole_process_has_a_sign_in_budget() {
        let limits = Limits::default();
        let passed =
            (0..=255u8).filter(|&n| limits.sign_in([10, 1, 0, n].into(), &format!("u{n}@example.com")).is_ok()).count();
        // One burst's worth across 256 addresses (and what refills if the loop is paused for a moment).
        let burst = GLOBAL_PER_SECOND.get() as usize;
        assert!((burst..burst + 5).contains(&passed), "{passed}");
    }
}
