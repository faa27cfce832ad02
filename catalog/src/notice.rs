//! What a customer reads about their server: the status messages Spawnpoint itself writes.
//!
//! Each is chosen from this curated set and never carries an outside system's own words (a Kubernetes error, a
//! Stripe or Cloudflare answer): those go to the log and to administrators as the message's detail.

use std::fmt;

/// A status message about a server, as its owner reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// Running by its row, but nothing ran (Spawnpoint restarted, or someone removed it).
    Vanished,
    /// Being started again after the failure it showed.
    Retrying { after: String },
    /// The game server could not be started.
    StartFailed(StartFailure),
    /// An install step failed; `reason` names the step and the cause, in Spawnpoint's words (a checksum
    /// mismatch, a version the download service does not have, a full disk).
    InstallFailed { reason: String },
    /// The game did not become ready in time; what was started was stopped.
    StartTimeout { secs: u64 },
    /// The game exited by itself and is restarted after a backoff.
    Crashed { exit: String, restart_in_secs: u64 },
    /// The game crashed too often to be restarted automatically.
    CrashLoop { crashes: usize, window_secs: u64, exit: String },
    /// Stopping the game server failed; retried.
    StopFailed,
    /// A deleted server's clean-up is held up at this step; retried.
    CleanupFailed(CleanupStep),
    /// The server's DNS name could not be updated; retried.
    DnsNotUpdated { retry_in_secs: u64 },
    /// A paid server lapsed: stopped, and deleted after the grace period unless paid.
    Unpaid { grace_days: i64 },
    /// The subscription paid for is not this server's plan: treated as unpaid.
    PlanMismatch { grace_days: i64 },
    /// The first payment's checkout was abandoned.
    CheckoutAbandoned,
    /// Deleted because the first payment never came.
    NeverPaid,
    /// Deleted because a lapsed subscription was not paid within its grace period.
    GraceOver,
}

/// Why a game server could not be started, in words a customer can act on (or wait out).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartFailure {
    /// The server's plan or game is no longer offered.
    PlanGone { game: String, plan: String },
    /// Every game port of this machine is taken.
    NoFreePort { first: u16, last: u16 },
    /// The cluster did not answer in time.
    ClusterUnreachable,
    /// The cluster refused the game server.
    ClusterRefused,
    /// This machine could not start the game.
    Local,
}

/// The step of a deleted server's clean-up that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CleanupStep {
    Subscription,
    GameServer,
    Dns,
    Backups,
}

impl fmt::Display for Notice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Notice::Vanished => f.write_str("the game server was gone; starting it again"),
            Notice::Retrying { after } => write!(f, "retrying after: {after}"),
            Notice::StartFailed(failure) => write!(f, "could not start: {failure}"),
            Notice::InstallFailed { reason } => write!(f, "install failed: {reason}"),
            Notice::StartTimeout { secs } => write!(f, "did not become ready within {secs} s"),
            Notice::Crashed { exit, restart_in_secs } => {
                write!(f, "crashed ({exit}); restarting in {restart_in_secs} s")
            }
            Notice::CrashLoop { crashes, window_secs, exit } => write!(
                f,
                "crashed {crashes} times within {window_secs} s, so it is not restarted automatically; last: {exit}"
            ),
            Notice::StopFailed => f.write_str("could not stop the game server; retrying"),
            Notice::CleanupFailed(step) => write!(f, "clean-up failed, retrying: {step}"),
            Notice::PlanMismatch { grace_days } => write!(
                f,
                "the subscription paid for is not this server's plan, so the server counts as unpaid and is deleted \
                 in {grace_days} days; contact support to fix the subscription"
            ),
            Notice::DnsNotUpdated { retry_in_secs } => {
                write!(f, "DNS not updated: the DNS provider refused or did not answer; retrying in {retry_in_secs} s")
            }
            Notice::Unpaid { grace_days } => write!(
                f,
                "the subscription is not paid: the server is stopped, and deleted with its data in {grace_days} days \
                 unless it is paid"
            ),
            Notice::CheckoutAbandoned => f.write_str("the checkout was abandoned"),
            Notice::NeverPaid => f.write_str("not paid within a day of its creation"),
            Notice::GraceOver => f.write_str("the subscription was not paid within its grace period"),
        }
    }
}

impl fmt::Display for StartFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartFailure::PlanGone { game, plan } => {
                write!(f, "plan `{plan}` of game `{game}` is no longer in the catalog")
            }
            StartFailure::NoFreePort { first, last } => write!(f, "no free game port in {first}-{last}"),
            StartFailure::ClusterUnreachable => f.write_str("the cluster did not answer in time"),
            StartFailure::ClusterRefused => f.write_str("the cluster refused the game server"),
            StartFailure::Local => f.write_str("this machine could not start the game"),
        }
    }
}

impl fmt::Display for CleanupStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CleanupStep::Subscription => "subscription not cancelled",
            CleanupStep::GameServer => "game server and data not removed",
            CleanupStep::Dns => "DNS records not removed",
            CleanupStep::Backups => "backups not removed",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notices_read_as_customers_are_told() {
        assert_eq!(Notice::StartTimeout { secs: 1 }.to_string(), "did not become ready within 1 s");
        let crashed = Notice::Crashed { exit: "the game exited with code 3".into(), restart_in_secs: 2 };
        assert_eq!(crashed.to_string(), "crashed (the game exited with code 3); restarting in 2 s");
        assert!(Notice::Unpaid { grace_days: 7 }.to_string().contains("in 7 days"));
        assert!(Notice::DnsNotUpdated { retry_in_secs: 4 }.to_string().starts_with("DNS not updated:"));
        let held = Notice::CleanupFailed(CleanupStep::Subscription).to_string();
        assert_eq!(held, "clean-up failed, retrying: subscription not cancelled");
        let refused = Notice::StartFailed(StartFailure::ClusterRefused).to_string();
        assert_eq!(refused, "could not start: the cluster refused the game server");
    }
}
