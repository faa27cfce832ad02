//! Backups and schedules as the API and the browser see them.

use serde::{Deserialize, Serialize};

use crate::ids::ServerId;

/// Longest backup or schedule name, in characters.
pub const MAX_NAME_LEN: usize = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackupStatus {
    /// Being taken (or being restored from: see [`Backup::restoring`]).
    Pending,
    Ok,
    Failed,
}

impl BackupStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            BackupStatus::Pending => "pending",
            BackupStatus::Ok => "ok",
            BackupStatus::Failed => "failed",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "pending" => BackupStatus::Pending,
            "ok" => BackupStatus::Ok,
            "failed" => BackupStatus::Failed,
            _ => return None,
        })
    }
}

/// One backup of a server's files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Backup {
    pub id: String,
    pub server_id: ServerId,
    pub name: String,
    pub status: BackupStatus,
    /// Bytes of the compressed archive, once it is whole.
    pub size: Option<u64>,
    /// SHA-256 of the compressed archive (hex), checked again on restore.
    pub sha256: Option<String>,
    /// Why it failed, in Spawnpoint's words.
    pub error: Option<String>,
    /// Unix seconds.
    pub created_at: i64,
    /// How long taking it took, in milliseconds.
    pub duration_ms: Option<u64>,
    /// A locked backup is never deleted, by hand or by rotation, until unlocked.
    pub locked: bool,
    /// The ignore patterns it was taken with.
    pub ignore: String,
    /// The schedule that took it, if one did (rotation keeps each schedule's own).
    pub schedule_id: Option<String>,
    /// A restore from it is under way.
    #[serde(default)]
    pub restoring: bool,
    /// Why the last restore from it failed (the server's files were left as they were).
    #[serde(default)]
    pub restore_error: Option<String>,
}

/// `POST /api/servers/{id}/backups {name, ignore}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewBackup {
    #[serde(default)]
    pub name: String,
    /// Ignore patterns, one per line ([`crate::files::Ignore`]).
    #[serde(default)]
    pub ignore: String,
}

/// A name as given, trimmed, or why it cannot be one (`field` names the input).
pub fn check_name(field: &'static str, name: &str) -> Result<String, crate::account::FieldError> {
    let name = name.trim();
    let problem = if name.is_empty() {
        Some("must not be empty".to_owned())
    } else if name.chars().count() > MAX_NAME_LEN {
        Some(format!("must be at most {MAX_NAME_LEN} characters"))
    } else if name.chars().any(char::is_control) {
        Some("must be one line of text".to_owned())
    } else {
        None
    };
    match problem {
        Some(message) => Err(crate::account::FieldError { field, message }),
        None => Ok(name.to_owned()),
    }
}
