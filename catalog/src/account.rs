//! Accounts as both ends see them: roles, the public view of a user, the rules for emails and passwords, and
//! the one authorization decision every endpoint goes through.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Shortest password accepted.
pub const MIN_PASSWORD_LEN: usize = 10;
/// Longest password accepted: hashing cost grows with length, so an unbounded one is a denial-of-service lever.
pub const MAX_PASSWORD_LEN: usize = 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Customer,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Customer => "customer",
            Role::Admin => "admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "customer" => Ok(Role::Customer),
            "admin" => Ok(Role::Admin),
            other => Err(format!("unknown role `{other}`")),
        }
    }
}

/// A user as the API and the browser see them: never the password hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub id: crate::ids::UserId,
    pub email: String,
    pub role: Role,
    /// Unix seconds.
    pub created_at: i64,
}

impl User {
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }
}

/// Longest name an SSH key may be given.
pub const MAX_SSH_KEY_NAME: usize = 64;
/// How many SSH keys one account may hold.
pub const MAX_SSH_KEYS: usize = 20;

/// A public key an account signs in to SFTP with (added on the account page). The key itself stays on the
/// server; this is what identifies it to its owner.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SshKey {
    pub id: String,
    pub name: String,
    /// `ssh-ed25519`, `ecdsa-sha2-nistp256`, `rsa-sha2-512`, …
    pub algorithm: String,
    /// As `ssh-keygen -l` prints it: `SHA256:…`.
    pub fingerprint: String,
    /// Unix seconds.
    pub created_at: i64,
}

/// Where and as whom a server's files are reached over SFTP.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SftpAccess {
    pub host: String,
    pub port: u16,
    /// `<account email>.<server id>`.
    pub username: String,
}

impl SftpAccess {
    /// The SFTP username naming `email`'s access to server `server`.
    pub fn username(email: &str, server: &crate::ids::ServerId) -> String {
        format!("{email}.{server}")
    }

    /// The account email and the server id an SFTP username names (server ids hold no dot; emails may).
    pub fn parse_username(username: &str) -> Option<(&str, crate::ids::ServerId)> {
        let (email, server) = username.rsplit_once('.')?;
        (!email.is_empty() && !server.is_empty()).then(|| (email, crate::ids::ServerId::from(server)))
    }
}

/// Input that broke a rule, named by the field it came in.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FieldError {
    pub field: &'static str,
    pub message: String,
}

impl FieldError {
    pub fn new(field: &'static str, message: impl Into<String>) -> Self {
        Self { field, message: message.into() }
    }
}

/// Trims and lower-cases an email and checks that it plausibly is one (`local@domain.tld`, no spaces).
/// Deliverability is not checked: no full RFC 5322 parser decides that either.
pub fn normalize_email(raw: &str) -> Result<String, FieldError> {
    let email = raw.trim().to_lowercase();
    let invalid = || FieldError::new("email", "must be an email address like name@example.com");
    if email.is_empty() {
        return Err(FieldError::new("email", "is required"));
    }
    if email.len() > 254 || email.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(invalid());
    }
    let (local, domain) = email.rsplit_once('@').ok_or_else(invalid)?;
    let labels_ok =
        domain.split('.').all(|label| !label.is_empty() && !label.starts_with('-') && !label.ends_with('-'));
    if local.is_empty() || local.contains('@') || !domain.contains('.') || !labels_ok {
        return Err(invalid());
    }
    Ok(email)
}

/// Checks a new password's length (characters, not bytes). Composition rules are deliberately absent:
/// length is what makes a password strong (NIST SP 800-63B).
pub fn check_new_password(password: &str) -> Result<(), FieldError> {
    let length = password.chars().count();
    if length < MIN_PASSWORD_LEN {
        return Err(FieldError::new("password", format!("must be at least {MIN_PASSWORD_LEN} characters")));
    }
    if length > MAX_PASSWORD_LEN {
        return Err(FieldError::new("password", format!("must be at most {MAX_PASSWORD_LEN} characters")));
    }
    Ok(())
}

/// Something a request wants to touch.
#[derive(Debug, Clone, Copy)]
pub enum Resource<'a> {
    /// Admin pages and admin-only API routes.
    AdminArea,
    /// Something a user owns (a game server, a subscription), by owner id.
    OwnedBy(&'a crate::ids::UserId),
}

/// Why access was refused. `NotFound` for another user's things, so their ids cannot be probed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denied {
    NotFound,
    Forbidden,
}

/// The authorization decision: owner or admin for owned things, admin for the admin area.
pub fn authorize(user: &User, resource: Resource<'_>) -> Result<(), Denied> {
    match resource {
        _ if user.is_admin() => Ok(()),
        Resource::OwnedBy(owner) if *owner == user.id => Ok(()),
        Resource::OwnedBy(_) => Err(Denied::NotFound),
        Resource::AdminArea => Err(Denied::Forbidden),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_sftp_username_names_the_account_and_the_server() {
        let id = crate::ids::ServerId::from("mj-0a1b2c3d4e5f");
        let username = SftpAccess::username("first.last@mail.example.com", &id);
        assert_eq!(username, "first.last@mail.example.com.mj-0a1b2c3d4e5f");
        assert_eq!(SftpAccess::parse_username(&username), Some(("first.last@mail.example.com", id)));
        assert_eq!(SftpAccess::parse_username("no-server"), None);
        assert_eq!(SftpAccess::parse_username(".mj-1"), None);
        assert_eq!(SftpAccess::parse_username("a@b.c."), None);
    }

    fn user(id: &str, role: Role) -> User {
        User { id: id.into(), email: format!("{id}@example.com"), role, created_at: 0 }
    }

    #[test]
    fn emails_are_trimmed_and_lower_cased() {
        assert_eq!(normalize_email("  Alice@Example.COM \n"), Ok("alice@example.com".into()));
        assert_eq!(normalize_email("a.b+tag@sub.example.co.uk"), Ok("a.b+tag@sub.example.co.uk".into()));
    }

    #[test]
    fn implausible_emails_are_refused_naming_the_field() {
        for bad in [
            "",
            "   ",
            "alice",
            "alice@",
            "@example.com",
            "alice@example",
            "al ice@example.com",
            "a@b@c.com",
            "a@.com",
            "a@example..com",
            "a@-x.com",
        ] {
            let error = normalize_email(bad).expect_err(bad);
            assert_eq!(error.field, "email", "{bad}");
        }
        assert!(normalize_email(&format!("{}@example.com", "a".repeat(250))).is_err());
    }

    #[test]
    fn passwords_need_ten_characters_and_have_a_ceiling() {
        assert_eq!(check_new_password("123456789").map_err(|e| e.field), Err("password"));
        assert!(check_new_password("1234567890").is_ok());
        // Characters, not bytes: ten emoji are ten characters.
        assert!(check_new_password(&"🔑".repeat(10)).is_ok());
        assert!(check_new_password(&"🔑".repeat(9)).is_err());
        assert!(check_new_password(&"x".repeat(MAX_PASSWORD_LEN + 1)).is_err());
    }

    #[test]
    fn roles_round_trip_and_unknown_roles_are_refused() {
        for role in [Role::Customer, Role::Admin] {
            assert_eq!(role.as_str().parse(), Ok(role));
        }
        assert!("root".parse::<Role>().is_err());
    }

    #[test]
    fn authorization_table() {
        let alice = user("alice", Role::Customer);
        let admin = user("root", Role::Admin);
        let (alices, bobs) = (crate::ids::UserId::from("alice"), crate::ids::UserId::from("bob"));
        assert_eq!(authorize(&alice, Resource::OwnedBy(&alices)), Ok(()));
        assert_eq!(authorize(&alice, Resource::OwnedBy(&bobs)), Err(Denied::NotFound));
        assert_eq!(authorize(&alice, Resource::AdminArea), Err(Denied::Forbidden));
        assert_eq!(authorize(&admin, Resource::OwnedBy(&bobs)), Ok(()));
        assert_eq!(authorize(&admin, Resource::AdminArea), Ok(()));
    }
}
