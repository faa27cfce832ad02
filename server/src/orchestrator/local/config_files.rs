//! Setting named keys in a game's config files before each start (the port Spawnpoint gave it, the max players
//! the customer chose), keeping everything else of the customer's file: other keys, comments, order.
//!
//! Properties and INI files are edited line by line, so comments and layout survive. YAML and JSON are parsed
//! and written back, which keeps every key and value (YAML comments do not survive the round trip).

use std::io::Read as _;
use std::path::Path;

use catalog::install::{ConfigFile, ConfigFormat};

use super::files::{confined, replace_file};

/// The most of a config file Spawnpoint reads: config files are small, and a game could leave a huge one.
const MAX_CONFIG_BYTES: u64 = 1024 * 1024;

/// Sets each file's keys in the server's data directory `data` (run as the game's user: see
/// [`super::isolation::as_game`]). A file that is not a plain file of at most a MiB is refused, not read.
pub fn write_all(data: &Path, edits: &[(ConfigFile, Vec<(String, String)>)]) -> Result<(), String> {
    for (file, set) in edits {
        let path = confined(data, &file.path)?;
        let current = read_current(&path).map_err(|e| format!("{}: {e}", file.path))?;
        let text = apply(file.format, &current, set).map_err(|e| format!("{}: {e}", file.path))?;
        replace_file(&path, text.as_bytes()).map_err(|e| format!("writing {}: {e}", file.path))?;
    }
    Ok(())
}

/// The file as it is, empty when missing; never through a link, never a FIFO or device, never more than
/// [`MAX_CONFIG_BYTES`].
fn read_current(path: &Path) -> Result<String, String> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let flags = nix::fcntl::OFlag::O_NOFOLLOW | nix::fcntl::OFlag::O_NONBLOCK;
    let file = match std::fs::OpenOptions::new().read(true).custom_flags(flags.bits()).open(path) {
        Ok(file) => file,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(String::new()),
        Err(error) => return Err(format!("cannot be read: {error}")),
    };
    let meta = file.metadata().map_err(|e| e.to_string())?;
    if !meta.is_file() {
        return Err("is not a plain file".to_owned());
    }
    if meta.len() > MAX_CONFIG_BYTES {
        return Err("is larger than a config file can be (1 MiB)".to_owned());
    }
    let mut text = String::new();
    file.take(MAX_CONFIG_BYTES).read_to_string(&mut text).map_err(|e| format!("cannot be read: {e}"))?;
    Ok(text)
}

/// `text` (the file as it is, empty when missing) with each `(key, value)` of `set` in place.
pub fn apply(format: ConfigFormat, text: &str, set: &[(String, String)]) -> Result<String, String> {
    match format {
        ConfigFormat::Properties => Ok(lines(text, set, false)),
        ConfigFormat::Ini => Ok(lines(text, set, true)),
        ConfigFormat::Yaml => yaml(text, set),
        ConfigFormat::Json => json(text, set),
    }
}

/// Line-based formats: `key=value` (or `key: value` / `key value` in properties), `[section]` headers in INI
/// where a key is `section.key`. A key not found is added (in INI, at the end of its section, which is added if
/// missing).
fn lines(text: &str, set: &[(String, String)], ini: bool) -> String {
    let split = |key: &str| -> (String, String) {
        match key.split_once('.').filter(|_| ini) {
            Some((section, key)) => (section.to_owned(), key.to_owned()),
            None => (String::new(), key.to_owned()),
        }
    };
    let wanted: Vec<(String, String, &str)> =
        set.iter().map(|(key, value)| (split(key).0, split(key).1, value.as_str())).collect();
    let mut done = vec![false; wanted.len()];
    let mut out: Vec<String> = Vec::new();
    let mut section = String::new();
    // Where each section's last key line is, to add missing keys there.
    let mut section_end: Vec<(String, usize)> = vec![(String::new(), 0)];
    for line in text.lines() {
        let trimmed = line.trim_start();
        if ini && trimmed.starts_with('[') && trimmed.trim_end().ends_with(']') {
            section = trimmed.trim().trim_start_matches('[').trim_end_matches(']').trim().to_owned();
            out.push(line.to_owned());
            section_end.push((section.clone(), out.len()));
            continue;
        }
        let comment =
            trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with('!') || trimmed.starts_with(';');
        let key = if comment { None } else { trimmed.split(['=', ':']).next().map(str::trim) };
        let found = key.and_then(|key| wanted.iter().position(|(s, k, _)| *s == section && k == key));
        match found {
            Some(index) => {
                let (_, key, value) = &wanted[index];
                out.push(format!("{key}={}", escape(value, ini)));
                done[index] = true;
            }
            None => out.push(line.to_owned()),
        }
        // Missing keys go after the section's last key, not after the blank lines that end it.
        if key.is_some()
            && let Some(last) = section_end.last_mut()
        {
            last.1 = out.len();
        }
    }
    // Missing keys: after their section's last line (in reverse, so earlier insert points stay valid).
    let mut additions: Vec<(usize, String)> = Vec::new();
    for (index, (section, key, value)) in wanted.iter().enumerate() {
        if done[index] {
            continue;
        }
        let line = format!("{key}={}", escape(value, ini));
        match section_end.iter().rev().find(|(name, _)| name == section) {
            Some((_, at)) => additions.push((*at, line)),
            None => {
                out.push(format!("[{section}]"));
                section_end.push((section.clone(), out.len()));
                out.push(line);
                if let Some(last) = section_end.last_mut() {
                    last.1 = out.len();
                }
            }
        }
    }
    additions.sort_by_key(|(at, _)| std::cmp::Reverse(*at));
    for (at, line) in additions {
        out.insert(at.min(out.len()), line);
    }
    let mut text = out.join("\n");
    text.push('\n');
    text
}

/// A properties value escapes backslashes (Java reads `\` as an escape); INI takes values as they are.
fn escape(value: &str, ini: bool) -> String {
    if ini { value.to_owned() } else { value.replace('\\', "\\\\") }
}

fn yaml(text: &str, set: &[(String, String)]) -> Result<String, String> {
    use serde_yaml_ng::Value;
    let mut root: Value = if text.trim().is_empty() {
        Value::Mapping(Default::default())
    } else {
        serde_yaml_ng::from_str(text).map_err(|e| format!("the file is not valid YAML: {e}"))?
    };
    for (key, value) in set {
        // Typed as YAML reads it (`20` a number, `true` a bool), as the game expects.
        let value: Value = serde_yaml_ng::from_str(value)
            .ok()
            .filter(|v: &Value| !matches!(v, Value::Mapping(_) | Value::Sequence(_)))
            .unwrap_or_else(|| Value::String(value.clone()));
        let mut node = &mut root;
        let parts: Vec<&str> = key.split('.').collect();
        for (i, part) in parts.iter().enumerate() {
            let Value::Mapping(map) = node else { return Err(format!("`{key}` is not a mapping in the file")) };
            let entry = map.entry(Value::String((*part).to_owned()));
            node = if i + 1 == parts.len() {
                let slot = entry.or_insert(Value::Null);
                *slot = value.clone();
                slot
            } else {
                entry.or_insert_with(|| Value::Mapping(Default::default()))
            };
        }
    }
    serde_yaml_ng::to_string(&root).map_err(|e| e.to_string())
}

fn json(text: &str, set: &[(String, String)]) -> Result<String, String> {
    use serde_json::Value;
    let mut root: Value = if text.trim().is_empty() {
        Value::Object(Default::default())
    } else {
        serde_json::from_str(text).map_err(|e| format!("the file is not valid JSON: {e}"))?
    };
    for (key, value) in set {
        let value = serde_json::from_str::<Value>(value)
            .ok()
            .filter(|v| v.is_number() || v.is_boolean() || v.is_null())
            .unwrap_or_else(|| Value::String(value.clone()));
        let mut node = &mut root;
        let parts: Vec<&str> = key.split('.').collect();
        for (i, part) in parts.iter().enumerate() {
            let Value::Object(map) = node else { return Err(format!("`{key}` is not an object in the file")) };
            node = if i + 1 == parts.len() {
                map.insert((*part).to_owned(), value.clone());
                map.get_mut(*part).ok_or("inserted")?
            } else {
                map.entry((*part).to_owned()).or_insert_with(|| Value::Object(Default::default()))
            };
        }
    }
    let mut text = serde_json::to_string_pretty(&root).map_err(|e| e.to_string())?;
    text.push('\n');
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn properties_change_only_the_named_keys_and_keep_the_rest() {
        let before = "#Minecraft server properties\nmotd=old\nlevel-seed=42\nserver-port = 25565\n";
        let after = apply(
            ConfigFormat::Properties,
            before,
            &set(&[("server-port", "25001"), ("max-players", "5"), ("motd", "a\\b")]),
        )
        .expect("applies");
        assert_eq!(
            after,
            "#Minecraft server properties\nmotd=a\\\\b\nlevel-seed=42\nserver-port=25001\nmax-players=5\n"
        );
        assert_eq!(apply(ConfigFormat::Properties, "", &set(&[("eula", "true")])).as_deref(), Ok("eula=true\n"));
    }

    #[test]
    fn ini_keys_go_in_their_section() {
        let before = "; comment\ntop=1\n[Server]\nName=old\n\n[Other]\nx=1\n";
        let after =
            apply(ConfigFormat::Ini, before, &set(&[("Server.Name", "new"), ("Server.Port", "7"), ("New.k", "v")]))
                .expect("applies");
        assert_eq!(after, "; comment\ntop=1\n[Server]\nName=new\nPort=7\n\n[Other]\nx=1\n[New]\nk=v\n");
    }

    #[test]
    fn yaml_and_json_set_nested_keys_typed_and_keep_others() {
        let yaml_after = apply(
            ConfigFormat::Yaml,
            "a: 1\nserver:\n  port: 1\n",
            &set(&[("server.port", "25001"), ("server.name", "x")]),
        )
        .expect("applies");
        let parsed: serde_yaml_ng::Value = serde_yaml_ng::from_str(&yaml_after).expect("yaml");
        assert_eq!(parsed["a"], serde_yaml_ng::Value::from(1));
        assert_eq!(parsed["server"]["port"], serde_yaml_ng::Value::from(25001));
        assert_eq!(parsed["server"]["name"], serde_yaml_ng::Value::from("x"));

        let json_after = apply(
            ConfigFormat::Json,
            "{\"keep\": [1], \"game\": {\"public\": true}}",
            &set(&[("game.public", "false"), ("game.name", "n")]),
        )
        .expect("applies");
        let parsed: serde_json::Value = serde_json::from_str(&json_after).expect("json");
        assert_eq!(parsed, serde_json::json!({"keep": [1], "game": {"public": false, "name": "n"}}));
        assert!(apply(ConfigFormat::Json, "not json", &set(&[("a", "b")])).is_err());
    }
}
