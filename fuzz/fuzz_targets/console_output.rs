//! A game's output on its way to a terminal: any bytes, cut anywhere, become bounded lines, and what is left
//! of them after cleaning is printable text and SGR sequences only.
#![no_main]

use catalog::output::{LineSplitter, MAX_LINE_BYTES, sanitize};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    // The first byte says where the stream is cut into reads.
    let Some((&cut, bytes)) = data.split_first() else { return };
    let mut splitter = LineSplitter::default();
    let mut lines = Vec::new();
    for chunk in bytes.chunks(usize::from(cut).max(1)) {
        lines.extend(splitter.push(chunk));
    }
    lines.extend(splitter.finish());
    for line in &lines {
        assert!(line.len() <= MAX_LINE_BYTES * 3, "a cut line grows at most by replacement characters");
        assert!(!line.contains('\n'));
        check_clean(&sanitize(line));
    }
});

/// Every escape is `ESC [ <digits and ;> m`, and no other control character is left but tabs.
fn check_clean(text: &str) {
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            assert_eq!(chars.next(), Some('['), "{text:?}");
            let rest: String = chars.by_ref().take_while(|&c| c != 'm').collect();
            assert!(rest.chars().all(|c| c.is_ascii_digit() || c == ';'), "{text:?}");
        } else {
            assert!(!c.is_control() || c == '\t', "{text:?}");
        }
    }
}
