//! A customer's game server as the API and the browser see it, and the rules for creating one.

use serde::{Deserialize, Serialize};

use crate::account::FieldError;
use crate::ids::{ServerId, UserId};
use crate::state::ServerStatus;

/// Longest server name, in characters.
pub const MAX_NAME_LEN: usize = 64;

/// A game server, as every route and page shows it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct GameServer {
    /// Short, DNS-safe and unique: it becomes a hostname and a Kubernetes object name.
    pub id: ServerId,
    pub name: String,
    pub game: String,
    pub plan: String,
    pub status: ServerStatus,
    /// Why the server is in its state, when that needs saying (the last failure, say): one of Spawnpoint's own
    /// [`crate::Notice`]s, never an outside system's words.
    pub status_message: Option<String>,
    /// The outside system's own words behind the status message (a Kubernetes or payment provider error):
    /// shown to administrators only, `None` for everyone else.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_detail: Option<String>,
    /// What a player types to connect (`host:port`); `None` until the server runs.
    pub address: Option<String>,
    /// Owner's user id.
    pub user_id: UserId,
    /// Unix seconds.
    pub created_at: i64,
    /// Where to pay for it, while billing is on and the first payment is awaited.
    pub checkout_url: Option<String>,
    /// What the install is doing, while the server is installing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub install: Option<InstallProgress>,
    /// Bumped by every change to the server: of two views of it, the higher version is the newer.
    #[serde(default)]
    pub version: i64,
}

/// How much of its plan's storage a server's files take (`GET /api/servers/{id}/disk`), where the driver can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiskUsage {
    pub used_bytes: u64,
    pub limit_bytes: u64,
}

/// What creating a server asks for (`POST /api/servers`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewServer {
    pub name: String,
    pub game: String,
    pub plan: String,
    /// Startup variables by key; the rest take their defaults.
    #[serde(default)]
    pub variables: std::collections::BTreeMap<String, String>,
    /// The customer accepted the game's licence (required for games that have one).
    #[serde(default)]
    pub accept_eula: bool,
}

/// A server's startup variables as its settings page shows them (`GET /api/servers/{id}/variables`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerVariables {
    /// Every variable the customer may see, with its rule.
    pub variables: Vec<crate::variables::Variable>,
    pub values: std::collections::BTreeMap<String, String>,
    /// The most players the server's plan allows (the bound of "max players").
    pub plan_players: u32,
}

/// The install step running now (`paper`, `steamcmd`, …) and, for a download, how far it is.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct InstallProgress {
    pub step: String,
    pub done_bytes: u64,
    /// `None` while the size is not known.
    pub total_bytes: Option<u64>,
}

impl InstallProgress {
    /// "paper: 12.0 of 48.5 MiB", or the step alone before a download has begun.
    pub fn describe(&self) -> String {
        let mib = |bytes: u64| bytes as f64 / (1024.0 * 1024.0);
        match (self.done_bytes, self.total_bytes) {
            (0, None) => self.step.clone(),
            (done, None) => format!("{}: {:.1} MiB", self.step, mib(done)),
            (done, Some(total)) => format!("{}: {:.1} of {:.1} MiB", self.step, mib(done), mib(total)),
        }
    }
}

impl GameServer {
    /// Whether this view of the server may replace `shown`: it is not older (a stale event delivered late is).
    pub fn supersedes(&self, shown: &GameServer) -> bool {
        self.version >= shown.version
    }
}

/// What a player types to connect: `host:port`, with an IPv6 host in brackets.
pub fn address(host: &str, port: u16) -> String {
    if host.contains(':') { format!("[{host}]:{port}") } else { format!("{host}:{port}") }
}

/// A change to someone's servers, pushed to open dashboards (`GET /api/servers/events`, one JSON object per
/// server-sent event).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerEvent {
    /// The server as it is now: new, or changed in any way.
    /// Boxed: the whole view, where the other variant is two ids.
    Changed { server: Box<GameServer> },
    /// The server is gone for good (its deletion finished).
    Removed { id: ServerId, user_id: UserId },
}

impl ServerEvent {
    pub fn user_id(&self) -> &UserId {
        match self {
            ServerEvent::Changed { server } => &server.user_id,
            ServerEvent::Removed { user_id, .. } => user_id,
        }
    }

    pub fn server_id(&self) -> &ServerId {
        match self {
            ServerEvent::Changed { server } => &server.id,
            ServerEvent::Removed { id, .. } => id,
        }
    }
}

/// Trims a server name and checks it: 1 to 64 printable characters.
pub fn check_name(raw: &str) -> Result<String, FieldError> {
    let name = raw.trim();
    if name.is_empty() {
        return Err(FieldError::new("name", "is required"));
    }
    if name.chars().count() > MAX_NAME_LEN {
        return Err(FieldError::new("name", format!("must be at most {MAX_NAME_LEN} characters")));
    }
    if name.chars().any(char::is_control) {
        return Err(FieldError::new("name", "must be printable characters only"));
    }
    Ok(name.to_owned())
}

/// A server id: `<2 of the game>-<12 random>`, lower-case letters and digits only — short enough for a
/// hostname label, and telling an operator at a glance what it is. It says nothing of its owner: the id is the
/// server's public DNS name, and a part of the user id in it would link one customer's servers for anyone.
/// `random` supplies the last part (the caller owns randomness; this crate does no I/O).
pub fn server_id(game: &str, random: &str) -> ServerId {
    let part = |text: &str, len: usize| -> String {
        text.chars().filter(|c| c.is_ascii_alphanumeric()).map(|c| c.to_ascii_lowercase()).take(len).collect()
    };
    ServerId::new(format!("{}-{}", part(game, 2), part(random, 12)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(check_name("  My world "), Ok("My world".into()));
        assert_eq!(check_name(&"é".repeat(64)).map(|n| n.chars().count()), Ok(64));
        for bad in ["", "   ", "tab\there", "line\nbreak"] {
            assert_eq!(check_name(bad).map_err(|e| e.field), Err("name"), "{bad:?}");
        }
        assert!(check_name(&"x".repeat(65)).is_err());
    }

    #[test]
    fn addresses_bracket_ipv6_hosts() {
        assert_eq!(address("203.0.113.7", 25000), "203.0.113.7:25000");
        assert_eq!(address("play.example.com", 25565), "play.example.com:25565");
        assert_eq!(address("2001:db8::1", 25000), "[2001:db8::1]:25000");
    }

    #[test]
    fn install_progress_reads_as_step_and_mebibytes() {
        let at = |done, total| InstallProgress { step: "paper".into(), done_bytes: done, total_bytes: total };
        assert_eq!(at(0, None).describe(), "paper");
        assert_eq!(at(12 << 20, Some(48 << 20)).describe(), "paper: 12.0 of 48.0 MiB");
        assert_eq!(at(3 << 20, None).describe(), "paper: 3.0 MiB");
    }

    #[test]
    fn a_view_never_gives_way_to_an_older_one() {
        let at = |version| GameServer {
            id: "s".into(),
            name: "n".into(),
            game: "demo".into(),
            plan: "tiny".into(),
            status: ServerStatus::Running,
            status_message: None,
            status_detail: None,
            address: None,
            user_id: "u".into(),
            created_at: 0,
            checkout_url: None,
            install: None,
            version,
        };
        assert!(at(3).supersedes(&at(2)) && at(3).supersedes(&at(3)));
        assert!(!at(2).supersedes(&at(3)), "a stale event is dropped");
    }

    #[test]
    fn events_are_tagged_json() {
        let removed = ServerEvent::Removed { id: "a-de-b".into(), user_id: "u".into() };
        let json = serde_json::to_string(&removed).expect("serialize");
        assert_eq!(json, r#"{"type":"removed","id":"a-de-b","user_id":"u"}"#);
        assert_eq!(serde_json::from_str::<ServerEvent>(&json).expect("parse"), removed);
    }

    #[test]
    fn ids_are_short_dns_safe_and_say_what_but_not_whose() {
        let id = server_id("minecraft-java", "k7x2p9a1b2c3d4e5");
        assert_eq!(id, "mi-k7x2p9a1b2c3");
        let id = server_id("ark", "Q1W2E3R4");
        assert_eq!(id, "ar-q1w2e3r4");
        assert!(id.as_str().len() <= 30);
        assert!(id.as_str().chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'));
    }
}
