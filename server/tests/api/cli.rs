//! The binary as an operator runs it.

use std::process::Command;

fn spawnpoint() -> Command {
    Command::new(env!("CARGO_BIN_EXE_spawnpoint"))
}

#[test]
fn help_lists_the_subcommands() {
    let output = spawnpoint().arg("--help").output().expect("runs");
    assert!(output.status.success());
    let help = String::from_utf8_lossy(&output.stdout);
    assert!(help.contains("serve") && help.contains("migrate"), "{help}");
}

#[test]
fn migrate_creates_the_sqlite_database_in_the_data_dir() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data_dir = dir.path().join("nested/data");
    let output = spawnpoint().arg("migrate").env_clear().env("SPAWNPOINT_DATA_DIR", &data_dir).output().expect("runs");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(data_dir.join("spawnpoint.db").is_file(), "the database file was created");
}

#[test]
fn a_bad_setting_stops_the_binary_with_the_variable_named() {
    let output =
        spawnpoint().arg("migrate").env_clear().env("SPAWNPOINT_ADDR", "not-an-address").output().expect("runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("SPAWNPOINT_ADDR"), "{stderr}");
}
