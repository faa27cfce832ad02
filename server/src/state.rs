//! What every request handler and server function can reach.

use std::sync::Arc;

use axum::extract::FromRef;
use catalog::Catalog;
use leptos::config::LeptosOptions;

use crate::auth::AuthService;
use crate::auth::hosts::AllowedHosts;
use crate::backups::BackupService;
use crate::console::Consoles;
use crate::db::Db;
use crate::files::FileService;
use crate::reconciler::guard::DeletionGuard;
use crate::schedules::ScheduleService;
use crate::servers::ServerService;
use crate::subscriptions::Subscriptions;

#[derive(Clone)]
pub struct AppState {
    pub catalog: Arc<Catalog>,
    pub db: Db,
    pub auth: Arc<AuthService>,
    pub servers: Arc<ServerService>,
    pub files: Arc<FileService>,
    pub backups: Arc<BackupService>,
    pub schedules: Arc<ScheduleService>,
    pub subscriptions: Arc<Subscriptions>,
    pub consoles: Arc<Consoles>,
    /// What the reconciler refuses to delete for now, for `/ready`.
    pub guard: Arc<DeletionGuard>,
    /// `SPAWNPOINT_PUBLIC_URL`, the origin browser requests must come from (see `auth::middleware`).
    pub public_url: Option<String>,
    /// The names `Host` may carry (see `auth::hosts`).
    pub allowed_hosts: Arc<AllowedHosts>,
    pub leptos_options: LeptosOptions,
}

impl FromRef<AppState> for LeptosOptions {
    fn from_ref(state: &AppState) -> Self {
        state.leptos_options.clone()
    }
}
