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

#[test]
fn config_prints_the_file_and_the_environment_with_secrets_redacted() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("spawnpoint.toml");
    std::fs::write(
        &file,
        "[http]\naddr = \"0.0.0.0:8080\"\n[reconciler]\nresync_interval = 7\n\
         [accounts]\njwt_secret = \"a-signing-secret-of-at-least-32-characters\"\n",
    )
    .expect("write");
    let output = spawnpoint()
        .args(["--config", file.to_str().expect("utf-8"), "config"])
        .env_clear()
        .env("SPAWNPOINT_RESYNC_INTERVAL", "9")
        .env("DATABASE_URL", "postgres://spawnpoint:hunter2@db/spawnpoint")
        .output()
        .expect("runs");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let shown = String::from_utf8_lossy(&output.stdout);
    assert!(shown.contains("0.0.0.0:8080"), "from the file: {shown}");
    assert!(shown.contains("resync_interval: 9s"), "the variable wins over the file: {shown}");
    assert!(!shown.contains("hunter2") && !shown.contains("a-signing-secret"), "secrets redacted: {shown}");
}

#[test]
fn a_bad_file_value_names_its_key_and_exits_non_zero() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("spawnpoint.toml");
    std::fs::write(&file, "[local]\ngame_ports = \"70000-1\"\n").expect("write");
    let output = spawnpoint().args(["--config", file.to_str().expect("utf-8"), "config"]).env_clear().output();
    let output = output.expect("runs");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("`local.game_ports` in") && stderr.contains("spawnpoint.toml"), "{stderr}");
    assert!(output.stdout.is_empty(), "nothing is printed as if it were the configuration");
}
