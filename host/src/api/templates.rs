//! `GET /api/notifications/templates[/{type}]`: the template catalog, read
//! only.

use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};

use super::{ApiError, AppState};
use crate::templates::TemplateDef;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/notifications/templates", get(list))
        .route("/api/notifications/templates/{name}", get(one))
}

async fn list(State(state): State<AppState>) -> Json<serde_json::Value> {
    let templates: Vec<&TemplateDef> = state.catalog.all().collect();
    Json(serde_json::json!({ "items": templates }))
}

async fn one(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<TemplateDef>, ApiError> {
    state
        .catalog
        .get(&name)
        .cloned()
        .map(Json)
        .ok_or_else(|| ApiError::not_found("template", &name))
}
