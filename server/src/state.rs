//! What every request handler and server function can reach.

use std::sync::Arc;

use axum::extract::FromRef;
use catalog::Catalog;
use leptos::config::LeptosOptions;

use crate::db::Db;

#[derive(Clone)]
pub struct AppState {
    pub catalog: Arc<Catalog>,
    pub db: Db,
    pub leptos_options: LeptosOptions,
}

impl FromRef<AppState> for LeptosOptions {
    fn from_ref(state: &AppState) -> Self {
        state.leptos_options.clone()
    }
}
