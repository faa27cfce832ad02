//! Session tokens: HS256 JWTs naming the user, their role and the session row.
//!
//! Only HS256 is accepted (no `none`, no RS256 with the secret as a "public key"); expiry is checked with
//! no leeway beyond clock skew; and a valid signature is not enough on its own: the session row must still
//! be open (see `AuthService::authenticate`).

use std::path::Path;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

/// What a token says. `role` is informational for clients; the server reads the role from the database.
#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    /// User id.
    pub sub: String,
    /// Session id (a row in `sessions`).
    pub sid: String,
    pub role: String,
    pub iat: i64,
    pub exp: i64,
}

pub struct Tokens {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
}

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("could not read or create the session signing secret {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the session signing secret {path} is shorter than 32 characters")]
    TooShort { path: String },
}

impl Tokens {
    pub fn new(secret: &SecretString) -> Self {
        let key = secret.expose_secret().as_bytes();
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 5;
        validation.set_required_spec_claims(&["exp", "sub"]);
        Self { encoding: EncodingKey::from_secret(key), decoding: DecodingKey::from_secret(key), validation }
    }

    pub fn issue(&self, claims: &Claims) -> Result<String, jsonwebtoken::errors::Error> {
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &self.encoding)
    }

    /// The claims of a token whose algorithm, signature and expiry check out.
    pub fn verify(&self, token: &str) -> Result<Claims, jsonwebtoken::errors::Error> {
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation).map(|data| data.claims)
    }
}

/// The configured secret, or the one kept in `<data dir>/jwt-secret`, generated (owner-only) on first use.
pub fn load_or_create_secret(configured: Option<&SecretString>, data_dir: &Path) -> Result<SecretString, SecretError> {
    if let Some(secret) = configured {
        return Ok(secret.clone());
    }
    let path = data_dir.join("jwt-secret");
    let io = |source| SecretError::Io { path: path.display().to_string(), source };
    std::fs::create_dir_all(data_dir).map_err(io)?;
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let secret = text.trim().to_owned();
            if secret.len() < 32 {
                return Err(SecretError::TooShort { path: path.display().to_string() });
            }
            Ok(SecretString::from(secret))
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            let mut bytes = [0u8; 32];
            getrandom::fill(&mut bytes).map_err(|e| io(std::io::Error::other(e)))?;
            let secret = hex::encode(bytes);
            write_owner_only(&path, &secret).map_err(io)?;
            Ok(SecretString::from(secret))
        }
        Err(error) => Err(io(error)),
    }
}

/// Creates `path` readable and writable by its owner only, failing if it appeared meanwhile.
pub(crate) fn write_owner_only(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)?.write_all(contents.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_generated_secret_is_kept_owner_only_and_reused() {
        let dir = tempfile::tempdir().expect("temp dir");
        let first = load_or_create_secret(None, dir.path()).expect("created");
        let second = load_or_create_secret(None, dir.path()).expect("read back");
        assert_eq!(first.expose_secret(), second.expose_secret());
        assert_eq!(first.expose_secret().len(), 64);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(dir.path().join("jwt-secret")).expect("exists").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn a_configured_secret_wins_and_writes_nothing() {
        let dir = tempfile::tempdir().expect("temp dir");
        let configured = SecretString::from("x".repeat(40));
        let secret = load_or_create_secret(Some(&configured), dir.path()).expect("configured");
        assert_eq!(secret.expose_secret(), configured.expose_secret());
        assert!(!dir.path().join("jwt-secret").exists());
    }

    #[test]
    fn tokens_round_trip_and_other_secrets_are_refused() {
        let tokens = Tokens::new(&SecretString::from("a".repeat(32)));
        let claims =
            Claims { sub: "u1".into(), sid: "s1".into(), role: "customer".into(), iat: 0, exp: i64::MAX / 1000 };
        let token = tokens.issue(&claims).expect("signs");
        assert_eq!(tokens.verify(&token).expect("verifies").sid, "s1");
        let other = Tokens::new(&SecretString::from("b".repeat(32)));
        assert!(other.verify(&token).is_err());
    }
}
