//! Password hashing: argon2id with OWASP's recommended parameters (19 MiB memory, 2 passes, 1 lane).
//!
//! Hashing is deliberately slow (tens of milliseconds of CPU) and each hash holds 19 MiB, so it runs on the
//! blocking pool, never on the async workers that serve other requests, and at most [`Hashing::permits`] at
//! once: without the cap a burst of sign-ins would hold 19 MiB per request the blocking pool (512 threads)
//! takes on, enough to get a small pod killed. A request that cannot get a permit within
//! [`Hashing::wait`] is told to come back (429 with `Retry-After`) instead of queueing without end.

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use app::error::AppError;
use tokio::sync::Semaphore;

use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Algorithm, Argon2, Params, Version};

/// OWASP Password Storage Cheat Sheet: argon2id, m=19456 KiB, t=2, p=1.
fn hasher() -> Argon2<'static> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, Params::DEFAULT)
}

/// A hash of a password nobody has, verified against when an email is unknown so that a sign-in for a
/// missing account takes as long as one for an existing account, and timing does not reveal which emails exist.
static DECOY: LazyLock<Option<String>> = LazyLock::new(|| hash_now("decoy password never used").ok());

#[derive(Debug, thiserror::Error)]
#[error("password hashing failed: {0}")]
pub struct HashError(String);

fn hash_now(password: &str) -> Result<String, HashError> {
    hasher().hash_password(password.as_bytes()).map(|hash| hash.to_string()).map_err(|e| HashError(e.to_string()))
}

/// The password hasher, with its cap on concurrent hashes.
pub struct Hashing {
    permits: Arc<Semaphore>,
    wait: Duration,
}

impl Default for Hashing {
    fn default() -> Self {
        Self::new(Self::default_permits(), Self::WAIT)
    }
}

impl Hashing {
    /// How long a sign-in waits for a permit before it is told to come back.
    pub const WAIT: Duration = Duration::from_secs(2);

    pub fn new(permits: usize, wait: Duration) -> Self {
        Self { permits: Arc::new(Semaphore::new(permits)), wait }
    }

    /// Two hashes per core: enough to keep every core busy while one thread waits to be scheduled.
    pub fn default_permits() -> usize {
        2 * std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get)
    }

    /// Runs `work` on the blocking pool once a permit is free; refuses when none frees up in time. The permit
    /// goes with the work, not with the request: a client that hangs up does not stop a hash under way, so it
    /// must not free that hash's place either.
    async fn run<T: Send + 'static>(&self, work: impl FnOnce() -> T + Send + 'static) -> Result<T, Busy> {
        let acquire = self.permits.clone().acquire_owned();
        let permit = tokio::time::timeout(self.wait, acquire).await.map_err(|_| Busy)?.map_err(|_| Busy)?;
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            work()
        })
        .await
        .map_err(|_| Busy)
    }

    /// Hashes a new password into a PHC string (`$argon2id$v=19$m=19456,t=2,p=1$…`).
    pub async fn hash(&self, password: String) -> Result<String, HashFailure> {
        self.run(move || hash_now(&password)).await?.map_err(HashFailure::Hash)
    }

    /// Whether `password` matches `stored`; with no stored hash, spends the same effort and answers no.
    pub async fn verify(&self, password: String, stored: Option<String>) -> Result<bool, Busy> {
        self.run(move || {
            let matches = |hash: &str| hasher().verify_password(password.as_bytes(), hash).is_ok();
            match stored {
                Some(hash) => matches(&hash),
                None => {
                    if let Some(decoy) = DECOY.as_deref() {
                        matches(decoy);
                    }
                    false
                }
            }
        })
        .await
    }
}

/// No hashing permit came free in time: the server is busy hashing for others.
#[derive(Debug, thiserror::Error)]
#[error("too many sign-ins at once")]
pub struct Busy;

impl From<Busy> for AppError {
    fn from(Busy: Busy) -> Self {
        AppError::RateLimited { retry_after: 1 }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum HashFailure {
    #[error(transparent)]
    Busy(#[from] Busy),
    #[error(transparent)]
    Hash(HashError),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_with_owasp_argon2id_parameters_and_verifies() {
        let hashing = Hashing::default();
        let stored = hashing.hash("correct horse battery".into()).await.expect("hashes");
        assert!(stored.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{stored}");
        assert!(!stored.contains("correct horse"));
        assert!(hashing.verify("correct horse battery".into(), Some(stored.clone())).await.expect("verifies"));
        assert!(!hashing.verify("correct horse battery!".into(), Some(stored.clone())).await.expect("verifies"));
        assert!(!hashing.verify("correct horse battery".into(), None).await.expect("verifies"), "no account, no match");
        let again = hashing.hash("correct horse battery".into()).await.expect("hashes");
        assert_ne!(stored, again, "every hash has its own salt");
    }

    #[tokio::test]
    async fn a_corrupt_stored_hash_never_matches() {
        assert!(
            !Hashing::default().verify("anything at all".into(), Some("not-a-phc-string".into())).await.expect("ok")
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn attempts_beyond_the_permits_are_told_to_come_back() {
        let hashing = std::sync::Arc::new(Hashing::new(2, Duration::from_millis(50)));
        let attempts = (0..12).map(|_| {
            let hashing = hashing.clone();
            tokio::spawn(async move { hashing.verify("password".into(), None).await })
        });
        let outcomes = futures_util::future::join_all(attempts).await;
        let busy = outcomes.iter().filter(|outcome| matches!(outcome, Ok(Err(Busy)))).count();
        // A hash takes tens of milliseconds, so 12 cannot all pass two at a time within 50 ms of waiting.
        assert!(busy > 0, "some attempts were turned away: {busy}");
        assert!(busy < 12, "the permitted ones ran: {busy}");
        assert_eq!(AppError::from(Busy), AppError::RateLimited { retry_after: 1 });
    }
}
