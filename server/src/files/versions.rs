//! The `file_versions` table: earlier contents of files saved from the browser, the last
//! [`KEEP_VERSIONS`] per file.

use catalog::ServerId;
use catalog::files::{FileVersion, KEEP_VERSIONS};
use sqlx::Row as _;

use crate::db::{Db, now};

pub struct Versions {
    db: Db,
}

impl Versions {
    pub fn new(db: Db) -> Self {
        Self { db }
    }

    /// Keeps `content` as the newest earlier version of `path`, and forgets all but the last few.
    pub async fn keep(&self, server: &ServerId, path: &str, content: &str) -> Result<(), sqlx::Error> {
        let mut tx = self.db.pool().begin().await?;
        sqlx::query(
            "INSERT INTO file_versions (id, server_id, path, saved_at, size, content) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(uuid::Uuid::new_v4().simple().to_string())
        .bind(server.as_str())
        .bind(path)
        .bind(now())
        .bind(i64::try_from(content.len()).unwrap_or(i64::MAX))
        .bind(content)
        .execute(&mut *tx)
        .await?;
        // Newest first by time, then by id for versions saved within the same second.
        let kept: Vec<String> = sqlx::query_scalar(
            "SELECT id FROM file_versions WHERE server_id = $1 AND path = $2 ORDER BY saved_at DESC, id DESC",
        )
        .bind(server.as_str())
        .bind(path)
        .fetch_all(&mut *tx)
        .await?;
        for old in kept.iter().skip(KEEP_VERSIONS) {
            sqlx::query("DELETE FROM file_versions WHERE id = $1").bind(old).execute(&mut *tx).await?;
        }
        tx.commit().await
    }

    pub async fn list(&self, server: &ServerId, path: &str) -> Result<Vec<FileVersion>, sqlx::Error> {
        let rows = sqlx::query(
            "SELECT id, saved_at, size FROM file_versions WHERE server_id = $1 AND path = $2 \
             ORDER BY saved_at DESC, id DESC",
        )
        .bind(server.as_str())
        .bind(path)
        .fetch_all(self.db.pool())
        .await?;
        rows.iter()
            .map(|row| {
                Ok(FileVersion {
                    id: row.try_get("id")?,
                    saved_at: row.try_get("saved_at")?,
                    size: u64::try_from(row.try_get::<i64, _>("size")?).unwrap_or(0),
                })
            })
            .collect()
    }

    pub async fn get(&self, server: &ServerId, path: &str, id: &str) -> Result<Option<String>, sqlx::Error> {
        sqlx::query_scalar("SELECT content FROM file_versions WHERE server_id = $1 AND path = $2 AND id = $3")
            .bind(server.as_str())
            .bind(path)
            .bind(id)
            .fetch_optional(self.db.pool())
            .await
    }

    /// A file moved keeps its versions, and so do the files in a directory moved.
    pub async fn rename(&self, server: &ServerId, from: &str, to: &str) -> Result<(), sqlx::Error> {
        for path in self.paths_under(server, from).await? {
            let moved = format!("{to}{}", &path[from.len()..]);
            sqlx::query("UPDATE file_versions SET path = $3 WHERE server_id = $1 AND path = $2")
                .bind(server.as_str())
                .bind(&path)
                .bind(&moved)
                .execute(self.db.pool())
                .await?;
        }
        Ok(())
    }

    /// A file deleted takes its versions with it, and a directory those of its files.
    pub async fn forget(&self, server: &ServerId, deleted: &str) -> Result<(), sqlx::Error> {
        for path in self.paths_under(server, deleted).await? {
            sqlx::query("DELETE FROM file_versions WHERE server_id = $1 AND path = $2")
                .bind(server.as_str())
                .bind(&path)
                .execute(self.db.pool())
                .await?;
        }
        Ok(())
    }

    /// The paths with versions that are `path` or below it (compared here rather than with `LIKE`, where a
    /// `%` or `_` in a name would match more).
    async fn paths_under(&self, server: &ServerId, path: &str) -> Result<Vec<String>, sqlx::Error> {
        let paths: Vec<String> = sqlx::query_scalar("SELECT DISTINCT path FROM file_versions WHERE server_id = $1")
            .bind(server.as_str())
            .fetch_all(self.db.pool())
            .await?;
        let below =
            |candidate: &str| path.is_empty() || candidate.strip_prefix(path).is_some_and(|rest| rest.starts_with('/'));
        Ok(paths.into_iter().filter(|candidate| candidate == path || below(candidate)).collect())
    }
}
