//! `/api/settings/provider`: the provider new messages go through unless
//! the caller names one, read and changed by an admin while chirp runs
//! (stored and audited; it outlives `CHIRP_PROVIDER` and restarts).

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::Admin;
use super::extract::{Fields, JsonObject};
use super::{ApiError, AppState};
use crate::default_provider::{SwitchRefused, check_switch};
use crate::message::{now_millis, rfc3339};

/// The name the default provider is stored under.
pub const PROVIDER_SETTING: &str = "default_provider";

/// How many past changes an answer lists.
const HISTORY: usize = 20;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_provider, set_provider))
}

/// The default provider and its last changes.
#[derive(Serialize, ToSchema)]
struct ProviderSetting {
    /// The provider new messages go through unless the caller names one.
    provider: String,
    /// Whether it is loaded now.
    loaded: bool,
    /// The last changes, newest first.
    changes: Vec<ProviderChange>,
}

/// One change of the default provider.
#[derive(Serialize, ToSchema)]
struct ProviderChange {
    /// `null`: the configured `CHIRP_PROVIDER` was in force.
    from: Option<String>,
    to: String,
    #[schema(format = DateTime)]
    at: String,
    /// The admin's token subject.
    by: String,
}

/// A change asked for.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // read field by field by the handler; this is its schema
struct ProviderEdit {
    /// A loaded provider plugin.
    #[schema(min_length = 1, max_length = 64)]
    provider: String,
}

#[utoipa::path(
    get,
    path = "/api/settings/provider",
    tag = "plugins",
    description = "The provider new messages go through unless the caller names one, and its last changes (admin).",
    responses((status = 200, description = "Success", body = ProviderSetting)),
)]
async fn get_provider(
    _admin: Admin,
    State(state): State<AppState>,
) -> Result<Json<ProviderSetting>, ApiError> {
    view(&state).await.map(Json)
}

#[utoipa::path(
    put,
    path = "/api/settings/provider",
    tag = "plugins",
    description = "Moves new messages to another provider while chirp runs (admin): stored, audited, \
        in force at once and after restarts. Messages already accepted finish on the provider they \
        were accepted for. Refused if the provider is not loaded, or if an enabled template names \
        other providers' approved templates and not this one's.",
    request_body(content = ProviderEdit),
    responses((status = 200, description = "In force", body = ProviderSetting)),
)]
async fn set_provider(
    Admin(admin): Admin,
    State(state): State<AppState>,
    JsonObject(body): JsonObject,
) -> Result<Json<ProviderSetting>, ApiError> {
    let mut fields = Fields::new(body);
    let provider = fields.required_string("provider")?;
    fields.finish()?;
    let loaded = state.plugins.provider(&provider).is_some();
    check_switch(&state.templates.current(), &provider, loaded).map_err(|e| {
        let code = match e {
            SwitchRefused::NotLoaded(_) => "unknown_provider",
            SwitchRefused::NotApproved { .. } => "not_approved_for_provider",
        };
        ApiError::invalid("provider", code, e.to_string())
    })?;
    state
        .store
        .set_setting(PROVIDER_SETTING, &provider, &admin.subject, now_millis())
        .await?;
    let before = state.provider.get();
    state.provider.set(provider.clone());
    tracing::info!(by = %admin.subject, from = %before, to = %provider, "the default provider changed");
    view(&state).await.map(Json)
}

async fn view(state: &AppState) -> Result<ProviderSetting, ApiError> {
    let provider = state.provider.get();
    Ok(ProviderSetting {
        loaded: state.plugins.provider(&provider).is_some(),
        changes: state
            .store
            .setting_changes(PROVIDER_SETTING, HISTORY)
            .await?
            .into_iter()
            .map(|c| ProviderChange {
                from: c.from,
                to: c.to,
                at: rfc3339(c.at),
                by: c.by,
            })
            .collect(),
        provider,
    })
}
