//! A game server's files, as the file manager, SFTP and backups reach them, wherever the server runs.
//!
//! Paths are relative to the server's root, `/`-separated. Every implementation confines them to the server's
//! files: `..`, absolute paths, NUL bytes, a symbolic link on the way (made by the game, pointing anywhere) and
//! anything but plain files and directories are refused with [`FilesError::Path`].

use std::io;

use bytes::Bytes;
use catalog::files::{ArchiveFormat, FileEntry, Ignore, SearchResults};
use futures_util::stream::BoxStream;

use super::BoxFuture;

/// Bytes as they come, never all at once.
pub type ByteStream = BoxStream<'static, io::Result<Bytes>>;
/// Bytes coming from a request while it is served (an upload's part, say).
pub type Incoming<'a> = BoxStream<'a, io::Result<Bytes>>;

#[derive(Debug, thiserror::Error)]
pub enum FilesError {
    /// The path cannot be used (it leaves the server's files, goes through a link, …): the customer's mistake.
    #[error("{0}")]
    Path(String),
    #[error("`{0}` does not exist")]
    NotFound(String),
    #[error("`{0}` exists already")]
    Exists(String),
    /// Writing would take the server past its plan's storage.
    #[error("this would take the server's files past its plan's storage")]
    Full,
    /// The content cannot be used (an archive that does not unpack, say), in Spawnpoint's words.
    #[error("{0}")]
    Refused(String),
    /// This host cannot reach the server's files.
    #[error("{0}")]
    Unsupported(String),
    #[error("{context}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
}

impl FilesError {
    pub fn io(context: impl Into<String>) -> impl FnOnce(io::Error) -> Self {
        let context = context.into();
        move |source| FilesError::Io { context, source }
    }
}

/// What one write may take.
#[derive(Debug, Clone, Copy)]
pub struct Allowance {
    /// The bytes it may write as it streams: the room there was when it began.
    pub budget: u64,
    /// What all of the server's files may take once it is written, the writes under way beside it counted:
    /// checked before the new file replaces the old one, so writes side by side cannot together pass the plan.
    pub limit: u64,
}

/// What a search looks for.
#[derive(Debug, Clone)]
pub struct Search {
    pub text: String,
    /// Look inside files too, not only at names.
    pub content: bool,
}

/// One server's files.
pub trait ServerFiles: Send + Sync {
    /// The entries of a directory, unsorted.
    fn list<'a>(&'a self, dir: &'a str) -> BoxFuture<'a, Result<Vec<FileEntry>, FilesError>>;
    /// One entry (a link is reported as one, not followed).
    fn stat<'a>(&'a self, path: &'a str) -> BoxFuture<'a, Result<FileEntry, FilesError>>;
    /// A file's content from byte `offset` on (past its end: nothing).
    fn read<'a>(&'a self, path: &'a str, offset: u64) -> BoxFuture<'a, Result<ByteStream, FilesError>>;
    /// Replaces (or creates) a file with `body`, within `allowance`; a reader sees the old content or the new,
    /// never half. Returns the bytes written.
    fn write<'a>(
        &'a self,
        path: &'a str,
        body: Incoming<'a>,
        allowance: Allowance,
    ) -> BoxFuture<'a, Result<u64, FilesError>>;
    fn mkdir<'a>(&'a self, path: &'a str) -> BoxFuture<'a, Result<(), FilesError>>;
    /// Moves a file or directory; the target must not exist.
    fn rename<'a>(&'a self, from: &'a str, to: &'a str) -> BoxFuture<'a, Result<(), FilesError>>;
    /// Copies a file or directory tree; the target must not exist.
    fn copy<'a>(&'a self, from: &'a str, to: &'a str, budget: u64) -> BoxFuture<'a, Result<(), FilesError>>;
    /// Deletes files and directory trees.
    fn remove<'a>(&'a self, paths: &'a [String]) -> BoxFuture<'a, Result<(), FilesError>>;
    /// The files under `paths` (`[""]` for everything) as a tar stream, without what `ignore` leaves out.
    fn pack<'a>(&'a self, paths: &'a [String], ignore: &'a Ignore) -> BoxFuture<'a, Result<ByteStream, FilesError>>;
    /// Replaces every file of the server with a tar stream's (a restore); what was there stays if the stream
    /// fails or `check` refuses once it has all been read.
    fn replace_all<'a>(
        &'a self,
        tar: ByteStream,
        budget: u64,
        check: Box<dyn FnOnce() -> Result<(), String> + Send + 'a>,
    ) -> BoxFuture<'a, Result<(), FilesError>>;
    /// Packs `paths` into the archive `to` (its format by name).
    fn compress<'a>(
        &'a self,
        paths: &'a [String],
        to: &'a str,
        format: ArchiveFormat,
        budget: u64,
    ) -> BoxFuture<'a, Result<(), FilesError>>;
    /// Unpacks the archive `path` into the directory `to`, never past `budget` bytes.
    fn extract<'a>(&'a self, path: &'a str, to: &'a str, budget: u64) -> BoxFuture<'a, Result<usize, FilesError>>;
    fn search<'a>(&'a self, search: &'a Search) -> BoxFuture<'a, Result<SearchResults, FilesError>>;
    /// The bytes the server's files take.
    fn usage(&self) -> BoxFuture<'_, Result<u64, FilesError>>;
}

/// A blocking writer (a tar or zstd encoder on a blocking thread) whose bytes become an async stream, in pieces,
/// as they are written; writing waits while the reader is behind, and fails once it has gone.
pub struct ChannelWriter {
    sender: tokio::sync::mpsc::Sender<io::Result<Bytes>>,
    buffer: Vec<u8>,
    /// Whether the writer said it wrote everything: a writer dropped without (its thread panicked, say) ends
    /// the stream with an error, never with what looks like a whole one.
    finished: bool,
}

/// The size of the pieces a [`ChannelWriter`] sends.
const PIECE: usize = 64 * 1024;

impl ChannelWriter {
    pub fn new() -> (Self, ByteStream) {
        use futures_util::StreamExt as _;
        let (sender, mut receiver) = tokio::sync::mpsc::channel(4);
        let stream = futures_util::stream::poll_fn(move |context| receiver.poll_recv(context)).boxed();
        (Self { sender, buffer: Vec::with_capacity(PIECE), finished: false }, stream)
    }

    /// Ends the stream with `error`, so that whoever reads it knows it is not whole.
    pub fn fail(mut self, error: io::Error) {
        self.finished = true;
        let _ = self.sender.blocking_send(Err(error));
    }

    /// Everything is written: the stream ends whole.
    pub fn finish(mut self) -> io::Result<()> {
        use io::Write as _;
        self.flush()?;
        self.finished = true;
        Ok(())
    }
}

impl Drop for ChannelWriter {
    fn drop(&mut self) {
        if !self.finished {
            let _ = self.sender.try_send(Err(io::Error::other("the stream was cut short")));
        }
    }
}

impl io::Write for ChannelWriter {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.buffer.extend_from_slice(bytes);
        if self.buffer.len() >= PIECE {
            self.flush()?;
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let piece = Bytes::from(std::mem::replace(&mut self.buffer, Vec::with_capacity(PIECE)));
        self.sender.blocking_send(Ok(piece)).map_err(|_| io::Error::from(io::ErrorKind::BrokenPipe))
    }
}
