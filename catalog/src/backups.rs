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

/// What one task of a schedule does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum TaskAction {
    /// `start`, `stop` or `restart`.
    Power { power: String },
    /// A line typed on the game's console.
    Command { command: String },
    /// A backup (kept within the schedule's retention).
    Backup {
        #[serde(default)]
        ignore: String,
    },
}

/// A schedule's task, run `offset_s` seconds after the one before it (the first: after the schedule fires).
/// (Unknown fields cannot be refused here: serde does not check them through a flattened enum.)
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Task {
    #[serde(flatten)]
    pub action: TaskAction,
    #[serde(default)]
    pub offset_s: u32,
}

/// Which of a schedule's backups are kept (grandfather-father-son): the last `keep_last`, and the newest of each
/// of the last `keep_daily` days and `keep_weekly` weeks. Locked backups are never rotated; a schedule with no
/// retention keeps what the plan allows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Retention {
    #[serde(default)]
    pub keep_last: u32,
    #[serde(default)]
    pub keep_daily: u32,
    #[serde(default)]
    pub keep_weekly: u32,
}

/// Longest wait between two tasks (a day).
pub const MAX_OFFSET_S: u32 = 86_400;
/// Most tasks in one schedule.
pub const MAX_TASKS: usize = 20;
/// How many schedules one server may have.
pub const MAX_SCHEDULES: usize = 20;

/// A server's schedule, as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Schedule {
    pub id: String,
    pub server_id: ServerId,
    pub name: String,
    /// `minute hour day-of-month month day-of-week`, or `@daily` and the like.
    pub cron: String,
    /// The IANA time zone the cron expression is read in (`Europe/Berlin`).
    pub timezone: String,
    pub enabled: bool,
    /// Runs only while the server is running (a run that finds it otherwise is skipped, and says so).
    pub only_when_online: bool,
    pub tasks: Vec<Task>,
    pub retention: Retention,
    /// Unix seconds.
    pub last_run_at: Option<i64>,
    pub next_run_at: Option<i64>,
    /// How the last run went: `None` while none has run; `ok`, or why it failed or was skipped.
    pub last_result: Option<String>,
    pub running: bool,
}

/// `POST /api/servers/{id}/schedules` and, every field optional, `PATCH …/schedules/{sid}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleChange {
    pub name: Option<String>,
    pub cron: Option<String>,
    pub timezone: Option<String>,
    pub enabled: Option<bool>,
    pub only_when_online: Option<bool>,
    pub tasks: Option<Vec<Task>>,
    pub retention: Option<Retention>,
}

impl Task {
    /// Whether the task can run: else the field at fault (`tasks[2].command`) and why.
    pub fn check(&self, index: usize) -> Result<(), (String, String)> {
        let problem = match &self.action {
            TaskAction::Power { power } if !["start", "stop", "restart"].contains(&power.as_str()) => {
                Some(("power", "must be start, stop or restart".to_owned()))
            }
            TaskAction::Command { command } if command.trim().is_empty() || command.len() > 1000 => {
                Some(("command", "must be 1 to 1000 characters".to_owned()))
            }
            TaskAction::Command { command } if command.chars().any(char::is_control) => {
                Some(("command", "must be one line of text".to_owned()))
            }
            TaskAction::Backup { ignore } if crate::files::Ignore::parse(ignore).is_err() => {
                Some(("ignore", "is not a list of ignore patterns".to_owned()))
            }
            _ if self.offset_s > MAX_OFFSET_S => Some(("offset_s", format!("must be at most {MAX_OFFSET_S} seconds"))),
            _ => None,
        };
        match problem {
            Some((name, message)) => Err((format!("tasks[{index}].{name}"), message)),
            None => Ok(()),
        }
    }
}

/// Tasks as the browser's form writes them, one per line: `say <text>` or `command <text>` (typed on the
/// console), `wait <seconds>` (before the next task), `backup`, `start`, `stop`, `restart`; `#` starts a comment.
pub fn parse_tasks(text: &str) -> Result<Vec<Task>, String> {
    let mut tasks = Vec::new();
    let mut wait = 0u32;
    for (number, line) in text.lines().enumerate().map(|(n, l)| (n + 1, l.trim())) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (word, rest) = line.split_once(' ').map_or((line, ""), |(w, r)| (w, r.trim()));
        let action = match word {
            "wait" => {
                let seconds: u32 =
                    rest.parse().map_err(|_| format!("line {number}: wait needs a number of seconds"))?;
                wait = wait.saturating_add(seconds);
                continue;
            }
            "say" => TaskAction::Command { command: line.to_owned() },
            "command" if !rest.is_empty() => TaskAction::Command { command: rest.to_owned() },
            "backup" => TaskAction::Backup { ignore: String::new() },
            "start" | "stop" | "restart" => TaskAction::Power { power: word.to_owned() },
            _ => {
                return Err(format!(
                    "line {number}: `{line}` is not a task (say, command, wait, backup, start, stop, restart)"
                ));
            }
        };
        tasks.push(Task { action, offset_s: std::mem::take(&mut wait) });
    }
    Ok(tasks)
}

/// Tasks the way [`parse_tasks`] reads them.
pub fn describe_tasks(tasks: &[Task]) -> String {
    let mut lines = Vec::new();
    for task in tasks {
        if task.offset_s > 0 {
            lines.push(format!("wait {}", task.offset_s));
        }
        lines.push(match &task.action {
            TaskAction::Command { command } if command.starts_with("say ") => command.clone(),
            TaskAction::Command { command } => format!("command {command}"),
            TaskAction::Backup { .. } => "backup".to_owned(),
            TaskAction::Power { power } => power.clone(),
        });
    }
    lines.join("\n")
}

/// `2026-12-02 03:00 UTC` for Unix seconds.
pub fn format_utc(seconds: i64) -> String {
    let (days, rest) = (seconds.div_euclid(86_400), seconds.rem_euclid(86_400));
    // Howard Hinnant's days-to-civil.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02} {:02}:{:02} UTC", rest / 3600, rest % 3600 / 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tasks_read_as_written_and_back() {
        let text = "say restarting in 5 minutes\nwait 300\nbackup\nrestart";
        let tasks = parse_tasks(text).expect("parses");
        assert_eq!(tasks.len(), 3);
        assert_eq!(tasks[1], Task { action: TaskAction::Backup { ignore: String::new() }, offset_s: 300 });
        assert_eq!(describe_tasks(&tasks), text);
        assert!(parse_tasks("explode").expect_err("refused").starts_with("line 1"));
        assert!(parse_tasks("wait soon").is_err());
    }

    #[test]
    fn times_read_in_utc() {
        assert_eq!(format_utc(0), "1970-01-01 00:00 UTC");
        assert_eq!(format_utc(1_796_180_400), "2026-12-02 03:00 UTC");
    }
}
