//! `/api/notifications/*`: sending, reading history, resending, running the
//! queue, and health.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::{Admin, Caller, Role};
use super::extract::{Fields, JsonObject, QueryParams};
use super::{ApiError, AppState};
use crate::intake::{self, Draft, Recipient};
use crate::message::{Attempt, ErrorNote, Message, Millis, Outcome, Status, now_millis, rfc3339};
use crate::phone::Phone;
use crate::store::HistoryFilter;

/// Longest accepted `reference_id`, `idempotency_key` and `language`.
const MAX_KEY_LEN: usize = 200;
/// Longest accepted free text (WhatsApp's own limit is 4096).
const MAX_TEXT_LEN: usize = 4096;
const DEFAULT_PAGE: usize = 50;
const MAX_PAGE: usize = 500;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(send_message))
        .routes(routes!(history))
        .routes(routes!(history_of_phone))
        .routes(routes!(resend))
        .routes(routes!(process_queue))
        .routes(routes!(health))
        .routes(routes!(statistics))
        .routes(routes!(ready))
        .routes(routes!(message))
}

/// The body of `send-message`, as the OpenAPI document shows it. The
/// handler reads exactly these fields (and refuses any other).
#[derive(ToSchema)]
#[allow(dead_code)] // read field by field by the handler; this is its schema
struct SendMessageRequest {
    /// The recipient, E.164 or a 10-digit Indian mobile number.
    #[schema(example = "+919876543210")]
    phone: String,
    /// A template name; give `template` (with `variables`) or `text`.
    template: Option<String>,
    /// The template's variables.
    #[schema(value_type = Option<Object>)]
    variables: Option<serde_json::Map<String, serde_json::Value>>,
    /// Free text (1 to 4096 characters) instead of a template.
    text: Option<String>,
    /// Language code, e.g. `hi`; defaults to the recipient's preference,
    /// then English.
    language: Option<String>,
    reference_id: Option<String>,
    /// The same key sends once: a repeat answers the first message.
    idempotency_key: Option<String>,
    /// The provider plugin to send through (default: the configured one).
    provider: Option<String>,
    /// Send a transactional message to a recipient who opted out.
    override_opt_out: Option<bool>,
    /// Hold the message until this RFC 3339 time.
    #[schema(format = DateTime)]
    send_at: Option<String>,
}

/// The answer to an accepted message.
#[derive(Serialize, ToSchema)]
struct Accepted {
    id: String,
    status: Status,
    /// Why the message was stored `skipped` (opt-out, disabled template).
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
}

/// `POST /api/notifications/send-message`: validate, render, store; `202`
/// once the message is committed.
#[utoipa::path(
    post,
    path = "/api/notifications/send-message",
    tag = "notifications",
    description = "Queues a message (admin). 202 once it is durably stored; \
        a repeated `idempotency_key` answers the first message with the \
        header `idempotent-replayed: true`.",
    request_body(content = SendMessageRequest, example = json!({
        "phone": "+919876543210",
        "template": "order_confirmation",
        "variables": {"order_id": "EB-1001", "delivery_date": "2026-11-25", "total_amount": 249},
        "reference_id": "EB-1001"
    })),
    responses(
        (status = 202, description = "Stored (queued, scheduled or skipped)", body = Accepted),
        (status = 409, description = "The idempotency_key was used before for another request", body = super::error::ErrorBody),
    ),
)]
async fn send_message(
    Admin(caller): Admin,
    State(state): State<AppState>,
    JsonObject(body): JsonObject,
) -> Result<impl IntoResponse, ApiError> {
    let request = SendRequest::read(body)?;
    let preferences = state.recipients.preferences(request.phone.as_str()).await?;
    let recipient = Recipient {
        phone: &request.phone,
        preferences: &preferences,
    };
    let provider = match request.provider {
        None => state.provider.clone(),
        Some(named) if named == state.provider || state.plugins.knows_provider(&named) => named,
        Some(named) => {
            return Err(ApiError::invalid(
                "provider",
                "unknown_provider",
                format!(
                    "no provider plugin {named:?} is loaded; leave provider out to use the default"
                ),
            ));
        }
    };
    let now = now_millis();
    let message = match request.content {
        Content::Template { name, variables } => {
            let draft = Draft {
                template: &name,
                language: request.language.as_deref(),
                variables: &variables,
                reference_id: request.reference_id,
                idempotency_key: request.idempotency_key,
                not_before: request.send_at,
                override_opt_out: request.override_opt_out,
                fingerprint: None,
            };
            intake::template_message(
                &state.templates.current(),
                &recipient,
                draft,
                &provider,
                now,
            )?
        }
        Content::Text(text) => {
            let draft = intake::TextDraft {
                text,
                reference_id: request.reference_id,
                idempotency_key: request.idempotency_key,
                not_before: request.send_at,
                override_opt_out: request.override_opt_out,
            };
            intake::text_message(&recipient, draft, &provider, now)
        }
    };
    let reason = message.skip.as_ref().map(|s| s.message.clone());
    let key = message.idempotency_key.clone();
    let accepted = state.queue.enqueue(message).await?;
    if accepted.key_reused {
        return Err(key_reused(&key));
    }
    let mut headers = HeaderMap::new();
    if accepted.replayed {
        headers.insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    match (accepted.replayed, accepted.status) {
        (true, _) => {}
        (false, Status::Skipped) => crate::telemetry::skipped(1),
        (false, _) => crate::telemetry::accepted(1),
    }
    tracing::debug!(id = %accepted.id, by = %caller.subject, replayed = accepted.replayed, "message accepted");
    let answer = Accepted {
        id: accepted.id,
        status: accepted.status,
        reason: reason.filter(|_| !accepted.replayed),
    };
    Ok((StatusCode::ACCEPTED, headers, Json(answer)))
}

/// The answer to an idempotency key used before for another request. It
/// names the key, never the earlier message.
fn key_reused(key: &str) -> ApiError {
    ApiError {
        field: Some("idempotency_key".into()),
        ..ApiError::new(
            StatusCode::CONFLICT,
            "idempotency_key_reused",
            format!(
                "idempotency_key {key:?} was used before for another request (another phone, \
                 template, variables or text); a retry must repeat the request exactly, and \
                 a new request needs a new key"
            ),
        )
    }
}

/// What a message is made of.
#[derive(Debug)]
pub enum Content {
    Template {
        name: String,
        variables: serde_json::Map<String, serde_json::Value>,
    },
    Text(String),
}

/// A `send-message` body, read and checked field by field: every field
/// has its type and bounds, the phone is valid, and exactly one of
/// `template` and `text` is given. Pure, so that it can be fuzzed.
#[derive(Debug)]
pub struct SendRequest {
    pub phone: Phone,
    pub content: Content,
    pub language: Option<String>,
    pub reference_id: Option<String>,
    pub idempotency_key: Option<String>,
    pub provider: Option<String>,
    pub override_opt_out: bool,
    pub send_at: Option<Millis>,
}

impl SendRequest {
    pub fn read(body: serde_json::Map<String, serde_json::Value>) -> Result<SendRequest, ApiError> {
        let mut fields = Fields::new(body);
        let phone_text = fields.required_string("phone")?;
        let template = fields.string("template")?;
        let variables = fields.object("variables")?;
        let text = fields.string("text")?;
        let language = bounded(fields.string("language")?, "language")?;
        let reference_id = bounded(fields.string("reference_id")?, "reference_id")?;
        let idempotency_key = bounded(fields.string("idempotency_key")?, "idempotency_key")?;
        let provider = bounded(fields.string("provider")?, "provider")?;
        let override_opt_out = fields.boolean("override_opt_out")?.unwrap_or(false);
        let send_at = fields
            .string("send_at")?
            .map(|t| parse_time("send_at", &t))
            .transpose()?;
        fields.finish()?;

        let phone = Phone::parse(&phone_text)
            .map_err(|e| ApiError::invalid("phone", "invalid_phone", format!("phone {e}")))?;
        let content = match (template, text) {
            (Some(name), None) => Content::Template {
                name,
                variables: variables.unwrap_or_default(),
            },
            (None, Some(text)) => {
                if variables.is_some() {
                    return Err(ApiError::invalid(
                        "variables",
                        "unexpected_field",
                        "variables go with template, not with text",
                    ));
                }
                if text.trim().is_empty() || text.chars().count() > MAX_TEXT_LEN {
                    return Err(ApiError::invalid(
                        "text",
                        "invalid_text",
                        format!("text must be 1 to {MAX_TEXT_LEN} characters"),
                    ));
                }
                Content::Text(text)
            }
            (Some(_), Some(_)) => {
                return Err(ApiError::invalid(
                    "template",
                    "template_and_text",
                    "give either template (with variables) or text, not both",
                ));
            }
            (None, None) => {
                return Err(ApiError::invalid(
                    "template",
                    "missing_content",
                    "give either template (with variables) or text",
                ));
            }
        };
        Ok(SendRequest {
            phone,
            content,
            language,
            reference_id,
            idempotency_key,
            provider,
            override_opt_out,
            send_at,
        })
    }
}

fn bounded(value: Option<String>, field: &'static str) -> Result<Option<String>, ApiError> {
    match value {
        Some(v) if v.is_empty() || v.len() > MAX_KEY_LEN => Err(ApiError::invalid(
            field,
            "invalid_length",
            format!("{field} must be 1 to {MAX_KEY_LEN} bytes"),
        )),
        other => Ok(other),
    }
}

/// A message as the API shows it.
#[derive(Serialize, ToSchema)]
#[schema(as = Message)]
struct MessageView {
    id: String,
    status: Status,
    phone: String,
    template: Option<String>,
    template_version: Option<u32>,
    text: String,
    provider_template: Option<crate::message::ProviderTemplate>,
    reference_id: Option<String>,
    idempotency_key: String,
    provider: String,
    attempt_count: u32,
    created_at: String,
    updated_at: String,
    next_attempt_at: Option<String>,
    sent_at: Option<String>,
    provider_message_id: Option<String>,
    last_error: Option<ErrorNote>,
    /// The audit trail, oldest first (only on `GET /api/notifications/{id}`).
    #[serde(skip_serializing_if = "Option::is_none")]
    attempts: Option<Vec<AttemptView>>,
}

impl MessageView {
    fn new(m: Message, attempts: Option<Vec<Attempt>>) -> MessageView {
        MessageView {
            id: m.id,
            status: m.status,
            phone: m.phone,
            template: m.template,
            template_version: m.template_version,
            text: m.text,
            provider_template: m.provider_template,
            reference_id: m.reference_id,
            idempotency_key: m.idempotency_key,
            provider: m.provider,
            attempt_count: m.attempts,
            created_at: rfc3339(m.created_at),
            updated_at: rfc3339(m.updated_at),
            next_attempt_at: m.due_at.map(rfc3339),
            sent_at: m.sent_at.map(rfc3339),
            provider_message_id: m.provider_message_id,
            last_error: m.last_error,
            attempts: attempts.map(|list| list.into_iter().map(AttemptView::from).collect()),
        }
    }
}

/// One attempt as the API shows it.
#[derive(Serialize, ToSchema)]
#[schema(as = Attempt)]
struct AttemptView {
    number: u32,
    at: String,
    /// `at` in milliseconds since the Unix epoch.
    #[schema(value_type = i64)]
    at_ms: Millis,
    provider: String,
    provider_version: String,
    outcome: &'static str,
    provider_message_id: Option<String>,
    error_code: Option<String>,
    error_message: Option<String>,
    retry_after_ms: Option<u64>,
    latency_ms: u64,
}

impl From<Attempt> for AttemptView {
    fn from(a: Attempt) -> AttemptView {
        let error = a.outcome.error().cloned();
        let (provider_message_id, retry_after_ms) = match &a.outcome {
            Outcome::Sent {
                provider_message_id,
            } => (provider_message_id.clone(), None),
            Outcome::Retryable { retry_after, .. } => (
                None,
                retry_after.map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            ),
            Outcome::Permanent { .. } => (None, None),
        };
        AttemptView {
            number: a.number,
            at: rfc3339(a.started_at),
            at_ms: a.started_at,
            provider: a.provider,
            provider_version: a.provider_version,
            outcome: a.outcome.label(),
            provider_message_id,
            error_code: error.as_ref().map(|e| e.code.clone()),
            error_message: error.map(|e| e.message),
            retry_after_ms,
            latency_ms: a.latency_ms,
        }
    }
}

/// `GET /api/notifications/{id}`: the message and its audit trail.
#[utoipa::path(
    get,
    path = "/api/notifications/{id}",
    tag = "notifications",
    description = "One message with every attempt (a user: only their own).",
    params(("id" = String, Path, description = "The message id")),
    responses(
        (status = 200, description = "Success", body = MessageView),
        (status = 404, description = "No such message", body = super::error::ErrorBody),
    ),
)]
async fn message(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<MessageView>, ApiError> {
    let message = state
        .store
        .message(&id)
        .await?
        .ok_or_else(|| ApiError::not_found("message", &id))?;
    caller.may_access(&message.phone)?;
    let attempts = state.store.attempts(&id).await?;
    Ok(Json(MessageView::new(message, Some(attempts))))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct HistoryParams {
    /// Only this recipient (a user: their own phone).
    phone: Option<String>,
    /// Only messages in this state.
    #[param(value_type = Option<Status>)]
    status: Option<String>,
    template: Option<String>,
    reference_id: Option<String>,
    /// Accepted at or after this RFC 3339 time.
    #[param(format = DateTime)]
    from: Option<String>,
    /// Accepted before this RFC 3339 time.
    #[param(format = DateTime)]
    to: Option<String>,
    /// `next_cursor` of the page before.
    cursor: Option<String>,
    /// Page size, 1 to 500 (default 50).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 500)]
    limit: Option<String>,
}

/// A page of messages, newest first.
#[derive(Serialize, ToSchema)]
struct Page {
    items: Vec<MessageView>,
    /// Pass as `cursor` for the next (older) page; `null` on the last page.
    next_cursor: Option<String>,
}

/// `GET /api/notifications/history`: messages, newest first, filtered.
#[utoipa::path(
    get,
    path = "/api/notifications/history",
    tag = "notifications",
    description = "Messages, newest first. A user sees only their own.",
    params(HistoryParams),
    responses((status = 200, description = "Success", body = Page)),
)]
async fn history(
    caller: Caller,
    State(state): State<AppState>,
    QueryParams(params): QueryParams<HistoryParams>,
) -> Result<Json<Page>, ApiError> {
    let mut filter = history_filter(params)?;
    if caller.role == Role::User {
        // A user sees only their own messages.
        match &filter.phone {
            Some(phone) => caller.may_access(phone)?,
            None => filter.phone = caller.phone.clone(),
        }
    }
    page(&state, filter).await
}

/// `GET /api/notifications/history/{phone}`: one recipient's messages.
#[utoipa::path(
    get,
    path = "/api/notifications/history/{phone}",
    tag = "notifications",
    description = "One recipient's messages, newest first (a user: their own phone).",
    params(("phone" = String, Path, description = "The recipient, E.164 (`+` and 8 to 15 digits)", pattern = r"^\+[1-9][0-9]{7,14}$"), HistoryParams),
    responses((status = 200, description = "Success", body = Page)),
)]
async fn history_of_phone(
    caller: Caller,
    State(state): State<AppState>,
    Path(phone): Path<String>,
    QueryParams(params): QueryParams<HistoryParams>,
) -> Result<Json<Page>, ApiError> {
    let phone = Phone::parse(&phone)
        .map_err(|e| ApiError::invalid("phone", "invalid_phone", format!("phone {e}")))?;
    caller.may_access(phone.as_str())?;
    let mut filter = history_filter(params)?;
    filter.phone = Some(phone.as_str().to_string());
    page(&state, filter).await
}

async fn page(state: &AppState, mut filter: HistoryFilter) -> Result<Json<Page>, ApiError> {
    let limit = filter.limit;
    filter.limit = limit + 1;
    let mut messages = state.store.history(&filter).await?;
    let next_cursor = if messages.len() > limit {
        messages.truncate(limit);
        messages.last().map(|m| m.id.clone())
    } else {
        None
    };
    Ok(Json(Page {
        items: messages
            .into_iter()
            .map(|m| MessageView::new(m, None))
            .collect(),
        next_cursor,
    }))
}

fn history_filter(p: HistoryParams) -> Result<HistoryFilter, ApiError> {
    let status = p
        .status
        .map(|s| s.parse::<Status>())
        .transpose()
        .map_err(|e| ApiError::invalid("status", "invalid_status", e))?;
    let limit = match p.limit {
        None => DEFAULT_PAGE,
        Some(text) => match text.parse::<usize>() {
            Ok(n) if (1..=MAX_PAGE).contains(&n) => n,
            _ => {
                return Err(ApiError::invalid(
                    "limit",
                    "invalid_limit",
                    format!("limit must be a whole number from 1 to {MAX_PAGE}"),
                ));
            }
        },
    };
    if let Some(cursor) = &p.cursor
        && ulid::Ulid::from_string(cursor).is_err()
    {
        return Err(ApiError::invalid(
            "cursor",
            "invalid_cursor",
            "cursor is not one chirp gave",
        ));
    }
    if let Some(phone) = &p.phone {
        Phone::parse(phone)
            .map_err(|e| ApiError::invalid("phone", "invalid_phone", format!("phone {e}")))?;
    }
    Ok(HistoryFilter {
        phone: p.phone,
        status,
        template: p.template,
        reference_id: p.reference_id,
        from: p.from.map(|t| parse_time("from", &t)).transpose()?,
        to: p.to.map(|t| parse_time("to", &t)).transpose()?,
        before: p.cursor,
        limit,
    })
}

fn parse_time(field: &'static str, text: &str) -> Result<Millis, ApiError> {
    humantime::parse_rfc3339_weak(text)
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_millis() as Millis)
        .ok_or_else(|| {
            ApiError::invalid(
                field,
                "invalid_time",
                format!("{field} must be an RFC 3339 time, e.g. 2026-11-24T00:00:00Z"),
            )
        })
}

/// The answer to a resend.
#[derive(Serialize, ToSchema)]
struct Resent {
    id: String,
    status: Status,
    /// `false` when the message was already queued or sending.
    requeued: bool,
}

/// `POST /api/notifications/resend/{id}`: a failed message goes back in the
/// queue with a fresh retry budget. Resending a message that is already
/// queued or sending changes nothing (so a retried request cannot send
/// twice); a sent message is not sent again.
#[utoipa::path(
    post,
    path = "/api/notifications/resend/{id}",
    tag = "notifications",
    description = "Queues a failed message again with a fresh retry budget (admin).",
    params(("id" = String, Path, description = "The message id")),
    responses(
        (status = 202, description = "Accepted and durably stored", body = Resent),
        (status = 404, description = "No such message", body = super::error::ErrorBody),
        (status = 409, description = "The message was sent already", body = super::error::ErrorBody),
    ),
)]
async fn resend(
    _admin: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let (message, requeued) = state
        .store
        .requeue_failed(&id, now_millis())
        .await?
        .ok_or_else(|| ApiError::not_found("message", &id))?;
    if message.status == Status::Sent {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "already_sent",
            format!("message {id} was sent; send a new message to send again"),
        ));
    }
    if requeued {
        state.queue.wake();
    }
    Ok((
        StatusCode::ACCEPTED,
        Json(Resent {
            id: message.id,
            status: message.status,
            requeued,
        }),
    ))
}

/// What a queue run found.
#[derive(Serialize, ToSchema)]
struct QueueRun {
    /// Queued messages due now.
    due: usize,
    /// Messages whose lease ran out (their attempt never finished); the run
    /// takes them back and sends them again.
    reclaimed: usize,
}

/// `POST /api/notifications/process-queue`: run whatever is due now,
/// expired leases included, without waiting for the scheduler's next wake.
#[utoipa::path(
    post,
    path = "/api/notifications/process-queue",
    tag = "notifications",
    description = "Takes back expired leases and runs what is due now (admin).",
    responses((status = 200, description = "Success", body = QueueRun)),
)]
async fn process_queue(
    _admin: Admin,
    State(state): State<AppState>,
) -> Result<Json<QueueRun>, ApiError> {
    let due = state.store.count_due(now_millis()).await?;
    state.queue.wake();
    Ok(Json(QueueRun {
        due: due.queued,
        reclaimed: due.lease_expired,
    }))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct RangeParams {
    /// Accepted at or after this RFC 3339 time.
    #[param(format = DateTime)]
    from: Option<String>,
    /// Accepted before this RFC 3339 time.
    #[param(format = DateTime)]
    to: Option<String>,
}

/// `GET /api/notifications/statistics?from=&to=`: counts, rates and
/// latencies of the messages accepted in the range (default: all time),
/// and the queue as it is now.
#[utoipa::path(
    get,
    path = "/api/notifications/statistics",
    tag = "notifications",
    params(RangeParams),
    responses((status = 200, description = "Success", body = crate::store::Statistics)),
)]
async fn statistics(
    _caller: Caller,
    State(state): State<AppState>,
    QueryParams(range): QueryParams<RangeParams>,
) -> Result<Json<crate::store::Statistics>, ApiError> {
    let from = range
        .from
        .map(|t| parse_time("from", &t))
        .transpose()?
        .unwrap_or(0);
    let to = range
        .to
        .map(|t| parse_time("to", &t))
        .transpose()?
        .unwrap_or(Millis::MAX);
    if from >= to {
        return Err(ApiError::invalid(
            "to",
            "invalid_range",
            "to must be after from",
        ));
    }
    Ok(Json(state.store.statistics(from, to).await?))
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
    let provider = state.plugins.provider(&state.provider).is_some();
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
    /// `ok`, `degraded` (no provider loaded) or `unavailable` (no store).
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
    let provider_loaded = state.plugins.provider(&state.provider).is_some();
    let status = if store_ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let health = Health {
        status: match (store_ok, provider_loaded) {
            (true, true) => "ok",
            (true, false) => "degraded",
            (false, _) => "unavailable",
        },
        store: match (store_ok, state.store.needs_restart()) {
            (true, _) => "ok",
            (false, true) => "needs_restart",
            (false, false) => "unreachable",
        },
        provider: state.provider.clone(),
        provider_loaded,
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
