//! `/api/callbacks/*` (admin): the endpoints chirp posts status callbacks
//! to (registered, listed, removed, their secret rotated) and the log of
//! every callback (each post's status and latency), with replay.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::Admin;
use super::extract::{Fields, JsonObject, QueryParams};
use super::{ApiError, AppState};
use crate::callbacks::registry::RegistryError;
use crate::callbacks::{Endpoint, Scope};
use crate::message::{now_millis, rfc3339};
use crate::store::{CallbackAttempt, CallbackFilter, StoredCallback};

const DEFAULT_PAGE: usize = 50;
const MAX_PAGE: usize = 500;
const MAX_DESCRIPTION: usize = 200;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_endpoints, register))
        .routes(routes!(remove))
        .routes(routes!(rotate))
        .routes(routes!(list_callbacks))
        .routes(routes!(one_callback))
        .routes(routes!(replay))
}

impl From<RegistryError> for ApiError {
    fn from(e: RegistryError) -> ApiError {
        match e {
            RegistryError::Url(why) => ApiError::invalid("url", "url_not_allowed", why),
            RegistryError::Secret(e) => {
                ApiError::invalid("secret", "invalid_secret", e.to_string())
            }
            RegistryError::TooMany => {
                ApiError::new(StatusCode::CONFLICT, "too_many_endpoints", e.to_string())
            }
            RegistryError::Random(why) => ApiError::internal(why),
            RegistryError::Store(e) => e.into(),
        }
    }
}

/// An endpoint as admins see it. Its secret is shown once, when it is
/// made (registration, rotation).
#[derive(Serialize, ToSchema)]
struct EndpointView {
    id: String,
    url: String,
    /// `all`: every message accepted while it is registered; `named`: only
    /// messages that name it in `callback_endpoint`.
    scope: &'static str,
    description: Option<String>,
    #[schema(format = DateTime)]
    created_at: String,
    created_by: String,
    /// Secrets signing now (more than one during a rotation's overlap).
    secrets_in_force: usize,
    /// The new secret (`whsec_...`): only in the answer that made it.
    #[serde(skip_serializing_if = "Option::is_none")]
    secret: Option<String>,
}

impl EndpointView {
    fn of(e: &Endpoint, show_secret: bool) -> EndpointView {
        let now = now_millis();
        EndpointView {
            id: e.id.clone(),
            url: e.url.clone(),
            scope: e.scope.as_str(),
            description: e.description.clone(),
            created_at: rfc3339(e.created_at),
            created_by: e.created_by.clone(),
            secrets_in_force: e
                .secrets
                .iter()
                .filter(|s| s.until.is_none_or(|until| until > now))
                .count(),
            secret: e
                .secrets
                .first()
                .filter(|_| show_secret)
                .map(|s| s.value.clone()),
        }
    }
}

/// A registration.
#[derive(ToSchema)]
#[allow(dead_code)] // read field by field by the handler; this is its schema
struct EndpointRequest {
    /// `https://` and one of the operator's `CHIRP_CALLBACK_HOSTS`.
    #[schema(min_length = 1, max_length = 2048)]
    url: String,
    /// `all` (the default) or `named`.
    scope: Option<String>,
    #[schema(min_length = 1, max_length = 200)]
    description: Option<String>,
    /// A Standard Webhooks secret (`whsec_` and 24 to 64 bytes in base64);
    /// chirp makes one if absent.
    secret: Option<String>,
}

#[utoipa::path(
    post,
    path = "/api/callbacks/endpoints",
    tag = "callbacks",
    description = "Registers a callback endpoint (admin). The answer holds its signing secret; \
        it is not shown again.",
    request_body(content = EndpointRequest, example = json!({
        "url": "https://backend.earlybird.example/chirp/callbacks",
        "scope": "all",
        "description": "EarlyBird backend"
    })),
    responses(
        (status = 201, description = "Registered", body = EndpointView),
        (status = 409, description = "As many endpoints as allowed are registered", body = super::error::ErrorBody),
        (status = 422, description = "A URL the operator does not allow, or a bad secret", body = super::error::ErrorBody),
    ),
)]
async fn register(
    Admin(caller): Admin,
    State(state): State<AppState>,
    JsonObject(body): JsonObject,
) -> Result<(StatusCode, Json<EndpointView>), ApiError> {
    let mut fields = Fields::new(body);
    let url = fields.required_string("url")?;
    let scope = fields.string("scope")?;
    let description = fields.string("description")?;
    let secret = fields.string("secret")?;
    fields.finish()?;
    let scope = match scope.as_deref() {
        None => Scope::All,
        Some(name) => Scope::parse(name)
            .ok_or_else(|| ApiError::invalid("scope", "invalid_scope", "scope is all or named"))?,
    };
    if let Some(d) = &description
        && (d.is_empty() || d.chars().count() > MAX_DESCRIPTION)
    {
        return Err(ApiError::invalid(
            "description",
            "invalid_length",
            format!("description must be 1 to {MAX_DESCRIPTION} characters"),
        ));
    }
    let endpoint = state
        .callbacks
        .register(
            &url,
            scope,
            description,
            secret,
            &caller.subject,
            now_millis(),
        )
        .await?;
    tracing::info!(id = %endpoint.id, url = %endpoint.url, by = %caller.subject, "callback endpoint registered");
    Ok((StatusCode::CREATED, Json(EndpointView::of(&endpoint, true))))
}

#[utoipa::path(
    get,
    path = "/api/callbacks/endpoints",
    tag = "callbacks",
    description = "The registered callback endpoints, without their secrets (admin).",
    responses((status = 200, description = "Success", body = Vec<EndpointView>)),
)]
async fn list_endpoints(_admin: Admin, State(state): State<AppState>) -> Json<Vec<EndpointView>> {
    Json(
        state
            .callbacks
            .list()
            .iter()
            .map(|e| EndpointView::of(e, false))
            .collect(),
    )
}

#[utoipa::path(
    delete,
    path = "/api/callbacks/endpoints/{id}",
    tag = "callbacks",
    description = "Removes a callback endpoint (admin); its callbacks still waiting are dropped.",
    params(("id" = String, Path, description = "The endpoint id")),
    responses(
        (status = 204, description = "Removed"),
        (status = 404, description = "No such endpoint", body = super::error::ErrorBody),
    ),
)]
async fn remove(
    Admin(caller): Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    if !state.callbacks.remove(&id).await? {
        return Err(ApiError::not_found("callback endpoint", &id));
    }
    tracing::info!(%id, by = %caller.subject, "callback endpoint removed");
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(
    post,
    path = "/api/callbacks/endpoints/{id}/rotate-secret",
    tag = "callbacks",
    description = "Gives the endpoint a new secret (admin), shown once in the answer. The old one \
        keeps signing beside it for CHIRP_CALLBACK_SECRET_OVERLAP (a day by default), so the \
        receiver can switch without losing a callback.",
    params(("id" = String, Path, description = "The endpoint id")),
    responses(
        (status = 200, description = "The endpoint with its new secret", body = EndpointView),
        (status = 404, description = "No such endpoint", body = super::error::ErrorBody),
    ),
)]
async fn rotate(
    Admin(caller): Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<EndpointView>, ApiError> {
    let endpoint = state
        .callbacks
        .rotate(&id, now_millis())
        .await?
        .ok_or_else(|| ApiError::not_found("callback endpoint", &id))?;
    tracing::info!(%id, by = %caller.subject, "callback endpoint's secret rotated");
    Ok(Json(EndpointView::of(&endpoint, true)))
}

/// A callback and its posts.
#[derive(Serialize, ToSchema)]
struct CallbackView {
    /// `{message}.{endpoint}.{at}.{state}`.
    id: String,
    /// The `webhook-id` it is posted under (the same on every retry).
    webhook_id: String,
    message_id: String,
    endpoint: String,
    state: &'static str,
    #[schema(format = DateTime)]
    at: String,
    reason: Option<String>,
    error_code: Option<String>,
    /// `pending`, `delivered`, `failed` (given up) or `dropped` (its
    /// endpoint was removed or is no longer allowed).
    outcome: String,
    attempts: u32,
    /// When it is posted next, while pending.
    #[schema(format = DateTime)]
    next_at: Option<String>,
    #[schema(format = DateTime)]
    delivered_at: Option<String>,
    /// Each post, oldest first (in the answer for one callback).
    #[serde(skip_serializing_if = "Option::is_none")]
    posts: Option<Vec<PostView>>,
}

/// One post of a callback.
#[derive(Serialize, ToSchema)]
struct PostView {
    number: u32,
    #[schema(format = DateTime)]
    at: String,
    /// The receiver's HTTP status, if it answered.
    status: Option<u16>,
    latency_ms: u64,
    error: Option<String>,
}

impl CallbackView {
    fn of(c: StoredCallback, posts: Option<Vec<CallbackAttempt>>) -> CallbackView {
        CallbackView {
            id: c.due.id(),
            webhook_id: c.due.change.webhook_id(),
            message_id: c.due.change.message_id,
            endpoint: c.due.endpoint,
            state: c.due.change.state.as_str(),
            at: rfc3339(c.due.change.at),
            reason: c.due.change.reason,
            error_code: c.due.change.error_code,
            outcome: c.outcome,
            attempts: c.due.attempts,
            next_at: c.due_at.map(rfc3339),
            delivered_at: c.delivered_at.map(rfc3339),
            posts: posts.map(|posts| {
                posts
                    .into_iter()
                    .map(|p| PostView {
                        number: p.number,
                        at: rfc3339(p.at),
                        status: p.status,
                        latency_ms: p.latency_ms,
                        error: p.error,
                    })
                    .collect()
            }),
        }
    }
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct CallbackParams {
    /// Only this message's callbacks.
    message_id: Option<String>,
    /// Only those to this endpoint.
    endpoint: Option<String>,
    /// Only callbacks in this outcome.
    #[param(value_type = Option<CallbackOutcome>)]
    outcome: Option<String>,
    /// `next_cursor` of the page before.
    cursor: Option<String>,
    /// Page size, 1 to 500 (default 50).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 500)]
    limit: Option<String>,
}

/// What became of a callback: `pending` (to be posted, again),
/// `delivered`, `failed` (given up) or `dropped` (its endpoint was removed
/// or is no longer allowed).
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)] // the query's schema; the handler reads the text
enum CallbackOutcome {
    Pending,
    Delivered,
    Failed,
    Dropped,
}

/// A page of callbacks.
#[derive(Serialize, ToSchema)]
pub(super) struct CallbackPage {
    callbacks: Vec<CallbackView>,
    /// Pass as `cursor` for the next page; `null` on the last.
    next_cursor: Option<String>,
}

#[utoipa::path(
    get,
    path = "/api/callbacks",
    tag = "callbacks",
    description = "The callbacks chirp posted or will post, in message order (admin).",
    params(CallbackParams),
    responses((status = 200, description = "Success", body = CallbackPage)),
)]
pub(super) async fn list_callbacks(
    _admin: Admin,
    State(state): State<AppState>,
    QueryParams(params): QueryParams<CallbackParams>,
) -> Result<Json<CallbackPage>, ApiError> {
    let limit = match params.limit.as_deref() {
        None => DEFAULT_PAGE,
        Some(text) => text
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_PAGE).contains(n))
            .ok_or_else(|| {
                ApiError::invalid(
                    "limit",
                    "invalid_limit",
                    format!("limit is 1 to {MAX_PAGE}"),
                )
            })?,
    };
    if let Some(outcome) = &params.outcome
        && !["pending", "delivered", "failed", "dropped"].contains(&outcome.as_str())
    {
        return Err(ApiError::invalid(
            "outcome",
            "invalid_outcome",
            "outcome is pending, delivered, failed or dropped",
        ));
    }
    let filter = CallbackFilter {
        message_id: params.message_id,
        endpoint: params.endpoint,
        outcome: params.outcome,
        after: params.cursor,
        limit,
    };
    let found = state.store.callbacks(&filter).await?;
    let next_cursor = (found.len() == limit)
        .then(|| found.last().map(|c| c.due.id()))
        .flatten();
    Ok(Json(CallbackPage {
        callbacks: found
            .into_iter()
            .map(|c| CallbackView::of(c, None))
            .collect(),
        next_cursor,
    }))
}

#[utoipa::path(
    get,
    path = "/api/callbacks/{id}",
    tag = "callbacks",
    description = "One callback with each of its posts (admin).",
    params(("id" = String, Path, description = "The callback id")),
    responses(
        (status = 200, description = "Success", body = CallbackView),
        (status = 404, description = "No such callback", body = super::error::ErrorBody),
    ),
)]
async fn one_callback(
    _admin: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<CallbackView>, ApiError> {
    let callback = state
        .store
        .callback(&id)
        .await?
        .ok_or_else(|| ApiError::not_found("callback", &id))?;
    let posts = state.store.callback_attempts(&callback.due).await?;
    Ok(Json(CallbackView::of(callback, Some(posts))))
}

#[utoipa::path(
    post,
    path = "/api/callbacks/{id}/replay",
    tag = "callbacks",
    description = "Posts a callback again, now, under the same webhook-id (admin): one that was \
        delivered, given up or is waiting for its retry.",
    params(("id" = String, Path, description = "The callback id")),
    responses(
        (status = 202, description = "Due now", body = CallbackView),
        (status = 404, description = "No such callback", body = super::error::ErrorBody),
    ),
)]
async fn replay(
    Admin(caller): Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<CallbackView>), ApiError> {
    let callback = state
        .store
        .replay_callback(&id, now_millis())
        .await?
        .ok_or_else(|| ApiError::not_found("callback", &id))?;
    tracing::info!(%id, by = %caller.subject, "callback replayed");
    Ok((StatusCode::ACCEPTED, Json(CallbackView::of(callback, None))))
}
