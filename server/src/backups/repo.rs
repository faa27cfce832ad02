//! The `backups` table.

use catalog::ServerId;
use catalog::backups::{Backup, BackupStatus};
use sqlx::Row as _;
use sqlx::any::AnyRow;

use crate::db::{Db, now};

const COLUMNS: &str = "id, server_id, name, status, object_key, size, sha256, error, created_at, duration_ms, locked, \
                       ignore_patterns, schedule_id, restoring, restore_error";

/// A backup's row: what the API shows, and where its archive is.
#[derive(Debug, Clone)]
pub struct BackupRow {
    pub backup: Backup,
    pub object_key: String,
}

fn read(row: &AnyRow) -> Result<BackupRow, sqlx::Error> {
    let status: String = row.try_get("status")?;
    let unsigned = |value: Option<i64>| value.map(|v| u64::try_from(v).unwrap_or(0));
    Ok(BackupRow {
        backup: Backup {
            id: row.try_get("id")?,
            server_id: ServerId::new(row.try_get::<String, _>("server_id")?),
            name: row.try_get("name")?,
            status: BackupStatus::parse(&status).unwrap_or(BackupStatus::Failed),
            size: unsigned(row.try_get("size")?),
            sha256: row.try_get("sha256")?,
            error: row.try_get("error")?,
            created_at: row.try_get("created_at")?,
            duration_ms: unsigned(row.try_get("duration_ms")?),
            locked: row.try_get::<i64, _>("locked")? != 0,
            ignore: row.try_get("ignore_patterns")?,
            schedule_id: row.try_get("schedule_id")?,
            restoring: row.try_get::<Option<i64>, _>("restoring")?.is_some(),
            restore_error: row.try_get("restore_error")?,
        },
        object_key: row.try_get("object_key")?,
    })
}

pub struct BackupRepo {
    db: Db,
}

impl BackupRepo {
    pub fn new(db: Db) -> Self {
        Self { db }
    }

    /// A server's backups, newest first.
    pub async fn list(&self, server: &ServerId) -> Result<Vec<BackupRow>, sqlx::Error> {
        // Only the constant column list is formatted in.
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM backups WHERE server_id = $1 ORDER BY created_at DESC, id DESC"
        )))
        .bind(server.as_str())
        .fetch_all(self.db.pool())
        .await?;
        rows.iter().map(read).collect()
    }

    pub async fn get(&self, server: &ServerId, id: &str) -> Result<Option<BackupRow>, sqlx::Error> {
        let row =
            sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM backups WHERE server_id = $1 AND id = $2")))
                .bind(server.as_str())
                .bind(id)
                .fetch_optional(self.db.pool())
                .await?;
        row.as_ref().map(read).transpose()
    }

    /// Records a pending backup unless one of the server's is pending already (one at a time per server).
    pub async fn insert_pending(
        &self,
        server: &ServerId,
        name: &str,
        ignore: &str,
        schedule: Option<&str>,
    ) -> Result<Option<BackupRow>, sqlx::Error> {
        // Time-ordered, so that backups taken within the same second still sort by when they were taken.
        let id = uuid::Uuid::now_v7().simple().to_string();
        let key = format!("{server}/{id}.tar.zst");
        let inserted = sqlx::query(
            "INSERT INTO backups (id, server_id, name, status, object_key, created_at, ignore_patterns, schedule_id) \
             SELECT $1, $2, $3, 'pending', $4, $5, $6, $7 \
             WHERE NOT EXISTS (SELECT 1 FROM backups WHERE server_id = $2 AND status = 'pending')",
        )
        .bind(&id)
        .bind(server.as_str())
        .bind(name)
        .bind(&key)
        .bind(now())
        .bind(ignore)
        .bind(schedule)
        .execute(self.db.pool())
        .await;
        let inserted = match inserted {
            Err(error) if unique_violation(&error) => return Ok(None),
            other => other?,
        };
        if inserted.rows_affected() == 0 {
            return Ok(None);
        }
        self.get(server, &id).await
    }

    /// A pending backup is whole: its size and checksum.
    pub async fn finish(&self, id: &str, size: u64, sha256: &str, duration_ms: u64) -> Result<(), sqlx::Error> {
        sqlx::query(
            "UPDATE backups SET status = 'ok', size = $2, sha256 = $3, duration_ms = $4 WHERE id = $1 AND status = 'pending'",
        )
        .bind(id)
        .bind(i64::try_from(size).unwrap_or(i64::MAX))
        .bind(sha256)
        .bind(i64::try_from(duration_ms).unwrap_or(i64::MAX))
        .execute(self.db.pool())
        .await?;
        Ok(())
    }

    pub async fn fail(&self, id: &str, error: &str, duration_ms: u64) -> Result<(), sqlx::Error> {
        sqlx::query("UPDATE backups SET status = 'failed', error = $2, duration_ms = $3 WHERE id = $1")
            .bind(id)
            .bind(error)
            .bind(i64::try_from(duration_ms).unwrap_or(i64::MAX))
            .execute(self.db.pool())
            .await?;
        Ok(())
    }

    /// Backups left pending by a Spawnpoint that stopped while taking them: they never finished.
    pub async fn fail_unfinished(&self) -> Result<u64, sqlx::Error> {
        let failed = sqlx::query(
            "UPDATE backups SET status = 'failed', error = 'Spawnpoint stopped while the backup was taken' \
             WHERE status = 'pending'",
        )
        .execute(self.db.pool())
        .await?;
        sqlx::query(
            "UPDATE backups SET restoring = NULL, restore_error = 'Spawnpoint stopped during the restore' \
                     WHERE restoring IS NOT NULL",
        )
        .execute(self.db.pool())
        .await?;
        Ok(failed.rows_affected())
    }

    pub async fn set_locked(&self, server: &ServerId, id: &str, locked: bool) -> Result<bool, sqlx::Error> {
        let changed = sqlx::query("UPDATE backups SET locked = $3 WHERE server_id = $1 AND id = $2")
            .bind(server.as_str())
            .bind(id)
            .bind(i64::from(locked))
            .execute(self.db.pool())
            .await?;
        Ok(changed.rows_affected() == 1)
    }

    /// Marks a restore begun, if the backup is whole and no restore of the server runs.
    pub async fn begin_restore(&self, server: &ServerId, id: &str) -> Result<bool, sqlx::Error> {
        let changed = sqlx::query(
            "UPDATE backups SET restoring = $3, restore_error = NULL WHERE server_id = $1 AND id = $2 AND status = 'ok' \
             AND NOT EXISTS (SELECT 1 FROM backups WHERE server_id = $1 AND restoring IS NOT NULL)",
        )
        .bind(server.as_str())
        .bind(id)
        .bind(now())
        .execute(self.db.pool())
        .await;
        match changed {
            Err(error) if unique_violation(&error) => Ok(false),
            other => Ok(other?.rows_affected() == 1),
        }
    }

    pub async fn end_restore(&self, id: &str, error: Option<&str>) -> Result<(), sqlx::Error> {
        sqlx::query("UPDATE backups SET restoring = NULL, restore_error = $2 WHERE id = $1")
            .bind(id)
            .bind(error)
            .execute(self.db.pool())
            .await?;
        Ok(())
    }

    /// Deletes the row unless it is locked (or in use); returns whether it was.
    pub async fn delete(&self, server: &ServerId, id: &str) -> Result<bool, sqlx::Error> {
        let deleted = sqlx::query(
            "DELETE FROM backups WHERE server_id = $1 AND id = $2 AND locked = 0 AND status <> 'pending' \
             AND restoring IS NULL",
        )
        .bind(server.as_str())
        .bind(id)
        .execute(self.db.pool())
        .await?;
        Ok(deleted.rows_affected() == 1)
    }
}

/// Another request got there first (the one-at-a-time indexes).
fn unique_violation(error: &sqlx::Error) -> bool {
    error.as_database_error().is_some_and(|error| error.is_unique_violation())
}
