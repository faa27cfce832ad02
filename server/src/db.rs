//! The database: one sqlx `Any` pool that is SQLite on the single box and PostgreSQL on a cluster.
//!
//! Queries are written once in the SQL both engines share (`$1` placeholders, BIGINT times), so every
//! service works unchanged on either; the tests run each database test against both.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use sqlx::AnyPool;
use sqlx::any::AnyPoolOptions;

/// The migrations in `migrations/`, embedded in the binary.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations");

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("could not create the database directory {path}: {source}")]
    CreateDir {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("could not connect to the {kind} database: {source}")]
    Connect {
        kind: &'static str,
        #[source]
        source: sqlx::Error,
    },
    #[error("could not apply migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error(transparent)]
    Query(#[from] sqlx::Error),
}

/// A handle to the database, cheap to clone.
#[derive(Clone, Debug)]
pub struct Db {
    pool: AnyPool,
}

impl Db {
    /// Connects to `url`, creating a SQLite file (and its directory) when it does not exist yet.
    pub async fn connect(url: &SecretString) -> Result<Self, DbError> {
        sqlx::any::install_default_drivers();
        let url = url.expose_secret();
        let sqlite = url.starts_with("sqlite:");
        let kind = if sqlite { "sqlite" } else { "postgres" };
        let url = if sqlite { prepare_sqlite(url)? } else { url.to_owned() };

        let pool = AnyPoolOptions::new()
            // SQLite serialises writers anyway; a few connections serve concurrent readers.
            .max_connections(if sqlite { 4 } else { 10 })
            .acquire_timeout(Duration::from_secs(5))
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if sqlite {
                        // With WAL, NORMAL syncs at checkpoints instead of on every commit: a commit stays atomic
                        // and the file consistent; only the last commits can be lost, and only to a power cut.
                        sqlx::query("PRAGMA synchronous = NORMAL").execute(&mut *conn).await?;
                    }
                    Ok(())
                })
            })
            .connect(&url)
            .await
            .map_err(|source| DbError::Connect { kind, source })?;
        if sqlite {
            // WAL lets readers proceed while a write is in progress; it is a property of the file, set once.
            sqlx::query("PRAGMA journal_mode = WAL").execute(&pool).await?;
        }
        Ok(Self { pool })
    }

    /// Applies any migrations not yet applied. Safe to run on every start.
    pub async fn migrate(&self) -> Result<(), DbError> {
        MIGRATOR.run(&self.pool).await?;
        Ok(())
    }

    /// This installation's id, made on first use (see the `installation` table).
    pub async fn installation(&self) -> Result<String, DbError> {
        let fresh = uuid::Uuid::new_v4().simple().to_string();
        sqlx::query("INSERT INTO installation (singleton, id, created_at) VALUES (1, $1, $2) ON CONFLICT DO NOTHING")
            .bind(&fresh[..12])
            .bind(now())
            .execute(&self.pool)
            .await?;
        let row = sqlx::query("SELECT id FROM installation WHERE singleton = 1").fetch_one(&self.pool).await?;
        Ok(sqlx::Row::try_get(&row, "id")?)
    }

    /// Lets the reconciler collect orphans in any number for the next `minutes` (`spawnpoint orphans release`).
    pub async fn release_collection(&self, minutes: i64) -> Result<(), DbError> {
        self.installation().await?;
        sqlx::query("UPDATE installation SET collect_until = $1 WHERE singleton = 1")
            .bind(now() + minutes * 60)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Whether an operator's release of orphan collection is in force.
    pub async fn collection_released(&self) -> Result<bool, DbError> {
        let row = sqlx::query("SELECT collect_until FROM installation WHERE singleton = 1 AND collect_until > $1")
            .bind(now())
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.is_some())
    }

    /// Whether the database answers a trivial query (for `/ready`).
    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        sqlx::query("SELECT 1").execute(&self.pool).await.map(drop)
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }
}

/// Makes sure a file-backed SQLite URL can be opened: its directory exists and the file is created if missing.
fn prepare_sqlite(url: &str) -> Result<String, DbError> {
    let path = url.trim_start_matches("sqlite:").trim_start_matches("//");
    let (path, query) = path.split_once('?').unwrap_or((path, ""));
    if path.is_empty() || path == ":memory:" {
        return Ok(url.to_owned());
    }
    if let Some(dir) = std::path::Path::new(path).parent().filter(|dir| !dir.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|source| DbError::CreateDir { path: dir.display().to_string(), source })?;
    }
    Ok(if query.contains("mode=") {
        url.to_owned()
    } else if query.is_empty() {
        format!("{url}?mode=rwc")
    } else {
        format!("{url}&mode=rwc")
    })
}

/// Seconds since the Unix epoch, as stored in every `*_at` column.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs() as i64)
        .unwrap_or_default()
}
