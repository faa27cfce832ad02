//! Password hashing: argon2id with OWASP's recommended parameters (19 MiB memory, 2 passes, 1 lane).
//!
//! Hashing is deliberately slow (tens of milliseconds of CPU) and each hash holds 19 MiB, so it runs on threads
//! of its own ([`Hashing`]), never on the async workers that serve other requests, one hash per thread at a
//! time. Not on tokio's blocking pool: that takes on a thread per waiting task (512 at most), and each thread
//! that has hashed keeps its allocator arena's 19 MiB, so a burst of sign-ins grew the process by hundreds of
//! MiB even with few hashes at once (BENCHMARKS.md). A request that cannot get a place within [`Hashing::WAIT`]
//! is told to come back (429 with `Retry-After`) instead of queueing without end.

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use app::error::AppError;
use tokio::sync::Semaphore;

use argon2::password_hash::phc::{Output, ParamsString, PasswordHash, Salt};
use argon2::{Algorithm, Argon2, Block, Params, PasswordVerifier, Version};

/// OWASP Password Storage Cheat Sheet: argon2id, m=19456 KiB, t=2, p=1.
fn hasher() -> Argon2<'static> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, Params::DEFAULT)
}

thread_local! {
    /// The 19 MiB a hash works in, kept by each hashing thread and reused. Left to the allocator, every hash's
    /// memory stayed with the process after it (glibc keeps regions that size), hundreds of MiB after a burst
    /// (BENCHMARKS.md); this way the process holds one region per hashing thread, however many sign-ins come.
    static MEMORY: std::cell::RefCell<Vec<Block>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// The hash of `password` with `salt` under the default parameters, in this thread's memory.
fn argon2id(password: &[u8], salt: &[u8], out: &mut [u8]) -> Result<(), argon2::Error> {
    MEMORY.with_borrow_mut(|memory| {
        let blocks = Params::DEFAULT.block_count();
        if memory.len() != blocks {
            *memory = vec![Block::default(); blocks];
        }
        hasher().hash_password_into_with_memory(password, salt, out, memory.as_mut_slice())
    })
}

/// A hash of a password nobody has, verified against when an email is unknown so that a sign-in for a
/// missing account takes as long as one for an existing account, and timing does not reveal which emails exist.
static DECOY: LazyLock<Option<String>> = LazyLock::new(|| hash_now("decoy password never used").ok());

#[derive(Debug, thiserror::Error)]
#[error("password hashing failed: {0}")]
pub struct HashError(String);

/// A PHC string (`$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>`) for `password`, with 16 random bytes of salt.
fn hash_now(password: &str) -> Result<String, HashError> {
    let failed = |e: &dyn std::fmt::Display| HashError(e.to_string());
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| failed(&e))?;
    let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
    argon2id(password.as_bytes(), &salt, &mut out).map_err(|e| failed(&e))?;
    let hash = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(&Params::DEFAULT).map_err(|e| failed(&e))?,
        salt: Some(Salt::new(&salt).map_err(|e| failed(&e))?),
        hash: Some(Output::new(&out).map_err(|e| failed(&e))?),
    };
    Ok(hash.to_string())
}

/// Whether `password` is the one `stored` was made from (compared in constant time).
fn matches(password: &str, stored: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(stored) else { return false };
    let ours = parsed.algorithm == Algorithm::Argon2id.ident()
        && parsed.version == Some(Version::V0x13.into())
        && ParamsString::try_from(&Params::DEFAULT).is_ok_and(|params| params == parsed.params);
    if !ours {
        // Made with other parameters (none are, yet): the crate checks it, in memory of its own, as long as it
        // is argon2id and needs no more memory than ours (a stored hash must not be able to ask for GiBs).
        let bounded = parsed.algorithm == Algorithm::Argon2id.ident()
            && Params::try_from(&parsed).is_ok_and(|params| params.m_cost() <= Params::DEFAULT.m_cost());
        return bounded && hasher().verify_password(password.as_bytes(), &parsed).is_ok();
    }
    let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else { return false };
    let mut out = vec![0u8; expected.len()];
    argon2id(password.as_bytes(), &salt, &mut out).is_ok() && Output::new(&out).is_ok_and(|made| made == expected)
}

/// The password hasher: a few threads, each hashing one password at a time, and the places to wait for them.
pub struct Hashing {
    permits: Arc<Semaphore>,
    wait: Duration,
    /// To the hashing threads; they end when this is dropped.
    jobs: std::sync::mpsc::SyncSender<Job>,
}

type Job = Box<dyn FnOnce() + Send>;

impl Default for Hashing {
    fn default() -> Self {
        Self::new(Self::default_permits(), Self::WAIT)
    }
}

impl Hashing {
    /// How long a sign-in waits for a permit before it is told to come back.
    pub const WAIT: Duration = Duration::from_secs(2);

    /// `threads` hashing threads (and as many places); a request waits at most `wait` for one.
    pub fn new(threads: usize, wait: Duration) -> Self {
        // At most one job per place is ever queued (a job is only sent holding a permit), plus the decoy's.
        let (jobs, queue) = std::sync::mpsc::sync_channel::<Job>(threads.max(1) + 1);
        let queue = Arc::new(std::sync::Mutex::new(queue));
        let mut started = 0;
        for n in 0..threads.max(1) {
            let queue = queue.clone();
            let worker = move || {
                loop {
                    let job = queue.lock().unwrap_or_else(std::sync::PoisonError::into_inner).recv();
                    let Ok(job) = job else { return };
                    // A panic must not take a hashing thread (and its place) away for good; the job's permit
                    // and answer are dropped with it, so its request is answered.
                    if std::panic::catch_unwind(std::panic::AssertUnwindSafe(job)).is_err() {
                        tracing::error!("a password hash panicked");
                    }
                }
            };
            match std::thread::Builder::new().name(format!("password-hash-{n}")).spawn(worker) {
                Ok(_) => started += 1,
                Err(error) => tracing::error!(%error, "cannot start a password hashing thread"),
            }
        }
        // Made now, on a hashing thread: unknown emails must cost a hash from the first sign-in on.
        let _ = jobs.try_send(Box::new(|| {
            if DECOY.is_none() {
                tracing::error!("the decoy password hash could not be made; unknown emails answer faster");
            }
        }));
        // As many places as threads that run: a place nobody serves would let a request wait past `wait`.
        Self { permits: Arc::new(Semaphore::new(started)), wait, jobs }
    }

    /// Two hashes per core: enough to keep every core busy while one thread waits to be scheduled.
    pub fn default_permits() -> usize {
        2 * std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get)
    }

    /// Runs `work` on a hashing thread once a place is free; refuses when none frees up in time. The place goes
    /// with the work, not with the request: a client that hangs up does not stop a hash under way, so it must
    /// not free that hash's place either.
    async fn run<T: Send + 'static>(&self, work: impl FnOnce() -> T + Send + 'static) -> Result<T, Busy> {
        let acquire = self.permits.clone().acquire_owned();
        let permit = tokio::time::timeout(self.wait, acquire).await.map_err(|_| Busy)?.map_err(|_| Busy)?;
        let (done, result) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            let _place = permit;
            let _ = done.send(work());
        });
        self.jobs.try_send(job).map_err(|_| Busy)?;
        result.await.map_err(|_| Busy)
    }

    /// Hashes a new password into a PHC string (`$argon2id$v=19$m=19456,t=2,p=1$…`).
    pub async fn hash(&self, password: String) -> Result<String, HashFailure> {
        self.run(move || hash_now(&password)).await?.map_err(HashFailure::Hash)
    }

    /// Whether `password` matches `stored`; with no stored hash, spends the same effort and answers no.
    pub async fn verify(&self, password: String, stored: Option<String>) -> Result<bool, Busy> {
        self.run(move || match stored {
            Some(hash) => matches(&password, &hash),
            None => {
                if let Some(decoy) = DECOY.as_deref() {
                    matches(&password, decoy);
                }
                false
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

    #[test]
    fn hashes_agree_with_the_argon2_crate_s_own_both_ways() {
        use argon2::PasswordHasher as _;
        let theirs = hasher().hash_password(b"correct horse battery").expect("hashes").to_string();
        assert!(matches("correct horse battery", &theirs), "a hash stored before is still checked");
        assert!(!matches("correct horse battery!", &theirs));
        let ours = hash_now("correct horse battery").expect("hashes");
        assert!(hasher().verify_password(b"correct horse battery", ours.as_str()).is_ok(), "{ours}");
        assert!(hasher().verify_password(b"wrong", ours.as_str()).is_err());
        // Other parameters are still checked (by the crate).
        let cheap = Argon2::new(Algorithm::Argon2id, Version::V0x13, Params::new(8, 1, 1, None).expect("params"));
        let other = cheap.hash_password(b"pw").expect("hashes").to_string();
        assert!(matches("pw", &other) && !matches("px", &other), "{other}");
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
