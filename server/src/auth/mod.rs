//! Accounts and sessions: registration, sign-in, sign-out, and checking who a request comes from.
//!
//! The REST routes ([`routes`]), the middleware ([`middleware`]) and the app's server functions (through
//! [`app::auth::ssr::Accounts`]) all go through one [`AuthService`].

pub mod hosts;
pub mod limit;
pub mod live;
pub mod middleware;
pub mod password;
pub mod proxy;
pub mod routes;
pub mod ssh_keys;
pub mod token;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use app::auth::ssr::{Accounts, SignedIn};
use app::context::{BoxFuture, Credential, Session};
use app::error::AppError;
use axum::extract::ConnectInfo;
use catalog::account::{Role, SshKey, User, check_new_password, normalize_email};
use http::request::Parts;
use sqlx::Row as _;
use sqlx::any::AnyRow;

use crate::auth::proxy::TrustedProxies;
use crate::db::{Db, now};
use crate::error::log_cause;

use self::limit::Limits;
use self::live::LiveConnections;
use self::password::{HashFailure, Hashing};
use self::token::{Claims, Tokens};

/// An account operation that failed inside the server: what it was doing, and why. Clients get an opaque
/// 500; the cause chain is logged where it becomes that.
#[derive(Debug, thiserror::Error)]
#[error("while {doing}")]
pub struct Error {
    doing: &'static str,
    #[source]
    source: Box<dyn std::error::Error + Send + Sync>,
}

impl Error {
    fn new(doing: &'static str, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self { doing, source: Box::new(source) }
    }
}

impl From<Error> for AppError {
    fn from(error: Error) -> Self {
        log_cause(&error);
        AppError::Internal
    }
}

/// Name of the browser session cookie.
pub const COOKIE_NAME: &str = "spawnpoint_session";

const BAD_CREDENTIALS: &str = "the email or password is incorrect";
/// The longest email address there can be (RFC 5321's path limit).
const MAX_EMAIL_LEN: usize = 254;

pub struct AuthService {
    db: Db,
    tokens: Tokens,
    limits: Limits,
    hashing: Hashing,
    live: Arc<LiveConnections>,
    session_ttl: Duration,
    /// Whether cookies get `Secure` (the app is served over HTTPS).
    secure_cookies: bool,
    proxies: TrustedProxies,
}

impl AuthService {
    pub fn new(db: Db, tokens: Tokens, session_ttl: Duration, secure_cookies: bool, proxies: TrustedProxies) -> Self {
        Self {
            db,
            tokens,
            limits: Limits::default(),
            hashing: Hashing::default(),
            live: Arc::default(),
            session_ttl,
            secure_cookies,
            proxies,
        }
    }

    /// The same service with `hashing` (its cap on concurrent password hashes) and `limits` instead of the
    /// default ones.
    pub fn with_limits(self, hashing: Hashing, limits: Limits) -> Self {
        Self { hashing, limits, ..self }
    }

    /// The address a request came from: the peer's, or behind a trusted proxy the one it reports.
    pub fn client_ip(&self, peer: IpAddr, headers: &axum::http::HeaderMap) -> IpAddr {
        self.proxies.client_ip(peer, headers)
    }

    fn request_ip(&self, parts: &Parts) -> IpAddr {
        let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|ConnectInfo(addr)| addr.ip());
        self.client_ip(peer.unwrap_or(IpAddr::from([0, 0, 0, 0])), &parts.headers)
    }

    /// Creates an account with `role`. Only the CLI creates admins; sign-up goes through [`Self::register`].
    pub async fn create_user(&self, email: &str, password: &str, role: Role) -> Result<User, AppError> {
        let email = normalize_email(email)?;
        check_new_password(password)?;
        let hash = match self.hashing.hash(password.to_owned()).await {
            Ok(hash) => hash,
            Err(HashFailure::Busy(busy)) => return Err(busy.into()),
            Err(HashFailure::Hash(source)) => return Err(Error::new("hashing a new password", source).into()),
        };
        let user = User { id: uuid::Uuid::new_v4().simple().to_string().into(), email, role, created_at: now() };
        let inserted = sqlx::query(
            "INSERT INTO users (id, email, password_hash, role, created_at) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (email) DO NOTHING",
        )
        .bind(user.id.as_str())
        .bind(&user.email)
        .bind(&hash)
        .bind(user.role.as_str())
        .bind(user.created_at)
        .execute(self.db.pool())
        .await
        .map_err(|source| Error::new("inserting a user", source))?;
        if inserted.rows_affected() == 0 {
            return Err(AppError::Conflict { field: "email".into(), message: "is already registered".into() });
        }
        tracing::info!(user = %user.id, role = %user.role, "account created");
        Ok(user)
    }

    /// The account `email` names, if `password` is its password: rate-limited by the client's address and the
    /// email, and an unknown email looks like a wrong password, in the answer and in the time taken. Signing in
    /// and SFTP both ask this.
    pub async fn check_password(&self, client: IpAddr, email: &str, password: &str) -> Result<User, AppError> {
        let normalized = email.trim().to_lowercase();
        // Before the limiter, which remembers emails that failed: none may hold more than an address's worth.
        if normalized.len() > MAX_EMAIL_LEN {
            return Err(AppError::invalid("email", format!("must be at most {MAX_EMAIL_LEN} characters")));
        }
        self.limits.sign_in(client, &normalized)?;
        let row = sqlx::query("SELECT id, email, role, created_at, password_hash FROM users WHERE email = $1")
            .bind(&normalized)
            .fetch_optional(self.db.pool())
            .await
            .map_err(|source| Error::new("looking up a user", source))?;
        let stored = row.as_ref().and_then(|row| row.try_get::<String, _>("password_hash").ok());
        if !self.hashing.verify(password.to_owned(), stored).await? {
            self.limits.failed(client, &normalized);
            return Err(AppError::Unauthorized(BAD_CREDENTIALS.into()));
        }
        let user = row
            .as_ref()
            .map(user_from_row)
            .transpose()?
            .ok_or_else(|| AppError::Unauthorized(BAD_CREDENTIALS.into()))?;
        Ok(user)
    }

    /// Checks credentials and opens a session.
    pub async fn sign_in(&self, client: IpAddr, email: &str, password: &str) -> Result<SignedIn, AppError> {
        let user = self.check_password(client, email, password).await?;
        let issued = now();
        let expires = issued + i64::try_from(self.session_ttl.as_secs()).unwrap_or(i64::MAX / 2);
        let session_id = uuid::Uuid::new_v4().simple().to_string();
        // Expired sessions are of no use to anyone; clearing them here keeps the table small without a job.
        sqlx::query("DELETE FROM sessions WHERE expires_at < $1")
            .bind(issued)
            .execute(self.db.pool())
            .await
            .map_err(|source| Error::new("pruning sessions", source))?;
        sqlx::query("INSERT INTO sessions (id, user_id, created_at, expires_at) VALUES ($1, $2, $3, $4)")
            .bind(&session_id)
            .bind(user.id.as_str())
            .bind(issued)
            .bind(expires)
            .execute(self.db.pool())
            .await
            .map_err(|source| Error::new("opening a session", source))?;

        let claims = Claims {
            sub: user.id.to_string(),
            sid: session_id,
            role: user.role.to_string(),
            iat: issued,
            exp: expires,
        };
        let token = self.tokens.issue(&claims).map_err(|source| Error::new("signing a session token", source))?;
        let cookie = self.cookie(&token, self.session_ttl.as_secs());
        tracing::info!(user = %user.id, "signed in");
        Ok(SignedIn { user, token, cookie })
    }

    /// The session a token stands for, if its signature, algorithm and expiry check out and its session is
    /// still open for a user that still exists. One primary-key lookup: cheap enough for every request.
    pub async fn authenticate(&self, token: &str, credential: Credential) -> Result<Session, AppError> {
        let expired = || AppError::Unauthorized("the session has expired or was signed out; sign in again".into());
        let claims = self.tokens.verify(token).map_err(|_| expired())?;
        // The token names its session and its user; both must still be what the database says.
        let user = self.current_user(&claims.sid).await?.filter(|user| user.id == claims.sub.as_str());
        Ok(Session { id: claims.sid, user: user.ok_or_else(expired)?, credential })
    }

    /// The user of session `id` as the database has them now, while the session is open and the user exists;
    /// `None` once it has ended. Every request asks once; live connections ask again while they last.
    pub async fn current_user(&self, id: &str) -> Result<Option<User>, AppError> {
        let row = sqlx::query(
            "SELECT u.id, u.email, u.role, u.created_at FROM sessions s JOIN users u ON u.id = s.user_id \
             WHERE s.id = $1 AND s.revoked_at IS NULL AND s.expires_at > $2",
        )
        .bind(id)
        .bind(now())
        .fetch_optional(self.db.pool())
        .await
        .map_err(|source| Error::new("checking a session", source))?;
        Ok(row.as_ref().map(user_from_row).transpose()?)
    }

    /// A user by id, whatever their sessions (scheduled tasks act as a server's owner).
    pub async fn user(&self, id: &catalog::UserId) -> Result<Option<User>, AppError> {
        let row = sqlx::query("SELECT id, email, role, created_at FROM users WHERE id = $1")
            .bind(id.as_str())
            .fetch_optional(self.db.pool())
            .await
            .map_err(|source| Error::new("reading a user", source))?;
        Ok(row.as_ref().map(user_from_row).transpose()?)
    }

    /// Revokes a session: its token is refused from now on, wherever it is presented.
    pub async fn sign_out(&self, session: &Session) -> Result<(), AppError> {
        sqlx::query("UPDATE sessions SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
            .bind(now())
            .bind(&session.id)
            .execute(self.db.pool())
            .await
            .map_err(|source| Error::new("revoking a session", source))?;
        tracing::info!(user = %session.user.id, "signed out");
        Ok(())
    }

    /// A customer signing up from `client`, rate-limited per address like sign-in, so the endpoint cannot be
    /// used to make the server hash passwords (or probe emails) at will.
    pub async fn register(&self, client: IpAddr, email: &str, password: &str) -> Result<User, AppError> {
        self.limits.sign_up(client)?;
        self.create_user(email, password, Role::Customer).await
    }

    /// The `Set-Cookie` value carrying `token` (an empty value with max age 0 clears it).
    pub fn cookie(&self, token: &str, max_age: u64) -> String {
        let secure = if self.secure_cookies { "; Secure" } else { "" };
        format!("{COOKIE_NAME}={token}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}")
    }

    pub fn clearing_cookie(&self) -> String {
        self.cookie("", 0)
    }
}

fn user_from_row(row: &AnyRow) -> Result<User, Error> {
    let read = || -> Result<User, sqlx::Error> {
        let role: String = row.try_get("role")?;
        Ok(User {
            id: catalog::UserId::new(row.try_get::<String, _>("id")?),
            email: row.try_get("email")?,
            role: role.parse().map_err(|e: String| sqlx::Error::Decode(e.into()))?,
            created_at: row.try_get("created_at")?,
        })
    };
    read().map_err(|source| Error::new("reading a user row", source))
}

/// The app's server functions reach accounts through this.
impl Accounts for AuthService {
    fn register<'a>(
        &'a self,
        request: &'a Parts,
        email: &'a str,
        password: &'a str,
    ) -> BoxFuture<'a, Result<User, AppError>> {
        Box::pin(AuthService::register(self, self.request_ip(request), email, password))
    }

    fn sign_in<'a>(
        &'a self,
        request: &'a Parts,
        email: &'a str,
        password: &'a str,
    ) -> BoxFuture<'a, Result<SignedIn, AppError>> {
        Box::pin(AuthService::sign_in(self, self.request_ip(request), email, password))
    }

    fn sign_out<'a>(&'a self, session: &'a Session) -> BoxFuture<'a, Result<String, AppError>> {
        Box::pin(async move {
            AuthService::sign_out(self, session).await?;
            Ok(self.clearing_cookie())
        })
    }

    /// Every account (the caller checks that an administrator asks).
    fn list_users(&self) -> BoxFuture<'_, Result<Vec<User>, AppError>> {
        Box::pin(async move {
            let rows = sqlx::query("SELECT id, email, role, created_at FROM users ORDER BY created_at, email")
                .fetch_all(self.db.pool())
                .await
                .map_err(|source| Error::new("listing users", source))?;
            Ok(rows.iter().map(user_from_row).collect::<Result<_, _>>()?)
        })
    }

    fn ssh_keys<'a>(&'a self, user: &'a User) -> BoxFuture<'a, Result<Vec<SshKey>, AppError>> {
        Box::pin(AuthService::ssh_keys(self, user))
    }

    fn add_ssh_key<'a>(
        &'a self,
        user: &'a User,
        name: &'a str,
        public_key: &'a str,
    ) -> BoxFuture<'a, Result<SshKey, AppError>> {
        Box::pin(AuthService::add_ssh_key(self, user, name, public_key))
    }

    fn remove_ssh_key<'a>(&'a self, user: &'a User, id: &'a str) -> BoxFuture<'a, Result<(), AppError>> {
        Box::pin(AuthService::remove_ssh_key(self, user, id))
    }
}
