//! `/api/webhooks/{plugin}`: where messaging platforms report receipts and
//! customers' replies. Public (platforms do not carry chirp's token): the
//! provider plugin named in the path checks that the request is its
//! platform's (a signature, a token it holds as a setting), and the host
//! bounds everything around it whatever the plugin does: the body's size,
//! requests per second from one source address, events per request, and
//! how many receipts may wait for their message. What the plugin accepted
//! is stored before the platform is answered `200`; it is applied to
//! messages afterwards (`crate::inbox`).

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::Arc;

use axum::Json;
use axum::extract::{ConnectInfo, Path, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{ApiError, AppState};
use crate::config::WebhooksConfig;
use crate::inbox::Inbox;
use crate::message::now_millis;
use crate::plugins::{WebhookCallError, bindings};
use crate::webhooks::EventError;

/// The most query pairs and headers handed to a plugin.
const MAX_PAIRS: usize = 100;

/// What the webhook route needs beyond the rest of the API.
#[derive(Clone)]
pub struct WebhookDesk {
    /// The operator's bounds.
    pub config: WebhooksConfig,
    /// Requests per second per source address (its table pruned as the
    /// API's is, so many addresses cannot grow it without bound).
    limiter: Arc<super::rate_limit::RateLimit>,
    /// The applier, told when events are stored.
    pub inbox: Arc<Inbox>,
    /// Requests being read and handled now, from every source.
    in_flight: Arc<tokio::sync::Semaphore>,
}

impl WebhookDesk {
    /// The route's state under `config`, feeding `inbox`.
    pub fn new(config: WebhooksConfig, inbox: Arc<Inbox>) -> WebhookDesk {
        let rate = NonZeroU32::new(config.rate_per_source).unwrap_or(NonZeroU32::MIN);
        WebhookDesk {
            in_flight: Arc::new(tokio::sync::Semaphore::new(config.concurrency)),
            config,
            limiter: Arc::new(super::rate_limit::RateLimit::new(rate)),
            inbox,
        }
    }
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(verify, receive))
        .routes(routes!(unmatched))
}

/// The most unmatched receipts one listing shows.
const MAX_LISTED: usize = 1_000;

/// A receipt for a platform id no message has (yet).
#[derive(Serialize, ToSchema)]
#[schema(as = UnmatchedReceipt)]
struct UnmatchedView {
    /// The plugin that read it.
    provider: String,
    /// The platform's message id it names.
    provider_message_id: String,
    state: crate::webhooks::Reported,
    /// When, by the platform's clock.
    #[schema(format = DateTime)]
    at: String,
    /// When chirp received it; it is forgotten
    /// `CHIRP_WEBHOOK_UNMATCHED_FOR` later.
    #[schema(format = DateTime)]
    received_at: String,
}

/// Receipts waiting for their message.
#[derive(Serialize, ToSchema)]
struct UnmatchedList {
    /// How many wait in all.
    total: usize,
    /// The oldest of them, at most 1,000.
    items: Vec<UnmatchedView>,
}

#[utoipa::path(
    get,
    path = "/api/receipts/unmatched",
    tag = "webhooks",
    description = "Receipts whose platform id no message has (yet), oldest first (admin): a send \
        not completed yet, or a message chirp never sent from this number.",
    responses((status = 200, description = "Success", body = UnmatchedList)),
)]
async fn unmatched(
    _admin: super::auth::Admin,
    State(state): State<AppState>,
) -> Result<Json<UnmatchedList>, ApiError> {
    let rfc3339 = crate::message::rfc3339;
    let items = state
        .store
        .unmatched_receipts(MAX_LISTED)
        .await?
        .into_iter()
        .map(|r| UnmatchedView {
            provider: r.plugin,
            provider_message_id: r.provider_message_id,
            state: r.state,
            at: rfc3339(r.at),
            received_at: rfc3339(r.received_at),
        })
        .collect();
    Ok(Json(UnmatchedList {
        total: state.store.count_unmatched_receipts().await?,
        items,
    }))
}

/// What was stored.
#[derive(Serialize, ToSchema)]
struct Received {
    /// Events stored, to be applied to messages shortly.
    events: usize,
}

#[utoipa::path(
    get,
    path = "/api/webhooks/{plugin}",
    tag = "webhooks",
    description = "A platform's subscription check (public). The plugin answers the challenge.",
    params(("plugin" = String, Path, description = "The provider plugin the platform reports to")),
    responses(
        (status = 200, description = "The plugin's reply to the challenge", body = String, content_type = "text/plain"),
        (status = 400, description = "The plugin does not know the request's shape", body = super::error::ErrorBody),
        (status = 401, description = "The plugin found no valid signature or token", body = super::error::ErrorBody),
        (status = 404, description = "No loaded plugin of that name reads webhooks", body = super::error::ErrorBody),
        (status = 429, description = "Too many requests from this address", body = super::error::ErrorBody),
        (status = 503, description = "The plugin failed; the platform should retry", body = super::error::ErrorBody),
    ),
)]
async fn verify(
    State(state): State<AppState>,
    Path(plugin): Path<String>,
    request: Request,
) -> Result<Response, ApiError> {
    handle(state, plugin, request).await
}

#[utoipa::path(
    post,
    path = "/api/webhooks/{plugin}",
    tag = "webhooks",
    description = "A platform's report: receipts and customers' messages (public; the plugin checks the signature). Stored before `200`.",
    params(("plugin" = String, Path, description = "The provider plugin the platform reports to")),
    request_body(content = String, content_type = "application/json", description = "As the platform sends it"),
    responses(
        (status = 200, description = "Stored", body = Received),
        (status = 400, description = "The plugin does not know the request's shape", body = super::error::ErrorBody),
        (status = 401, description = "The plugin found no valid signature or token", body = super::error::ErrorBody),
        (status = 404, description = "No loaded plugin of that name reads webhooks", body = super::error::ErrorBody),
        (status = 413, description = "The body, or its events, are over the operator's bound", body = super::error::ErrorBody),
        (status = 429, description = "Too many requests from this address", body = super::error::ErrorBody),
        (status = 503, description = "The plugin failed, the store is unavailable, or too many receipts wait for their message; the platform should retry", body = super::error::ErrorBody),
    ),
)]
async fn receive(
    State(state): State<AppState>,
    Path(plugin): Path<String>,
    request: Request,
) -> Result<Response, ApiError> {
    handle(state, plugin, request).await
}

/// Both methods: bounds, the plugin, the store, the answer.
async fn handle(state: AppState, plugin: String, request: Request) -> Result<Response, ApiError> {
    let (parts, body) = request.into_parts();
    let (method, uri, headers) = (parts.method, parts.uri, parts.headers);
    let source = parts.extensions.get::<ConnectInfo<SocketAddr>>().copied();
    let desk = &state.webhooks;
    let refuse = |reason: &'static str, error: ApiError| {
        crate::telemetry::webhook_rejected(reason);
        error
    };
    let source = source.map_or_else(|| "unknown".to_string(), |c| c.0.ip().to_string());
    if desk.limiter.check(&source).is_err() {
        return Err(refuse(
            "rate",
            ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                "too many webhook requests from this address; retry in 1 s",
            ),
        ));
    }
    // Bodies are read whole: how many are read at once bounds the memory
    // strangers can hold, whatever their addresses.
    let Ok(_reading) = desk.in_flight.clone().try_acquire_owned() else {
        return Err(refuse(
            "busy",
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "webhook_busy",
                "too many webhook requests at once (CHIRP_WEBHOOK_CONCURRENCY); retry later",
            ),
        ));
    };
    let body = axum::body::to_bytes(body, desk.config.max_body_bytes)
        .await
        .map_err(|_| {
            refuse(
                "size",
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "payload_too_large",
                    format!(
                        "a webhook body is at most {} bytes (CHIRP_WEBHOOK_MAX_BODY_BYTES)",
                        desk.config.max_body_bytes
                    ),
                ),
            )
        })?;
    let request = bindings::WebhookRequest {
        method: method.as_str().to_string(),
        path: String::new(),
        query: uri
            .query()
            .map(|q| {
                url::form_urlencoded::parse(q.as_bytes())
                    .take(MAX_PAIRS)
                    .map(|(k, v)| (k.into_owned(), v.into_owned()))
                    .collect()
            })
            .unwrap_or_default(),
        headers: headers
            .iter()
            .take(MAX_PAIRS)
            .filter_map(|(name, value)| {
                Some((name.as_str().to_string(), value.to_str().ok()?.to_string()))
            })
            .collect(),
        body: body.to_vec(),
    };
    let answer = state
        .plugins
        .handle_webhook(&plugin, &request)
        .await
        .map_err(|e| match e {
            WebhookCallError::NotLoaded(_) | WebhookCallError::NoWebhooks(_) => refuse(
                "unknown_plugin",
                ApiError::new(
                    StatusCode::NOT_FOUND,
                    "not_found",
                    format!("no loaded plugin {plugin:?} reads webhooks"),
                ),
            ),
            WebhookCallError::Rejected(bindings::Rejection::Unauthenticated(why)) => refuse(
                "unauthenticated",
                ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "webhook_unauthenticated",
                    clip(&why),
                ),
            ),
            WebhookCallError::Rejected(bindings::Rejection::Malformed(why)) => refuse(
                "malformed",
                ApiError::new(StatusCode::BAD_REQUEST, "webhook_malformed", clip(&why)),
            ),
            WebhookCallError::Call(e) => {
                tracing::warn!(%plugin, error = %e, "a webhook call into the plugin failed");
                refuse(
                    "plugin_failed",
                    ApiError::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "plugin_failed",
                        "the plugin could not read the request; retry later",
                    ),
                )
            }
        })?;
    let events = match answer.accepted {
        bindings::Accepted::Verification(reply) => {
            return Ok((
                StatusCode::OK,
                [(
                    axum::http::header::CONTENT_TYPE,
                    "text/plain; charset=utf-8",
                )],
                reply,
            )
                .into_response());
        }
        bindings::Accepted::Events(events) => events,
    };
    let events = crate::webhooks::from_plugin(events, desk.config.max_events).map_err(|e| {
        match &e {
            EventError::TooMany { .. } => refuse(
                "too_many_events",
                ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "too_many_events", e.to_string()),
            ),
            EventError::Unusable { .. } => {
                tracing::warn!(%plugin, error = %e, "the plugin accepted an event chirp cannot keep");
                refuse(
                    "unusable_event",
                    ApiError::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "plugin_failed",
                        format!("the plugin's reading of the request is unusable: {e}"),
                    ),
                )
            }
        }
    })?;
    // What waits is bounded: receipts without their message, and events
    // the applier has not reached (it may be slower than the platform, or
    // failing).
    let waiting = desk.inbox.unmatched() + desk.inbox.pending();
    if !events.is_empty() && waiting + events.len() > desk.config.max_unmatched {
        return Err(refuse(
            "backlog",
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "webhook_backlog_full",
                format!(
                    "{waiting} events wait to be applied or for their message \
                     (CHIRP_WEBHOOK_MAX_UNMATCHED); retry later"
                ),
            ),
        ));
    }
    state
        .store
        .enqueue_webhook_events(&plugin, &events, now_millis())
        .await
        .map_err(|e| {
            tracing::error!(%plugin, error = %e, "storing webhook events failed");
            refuse(
                "store",
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "store_unavailable",
                    "the events could not be stored; retry later",
                ),
            )
        })?;
    desk.inbox.arrived(events.len());
    metrics::counter!("chirp_webhook_events_total", "plugin" => plugin)
        .increment(events.len() as u64);
    Ok(Json(Received {
        events: events.len(),
    })
    .into_response())
}

/// At most 256 characters of a plugin's explanation.
fn clip(why: &str) -> String {
    why.chars().take(256).collect()
}
