//! One SFTP session: the protocol's requests on one server's files, through the file manager's [`Opened`] (so
//! the same confinement, the same storage limit, the same file work wherever the files are).
//!
//! The server's files are the session's `/`. Files are read from any offset; a file is written from its start
//! to its end, as every SFTP client uploads, into a temporary file that replaces the old one only once the
//! client closes it (an upload cut short leaves the file as it was). Appending, writing over part of a file
//! and writing at another offset are refused with "unsupported", which clients report as such, and a write
//! refused ends its upload (closing the file then keeps nothing of it).
//!
//! Who may reach the server is asked again at every file opened and every change, so a session does not
//! outlive the access that opened it.

use std::collections::HashMap;
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::Poll;

use app::error::AppError;
use bytes::{Bytes, BytesMut};
use catalog::account::User;
use catalog::files::{FileEntry, FileKind, client_path};
use futures_util::StreamExt as _;
use russh::keys::PublicKey;
use russh_sftp::protocol::{Attrs, Data, File, FileAttributes, Handle, Name, OpenFlags, Status, StatusCode, Version};
use russh_sftp::server::StatusReply;
use sync_wrapper::SyncWrapper;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::auth::AuthService;
use crate::files::{FileService, Opened};
use crate::orchestrator::files::{Allowance, ByteStream, FilesError};

/// Handles one session may hold open at once.
const MAX_HANDLES: usize = 64;
/// Files one session may be writing at once.
const MAX_UPLOADS: usize = 4;
/// The most one read answers with (clients ask for 32 KiB to 255 KiB and take a shorter answer).
const MAX_READ: usize = 64 * 1024;
/// Directory entries per `readdir` answer, so that one stays well inside the 256 KiB packets clients take.
const ENTRIES_PER_ANSWER: usize = 200;
/// Writes waiting for the file work while it catches up.
const WRITES_AHEAD: usize = 8;

/// Who a session acts for and what they signed in with, asked again before every file opened and every
/// change: an account deleted or a key removed ends what the session may do.
pub struct Account {
    pub auth: Arc<AuthService>,
    pub user: User,
    /// The key signed in with; `None` for the password.
    pub key: Option<PublicKey>,
}

impl Account {
    async fn current(&self) -> Result<User, StatusReply> {
        let user = match &self.key {
            Some(key) => self.auth.user_with_key(&self.user.email, key).await,
            None => self.auth.user(&self.user.id).await,
        };
        let gone = || StatusCode::PermissionDenied.with_message("this sign-in is no longer valid; sign in again");
        user.map_err(reply)?.filter(|user| user.id == self.user.id).ok_or_else(gone)
    }
}

pub struct SftpSession {
    /// Changes that the file manager keeps track of (moves and deletes carry earlier versions along) go
    /// through it, asked again who may make them.
    service: Arc<FileService>,
    opened: Arc<Opened>,
    account: Account,
    handles: HashMap<String, Open>,
    next_handle: u64,
}

enum Open {
    /// The entries not sent yet.
    Dir(Vec<File>),
    Read(Reader),
    Write(Upload),
}

impl SftpSession {
    pub fn new(service: Arc<FileService>, opened: Opened, account: Account) -> Self {
        Self { service, opened: Arc::new(opened), account, handles: HashMap::new(), next_handle: 0 }
    }

    fn refused(&self, error: FilesError) -> StatusReply {
        reply(self.opened.error("path", error))
    }

    async fn entry(&self, path: &str) -> Result<FileEntry, StatusReply> {
        self.opened.files.stat(path).await.map_err(|e| self.refused(e))
    }

    /// Fails when the session holds as many handles as it may.
    fn room(&self) -> Result<(), StatusReply> {
        if self.handles.len() >= MAX_HANDLES {
            return Err(StatusCode::Failure.with_message(format!("at most {MAX_HANDLES} files may be open at once")));
        }
        Ok(())
    }

    /// The server's files as the user may reach them now.
    async fn reopened(&self) -> Result<Arc<Opened>, StatusReply> {
        let user = self.account.current().await?;
        self.service.open(&user, &self.opened.id).await.map(Arc::new).map_err(reply)
    }

    fn hold(&mut self, id: u32, open: Open) -> Result<Handle, StatusReply> {
        self.next_handle += 1;
        let handle = self.next_handle.to_string();
        self.handles.insert(handle.clone(), open);
        Ok(Handle { id, handle })
    }

    /// Starts replacing `path` with what the client writes.
    async fn upload(&mut self, path: String, flags: OpenFlags) -> Result<Upload, StatusReply> {
        if flags.contains(OpenFlags::APPEND) {
            return Err(StatusCode::OpUnsupported
                .with_message("appending is not supported: upload the whole file (`put`, not `reput`)"));
        }
        let uploads = self.handles.values().filter(|open| matches!(open, Open::Write(_))).count();
        if uploads >= MAX_UPLOADS {
            return Err(StatusCode::Failure.with_message(format!("at most {MAX_UPLOADS} files may be written at once")));
        }
        let opened = self.reopened().await?;
        let replaced = match opened.files.stat(&path).await {
            Ok(entry) if entry.kind != FileKind::File => {
                return Err(StatusCode::Failure.with_message(format!("`{path}` is not a file")));
            }
            Ok(_) if flags.contains(OpenFlags::EXCLUDE) => {
                return Err(StatusCode::Failure.with_message(format!("`{path}` exists already")));
            }
            // Without truncation the client means to write over part of the file, which is not done here.
            Ok(entry) if entry.size > 0 && !flags.contains(OpenFlags::TRUNCATE) => {
                return Err(StatusCode::OpUnsupported.with_message(format!(
                    "`{path}` can only be replaced whole (opened for writing with truncation)"
                )));
            }
            Ok(entry) => entry.size,
            Err(FilesError::NotFound(_)) if flags.contains(OpenFlags::CREATE) => 0,
            Err(error) => return Err(reply(opened.error("path", error))),
        };
        let allowance = opened.allowance(replaced).await.map_err(reply)?;
        Ok(Upload::start(opened, path, allowance))
    }

    fn ok(&self, id: u32) -> Status {
        Status { id, status_code: StatusCode::Ok, error_message: "Ok".into(), language_tag: "en-US".into() }
    }
}

/// A path as the client gives it, inside the server's files ([`client_path`]).
pub fn relative(path: &str) -> Result<String, StatusReply> {
    client_path(path).map_err(|message| StatusCode::PermissionDenied.with_message(message))
}

/// What the client is told: the file manager's words, with the SFTP status closest to the HTTP one.
fn reply(error: AppError) -> StatusReply {
    let code = match &error {
        AppError::NotFound(_) => StatusCode::NoSuchFile,
        AppError::BadRequest { .. } | AppError::Forbidden(_) | AppError::Unauthorized(_) => {
            StatusCode::PermissionDenied
        }
        AppError::Unavailable(_) => StatusCode::OpUnsupported,
        _ => StatusCode::Failure,
    };
    let message = match error {
        AppError::Invalid { message, .. }
        | AppError::BadRequest { message, .. }
        | AppError::Conflict { message, .. } => message,
        other => other.to_string(),
    };
    code.with_message(message)
}

fn attributes(entry: &FileEntry) -> FileAttributes {
    let mut attrs = FileAttributes::empty();
    attrs.size = Some(entry.size);
    // The game's files all belong to the game; the modes say only what each entry is.
    attrs.permissions = Some(match entry.kind {
        FileKind::Dir => 0o040_755,
        FileKind::File => 0o100_644,
        FileKind::Symlink => 0o120_777,
    });
    let modified = u32::try_from(entry.modified).unwrap_or(0);
    (attrs.mtime, attrs.atime) = (Some(modified), Some(modified));
    attrs
}

impl russh_sftp::server::Handler for SftpSession {
    type Error = StatusReply;

    fn unimplemented(&self) -> Self::Error {
        StatusCode::OpUnsupported.with_message("Spawnpoint's SFTP does not do this")
    }

    async fn init(&mut self, _version: u32, _extensions: HashMap<String, String>) -> Result<Version, Self::Error> {
        Ok(Version::new())
    }

    async fn realpath(&mut self, id: u32, path: String) -> Result<Name, Self::Error> {
        let path = relative(&path)?;
        Ok(Name { id, files: vec![File::dummy(format!("/{path}"))] })
    }

    async fn stat(&mut self, id: u32, path: String) -> Result<Attrs, Self::Error> {
        let entry = self.entry(&relative(&path)?).await?;
        Ok(Attrs { id, attrs: attributes(&entry) })
    }

    async fn lstat(&mut self, id: u32, path: String) -> Result<Attrs, Self::Error> {
        self.stat(id, path).await
    }

    async fn fstat(&mut self, id: u32, handle: String) -> Result<Attrs, Self::Error> {
        let path = match self.handles.get(&handle) {
            Some(Open::Read(reader)) => reader.path.clone(),
            // The file being written is not there yet: what it has so far is what the client wrote.
            Some(Open::Write(upload)) => {
                let (name, size) = (upload.path.clone(), upload.written);
                let entry = FileEntry { name, kind: FileKind::File, size, modified: crate::db::now() };
                return Ok(Attrs { id, attrs: attributes(&entry) });
            }
            Some(Open::Dir(_)) | None => return Err(StatusCode::Failure.with_message("no such open file")),
        };
        self.stat(id, path).await
    }

    /// Permissions and times are the panel's to keep (the game's files belong to the game): asking to change
    /// them succeeds without changing anything, as clients that preserve them expect; a new size is refused.
    async fn setstat(&mut self, id: u32, path: String, attrs: FileAttributes) -> Result<Status, Self::Error> {
        self.entry(&relative(&path)?).await?;
        if attrs.size.is_some() {
            return Err(StatusCode::OpUnsupported.with_message("a file's size changes only by writing it"));
        }
        Ok(self.ok(id))
    }

    async fn fsetstat(&mut self, id: u32, handle: String, attrs: FileAttributes) -> Result<Status, Self::Error> {
        if !self.handles.contains_key(&handle) {
            return Err(StatusCode::Failure.with_message("no such open file"));
        }
        if attrs.size.is_some() {
            return Err(StatusCode::OpUnsupported.with_message("a file's size changes only by writing it"));
        }
        Ok(self.ok(id))
    }

    async fn opendir(&mut self, id: u32, path: String) -> Result<Handle, Self::Error> {
        let path = relative(&path)?;
        self.room()?;
        let opened = self.reopened().await?;
        let mut entries = opened.files.list(&path).await.map_err(|e| reply(opened.error("path", e)))?;
        catalog::files::sort_entries(&mut entries);
        // Sent from the end of the list, so reversed: the client sees them in order.
        let files = entries.iter().rev().map(|entry| File::new(entry.name.clone(), attributes(entry))).collect();
        self.hold(id, Open::Dir(files))
    }

    async fn readdir(&mut self, id: u32, handle: String) -> Result<Name, Self::Error> {
        let Some(Open::Dir(left)) = self.handles.get_mut(&handle) else {
            return Err(StatusCode::Failure.with_message("no such open directory"));
        };
        if left.is_empty() {
            return Err(StatusCode::Eof.into());
        }
        let files = left.split_off(left.len().saturating_sub(ENTRIES_PER_ANSWER)).into_iter().rev().collect();
        Ok(Name { id, files })
    }

    async fn open(
        &mut self,
        id: u32,
        filename: String,
        flags: OpenFlags,
        _attrs: FileAttributes,
    ) -> Result<Handle, Self::Error> {
        let path = relative(&filename)?;
        if path.is_empty() {
            return Err(StatusCode::Failure.with_message("the server's root is a directory"));
        }
        self.room()?;
        let writes = OpenFlags::WRITE | OpenFlags::APPEND | OpenFlags::CREATE | OpenFlags::TRUNCATE;
        if flags.intersects(writes) {
            let upload = self.upload(path, flags).await?;
            return self.hold(id, Open::Write(upload));
        }
        let opened = self.reopened().await?;
        let entry = opened.files.stat(&path).await.map_err(|e| reply(opened.error("path", e)))?;
        if entry.kind != FileKind::File {
            return Err(StatusCode::Failure.with_message(format!("`{path}` is not a file")));
        }
        self.hold(id, Open::Read(Reader { opened, path, stream: None, position: 0, pending: Bytes::new() }))
    }

    async fn read(&mut self, id: u32, handle: String, offset: u64, len: u32) -> Result<Data, Self::Error> {
        let Some(Open::Read(reader)) = self.handles.get_mut(&handle) else {
            return Err(StatusCode::Failure.with_message("no such file open for reading"));
        };
        let data = reader.read(offset, len).await.map_err(|e| reply(reader.opened.error("path", e)))?;
        if data.is_empty() {
            return Err(StatusCode::Eof.into());
        }
        Ok(Data { id, data: data.into() })
    }

    async fn write(&mut self, id: u32, handle: String, offset: u64, data: Vec<u8>) -> Result<Status, Self::Error> {
        let Some(Open::Write(upload)) = self.handles.get_mut(&handle) else {
            return Err(StatusCode::Failure.with_message("no such file open for writing"));
        };
        if offset != upload.written {
            // The upload is over: the file stays as it was, whatever the client does next.
            self.handles.remove(&handle);
            return Err(StatusCode::OpUnsupported.with_message(
                "Spawnpoint writes a file from its start to its end; this client wrote elsewhere (a resumed upload?)",
            ));
        }
        if let Err(error) = upload.send(data).await {
            // The file work stopped (the plan's storage is full, say): the upload is over.
            self.handles.remove(&handle);
            return Err(error);
        }
        Ok(self.ok(id))
    }

    async fn close(&mut self, id: u32, handle: String) -> Result<Status, Self::Error> {
        match self.handles.remove(&handle) {
            Some(Open::Write(upload)) => {
                let path = upload.path.clone();
                let bytes = upload.finish().await?;
                tracing::info!(server = %self.opened.id, user = %self.account.user.id, path, bytes, "file uploaded over SFTP");
            }
            Some(_) => {}
            None => return Err(StatusCode::Failure.with_message("no such open file")),
        }
        Ok(self.ok(id))
    }

    async fn remove(&mut self, id: u32, filename: String) -> Result<Status, Self::Error> {
        let path = relative(&filename)?;
        // A link the game planted cannot be looked at, but is removed itself like a file.
        if self.entry(&path).await.is_ok_and(|entry| entry.kind == FileKind::Dir) {
            return Err(StatusCode::Failure.with_message(format!("`{path}` is a directory (rmdir removes one)")));
        }
        let user = self.account.current().await?;
        self.service.delete(&user, &self.opened.id, std::slice::from_ref(&path)).await.map_err(reply)?;
        Ok(self.ok(id))
    }

    async fn rmdir(&mut self, id: u32, path: String) -> Result<Status, Self::Error> {
        let path = relative(&path)?;
        if self.entry(&path).await?.kind != FileKind::Dir {
            return Err(StatusCode::Failure.with_message(format!("`{path}` is not a directory")));
        }
        if !self.opened.files.list(&path).await.map_err(|e| self.refused(e))?.is_empty() {
            return Err(StatusCode::Failure.with_message(format!("`{path}` is not empty")));
        }
        let user = self.account.current().await?;
        self.service.delete(&user, &self.opened.id, std::slice::from_ref(&path)).await.map_err(reply)?;
        Ok(self.ok(id))
    }

    async fn mkdir(&mut self, id: u32, path: String, _attrs: FileAttributes) -> Result<Status, Self::Error> {
        let path = relative(&path)?;
        let user = self.account.current().await?;
        self.service.mkdir(&user, &self.opened.id, &path).await.map_err(reply)?;
        Ok(self.ok(id))
    }

    async fn rename(&mut self, id: u32, oldpath: String, newpath: String) -> Result<Status, Self::Error> {
        let (from, to) = (relative(&oldpath)?, relative(&newpath)?);
        let user = self.account.current().await?;
        self.service.rename(&user, &self.opened.id, &from, &to).await.map_err(reply)?;
        Ok(self.ok(id))
    }

    async fn readlink(&mut self, _id: u32, _path: String) -> Result<Name, Self::Error> {
        Err(StatusCode::OpUnsupported.with_message("Spawnpoint does not follow symbolic links"))
    }

    async fn symlink(&mut self, _id: u32, _linkpath: String, _targetpath: String) -> Result<Status, Self::Error> {
        Err(StatusCode::PermissionDenied.with_message("Spawnpoint does not make symbolic links"))
    }
}

/// A file read from where the client asks: on from the last read without starting over, from the file's
/// start again (or elsewhere) when the client jumps.
struct Reader {
    opened: Arc<Opened>,
    path: String,
    /// Only ever used through `&mut`, so it needs no lock to be shared.
    stream: Option<SyncWrapper<ByteStream>>,
    position: u64,
    pending: Bytes,
}

impl Reader {
    async fn read(&mut self, offset: u64, len: u32) -> Result<Bytes, FilesError> {
        if offset != self.position {
            // Whatever happens next, the stream read so far is not where the client is.
            self.stream = None;
        }
        let stream = match &mut self.stream {
            Some(stream) => stream.get_mut(),
            stream => {
                let opened = self.opened.files.read(&self.path, offset).await?;
                (self.position, self.pending) = (offset, Bytes::new());
                stream.insert(SyncWrapper::new(opened)).get_mut()
            }
        };
        let wanted = usize::try_from(len).unwrap_or(MAX_READ).min(MAX_READ);
        let mut data = BytesMut::with_capacity(wanted);
        while data.len() < wanted {
            if self.pending.is_empty() {
                match stream.next().await {
                    Some(piece) => self.pending = piece.map_err(FilesError::io("reading the file"))?,
                    None => break,
                }
                continue;
            }
            let take = (wanted - data.len()).min(self.pending.len());
            data.extend_from_slice(&self.pending.split_to(take));
        }
        self.position += data.len() as u64;
        Ok(data.freeze())
    }
}

/// A file being written: the client's writes go, in order, to the file manager's write (on a task of its own),
/// which keeps them in a temporary file until the client closes this one.
struct Upload {
    path: String,
    written: u64,
    writes: mpsc::Sender<Bytes>,
    /// Set once the client closed the file: the stream ends whole only then, and otherwise ends with an error
    /// (the client went away), so the half-written file is never kept.
    closed: Arc<AtomicBool>,
    work: JoinHandle<Result<u64, AppError>>,
}

impl Upload {
    fn start(opened: Arc<Opened>, path: String, allowance: Allowance) -> Self {
        let (writes, mut received) = mpsc::channel::<Bytes>(WRITES_AHEAD);
        let closed = Arc::new(AtomicBool::new(false));
        let whole = closed.clone();
        let body = futures_util::stream::poll_fn(move |context| match received.poll_recv(context) {
            Poll::Ready(Some(bytes)) => Poll::Ready(Some(Ok(bytes))),
            Poll::Ready(None) if whole.load(Ordering::Acquire) => Poll::Ready(None),
            Poll::Ready(None) => {
                Poll::Ready(Some(Err(io::Error::other("the client went away before closing the file"))))
            }
            Poll::Pending => Poll::Pending,
        })
        .boxed();
        let target = path.clone();
        let work = tokio::spawn(async move {
            opened.files.write(&target, body, allowance).await.map_err(|error| opened.error("path", error))
        });
        Self { path, written: 0, writes, closed, work }
    }

    async fn send(&mut self, data: Vec<u8>) -> Result<(), StatusReply> {
        let len = data.len() as u64;
        if self.writes.send(Bytes::from(data)).await.is_err() {
            // The work ended before the file did: its error says why.
            let stopped = || StatusCode::Failure.with_message("the write stopped");
            return Err(outcome(&mut self.work).await.err().unwrap_or_else(stopped));
        }
        self.written += len;
        Ok(())
    }

    async fn finish(self) -> Result<u64, StatusReply> {
        self.closed.store(true, Ordering::Release);
        let Self { writes, mut work, .. } = self;
        drop(writes);
        outcome(&mut work).await
    }
}

async fn outcome(work: &mut JoinHandle<Result<u64, AppError>>) -> Result<u64, StatusReply> {
    match work.await {
        Ok(written) => written.map_err(reply),
        Err(_) => Err(reply(AppError::Internal)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_paths_become_paths_inside_the_servers_files() {
        for (given, inside) in [
            ("/", ""),
            (".", ""),
            ("", ""),
            ("/world/level.dat", "world/level.dat"),
            ("world//./level.dat", "world/level.dat"),
            ("/world/region/../level.dat", "world/level.dat"),
            ("/a/b/../../c", "c"),
        ] {
            assert_eq!(relative(given), Ok(inside.to_owned()), "{given:?}");
        }
        for leaving in ["/..", "..", "/world/../../etc", "../etc/passwd"] {
            let refused = relative(leaving).expect_err(leaving);
            assert_eq!(refused.status_code, StatusCode::PermissionDenied, "{leaving:?}");
        }
        for odd in ["a\0b", "a\\b", "line\nbreak"] {
            assert_eq!(relative(odd).expect_err(odd).status_code, StatusCode::PermissionDenied, "{odd:?}");
        }
    }

    #[test]
    fn the_file_managers_errors_keep_their_words_with_the_closest_status() {
        let full = reply(AppError::Conflict { field: "storage".into(), message: "past the plan's storage".into() });
        assert_eq!(
            (full.status_code, full.error_message.as_deref()),
            (StatusCode::Failure, Some("past the plan's storage"))
        );
        let missing = reply(AppError::NotFound("`a` does not exist".into()));
        assert_eq!(missing.status_code, StatusCode::NoSuchFile);
        let internal = reply(AppError::Internal);
        assert_eq!(internal.error_message.as_deref(), Some("something went wrong on our side"));
    }
}
