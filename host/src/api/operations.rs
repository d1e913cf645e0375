//! What an operator's tooling reads without a token: liveness (health),
//! readiness, and the Prometheus metrics. Public, so they show nothing a
//! stranger could use: plugin names and versions, never their files,
//! hashes or hosts.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(health))
        .routes(routes!(ready))
        .routes(routes!(metrics))
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

/// `GET /ready`: ready to take traffic: the store answers and at least one
/// provider is active. `503` otherwise, so a load balancer holds traffic.
#[utoipa::path(
    get,
    path = "/ready",
    tag = "operations",
    description = "Readiness: the store answers and the provider is loaded. Public.",
    responses(
        (status = 200, description = "Success", body = Readiness),
        (status = 503, description = "Not ready", body = Readiness),
    ),
)]
async fn ready(State(state): State<AppState>) -> impl IntoResponse {
    let store = state.store.ping().await.is_ok();
    let provider = state.plugins.provider(&state.provider.get()).is_some();
    let ready = store && provider;
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(Readiness {
            ready,
            store,
            provider,
        }),
    )
}

/// Whether chirp can take traffic.
#[derive(Serialize, ToSchema)]
struct Readiness {
    ready: bool,
    store: bool,
    provider: bool,
}

/// Liveness and what is loaded.
#[derive(Serialize, ToSchema)]
struct Health {
    /// `ok`, `degraded` (the default provider is not loaded, or its
    /// circuit breaker is open) or `unavailable` (no store).
    status: &'static str,
    /// `ok`, `unreachable`, or `needs_restart` (a write of the store's log
    /// failed: chirp writes nothing more until it is restarted).
    store: &'static str,
    /// The provider new messages go through.
    provider: String,
    provider_loaded: bool,
    /// Each loaded plugin's name, world and version. Files, hashes and
    /// hosts are for admins (`GET /api/plugins`), not for this public page.
    plugins: Vec<LoadedPlugin>,
    /// Providers whose circuit breaker is open or probing (their messages
    /// wait, or move to a standby route).
    breakers_open: Vec<String>,
}

/// A loaded plugin as the public health page shows it.
#[derive(Serialize, ToSchema)]
struct LoadedPlugin {
    name: String,
    world: crate::plugins::World,
    version: String,
}

/// `GET /api/notifications/health`: the store answers and which providers
/// are loaded.
#[utoipa::path(
    get,
    path = "/api/notifications/health",
    tag = "operations",
    description = "Liveness. Public.",
    responses(
        (status = 200, description = "Success", body = Health),
        (status = 503, description = "The store does not answer, or needs chirp restarted", body = Health),
    ),
)]
async fn health(State(state): State<AppState>) -> impl IntoResponse {
    let store_ok = state.store.ping().await.is_ok();
    let provider_loaded = state.plugins.provider(&state.provider.get()).is_some();
    let status = if store_ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let breakers_open: Vec<String> = state
        .breakers
        .snapshot()
        .into_iter()
        .filter(|(_, b)| !matches!(b, crate::queue::breaker::BreakerState::Closed { .. }))
        .map(|(provider, _)| provider)
        .collect();
    let provider = state.provider.get();
    let default_open = breakers_open.contains(&provider);
    let health = Health {
        status: match (store_ok, provider_loaded && !default_open) {
            (true, true) => "ok",
            (true, false) => "degraded",
            (false, _) => "unavailable",
        },
        store: match (store_ok, state.store.needs_restart()) {
            (true, _) => "ok",
            (false, true) => "needs_restart",
            (false, false) => "unreachable",
        },
        provider,
        provider_loaded,
        breakers_open,
        plugins: state
            .plugins
            .active()
            .into_iter()
            .map(|m| LoadedPlugin {
                name: m.name,
                world: m.world,
                version: m.version,
            })
            .collect(),
    };
    (status, Json(health))
}
