//! The Spawnpoint server: configuration, database, REST API and the server-rendered Leptos app in one router.

pub mod api;
pub mod auth;
pub mod billing;
pub mod clock;
pub mod config;
pub mod console;
pub mod db;
pub mod dns;
pub mod error;
pub mod orchestrator;
pub mod reconciler;
pub mod servers;
pub mod state;

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
use crate::auth::token::{Tokens, load_or_create_secret};
use crate::billing::Billing;
use crate::config::{BillingMode, DnsProvider, Driver, Settings};
use crate::console::Consoles;
use crate::db::Db;
use crate::dns::Dns;
use crate::dns::cloudflare::Cloudflare;
use crate::orchestrator::Orchestrator;
use crate::orchestrator::agones::{AgonesConfig, AgonesDriver};
use crate::orchestrator::local::{LocalConfig, LocalDriver};
use crate::reconciler::{Reconciler, ReconcilerConfig};
use crate::servers::ServerService;
use crate::state::AppState;

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
}

impl Application {
    /// Loads the catalog, connects to and migrates the database, and binds the listener.
    pub async fn build(settings: &Settings) -> anyhow::Result<Self> {
        install_crypto_provider();
        let catalog = settings.load_catalog().context("while loading the game catalog")?;
        let db = Db::connect(&settings.database_url).await.context("while opening the database")?;
        db.migrate().await.context("while migrating the database")?;
        let secret = load_or_create_secret(settings.jwt_secret.as_ref(), &settings.data_dir)
            .context("while loading the session signing secret")?;
        let secure_cookies = settings.public_url.as_deref().is_some_and(|url| url.starts_with("https://"));
        let auth = Arc::new(AuthService::new(
            db.clone(),
            Tokens::new(&secret),
            settings.session_ttl,
            secure_cookies,
            settings.trusted_proxies.clone(),
        ));

        let listener =
            TcpListener::bind(settings.addr).await.with_context(|| format!("while binding {}", settings.addr))?;
        let addr = listener.local_addr().context("while reading the bound address")?;
        let leptos_options = LeptosOptions::builder()
            .output_name("spawnpoint")
            .site_root(settings.site_root.to_string_lossy().as_ref())
            .site_pkg_dir("pkg")
            .site_addr(addr)
            .build();

        let driver = orchestrator(settings).await?;

        let catalog = Arc::new(catalog);
        let billing = billing(settings, &db)?;
        let servers = Arc::new(ServerService::new(
            db.clone(),
            catalog.clone(),
            driver.clone(),
            settings.max_servers_per_customer,
            billing.clone(),
            settings.clock.clone(),
        ));
        let dns = dns_provider(settings)?;
        let reconciler = Reconciler::new(
            servers.clone(),
            catalog.clone(),
            driver.clone(),
            dns,
            billing,
            ReconcilerConfig {
                resync_interval: settings.resync_interval,
                backoff: settings.restart_backoff,
                start_timeout: settings.start_timeout,
                dns_repair_interval: settings.dns_repair_interval,
                host: settings.game_host.clone(),
            },
        );
        let consoles = Arc::new(Consoles::new(driver.clone(), servers.clone(), settings.console));
        let state =
            AppState { catalog, db, auth, servers, consoles, public_url: settings.public_url.clone(), leptos_options };
        let router = router(state.clone());
        Ok(Self { listener, router, state, reconciler, driver })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
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
        // Connect info gives the rate limiter each client's address.
        let served = axum::serve(self.listener, self.router.into_make_service_with_connect_info::<SocketAddr>())
            .with_graceful_shutdown(signal)
            .await
            .context("while serving");
        self.reconciler.stop().await;
        self.driver.shutdown().await;
        served
    }
}

/// The configured orchestrator, ready to use.
async fn orchestrator(settings: &Settings) -> anyhow::Result<Arc<dyn Orchestrator>> {
    match settings.driver {
        Driver::Local => {
            let local = LocalDriver::new(LocalConfig {
                data_dir: settings.data_dir.clone(),
                host: settings.game_host.clone(),
                ports: settings.game_ports.clone(),
                stop_grace: settings.stop_grace,
            });
            // Before anything is started: what a previous run left behind would otherwise run twice.
            local.end_leftovers().await;
            Ok(Arc::new(local))
        }
        Driver::Agones => {
            let config = match &settings.kube_api {
                Some(url) => kube::Config::new(url.parse().context("SPAWNPOINT_KUBE_API is not a URL")?),
                None => kube::Config::infer().await.context("while reading the kubeconfig or in-cluster config")?,
            };
            let client = kube::Client::try_from(config).context("while creating the Kubernetes client")?;
            let agones = AgonesConfig {
                namespace: settings.namespace.clone(),
                public_ip_label: settings.public_ip_label.clone(),
                request_timeout: settings.kube_request_timeout,
            };
            let driver = AgonesDriver::start(client, agones).await.context("while watching GameServers")?;
            Ok(driver)
        }
    }
}

/// The configured billing, if any.
pub fn billing(settings: &Settings, db: &Db) -> anyhow::Result<Option<Arc<Billing>>> {
    match &settings.billing {
        BillingMode::None => Ok(None),
        BillingMode::Stripe(config) => {
            let public_url = settings.public_url.as_deref().unwrap_or_default();
            let billing = Billing::new(config, db.clone(), public_url)
                .map_err(|reason| anyhow::anyhow!("while setting up the Stripe client: {reason}"))?;
            tracing::info!("servers are paid for with Stripe subscriptions");
            Ok(Some(Arc::new(billing)))
        }
    }
}

/// The configured DNS provider, if any.
fn dns_provider(settings: &Settings) -> anyhow::Result<Option<Arc<dyn Dns>>> {
    match &settings.dns {
        DnsProvider::None => Ok(None),
        DnsProvider::Cloudflare(config) => {
            let cloudflare = Cloudflare::new(config.clone()).context("while setting up the Cloudflare client")?;
            tracing::info!(base_domain = %config.base_domain, "servers get DNS names from Cloudflare");
            Ok(Some(Arc::new(cloudflare)))
        }
    }
}

/// The whole HTTP surface: REST routes, server functions, the app's pages and the built site's files, behind
/// the security middleware (outermost first: CSRF origin check, authentication, `/api/` sign-in requirement).
pub fn router(state: AppState) -> Router {
    let routes = generate_route_list(app::App);
    let (catalog, accounts) = (state.catalog.clone(), state.auth.clone() as Arc<dyn Accounts>);
    let servers = state.servers.clone() as Arc<dyn Servers>;
    let billing = state.servers.clone() as Arc<dyn BillingPages>;
    let app_context = move || {
        provide_context(catalog.clone());
        provide_context(accounts.clone());
        provide_context(servers.clone());
        provide_context(billing.clone());
    };
    Router::new()
        .merge(api::routes())
        .merge(auth::routes::routes())
        .merge(servers::routes::routes())
        .merge(console::routes::routes())
        .merge(billing::routes::routes())
        .leptos_routes_with_context(&state, routes, app_context, {
            let options = state.leptos_options.clone();
            move || app::shell(options.clone())
        })
        .fallback(leptos_axum::file_and_error_handler::<AppState, _>(app::shell))
        .layer(axum::middleware::from_fn(auth::middleware::require_user))
        .layer(axum::middleware::from_fn_with_state(state.clone(), auth::middleware::authenticate))
        .layer(axum::middleware::from_fn_with_state(state.clone(), auth::middleware::check_origin))
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
