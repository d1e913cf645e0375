//! The REST API (axum): one router per resource, merged here.
//!
//! **Invariant:** only this module knows HTTP and JSON. Handlers validate
//! input into domain types, call the queue, store, catalog or plugins, and
//! shape the answer; they hold no business rules of their own.

mod auth;
mod error;
mod events;
mod extract;
mod notifications;
mod plugins;
mod preferences;
mod templates;

pub use auth::{Auth, SharedAuth};
pub use error::ApiError;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use tower_http::trace::TraceLayer;

use crate::plugins::Plugins;
use crate::queue::Queue;
use crate::store::Store;
use crate::templates::Templates;

/// What every handler can reach. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub queue: Queue,
    pub plugins: Arc<Plugins>,
    pub templates: Arc<Templates>,
    /// The provider new messages go through.
    pub provider: String,
    /// The rules plugin events go through.
    pub rules: String,
    /// Where the plugin files are.
    pub plugins_dir: std::path::PathBuf,
    /// How callers are authenticated.
    pub auth: SharedAuth,
}

/// The whole API, ready to serve (tests can call it without a socket).
pub fn router(state: AppState, max_body_bytes: usize) -> Router {
    Router::new()
        .merge(notifications::router())
        .merge(templates::router())
        .merge(plugins::router())
        .merge(preferences::router())
        .merge(events::router())
        .fallback(|| async {
            ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint")
        })
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}
