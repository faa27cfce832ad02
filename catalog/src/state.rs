//! The game server state machine: which user action is allowed in which state, and where it leads.
//!
//! One pure function, [`ServerStatus::apply`], answers both questions. The browser uses it to enable power
//! buttons and the server uses it to refuse, so the two can never disagree.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Where a game server is in its life. Stored in the database as [`ServerStatus::as_str`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ServerStatus {
    /// Billing is on and the first payment has not arrived; nothing is provisioned.
    AwaitingPayment,
    /// Resources are being created (or recreated after a restart).
    Pending,
    /// The game server is ready for players.
    Running,
    /// Stopped by the user: game server gone, data kept.
    Stopped,
    /// Subscription ended: game server gone, data kept for the grace period.
    Expired,
    /// Clean-up pending: game server, data and DNS go, then the row.
    Deleted,
    /// Creation failed; the reconciler retries with backoff.
    Failed,
    /// The game's files are being installed (downloads, SteamCMD, …) before its first start or after a reinstall.
    Installing,
    /// An install step failed; nothing runs until the owner retries (start or reinstall).
    InstallFailed,
}

/// What a user can ask of a server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Start,
    Stop,
    Restart,
    /// Installs the game's files afresh (the world and the customer's files are kept), then starts it.
    Reinstall,
    Delete,
}

/// What a payment provider says about a server's subscription (billing on).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Payment {
    /// Paid (first payment, renewal, or a failed payment settled late).
    Paid,
    /// Payment failed, or the subscription ended or fell behind.
    Lapsed,
    /// The checkout was abandoned: the first payment will never come.
    CheckoutExpired,
}

/// An action that the current state does not allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("cannot {action} a server that is {status}")]
pub struct TransitionError {
    pub action: Action,
    pub status: ServerStatus,
}

impl ServerStatus {
    pub const ALL: [ServerStatus; 9] = [
        ServerStatus::AwaitingPayment,
        ServerStatus::Pending,
        ServerStatus::Running,
        ServerStatus::Stopped,
        ServerStatus::Expired,
        ServerStatus::Deleted,
        ServerStatus::Failed,
        ServerStatus::Installing,
        ServerStatus::InstallFailed,
    ];

    /// The state after `action`, or why it is not allowed now.
    ///
    /// Beyond the core rules (start: stopped → pending; stop: running → stopped; restart: running → pending;
    /// delete: any → deleted) a user may also stop a server that is still coming up or failing to, and retry a
    /// failed one at once — what a panel user expects instead of waiting on the reconciler's backoff. A failed
    /// install waits for its owner: start retries it, reinstall starts it over. An expired or unpaid server only
    /// moves by payment (billing) or deletion.
    pub fn apply(self, action: Action) -> Result<ServerStatus, TransitionError> {
        use Action::*;
        use ServerStatus::*;
        let next = match (action, self) {
            (Start, Stopped | Failed | InstallFailed) => Pending,
            (Stop, Running | Pending | Failed | Installing | InstallFailed) => Stopped,
            (Restart, Running) => Pending,
            (Reinstall, Running | Stopped | Failed | InstallFailed) => Pending,
            (Delete, status) if status != Deleted => Deleted,
            _ => return Err(TransitionError { action, status: self }),
        };
        Ok(next)
    }

    /// The state after `payment`, or `None` when it changes nothing from here.
    ///
    /// A payment provisions an unpaid server and brings an expired one back (the caller checks that its grace
    /// period has not run out); a lapse expires a server that has been paid for, whatever the user did with it
    /// since. Nothing brings back a deleted server.
    pub fn on_payment(self, payment: Payment) -> Option<ServerStatus> {
        use Payment::*;
        use ServerStatus::*;
        match (payment, self) {
            (Paid, AwaitingPayment | Expired) => Some(Pending),
            (Lapsed, Pending | Running | Stopped | Failed | Installing | InstallFailed) => Some(Expired),
            (CheckoutExpired, AwaitingPayment) => Some(Deleted),
            _ => None,
        }
    }

    /// Whether `action` is allowed now (for enabling buttons).
    pub fn allows(self, action: Action) -> bool {
        self.apply(action).is_ok()
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ServerStatus::AwaitingPayment => "awaiting_payment",
            ServerStatus::Pending => "pending",
            ServerStatus::Running => "running",
            ServerStatus::Stopped => "stopped",
            ServerStatus::Expired => "expired",
            ServerStatus::Deleted => "deleted",
            ServerStatus::Failed => "failed",
            ServerStatus::Installing => "installing",
            ServerStatus::InstallFailed => "install_failed",
        }
    }
}

impl Action {
    pub const ALL: [Action; 5] = [Action::Start, Action::Stop, Action::Restart, Action::Reinstall, Action::Delete];

    pub fn as_str(self) -> &'static str {
        match self {
            Action::Start => "start",
            Action::Stop => "stop",
            Action::Restart => "restart",
            Action::Reinstall => "reinstall",
            Action::Delete => "delete",
        }
    }
}

impl fmt::Display for ServerStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A status string that is not one of [`ServerStatus::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown server status `{0}`")]
pub struct UnknownStatus(pub String);

impl FromStr for ServerStatus {
    type Err = UnknownStatus;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        ServerStatus::ALL
            .into_iter()
            .find(|status| status.as_str() == text)
            .ok_or_else(|| UnknownStatus(text.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::Action::*;
    use super::ServerStatus::*;
    use super::*;

    /// The whole table, written out by hand: every (state, action) pair and its expected outcome.
    const TABLE: [(ServerStatus, [Option<ServerStatus>; 5]); 9] = [
        //                    start          stop           restart        reinstall      delete
        (AwaitingPayment, [None, None, None, None, Some(Deleted)]),
        (Pending, [None, Some(Stopped), None, None, Some(Deleted)]),
        (Running, [None, Some(Stopped), Some(Pending), Some(Pending), Some(Deleted)]),
        (Stopped, [Some(Pending), None, None, Some(Pending), Some(Deleted)]),
        (Expired, [None, None, None, None, Some(Deleted)]),
        (Deleted, [None, None, None, None, None]),
        (Failed, [Some(Pending), Some(Stopped), None, Some(Pending), Some(Deleted)]),
        (Installing, [None, Some(Stopped), None, None, Some(Deleted)]),
        (InstallFailed, [Some(Pending), Some(Stopped), None, Some(Pending), Some(Deleted)]),
    ];

    #[test]
    fn every_state_and_action_pair_matches_the_table() {
        assert_eq!(TABLE.len(), ServerStatus::ALL.len());
        for (status, expected) in TABLE {
            for (action, next) in Action::ALL.into_iter().zip(expected) {
                let got = status.apply(action);
                match next {
                    Some(next) => assert_eq!(got, Ok(next), "{action} from {status}"),
                    None => assert_eq!(got, Err(TransitionError { action, status }), "{action} from {status}"),
                }
                assert_eq!(status.allows(action), next.is_some());
            }
        }
    }

    #[test]
    fn payments_move_only_the_states_they_concern() {
        use Payment::*;
        //                    paid            lapsed          checkout expired
        let table = [
            (AwaitingPayment, [Some(Pending), None, Some(Deleted)]),
            (Pending, [None, Some(Expired), None]),
            (Running, [None, Some(Expired), None]),
            (Stopped, [None, Some(Expired), None]),
            (Expired, [Some(Pending), None, None]),
            (Deleted, [None, None, None]),
            (Failed, [None, Some(Expired), None]),
            (Installing, [None, Some(Expired), None]),
            (InstallFailed, [None, Some(Expired), None]),
        ];
        assert_eq!(table.len(), ServerStatus::ALL.len());
        for (status, expected) in table {
            for (payment, next) in [Paid, Lapsed, CheckoutExpired].into_iter().zip(expected) {
                assert_eq!(status.on_payment(payment), next, "{payment:?} when {status}");
            }
        }
    }

    #[test]
    fn refusals_name_the_action_and_the_state() {
        let error = Stopped.apply(Stop).expect_err("stopping a stopped server");
        assert_eq!(error.to_string(), "cannot stop a server that is stopped");
        assert_eq!(
            AwaitingPayment.apply(Start).map_err(|e| e.to_string()),
            Err("cannot start a server that is awaiting_payment".into())
        );
    }

    #[test]
    fn statuses_round_trip_through_their_database_text_and_json() {
        for status in ServerStatus::ALL {
            assert_eq!(status.as_str().parse::<ServerStatus>(), Ok(status));
            let json = serde_json::to_string(&status).expect("serializes");
            assert_eq!(json, format!("\"{}\"", status.as_str()));
        }
        assert_eq!("Running".parse::<ServerStatus>(), Err(UnknownStatus("Running".into())));
    }
}
