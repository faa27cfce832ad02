//! `spawnpoint`: the one binary operators run.

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use server::Application;
use server::config::Settings;
use server::db::Db;
use tracing_subscriber::EnvFilter;

/// Game-server hosting: a web panel, an API and the machinery that runs game servers.
///
/// Configured by environment variables (SPAWNPOINT_ADDR, SPAWNPOINT_DATA_DIR, DATABASE_URL, …); with none it
/// runs single-box mode on 127.0.0.1:3000 with SQLite in ./data.
#[derive(Parser)]
#[command(name = "spawnpoint", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the web app and API (the default).
    Serve,
    /// Apply database migrations and exit.
    Migrate,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,tower_http=warn")))
        .init();
    let cli = Cli::parse();
    let settings = Settings::from_env().context("while reading the configuration")?;

    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            let app = Application::build(&settings).await?;
            let addr = app.local_addr()?;
            tracing::info!(database = settings.database_kind(), "Spawnpoint listening on http://{addr}");
            app.serve().await
        }
        Command::Migrate => {
            let db = Db::connect(&settings.database_url).await.context("while opening the database")?;
            db.migrate().await.context("while migrating the database")?;
            tracing::info!(database = settings.database_kind(), "migrations applied");
            Ok(())
        }
    }
}
