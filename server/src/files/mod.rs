//! The file manager: what a customer may do with their server's files, from the browser and the REST API (and
//! SFTP, which goes through the same checks).
//!
//! The service authorizes (the server's owner or an administrator), checks every path
//! ([`catalog::files::clean_path`]), holds writes to the plan's storage and keeps earlier versions of files
//! edited in the browser ([`versions`]); the orchestrator's [`ServerFiles`] does the file work wherever the
//! server's files are.

pub mod routes;
pub mod versions;

use std::sync::Arc;

use app::context::BoxFuture;
use app::error::AppError;
use catalog::account::{SftpAccess, User};
use catalog::files::{
    ArchiveFormat, FileEntry, FileKind, FileListing, FileVersion, Ignore, MAX_EDIT_BYTES, MAX_PAGE, MAX_QUERY_LEN,
    MAX_VERSION_BYTES, SearchResults, clean_path, sort_entries,
};
use catalog::{Catalog, ServerId, ServerStatus};
use futures_util::StreamExt as _;

use self::versions::Versions;
use crate::error::internal;
use crate::orchestrator::Orchestrator;
use crate::orchestrator::files::{Allowance, ByteStream, FilesError, Incoming, Search, ServerFiles};
use crate::servers::ServerService;

pub struct FileService {
    servers: Arc<ServerService>,
    catalog: Arc<Catalog>,
    driver: Arc<dyn Orchestrator>,
    versions: Versions,
    /// Where customers reach SFTP (host, port), when it is on.
    sftp: Option<(String, u16)>,
}

/// One server's files, opened for a user who may touch them.
pub struct Opened {
    pub id: ServerId,
    pub files: Box<dyn ServerFiles>,
    /// The plan's storage, in bytes.
    pub storage: u64,
    storage_label: String,
}

/// What a download is.
pub enum Download {
    File {
        entry: FileEntry,
        body: ByteStream,
    },
    /// A directory, as a tar stream.
    Tree {
        name: String,
        body: ByteStream,
    },
}

impl FileService {
    pub fn new(
        servers: Arc<ServerService>,
        catalog: Arc<Catalog>,
        driver: Arc<dyn Orchestrator>,
        db: crate::db::Db,
        sftp: Option<(String, u16)>,
    ) -> Self {
        Self { servers, catalog, driver, versions: Versions::new(db), sftp }
    }

    /// How `user` reaches server `id`'s files over SFTP; `None` when SFTP is off, or cannot reach the files.
    pub async fn sftp_access(&self, user: &User, id: &ServerId) -> Result<Option<SftpAccess>, AppError> {
        match self.open(user, id).await {
            Ok(_) => {}
            Err(AppError::Unavailable(_)) => return Ok(None),
            Err(error) => return Err(error),
        }
        Ok(self.sftp.as_ref().map(|(host, port)| SftpAccess {
            host: host.clone(),
            port: *port,
            username: SftpAccess::username(&user.email, id),
        }))
    }

    /// The server's files, if `user` may touch them (its owner or an administrator; anyone else gets "not
    /// found").
    pub async fn open(&self, user: &User, id: &ServerId) -> Result<Opened, AppError> {
        let row = self.servers.visible(user, id).await?;
        if row.status == ServerStatus::Deleted {
            return Err(AppError::NotFound(format!("server `{id}` does not exist")));
        }
        let plan = self.catalog.plan(&row.game, &row.plan).map(|(_, plan)| plan.storage.clone());
        let storage = plan.ok_or_else(|| AppError::Conflict {
            field: "plan".into(),
            message: format!("{} · {} is no longer offered", row.game, row.plan),
        })?;
        let files = self.driver.files(id).await.map_err(|e| files_error("path", e))?;
        Ok(Opened { id: id.clone(), files, storage: storage.bytes(), storage_label: storage.to_string() })
    }

    pub async fn list(
        &self,
        user: &User,
        id: &ServerId,
        dir: &str,
        offset: usize,
        limit: usize,
    ) -> Result<FileListing, AppError> {
        let dir = path_field("path", dir)?;
        if !(1..=MAX_PAGE).contains(&limit) {
            return Err(AppError::invalid("limit", format!("must be from 1 to {MAX_PAGE}")));
        }
        let opened = self.open(user, id).await?;
        let mut entries = opened.files.list(&dir).await.map_err(|e| opened.error("path", e))?;
        sort_entries(&mut entries);
        let total = entries.len();
        let entries = entries.into_iter().skip(offset).take(limit).collect();
        Ok(FileListing { path: dir, entries, total, offset })
    }

    pub async fn search(
        &self,
        user: &User,
        id: &ServerId,
        text: &str,
        content: bool,
    ) -> Result<SearchResults, AppError> {
        let text = text.trim();
        if text.is_empty() || text.len() > MAX_QUERY_LEN {
            return Err(AppError::invalid("q", format!("must be 1 to {MAX_QUERY_LEN} bytes of text")));
        }
        let opened = self.open(user, id).await?;
        let search = Search { text: text.to_owned(), content };
        opened.files.search(&search).await.map_err(|e| opened.error("q", e))
    }

    /// A file's content, or a directory as a tar stream.
    pub async fn download(&self, user: &User, id: &ServerId, path: &str) -> Result<Download, AppError> {
        let path = path_field("path", path)?;
        let opened = self.open(user, id).await?;
        let entry = opened.files.stat(&path).await.map_err(|e| opened.error("path", e))?;
        match entry.kind {
            FileKind::File => {
                let body = opened.files.read(&path, 0).await.map_err(|e| opened.error("path", e))?;
                Ok(Download::File { entry, body })
            }
            FileKind::Dir => {
                let body = opened
                    .files
                    .pack(std::slice::from_ref(&path), &Ignore::default())
                    .await
                    .map_err(|e| opened.error("path", e))?;
                let name = if path.is_empty() { id.to_string() } else { entry.name };
                Ok(Download::Tree { name, body })
            }
            FileKind::Symlink => Err(AppError::BadRequest {
                field: "path".into(),
                message: format!("`{path}` is a symbolic link, which Spawnpoint does not follow"),
            }),
        }
    }

    /// Replaces a file's content (`PUT …/files/content`). The content it had is kept as an earlier version
    /// when it is text of at most [`MAX_VERSION_BYTES`].
    pub async fn save(
        &self,
        user: &User,
        id: &ServerId,
        path: &str,
        body: Incoming<'_>,
    ) -> Result<FileEntry, AppError> {
        let path = path_field("path", path)?;
        let opened = self.open(user, id).await?;
        let previous = self.earlier_content(&opened, &path).await?;
        let allowance = opened.allowance(previous.as_ref().map_or(0, |(size, _)| *size)).await?;
        let written = opened.files.write(&path, body, allowance).await.map_err(|e| opened.error("path", e))?;
        if let Some((_, Some(text))) = previous {
            self.versions.keep(id, &path, &text).await.map_err(internal)?;
        }
        tracing::info!(server = %id, user = %user.id, path, bytes = written, "file saved");
        opened.files.stat(&path).await.map_err(|e| opened.error("path", e))
    }

    /// One uploaded file, written into `dir` as it arrives.
    pub async fn upload(
        &self,
        user: &User,
        opened: &Opened,
        dir: &str,
        name: &str,
        body: Incoming<'_>,
    ) -> Result<u64, AppError> {
        let name = name.rsplit(['/', '\\']).next().unwrap_or_default();
        if name.is_empty() || name == "." || name == ".." {
            return Err(AppError::invalid("file", "an uploaded file needs a name"));
        }
        let dir = path_field("path", dir)?;
        let path = if dir.is_empty() { name.to_owned() } else { format!("{dir}/{name}") };
        let path = path_field("file", &path)?;
        let existing = opened.files.stat(&path).await.map(|entry| entry.size).unwrap_or(0);
        let allowance = opened.allowance(existing).await?;
        let written = opened.files.write(&path, body, allowance).await.map_err(|e| opened.error("path", e))?;
        tracing::info!(server = %opened.id, user = %user.id, path, bytes = written, "file uploaded");
        Ok(written)
    }

    pub async fn mkdir(&self, user: &User, id: &ServerId, path: &str) -> Result<(), AppError> {
        let path = path_field("path", path)?;
        let opened = self.open(user, id).await?;
        opened.files.mkdir(&path).await.map_err(|e| opened.error("path", e))?;
        tracing::info!(server = %id, user = %user.id, path, "directory made");
        Ok(())
    }

    pub async fn rename(&self, user: &User, id: &ServerId, from: &str, to: &str) -> Result<(), AppError> {
        let (from, to) = (path_field("from", from)?, path_field("to", to)?);
        let opened = self.open(user, id).await?;
        opened.files.rename(&from, &to).await.map_err(|e| opened.error("path", e))?;
        self.versions.rename(id, &from, &to).await.map_err(internal)?;
        tracing::info!(server = %id, user = %user.id, from, to, "file moved");
        Ok(())
    }

    pub async fn copy(&self, user: &User, id: &ServerId, from: &str, to: &str) -> Result<(), AppError> {
        let (from, to) = (path_field("from", from)?, path_field("to", to)?);
        let opened = self.open(user, id).await?;
        let budget = opened.budget(0).await?;
        opened.files.copy(&from, &to, budget).await.map_err(|e| opened.error("path", e))?;
        tracing::info!(server = %id, user = %user.id, from, to, "file copied");
        Ok(())
    }

    pub async fn delete(&self, user: &User, id: &ServerId, paths: &[String]) -> Result<(), AppError> {
        if paths.is_empty() {
            return Err(AppError::invalid("paths", "name at least one file or directory to delete"));
        }
        let paths: Vec<String> = paths.iter().map(|p| path_field("paths", p)).collect::<Result<_, _>>()?;
        let opened = self.open(user, id).await?;
        opened.files.remove(&paths).await.map_err(|e| opened.error("paths", e))?;
        for path in &paths {
            self.versions.forget(id, path).await.map_err(internal)?;
        }
        tracing::info!(server = %id, user = %user.id, count = paths.len(), "files deleted");
        Ok(())
    }

    pub async fn compress(&self, user: &User, id: &ServerId, paths: &[String], to: &str) -> Result<(), AppError> {
        if paths.is_empty() {
            return Err(AppError::invalid("paths", "name at least one file or directory to compress"));
        }
        let paths: Vec<String> = paths.iter().map(|p| path_field("paths", p)).collect::<Result<_, _>>()?;
        let to = path_field("to", to)?;
        let format = ArchiveFormat::of(&to)
            .ok_or_else(|| AppError::invalid("to", "must end in .zip, .tar, .tar.gz or .tar.zst"))?;
        let opened = self.open(user, id).await?;
        let budget = opened.budget(0).await?;
        opened.files.compress(&paths, &to, format, budget).await.map_err(|e| opened.error("to", e))?;
        tracing::info!(server = %id, user = %user.id, to, "archive made");
        Ok(())
    }

    /// Unpacks an archive; returns how many files it held.
    pub async fn extract(&self, user: &User, id: &ServerId, path: &str, to: &str) -> Result<usize, AppError> {
        let (path, to) = (path_field("path", path)?, path_field("to", to)?);
        if ArchiveFormat::of(&path).is_none() {
            return Err(AppError::invalid("path", "must be a .zip, .tar, .tar.gz or .tar.zst archive"));
        }
        let opened = self.open(user, id).await?;
        let budget = opened.budget(0).await?;
        let files = opened.files.extract(&path, &to, budget).await.map_err(|e| opened.error("path", e))?;
        tracing::info!(server = %id, user = %user.id, path, to, files, "archive unpacked");
        Ok(files)
    }

    /// The earlier versions kept of a file, newest first.
    pub async fn versions(&self, user: &User, id: &ServerId, path: &str) -> Result<Vec<FileVersion>, AppError> {
        let path = path_field("path", path)?;
        self.servers.visible(user, id).await?;
        self.versions.list(id, &path).await.map_err(internal)
    }

    /// One earlier version's text.
    pub async fn version(&self, user: &User, id: &ServerId, path: &str, version: &str) -> Result<String, AppError> {
        let path = path_field("path", path)?;
        self.servers.visible(user, id).await?;
        let text = self.versions.get(id, &path, version).await.map_err(internal)?;
        text.ok_or_else(|| AppError::NotFound(format!("`{path}` has no version `{version}`")))
    }

    /// Puts an earlier version back (the content it replaces is kept as a version in turn).
    pub async fn restore_version(
        &self,
        user: &User,
        id: &ServerId,
        path: &str,
        version: &str,
    ) -> Result<FileEntry, AppError> {
        let text = self.version(user, id, path, version).await?;
        let body = futures_util::stream::iter([Ok(bytes::Bytes::from(text))]).boxed();
        self.save(user, id, path, body).await
    }

    /// The file's size and, when it is text small enough to keep, its content; `None` when there is no file.
    async fn earlier_content(&self, opened: &Opened, path: &str) -> Result<Option<(u64, Option<String>)>, AppError> {
        let entry = match opened.files.stat(path).await {
            Ok(entry) => entry,
            Err(FilesError::NotFound(_)) => return Ok(None),
            Err(error) => return Err(opened.error("path", error)),
        };
        if entry.kind != FileKind::File {
            return Err(AppError::Conflict { field: "path".into(), message: format!("`{path}` is not a file") });
        }
        if entry.size > MAX_VERSION_BYTES as u64 {
            return Ok(Some((entry.size, None)));
        }
        let mut body = opened.files.read(path, 0).await.map_err(|e| opened.error("path", e))?;
        let mut bytes = Vec::new();
        while let Some(piece) = body.next().await {
            bytes.extend_from_slice(&piece.map_err(|e| internal(FilesError::io("reading the file")(e)))?);
            if bytes.len() > MAX_VERSION_BYTES {
                return Ok(Some((entry.size, None)));
            }
        }
        Ok(Some((entry.size, String::from_utf8(bytes).ok())))
    }
}

impl Opened {
    /// What a write replacing `replaced` bytes (a file it writes over) may take.
    pub async fn allowance(&self, replaced: u64) -> Result<Allowance, AppError> {
        Ok(Allowance { budget: self.budget(replaced).await?, limit: self.storage + replaced })
    }

    /// What may still be written: the plan's storage less what the files take, plus `replaced` (the bytes of
    /// a file the write replaces).
    pub async fn budget(&self, replaced: u64) -> Result<u64, AppError> {
        let used = self.files.usage().await.map_err(|e| self.error("path", e))?;
        Ok((self.storage + replaced).saturating_sub(used))
    }

    /// What the customer is told; `field` names the input at fault.
    pub fn error(&self, field: &str, error: FilesError) -> AppError {
        match error {
            FilesError::Full => AppError::Conflict {
                field: "storage".into(),
                message: format!("this would take the server's files past its plan's storage ({})", self.storage_label),
            },
            error => files_error(field, error),
        }
    }
}

fn files_error(field: &str, error: FilesError) -> AppError {
    match error {
        FilesError::Path(message) => AppError::BadRequest { field: field.to_owned(), message },
        FilesError::NotFound(path) => AppError::NotFound(format!("`{path}` does not exist")),
        FilesError::Exists(path) => {
            AppError::Conflict { field: field.to_owned(), message: format!("`{path}` exists already") }
        }
        FilesError::Full => AppError::Conflict { field: "storage".into(), message: FilesError::Full.to_string() },
        FilesError::Refused(message) => AppError::invalid(field, message),
        FilesError::Unsupported(message) => AppError::Unavailable(message),
        error @ FilesError::Io { .. } => internal(error),
    }
}

/// A path from the request, plain, or 400 naming `field`.
pub fn path_field(field: &str, path: &str) -> Result<String, AppError> {
    clean_path(path).map_err(|message| AppError::BadRequest { field: field.to_owned(), message })
}

/// The file manager page's server functions.
impl app::files::ssr::Files for FileService {
    fn list<'a>(
        &'a self,
        user: &'a User,
        id: &'a ServerId,
        dir: &'a str,
    ) -> BoxFuture<'a, Result<FileListing, AppError>> {
        Box::pin(self.list(user, id, dir, 0, MAX_PAGE))
    }

    fn read_text<'a>(
        &'a self,
        user: &'a User,
        id: &'a ServerId,
        path: &'a str,
    ) -> BoxFuture<'a, Result<String, AppError>> {
        Box::pin(async move {
            let Download::File { entry, mut body } = self.download(user, id, path).await? else {
                return Err(AppError::invalid("path", format!("`{path}` is a directory")));
            };
            if entry.size > MAX_EDIT_BYTES {
                return Err(AppError::invalid("path", "the file is too big to edit here; download it instead"));
            }
            let mut bytes = Vec::new();
            while let Some(piece) = body.next().await {
                bytes.extend_from_slice(&piece.map_err(|e| internal(FilesError::io("reading the file")(e)))?);
                // It may have grown since it was measured.
                if bytes.len() as u64 > MAX_EDIT_BYTES {
                    return Err(AppError::invalid("path", "the file is too big to edit here; download it instead"));
                }
            }
            String::from_utf8(bytes).map_err(|_| AppError::invalid("path", "the file is not text; download it instead"))
        })
    }

    fn save_text<'a>(
        &'a self,
        user: &'a User,
        id: &'a ServerId,
        path: &'a str,
        text: String,
    ) -> BoxFuture<'a, Result<FileEntry, AppError>> {
        Box::pin(async move {
            let body = futures_util::stream::iter([Ok(bytes::Bytes::from(text))]).boxed();
            self.save(user, id, path, body).await
        })
    }

    fn change<'a>(
        &'a self,
        user: &'a User,
        id: &'a ServerId,
        change: &'a str,
        path: &'a str,
        to: &'a str,
    ) -> BoxFuture<'a, Result<(), AppError>> {
        Box::pin(async move {
            match change {
                "mkdir" => self.mkdir(user, id, path).await,
                "rename" => self.rename(user, id, path, to).await,
                "copy" => self.copy(user, id, path, to).await,
                "delete" => self.delete(user, id, &[path.to_owned()]).await,
                "extract" => self.extract(user, id, path, to).await.map(|_| ()),
                other => Err(AppError::invalid("change", format!("`{other}` is not a change of files"))),
            }
        })
    }

    fn versions<'a>(
        &'a self,
        user: &'a User,
        id: &'a ServerId,
        path: &'a str,
    ) -> BoxFuture<'a, Result<Vec<FileVersion>, AppError>> {
        Box::pin(self.versions(user, id, path))
    }

    fn restore_version<'a>(
        &'a self,
        user: &'a User,
        id: &'a ServerId,
        path: &'a str,
        version: &'a str,
    ) -> BoxFuture<'a, Result<FileEntry, AppError>> {
        Box::pin(self.restore_version(user, id, path, version))
    }

    fn change_all<'a>(
        &'a self,
        user: &'a User,
        id: &'a ServerId,
        change: &'a str,
        paths: &'a [String],
        to: &'a str,
    ) -> BoxFuture<'a, Result<(), AppError>> {
        Box::pin(async move {
            match change {
                "delete" => self.delete(user, id, paths).await,
                "compress" => self.compress(user, id, paths, to).await,
                other => Err(AppError::invalid("change", format!("`{other}` is not a change of several files"))),
            }
        })
    }

    fn search<'a>(
        &'a self,
        user: &'a User,
        id: &'a ServerId,
        text: &'a str,
        content: bool,
    ) -> BoxFuture<'a, Result<SearchResults, AppError>> {
        Box::pin(self.search(user, id, text, content))
    }

    fn sftp_access<'a>(
        &'a self,
        user: &'a User,
        id: &'a ServerId,
    ) -> BoxFuture<'a, Result<Option<SftpAccess>, AppError>> {
        Box::pin(self.sftp_access(user, id))
    }
}
