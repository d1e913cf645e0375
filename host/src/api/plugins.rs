//! `/api/plugins`: what is loaded, what was refused and why, and a forced
//! rescan of the plugins directory.

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::Admin;
use super::{ApiError, AppState};
use crate::plugins::PluginStatus;
use crate::plugins::engine::Allocator;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(reload))
}

/// The plugins directory as chirp sees it.
#[derive(Serialize, ToSchema)]
struct PluginList {
    items: Vec<PluginStatus>,
    /// How plugin instances get their memory.
    allocator: Allocator,
}

/// The directory after a rescan.
#[derive(Serialize, ToSchema)]
struct Reloaded {
    items: Vec<PluginStatus>,
    /// Files refused by this rescan, with why (the version before serves).
    refused: Vec<String>,
}

#[utoipa::path(
    get,
    path = "/api/plugins",
    tag = "plugins",
    description = "Every plugin file: active, or refused with why (admin).",
    responses((status = 200, description = "Success", body = PluginList)),
)]
async fn list(_admin: Admin, State(state): State<AppState>) -> Json<PluginList> {
    Json(PluginList {
        items: state.plugins.status(),
        allocator: state.plugins.allocator(),
    })
}

/// Rescans the directory now (the watcher does the same on file events).
#[utoipa::path(
    post,
    path = "/api/plugins/reload",
    tag = "plugins",
    description = "Rescans the plugins directory now (admin).",
    responses((status = 200, description = "Success", body = Reloaded)),
)]
async fn reload(_admin: Admin, State(state): State<AppState>) -> Result<Json<Reloaded>, ApiError> {
    let refused = state
        .plugins
        .sync_dir(&state.plugins_dir)
        .await
        .map_err(ApiError::internal)?;
    Ok(Json(Reloaded {
        items: state.plugins.status(),
        refused: refused.iter().map(|e| e.to_string()).collect(),
    }))
}
