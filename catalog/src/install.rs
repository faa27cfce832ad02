//! How the single box installs and configures a game: typed install steps (no shell strings), config files whose
//! named keys Spawnpoint sets, and what the host must have (Java, SteamCMD).
//!
//! Every text here is a template (see [`crate::variables::fill`]): `{port}`, `{data_dir}`, `{memory_mib}`,
//! `{eula}` and the game's variables by key.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The placeholders Spawnpoint fills in itself, beside the game's variables: the game port, the server's data
/// directory, the plan's memory in MiB, and whether the customer accepted the game's EULA (`true`/`false`).
pub const BUILTIN_PLACEHOLDERS: [&str; 4] = ["port", "data_dir", "memory_mib", "eula"];

/// One install step, run in order when a server is first created and on reinstall, if its `when` holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstallStep {
    /// Variables and the values they must have for this step to run (`{SERVER_TYPE: paper}`); empty: always.
    pub when: BTreeMap<String, String>,
    pub action: StepAction,
}

/// What a step does. Paths are relative to the server's data directory and may not leave it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepAction {
    /// A file from `url`, checked against its SHA-256.
    Download { url: String, sha256: String, to: String },
    /// PaperMC's downloads API: the newest stable build of `project` for `version`.
    Paper { project: String, version: String, to: String },
    /// The vanilla server jar of `version`, from Mojang's version manifest.
    Mojang { version: String, to: String },
    /// A Steam dedicated server, installed anonymously by `steamcmd` into the data directory.
    Steamcmd { app: u32 },
    /// Unpacks a zip or tar.gz archive (by its name) into `to`, then deletes the archive.
    Extract { archive: String, to: String },
    /// Writes `template` to `path` (replacing the file).
    WriteFile { path: String, template: String },
    /// Runs `argv` (no shell) in the data directory.
    Command { argv: Vec<String> },
}

impl StepAction {
    /// The step's kind, as install progress and errors name it.
    pub fn kind(&self) -> &'static str {
        match self {
            StepAction::Download { .. } => "download",
            StepAction::Paper { .. } => "paper",
            StepAction::Mojang { .. } => "mojang",
            StepAction::Steamcmd { .. } => "steamcmd",
            StepAction::Extract { .. } => "extract",
            StepAction::WriteFile { .. } => "write_file",
            StepAction::Command { .. } => "command",
        }
    }

    /// Every template the step holds (for checking placeholders, and for telling whether a reinstall is due).
    pub fn templates(&self) -> Vec<&str> {
        match self {
            StepAction::Download { url, sha256, to } => vec![url, sha256, to],
            StepAction::Paper { project, version, to } => vec![project, version, to],
            StepAction::Mojang { version, to } => vec![version, to],
            StepAction::Steamcmd { .. } => vec![],
            StepAction::Extract { archive, to } => vec![archive, to],
            StepAction::WriteFile { path, template } => vec![path, template],
            StepAction::Command { argv } => argv.iter().map(String::as_str).collect(),
        }
    }
}

impl InstallStep {
    /// Whether the step runs for a server with these variable values.
    pub fn applies(&self, values: &crate::variables::Values) -> bool {
        self.when.iter().all(|(key, want)| values.get(key) == Some(want))
    }
}

/// A config file of the game's with keys Spawnpoint sets before every start; every other key, comment and line
/// of the customer's file is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigFile {
    /// Relative to the data directory.
    pub path: String,
    pub format: ConfigFormat,
    /// Key (dotted for nested YAML/JSON, `section.key` for INI) → template.
    pub set: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConfigFormat {
    Properties,
    Yaml,
    Json,
    Ini,
}

/// What a game needs on the host besides its own files.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HostNeeds {
    /// The Minecraft version variable whose value decides the Java it needs (see [`java_for_minecraft`]).
    pub java_for_minecraft: Option<String>,
}

/// The Java major version a Minecraft Java server of `version` needs, as Mojang's version JSONs give it
/// (`javaVersion.majorVersion`): 1.20.5 and later 21, 1.18 to 1.20.4 17, 1.17 16, older 8. `None` for a version
/// that does not read as `1.<minor>[.<patch>]`.
pub fn java_for_minecraft(version: &str) -> Option<u32> {
    let mut parts = version.split('.').map(str::parse::<u32>);
    let (Some(Ok(1)), Some(Ok(minor))) = (parts.next(), parts.next()) else { return None };
    let patch = match parts.next() {
        None => 0,
        Some(Ok(patch)) => patch,
        Some(Err(_)) => return None,
    };
    Some(match (minor, patch) {
        (0..=16, _) => 8,
        (17, _) => 16,
        (18..=19, _) | (20, 0..=4) => 17,
        _ => 21,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_java_a_minecraft_version_needs_follows_mojangs_version_files() {
        assert_eq!(java_for_minecraft("1.16.5"), Some(8));
        assert_eq!(java_for_minecraft("1.17.1"), Some(16));
        assert_eq!(java_for_minecraft("1.18"), Some(17));
        assert_eq!(java_for_minecraft("1.20.4"), Some(17));
        assert_eq!(java_for_minecraft("1.20.5"), Some(21));
        assert_eq!(java_for_minecraft("1.21.4"), Some(21));
        assert_eq!(java_for_minecraft("latest"), None);
        assert_eq!(java_for_minecraft("1.x"), None);
    }
}
