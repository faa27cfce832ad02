//! Paths into a server's files, as customers send them (the file manager's, and SFTP clients' with `/` for the
//! server's root): a path is either refused or made plain, and a plain path never leaves the server's files (no
//! `..`, not absolute, no NUL or control character) and stays itself when cleaned again. Ignore patterns,
//! matched against any path, never panic.
#![no_main]

use catalog::files::{Ignore, clean_path, client_path};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let plain = |part: &str| !part.is_empty() && part != "." && part != "..";
    for path in [clean_path(text), client_path(text)].into_iter().flatten() {
        assert!(!path.starts_with('/'), "{path:?}");
        assert!(path.is_empty() || path.split('/').all(plain), "{path:?}");
        assert!(!path.chars().any(char::is_control), "{path:?}");
        assert_eq!(clean_path(&path).as_deref(), Ok(path.as_str()));
        assert_eq!(client_path(&format!("/{path}")).as_deref(), Ok(path.as_str()));
    }
    // What the file manager takes, SFTP takes as the same path.
    if let Ok(path) = clean_path(text) {
        assert_eq!(client_path(text).as_deref(), Ok(path.as_str()), "{text:?}");
    }
    let (patterns, path) = text.split_once('\u{1}').unwrap_or((text, "a/b/c"));
    if let Ok(ignore) = Ignore::parse(patterns) {
        let _ = ignore.excludes(path, false);
        let _ = ignore.excludes(path, true);
    }
});
