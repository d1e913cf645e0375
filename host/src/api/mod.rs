//! The REST API (axum): one router per resource, merged here.
//!
//! **Invariant:** only this module knows HTTP and JSON. Handlers validate
//! input into domain types, call the queue, store, catalog or plugins, and
//! shape the answer; they hold no business rules of their own.

mod auth;
mod backup;
mod batch;
mod callbacks;
mod cancel;
mod console;
mod constraints;
mod customers;
mod error;
mod events;
mod extract;
mod history;
mod layers;
mod names;
mod notifications;
mod openapi;
mod operations;
mod plugins;
mod preferences;
mod rate_limit;
mod settings;
mod statistics;
mod template_views;
mod templates;
mod token;
mod views;
mod webhooks;

pub use auth::{Auth, Role, SharedAuth, TokenRules};
pub use console::Sessions as ConsoleSessions;
pub use error::ApiError;
pub use notifications::{Content, SendRequest};
pub use settings::PROVIDER_SETTING;
pub use token::{MintError, TokenRequest, mint as mint_token};
pub use webhooks::WebhookDesk;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use tower_http::trace::TraceLayer;

use rate_limit::RateLimit;

use crate::config::ApiConfig;
use crate::plugins::Plugins;
use crate::queue::Queue;
use crate::recipients::Recipients;
use crate::store::Store;
use crate::templates::Templates;

/// What every handler can reach. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    /// The store, for reads and edits outside the queue.
    pub store: Store,
    /// Where accepted messages are committed.
    pub queue: Queue,
    /// Reads recipients' preferences, many requests to a query.
    pub recipients: Recipients,
    /// The loaded plugins.
    pub plugins: Arc<Plugins>,
    /// The templates in force.
    pub templates: Arc<Templates>,
    /// The provider new messages go through unless the caller names one.
    pub provider: crate::default_provider::DefaultProvider,
    /// The rules plugin events go through.
    pub rules: String,
    /// Where the plugin files are.
    pub plugins_dir: std::path::PathBuf,
    /// How callers are authenticated.
    pub auth: SharedAuth,
    /// The operator's consent policy.
    pub consent: crate::preferences::Consent,
    /// The key of the hashes that name erased phones.
    pub erasure_key: Arc<crate::customers::ErasureKey>,
    /// The webhook route's bounds and the inbox it feeds.
    pub webhooks: WebhookDesk,
    /// The status callback endpoints in force.
    pub callbacks: Arc<crate::callbacks::registry::Registry>,
    /// Every provider's circuit breaker, as the scheduler keeps them.
    pub breakers: Arc<crate::queue::breaker::Breakers>,
    /// The operator console's signed-in sessions.
    pub console: Arc<console::Sessions>,
    /// Renders `/metrics`; `None` if this process has no recorder.
    pub metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
}

/// The whole API, ready to serve (tests can call it without a socket).
pub fn router(state: AppState, config: &ApiConfig) -> Router {
    let limiter = config
        .rate_limit
        .and_then(std::num::NonZeroU32::new)
        .map(|rate| Arc::new(RateLimit::new(rate)));
    let deadline = config.request_timeout;
    let auth = state.auth.clone();
    let (routes, document) = utoipa_axum::router::OpenApiRouter::with_openapi(openapi::base())
        .merge(notifications::router())
        .merge(cancel::router())
        .merge(batch::router(config.max_batch_body_bytes))
        .merge(callbacks::router())
        .merge(history::router())
        .merge(statistics::router())
        .merge(operations::router())
        .merge(templates::router())
        .merge(plugins::router())
        .merge(preferences::router())
        .merge(events::router())
        .merge(customers::router())
        .merge(backup::router())
        .merge(webhooks::router())
        .merge(settings::router())
        .split_for_parts();
    let routes = routes
        .merge(openapi::router(openapi::finish(document)))
        .merge(console::router())
        .fallback(|| async {
            ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint")
        });
    layers::catch_panics(routes)
        .layer(axum::middleware::from_fn(move |request, next| {
            layers::deadline(deadline, request, next)
        }))
        .layer(DefaultBodyLimit::max(config.max_body_bytes))
        .layer(axum::middleware::from_fn(move |request, next| {
            rate_limit::limit(limiter.clone(), request, next)
        }))
        .layer(axum::middleware::from_fn(move |request, next| {
            auth::authenticate(auth.clone(), request, next)
        }))
        .layer(axum::middleware::from_fn(layers::measure))
        .layer(TraceLayer::new_for_http().make_span_with(layers::http_span))
        .with_state(state)
}
