//! Backups of a server's files: taken (consistently, with the game's own save commands around them while it
//! runs), listed, downloaded, restored, locked and rotated within the plan's count.
//!
//! An archive is the server's files as a tar (from the orchestrator's [`ServerFiles::pack`], wherever they
//! are), compressed with zstd on the way and streamed into the [`store`] as a multipart upload, with its
//! SHA-256 recorded. A restore reads it back, checks that SHA-256 before anything of the server's is replaced,
//! and swaps the files in whole.

pub mod repo;
pub mod routes;
pub mod store;

use std::io::{self, Read as _, Write as _};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use app::error::AppError;
use catalog::account::User;
use catalog::backups::{Backup, BackupStatus, NewBackup, Retention, check_name};
use catalog::files::Ignore;
use catalog::{Action, Catalog, ServerId, ServerStatus};
use futures_util::StreamExt as _;
use sha2::{Digest as _, Sha256};

use self::repo::{BackupRepo, BackupRow};
use self::store::{BackupStore, StoreError};
use crate::error::{internal, log_cause};
use crate::orchestrator::files::{ByteStream, ChannelWriter, FilesError};
use crate::orchestrator::{Orchestrator, Phase};
use crate::servers::ServerService;

/// How long a game gets to answer each of its backup hooks (`save-all flush` on a big world takes a while).
const HOOK_ANSWER: Duration = Duration::from_secs(10);
/// How long a restore waits for the game to stop.
const STOP_WAIT: Duration = Duration::from_secs(120);
/// zstd's level: fast, and most of zstd's ratio on game worlds.
const ZSTD_LEVEL: i32 = 3;

pub struct BackupService {
    servers: Arc<ServerService>,
    catalog: Arc<Catalog>,
    driver: Arc<dyn Orchestrator>,
    repo: BackupRepo,
    store: Arc<BackupStore>,
}

impl BackupService {
    pub fn new(
        servers: Arc<ServerService>,
        catalog: Arc<Catalog>,
        driver: Arc<dyn Orchestrator>,
        db: crate::db::Db,
        store: Arc<BackupStore>,
    ) -> Self {
        Self { servers, catalog, driver, repo: BackupRepo::new(db), store }
    }

    /// Backups a Spawnpoint that stopped left unfinished are marked failed (nothing will finish them).
    pub async fn recover(&self) -> Result<(), sqlx::Error> {
        let failed = self.repo.fail_unfinished().await?;
        if failed > 0 {
            tracing::warn!(failed, "backups left unfinished by the last run are marked failed");
        }
        Ok(())
    }

    pub async fn list(&self, user: &User, id: &ServerId) -> Result<Vec<Backup>, AppError> {
        self.servers.visible(user, id).await?;
        let rows = self.repo.list(id).await.map_err(internal)?;
        Ok(rows.into_iter().map(|row| row.backup).collect())
    }

    pub async fn get(&self, user: &User, id: &ServerId, backup: &str) -> Result<Backup, AppError> {
        Ok(self.row(user, id, backup).await?.backup)
    }

    async fn row(&self, user: &User, id: &ServerId, backup: &str) -> Result<BackupRow, AppError> {
        self.servers.visible(user, id).await?;
        let row = self.repo.get(id, backup).await.map_err(internal)?;
        row.ok_or_else(|| AppError::NotFound(format!("server `{id}` has no backup `{backup}`")))
    }

    /// Starts a backup (`pending` at once; taken after the answer). The plan's count is kept by deleting the
    /// oldest unlocked backups first; when all are locked, nothing is taken.
    pub async fn create(
        self: &Arc<Self>,
        user: &User,
        id: &ServerId,
        new: &NewBackup,
        schedule: Option<&str>,
    ) -> Result<Backup, AppError> {
        let name = if new.name.trim().is_empty() { "Backup".to_owned() } else { check_name("name", &new.name)? };
        let ignore = Ignore::parse(&new.ignore).map_err(|message| AppError::invalid("ignore", message))?;
        let server = self.servers.visible(user, id).await?;
        if server.status == ServerStatus::Deleted {
            return Err(AppError::NotFound(format!("server `{id}` does not exist")));
        }
        let plan = self.catalog.plan(&server.game, &server.plan).map(|(_, plan)| plan.backups);
        let keep = plan.ok_or_else(|| AppError::Conflict {
            field: "plan".into(),
            message: format!("{} · {} is no longer offered", server.game, server.plan),
        })?;
        self.make_room(id, keep as usize).await?;
        let row = self.repo.insert_pending(id, &name, &new.ignore, schedule).await.map_err(internal)?;
        let row = row.ok_or_else(|| AppError::Conflict {
            field: "backups".into(),
            message: "a backup of this server is being taken; wait for it to finish".into(),
        })?;
        tracing::info!(server = %id, user = %user.id, backup = %row.backup.id, "backup started");
        let (service, taken) = (self.clone(), row.clone());
        let game = self.catalog.game(&server.game).cloned();
        tokio::spawn(async move {
            let hooks = game.map(|game| game.backup).unwrap_or_default();
            service.take(&taken, &ignore, &hooks).await;
        });
        Ok(row.backup)
    }

    /// Deletes the oldest backups that may go until one more fits within `keep`.
    async fn make_room(&self, id: &ServerId, keep: usize) -> Result<(), AppError> {
        if keep == 0 {
            return Err(AppError::Forbidden("this server's plan keeps no backups".into()));
        }
        let rows = self.repo.list(id).await.map_err(internal)?;
        let mut excess = (rows.len() + 1).saturating_sub(keep);
        // Oldest first; failed ones before good ones, which are worth more.
        let mut candidates: Vec<&BackupRow> = rows
            .iter()
            .filter(|row| !row.backup.locked && !row.backup.restoring && row.backup.status != BackupStatus::Pending)
            .collect();
        candidates
            .sort_by_key(|row| (row.backup.status == BackupStatus::Ok, row.backup.created_at, row.backup.id.clone()));
        for row in candidates {
            if excess == 0 {
                break;
            }
            self.remove(row).await?;
            tracing::info!(server = %id, backup = %row.backup.id, "backup rotated out");
            excess -= 1;
        }
        if excess > 0 {
            return Err(AppError::Conflict {
                field: "backups".into(),
                message: format!(
                    "this server keeps {keep} backups and none of them may go (locked or in use); unlock or delete one"
                ),
            });
        }
        Ok(())
    }

    async fn take(&self, row: &BackupRow, ignore: &Ignore, hooks: &catalog::BackupHooks) {
        let started = Instant::now();
        let id = &row.backup.server_id;
        let running = matches!(self.driver.phase(id).await.map(|o| o.phase), Some(Phase::Ready { .. }));
        if running {
            self.run_hooks(id, &hooks.before).await;
        }
        let result = self.archive(row, ignore).await;
        if running {
            self.run_hooks(id, &hooks.after).await;
        }
        let elapsed = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let recorded = match result {
            Ok(stored) => {
                tracing::info!(server = %id, backup = %row.backup.id, bytes = stored.size, "backup taken");
                self.repo.finish(&row.backup.id, stored.size, &stored.sha256, elapsed).await
            }
            Err(words) => {
                // Nothing half-written stays behind under the backup's name.
                let _ = self.store.delete(&row.object_key).await;
                self.repo.fail(&row.backup.id, &words, elapsed).await
            }
        };
        if let Err(error) = recorded {
            log_cause(&error);
        }
    }

    /// Packs, compresses and stores the server's files; the failure in a customer's words.
    async fn archive(&self, row: &BackupRow, ignore: &Ignore) -> Result<store::Stored, String> {
        let id = &row.backup.server_id;
        let files = self.driver.files(id).await.map_err(|e| files_words(id, e))?;
        let tar = files.pack(&[String::new()], ignore).await.map_err(|e| files_words(id, e))?;
        self.store.put(&row.object_key, compress(tar)).await.map_err(|error| store_words(id, &error))
    }

    /// Types each command on the game's console and waits for the game to answer it (a line of output), so
    /// `save-all flush` has written the world before its files are read.
    async fn run_hooks(&self, id: &ServerId, commands: &[String]) {
        for command in commands {
            let output = self.driver.follow(id, 0).await;
            if let Err(error) = self.driver.send_input(id, command).await {
                tracing::warn!(server = %id, error = %crate::error::chain(&error), "a backup hook could not be typed");
                return;
            }
            if let Ok(mut output) = output {
                let _ = tokio::time::timeout(HOOK_ANSWER, output.lines.next()).await;
            }
        }
    }

    /// The archive as stored, for download: its size and bytes.
    pub async fn download(&self, user: &User, id: &ServerId, backup: &str) -> Result<(Backup, ByteStream), AppError> {
        let row = self.row(user, id, backup).await?;
        if row.backup.status != BackupStatus::Ok {
            return Err(AppError::Conflict {
                field: "status".into(),
                message: format!("backup `{backup}` is {}, not whole", row.backup.status.as_str()),
            });
        }
        let body =
            self.store.get(&row.object_key).await.map_err(|error| AppError::Unavailable(store_words(id, &error)))?;
        Ok((row.backup, body))
    }

    /// Starts a restore: the server is stopped, its files replaced by the backup's (once its checksum is
    /// confirmed), and started again if it was running. The answer comes at once; the backup shows
    /// `restoring` until it is done, and `restore_error` if it failed.
    pub async fn restore(self: &Arc<Self>, user: &User, id: &ServerId, backup: &str) -> Result<Backup, AppError> {
        let row = self.row(user, id, backup).await?;
        if row.backup.status != BackupStatus::Ok {
            return Err(AppError::Conflict {
                field: "status".into(),
                message: format!(
                    "backup `{backup}` is {}; only a whole backup can be restored",
                    row.backup.status.as_str()
                ),
            });
        }
        if !self.repo.begin_restore(id, backup).await.map_err(internal)? {
            return Err(AppError::Conflict {
                field: "backups".into(),
                message: "a restore of this server is under way; wait for it to finish".into(),
            });
        }
        tracing::info!(server = %id, user = %user.id, backup, "restore started");
        let (service, user, id) = (self.clone(), user.clone(), id.clone());
        let shown = Backup { restoring: true, restore_error: None, ..row.backup.clone() };
        tokio::spawn(async move {
            let result = service.restore_now(&user, &id, &row).await;
            if let Err(words) = &result {
                tracing::warn!(server = %id, backup = %row.backup.id, reason = %words, "restore failed");
            } else {
                tracing::info!(server = %id, backup = %row.backup.id, "restored");
            }
            if let Err(error) = service.repo.end_restore(&row.backup.id, result.err().as_deref()).await {
                log_cause(&error);
            }
        });
        Ok(shown)
    }

    async fn restore_now(&self, user: &User, id: &ServerId, row: &BackupRow) -> Result<(), String> {
        let server = self.servers.visible(user, id).await.map_err(|e| e.to_string())?;
        let storage = self.catalog.plan(&server.game, &server.plan).map(|(_, plan)| plan.storage.bytes());
        let storage = storage.ok_or("the server's plan is no longer offered")?;
        let was_running = server.status.apply(Action::Stop).is_ok() && server.status != ServerStatus::Stopped;
        if was_running {
            use app::servers::ssr::Servers as _;
            self.servers.act(user, id, Action::Stop).await.map_err(|e| format!("stopping the server: {e}"))?;
        }
        let replaced = self.replace_files(id, row, storage).await;
        if was_running {
            use app::servers::ssr::Servers as _;
            // Started again whether or not the files were replaced: a failed restore leaves them as they were.
            self.servers.act(user, id, Action::Start).await.map_err(|e| format!("starting the server again: {e}"))?;
        }
        replaced
    }

    async fn replace_files(&self, id: &ServerId, row: &BackupRow, storage: u64) -> Result<(), String> {
        self.stopped(id).await?;
        let expected = row.backup.sha256.clone().ok_or("the backup has no checksum")?;
        let body = self.store.get(&row.object_key).await.map_err(|error| store_words(id, &error))?;
        // What the store says while the archive is read goes to the log; the customer reads Spawnpoint's words.
        let server = id.clone();
        let body = body
            .map(move |piece| {
                piece.map_err(|error| {
                    tracing::warn!(server = %server, error = %crate::error::chain(&error), "reading a backup failed");
                    io::Error::other("the backup store failed while the archive was read")
                })
            })
            .boxed();
        let hash = Arc::new(Mutex::new(Sha256::new()));
        let hashing = hash.clone();
        let body = body
            .inspect(move |piece| {
                if let (Ok(piece), Ok(mut hash)) = (piece, hashing.lock()) {
                    hash.update(piece);
                }
            })
            .boxed();
        let check = Box::new(move || {
            let actual = hash.lock().map(|hash| hex::encode(hash.clone().finalize())).unwrap_or_default();
            if actual == expected {
                Ok(())
            } else {
                Err("the backup's archive does not match its checksum (it was changed or damaged in the store); \
                     the server's files were left as they were"
                    .to_owned())
            }
        });
        let files = self.driver.files(id).await.map_err(|e| files_words(id, e))?;
        files.replace_all(decompress(body), storage, check).await.map_err(|e| files_words(id, e))
    }

    /// Waits until no game of the server runs.
    async fn stopped(&self, id: &ServerId) -> Result<(), String> {
        let deadline = Instant::now() + STOP_WAIT;
        loop {
            match self.driver.phase(id).await.map(|observed| observed.phase) {
                None | Some(Phase::Exited { .. } | Phase::InstallFailed { .. }) => return Ok(()),
                Some(_) if Instant::now() > deadline => return Err("the server did not stop in time".into()),
                Some(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    }

    pub async fn set_locked(&self, user: &User, id: &ServerId, backup: &str, locked: bool) -> Result<Backup, AppError> {
        self.row(user, id, backup).await?;
        self.repo.set_locked(id, backup, locked).await.map_err(internal)?;
        tracing::info!(server = %id, user = %user.id, backup, locked, "backup lock changed");
        self.get(user, id, backup).await
    }

    /// The backup once it is no longer pending, if that happens within `timeout`.
    pub async fn wait(&self, id: &ServerId, backup: &str, timeout: Duration) -> Option<Backup> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            match self.repo.get(id, backup).await {
                Ok(Some(row)) if row.backup.status != BackupStatus::Pending => return Some(row.backup),
                Ok(Some(_)) => tokio::time::sleep(Duration::from_millis(250)).await,
                Ok(None) => return None,
                Err(error) => {
                    log_cause(&error);
                    return None;
                }
            }
        }
        None
    }

    /// Keeps what `retention` says of a schedule's whole, unlocked backups and deletes the rest
    /// (grandfather-father-son: the last few, the newest of each recent day and of each recent week, by UTC
    /// calendar). A retention of all zeros keeps everything (the plan's count still holds).
    pub async fn rotate(&self, id: &ServerId, schedule: &str, retention: &Retention) -> Result<(), AppError> {
        if *retention == Retention::default() {
            return Ok(());
        }
        let rows = self.repo.list(id).await.map_err(internal)?;
        let ours: Vec<&BackupRow> = rows
            .iter()
            .filter(|row| row.backup.schedule_id.as_deref() == Some(schedule) && row.backup.status == BackupStatus::Ok)
            .collect();
        let created: Vec<i64> = ours.iter().map(|row| row.backup.created_at).collect();
        let kept = retained(&created, retention);
        for (index, row) in ours.iter().enumerate() {
            if !kept.contains(&index) && !row.backup.locked && !row.backup.restoring {
                self.remove(row).await?;
                tracing::info!(server = %id, backup = %row.backup.id, schedule, "backup rotated out by its schedule");
            }
        }
        Ok(())
    }

    /// Deletes a backup and its archive; a locked one, or one in use, is refused.
    pub async fn delete(&self, user: &User, id: &ServerId, backup: &str) -> Result<(), AppError> {
        let row = self.row(user, id, backup).await?;
        let refused = |message: &str| AppError::Conflict { field: "backup".into(), message: message.to_owned() };
        if row.backup.locked {
            return Err(refused("the backup is locked; unlock it first"));
        }
        if row.backup.status == BackupStatus::Pending || row.backup.restoring {
            return Err(refused("the backup is in use (being taken or restored)"));
        }
        self.remove(&row).await?;
        tracing::info!(server = %id, user = %user.id, backup, "backup deleted");
        Ok(())
    }

    /// The archive first, then the row: a row never points at nothing it claims is whole.
    async fn remove(&self, row: &BackupRow) -> Result<(), AppError> {
        let id = &row.backup.server_id;
        self.store.delete(&row.object_key).await.map_err(|error| AppError::Unavailable(store_words(id, &error)))?;
        self.repo.delete(id, &row.backup.id).await.map_err(internal)?;
        Ok(())
    }
}

/// Which of backups taken at `created` (Unix seconds, newest first) a retention keeps, by index.
fn retained(created: &[i64], retention: &Retention) -> std::collections::BTreeSet<usize> {
    let mut kept: std::collections::BTreeSet<usize> = (0..created.len().min(retention.keep_last as usize)).collect();
    for (period, count) in [(86_400, retention.keep_daily), (7 * 86_400, retention.keep_weekly)] {
        let mut seen = Vec::new();
        for (index, at) in created.iter().enumerate() {
            // Weeks from a Monday (the epoch was a Thursday).
            let bucket = (at + if period == 86_400 { 0 } else { 3 * 86_400 }).div_euclid(period);
            if !seen.contains(&bucket) {
                if seen.len() == count as usize {
                    break;
                }
                seen.push(bucket);
                kept.insert(index);
            }
        }
    }
    kept
}

/// zstd-compresses a stream on a blocking thread, as it is read.
fn compress(input: ByteStream) -> ByteStream {
    transcode(input, |reader, writer| {
        let mut encoder = zstd::Encoder::new(writer, ZSTD_LEVEL)?;
        io::copy(reader, &mut encoder)?;
        encoder.finish()?.flush()
    })
}

/// Decompresses a zstd stream, and reads its input to the end (so that a checksum over the input is whole).
fn decompress(input: ByteStream) -> ByteStream {
    transcode(input, |reader, writer| {
        let mut decoder = zstd::Decoder::new(&mut *reader)?;
        io::copy(&mut decoder, writer)?;
        drop(decoder);
        io::copy(reader, &mut io::sink())?;
        writer.flush()
    })
}

/// Runs `work` from a blocking reader of `input` to a blocking writer whose bytes are the returned stream; an
/// error ends the stream with it.
fn transcode(
    input: ByteStream,
    work: impl FnOnce(&mut dyn io::Read, &mut ChannelWriter) -> io::Result<()> + Send + 'static,
) -> ByteStream {
    let mut reader = tokio_util::io::SyncIoBridge::new(tokio_util::io::StreamReader::new(input));
    let (mut writer, output) = ChannelWriter::new();
    tokio::task::spawn_blocking(move || {
        match work(&mut reader, &mut writer) {
            Ok(()) => {
                let _ = writer.finish();
            }
            Err(error) => writer.fail(error),
        }
        // The reader's whole input was consumed or abandoned: a stray byte left unread is nobody's.
        let _ = reader.read(&mut [0; 1]);
    });
    output
}

fn files_words(id: &ServerId, error: FilesError) -> String {
    match error {
        FilesError::Io { .. } => {
            tracing::warn!(server = %id, error = %crate::error::chain(&error), "backup files failed");
            "the server's files could not be read or written".into()
        }
        FilesError::Full => "the backup holds more than the server's plan's storage".into(),
        other => other.to_string(),
    }
}

fn store_words(id: &ServerId, error: &StoreError) -> String {
    tracing::warn!(server = %id, error = %crate::error::chain(error), "backup store failed");
    error.customer_words().to_owned()
}

/// The backups page's server functions (on a shared service: a backup or restore runs on after the call).
pub struct BackupsPage(pub Arc<BackupService>);

impl app::backups::ssr::BackupsPage for BackupsPage {
    fn list<'a>(
        &'a self,
        user: &'a User,
        id: &'a ServerId,
    ) -> app::context::BoxFuture<'a, Result<Vec<Backup>, AppError>> {
        Box::pin(self.0.list(user, id))
    }

    fn create<'a>(
        &'a self,
        user: &'a User,
        id: &'a ServerId,
        name: String,
        ignore: String,
    ) -> app::context::BoxFuture<'a, Result<Backup, AppError>> {
        Box::pin(async move { self.0.create(user, id, &NewBackup { name, ignore }, None).await })
    }

    fn act<'a>(
        &'a self,
        user: &'a User,
        id: &'a ServerId,
        backup: &'a str,
        action: &'a str,
    ) -> app::context::BoxFuture<'a, Result<(), AppError>> {
        Box::pin(async move {
            match action {
                "restore" => self.0.restore(user, id, backup).await.map(|_| ()),
                "lock" => self.0.set_locked(user, id, backup, true).await.map(|_| ()),
                "unlock" => self.0.set_locked(user, id, backup, false).await.map(|_| ()),
                "delete" => self.0.delete(user, id, backup).await,
                other => Err(AppError::invalid("action", format!("`{other}` is not a backup action"))),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retention_keeps_the_last_the_dailies_and_the_weeklies() {
        const DAY: i64 = 86_400;
        // Newest first: two today, one each of the six days before, then one a week further back.
        let now = 1_796_083_200; // a Tuesday, 00:00 UTC
        let mut created = vec![now + 3600, now + 60];
        created.extend((1..=6).map(|d| now - d * DAY));
        created.push(now - 14 * DAY);
        let keep = |last, daily, weekly| {
            retained(&created, &Retention { keep_last: last, keep_daily: daily, keep_weekly: weekly })
                .into_iter()
                .collect::<Vec<_>>()
        };
        assert_eq!(keep(2, 0, 0), [0, 1]);
        assert_eq!(keep(0, 3, 0), [0, 2, 3], "the newest of each of the last three days");
        assert_eq!(keep(1, 0, 3), [0, 3, 8], "the newest of each of three weeks (this one began on Monday)");
        assert_eq!(keep(0, 0, 0), Vec::<usize>::new());
    }
}
