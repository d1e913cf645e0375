//! `/api/plugins`: what is loaded, what was refused and why, and a forced
//! rescan of the plugins directory.

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};

use super::auth::Admin;
use super::{ApiError, AppState};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/plugins", get(list))
        .route("/api/plugins/reload", post(reload))
}

async fn list(_admin: Admin, State(state): State<AppState>) -> Json<Value> {
    Json(json!({
        "items": state.plugins.status(),
        "allocator": state.plugins.allocator(),
    }))
}

/// Rescans the directory now (the watcher does the same on file events).
async fn reload(_admin: Admin, State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let refused = state
        .plugins
        .sync_dir(&state.plugins_dir)
        .await
        .map_err(ApiError::internal)?;
    Ok(Json(json!({
        "items": state.plugins.status(),
        "refused": refused.iter().map(|e| e.to_string()).collect::<Vec<_>>(),
    })))
}
