//! Installing a game's files on the single box: the catalog's typed install steps, run in order.
//!
//! Every file lands at a temporary name first and is renamed into place only once whole (and its checksum
//! checked), so a failed or interrupted install never leaves a half-downloaded file that looks whole. A failure
//! names the step and the cause ("paper: Paper has no version 9.9"), and that is what the server's owner reads.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use catalog::gameserver::InstallProgress;
use catalog::install::{InstallStep, StepAction};
use serde::Deserialize;
use sha2::Digest as _;
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _};

use super::files::{confined, replace_file};
use super::isolation::as_game;

/// How long a download may wait for its next bytes before it is given up on.
const STALL_TIMEOUT: Duration = Duration::from_secs(30);
/// Progress is reported at most this often.
const PROGRESS_EVERY: Duration = Duration::from_millis(250);

/// Where the install steps fetch from: settings, so that tests can point them at loopback.
#[derive(Debug, Clone)]
pub struct Sources {
    /// `SPAWNPOINT_PAPER_API`: PaperMC's downloads API (v3).
    pub paper_api: String,
    /// `SPAWNPOINT_MOJANG_MANIFEST`: Mojang's version manifest.
    pub mojang_manifest: String,
    /// `SPAWNPOINT_STEAMCMD`: the SteamCMD program (a name on `PATH`, or a path).
    pub steamcmd: String,
}

impl Default for Sources {
    fn default() -> Self {
        Self {
            paper_api: "https://fill.papermc.io".to_owned(),
            mojang_manifest: "https://piston-meta.mojang.com/mc/game/version_manifest_v2.json".to_owned(),
            steamcmd: "steamcmd".to_owned(),
        }
    }
}

/// An install step that failed: its kind and what went wrong, as the server's owner reads it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{step}: {cause}")]
pub struct StepFailed {
    pub step: &'static str,
    pub cause: String,
}

/// What an install reports as it goes.
pub trait Report: Send + Sync {
    /// A line for the console.
    fn line(&self, line: String);
    fn progress(&self, progress: InstallProgress);
}

/// Runs install steps for one server.
pub struct Installer<'a> {
    pub http: &'a reqwest::Client,
    pub sources: &'a Sources,
    /// The server's data directory.
    pub data: &'a Path,
    /// The user and group commands run as (the game's).
    pub user: Option<(u32, u32)>,
    /// The game's environment, for commands.
    pub env: &'a [(String, String)],
    /// How much a download or an archive may come to (the plan's storage).
    pub max_unpacked: &'a catalog::ByteSize,
    /// The Java major version on this host, if any (for Mojang's own statement of the Java a version needs).
    pub java: Option<u32>,
    pub report: &'a dyn Report,
}

impl Installer<'_> {
    /// Runs `steps` in order; the first failure ends the install.
    pub async fn run(&self, steps: &[StepAction]) -> Result<(), StepFailed> {
        for (index, step) in steps.iter().enumerate() {
            let kind = step.kind();
            self.report.line(format!("[install] step {} of {}: {kind}", index + 1, steps.len()));
            self.report.progress(InstallProgress { step: kind.to_owned(), done_bytes: 0, total_bytes: None });
            self.step(step).await.map_err(|cause| StepFailed { step: kind, cause })?;
        }
        self.report.line("[install] done".to_owned());
        Ok(())
    }

    async fn step(&self, step: &StepAction) -> Result<(), String> {
        match step {
            StepAction::Download { url, sha256, to } => {
                if sha256.is_empty() {
                    return Err("no checksum to check the file against; the operator must set one".to_owned());
                }
                self.download(url, Checksum::Sha256(sha256.to_ascii_lowercase()), to, "download").await
            }
            StepAction::Paper { project, version, to } => self.paper(project, version, to).await,
            StepAction::Mojang { version, to } => self.mojang(version, to).await,
            StepAction::Steamcmd { app } => self.steamcmd(*app).await,
            StepAction::Extract { archive, to } => self.extract(archive, to).await,
            StepAction::WriteFile { path, template } => {
                let path = confined(self.data, path)?;
                let text = template.clone();
                as_game(self.user, move || {
                    replace_file(&path, text.as_bytes()).map_err(|e| format!("writing {}: {e}", shown(&path)))
                })
                .await?
            }
            StepAction::Command { argv } => {
                let (program, args) = argv.split_first().ok_or("no program to run")?;
                let program = super::resolve_command(program);
                let mut command = tokio::process::Command::new(&program);
                command.args(args);
                let status = self.run_command(command, |_| {}).await?;
                status.success().then_some(()).ok_or_else(|| format!("`{}` {}", argv[0], exit_words(status)))
            }
        }
    }

    /// The newest stable build of `project` `version` from PaperMC's downloads API (v3: builds newest first).
    async fn paper(&self, project: &str, version: &str, to: &str) -> Result<(), String> {
        #[derive(Deserialize)]
        struct Build {
            id: u64,
            channel: String,
            downloads: std::collections::HashMap<String, Download>,
        }
        #[derive(Deserialize)]
        struct Download {
            name: String,
            url: String,
            checksums: Checksums,
        }
        #[derive(Deserialize)]
        struct Checksums {
            sha256: String,
        }
        let base = self.sources.paper_api.trim_end_matches('/');
        let url = format!("{base}/v3/projects/{project}/versions/{version}/builds");
        let response = self.get(&url).await?;
        if response.status() == reqwest::StatusCode::NOT_FOUND {
            return Err(format!("PaperMC has no {project} version {version}"));
        }
        let builds: Vec<Build> = ok(response, &url)?.json().await.map_err(|e| format!("reading {url}: {e}"))?;
        let build = builds
            .into_iter()
            .find(|build| build.channel.eq_ignore_ascii_case("STABLE"))
            .ok_or_else(|| format!("PaperMC has no stable build of {project} {version}"))?;
        let download = build
            .downloads
            .get("server:default")
            .ok_or_else(|| format!("{project} {version} build {} has no server download", build.id))?;
        self.report.line(format!("[install] {project} {version} build {}: {}", build.id, download.name));
        let sha256 = download.checksums.sha256.to_ascii_lowercase();
        self.download(&download.url, Checksum::Sha256(sha256), to, "paper").await
    }

    /// The vanilla server jar of `version`: the manifest leads to the version's file, which gives the jar and
    /// its SHA-1, and the Java it needs.
    async fn mojang(&self, version: &str, to: &str) -> Result<(), String> {
        #[derive(Deserialize)]
        struct Manifest {
            versions: Vec<Listed>,
        }
        #[derive(Deserialize)]
        struct Listed {
            id: String,
            url: String,
        }
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Version {
            downloads: Downloads,
            java_version: Option<JavaVersion>,
        }
        #[derive(Deserialize)]
        struct Downloads {
            server: Option<Server>,
        }
        #[derive(Deserialize)]
        struct Server {
            sha1: String,
            url: String,
        }
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct JavaVersion {
            major_version: u32,
        }
        let url = &self.sources.mojang_manifest;
        let manifest: Manifest =
            ok(self.get(url).await?, url)?.json().await.map_err(|e| format!("reading {url}: {e}"))?;
        let listed = manifest
            .versions
            .into_iter()
            .find(|listed| listed.id == version)
            .ok_or_else(|| format!("Mojang has no version {version}"))?;
        let details: Version = ok(self.get(&listed.url).await?, &listed.url)?
            .json()
            .await
            .map_err(|e| format!("reading {}: {e}", listed.url))?;
        if let (Some(needed), Some(have)) = (details.java_version.as_ref().map(|j| j.major_version), self.java)
            && have < needed
        {
            return Err(format!("Minecraft {version} needs Java {needed}; this host has Java {have}"));
        }
        let server = details.downloads.server.ok_or_else(|| format!("Minecraft {version} has no server download"))?;
        self.download(&server.url, Checksum::Sha1(server.sha1.to_ascii_lowercase()), to, "mojang").await
    }

    /// A Steam dedicated server, installed anonymously; SteamCMD's own progress lines become the progress.
    async fn steamcmd(&self, app: u32) -> Result<(), String> {
        let data = self.data.to_string_lossy().into_owned();
        let mut command = tokio::process::Command::new(super::resolve_command(&self.sources.steamcmd));
        command.args(["+force_install_dir", &data, "+login", "anonymous", "+app_update", &app.to_string()]);
        command.args(["validate", "+quit"]);
        let mut installed = false;
        let status = self
            .run_command(command, |line| {
                installed |= line.contains("Success! App") && line.contains("fully installed");
                if let Some((done, total)) = steam_progress(line) {
                    self.report.progress(InstallProgress {
                        step: "steamcmd".to_owned(),
                        done_bytes: done,
                        total_bytes: Some(total),
                    });
                }
            })
            .await
            .map_err(|error| match error.contains("No such file") {
                true => "SteamCMD is not installed on this host (steamcmd)".to_owned(),
                false => error,
            })?;
        match (status.success(), installed) {
            (true, true) => Ok(()),
            (true, false) => Err(format!("SteamCMD did not say app {app} was installed")),
            (false, _) => Err(format!("SteamCMD {}", exit_words(status))),
        }
    }

    /// Unpacks a zip or tar archive into `to` (never outside the data directory, never past the plan's
    /// storage), then removes the archive.
    async fn extract(&self, archive: &str, to: &str) -> Result<(), String> {
        let archive = confined(self.data, archive)?;
        let target = confined(self.data, to)?;
        let limit = self.max_unpacked.clone();
        let name = shown(&archive);
        let unpacked = as_game(self.user, move || {
            let unpacked = super::files::unpack(&archive, &target, limit.bytes());
            let _ = std::fs::remove_file(&archive);
            unpacked.map_err(|error| match error {
                super::files::Unpack::TooBig => {
                    format!("the archive unpacks to more than the plan's storage ({limit})")
                }
                refused => refused.to_string(),
            })
        })
        .await??;
        self.report.line(format!("[install] unpacked {name} ({unpacked} files)"));
        Ok(())
    }

    /// Runs a command in the data directory as the game's user, its output on the console.
    async fn run_command(
        &self,
        mut command: tokio::process::Command,
        mut on_line: impl FnMut(&str),
    ) -> Result<std::process::ExitStatus, String> {
        command
            .env_clear()
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .current_dir(self.data)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if let Some((uid, gid)) = self.user {
            command.uid(uid).gid(gid);
        }
        let program = command.as_std().get_program().to_string_lossy().into_owned();
        let mut child = command.spawn().map_err(|e| format!("starting {program}: {e}"))?;
        let (tx, mut rx) = tokio::sync::mpsc::channel::<String>(64);
        for output in [child.stdout.take().map(boxed), child.stderr.take().map(boxed)].into_iter().flatten() {
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut lines = tokio::io::BufReader::new(output).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    if tx.send(line).await.is_err() {
                        break;
                    }
                }
            });
        }
        drop(tx);
        while let Some(line) = rx.recv().await {
            on_line(&line);
            self.report.line(line);
        }
        child.wait().await.map_err(|e| format!("waiting for {program}: {e}"))
    }

    async fn get(&self, url: &str) -> Result<reqwest::Response, String> {
        self.http.get(url).send().await.map_err(|e| format!("fetching {url}: {}", cause_words(&e)))
    }

    /// Fetches `url` to `to` (a temporary name until it is whole and its checksum matches).
    async fn download(&self, url: &str, checksum: Checksum, to: &str, step: &str) -> Result<(), String> {
        let path = confined(self.data, to)?;
        let response = ok(self.get(url).await?, url)?;
        let total = response.content_length();
        if total.is_some_and(|total| total > self.max_unpacked.bytes()) {
            return Err(format!("{url} is larger than the plan's storage ({})", self.max_unpacked));
        }
        let partial = path.with_extension("part");
        let result = self.receive(response, &partial, total, &checksum, step).await;
        let (from, to) = (partial.clone(), path.clone());
        match result {
            Ok(()) => {
                as_game(self.user, move || {
                    std::fs::rename(&from, &to).map_err(|e| format!("writing {}: {e}", shown(&to)))
                })
                .await?
            }
            Err(error) => {
                as_game(self.user, move || std::fs::remove_file(&from)).await.ok();
                Err(error)
            }
        }
    }

    async fn receive(
        &self,
        mut response: reqwest::Response,
        partial: &Path,
        total: Option<u64>,
        checksum: &Checksum,
        step: &str,
    ) -> Result<(), String> {
        let url = response.url().to_string();
        let write_error = |e: std::io::Error| format!("writing {}: {e}", shown(partial));
        // A new file (never one already there, nor through a link), made as the game's user.
        let at = partial.to_path_buf();
        let file = as_game(self.user, move || {
            let _ = std::fs::remove_file(&at);
            std::fs::OpenOptions::new().write(true).create_new(true).open(&at)
        })
        .await?
        .map_err(write_error)?;
        let mut file = tokio::fs::File::from_std(file);
        let mut hasher = checksum.hasher();
        let mut done = 0u64;
        let mut reported = tokio::time::Instant::now();
        loop {
            let chunk = tokio::time::timeout(STALL_TIMEOUT, response.chunk())
                .await
                .map_err(|_| format!("{url} sent nothing for {} s", STALL_TIMEOUT.as_secs()))?
                .map_err(|e| format!("downloading {url}: {}", cause_words(&e)))?;
            let Some(chunk) = chunk else { break };
            hasher.update(&chunk);
            file.write_all(&chunk).await.map_err(write_error)?;
            done += chunk.len() as u64;
            if done > self.max_unpacked.bytes() {
                return Err(format!("{url} sent more than the plan's storage ({})", self.max_unpacked));
            }
            if reported.elapsed() >= PROGRESS_EVERY {
                reported = tokio::time::Instant::now();
                self.report.progress(InstallProgress { step: step.to_owned(), done_bytes: done, total_bytes: total });
            }
        }
        file.flush().await.map_err(write_error)?;
        file.sync_all().await.map_err(write_error)?;
        self.report.progress(InstallProgress { step: step.to_owned(), done_bytes: done, total_bytes: total });
        let got = hasher.finish();
        if got != checksum.expected() {
            return Err(format!(
                "the file from {url} is not the one expected ({} {got}, expected {})",
                checksum.name(),
                checksum.expected()
            ));
        }
        Ok(())
    }
}

/// The checksum a download must match.
enum Checksum {
    Sha256(String),
    Sha1(String),
}

enum Hasher {
    Sha256(sha2::Sha256),
    Sha1(sha1::Sha1),
}

impl Checksum {
    fn hasher(&self) -> Hasher {
        match self {
            Checksum::Sha256(_) => Hasher::Sha256(sha2::Sha256::new()),
            Checksum::Sha1(_) => Hasher::Sha1(sha1::Sha1::new()),
        }
    }

    fn expected(&self) -> &str {
        match self {
            Checksum::Sha256(hex) | Checksum::Sha1(hex) => hex,
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Checksum::Sha256(_) => "SHA-256",
            Checksum::Sha1(_) => "SHA-1",
        }
    }
}

impl Hasher {
    fn update(&mut self, bytes: &[u8]) {
        match self {
            Hasher::Sha256(h) => h.update(bytes),
            Hasher::Sha1(h) => h.update(bytes),
        }
    }

    fn finish(self) -> String {
        match self {
            Hasher::Sha256(h) => hex::encode(h.finalize()),
            Hasher::Sha1(h) => hex::encode(h.finalize()),
        }
    }
}

/// A response with a success status, else the status as the cause.
fn ok(response: reqwest::Response, url: &str) -> Result<reqwest::Response, String> {
    if response.status().is_success() {
        Ok(response)
    } else {
        Err(format!("{url} answered HTTP {}", response.status().as_u16()))
    }
}

/// The innermost cause of a request error (a timeout, a refused connection), not reqwest's wrapping.
fn cause_words(error: &reqwest::Error) -> String {
    if error.is_timeout() {
        return "timed out".to_owned();
    }
    let mut source: &dyn std::error::Error = error;
    while let Some(next) = source.source() {
        source = next;
    }
    source.to_string()
}

fn exit_words(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt as _;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with code {code}"),
        (None, Some(signal)) => format!("was killed by signal {signal}"),
        _ => "failed".to_owned(),
    }
}

/// A path as the owner reads it: relative to their data directory.
fn shown(path: &Path) -> String {
    let parts: Vec<_> = path.components().rev().take(2).collect();
    parts.into_iter().rev().map(|c| c.as_os_str().to_string_lossy().into_owned()).collect::<Vec<_>>().join("/")
}

fn boxed(output: impl tokio::io::AsyncRead + Send + Unpin + 'static) -> Box<dyn tokio::io::AsyncRead + Send + Unpin> {
    Box::new(output)
}

/// `Update state (0x61) downloading, progress: 99.82 (27706657340 / 27757647100)` → bytes done and total.
fn steam_progress(line: &str) -> Option<(u64, u64)> {
    let (_, rest) = line.split_once("progress: ")?;
    let (_, bytes) = rest.split_once('(')?;
    let (done, total) = bytes.trim_end_matches(')').split_once(" / ")?;
    Some((done.trim().parse().ok()?, total.trim().parse().ok()?))
}

/// The steps that apply to a server with these values, with their templates filled in.
pub fn filled(
    steps: &[InstallStep],
    values: &catalog::variables::Values,
    fill: impl Fn(&str) -> Result<String, String>,
) -> Result<Vec<StepAction>, StepFailed> {
    let mut out = Vec::new();
    for step in steps.iter().filter(|step| step.applies(values)) {
        let kind = step.action.kind();
        let failed = |cause: String| StepFailed { step: kind, cause };
        let f = |text: &str| fill(text).map_err(failed);
        out.push(match &step.action {
            StepAction::Download { url, sha256, to } => {
                StepAction::Download { url: f(url)?, sha256: f(sha256)?, to: f(to)? }
            }
            StepAction::Paper { project, version, to } => {
                StepAction::Paper { project: f(project)?, version: f(version)?, to: f(to)? }
            }
            StepAction::Mojang { version, to } => StepAction::Mojang { version: f(version)?, to: f(to)? },
            StepAction::Steamcmd { app } => StepAction::Steamcmd { app: *app },
            StepAction::Extract { archive, to } => StepAction::Extract { archive: f(archive)?, to: f(to)? },
            StepAction::WriteFile { path, template } => {
                StepAction::WriteFile { path: f(path)?, template: f(template)? }
            }
            StepAction::Command { argv } => {
                StepAction::Command { argv: argv.iter().map(|arg| f(arg)).collect::<Result<_, _>>()? }
            }
        });
    }
    Ok(out)
}

/// What names one install: a reinstall, or other steps (a new version), make a new key.
pub fn key(install_generation: i64, steps: &[StepAction]) -> String {
    let mut hasher = sha2::Sha256::new();
    hasher.update(install_generation.to_le_bytes());
    for step in steps {
        hasher.update(step.kind());
        for template in step.templates() {
            hasher.update((template.len() as u64).to_le_bytes());
            hasher.update(template);
        }
        if let StepAction::Steamcmd { app } = step {
            hasher.update(app.to_le_bytes());
        }
    }
    hex::encode(hasher.finalize())
}

/// Where a server's install key is kept once its install succeeded.
pub fn key_file(server_dir: &Path) -> PathBuf {
    server_dir.join("installed")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steamcmd_progress_lines_give_bytes_done_and_total() {
        let line = " Update state (0x61) downloading, progress: 99.82 (27706657340 / 27757647100)";
        assert_eq!(steam_progress(line), Some((27_706_657_340, 27_757_647_100)));
        assert_eq!(steam_progress("Success! App '896660' fully installed."), None);
    }
}
