//! `console.log`: a game's output, appended to and rotated by size, written by its supervisor.

use std::path::PathBuf;

use tokio::io::{AsyncWriteExt as _, BufWriter};

/// `console.log`, appended to and rotated by size. The file stays open between lines.
pub struct LogFile {
    path: PathBuf,
    /// Rotate past this many bytes.
    limit: u64,
    open: Option<(BufWriter<tokio::fs::File>, u64)>,
}

impl LogFile {
    pub fn new(path: PathBuf, limit: u64) -> Self {
        Self { path, limit, open: None }
    }

    /// Adds a line; it reaches the file at the next [`Self::flush`].
    pub async fn append(&mut self, line: &str) {
        if self.open.as_ref().is_some_and(|(_, written)| *written > self.limit) {
            self.flush().await;
            self.open = None;
            let _ = tokio::fs::rename(&self.path, self.path.with_extension("log.1")).await;
        }
        if self.open.is_none() {
            let file = tokio::fs::OpenOptions::new().create(true).append(true).open(&self.path).await;
            let Ok(file) = file else { return };
            let written = file.metadata().await.map(|m| m.len()).unwrap_or(0);
            self.open = Some((BufWriter::with_capacity(64 * 1024, file), written));
        }
        if let Some((file, written)) = self.open.as_mut()
            && file.write_all(line.as_bytes()).await.is_ok()
            && file.write_all(b"\n").await.is_ok()
        {
            *written += line.len() as u64 + 1;
        }
    }

    /// Makes what was appended readable in the file.
    pub async fn flush(&mut self) {
        if let Some((file, _)) = self.open.as_mut() {
            let _ = file.flush().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_log_rotates_by_size_keeping_one_old_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("console.log");
        let mut log = LogFile::new(path.clone(), 1000);
        let line = "x".repeat(99); // 100 bytes with its newline
        for _ in 0..25 {
            log.append(&line).await;
        }
        log.flush().await;
        let size = |path: &std::path::Path| std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        // Rotated after lines 11 and 22: the oldest batch is dropped, the one before the current file is kept.
        let old = path.with_extension("log.1");
        assert_eq!(size(&old), 1100, "console.log.1 holds the previous batch");
        assert_eq!(size(&path), 300, "console.log holds what came since");

        // A fresh writer (a restarted game) continues the existing file and its count.
        let before = size(&path);
        let mut again = LogFile::new(path.clone(), 1000);
        again.append("after a restart").await;
        assert_eq!(size(&path), before, "held until flushed");
        again.flush().await;
        assert_eq!(size(&path), before + 16);
    }
}
