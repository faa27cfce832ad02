//! The Spawnpoint server: configuration, database, REST API and the server-rendered Leptos app in one router.

pub mod api;
pub mod auth;
pub mod backups;
pub mod billing;
pub mod clock;
pub mod config;
pub mod console;
pub mod db;
pub mod dns;
pub mod error;
pub mod files;
pub mod orchestrator;
pub mod reconciler;
pub mod schedules;
pub mod servers;
pub mod sftp;
pub mod state;
pub mod subscriptions;

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use app::auth::ssr::Accounts;
use app::billing::ssr::BillingPages;
use app::servers::ssr::Servers;
use axum::Router;
use leptos::config::LeptosOptions;
use leptos::prelude::provide_context;
use leptos_axum::{LeptosRoutes, generate_route_list};
use tokio::net::TcpListener;
use tower_http::trace::TraceLayer;

use crate::auth::AuthService;
use crate::auth::hosts::url_host;
use crate::auth::limit::Limits;
use crate::auth::password::Hashing;
use crate::auth::token::{Tokens, load_or_create_secret};
use crate::backups::BackupService;
use crate::backups::store::BackupStore;
use crate::billing::Payments;
use crate::billing::none::NoPayments;
use crate::billing::stripe::Stripe;
use crate::config::{BillingMode, DnsProvider, Driver, Settings};
use crate::console::Consoles;
use crate::db::Db;
use crate::dns::Dns;
use crate::dns::cloudflare::Cloudflare;
use crate::files::FileService;
use crate::orchestrator::Orchestrator;
use crate::orchestrator::agones::AgonesDriver;
use crate::orchestrator::local::LocalDriver;
use crate::reconciler::guard::DeletionGuard;
use crate::reconciler::{Clients, Reconciler};
use crate::schedules::ScheduleService;
use crate::servers::ServerService;
use crate::servers::events::EventBus;
use crate::servers::repo::ServerRepo;
use crate::sftp::Sftp;
use crate::state::AppState;
use crate::subscriptions::Subscriptions;

/// Installs rustls' crypto provider for the process's HTTPS clients (the Cloudflare API): ring, the one kube's
/// client uses too. reqwest is built without a provider of its own (so no second crypto library is compiled), so
/// one must be installed before any reqwest client is built; installing it again is harmless.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A bound, ready-to-serve Spawnpoint. Binding happens in [`Application::build`] so tests can ask for port 0
/// and learn the real port before serving.
pub struct Application {
    listener: TcpListener,
    router: Router,
    state: AppState,
    reconciler: Arc<Reconciler>,
    driver: Arc<dyn Orchestrator>,
    sftp: Option<Sftp>,
}

impl Application {
    /// Loads the catalog, connects to and migrates the database, and binds the listener.
    pub async fn build(settings: &Settings) -> anyhow::Result<Self> {
        install_crypto_provider();
        let catalog = settings.load_catalog().context("while loading the game catalog")?;
        let db = Db::connect(&settings.database_url).await.context("while opening the database")?;
        db.migrate().await.context("while migrating the database")?;
        let installation = db.installation().await.context("while reading this installation's id")?;
        let secret = load_or_create_secret(settings.accounts.jwt_secret.as_ref(), &settings.data_dir)
            .context("while loading the session signing secret")?;
        let secure_cookies = settings.http.public_url.as_deref().is_some_and(|url| url.starts_with("https://"));
        let auth = Arc::new(
            AuthService::new(
                db.clone(),
                Tokens::new(&secret),
                settings.accounts.session_ttl,
                secure_cookies,
                settings.http.trusted_proxies.clone(),
            )
            .with_limits(
                Hashing::new(settings.tuning.password_hashes, Hashing::WAIT),
                Limits::new(settings.tuning.sign_ins_per_second),
            ),
        );

        let listener = TcpListener::bind(settings.http.addr)
            .await
            .with_context(|| format!("while binding {}", settings.http.addr))?;
        let addr = listener.local_addr().context("while reading the bound address")?;
        let leptos_options = LeptosOptions::builder()
            .output_name("spawnpoint")
            .site_root(settings.http.site_root.to_string_lossy().as_ref())
            .site_pkg_dir("pkg")
            .site_addr(addr)
            .build();

        let events = EventBus::default();
        let repo = Arc::new(ServerRepo::new(db.clone(), events.clone()));
        let driver = orchestrator(settings, repo.clone(), &installation).await?;

        let catalog = Arc::new(catalog);
        let payments = payments(settings, &db)?;
        let servers = Arc::new(ServerService::new(
            repo.clone(),
            catalog.clone(),
            driver.clone(),
            payments.clone(),
            settings.accounts.max_servers_per_customer,
            settings.tuning.clock.clone(),
        ));
        let sftp = Sftp::bind(&settings.sftp, &settings.data_dir).await?;
        let sftp_endpoint = match &sftp {
            Some(sftp) => {
                let bound = sftp.local_addr().context("while reading the SFTP address")?;
                // Listening everywhere, SFTP is where customers reach the panel (on the single box, where they
                // reach its games); listening on one address, it is that address.
                let host = if bound.ip().is_unspecified() {
                    let public = settings.http.public_url.as_deref().and_then(url_host);
                    public.unwrap_or_else(|| settings.local.host.clone())
                } else {
                    bound.ip().to_string()
                };
                Some((host, bound.port()))
            }
            None => None,
        };
        let files =
            Arc::new(FileService::new(servers.clone(), catalog.clone(), driver.clone(), db.clone(), sftp_endpoint));
        let store = BackupStore::new(&settings.backups, &settings.data_dir)
            .map_err(|reason| anyhow::anyhow!("while opening the backup store: {reason}"))?;
        tracing::info!(store = %store.describe, "backups are kept in this store");
        let store = Arc::new(store);
        let backups =
            Arc::new(BackupService::new(servers.clone(), catalog.clone(), driver.clone(), db.clone(), store.clone()));
        backups.recover().await.context("while marking unfinished backups failed")?;
        let schedules = Arc::new(ScheduleService::new(servers.clone(), auth.clone(), backups.clone(), db.clone()));
        let subscriptions = Arc::new(Subscriptions::new(
            repo.clone(),
            catalog.clone(),
            payments,
            settings.tuning.clock.clone(),
            settings.tuning.crash_after_claim.clone(),
        ));
        let dns = dns_provider(settings, &installation)?;
        let guard = Arc::new(DeletionGuard::default());
        let clients = Clients {
            repo,
            subscriptions: subscriptions.clone(),
            catalog: catalog.clone(),
            driver: driver.clone(),
            dns,
            guard: guard.clone(),
            backups: store,
        };
        let reconciler = Reconciler::new(clients, settings.reconciler.clone(), settings.tuning.restart_backoff);
        let consoles = Arc::new(Consoles::new(driver.clone(), events, settings.tuning.console));
        let state = AppState {
            catalog,
            db,
            auth,
            servers,
            files,
            backups,
            schedules,
            subscriptions,
            consoles,
            guard,
            public_url: settings.http.public_url.clone(),
            allowed_hosts: Arc::new(settings.http.allowed_hosts.clone()),
            leptos_options,
        };
        let router = router(state.clone());
        Ok(Self { listener, router, state, reconciler, driver, sftp })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Where SFTP listens, when it is on.
    pub fn sftp_addr(&self) -> Option<SocketAddr> {
        self.sftp.as_ref().and_then(|sftp| sftp.local_addr().ok())
    }

    /// The reconciler, for benchmarks that drive and time its passes.
    pub fn reconciler(&self) -> Arc<Reconciler> {
        self.reconciler.clone()
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves and reconciles until the process is asked to stop (Ctrl-C or SIGTERM).
    pub async fn serve(self) -> anyhow::Result<()> {
        self.serve_until(shutdown_signal()).await
    }

    /// Serves and reconciles until `signal` completes, then stops the reconciler and the game servers that
    /// do not outlive Spawnpoint (the local ones, which start again with it).
    pub async fn serve_until(self, signal: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        self.reconciler.start();
        let schedules = self.state.schedules.clone().start();
        let sftp = self.sftp.map(|sftp| sftp.start(self.state.auth.clone(), self.state.files.clone()));
        // Connect info gives the rate limiter each client's address.
        let served = axum::serve(self.listener, self.router.into_make_service_with_connect_info::<SocketAddr>())
            .with_graceful_shutdown(signal)
            .await
            .context("while serving");
        schedules.abort();
        if let Some(sftp) = sftp {
            sftp.abort();
        }
        self.reconciler.stop().await;
        self.driver.shutdown().await;
        served
    }
}

/// The configured orchestrator, ready to use; the local one records the game ports it hands out in `repo`.
async fn orchestrator(
    settings: &Settings,
    repo: Arc<ServerRepo>,
    installation: &str,
) -> anyhow::Result<Arc<dyn Orchestrator>> {
    match settings.driver {
        Driver::Local => {
            let local = LocalDriver::new(&settings.data_dir, settings.local.clone(), repo);
            // Before the reconciler looks: the games a previous run left running go on, not twice.
            local.adopt().await;
            Ok(Arc::new(local))
        }
        Driver::Agones => {
            let config = match &settings.agones.kube_api {
                Some(url) => kube::Config::new(url.parse().context("SPAWNPOINT_KUBE_API is not a URL")?),
                None => kube::Config::infer().await.context("while reading the kubeconfig or in-cluster config")?,
            };
            let client = kube::Client::try_from(config).context("while creating the Kubernetes client")?;
            let timeout = settings.tuning.kube_request_timeout;
            let driver = AgonesDriver::start(client, &settings.agones, timeout, installation)
                .await
                .context("while watching GameServers")?;
            // Before the reconciler looks: objects of this database's servers made before installations were
            // stamped would look gone.
            let rows: Vec<catalog::ServerId> =
                repo.list(None).await.context("while listing servers")?.into_iter().map(|row| row.id).collect();
            driver.adopt(&rows).await.context("while taking over game servers made before installations")?;
            Ok(driver)
        }
    }
}

/// The configured payment provider.
pub fn payments(settings: &Settings, db: &Db) -> anyhow::Result<Arc<dyn Payments>> {
    match &settings.billing {
        BillingMode::None => Ok(Arc::new(NoPayments)),
        BillingMode::Stripe(config) => {
            let public_url = settings.http.public_url.as_deref().unwrap_or_default();
            let stripe = Stripe::new(config, db.clone(), public_url).context("while setting up the Stripe client")?;
            tracing::info!("servers are paid for with Stripe subscriptions");
            Ok(Arc::new(stripe))
        }
    }
}

/// The configured DNS provider, if any.
fn dns_provider(settings: &Settings, installation: &str) -> anyhow::Result<Option<Arc<dyn Dns>>> {
    match &settings.dns {
        DnsProvider::None => Ok(None),
        DnsProvider::Cloudflare(config) => {
            let cloudflare =
                Cloudflare::new(config.clone(), installation).context("while setting up the Cloudflare client")?;
            tracing::info!(base_domain = %config.base_domain, "servers get DNS names from Cloudflare");
            Ok(Some(Arc::new(cloudflare)))
        }
    }
}

/// The whole HTTP surface: REST routes, server functions, the app's pages and the built site's files, behind
/// the security middleware (outermost first: security headers, `Host` check, CSRF origin check, authentication,
/// `/api/` sign-in requirement).
pub fn router(state: AppState) -> Router {
    let routes = generate_route_list(app::App);
    let (catalog, accounts) = (state.catalog.clone(), state.auth.clone() as Arc<dyn Accounts>);
    let servers = state.servers.clone() as Arc<dyn Servers>;
    let billing = state.subscriptions.clone() as Arc<dyn BillingPages>;
    let files = state.files.clone() as Arc<dyn app::files::ssr::Files>;
    let backups = Arc::new(backups::BackupsPage(state.backups.clone())) as Arc<dyn app::backups::ssr::BackupsPage>;
    let schedules =
        Arc::new(schedules::SchedulesPage(state.schedules.clone())) as Arc<dyn app::schedules::ssr::SchedulesPage>;
    let app_context = move || {
        provide_context(files.clone());
        provide_context(backups.clone());
        provide_context(schedules.clone());
        provide_context(catalog.clone());
        provide_context(accounts.clone());
        provide_context(servers.clone());
        provide_context(billing.clone());
    };
    Router::new()
        .merge(api::routes())
        .merge(auth::routes::routes())
        .merge(servers::routes::routes())
        .merge(files::routes::routes())
        .merge(backups::routes::routes())
        .merge(schedules::routes::routes())
        .merge(console::routes::routes())
        .merge(subscriptions::routes::routes())
        .leptos_routes_with_context(&state, routes, app_context, {
            let options = state.leptos_options.clone();
            move || app::shell(options.clone())
        })
        .fallback(leptos_axum::file_and_error_handler::<AppState, _>(app::shell))
        .layer(axum::middleware::from_fn(auth::middleware::require_user))
        .layer(axum::middleware::from_fn_with_state(state.clone(), auth::middleware::authenticate))
        .layer(axum::middleware::from_fn_with_state(state.clone(), auth::middleware::check_origin))
        .layer(axum::middleware::from_fn_with_state(state.clone(), auth::middleware::check_host))
        .layer(axum::middleware::from_fn(auth::middleware::security_headers))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::warn!(%error, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down");
}
