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
mod openapi;
mod plugins;
mod preferences;
mod templates;

pub use auth::{Auth, SharedAuth};
pub use error::ApiError;
pub use notifications::{Content, SendRequest};

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use tower_http::trace::TraceLayer;

use crate::plugins::Plugins;
use crate::queue::Queue;
use crate::recipients::Recipients;
use crate::store::Store;
use crate::templates::Templates;

/// What every handler can reach. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub queue: Queue,
    /// Reads recipients' preferences, many requests to a query.
    pub recipients: Recipients,
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
    /// Renders `/metrics`; `None` if this process has no recorder.
    pub metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
}

/// `GET /metrics`: Prometheus text format. Public, like health.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    description = "Prometheus text format. Public.",
    responses((status = 200, description = "Prometheus exposition", content_type = "text/plain", body = String)),
)]
async fn metrics(
    axum::extract::State(state): axum::extract::State<AppState>,
) -> impl axum::response::IntoResponse {
    if let Ok(due) = state.store.count_due(i64::MAX).await {
        crate::telemetry::queue_depth(due.queued as u64);
    }
    let body = state
        .metrics
        .as_ref()
        .map(|h| h.render())
        .unwrap_or_default();
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        body,
    )
}

/// Answers `429` with `Retry-After` to a caller (by token) over its rate;
/// the public routes (health, readiness, metrics, the API document) are
/// never limited.
async fn limit(
    limiter: Option<Arc<governor::DefaultKeyedRateLimiter<String>>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let path = request.uri().path();
    let exempt = openapi::PUBLIC_PATHS.contains(&path);
    if let (Some(limiter), false) = (limiter, exempt) {
        let key = request
            .headers()
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("anonymous")
            .to_string();
        if let Err(not_until) = limiter.check_key(&key) {
            let wait = not_until.wait_time_from(governor::clock::Clock::now(
                &governor::clock::DefaultClock::default(),
            ));
            let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            let mut response = ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                format!("too many requests for this token; retry in {seconds} s"),
            )
            .into_response();
            if let Ok(value) = seconds.max(1).to_string().parse() {
                response
                    .headers_mut()
                    .insert(axum::http::header::RETRY_AFTER, value);
            }
            return response;
        }
    }
    next.run(request).await
}

/// Records every request's latency under its route template (not its
/// path, so ids do not explode the label space).
async fn measure(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let method = request.method().to_string();
    let started = std::time::Instant::now();
    let response = next.run(request).await;
    crate::telemetry::http_request(
        &route,
        &method,
        response.status().as_u16(),
        started.elapsed(),
    );
    response
}

/// The span of one request: method and route template, never the path
/// itself (paths carry phone numbers, e.g. `/api/preferences/{phone}`).
fn http_span(request: &axum::http::Request<axum::body::Body>) -> tracing::Span {
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map(|p| p.as_str())
        .unwrap_or("unmatched");
    tracing::debug_span!("request", method = %request.method(), route = %route)
}

/// The whole API, ready to serve (tests can call it without a socket).
pub fn router(state: AppState, max_body_bytes: usize, rate_limit: Option<u32>) -> Router {
    let limiter = rate_limit.and_then(std::num::NonZeroU32::new).map(|rate| {
        Arc::new(governor::RateLimiter::keyed(governor::Quota::per_second(
            rate,
        )))
    });
    let (routes, document) = utoipa_axum::router::OpenApiRouter::with_openapi(openapi::base())
        .merge(notifications::router())
        .merge(templates::router())
        .merge(plugins::router())
        .merge(preferences::router())
        .merge(events::router())
        .routes(utoipa_axum::routes!(metrics))
        .split_for_parts();
    routes
        .merge(openapi::router(openapi::finish(document)))
        .fallback(|| async {
            ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint")
        })
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .layer(axum::middleware::from_fn(move |request, next| {
            limit(limiter.clone(), request, next)
        }))
        .layer(axum::middleware::from_fn(measure))
        .layer(TraceLayer::new_for_http().make_span_with(http_span))
        .with_state(state)
}
