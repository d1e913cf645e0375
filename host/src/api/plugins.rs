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
use crate::plugins::engine::{Allocator, Origin};
use crate::plugins::{Meta, PluginFile, World};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(reload))
}

/// The plugins directory as chirp sees it.
#[derive(Serialize, ToSchema)]
pub(super) struct PluginList {
    items: Vec<PluginStatus>,
    /// How plugin instances get their memory.
    allocator: Allocator,
    /// The circuit breaker of every provider that has been called.
    breakers: Vec<BreakerView>,
}

/// One provider's circuit breaker.
#[derive(Serialize, ToSchema)]
#[schema(as = Breaker)]
pub(super) struct BreakerView {
    provider: String,
    /// `closed`, `open` (no calls until `until`) or `half_open` (one probe
    /// is out).
    #[schema(pattern = "^(closed|open|half_open)$")]
    state: &'static str,
    /// Retryable failures in a row, while closed.
    failures: u32,
    /// While open: when a probe may go.
    #[schema(format = DateTime)]
    #[serde(skip_serializing_if = "Option::is_none")]
    open_until: Option<String>,
    /// While half-open: when the probe went.
    #[schema(format = DateTime)]
    #[serde(skip_serializing_if = "Option::is_none")]
    probing_since: Option<String>,
}

/// Every breaker, for the API.
pub(super) fn breakers(state: &AppState) -> Vec<BreakerView> {
    use crate::queue::breaker::BreakerState;
    state
        .breakers
        .snapshot()
        .into_iter()
        .map(|(provider, breaker)| {
            let mut view = BreakerView {
                provider,
                state: "closed",
                failures: 0,
                open_until: None,
                probing_since: None,
            };
            match breaker {
                BreakerState::Closed { failures } => view.failures = failures,
                BreakerState::Open { until } => {
                    view.state = "open";
                    view.open_until = Some(crate::message::rfc3339(until));
                }
                BreakerState::HalfOpen { since } => {
                    view.state = "half_open";
                    view.probing_since = Some(crate::message::rfc3339(since));
                }
            }
            view
        })
        .collect()
}

/// The directory after a rescan.
#[derive(Serialize, ToSchema)]
pub(super) struct Reloaded {
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
pub(super) async fn list(_admin: Admin, State(state): State<AppState>) -> Json<PluginList> {
    Json(PluginList {
        items: rows(&state),
        allocator: state.plugins.allocator(),
        breakers: breakers(&state),
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
pub(super) async fn reload(
    _admin: Admin,
    State(state): State<AppState>,
) -> Result<Json<Reloaded>, ApiError> {
    let refused = state
        .plugins
        .sync_dir(&state.plugins_dir)
        .await
        .map_err(ApiError::internal)?;
    Ok(Json(Reloaded {
        items: rows(&state),
        refused: refused.iter().map(|e| e.to_string()).collect(),
    }))
}

/// Every plugin file, as rows.
pub(super) fn rows(state: &AppState) -> Vec<PluginStatus> {
    state
        .plugins
        .files()
        .into_iter()
        .map(PluginStatus::from)
        .collect()
}

/// One row of `GET /api/plugins`.
#[derive(Serialize, ToSchema)]
pub(super) struct PluginStatus {
    file: String,
    /// `active`: the file's current content serves. `rejected`: it was
    /// refused (`error` says why); `serving`, if present, is the earlier
    /// version that keeps serving.
    state: FileState,
    name: Option<String>,
    world: Option<World>,
    version: Option<String>,
    sha256: Option<String>,
    #[schema(format = DateTime)]
    loaded_at: Option<String>,
    origin: Option<Origin>,
    error: Option<String>,
    serving: Option<Serving>,
}

/// What became of a plugin file's current content.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
enum FileState {
    /// It serves.
    Active,
    /// It was refused.
    Rejected,
}

/// The version of a plugin that serves.
#[derive(Serialize, ToSchema)]
#[schema(as = Meta)]
struct Serving {
    name: String,
    world: World,
    version: String,
    sha256: String,
    file: String,
    #[schema(format = DateTime)]
    loaded_at: String,
    /// Whether the machine code came from the cache.
    origin: Origin,
    hosts: Vec<String>,
}

fn rfc3339(at: std::time::SystemTime) -> String {
    humantime::format_rfc3339_millis(at).to_string()
}

impl From<Meta> for Serving {
    fn from(m: Meta) -> Serving {
        Serving {
            name: m.name,
            world: m.world,
            version: m.version,
            sha256: m.sha256,
            file: m.file.display().to_string(),
            loaded_at: rfc3339(m.loaded_at),
            origin: m.origin,
            hosts: m.hosts,
        }
    }
}

impl From<PluginFile> for PluginStatus {
    fn from(f: PluginFile) -> PluginStatus {
        let file = f.file.display().to_string();
        match (f.rejected, f.active) {
            (None, Some(m)) => PluginStatus {
                file,
                state: FileState::Active,
                name: Some(m.name),
                world: Some(m.world),
                version: Some(m.version),
                sha256: Some(m.sha256),
                loaded_at: Some(rfc3339(m.loaded_at)),
                origin: Some(m.origin),
                error: None,
                serving: None,
            },
            (rejected, serving) => PluginStatus {
                file,
                state: FileState::Rejected,
                name: serving.as_ref().map(|m| m.name.clone()),
                world: serving.as_ref().map(|m| m.world),
                version: None,
                sha256: rejected.as_ref().map(|r| r.sha256.clone()),
                loaded_at: None,
                origin: None,
                error: rejected.map(|r| r.error),
                serving: serving.map(Serving::from),
            },
        }
    }
}
