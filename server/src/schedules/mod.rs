//! Per-server schedules: a cron expression in the server's time zone, and tasks run in order with waits
//! between them (power, a console command, a backup), for example "say restarting in 5 minutes", wait, back
//! up, restart. A runner claims each due run in the database (so a run is taken once) and records how it went.

pub mod cron;
pub mod repo;
pub mod routes;

use std::sync::Arc;
use std::time::Duration;

use app::error::AppError;
use app::servers::ssr::Servers as _;
use catalog::account::User;
use catalog::backups::{
    BackupStatus, MAX_SCHEDULES, MAX_TASKS, NewBackup, Retention, Schedule, ScheduleChange, TaskAction, check_name,
};
use catalog::{Action, ServerId, ServerStatus};
use jiff::Timestamp;
use jiff::tz::TimeZone;

use self::cron::Cron;
use self::repo::ScheduleRepo;
use crate::auth::AuthService;
use crate::backups::BackupService;
use crate::error::{internal, log_cause};
use crate::servers::ServerService;

/// How often the runner looks for due schedules.
const TICK: Duration = Duration::from_secs(5);
/// The longest a scheduled backup is waited for before the next task runs anyway.
const BACKUP_WAIT: Duration = Duration::from_secs(3600);

pub struct ScheduleService {
    servers: Arc<ServerService>,
    auth: Arc<AuthService>,
    backups: Arc<BackupService>,
    repo: ScheduleRepo,
}

impl ScheduleService {
    pub fn new(
        servers: Arc<ServerService>,
        auth: Arc<AuthService>,
        backups: Arc<BackupService>,
        db: crate::db::Db,
    ) -> Self {
        Self { servers, auth, backups, repo: ScheduleRepo::new(db) }
    }

    pub async fn list(&self, user: &User, id: &ServerId) -> Result<Vec<Schedule>, AppError> {
        self.servers.visible(user, id).await?;
        self.repo.list(id).await.map_err(internal)
    }

    pub async fn get(&self, user: &User, id: &ServerId, schedule: &str) -> Result<Schedule, AppError> {
        self.servers.visible(user, id).await?;
        let found = self.repo.get(id, schedule).await.map_err(internal)?;
        found.ok_or_else(|| AppError::NotFound(format!("server `{id}` has no schedule `{schedule}`")))
    }

    /// A new schedule; `name`, `cron` and `tasks` are required.
    pub async fn create(&self, user: &User, id: &ServerId, change: &ScheduleChange) -> Result<Schedule, AppError> {
        if self.servers.visible(user, id).await?.status == ServerStatus::Deleted {
            return Err(AppError::NotFound(format!("server `{id}` does not exist")));
        }
        let blank = Schedule {
            id: uuid::Uuid::now_v7().simple().to_string(),
            server_id: id.clone(),
            name: String::new(),
            cron: String::new(),
            timezone: "UTC".into(),
            enabled: true,
            only_when_online: false,
            tasks: Vec::new(),
            retention: Retention::default(),
            last_run_at: None,
            next_run_at: None,
            last_result: None,
            running: false,
        };
        for (field, missing) in
            [("name", change.name.is_none()), ("cron", change.cron.is_none()), ("tasks", change.tasks.is_none())]
        {
            if missing {
                return Err(AppError::invalid(field, "is required"));
            }
        }
        let schedule = applied(blank, change)?;
        // Checked before it is added: two creates racing may pass together, which a cap against floods allows.
        if self.repo.list(id).await.map_err(internal)?.len() >= MAX_SCHEDULES {
            return Err(AppError::Conflict {
                field: "schedules".into(),
                message: format!("a server has at most {MAX_SCHEDULES} schedules; delete one first"),
            });
        }
        self.repo.save(&schedule).await.map_err(internal)?;
        tracing::info!(server = %id, user = %user.id, schedule = %schedule.id, "schedule created");
        Ok(schedule)
    }

    pub async fn update(
        &self,
        user: &User,
        id: &ServerId,
        schedule: &str,
        change: &ScheduleChange,
    ) -> Result<Schedule, AppError> {
        let current = self.get(user, id, schedule).await?;
        let changed = applied(current, change)?;
        self.repo.save(&changed).await.map_err(internal)?;
        tracing::info!(server = %id, user = %user.id, schedule, "schedule changed");
        Ok(changed)
    }

    pub async fn delete(&self, user: &User, id: &ServerId, schedule: &str) -> Result<(), AppError> {
        self.get(user, id, schedule).await?;
        self.repo.delete(id, schedule).await.map_err(internal)?;
        tracing::info!(server = %id, user = %user.id, schedule, "schedule deleted");
        Ok(())
    }

    /// Runs the schedule now, whatever its cron says (`409` while a run of it is under way).
    pub async fn run_now(self: &Arc<Self>, user: &User, id: &ServerId, schedule: &str) -> Result<Schedule, AppError> {
        let found = self.get(user, id, schedule).await?;
        if !self.repo.claim(&found.id, None, None).await.map_err(internal)? {
            return Err(AppError::Conflict {
                field: "schedule".into(),
                message: "the schedule is running already".into(),
            });
        }
        tracing::info!(server = %id, user = %user.id, schedule, "schedule run by hand");
        let service = self.clone();
        let run = found.clone();
        tokio::spawn(async move { service.run(&run).await });
        Ok(Schedule { running: true, ..found })
    }

    /// Looks for due schedules every few seconds until the task is aborted (at shutdown).
    pub fn start(self: Arc<Self>) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            if let Err(error) = self.repo.recover().await {
                log_cause(&error);
            }
            let mut tick = tokio::time::interval(TICK);
            loop {
                tick.tick().await;
                let due = match self.repo.due(Timestamp::now().as_second()).await {
                    Ok(due) => due,
                    Err(error) => {
                        log_cause(&error);
                        continue;
                    }
                };
                for schedule in due {
                    let next = next_run(&schedule.cron, &schedule.timezone);
                    match self.repo.claim(&schedule.id, schedule.next_run_at, next).await {
                        Ok(true) => {
                            let service = self.clone();
                            tokio::spawn(async move { service.run(&schedule).await });
                        }
                        Ok(false) => {}
                        Err(error) => log_cause(&error),
                    }
                }
            }
        })
    }

    /// One run of a claimed schedule: its tasks in order, as the server's owner. The first failing task ends
    /// the run; the result says which and why.
    async fn run(&self, schedule: &Schedule) {
        let result = match self.run_tasks(schedule).await {
            Ok(()) => "ok".to_owned(),
            Err(reason) => {
                tracing::warn!(server = %schedule.server_id, schedule = %schedule.id, %reason, "scheduled task failed");
                reason
            }
        };
        if let Err(error) = self.repo.finish(&schedule.id, &result).await {
            log_cause(&error);
        }
    }

    async fn run_tasks(&self, schedule: &Schedule) -> Result<(), String> {
        let id = &schedule.server_id;
        let owner = self.owner(id).await?;
        if schedule.only_when_online {
            let server = self.servers.visible(&owner, id).await.map_err(|e| e.to_string())?;
            if server.status != ServerStatus::Running {
                return Err(format!(
                    "skipped: the server was {}, and this schedule runs only while it is online",
                    server.status
                ));
            }
        }
        for (index, task) in schedule.tasks.iter().enumerate() {
            tokio::time::sleep(Duration::from_secs(u64::from(task.offset_s))).await;
            let failed = |reason: String| format!("task {} failed: {reason}", index + 1);
            match &task.action {
                TaskAction::Power { power } => {
                    let action = match power.as_str() {
                        "start" => Action::Start,
                        "stop" => Action::Stop,
                        _ => Action::Restart,
                    };
                    self.servers.act(&owner, id, action).await.map_err(|e| failed(e.to_string()))?;
                }
                TaskAction::Command { command } => {
                    self.servers.type_command(&owner, id, command).await.map_err(|e| failed(e.to_string()))?;
                }
                TaskAction::Backup { ignore } => {
                    let name = format!("{} (scheduled)", schedule.name);
                    let new = NewBackup { name, ignore: ignore.clone() };
                    let backup = self
                        .backups
                        .create(&owner, id, &new, Some(&schedule.id))
                        .await
                        .map_err(|e| failed(e.to_string()))?;
                    let done = self.backups.wait(id, &backup.id, BACKUP_WAIT).await;
                    match done {
                        Some(done) if done.status == BackupStatus::Ok => {}
                        Some(done) => return Err(failed(done.error.unwrap_or_else(|| "the backup failed".into()))),
                        None => return Err(failed("the backup did not finish in time".into())),
                    }
                    self.backups
                        .rotate(id, &schedule.id, &schedule.retention)
                        .await
                        .map_err(|e| failed(e.to_string()))?;
                }
            }
        }
        Ok(())
    }

    /// Scheduled tasks act as the server's owner, with what the owner may do.
    async fn owner(&self, id: &ServerId) -> Result<User, String> {
        let owner = self.servers.owner_of(id).await.map_err(|e| e.to_string())?;
        let user = self.auth.user(&owner).await.map_err(|e| e.to_string())?;
        user.ok_or_else(|| "the server's owner no longer exists".into())
    }
}

/// `current` with `change` applied, every field checked; the next run follows the (new) cron and zone.
fn applied(mut schedule: Schedule, change: &ScheduleChange) -> Result<Schedule, AppError> {
    if let Some(name) = &change.name {
        schedule.name = check_name("name", name)?;
    }
    if let Some(cron) = &change.cron {
        Cron::parse(cron).map_err(|message| AppError::invalid("cron", message))?;
        schedule.cron = cron.trim().to_owned();
    }
    if let Some(zone) = &change.timezone {
        TimeZone::get(zone).map_err(|_| {
            AppError::invalid("timezone", format!("`{zone}` is not a time zone (like Europe/Berlin or UTC)"))
        })?;
        schedule.timezone = zone.clone();
    }
    if let Some(tasks) = &change.tasks {
        if tasks.is_empty() || tasks.len() > MAX_TASKS {
            return Err(AppError::invalid("tasks", format!("a schedule has 1 to {MAX_TASKS} tasks")));
        }
        for (index, task) in tasks.iter().enumerate() {
            task.check(index).map_err(|(field, message)| AppError::invalid(&field, message))?;
        }
        schedule.tasks = tasks.clone();
    }
    if let Some(retention) = change.retention {
        schedule.retention = retention;
    }
    if let Some(enabled) = change.enabled {
        schedule.enabled = enabled;
    }
    if let Some(online) = change.only_when_online {
        schedule.only_when_online = online;
    }
    schedule.next_run_at = if schedule.enabled { next_run(&schedule.cron, &schedule.timezone) } else { None };
    Ok(schedule)
}

/// When a (checked) cron expression next fires in `zone`, in Unix seconds.
fn next_run(cron: &str, zone: &str) -> Option<i64> {
    let cron = Cron::parse(cron).ok()?;
    let zone = TimeZone::get(zone).ok()?;
    cron.next_after(Timestamp::now(), &zone).map(|at| at.as_second())
}

/// The schedules page's server functions (on a shared service: a run goes on after the call).
pub struct SchedulesPage(pub Arc<ScheduleService>);

impl app::schedules::ssr::SchedulesPage for SchedulesPage {
    fn list<'a>(
        &'a self,
        user: &'a User,
        id: &'a ServerId,
    ) -> app::context::BoxFuture<'a, Result<Vec<Schedule>, AppError>> {
        Box::pin(self.0.list(user, id))
    }

    fn create<'a>(
        &'a self,
        user: &'a User,
        id: &'a ServerId,
        change: ScheduleChange,
    ) -> app::context::BoxFuture<'a, Result<Schedule, AppError>> {
        Box::pin(async move { self.0.create(user, id, &change).await })
    }

    fn act<'a>(
        &'a self,
        user: &'a User,
        id: &'a ServerId,
        schedule: &'a str,
        action: &'a str,
    ) -> app::context::BoxFuture<'a, Result<(), AppError>> {
        Box::pin(async move {
            let enabled = |enabled| ScheduleChange { enabled: Some(enabled), ..Default::default() };
            match action {
                "run" => self.0.run_now(user, id, schedule).await.map(|_| ()),
                "pause" => self.0.update(user, id, schedule, &enabled(false)).await.map(|_| ()),
                "resume" => self.0.update(user, id, schedule, &enabled(true)).await.map(|_| ()),
                "delete" => self.0.delete(user, id, schedule).await,
                other => Err(AppError::invalid("action", format!("`{other}` is not a schedule action"))),
            }
        })
    }
}
