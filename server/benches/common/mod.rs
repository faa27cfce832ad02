//! What the benches share: a Spawnpoint of their own in this process, an account on it, and a server.

use std::path::Path;

use secrecy::SecretString;
use serde_json::{Value, json};
use server::Application;
use server::config::Settings;

/// Settings for a bench's Spawnpoint: port 0, SQLite and the data directory in `dir`, no SFTP.
pub fn settings(dir: &Path) -> anyhow::Result<Settings> {
    let mut settings = Settings::from_lookup(|_| None)?;
    settings.sftp.addr = None;
    settings.http.addr = "127.0.0.1:0".parse()?;
    settings.data_dir = dir.to_owned();
    settings.database_url = SecretString::from(format!("sqlite://{}/spawnpoint.db", dir.display()));
    Ok(settings)
}

/// A running Spawnpoint, signed in to, with a server made (not necessarily running yet).
pub struct Bench {
    pub http: reqwest::Client,
    /// `http://127.0.0.1:<port>`
    pub base: String,
    pub token: String,
    /// The server's id.
    pub id: String,
}

/// Starts Spawnpoint with `settings`, signs up an account and makes a server of `game` on `plan`.
pub async fn start(settings: &Settings, game: &str, plan: &str) -> anyhow::Result<Bench> {
    let app = Application::build(settings).await?;
    let base = format!("http://{}", app.local_addr()?);
    tokio::spawn(app.serve());
    let http = reqwest::Client::new();
    let account = json!({ "email": "bench@example.com", "password": "correct horse battery" });
    http.post(format!("{base}/auth/register")).json(&account).send().await?.error_for_status()?;
    let login: Value = http.post(format!("{base}/auth/login")).json(&account).send().await?.json().await?;
    let token = login["token"].as_str().expect("a token").to_owned();
    let server: Value = http
        .post(format!("{base}/api/servers"))
        .bearer_auth(&token)
        .json(&json!({ "name": "bench", "game": game, "plan": plan }))
        .send()
        .await?
        .json()
        .await?;
    let id = server["id"].as_str().expect("an id").to_owned();
    Ok(Bench { http, base, token, id })
}
