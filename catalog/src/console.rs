//! The live console's wire protocol (`GET /api/servers/{id}/console`, a WebSocket): one JSON object per text
//! message, tagged by `type`. Browser and server both use these types, so they cannot drift apart.
//!
//! The server opens with a [`ConsoleEvent::Backlog`] (the server's recent output and its status), then sends
//! output as it comes, status changes and notices. A `backlog` always means "this is the whole screen now": a
//! client that reconnects clears what it showed and draws the backlog, so no line appears twice.
//!
//! New message types may be added (stats — CPU, memory, players — are planned); a client ignores a `type` it
//! does not know, which the [`ConsoleEvent::Unknown`] catch-all does for clients built with these types.

use serde::{Deserialize, Serialize};

use crate::state::ServerStatus;

/// How many recent output lines a viewer gets on connect.
pub const BACKLOG_LINES: usize = 1000;
/// Longest command line a viewer may send, in bytes.
pub const MAX_COMMAND_LEN: usize = 1024;

/// Server → browser.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ConsoleEvent {
    /// Sent first on every connection, and again whenever the output starts over (the game's output stream had
    /// to be reopened): the screen's whole content.
    Backlog { lines: Vec<String>, status: ServerStatus },
    /// New output lines, oldest first (several at once when output is quick).
    Output { lines: Vec<String> },
    /// The server's status changed (stopped, starting again, …); `message` says why where that needs saying.
    Status { status: ServerStatus, message: Option<String> },
    /// This viewer fell behind and `lines` lines were skipped for it; the others were not held up.
    Skipped { lines: u64 },
    /// The game printed faster than the console passes on; `lines` lines were left out (the game still has
    /// them in its own log).
    Throttled { lines: u64 },
    /// Something went wrong for this viewer, e.g. a command that could not be delivered.
    Error { message: String },
    /// A message type this build does not know (sent by a newer server); ignored.
    #[serde(other)]
    Unknown,
}

/// Browser → server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ConsoleCommand {
    /// A line typed on the game's console (without the newline).
    Command { line: String },
}

impl ConsoleCommand {
    /// Checks a command line before it reaches the game: one line, not empty, at most [`MAX_COMMAND_LEN`] bytes.
    /// The error names what is wrong with it.
    pub fn check(&self) -> Result<&str, String> {
        let ConsoleCommand::Command { line } = self;
        let line = line.trim_end_matches(['\r', '\n']);
        if line.trim().is_empty() {
            return Err("command: is empty".to_owned());
        }
        if line.len() > MAX_COMMAND_LEN {
            return Err(format!("command: must be at most {MAX_COMMAND_LEN} bytes"));
        }
        if line.chars().any(|c| c.is_control() && c != '\t') {
            return Err("command: must be a single line of printable characters".to_owned());
        }
        Ok(line)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_event_round_trips_as_tagged_json() {
        let events = [
            ConsoleEvent::Backlog { lines: vec!["a".into(), "b".into()], status: ServerStatus::Running },
            ConsoleEvent::Output { lines: vec!["[Server] hello".into()] },
            ConsoleEvent::Status { status: ServerStatus::Stopped, message: Some("stopped by you".into()) },
            ConsoleEvent::Skipped { lines: 12 },
            ConsoleEvent::Throttled { lines: 3000 },
            ConsoleEvent::Error { message: "the server is not running".into() },
        ];
        for event in events {
            let json = serde_json::to_string(&event).expect("serialize");
            assert_eq!(serde_json::from_str::<ConsoleEvent>(&json).expect("parse"), event, "{json}");
        }
        let json = serde_json::to_string(&ConsoleEvent::Output { lines: vec!["x".into()] }).expect("serialize");
        assert_eq!(json, r#"{"type":"output","lines":["x"]}"#);
        let json = serde_json::to_string(&ConsoleEvent::Status { status: ServerStatus::Running, message: None })
            .expect("serialize");
        assert_eq!(json, r#"{"type":"status","status":"running","message":null}"#);
    }

    #[test]
    fn commands_round_trip_and_unknown_event_types_are_ignored() {
        let command = ConsoleCommand::Command { line: "say hello".into() };
        let json = serde_json::to_string(&command).expect("serialize");
        assert_eq!(json, r#"{"type":"command","line":"say hello"}"#);
        assert_eq!(serde_json::from_str::<ConsoleCommand>(&json).expect("parse"), command);

        let later = r#"{"type":"stats","cpu":0.5,"memory_bytes":1024,"players":3}"#;
        assert_eq!(serde_json::from_str::<ConsoleEvent>(later).expect("parse"), ConsoleEvent::Unknown);
    }

    #[test]
    fn command_lines_are_checked() {
        let check = |line: &str| ConsoleCommand::Command { line: line.into() }.check().map(str::to_owned);
        assert_eq!(check("say hi\n"), Ok("say hi".into()));
        assert_eq!(check("say\thi"), Ok("say\thi".into()));
        for bad in ["", "   ", "say a\nstop", "\u{1b}[2J"] {
            assert!(check(bad).is_err_and(|e| e.starts_with("command:")), "{bad:?}");
        }
        assert!(check(&"x".repeat(MAX_COMMAND_LEN)).is_ok());
        assert!(check(&"x".repeat(MAX_COMMAND_LEN + 1)).is_err());
    }
}
