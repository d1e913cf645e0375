//! `/api/notifications/*`: sending, reading history, resending, running the
//! queue, and health.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

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

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/notifications/send-message", post(send_message))
        .route("/api/notifications/history", get(history))
        .route("/api/notifications/history/{phone}", get(history_of_phone))
        .route("/api/notifications/resend/{id}", post(resend))
        .route("/api/notifications/process-queue", post(process_queue))
        .route("/api/notifications/health", get(health))
        .route("/api/notifications/statistics", get(statistics))
        .route("/ready", get(ready))
        .route("/api/notifications/{id}", get(message))
}

/// `POST /api/notifications/send-message`: validate, render, store; `202`
/// once the message is committed.
async fn send_message(
    Admin(caller): Admin,
    State(state): State<AppState>,
    JsonObject(body): JsonObject,
) -> Result<impl IntoResponse, ApiError> {
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
    let preferences = state.store.preferences(phone.as_str()).await?;
    let recipient = Recipient {
        phone: &phone,
        preferences: &preferences,
    };
    let provider = provider.unwrap_or_else(|| state.provider.clone());
    let now = now_millis();
    let message = match (template, text) {
        (Some(name), None) => {
            let variables = variables.unwrap_or_default();
            let draft = Draft {
                template: &name,
                language: language.as_deref(),
                variables: &variables,
                reference_id,
                idempotency_key,
                not_before: send_at,
                override_opt_out,
            };
            intake::template_message(
                &state.templates.current(),
                &recipient,
                draft,
                &provider,
                now,
            )?
        }
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
            let draft = intake::TextDraft {
                text,
                reference_id,
                idempotency_key,
                not_before: send_at,
                override_opt_out,
            };
            intake::text_message(&recipient, draft, &provider, now)
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
    let reason = message.skip.as_ref().map(|s| s.message.clone());
    let accepted = state.queue.enqueue(message).await?;
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
    let mut answer = json!({ "id": accepted.id, "status": accepted.status });
    if let (Some(reason), false) = (reason, accepted.replayed) {
        answer["reason"] = json!(reason);
    }
    Ok((StatusCode::ACCEPTED, headers, Json(answer)))
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
#[derive(Serialize)]
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
#[derive(Serialize)]
struct AttemptView {
    number: u32,
    at: String,
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
            Outcome::Retryable { retry_after, .. } => {
                (None, retry_after.map(|d| d.as_millis() as u64))
            }
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HistoryParams {
    phone: Option<String>,
    status: Option<String>,
    template: Option<String>,
    reference_id: Option<String>,
    from: Option<String>,
    to: Option<String>,
    cursor: Option<String>,
    limit: Option<String>,
}

#[derive(Serialize)]
struct Page {
    items: Vec<MessageView>,
    /// Pass as `cursor` for the next (older) page; `null` on the last page.
    next_cursor: Option<String>,
}

/// `GET /api/notifications/history`: messages, newest first, filtered.
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

/// `POST /api/notifications/resend/{id}`: a failed message goes back in the
/// queue with a fresh retry budget. Resending a message that is already
/// queued or sending changes nothing (so a retried request cannot send
/// twice); a sent message is not sent again.
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
        Json(json!({ "id": message.id, "status": message.status, "requeued": requeued })),
    ))
}

/// `POST /api/notifications/process-queue`: take back expired leases and
/// run whatever is due now, without waiting for the scheduler's next wake.
async fn process_queue(
    _admin: Admin,
    State(state): State<AppState>,
) -> Result<Json<Value>, ApiError> {
    let now = now_millis();
    let reclaimed = state.store.reclaim_expired(now).await?;
    let due = state.store.count_due(now).await?;
    state.queue.wake();
    Ok(Json(json!({ "due": due, "reclaimed": reclaimed })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RangeParams {
    from: Option<String>,
    to: Option<String>,
}

/// `GET /api/notifications/statistics?from=&to=`: counts, rates and
/// latencies of the messages accepted in the range (default: all time),
/// and the queue as it is now.
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
async fn ready(State(state): State<AppState>) -> impl IntoResponse {
    let store_ok = state.store.ping().await.is_ok();
    let provider_ok = state.plugins.provider(&state.provider).is_some();
    let status = if store_ok && provider_ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(
            json!({ "ready": status == StatusCode::OK, "store": store_ok, "provider": provider_ok }),
        ),
    )
}

/// `GET /api/notifications/health`: the store answers and which providers
/// are loaded.
async fn health(State(state): State<AppState>) -> impl IntoResponse {
    let store_ok = state.store.ping().await.is_ok();
    let plugins = state.plugins.active();
    let provider_loaded = state.plugins.provider(&state.provider).is_some();
    let status = if !store_ok {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    (
        status,
        Json(json!({
            "status": if store_ok && provider_loaded { "ok" } else if store_ok { "degraded" } else { "unavailable" },
            "store": if store_ok { "ok" } else { "unreachable" },
            "provider": state.provider,
            "provider_loaded": provider_loaded,
            "plugins": plugins,
        })),
    )
}
