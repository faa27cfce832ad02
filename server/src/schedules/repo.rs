//! The `schedules` table.

use catalog::ServerId;
use catalog::backups::{Retention, Schedule, Task};
use sqlx::Row as _;
use sqlx::any::AnyRow;

use crate::db::{Db, now};

const COLUMNS: &str = "id, server_id, name, cron, timezone, enabled, only_when_online, tasks, retention, last_run_at, \
                       next_run_at, last_result, running";

fn read(row: &AnyRow) -> Result<Schedule, sqlx::Error> {
    let json = |column: &str| -> Result<String, sqlx::Error> { row.try_get(column) };
    let decode = |e: serde_json::Error| sqlx::Error::Decode(e.into());
    Ok(Schedule {
        id: row.try_get("id")?,
        server_id: ServerId::new(row.try_get::<String, _>("server_id")?),
        name: row.try_get("name")?,
        cron: row.try_get("cron")?,
        timezone: row.try_get("timezone")?,
        enabled: row.try_get::<i64, _>("enabled")? != 0,
        only_when_online: row.try_get::<i64, _>("only_when_online")? != 0,
        tasks: serde_json::from_str::<Vec<Task>>(&json("tasks")?).map_err(decode)?,
        retention: serde_json::from_str::<Retention>(&json("retention")?).map_err(decode)?,
        last_run_at: row.try_get("last_run_at")?,
        next_run_at: row.try_get("next_run_at")?,
        last_result: row.try_get("last_result")?,
        running: row.try_get::<Option<i64>, _>("running")?.is_some(),
    })
}

fn to_json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "null".into())
}

pub struct ScheduleRepo {
    db: Db,
}

impl ScheduleRepo {
    pub fn new(db: Db) -> Self {
        Self { db }
    }

    pub async fn list(&self, server: &ServerId) -> Result<Vec<Schedule>, sqlx::Error> {
        // Only the constant column list is formatted in.
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM schedules WHERE server_id = $1 ORDER BY created_at, id"
        )))
        .bind(server.as_str())
        .fetch_all(self.db.pool())
        .await?;
        rows.iter().map(read).collect()
    }

    pub async fn get(&self, server: &ServerId, id: &str) -> Result<Option<Schedule>, sqlx::Error> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM schedules WHERE server_id = $1 AND id = $2"
        )))
        .bind(server.as_str())
        .bind(id)
        .fetch_optional(self.db.pool())
        .await?;
        row.as_ref().map(read).transpose()
    }

    /// Enabled schedules due at `at`.
    pub async fn due(&self, at: i64) -> Result<Vec<Schedule>, sqlx::Error> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM schedules WHERE enabled = 1 AND running IS NULL AND next_run_at <= $1"
        )))
        .bind(at)
        .fetch_all(self.db.pool())
        .await?;
        rows.iter().map(read).collect()
    }

    /// Writes the whole schedule (a new one, or every field of a changed one).
    pub async fn save(&self, schedule: &Schedule) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO schedules (id, server_id, name, cron, timezone, enabled, only_when_online, tasks, retention, \
             created_at, next_run_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
             ON CONFLICT (id) DO UPDATE SET name = $3, cron = $4, timezone = $5, enabled = $6, only_when_online = $7, \
             tasks = $8, retention = $9, next_run_at = $11",
        )
        .bind(&schedule.id)
        .bind(schedule.server_id.as_str())
        .bind(&schedule.name)
        .bind(&schedule.cron)
        .bind(&schedule.timezone)
        .bind(i64::from(schedule.enabled))
        .bind(i64::from(schedule.only_when_online))
        .bind(to_json(&schedule.tasks))
        .bind(to_json(&schedule.retention))
        .bind(now())
        .bind(schedule.next_run_at)
        .execute(self.db.pool())
        .await?;
        Ok(())
    }

    pub async fn delete(&self, server: &ServerId, id: &str) -> Result<bool, sqlx::Error> {
        let deleted = sqlx::query("DELETE FROM schedules WHERE server_id = $1 AND id = $2")
            .bind(server.as_str())
            .bind(id)
            .execute(self.db.pool())
            .await?;
        Ok(deleted.rows_affected() == 1)
    }

    /// Claims a run: marks it running and moves the next run on, unless another runner got there first (or it
    /// runs already). `due` is the `next_run_at` the claimer saw (`None` for "run now").
    pub async fn claim(&self, id: &str, due: Option<i64>, next: Option<i64>) -> Result<bool, sqlx::Error> {
        let claimed = match due {
            Some(due) => {
                sqlx::query(
                    "UPDATE schedules SET running = $2, next_run_at = $3 \
                     WHERE id = $1 AND running IS NULL AND next_run_at = $4",
                )
                .bind(id)
                .bind(now())
                .bind(next)
                .bind(due)
                .execute(self.db.pool())
                .await?
            }
            None => {
                sqlx::query("UPDATE schedules SET running = $2 WHERE id = $1 AND running IS NULL")
                    .bind(id)
                    .bind(now())
                    .execute(self.db.pool())
                    .await?
            }
        };
        Ok(claimed.rows_affected() == 1)
    }

    pub async fn finish(&self, id: &str, result: &str) -> Result<(), sqlx::Error> {
        sqlx::query("UPDATE schedules SET running = NULL, last_run_at = $2, last_result = $3 WHERE id = $1")
            .bind(id)
            .bind(now())
            .bind(result)
            .execute(self.db.pool())
            .await?;
        Ok(())
    }

    /// Runs a Spawnpoint that stopped left marked as running.
    pub async fn recover(&self) -> Result<(), sqlx::Error> {
        sqlx::query(
            "UPDATE schedules SET running = NULL, last_result = 'interrupted: Spawnpoint stopped during the run' \
             WHERE running IS NOT NULL",
        )
        .execute(self.db.pool())
        .await?;
        Ok(())
    }
}
