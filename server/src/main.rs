//! `spawnpoint`: the one binary operators run.

use std::io::{BufRead as _, IsTerminal as _};
use std::path::PathBuf;

use anyhow::Context as _;
use catalog::account::Role;
use clap::{Parser, Subcommand};
use server::Application;
use server::auth::AuthService;
use server::auth::token::{Tokens, load_or_create_secret};
use server::billing::stripe_api::{StripeApi, Synced};
use server::config::{BillingMode, Settings};
use server::db::Db;
use tracing_subscriber::EnvFilter;

/// Game-server hosting: a web panel, an API and the machinery that runs game servers.
///
/// Configured by environment variables (SPAWNPOINT_ADDR, SPAWNPOINT_DATA_DIR, DATABASE_URL, …) over an optional
/// TOML file; with neither it runs single-box mode on 127.0.0.1:3000 with SQLite in ./data.
#[derive(Parser)]
#[command(name = "spawnpoint", version, about)]
struct Cli {
    /// A TOML configuration file; environment variables override what it says.
    #[arg(long, global = true, env = "SPAWNPOINT_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the web app and API (the default).
    Serve,
    /// Apply database migrations and exit.
    Migrate,
    /// Print the effective configuration (file, environment and defaults), secrets redacted, and exit.
    Config,
    /// Manage administrator accounts.
    #[command(subcommand)]
    Admin(AdminCommand),
    /// Stripe billing (SPAWNPOINT_BILLING=stripe).
    #[command(subcommand)]
    Stripe(StripeCommand),
    /// Game servers and DNS records that have no row in the database.
    #[command(subcommand)]
    Orphans(OrphansCommand),
    /// Supervise one game on the single box (started by the panel itself, one per running game server).
    #[command(hide = true)]
    GameSupervisor { dir: PathBuf },
    /// Become a game, in its cgroups and as its user (started by its supervisor).
    #[command(hide = true)]
    GameExec { launch: PathBuf },
}

#[derive(Subcommand)]
enum OrphansCommand {
    /// Let the reconciler delete orphans however many there are, for the next few minutes. It refuses to
    /// delete more than a small share at once on its own, since that is what a wrong or empty database looks
    /// like; run this only once sure that the database is the right one.
    Release {
        /// How long the release lasts.
        #[arg(long, default_value_t = 10)]
        minutes: i64,
    },
}

#[derive(Subcommand)]
enum StripeCommand {
    /// Create or update a Stripe product per game and a monthly price per plan, as the catalog says. Safe to
    /// run again: what already matches is left alone.
    Sync,
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Create an administrator. The password is asked for at a prompt, or read as one line from standard
    /// input when that is not a terminal — never taken as an argument, where it would land in shell history.
    Create {
        #[arg(long)]
        email: String,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,tower_http=warn")))
        .init();
    let cli = Cli::parse();
    if let Some(Command::GameExec { launch }) = &cli.command {
        let error = server::orchestrator::local::shim::exec(launch);
        eprintln!("{error:#}");
        std::process::exit(1);
    }
    if let Some(Command::GameSupervisor { dir }) = &cli.command {
        // Before any settings: it is given none (a clean environment), and reads its game's launch file.
        // One line, the causes joined: the panel shows it as why the game could not start.
        if let Err(error) = server::orchestrator::local::shim::run(dir).await {
            eprintln!("{error:#}");
            std::process::exit(1);
        }
        return Ok(());
    }
    let settings = match Settings::load(cli.config.as_deref()) {
        Ok(settings) => settings,
        // Named key or variable, and a non-zero exit, before anything starts.
        Err(error) => {
            eprintln!("spawnpoint: {error}");
            std::process::exit(2);
        }
    };

    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            let app = Application::build(&settings).await?;
            let addr = app.local_addr()?;
            tracing::info!(database = settings.database_kind(), "Spawnpoint listening on http://{addr}");
            app.serve().await
        }
        Command::Migrate => {
            open_database(&settings).await?;
            tracing::info!(database = settings.database_kind(), "migrations applied");
            Ok(())
        }
        Command::Config => {
            // Secrets are `SecretString`s, which print as redacted.
            println!("{settings:#?}");
            Ok(())
        }
        Command::Stripe(StripeCommand::Sync) => stripe_sync(&settings).await,
        Command::GameSupervisor { .. } | Command::GameExec { .. } => {
            unreachable!("handled before the settings are read")
        }
        Command::Orphans(OrphansCommand::Release { minutes }) => {
            let db = open_database(&settings).await?;
            let minutes = minutes.clamp(1, 24 * 60);
            db.release_collection(minutes).await?;
            println!("orphans may be deleted in any number for the next {minutes} minutes");
            Ok(())
        }
        Command::Admin(AdminCommand::Create { email }) => {
            let password = read_password()?;
            let db = open_database(&settings).await?;
            let secret = load_or_create_secret(settings.accounts.jwt_secret.as_ref(), &settings.data_dir)?;
            let accounts =
                AuthService::new(db, Tokens::new(&secret), settings.accounts.session_ttl, false, Default::default());
            let user =
                accounts.create_user(&email, &password, Role::Admin).await.map_err(|e| anyhow::anyhow!("{e}"))?;
            println!("created administrator {} ({})", user.email, user.id);
            Ok(())
        }
    }
}

/// `spawnpoint stripe sync`: prints one line per product and price with what was done to it.
async fn stripe_sync(settings: &Settings) -> anyhow::Result<()> {
    server::install_crypto_provider();
    let BillingMode::Stripe(config) = &settings.billing else {
        anyhow::bail!("SPAWNPOINT_BILLING is not `stripe`: there is nothing to sync");
    };
    let catalog = settings.load_catalog().context("while loading the game catalog")?;
    let api = StripeApi::new(&config.secret_key, &config.api_base).map_err(|reason| anyhow::anyhow!("{reason}"))?;
    let (mut changed, mut unchanged) = (0, 0);
    api.sync(&catalog, |what, synced| {
        match synced {
            Synced::Unchanged => unchanged += 1,
            Synced::Created | Synced::Updated => changed += 1,
        }
        println!("{:<9} {what}", format!("{synced:?}").to_lowercase());
    })
    .await
    .context("while syncing prices with Stripe (what was done before the failure stays; run it again)")?;
    println!("{changed} created or updated, {unchanged} unchanged");
    Ok(())
}

async fn open_database(settings: &Settings) -> anyhow::Result<Db> {
    let db = Db::connect(&settings.database_url).await.context("while opening the database")?;
    db.migrate().await.context("while migrating the database")?;
    Ok(db)
}

fn read_password() -> anyhow::Result<String> {
    if std::io::stdin().is_terminal() {
        let password = rpassword::prompt_password("Password: ").context("while reading the password")?;
        let again = rpassword::prompt_password("Password again: ").context("while reading the password")?;
        anyhow::ensure!(password == again, "the passwords differ");
        return Ok(password);
    }
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).context("while reading the password from standard input")?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}
