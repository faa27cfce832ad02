//! The SSH keys an account signs in to SFTP with: added and removed on the account page (and
//! `/api/account/ssh-keys`), looked up by the SFTP server when a client offers one.

use app::error::AppError;
use catalog::account::{MAX_SSH_KEY_NAME, MAX_SSH_KEYS, SshKey, User};
use russh::keys::{Algorithm, HashAlg, PublicKey};
use sqlx::Row as _;
use sqlx::any::AnyRow;

use super::{AuthService, Error, user_from_row};
use crate::db::now;

/// Longer than any key worth using (an RSA-16384 key is about 2.8 KB of text); bounds what is parsed.
const MAX_KEY_TEXT: usize = 8 * 1024;
/// RSA keys shorter than this are refused, as OpenSSH refuses them.
const MIN_RSA_BITS: u32 = 2048;

/// A key as pasted from `id_ed25519.pub`: `ssh-ed25519 AAAA… comment`. Refuses anything else with a message
/// naming `public_key`.
pub fn parse_public_key(text: &str) -> Result<PublicKey, AppError> {
    let invalid = |message: &str| AppError::invalid("public_key", message);
    let text = text.trim();
    if text.is_empty() || text.len() > MAX_KEY_TEXT {
        return Err(invalid("paste one public key, the line in a `.pub` file such as `ssh-ed25519 AAAA… you@host`"));
    }
    if text.contains("PRIVATE KEY") {
        return Err(invalid("this is a private key: paste the public one (the `.pub` file), and keep this one secret"));
    }
    let key = PublicKey::from_openssh(text)
        .map_err(|_| invalid("is not an OpenSSH public key (`ssh-ed25519 AAAA…`, `ecdsa-sha2-nistp256 AAAA…`)"))?;
    match key.algorithm() {
        Algorithm::Ed25519 | Algorithm::Ecdsa { .. } => Ok(key),
        Algorithm::Rsa { .. } => match key.key_data().rsa() {
            Some(rsa) if rsa.key_size() >= MIN_RSA_BITS => Ok(key),
            _ => Err(invalid(&format!("RSA keys must have at least {MIN_RSA_BITS} bits"))),
        },
        other => Err(invalid(&format!("`{other}` keys are not accepted; use ed25519, ECDSA or RSA"))),
    }
}

fn fingerprint(key: &PublicKey) -> String {
    key.fingerprint(HashAlg::Sha256).to_string()
}

fn key_from_row(row: &AnyRow) -> Result<SshKey, Error> {
    let read = || -> Result<SshKey, sqlx::Error> {
        Ok(SshKey {
            id: row.try_get("id")?,
            name: row.try_get("name")?,
            algorithm: row.try_get("algorithm")?,
            fingerprint: row.try_get("fingerprint")?,
            created_at: row.try_get("created_at")?,
        })
    };
    read().map_err(|source| Error::new("reading an SSH key row", source))
}

impl AuthService {
    pub async fn ssh_keys(&self, user: &User) -> Result<Vec<SshKey>, AppError> {
        let rows = sqlx::query(
            "SELECT id, name, algorithm, fingerprint, created_at FROM ssh_keys WHERE user_id = $1 \
             ORDER BY created_at, name",
        )
        .bind(user.id.as_str())
        .fetch_all(self.db.pool())
        .await
        .map_err(|source| Error::new("listing SSH keys", source))?;
        Ok(rows.iter().map(key_from_row).collect::<Result<_, _>>()?)
    }

    /// Adds a key to `user`'s account; the same key twice is refused, as is more than [`MAX_SSH_KEYS`].
    pub async fn add_ssh_key(&self, user: &User, name: &str, public_key: &str) -> Result<SshKey, AppError> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > MAX_SSH_KEY_NAME || name.chars().any(char::is_control) {
            return Err(AppError::invalid("name", format!("must be 1 to {MAX_SSH_KEY_NAME} printable characters")));
        }
        let key = parse_public_key(public_key)?;
        if self.ssh_keys(user).await?.len() >= MAX_SSH_KEYS {
            return Err(AppError::Conflict {
                field: "public_key".into(),
                message: format!("an account holds at most {MAX_SSH_KEYS} keys; remove one first"),
            });
        }
        // The comment is the key's owner's business, not Spawnpoint's: it is not kept.
        let bare = PublicKey::new(key.key_data().clone(), "");
        let text = bare.to_openssh().map_err(|source| Error::new("encoding an SSH key", source))?;
        let added = SshKey {
            id: uuid::Uuid::new_v4().simple().to_string(),
            name: name.to_owned(),
            algorithm: key.algorithm().as_str().to_owned(),
            fingerprint: fingerprint(&key),
            created_at: now(),
        };
        let inserted = sqlx::query(
            "INSERT INTO ssh_keys (id, user_id, name, algorithm, fingerprint, public_key, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (user_id, fingerprint) DO NOTHING",
        )
        .bind(&added.id)
        .bind(user.id.as_str())
        .bind(&added.name)
        .bind(&added.algorithm)
        .bind(&added.fingerprint)
        .bind(&text)
        .bind(added.created_at)
        .execute(self.db.pool())
        .await
        .map_err(|source| Error::new("adding an SSH key", source))?;
        if inserted.rows_affected() == 0 {
            return Err(AppError::Conflict { field: "public_key".into(), message: "this key is added already".into() });
        }
        tracing::info!(user = %user.id, fingerprint = added.fingerprint, "SSH key added");
        Ok(added)
    }

    pub async fn remove_ssh_key(&self, user: &User, id: &str) -> Result<(), AppError> {
        let removed = sqlx::query("DELETE FROM ssh_keys WHERE id = $1 AND user_id = $2")
            .bind(id)
            .bind(user.id.as_str())
            .execute(self.db.pool())
            .await
            .map_err(|source| Error::new("removing an SSH key", source))?;
        if removed.rows_affected() == 0 {
            return Err(AppError::NotFound(format!("SSH key `{id}` does not exist")));
        }
        tracing::info!(user = %user.id, key = id, "SSH key removed");
        Ok(())
    }

    /// The account `email` names, if `key` is one of its keys.
    pub async fn user_with_key(&self, email: &str, key: &PublicKey) -> Result<Option<User>, AppError> {
        let row = sqlx::query(
            "SELECT u.id, u.email, u.role, u.created_at, k.public_key FROM users u \
             JOIN ssh_keys k ON k.user_id = u.id WHERE u.email = $1 AND k.fingerprint = $2",
        )
        .bind(email.trim().to_lowercase())
        .bind(fingerprint(key))
        .fetch_optional(self.db.pool())
        .await
        .map_err(|source| Error::new("looking up an SSH key", source))?;
        let Some(row) = row else { return Ok(None) };
        // The fingerprint found the row; the key itself decides.
        let stored: String = row.try_get("public_key").map_err(|source| Error::new("reading an SSH key", source))?;
        let same = PublicKey::from_openssh(&stored).is_ok_and(|stored| stored.key_data() == key.key_data());
        Ok(if same { Some(user_from_row(&row)?) } else { None })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ED25519: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFScqeY19pEauz+X5IVPXUd1mwtIrx+skAj4Rs+twPpJ me@laptop";
    const RSA_1024: &str = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAAgQDUX2gDfNKbKC6ZWkp7ivXzvfaAbd7o1YupUwR9ro9ZWmlgJ/L/rH\
        zSv7XDxYfu65BJTsKoCcjY8QKB2dct8I1X9MngT6mASvNpSCosCBTyppq459FbWaeYs1mPfk+JW4wSp4QFbJZZM3dQS60niAcesOc6VtTHbs3\
        11HlcBCtjDw== old";

    fn refusal(text: &str) -> String {
        match parse_public_key(text) {
            Err(AppError::Invalid { field, message }) if field == "public_key" => message,
            other => panic!("{text:?} was not refused naming public_key: {other:?}"),
        }
    }

    #[test]
    fn a_pub_files_line_is_a_key_with_the_fingerprint_ssh_keygen_prints() {
        let key = parse_public_key(&format!("  {ED25519}\n")).expect("an ed25519 key");
        // `ssh-keygen -lf` on the same file.
        assert_eq!(fingerprint(&key), "SHA256:ZVeb1WVNEj+9mGk2akor+7fS3AuRHVcBdb23Rp75Xgo");
        assert_eq!(key.algorithm().as_str(), "ssh-ed25519");
    }

    #[test]
    fn anything_else_is_refused_saying_why() {
        assert!(refusal(RSA_1024).contains("2048 bits"));
        assert!(refusal("-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEA\n").contains("private key"));
        assert!(refusal("ssh-ed25519 not-base64 me").contains("not an OpenSSH public key"));
        assert!(refusal("").contains("paste one public key"));
        assert!(refusal(&"a".repeat(MAX_KEY_TEXT + 1)).contains("paste one public key"));
    }
}
