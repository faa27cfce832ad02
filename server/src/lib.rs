//! The Spawnpoint server: configuration, database, REST API and the server-rendered Leptos app in one router.

pub mod api;
pub mod config;
pub mod db;
pub mod error;
pub mod state;

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use axum::Router;
use leptos::config::LeptosOptions;
use leptos::prelude::provide_context;
use leptos_axum::{LeptosRoutes, generate_route_list};
use tokio::net::TcpListener;
use tower_http::trace::TraceLayer;

use crate::config::Settings;
use crate::db::Db;
use crate::state::AppState;

/// A bound, ready-to-serve Spawnpoint. Binding happens in [`Application::build`] so tests can ask for port 0
/// and learn the real port before serving.
pub struct Application {
    listener: TcpListener,
    router: Router,
    state: AppState,
}

impl Application {
    /// Loads the catalog, connects to and migrates the database, and binds the listener.
    pub async fn build(settings: &Settings) -> anyhow::Result<Self> {
        let catalog = settings.load_catalog().context("while loading the game catalog")?;
        let db = Db::connect(&settings.database_url).await.context("while opening the database")?;
        db.migrate().await.context("while migrating the database")?;

        let listener =
            TcpListener::bind(settings.addr).await.with_context(|| format!("while binding {}", settings.addr))?;
        let addr = listener.local_addr().context("while reading the bound address")?;
        let leptos_options = LeptosOptions::builder()
            .output_name("spawnpoint")
            .site_root(settings.site_root.to_string_lossy().as_ref())
            .site_pkg_dir("pkg")
            .site_addr(addr)
            .build();

        let state = AppState { catalog: Arc::new(catalog), db, leptos_options };
        let router = router(state.clone());
        Ok(Self { listener, router, state })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until the process is asked to stop (Ctrl-C or SIGTERM).
    pub async fn serve(self) -> anyhow::Result<()> {
        axum::serve(self.listener, self.router).with_graceful_shutdown(shutdown_signal()).await.context("while serving")
    }
}

/// The whole HTTP surface: REST routes, server functions, the app's pages and the built site's files.
pub fn router(state: AppState) -> Router {
    let routes = generate_route_list(app::App);
    let catalog = state.catalog.clone();
    Router::new()
        .merge(api::routes())
        .leptos_routes_with_context(&state, routes, move || provide_context(catalog.clone()), {
            let options = state.leptos_options.clone();
            move || app::shell(options.clone())
        })
        .fallback(leptos_axum::file_and_error_handler::<AppState, _>(app::shell))
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
