//! The demo game's persistent world: a small file in the data directory counting the matches played.

use std::path::{Path, PathBuf};

use anyhow::Context as _;

const FILE: &str = "world.txt";

pub struct World {
    path: PathBuf,
    pub matches_played: u64,
}

impl World {
    /// Reads the world from `data_dir`, or starts a new one there.
    pub fn load(data_dir: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(data_dir)
            .with_context(|| format!("creating the data directory {}", data_dir.display()))?;
        let path = data_dir.join(FILE);
        let matches_played = match std::fs::read_to_string(&path) {
            Ok(text) => parse(&text).with_context(|| format!("reading {}", path.display()))?,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => 0,
            Err(error) => return Err(error).with_context(|| format!("reading {}", path.display())),
        };
        Ok(Self { path, matches_played })
    }

    /// Writes the world through a temporary file, so a crash mid-write never leaves a torn file behind.
    pub fn save(&self) -> anyhow::Result<()> {
        let temporary = self.path.with_extension("txt.tmp");
        std::fs::write(&temporary, format!("matches_played={}\n", self.matches_played))
            .with_context(|| format!("writing {}", temporary.display()))?;
        std::fs::rename(&temporary, &self.path).with_context(|| format!("replacing {}", self.path.display()))
    }
}

fn parse(text: &str) -> anyhow::Result<u64> {
    let value =
        text.lines().find_map(|line| line.strip_prefix("matches_played=")).context("no `matches_played=` line")?;
    value.trim().parse().with_context(|| format!("`{value}` is not a count"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_world_survives_a_save_and_a_load() {
        let dir = std::env::temp_dir().join(format!("demo-world-{}", std::process::id()));
        let mut world = World::load(&dir).expect("new world");
        assert_eq!(world.matches_played, 0);
        world.matches_played = 3;
        world.save().expect("saved");
        assert_eq!(World::load(&dir).expect("loaded").matches_played, 3);
        std::fs::write(dir.join(FILE), "garbage").expect("corrupt it");
        assert!(World::load(&dir).is_err(), "a corrupt world is reported, not silently reset");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
