//! Password hashing: argon2id with OWASP's recommended parameters (19 MiB memory, 2 passes, 1 lane).
//!
//! Hashing is deliberately slow (tens of milliseconds of CPU), so it runs on the blocking pool, never on the
//! async workers that serve other requests.

use std::sync::LazyLock;

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

/// Hashes a new password into a PHC string (`$argon2id$v=19$m=19456,t=2,p=1$…`).
pub async fn hash(password: String) -> Result<String, HashError> {
    tokio::task::spawn_blocking(move || hash_now(&password)).await.map_err(|e| HashError(e.to_string()))?
}

/// Whether `password` matches `stored`; with no stored hash, spends the same effort and answers no.
pub async fn verify(password: String, stored: Option<String>) -> bool {
    tokio::task::spawn_blocking(move || {
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
    .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_with_owasp_argon2id_parameters_and_verifies() {
        let stored = hash("correct horse battery".into()).await.expect("hashes");
        assert!(stored.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{stored}");
        assert!(!stored.contains("correct horse"));
        assert!(verify("correct horse battery".into(), Some(stored.clone())).await);
        assert!(!verify("correct horse battery!".into(), Some(stored.clone())).await);
        assert!(!verify("correct horse battery".into(), None).await, "no account, no match");
        let again = hash("correct horse battery".into()).await.expect("hashes");
        assert_ne!(stored, again, "every hash has its own salt");
    }

    #[tokio::test]
    async fn a_corrupt_stored_hash_never_matches() {
        assert!(!verify("anything at all".into(), Some("not-a-phc-string".into())).await);
    }
}
