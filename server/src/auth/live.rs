//! Live connections (console WebSockets, server-event streams) outlast the request that opened them, so the
//! session check at the upgrade is not enough: each connection holds a [`LiveSlot`] (at most
//! [`MAX_LIVE_PER_USER`] per user, so one account cannot hold the process's sockets and tasks) and ends when
//! [`AuthService::session_ended`] says its session did — signed out, expired, or its user removed.
//!
//! The session is looked up again every [`SESSION_RECHECK`]: one primary-key read per connection, which also
//! sees a sign-out made through another replica.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use app::context::Session;
use app::error::AppError;
use catalog::UserId;

use super::AuthService;

/// How often a live connection's session is checked again.
pub const SESSION_RECHECK: Duration = Duration::from_secs(2);
/// Live connections one user may hold at once, across all their tabs and clients.
pub const MAX_LIVE_PER_USER: usize = 32;

/// How many live connections each user holds.
#[derive(Default)]
pub struct LiveConnections {
    held: Mutex<HashMap<UserId, usize>>,
}

/// One live connection's place; given back when dropped.
pub struct LiveSlot {
    connections: Arc<LiveConnections>,
    user: UserId,
}

impl LiveConnections {
    fn take(self: &Arc<Self>, user: &UserId) -> Result<LiveSlot, AppError> {
        let mut held = self.held.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let count = held.entry(user.clone()).or_default();
        if *count >= MAX_LIVE_PER_USER {
            return Err(AppError::RateLimited { retry_after: 5 });
        }
        *count += 1;
        Ok(LiveSlot { connections: self.clone(), user: user.clone() })
    }
}

impl Drop for LiveSlot {
    fn drop(&mut self) {
        let mut held = self.connections.held.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(count) = held.get_mut(&self.user) {
            *count -= 1;
            if *count == 0 {
                held.remove(&self.user);
            }
        }
    }
}

impl AuthService {
    /// A place for one more live connection of `session`'s user; 429 when they hold [`MAX_LIVE_PER_USER`].
    pub fn open_live(&self, session: &Session) -> Result<LiveSlot, AppError> {
        self.live.take(&session.user.id)
    }

    /// Completes once `session` has ended, or its user's role has changed since it was opened (a connection
    /// opened with an administrator's view must not keep it after a demotion; the client reconnects with what
    /// the user may see now). Checked every [`SESSION_RECHECK`]; a database that does not answer ends nothing:
    /// the next check decides.
    pub fn session_ended(self: &Arc<Self>, session: &Session) -> impl Future<Output = ()> + Send + use<> {
        let (auth, session_id, role) = (self.clone(), session.id.clone(), session.user.role);
        async move {
            loop {
                tokio::time::sleep(SESSION_RECHECK).await;
                match auth.current_user(&session_id).await {
                    Ok(None) => return,
                    Ok(Some(user)) if user.role != role => return,
                    Ok(Some(_)) | Err(_) => {}
                }
            }
        }
    }
}
