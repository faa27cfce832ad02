//! A server's files as the file manager, the API and SFTP show them, and the rules every path and archive name
//! follows, shared with the browser.

use serde::{Deserialize, Serialize};

/// Most entries one page of a directory listing holds.
pub const MAX_PAGE: usize = 1000;
/// How many earlier versions of a file edited in the browser are kept.
pub const KEEP_VERSIONS: usize = 5;
/// Largest file whose earlier version is kept (bigger edits are saved without one).
pub const MAX_VERSION_BYTES: usize = 1024 * 1024;
/// Largest file the browser's editor opens.
pub const MAX_EDIT_BYTES: u64 = 4 * 1024 * 1024;
/// Most hits one search returns.
pub const MAX_SEARCH_HITS: usize = 200;
/// Largest file a content search reads.
pub const MAX_SEARCH_FILE_BYTES: u64 = 2 * 1024 * 1024;
/// Longest search text.
pub const MAX_QUERY_LEN: usize = 200;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FileKind {
    File,
    Dir,
    /// Shown, never followed: the game may have made it, pointing anywhere.
    Symlink,
}

/// One entry of a directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    pub name: String,
    pub kind: FileKind,
    /// Bytes (0 for directories).
    pub size: u64,
    /// Unix seconds.
    pub modified: i64,
}

/// A page of a directory (`GET /api/servers/{id}/files?path=DIR&offset=N&limit=M`): directories first, then by
/// name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileListing {
    pub path: String,
    pub entries: Vec<FileEntry>,
    /// Entries in the whole directory.
    pub total: usize,
    pub offset: usize,
}

/// Longest path, in bytes (Linux's own limit).
pub const MAX_PATH_LEN: usize = 4096;

/// A path inside a server's files as given (`world/level.dat`, `./a`, `` or `.` for the root), made plain
/// (`world/level.dat`, `a`, ``), or why it cannot be one. Absolute paths, `..`, NUL and other control
/// characters are refused here; links are refused where the files are.
pub fn clean_path(path: &str) -> Result<String, String> {
    if path.len() > MAX_PATH_LEN {
        return Err(format!("a path may be at most {MAX_PATH_LEN} bytes"));
    }
    if path.contains('\0') {
        return Err("a path may not hold a NUL byte".to_owned());
    }
    if path.chars().any(char::is_control) {
        return Err("a path may not hold control characters".to_owned());
    }
    // A backslash is a separator where downloaded archives may be unpacked (Windows).
    if path.contains('\\') {
        return Err("a path may not hold a backslash".to_owned());
    }
    if path.starts_with('/') {
        return Err(format!("`{path}` is absolute; paths start at the server's root, without `/`"));
    }
    let mut parts = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => return Err(format!("`{path}` leaves the server's files")),
            part if part.len() > 255 => return Err("a file name may be at most 255 bytes".to_owned()),
            part => parts.push(part),
        }
    }
    Ok(parts.join("/"))
}

/// A path as an SFTP client gives it (`/world/level.dat`, `world/./level.dat`, `.`), the server's files being
/// its root, made plain as [`clean_path`] makes it; `..` is followed within the server's files and refused where
/// it would leave them.
pub fn client_path(path: &str) -> Result<String, String> {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.pop().is_none() {
                    return Err(format!("`{path}` leaves the server's files"));
                }
            }
            part => parts.push(part),
        }
    }
    clean_path(&parts.join("/"))
}

/// Directories first, then files and links, each by name.
pub fn sort_entries(entries: &mut [FileEntry]) {
    entries.sort_by(|a, b| (a.kind != FileKind::Dir, &a.name).cmp(&(b.kind != FileKind::Dir, &b.name)));
}

/// One search hit: a file whose name matches, or a line of it that holds the text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SearchHit {
    pub path: String,
    /// The line number (from 1) of a content hit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line: Option<u64>,
    /// The line itself, shortened.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SearchResults {
    pub hits: Vec<SearchHit>,
    /// The search stopped early (too many hits, or out of time): there may be more.
    pub truncated: bool,
}

/// An earlier version of a file, kept when it was saved from the browser.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileVersion {
    pub id: String,
    /// Unix seconds: when it was replaced.
    pub saved_at: i64,
    pub size: u64,
}

/// The archive kinds the file manager makes and unpacks, known by the file's name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ArchiveFormat {
    Zip,
    TarGz,
    TarZst,
    Tar,
}

impl ArchiveFormat {
    /// The format a file name says (`world.zip`, `mods.tar.gz`, `.tgz`, `.tar.zst`, `.tar`).
    pub fn of(name: &str) -> Option<Self> {
        let name = name.to_ascii_lowercase();
        if name.ends_with(".zip") {
            Some(Self::Zip)
        } else if name.ends_with(".tar.gz") || name.ends_with(".tgz") {
            Some(Self::TarGz)
        } else if name.ends_with(".tar.zst") || name.ends_with(".tzst") {
            Some(Self::TarZst)
        } else if name.ends_with(".tar") {
            Some(Self::Tar)
        } else {
            None
        }
    }
}

/// The editor's highlighting for a file, by its name; `None` for plain text.
pub fn language_of(name: &str) -> Option<&'static str> {
    let extension = name.rsplit_once('.').map(|(_, ext)| ext.to_ascii_lowercase())?;
    Some(match extension.as_str() {
        "properties" | "cfg" | "conf" => "properties",
        "yml" | "yaml" => "yaml",
        "json" | "json5" | "mcmeta" => "json",
        "toml" => "toml",
        "ini" => "ini",
        "log" | "txt" => "log",
        _ => return None,
    })
}

/// Ignore patterns (one per line, as in a `.pteroignore` or `.gitignore`): a line without `/` matches a file or
/// directory of that name anywhere; with one, the path from the server's root (a leading `/` is allowed); a
/// trailing `/` matches directories only; `*` is any run of characters within one name, `?` one character, `**`
/// any number of directories; `#` starts a comment; `!` re-includes what an earlier line excluded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ignore {
    rules: Vec<Rule>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Rule {
    parts: Vec<String>,
    anchored: bool,
    dirs_only: bool,
    negated: bool,
}

/// Most `**` in one ignore pattern.
pub const MAX_GLOBSTARS: usize = 3;
/// Longest ignore list, in bytes.
pub const MAX_IGNORE_LEN: usize = 10_000;

impl Ignore {
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.len() > MAX_IGNORE_LEN {
            return Err(format!("may be at most {MAX_IGNORE_LEN} bytes"));
        }
        let mut rules = Vec::new();
        for line in text.lines().map(str::trim) {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (negated, line) = line.strip_prefix('!').map_or((false, line), |rest| (true, rest));
            let (dirs_only, line) = line.strip_suffix('/').map_or((false, line), |rest| (true, rest));
            let anchored = line.contains('/');
            let parts: Vec<String> =
                line.trim_start_matches('/').split('/').filter(|p| !p.is_empty()).map(str::to_owned).collect();
            if parts.is_empty() {
                return Err(format!("`{line}` matches nothing"));
            }
            // `**/**` is `**`; and a few of them at most, so matching stays quick whatever the pattern.
            let mut parts = parts;
            parts.dedup_by(|a, b| a == "**" && b == "**");
            if parts.iter().filter(|part| *part == "**").count() > MAX_GLOBSTARS {
                return Err(format!("`{line}` has more than {MAX_GLOBSTARS} `**`"));
            }
            rules.push(Rule { parts, anchored, dirs_only, negated });
        }
        Ok(Self { rules })
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Whether `path` (relative to the server's root, `/`-separated) is left out. A directory left out takes
    /// everything in it along; the caller does not descend into it.
    pub fn excludes(&self, path: &str, is_dir: bool) -> bool {
        let names: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
        let mut excluded = false;
        for rule in &self.rules {
            if rule.dirs_only && !is_dir {
                continue;
            }
            let hit = if rule.anchored {
                matches_parts(&rule.parts, &names)
            } else {
                names.last().is_some_and(|name| glob(&rule.parts[0], name))
            };
            if hit {
                excluded = !rule.negated;
            }
        }
        excluded
    }
}

fn matches_parts(pattern: &[String], names: &[&str]) -> bool {
    match (pattern.first(), names.first()) {
        (None, None) => true,
        (Some(part), _) if part == "**" => (0..=names.len()).any(|skip| matches_parts(&pattern[1..], &names[skip..])),
        (Some(part), Some(name)) => glob(part, name) && matches_parts(&pattern[1..], &names[1..]),
        _ => false,
    }
}

/// `*` and `?` within one name.
fn glob(pattern: &str, name: &str) -> bool {
    let (pattern, name): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    // Iterative with one backtrack point: linear in practice, never exponential.
    let (mut p, mut n, mut star, mut mark) = (0, 0, None, 0);
    while n < name.len() {
        if p < pattern.len() && (pattern[p] == '?' || pattern[p] == name[n]) {
            p += 1;
            n += 1;
        } else if p < pattern.len() && pattern[p] == '*' {
            star = Some(p);
            mark = n;
            p += 1;
        } else if let Some(s) = star {
            p = s + 1;
            mark += 1;
            n = mark;
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|c| *c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ignore_patterns_follow_pteroignore() {
        let ignore =
            Ignore::parse("# caches\n*.log\nlogs/\n/world/region/r.*.mca\ncache/**/tmp\n!keep.log\n").expect("parses");
        assert!(ignore.excludes("latest.log", false));
        assert!(ignore.excludes("plugins/x/debug.log", false));
        assert!(!ignore.excludes("keep.log", false), "re-included");
        assert!(ignore.excludes("logs", true));
        assert!(!ignore.excludes("logs", false), "a file named like an ignored directory stays");
        assert!(ignore.excludes("world/region/r.0.0.mca", false));
        assert!(!ignore.excludes("nether/world/region/r.0.0.mca", false), "anchored at the root");
        assert!(ignore.excludes("cache/a/b/tmp", true));
        assert!(ignore.excludes("cache/tmp", true));
        assert!(!ignore.excludes("server.properties", false));
        assert!(Ignore::parse("/").is_err());
    }

    #[test]
    fn archive_formats_and_languages_go_by_name() {
        assert_eq!(ArchiveFormat::of("World.ZIP"), Some(ArchiveFormat::Zip));
        assert_eq!(ArchiveFormat::of("a.tgz"), Some(ArchiveFormat::TarGz));
        assert_eq!(ArchiveFormat::of("a.tar.zst"), Some(ArchiveFormat::TarZst));
        assert_eq!(ArchiveFormat::of("a.rar"), None);
        assert_eq!(language_of("server.properties"), Some("properties"));
        assert_eq!(language_of("paper-global.yml"), Some("yaml"));
        assert_eq!(language_of("server.jar"), None);
    }

    #[test]
    fn paths_are_made_plain_or_refused() {
        assert_eq!(clean_path("./world//level.dat"), Ok("world/level.dat".to_owned()));
        assert_eq!(clean_path(""), Ok(String::new()));
        assert_eq!(clean_path("."), Ok(String::new()));
        for bad in ["/etc/passwd", "../x", "a/../../b", "a\0b", "a\nb", "world/.."] {
            assert!(clean_path(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn directories_come_first() {
        let entry = |name: &str, kind| FileEntry { name: name.into(), kind, size: 0, modified: 0 };
        let mut entries = vec![entry("b", FileKind::File), entry("z", FileKind::Dir), entry("a", FileKind::File)];
        sort_entries(&mut entries);
        let names: Vec<&str> = entries.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["z", "a", "b"]);
    }
}
