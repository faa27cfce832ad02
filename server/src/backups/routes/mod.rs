//! `/api/servers/{id}/backups…`: one file per route. Handlers parse, call [`crate::backups::BackupService`]
//! and answer.

mod backup;
mod download;
mod list;
mod lock;
mod restore;

use axum::Router;
use axum::routing::{get, post};

use crate::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/servers/{id}/backups", get(list::list).post(list::create))
        .route("/api/servers/{id}/backups/{backup}", get(backup::show).delete(backup::delete))
        .route("/api/servers/{id}/backups/{backup}/download", get(download::download))
        .route("/api/servers/{id}/backups/{backup}/restore", post(restore::restore))
        .route("/api/servers/{id}/backups/{backup}/lock", post(lock::lock))
        .route("/api/servers/{id}/backups/{backup}/unlock", post(lock::unlock))
}
