//! Writing into a server's data directory from the panel, which may run as root while the directory belongs to
//! the game: every path is confined to the directory, and a symbolic link (which the game could have made,
//! pointing anywhere) is never followed.

use std::io::{self, Read as _, Write as _};
use std::path::{Component, Path, PathBuf};

use catalog::files::ArchiveFormat;

/// `relative` inside `data`, or why not: absolute paths, `..`, NUL bytes, a symbolic link anywhere on the way
/// (the last part included) and anything but a plain file or directory are refused.
pub fn confined(data: &Path, relative: &str) -> Result<PathBuf, String> {
    if relative.contains('\0') {
        return Err("a path may not hold a NUL byte".to_owned());
    }
    let mut path = data.to_path_buf();
    for component in Path::new(relative).components() {
        match component {
            Component::Normal(part) => path.push(part),
            Component::CurDir => {}
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => {
                return Err(format!("`{relative}` leaves the server's files"));
            }
        }
        match std::fs::symlink_metadata(&path) {
            Ok(meta) if meta.file_type().is_symlink() => {
                return Err(format!("`{relative}` goes through a symbolic link, which Spawnpoint does not follow"));
            }
            Ok(meta) if !meta.is_file() && !meta.is_dir() => {
                return Err(format!("`{relative}` is not a plain file or directory"));
            }
            _ => {}
        }
    }
    Ok(path)
}

/// The bytes the files under `dir` take (links not followed), `None` when it does not exist.
pub fn size_of(dir: &Path) -> Option<u64> {
    let mut total = 0;
    let mut pending = vec![dir.to_path_buf()];
    std::fs::symlink_metadata(dir).ok()?;
    while let Some(path) = pending.pop() {
        let Ok(meta) = std::fs::symlink_metadata(&path) else { continue };
        if meta.is_dir() {
            pending.extend(std::fs::read_dir(&path).into_iter().flatten().flatten().map(|entry| entry.path()));
        } else if meta.is_file() {
            total += meta.len();
        }
    }
    Some(total)
}

/// Writes `bytes` as `path`'s new content: to a temporary file beside it, then renamed over it (a rename
/// replaces a link rather than following it, and a reader never sees half a file).
pub fn replace_file(path: &Path, bytes: &[u8]) -> io::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let temporary = path.with_extension("spawnpoint-new");
    let _ = std::fs::remove_file(&temporary);
    let mut file = std::fs::OpenOptions::new().write(true).create_new(true).open(&temporary)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&temporary, path)
}

/// Why an archive did not unpack.
#[derive(Debug, PartialEq, Eq)]
pub enum Unpack {
    /// It holds more than the budget allows (counted as written: a zip bomb lies about its sizes).
    TooBig,
    /// It is not an archive, or an entry cannot be written (leaves the target, is a link or a device, …).
    Refused(String),
}

impl std::fmt::Display for Unpack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unpack::TooBig => f.write_str("the archive unpacks to more than the server's storage allows"),
            Unpack::Refused(reason) => f.write_str(reason),
        }
    }
}

/// Unpacks a zip, tar, tar.gz or tar.zst archive (by its name) into `target`, never past `budget` bytes in all;
/// returns how many files it wrote. Entries leaving the target, links and devices are refused.
pub fn unpack(archive: &Path, target: &Path, budget: u64) -> Result<usize, Unpack> {
    fn refused(what: &'static str) -> impl FnOnce(io::Error) -> Unpack {
        move |e| Unpack::Refused(format!("{what}: {e}"))
    }
    let name = archive.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let format = ArchiveFormat::of(&name)
        .ok_or_else(|| Unpack::Refused(format!("`{name}` is not a zip, tar, tar.gz or tar.zst archive")))?;
    let file = open_nofollow(archive).map_err(refused("opening the archive"))?;
    std::fs::create_dir_all(target).map_err(refused("creating the target directory"))?;
    let mut budget = Budget(budget);
    match format {
        ArchiveFormat::Zip => unpack_zip(file, target, &mut budget),
        ArchiveFormat::Tar => unpack_tar(file, target, &mut budget),
        ArchiveFormat::TarGz => unpack_tar(flate2::read::GzDecoder::new(file), target, &mut budget),
        ArchiveFormat::TarZst => {
            let decoder = zstd::Decoder::new(file).map_err(refused("reading the archive"))?;
            unpack_tar(decoder, target, &mut budget)
        }
    }
}

fn unpack_zip(file: std::fs::File, target: &Path, budget: &mut Budget) -> Result<usize, Unpack> {
    let bad = |e: zip::result::ZipError| Unpack::Refused(format!("reading the zip: {e}"));
    let mut zip = zip::ZipArchive::new(file).map_err(bad)?;
    let mut files = 0;
    for index in 0..zip.len() {
        let mut entry = zip.by_index(index).map_err(bad)?;
        let entry_name = entry.name().to_owned();
        if entry.is_symlink() {
            return Err(Unpack::Refused(format!("`{entry_name}` in the archive is a symbolic link")));
        }
        let relative =
            entry.enclosed_name().ok_or_else(|| Unpack::Refused(format!("`{entry_name}` leaves the target")))?;
        let path = confined(target, &relative.to_string_lossy()).map_err(Unpack::Refused)?;
        if entry.is_dir() {
            std::fs::create_dir_all(&path).map_err(|e| Unpack::Refused(format!("creating `{entry_name}`: {e}")))?;
            continue;
        }
        let mode = entry.unix_mode().map(|mode| mode & 0o755);
        write_entry(&path, &mut entry, budget, mode).map_err(|e| e.named(&entry_name))?;
        files += 1;
    }
    Ok(files)
}

/// Unpacks a tar stream into `target` (which may already hold files: they are replaced).
pub fn unpack_tar(reader: impl io::Read, target: &Path, budget: &mut Budget) -> Result<usize, Unpack> {
    let bad = |e: io::Error| Unpack::Refused(format!("reading the archive: {e}"));
    let mut tar = tar::Archive::new(reader);
    let mut files = 0;
    for entry in tar.entries().map_err(bad)? {
        let mut entry = entry.map_err(bad)?;
        let entry_name = entry.path().map(|p| p.to_string_lossy().into_owned()).unwrap_or_default();
        let path = confined(target, &entry_name).map_err(Unpack::Refused)?;
        match entry.header().entry_type() {
            tar::EntryType::Directory => {
                std::fs::create_dir_all(&path).map_err(|e| Unpack::Refused(format!("creating `{entry_name}`: {e}")))?;
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let mode = entry.header().mode().ok().map(|mode| mode & 0o755);
                write_entry(&path, &mut entry, budget, mode).map_err(|e| e.named(&entry_name))?;
                files += 1;
            }
            // Metadata entries of pax and GNU archives say nothing about files to write.
            tar::EntryType::XGlobalHeader | tar::EntryType::XHeader | tar::EntryType::GNULongName => {}
            other => return Err(Unpack::Refused(format!("`{entry_name}` in the archive is a {other:?}, not a file"))),
        }
    }
    Ok(files)
}

/// What an archive may still unpack to, in bytes.
pub struct Budget(pub u64);

impl Unpack {
    fn named(self, entry: &str) -> Self {
        match self {
            Unpack::Refused(reason) => Unpack::Refused(format!("`{entry}`: {reason}")),
            too_big => too_big,
        }
    }
}

fn write_entry(path: &Path, from: &mut impl io::Read, budget: &mut Budget, mode: Option<u32>) -> Result<(), Unpack> {
    use std::os::unix::fs::PermissionsExt as _;
    let refused = |e: io::Error| Unpack::Refused(e.to_string());
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(refused)?;
    }
    let _ = std::fs::remove_file(path);
    let mut file = create_nofollow(path).map_err(refused)?;
    let copied = io::copy(&mut from.take(budget.0 + 1), &mut file).map_err(refused)?;
    if copied > budget.0 {
        drop(file);
        let _ = std::fs::remove_file(path);
        return Err(Unpack::TooBig);
    }
    budget.0 -= copied;
    if let Some(mode) = mode.filter(|mode| *mode != 0) {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode | 0o600)).map_err(refused)?;
    }
    Ok(())
}

/// Opens an existing plain file for reading; a link in its place is refused, not followed, and anything else
/// swapped in meanwhile (a FIFO would block the open for ever: hence `O_NONBLOCK`, which plain files ignore) is
/// refused too.
pub fn open_nofollow(path: &Path) -> io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK)
        .open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() && !meta.is_dir() {
        return Err(io::Error::other("not a plain file"));
    }
    Ok(file)
}

/// Creates a new file (one already there, or a link, is an error).
pub fn create_nofollow(path: &Path) -> io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt as _;
    std::fs::OpenOptions::new().write(true).create_new(true).custom_flags(nix::libc::O_NOFOLLOW).open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_stay_inside_and_links_are_not_followed() {
        let dir = tempfile::tempdir().expect("temp dir");
        let data = dir.path();
        std::fs::create_dir(data.join("world")).expect("dir");
        assert_eq!(confined(data, "world/level.dat"), Ok(data.join("world/level.dat")));
        assert_eq!(confined(data, "./server.properties"), Ok(data.join("server.properties")));
        for escaping in ["../x", "/etc/passwd", "world/../../x", "a\0b"] {
            assert!(confined(data, escaping).is_err(), "{escaping:?}");
        }
        std::os::unix::fs::symlink("/etc", data.join("out")).expect("link");
        std::os::unix::fs::symlink("/etc/passwd", data.join("server.properties")).expect("link");
        assert!(confined(data, "out/passwd").expect_err("through a link").contains("symbolic link"));
        assert!(confined(data, "server.properties").expect_err("a link itself").contains("symbolic link"));
    }

    #[test]
    fn archives_cannot_unpack_past_the_limit_or_outside() {
        let dir = tempfile::tempdir().expect("temp dir");
        let archive = dir.path().join("a.tar.gz");
        let file = std::fs::File::create(&archive).expect("create");
        let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(file, flate2::Compression::fast()));
        let big = vec![0u8; 4096];
        let mut header = tar::Header::new_gnu();
        header.set_size(big.len() as u64);
        header.set_mode(0o755);
        builder.append_data(&mut header, "bin/game", &big[..]).expect("append");
        builder.into_inner().expect("finish").finish().expect("gzip");

        let target = dir.path().join("out");
        assert_eq!(unpack(&archive, &target, 10_000), Ok(1));
        assert_eq!(std::fs::metadata(target.join("bin/game")).map(|m| m.len()).ok(), Some(4096));
        assert_eq!(unpack(&archive, &dir.path().join("small"), 1000), Err(Unpack::TooBig));
        assert!(!dir.path().join("small/bin/game").exists(), "nothing past the limit is left");
    }
}
