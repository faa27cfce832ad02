//! A local server's files ([`ServerFiles`]): its data directory, worked on with the game's own file-system
//! identity ([`as_game`]), so that whatever the game planted there (links, say) leads nowhere it could not go
//! itself, and what the panel creates belongs to the game.

use std::io::{self, Read as _, Seek as _, Write as _};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use catalog::files::{
    ArchiveFormat, FileEntry, FileKind, Ignore, MAX_SEARCH_FILE_BYTES, MAX_SEARCH_HITS, SearchHit, SearchResults,
};
use futures_util::StreamExt as _;
use tokio::io::AsyncWriteExt as _;

use super::files::{Budget, Unpack, confined, create_nofollow, open_nofollow, size_of, unpack, unpack_tar};
use super::isolation::as_game;
use crate::orchestrator::BoxFuture;
use crate::orchestrator::files::{Allowance, ByteStream, ChannelWriter, FilesError, Incoming, Search, ServerFiles};

/// How long one search may take.
const SEARCH_TIME: Duration = Duration::from_secs(5);
/// The size of the pieces a file is read in.
const CHUNK: usize = 64 * 1024;

pub struct LocalFiles {
    /// The server's directory (Spawnpoint's), holding `data`.
    pub server_dir: PathBuf,
    /// The game's files.
    pub data: PathBuf,
    /// The game's user and group, when games run as their own users.
    pub user: Option<(u32, u32)>,
}

impl LocalFiles {
    fn path(&self, relative: &str) -> Result<PathBuf, FilesError> {
        confined(&self.data, relative).map_err(FilesError::Path)
    }

    /// A path that must name something below the root (the root itself cannot be moved or deleted).
    fn inner_path(&self, relative: &str) -> Result<PathBuf, FilesError> {
        let path = self.path(relative)?;
        if path == self.data {
            return Err(FilesError::Path("the server's root directory cannot be moved, copied over or deleted".into()));
        }
        Ok(path)
    }

    /// A path whose last part may be anything (a link the game planted, say), its parents confined: what
    /// deleting takes, which removes the entry itself and never follows it.
    fn entry_path(&self, relative: &str) -> Result<PathBuf, FilesError> {
        let (parent, name) = relative.rsplit_once('/').unwrap_or(("", relative));
        if name.is_empty() {
            return Err(FilesError::Path("the server's root directory cannot be moved, copied over or deleted".into()));
        }
        Ok(self.path(parent)?.join(name))
    }

    /// Runs file work as the game.
    async fn work<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> Result<T, FilesError> + Send + 'static,
    ) -> Result<T, FilesError> {
        as_game(self.user, work)
            .await
            .map_err(|reason| FilesError::Io { context: reason, source: io::Error::other("the file work stopped") })?
    }
}

fn entry_of(name: String, meta: &std::fs::Metadata) -> FileEntry {
    let kind = if meta.file_type().is_symlink() {
        FileKind::Symlink
    } else if meta.is_dir() {
        FileKind::Dir
    } else {
        FileKind::File
    };
    let modified = meta
        .modified()
        .ok()
        .and_then(|time| time.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |since| i64::try_from(since.as_secs()).unwrap_or(i64::MAX));
    FileEntry { name, kind, size: if kind == FileKind::File { meta.len() } else { 0 }, modified }
}

fn missing(relative: &str) -> impl FnOnce(io::Error) -> FilesError + '_ {
    move |error| match error.kind() {
        io::ErrorKind::NotFound => FilesError::NotFound(relative.to_owned()),
        io::ErrorKind::AlreadyExists => FilesError::Exists(relative.to_owned()),
        _ => FilesError::Io { context: format!("`{relative}`"), source: error },
    }
}

impl ServerFiles for LocalFiles {
    fn list<'a>(&'a self, dir: &'a str) -> BoxFuture<'a, Result<Vec<FileEntry>, FilesError>> {
        Box::pin(async move {
            let path = self.path(dir)?;
            let shown = dir.to_owned();
            self.work(move || {
                let mut entries = Vec::new();
                for entry in std::fs::read_dir(&path).map_err(missing(&shown))? {
                    let entry = entry.map_err(missing(&shown))?;
                    let Ok(meta) = entry.path().symlink_metadata() else { continue };
                    if !meta.is_file() && !meta.is_dir() && !meta.file_type().is_symlink() {
                        continue;
                    }
                    entries.push(entry_of(entry.file_name().to_string_lossy().into_owned(), &meta));
                }
                Ok(entries)
            })
            .await
        })
    }

    fn stat<'a>(&'a self, relative: &'a str) -> BoxFuture<'a, Result<FileEntry, FilesError>> {
        Box::pin(async move {
            let path = self.path(relative)?;
            let shown = relative.to_owned();
            self.work(move || {
                let meta = path.symlink_metadata().map_err(missing(&shown))?;
                let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                Ok(entry_of(name, &meta))
            })
            .await
        })
    }

    fn read<'a>(&'a self, relative: &'a str, offset: u64) -> BoxFuture<'a, Result<ByteStream, FilesError>> {
        Box::pin(async move {
            let path = self.path(relative)?;
            let shown = relative.to_owned();
            let file = self
                .work(move || {
                    let mut file = open_nofollow(&path).map_err(missing(&shown))?;
                    if !file.metadata().map_err(missing(&shown))?.is_file() {
                        return Err(FilesError::Path(format!("`{shown}` is a directory, not a file")));
                    }
                    file.seek(io::SeekFrom::Start(offset)).map_err(missing(&shown))?;
                    Ok(file)
                })
                .await?;
            Ok(tokio_util::io::ReaderStream::with_capacity(tokio::fs::File::from_std(file), CHUNK).boxed())
        })
    }

    fn write<'a>(
        &'a self,
        relative: &'a str,
        mut body: Incoming<'a>,
        allowance: Allowance,
    ) -> BoxFuture<'a, Result<u64, FilesError>> {
        Box::pin(async move {
            let path = self.inner_path(relative)?;
            let temporary = temporary_beside(&path);
            let (parent_path, open_temp) = (path.clone(), temporary.clone());
            let shown = relative.to_owned();
            let file = self
                .work(move || {
                    if parent_path.symlink_metadata().is_ok_and(|meta| meta.is_dir()) {
                        return Err(FilesError::Exists(shown));
                    }
                    if let Some(parent) = parent_path.parent() {
                        std::fs::create_dir_all(parent).map_err(missing(&shown))?;
                    }
                    create_nofollow(&open_temp).map_err(FilesError::io(format!("creating `{shown}`")))
                })
                .await?;
            let mut file = tokio::fs::File::from_std(file);
            let mut written = 0u64;
            let result = async {
                while let Some(chunk) = body.next().await {
                    let chunk = chunk.map_err(FilesError::io("receiving the file"))?;
                    written += chunk.len() as u64;
                    if written > allowance.budget {
                        return Err(FilesError::Full);
                    }
                    file.write_all(&chunk).await.map_err(FilesError::io("writing the file"))?;
                }
                file.sync_all().await.map_err(FilesError::io("writing the file"))
            }
            .await;
            drop(file);
            // The temporary files of other writes under way are in the tree too: together they must fit.
            let result = match result {
                Ok(()) => {
                    let data = self.data.clone();
                    match self.work(move || Ok(size_of(&data).unwrap_or(0))).await {
                        Ok(used) if used > allowance.limit => Err(FilesError::Full),
                        Ok(_) => Ok(()),
                        Err(error) => Err(error),
                    }
                }
                Err(error) => Err(error),
            };
            let (from, to) = (temporary.clone(), path);
            match result {
                Ok(()) => {
                    self.work(move || std::fs::rename(&from, &to).map_err(FilesError::io("saving the file"))).await?
                }
                Err(error) => {
                    let _ = self.work(move || std::fs::remove_file(&from).map_err(FilesError::io(""))).await;
                    return Err(error);
                }
            }
            Ok(written)
        })
    }

    fn mkdir<'a>(&'a self, relative: &'a str) -> BoxFuture<'a, Result<(), FilesError>> {
        Box::pin(async move {
            let path = self.inner_path(relative)?;
            let shown = relative.to_owned();
            self.work(move || {
                if path.symlink_metadata().is_ok() {
                    return Err(FilesError::Exists(shown));
                }
                std::fs::create_dir_all(&path).map_err(missing(&shown))
            })
            .await
        })
    }

    fn rename<'a>(&'a self, from: &'a str, to: &'a str) -> BoxFuture<'a, Result<(), FilesError>> {
        Box::pin(async move {
            let (source, target) = (self.inner_path(from)?, self.inner_path(to)?);
            if target.starts_with(&source) {
                return Err(FilesError::Path(format!("`{from}` cannot be moved into itself")));
            }
            let (from, to) = (from.to_owned(), to.to_owned());
            self.work(move || {
                source.symlink_metadata().map_err(missing(&from))?;
                if target.symlink_metadata().is_ok() {
                    return Err(FilesError::Exists(to));
                }
                if let Some(parent) = target.parent() {
                    std::fs::create_dir_all(parent).map_err(missing(&to))?;
                }
                std::fs::rename(&source, &target).map_err(missing(&from))
            })
            .await
        })
    }

    fn copy<'a>(&'a self, from: &'a str, to: &'a str, budget: u64) -> BoxFuture<'a, Result<(), FilesError>> {
        Box::pin(async move {
            let (source, target) = (self.path(from)?, self.inner_path(to)?);
            if target.starts_with(&source) {
                return Err(FilesError::Path(format!("`{from}` cannot be copied into itself")));
            }
            let (from, to) = (from.to_owned(), to.to_owned());
            self.work(move || {
                source.symlink_metadata().map_err(missing(&from))?;
                if target.symlink_metadata().is_ok() {
                    return Err(FilesError::Exists(to));
                }
                let mut budget = Budget(budget);
                let copied = copy_tree(&source, &target, &mut budget);
                if copied.is_err() {
                    let _ = std::fs::remove_dir_all(&target).or_else(|_| std::fs::remove_file(&target));
                }
                copied.map_err(unpacked)
            })
            .await
        })
    }

    fn remove<'a>(&'a self, paths: &'a [String]) -> BoxFuture<'a, Result<(), FilesError>> {
        Box::pin(async move {
            let targets: Vec<(String, PathBuf)> =
                paths.iter().map(|p| self.entry_path(p).map(|path| (p.clone(), path))).collect::<Result<_, _>>()?;
            self.work(move || {
                for (shown, path) in targets {
                    let meta = path.symlink_metadata().map_err(missing(&shown))?;
                    // A link is removed itself; remove_dir_all never follows one inside a tree.
                    let removed =
                        if meta.is_dir() { std::fs::remove_dir_all(&path) } else { std::fs::remove_file(&path) };
                    removed.map_err(missing(&shown))?;
                }
                Ok(())
            })
            .await
        })
    }

    fn pack<'a>(&'a self, paths: &'a [String], ignore: &'a Ignore) -> BoxFuture<'a, Result<ByteStream, FilesError>> {
        Box::pin(async move {
            let roots: Vec<(String, PathBuf)> =
                paths.iter().map(|p| self.path(p).map(|path| (p.clone(), path))).collect::<Result<_, _>>()?;
            for (shown, path) in &roots {
                path.symlink_metadata().map_err(missing(shown))?;
            }
            let (mut writer, output) = ChannelWriter::new();
            let (data, ignore, user) = (self.data.clone(), ignore.clone(), self.user);
            // Not awaited: the tar is made while it is read, and stops if the reader goes away.
            tokio::spawn(as_game(user, move || match pack_into(&mut writer, &data, &roots, &ignore, None) {
                Ok(()) => {
                    if let Err(error) = writer.finish() {
                        tracing::debug!(%error, "the packed files' reader went away");
                    }
                }
                Err(error) => writer.fail(error),
            }));
            Ok(output)
        })
    }

    fn replace_all<'a>(
        &'a self,
        tar: ByteStream,
        budget: u64,
        check: Box<dyn FnOnce() -> Result<(), String> + Send + 'a>,
    ) -> BoxFuture<'a, Result<(), FilesError>> {
        Box::pin(async move {
            // Unpacked beside the data directory first: the server's files are only replaced once the whole
            // archive is in and checked.
            let staging = self.server_dir.join(format!("restoring-{}", uuid::Uuid::new_v4().simple()));
            prepare_owned_dir(&staging, self.user).map_err(FilesError::io("preparing the restore"))?;
            let reader = tokio_util::io::SyncIoBridge::new(tokio_util::io::StreamReader::new(tar));
            let into = staging.clone();
            let unpacked = self
                .work(move || {
                    let mut reader = reader;
                    let mut budget = Budget(budget);
                    unpack_tar(&mut reader, &into, &mut budget).map_err(unpacked)?;
                    // The rest of the stream (tar padding), so that a checksum over all of it is complete.
                    io::copy(&mut reader, &mut io::sink()).map_err(FilesError::io("reading the archive"))?;
                    Ok(())
                })
                .await;
            let checked = unpacked.and_then(|()| check().map_err(FilesError::Refused));
            if let Err(error) = checked {
                let _ = std::fs::remove_dir_all(&staging);
                return Err(error);
            }
            let old = self.server_dir.join(format!("replaced-{}", uuid::Uuid::new_v4().simple()));
            let swapped = std::fs::rename(&self.data, &old)
                .or_else(|error| if error.kind() == io::ErrorKind::NotFound { Ok(()) } else { Err(error) })
                .and_then(|()| std::fs::rename(&staging, &self.data));
            if let Err(error) = swapped {
                let _ = std::fs::rename(&old, &self.data);
                let _ = std::fs::remove_dir_all(&staging);
                return Err(FilesError::Io { context: "replacing the server's files".into(), source: error });
            }
            let _ = tokio::task::spawn_blocking(move || std::fs::remove_dir_all(old)).await;
            Ok(())
        })
    }

    fn compress<'a>(
        &'a self,
        paths: &'a [String],
        to: &'a str,
        format: ArchiveFormat,
        budget: u64,
    ) -> BoxFuture<'a, Result<(), FilesError>> {
        Box::pin(async move {
            let roots: Vec<(String, PathBuf)> =
                paths.iter().map(|p| self.inner_path(p).map(|path| (p.clone(), path))).collect::<Result<_, _>>()?;
            let target = self.inner_path(to)?;
            let (data, shown) = (self.data.clone(), to.to_owned());
            self.work(move || {
                if target.symlink_metadata().is_ok() {
                    return Err(FilesError::Exists(shown));
                }
                for (name, path) in &roots {
                    path.symlink_metadata().map_err(missing(name))?;
                }
                let temporary = temporary_beside(&target);
                let file = create_nofollow(&temporary).map_err(FilesError::io(format!("creating `{shown}`")))?;
                let mut limited = Limited { inner: file, left: budget };
                let written = write_archive(&mut limited, &data, &roots, format, &temporary);
                let full = limited.left == 0;
                match written {
                    Ok(()) => std::fs::rename(&temporary, &target).map_err(FilesError::io("saving the archive")),
                    Err(error) => {
                        let _ = std::fs::remove_file(&temporary);
                        Err(if full {
                            FilesError::Full
                        } else {
                            FilesError::Io { context: format!("making `{shown}`"), source: error }
                        })
                    }
                }
            })
            .await
        })
    }

    fn extract<'a>(&'a self, path: &'a str, to: &'a str, budget: u64) -> BoxFuture<'a, Result<usize, FilesError>> {
        Box::pin(async move {
            let (archive, target) = (self.inner_path(path)?, self.path(to)?);
            let shown = path.to_owned();
            self.work(move || {
                archive.symlink_metadata().map_err(missing(&shown))?;
                unpack(&archive, &target, budget).map_err(unpacked)
            })
            .await
        })
    }

    fn search<'a>(&'a self, search: &'a Search) -> BoxFuture<'a, Result<SearchResults, FilesError>> {
        Box::pin(async move {
            let (data, search) = (self.data.clone(), search.clone());
            self.work(move || Ok(search_tree(&data, &search, Instant::now() + SEARCH_TIME))).await
        })
    }

    fn usage(&self) -> BoxFuture<'_, Result<u64, FilesError>> {
        Box::pin(async move {
            let data = self.data.clone();
            Ok(tokio::task::spawn_blocking(move || size_of(&data).unwrap_or(0)).await.unwrap_or(0))
        })
    }
}

fn unpacked(error: Unpack) -> FilesError {
    match error {
        Unpack::TooBig => FilesError::Full,
        Unpack::Refused(reason) => FilesError::Refused(reason),
    }
}

/// A new file's temporary name beside it: renamed over it when whole.
/// Puts right what a restore cut short (Spawnpoint killed during one) left in `server_dir`: a swap half done is
/// undone, so the server has the files it had before the restore, and what was unpacked or set aside goes.
pub fn finish_restores(server_dir: &Path) {
    let data = server_dir.join("data");
    let Ok(entries) = std::fs::read_dir(server_dir) else { return };
    for entry in entries.flatten() {
        let (name, path) = (entry.file_name().to_string_lossy().into_owned(), entry.path());
        if name.starts_with("replaced-") && data.symlink_metadata().is_err() && std::fs::rename(&path, &data).is_ok() {
            tracing::warn!(dir = %server_dir.display(), "a restore cut short was undone: the files are as they were");
            continue;
        }
        if name.starts_with("restoring-") || name.starts_with("replaced-") {
            let _ = std::fs::remove_dir_all(&path);
        }
    }
}

fn temporary_beside(path: &Path) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    path.with_file_name(format!(".{name}.spawnpoint-{}", uuid::Uuid::new_v4().simple()))
}

/// A directory made by the panel and handed to the game's user, private to it.
fn prepare_owned_dir(dir: &Path, user: Option<(u32, u32)>) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::create_dir(dir)?;
    if let Some((uid, gid)) = user {
        std::os::unix::fs::lchown(dir, Some(uid), Some(gid))?;
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
}

/// Copies a file or tree, links and special files left out.
fn copy_tree(source: &Path, target: &Path, budget: &mut Budget) -> Result<(), Unpack> {
    let meta = source.symlink_metadata().map_err(|e| Unpack::Refused(e.to_string()))?;
    if meta.is_dir() {
        std::fs::create_dir_all(target).map_err(|e| Unpack::Refused(e.to_string()))?;
        for entry in std::fs::read_dir(source).map_err(|e| Unpack::Refused(e.to_string()))? {
            let entry = entry.map_err(|e| Unpack::Refused(e.to_string()))?;
            copy_tree(&entry.path(), &target.join(entry.file_name()), budget)?;
        }
    } else if meta.is_file() {
        let mut from = open_nofollow(source).map_err(|e| Unpack::Refused(e.to_string()))?;
        let mut to = create_nofollow(target).map_err(|e| Unpack::Refused(e.to_string()))?;
        let copied =
            io::copy(&mut (&mut from).take(budget.0 + 1), &mut to).map_err(|e| Unpack::Refused(e.to_string()))?;
        if copied > budget.0 {
            return Err(Unpack::TooBig);
        }
        budget.0 -= copied;
        let _ = std::fs::set_permissions(target, meta.permissions());
    }
    Ok(())
}

/// Writes the trees under `roots` as a tar; names are relative to `data`.
/// `skip`: a file left out (the archive being written, when it is among the files packed).
fn pack_into(
    writer: &mut impl io::Write,
    data: &Path,
    roots: &[(String, PathBuf)],
    ignore: &Ignore,
    skip: Option<&Path>,
) -> io::Result<()> {
    let mut tar = tar::Builder::new(writer);
    for (_, root) in roots {
        let mut pending = vec![root.clone()];
        while let Some(path) = pending.pop() {
            let Ok(meta) = path.symlink_metadata() else { continue };
            let relative = path.strip_prefix(data).unwrap_or(&path).to_string_lossy().into_owned();
            if (!relative.is_empty() && ignore.excludes(&relative, meta.is_dir())) || skip == Some(path.as_path()) {
                continue;
            }
            let mut header = tar::Header::new_gnu();
            header.set_mtime(entry_of(String::new(), &meta).modified.max(0).unsigned_abs());
            header.set_mode(std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o7777);
            if meta.is_dir() {
                if !relative.is_empty() {
                    header.set_entry_type(tar::EntryType::Directory);
                    header.set_size(0);
                    tar.append_data(&mut header, format!("{relative}/"), io::empty())?;
                }
                let mut children: Vec<PathBuf> =
                    std::fs::read_dir(&path)?.filter_map(|entry| entry.ok().map(|entry| entry.path())).collect();
                // Reversed, so that the stack hands them out in name order.
                children.sort_unstable_by(|a, b| b.cmp(a));
                pending.extend(children);
            } else if meta.is_file() {
                // The game may be writing it meanwhile: exactly the size the header says goes in, cut or padded.
                let Ok(file) = open_nofollow(&path) else { continue };
                header.set_entry_type(tar::EntryType::Regular);
                header.set_size(meta.len());
                tar.append_data(&mut header, &relative, Exactly { inner: file.take(meta.len()), left: meta.len() })?;
            }
            // Links and special files are not backed up: they would point outside once restored elsewhere.
        }
    }
    tar.into_inner()?.flush()
}

/// Reads exactly `left` bytes: what the inner reader has, then zeros.
struct Exactly<R> {
    inner: R,
    left: u64,
}

impl<R: io::Read> io::Read for Exactly<R> {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            return Ok(0);
        }
        let most = buffer.len().min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let mut read = self.inner.read(&mut buffer[..most])?;
        if read == 0 {
            buffer[..most].fill(0);
            read = most;
        }
        self.left -= read as u64;
        Ok(read)
    }
}

/// A writer that refuses to go past `left` bytes.
struct Limited<W> {
    inner: W,
    left: u64,
}

impl<W: io::Write> io::Write for Limited<W> {
    fn write(&mut self, buffer: &[u8]) -> io::Result<usize> {
        if buffer.len() as u64 > self.left {
            self.left = 0;
            return Err(io::Error::other("the archive would be larger than the server's storage allows"));
        }
        let written = self.inner.write(buffer)?;
        self.left -= written as u64;
        Ok(written)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl<W: io::Write + io::Seek> io::Seek for Limited<W> {
    fn seek(&mut self, position: io::SeekFrom) -> io::Result<u64> {
        self.inner.seek(position)
    }
}

/// `itself`: the archive being written, left out of it.
fn write_archive(
    out: &mut Limited<std::fs::File>,
    data: &Path,
    roots: &[(String, PathBuf)],
    format: ArchiveFormat,
    itself: &Path,
) -> io::Result<()> {
    let none = Ignore::default();
    match format {
        ArchiveFormat::Tar => pack_into(out, data, roots, &none, Some(itself)),
        ArchiveFormat::TarGz => {
            let mut encoder = flate2::write::GzEncoder::new(out, flate2::Compression::default());
            pack_into(&mut encoder, data, roots, &none, Some(itself))?;
            encoder.finish()?.flush()
        }
        ArchiveFormat::TarZst => {
            let mut encoder = zstd::Encoder::new(out, 3)?;
            pack_into(&mut encoder, data, roots, &none, Some(itself))?;
            encoder.finish()?.flush()
        }
        ArchiveFormat::Zip => {
            let mut zip = zip::ZipWriter::new(out);
            let options = zip::write::SimpleFileOptions::default();
            for (_, root) in roots {
                let mut pending = vec![root.clone()];
                while let Some(path) = pending.pop() {
                    let Ok(meta) = path.symlink_metadata() else { continue };
                    if path == itself {
                        continue;
                    }
                    let relative = path.strip_prefix(data).unwrap_or(&path).to_string_lossy().into_owned();
                    if meta.is_dir() {
                        zip.add_directory(&relative, options).map_err(io::Error::other)?;
                        pending.extend(std::fs::read_dir(&path)?.filter_map(|e| e.ok().map(|e| e.path())));
                    } else if meta.is_file() {
                        let Ok(file) = open_nofollow(&path) else { continue };
                        let mode = std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o755;
                        zip.start_file(&relative, options.unix_permissions(mode)).map_err(io::Error::other)?;
                        io::copy(&mut file.take(meta.len()), &mut zip)?;
                    }
                }
            }
            zip.finish().map_err(io::Error::other)?.flush()
        }
    }
}

/// Names, then (with `content`) lines holding the text, case-insensitively; stops at the hit limit or deadline.
fn search_tree(data: &Path, search: &Search, deadline: Instant) -> SearchResults {
    let needle = search.text.to_lowercase();
    let mut hits = Vec::new();
    let mut pending = vec![data.to_path_buf()];
    let mut truncated = false;
    'walk: while let Some(path) = pending.pop() {
        if Instant::now() > deadline || hits.len() >= MAX_SEARCH_HITS {
            truncated = true;
            break;
        }
        let Ok(meta) = path.symlink_metadata() else { continue };
        let relative = path.strip_prefix(data).unwrap_or(&path).to_string_lossy().into_owned();
        let name = path.file_name().map(|n| n.to_string_lossy().to_lowercase()).unwrap_or_default();
        if !relative.is_empty() && name.contains(&needle) {
            hits.push(SearchHit { path: relative.clone(), line: None, text: None });
        }
        if meta.is_dir() {
            if let Ok(entries) = std::fs::read_dir(&path) {
                pending.extend(entries.filter_map(|e| e.ok().map(|e| e.path())));
            }
        } else if search.content && meta.is_file() && meta.len() <= MAX_SEARCH_FILE_BYTES {
            let Ok(file) = open_nofollow(&path) else { continue };
            let mut bytes = Vec::new();
            if file.take(MAX_SEARCH_FILE_BYTES).read_to_end(&mut bytes).is_err()
                || bytes[..bytes.len().min(8192)].contains(&0)
            {
                continue; // unreadable, or binary
            }
            for (number, line) in String::from_utf8_lossy(&bytes).lines().enumerate() {
                if line.to_lowercase().contains(&needle) {
                    let text: String = line.trim().chars().take(200).collect();
                    hits.push(SearchHit { path: relative.clone(), line: Some(number as u64 + 1), text: Some(text) });
                    if hits.len() >= MAX_SEARCH_HITS {
                        truncated = true;
                        break 'walk;
                    }
                }
            }
        }
    }
    hits.sort_by(|a, b| (&a.path, a.line).cmp(&(&b.path, b.line)));
    SearchResults { hits, truncated }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    #[test]
    fn a_restore_cut_short_is_undone_at_the_next_start() {
        let dir = tempfile::tempdir().expect("temp dir");
        // Killed between setting the old files aside and moving the new ones in.
        let aside = dir.path().join("replaced-1");
        std::fs::create_dir_all(&aside).expect("dir");
        std::fs::write(aside.join("world.dat"), "the world before").expect("file");
        std::fs::create_dir_all(dir.path().join("restoring-2/half")).expect("dir");
        finish_restores(dir.path());
        assert_eq!(std::fs::read_to_string(dir.path().join("data/world.dat")).expect("back"), "the world before");
        assert!(!dir.path().join("restoring-2").exists() && !aside.exists());

        // Killed after the swap, before the old files were removed: the new ones stay.
        std::fs::create_dir_all(dir.path().join("replaced-3")).expect("dir");
        finish_restores(dir.path());
        assert!(dir.path().join("data/world.dat").exists() && !dir.path().join("replaced-3").exists());
    }

    fn room(budget: u64) -> Allowance {
        Allowance { budget, limit: u64::MAX }
    }

    fn files(dir: &Path) -> LocalFiles {
        let data = dir.join("data");
        std::fs::create_dir_all(&data).expect("data dir");
        LocalFiles { server_dir: dir.to_path_buf(), data, user: None }
    }

    fn body(bytes: &'static [u8]) -> ByteStream {
        futures_util::stream::iter([Ok(Bytes::from_static(bytes))]).boxed()
    }

    async fn collect(stream: ByteStream) -> Vec<u8> {
        let pieces: Vec<io::Result<Bytes>> = stream.collect().await;
        pieces.into_iter().flat_map(|piece| piece.expect("a piece").to_vec()).collect()
    }

    #[tokio::test]
    async fn a_tree_packed_and_restored_comes_back_the_same() {
        let dir = tempfile::tempdir().expect("temp dir");
        let files = files(dir.path());
        files.write("world/level.dat", body(b"level"), room(1000)).await.expect("write");
        files.write("server.properties", body(b"motd=hi\n"), room(1000)).await.expect("write");
        files.write("logs/latest.log", body(b"noise"), room(1000)).await.expect("write");
        let ignore = Ignore::parse("logs/").expect("ignore");
        let tar = collect(files.pack(&[String::new()], &ignore).await.expect("pack")).await;

        files.remove(&["world".into()]).await.expect("remove");
        files.write("planted", body(b"x"), room(1000)).await.expect("write");
        let stream = futures_util::stream::iter([Ok(Bytes::from(tar))]).boxed();
        files.replace_all(stream, 10_000, Box::new(|| Ok(()))).await.expect("restore");
        assert_eq!(std::fs::read(files.data.join("world/level.dat")).expect("restored"), b"level");
        assert!(!files.data.join("planted").exists(), "what was not in the backup is gone");
        assert!(!files.data.join("logs").exists(), "ignored on the way in");
    }

    #[tokio::test]
    async fn a_refused_restore_leaves_the_files_alone() {
        let dir = tempfile::tempdir().expect("temp dir");
        let files = files(dir.path());
        files.write("keep", body(b"mine"), room(1000)).await.expect("write");
        let tar = collect(files.pack(&[String::new()], &Ignore::default()).await.expect("pack")).await;
        let stream = futures_util::stream::iter([Ok(Bytes::from(tar))]).boxed();
        let refused = files.replace_all(stream, 10_000, Box::new(|| Err("checksum differs".into()))).await;
        assert!(matches!(refused, Err(FilesError::Refused(reason)) if reason == "checksum differs"));
        assert_eq!(std::fs::read(files.data.join("keep")).expect("kept"), b"mine");
        let leftovers = std::fs::read_dir(dir.path()).expect("list").count();
        assert_eq!(leftovers, 1, "only the data directory: no staging left behind");
    }

    #[tokio::test]
    async fn writes_stop_at_the_budget_and_leave_nothing() {
        let dir = tempfile::tempdir().expect("temp dir");
        let files = files(dir.path());
        let written = files.write("big", body(b"0123456789"), room(5)).await;
        assert!(matches!(written, Err(FilesError::Full)), "{written:?}");
        assert_eq!(std::fs::read_dir(&files.data).expect("list").count(), 0, "no temporary file left");
    }

    #[tokio::test]
    async fn archives_made_here_unpack_again() {
        let dir = tempfile::tempdir().expect("temp dir");
        let files = files(dir.path());
        files.write("mods/a.jar", body(b"aaaa"), room(1000)).await.expect("write");
        files.write("mods/b.jar", body(b"bbbb"), room(1000)).await.expect("write");
        for (name, format) in
            [("m.zip", ArchiveFormat::Zip), ("m.tar.gz", ArchiveFormat::TarGz), ("m.tar.zst", ArchiveFormat::TarZst)]
        {
            files.compress(&["mods".into()], name, format, 100_000).await.expect("compress");
            let to = format!("out-{name}");
            assert_eq!(files.extract(name, &to, 100_000).await.expect("extract"), 2, "{name}");
            assert_eq!(std::fs::read(files.data.join(&to).join("mods/b.jar")).expect("unpacked"), b"bbbb");
            let small = files.extract(name, "small", 3).await;
            assert!(matches!(small, Err(FilesError::Full)), "{name}: {small:?}");
        }
    }

    #[tokio::test]
    async fn search_finds_names_and_lines() {
        let dir = tempfile::tempdir().expect("temp dir");
        let files = files(dir.path());
        files.write("server.properties", body(b"motd=Hello\nmax-players=5\n"), room(1000)).await.expect("write");
        files.write("config/motd.txt", body(b"x"), room(1000)).await.expect("write");
        let search = Search { text: "MOTD".into(), content: true };
        let found = files.search(&search).await.expect("search");
        let hits: Vec<(String, Option<u64>)> = found.hits.into_iter().map(|hit| (hit.path, hit.line)).collect();
        assert_eq!(hits, [("config/motd.txt".to_owned(), None), ("server.properties".to_owned(), Some(1))]);
    }
}
