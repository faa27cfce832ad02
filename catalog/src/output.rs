//! A game's output on its way to a console: cut into lines, whatever bytes the game prints, and cleaned of
//! terminal control sequences other than colours and text styles.
//!
//! Game output is written into a terminal (xterm.js) that an administrator also looks at. Left raw, a game
//! could move the cursor over lines the panel drew, set the window title, plant OSC 8 links, or send device
//! queries whose answers come back as typed input. [`sanitize`] keeps SGR (colours, bold, underline, …) and
//! printable text and drops everything else. The faint style is dropped too: the panel draws its own notices
//! faint, so a game cannot print a line that looks like one.

/// Longest line passed on, in bytes; longer ones are cut there (a game printing without newlines must not
/// grow a buffer without end).
pub const MAX_LINE_BYTES: usize = 16 * 1024;

/// Cuts a byte stream into lines (`\n`, with a `\r` before it dropped) of at most [`MAX_LINE_BYTES`], decoding
/// each as UTF-8 with invalid bytes replaced, so no input can stop the reader.
#[derive(Debug, Default)]
pub struct LineSplitter {
    partial: Vec<u8>,
    /// The last line was cut at the limit: a newline right after it ends that line, not an empty one.
    cut: bool,
}

impl LineSplitter {
    /// The lines `bytes` completes, in order.
    pub fn push(&mut self, mut bytes: &[u8]) -> Vec<String> {
        let mut lines = Vec::new();
        if std::mem::take(&mut self.cut) && bytes.first() == Some(&b'\n') {
            bytes = &bytes[1..];
        }
        while !bytes.is_empty() {
            let room = MAX_LINE_BYTES - self.partial.len();
            match bytes.iter().take(room).position(|&b| b == b'\n') {
                Some(end) => {
                    self.partial.extend_from_slice(&bytes[..end]);
                    bytes = &bytes[end + 1..];
                    lines.push(self.take());
                }
                None if bytes.len() < room => {
                    self.partial.extend_from_slice(bytes);
                    bytes = &[];
                }
                None => {
                    self.partial.extend_from_slice(&bytes[..room]);
                    bytes = &bytes[room..];
                    lines.push(self.take());
                    match bytes.first() {
                        Some(b'\n') => bytes = &bytes[1..],
                        Some(_) => {}
                        None => self.cut = true,
                    }
                }
            }
        }
        lines
    }

    /// The last line, when the stream ended without a newline.
    pub fn finish(&mut self) -> Option<String> {
        (!self.partial.is_empty()).then(|| self.take())
    }

    fn take(&mut self) -> String {
        if self.partial.last() == Some(&b'\r') {
            self.partial.pop();
        }
        let line = String::from_utf8_lossy(&self.partial).into_owned();
        self.partial.clear();
        line
    }
}

const ESC: char = '\u{1b}';
const BEL: char = '\u{7}';

/// `line` with only printable text, tabs and SGR sequences (minus the faint style) left. A line that sets a
/// style ends with a reset, so no style carries over into the next line or the panel's own notices (text made
/// invisible, say).
pub fn sanitize(line: &str) -> String {
    let mut styled = false;
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if c != ESC {
            // C0 and C1 controls (C1 includes the 8-bit CSI and OSC, U+009B and U+009D) and DEL.
            if !c.is_control() || c == '\t' {
                out.push(c);
            }
            continue;
        }
        match chars.next() {
            Some('[') => {
                let mut body = String::new();
                let mut final_byte = None;
                for c in chars.by_ref() {
                    if ('\u{40}'..='\u{7e}').contains(&c) {
                        final_byte = Some(c);
                        break;
                    }
                    if !('\u{20}'..='\u{3f}').contains(&c) {
                        break; // not a well-formed sequence: drop what was read
                    }
                    body.push(c);
                }
                if final_byte == Some('m')
                    && let Some(kept) = sgr(&body)
                {
                    out.push_str(&format!("{ESC}[{kept}m"));
                    styled = true;
                }
            }
            // OSC, DCS, SOS, PM, APC: a string up to BEL or ST (`ESC \`), all dropped.
            Some(']' | 'P' | 'X' | '^' | '_') => {
                while let Some(c) = chars.next() {
                    if c == BEL || (c == ESC && chars.next_if_eq(&'\\').is_some()) {
                        break;
                    }
                }
            }
            // Any other escape (charset switches, `ESC c` reset, …) is two characters, or three with an
            // intermediate byte; dropped.
            Some(c) if ('\u{20}'..='\u{2f}').contains(&c) => {
                chars.next();
            }
            Some(_) | None => {}
        }
    }
    if styled {
        out.push_str(RESET);
    }
    out
}

const RESET: &str = "\u{1b}[0m";

/// The SGR parameters of `body` to keep: `None` when it is not plain SGR or keeps nothing. An empty body is a
/// reset, kept as one.
fn sgr(body: &str) -> Option<String> {
    if !body.chars().all(|c| c.is_ascii_digit() || c == ';') {
        return None;
    }
    if body.is_empty() {
        return Some(String::new());
    }
    let params: Vec<&str> = body.split(';').collect();
    let mut kept = Vec::with_capacity(params.len());
    let mut i = 0;
    while i < params.len() {
        let n: u16 = params[i].parse().unwrap_or(0);
        // Extended colours carry their own arguments, which may be 2: `38;2;r;g;b`, `38;5;n`.
        let take = match (n, params.get(i + 1).and_then(|p| p.parse::<u16>().ok())) {
            (38 | 48 | 58, Some(5)) => 3,
            (38 | 48 | 58, Some(2)) => 5,
            _ => 1,
        };
        let group = &params[i..(i + take).min(params.len())];
        if n != 2 {
            kept.extend_from_slice(group);
        }
        i += take;
    }
    (!kept.is_empty()).then(|| kept.join(";"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colours_and_styles_pass_everything_else_is_dropped() {
        assert_eq!(sanitize("plain text\twith a tab"), "plain text\twith a tab");
        assert_eq!(sanitize("\x1b[1;31mred\x1b[0m \x1b[m"), "\x1b[1;31mred\x1b[0m \x1b[m\x1b[0m");
        assert_eq!(
            sanitize("\x1b[38;2;255;0;0mtrue\x1b[48;5;2mcolour"),
            "\x1b[38;2;255;0;0mtrue\x1b[48;5;2mcolour\x1b[0m",
            "extended colours keep their arguments, and the line ends reset"
        );
        // Hidden text does not outlive its line.
        assert_eq!(sanitize("\x1b[8mhidden"), "\x1b[8mhidden\x1b[0m");
        // Faint is the panel's own style for its notices.
        assert_eq!(
            sanitize("\x1b[2;36m[console] the server is stopped\x1b[0m"),
            "\x1b[36m[console] the server is stopped\x1b[0m\x1b[0m"
        );
        assert_eq!(sanitize("\x1b[2mfaint"), "faint");
        // Cursor movement, erasing, device queries, title changes, hyperlinks, private modes.
        assert_eq!(sanitize("a\x1b[2Ab\x1b[2Kc\x1b[6nd\x1b[c"), "abcd");
        assert_eq!(sanitize("\x1b]0;pwned\x07title"), "title");
        assert_eq!(sanitize("\x1b]8;;https://evil.example\x1b\\click\x1b]8;;\x1b\\"), "click");
        assert_eq!(sanitize("\x1b[?1049hscreen\x1bPq#0\x1b\\"), "screen");
        assert_eq!(sanitize("\x1bcreset\x1b(0box"), "resetbox");
        // Raw controls: carriage return (overwrites the line), backspace, bell, 8-bit CSI and OSC.
        assert_eq!(sanitize("safe\rfake\x08\x07\u{9b}2J\u{9d}x"), "safefake2Jx");
        assert_eq!(sanitize("cut off \x1b["), "cut off ");
        assert_eq!(sanitize("\x1b]unterminated"), "");
        assert_eq!(sanitize("héllo ✓"), "héllo ✓");
    }

    #[test]
    fn lines_are_cut_whatever_the_bytes() {
        let mut lines = LineSplitter::default();
        assert_eq!(lines.push(b"one\r\ntw"), vec!["one"]);
        assert_eq!(lines.push(b"o\n\xff\xfebad\nthree"), vec!["two", "\u{fffd}\u{fffd}bad"]);
        assert_eq!(lines.finish().as_deref(), Some("three"));
        assert_eq!(lines.finish(), None);

        let long = vec![b'x'; MAX_LINE_BYTES * 2 + 10];
        let cut = lines.push(&long);
        assert_eq!(cut.iter().map(String::len).collect::<Vec<_>>(), vec![MAX_LINE_BYTES, MAX_LINE_BYTES]);
        assert_eq!(lines.push(b"\n"), vec!["x".repeat(10)]);
        // A line of exactly the limit, its newline in the next read: one line, not one and an empty one.
        assert_eq!(lines.push(&vec![b'y'; MAX_LINE_BYTES]), vec!["y".repeat(MAX_LINE_BYTES)]);
        assert_eq!(lines.push(b"\nnext\n"), vec!["next"]);
        let mut exact = vec![b'z'; MAX_LINE_BYTES];
        exact.extend_from_slice(b"\nafter\n");
        assert_eq!(lines.push(&exact), vec!["z".repeat(MAX_LINE_BYTES), "after".to_owned()]);
    }
}
