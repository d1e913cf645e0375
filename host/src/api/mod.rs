//! The REST API (axum): one router per resource, merged here.
//!
//! **Invariant:** only this module knows HTTP and JSON. Handlers validate
//! input into domain types, call the queue, store, catalog or plugins, and
//! shape the answer; they hold no business rules of their own.

mod auth;
mod error;
mod events;
mod extract;
mod history;
mod notifications;
mod openapi;
mod operations;
mod plugins;
mod preferences;
mod statistics;
mod templates;

pub use auth::{Auth, SharedAuth, TokenRules};
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

/// The per-caller rate limit: a token bucket per verified subject, and one
/// shared by every request without a valid token.
struct RateLimit {
    limiter: governor::DefaultKeyedRateLimiter<String>,
    /// Requests since the table was last pruned.
    since_prune: std::sync::atomic::AtomicU32,
}

/// How many requests pass between two prunings of the limiter's table. A
/// bucket is full again at most a second after its caller's last request
/// (the burst is one second's rate), so after a pruning the table holds
/// the callers of the last second; between prunings it gains at most this
/// many keys.
const PRUNE_EVERY: u32 = 4096;

impl RateLimit {
    fn new(per_second: std::num::NonZeroU32) -> RateLimit {
        RateLimit {
            limiter: governor::RateLimiter::keyed(governor::Quota::per_second(per_second)),
            since_prune: std::sync::atomic::AtomicU32::new(0),
        }
    }

    /// Checks `key`; now and then drops the buckets that are full again
    /// (those callers are as if never seen), so the table holds only
    /// callers seen lately.
    fn check(&self, key: &str) -> Result<(), std::time::Duration> {
        use std::sync::atomic::Ordering;
        if self.since_prune.fetch_add(1, Ordering::Relaxed) >= PRUNE_EVERY {
            self.since_prune.store(0, Ordering::Relaxed);
            self.limiter.retain_recent();
            self.limiter.shrink_to_fit();
        }
        self.limiter
            .check_key(&key.to_string())
            .map_err(|not_until| {
                not_until.wait_time_from(governor::clock::Clock::now(
                    &governor::clock::DefaultClock::default(),
                ))
            })
    }
}

/// Answers `429` with `Retry-After` to a caller over its rate, counted by
/// the token's verified subject (so no spelling of a header buys a fresh
/// bucket, and garbage tokens share one); the public routes (health,
/// readiness, metrics, the API document) are never limited.
async fn limit(
    limiter: Option<Arc<RateLimit>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let path = request.uri().path();
    let exempt = openapi::PUBLIC_PATHS.contains(&path);
    if let (Some(limiter), false) = (limiter, exempt) {
        let key = match request.extensions().get::<auth::Verified>() {
            Some(auth::Verified(Ok(caller))) => format!("sub:{}", caller.subject),
            _ => "unauthenticated".to_string(),
        };
        if let Err(wait) = limiter.check(&key) {
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
    let method = crate::telemetry::method_label(request.method().as_str());
    let started = std::time::Instant::now();
    let response = next.run(request).await;
    crate::telemetry::http_request(
        &route,
        method,
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
    tracing::debug_span!(
        "request",
        method = crate::telemetry::method_label(request.method().as_str()),
        route = %route
    )
}

/// Turns a handler's panic into a `500` in chirp's error shape, logged with
/// what the panic said; the connection stays open for the client's next
/// request. (Without it, hyper drops the connection mid-request.)
fn catch_panics<S: Clone + Send + Sync + 'static>(router: Router<S>) -> Router<S> {
    router.layer(tower_http::catch_panic::CatchPanicLayer::custom(
        |panic: Box<dyn std::any::Any + Send>| {
            use axum::response::IntoResponse;
            let said = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic without a message".into());
            ApiError::internal(format!("a request handler panicked: {said}")).into_response()
        },
    ))
}

/// The whole API, ready to serve (tests can call it without a socket).
pub fn router(state: AppState, max_body_bytes: usize, rate_limit: Option<u32>) -> Router {
    let limiter = rate_limit
        .and_then(std::num::NonZeroU32::new)
        .map(|rate| Arc::new(RateLimit::new(rate)));
    let auth = state.auth.clone();
    let (routes, document) = utoipa_axum::router::OpenApiRouter::with_openapi(openapi::base())
        .merge(notifications::router())
        .merge(history::router())
        .merge(statistics::router())
        .merge(operations::router())
        .merge(templates::router())
        .merge(plugins::router())
        .merge(preferences::router())
        .merge(events::router())
        .split_for_parts();
    let routes = routes
        .merge(openapi::router(openapi::finish(document)))
        .fallback(|| async {
            ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint")
        });
    catch_panics(routes)
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .layer(axum::middleware::from_fn(move |request, next| {
            limit(limiter.clone(), request, next)
        }))
        .layer(axum::middleware::from_fn(move |request, next| {
            auth::authenticate(auth.clone(), request, next)
        }))
        .layer(axum::middleware::from_fn(measure))
        .layer(TraceLayer::new_for_http().make_span_with(http_span))
        .with_state(state)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower::ServiceExt as _;

    /// A handler that panics answers `500` in the error shape. Without
    /// the layer (checked once) the same request ends with hyper dropping
    /// the connection, and here `oneshot` itself panics.
    #[tokio::test]
    async fn a_panicking_handler_answers_500_in_the_error_shape() {
        let app: Router = catch_panics(Router::new().route(
            "/boom",
            axum::routing::get(|| async {
                let times: Vec<u64> = Vec::new();
                #[allow(clippy::indexing_slicing)]
                let first = times[std::hint::black_box(0)];
                first.to_string()
            }),
        ));
        let response = app
            .oneshot(
                axum::http::Request::get("/boom")
                    .body(axum::body::Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = axum::body::to_bytes(response.into_body(), 4096)
            .await
            .unwrap();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["code"], "internal");
        assert!(
            !body["message"].as_str().unwrap().contains("9999"),
            "{body}"
        );
    }

    /// Callers seen once are pruned: 50,000 subjects, one request each,
    /// leave the table with at most what a pruning leaves plus one
    /// interval's worth. (Without pruning, checked once, it held all.)
    #[test]
    fn the_rate_limit_table_forgets_callers_it_has_not_seen_lately() {
        let limit = RateLimit::new(std::num::NonZeroU32::new(1000).unwrap());
        for n in 0..50_000 {
            let _ = limit.check(&format!("sub:{n}"));
        }
        assert!(
            limit.limiter.len() <= PRUNE_EVERY as usize + 1_000,
            "{} keys",
            limit.limiter.len()
        );
    }
}
