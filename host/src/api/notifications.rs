//! `/api/notifications/*` that act: sending, resending, running the queue.
//! Reading a message and its history is [`super::history`]; the
//! statistics, [`super::statistics`]; health and readiness,
//! [`super::operations`].

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::IntoResponse;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::Admin;
use super::extract::{Fields, JsonObject, parse_time};
use super::{ApiError, AppState};
use crate::intake::{self, Chain, Draft, Recipient};
use crate::message::{Millis, NewMessage, Status, now_millis};
use crate::phone::Phone;

/// Longest accepted `reference_id`, `idempotency_key` and `language`.
const MAX_KEY_LEN: usize = 200;
/// Longest accepted free text (WhatsApp's own limit is 4096).
const MAX_TEXT_LEN: usize = 4096;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(send_message))
        .routes(routes!(resend))
        .routes(routes!(process_queue))
}

/// The body of `send-message`, as the OpenAPI document shows it. The
/// handler reads exactly these fields (and refuses any other).
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // read field by field by the handler; this is its schema
pub(super) struct SendMessageRequest {
    /// The recipient, E.164.
    #[schema(example = "+919876543210")]
    phone: String,
    /// A template name; give `template` (with `variables`) or `text`.
    template: Option<String>,
    /// The template's variables.
    #[schema(value_type = Option<Object>)]
    variables: Option<serde_json::Map<String, serde_json::Value>>,
    /// Free text (1 to 4096 characters, not only spaces) instead of a
    /// template.
    #[schema(min_length = 1, max_length = 4096, pattern = r"\S")]
    text: Option<String>,
    /// Language code, e.g. `hi`; defaults to the recipient's preference,
    /// then English.
    #[schema(min_length = 1, max_length = 200)]
    language: Option<String>,
    #[schema(min_length = 1, max_length = 200)]
    reference_id: Option<String>,
    /// The same key sends once: a repeat answers the first message.
    #[schema(min_length = 1, max_length = 200)]
    idempotency_key: Option<String>,
    /// The provider plugin to send through (default: the configured one).
    #[schema(min_length = 1, max_length = 200)]
    provider: Option<String>,
    /// Send a transactional message to a recipient who opted out.
    override_opt_out: Option<bool>,
    /// Hold the message until this RFC 3339 time (1970 to 9999).
    #[schema(format = DateTime)]
    send_at: Option<String>,
    /// Never send after this RFC 3339 time: the message is `expired`
    /// instead (default: the template's `expire_after` from its time to be
    /// sent). Must come after `send_at` (or now).
    #[schema(format = DateTime)]
    expires_at: Option<String>,
    /// A registered callback endpoint (its id) to report this message's
    /// changes to, besides the endpoints of scope `all`.
    #[schema(min_length = 1, max_length = 200)]
    callback_endpoint: Option<String>,
    /// The routes a template message falls back to, in order, instead of
    /// its template's `fallback` (`["sms:msg91-sms"]`; `[]`: none). Each
    /// `channel:provider` with an approved template in the template's
    /// `providers`; at most 3; a marketing template only those its own
    /// `fallback` names.
    #[schema(max_items = 3)]
    fallback: Option<Vec<String>>,
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
    let message = draft(&state, request).await?;
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

/// The message a checked `send-message` request (or a batch's item) asks
/// for: the recipient's preferences, the provider, the render or the
/// free text's window. Nothing is stored.
pub(super) async fn draft(state: &AppState, request: SendRequest) -> Result<NewMessage, ApiError> {
    if let Some(named) = &request.callback_endpoint
        && state.callbacks.get(named).is_none()
    {
        return Err(ApiError::invalid(
            "callback_endpoint",
            "unknown_callback_endpoint",
            format!("no callback endpoint {named:?} is registered"),
        ));
    }
    let callbacks = state
        .callbacks
        .targets(request.callback_endpoint.as_deref());
    let preferences = state.recipients.preferences(request.phone.as_str()).await?;
    let recipient = Recipient {
        phone: &request.phone,
        preferences: &preferences,
        consent: state.consent,
    };
    let default_provider = state.provider.get();
    let provider = match request.provider {
        None => default_provider,
        Some(named) if named == default_provider || state.plugins.knows_provider(&named) => named,
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
                expires_at: request.expires_at,
                override_opt_out: request.override_opt_out,
                fingerprint: None,
                chain: match &request.fallback {
                    Some(routes) => Chain::Caller(routes),
                    None => Chain::Template,
                },
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
                expires_at: request.expires_at,
                override_opt_out: request.override_opt_out,
            };
            let last_inbound = if recipient.consent.free_text_needs_window {
                state
                    .store
                    .last_inbound_at(recipient.phone.as_str())
                    .await?
            } else {
                None
            };
            intake::text_message(&recipient, draft, &provider, now, last_inbound)?
        }
    };
    Ok(NewMessage {
        callbacks,
        ..message
    })
}

/// The answer to an idempotency key used before for another request. It
/// names the key, never the earlier message.
pub(super) fn key_reused(key: &str) -> ApiError {
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
    /// A template and its variables.
    Template {
        /// The template's name.
        name: String,
        /// Its variables, as given.
        variables: serde_json::Map<String, serde_json::Value>,
    },
    /// Free text.
    Text(String),
}

/// A `send-message` body, read and checked field by field: every field
/// has its type and bounds, the phone is valid, and exactly one of
/// `template` and `text` is given. Pure, so that it can be fuzzed.
#[derive(Debug)]
pub struct SendRequest {
    /// The recipient.
    pub phone: Phone,
    /// What to send.
    pub content: Content,
    /// The language asked for, if any.
    pub language: Option<String>,
    /// The caller's reference, if any.
    pub reference_id: Option<String>,
    /// The caller's key, if any.
    pub idempotency_key: Option<String>,
    /// The provider asked for, if not the configured one.
    pub provider: Option<String>,
    /// Send a transactional message despite an opt-out.
    pub override_opt_out: bool,
    /// Not before this time.
    pub send_at: Option<Millis>,
    /// Never after this time.
    pub expires_at: Option<Millis>,
    /// A callback endpoint named for this message.
    pub callback_endpoint: Option<String>,
    /// The fallback chain asked for, if not the template's.
    pub fallback: Option<Vec<String>>,
}

impl SendRequest {
    /// Reads a body; the first problem, naming its field, is the error.
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
        let expires_at = fields
            .string("expires_at")?
            .map(|t| parse_time("expires_at", &t))
            .transpose()?;
        let callback_endpoint = bounded(fields.string("callback_endpoint")?, "callback_endpoint")?;
        let fallback = fields.strings("fallback")?;
        fields.finish()?;
        // The routes themselves are checked with the template
        // (`intake::fallback_routes`).
        if fallback.is_some() && text.is_some() {
            return Err(ApiError::invalid(
                "fallback",
                "unexpected_field",
                "fallback goes with template: free text has no approved template on another route",
            ));
        }

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
            expires_at,
            callback_endpoint,
            fallback,
        })
    }
}

/// A short text field: 1 to [`MAX_KEY_LEN`] characters (at most four
/// times as many bytes).
fn bounded(value: Option<String>, field: &'static str) -> Result<Option<String>, ApiError> {
    match value {
        Some(v) if v.is_empty() || v.chars().count() > MAX_KEY_LEN => Err(ApiError::invalid(
            field,
            "invalid_length",
            format!("{field} must be 1 to {MAX_KEY_LEN} characters"),
        )),
        other => Ok(other),
    }
}

/// The answer to a resend.
#[derive(Serialize, ToSchema)]
pub(super) struct Resent {
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
        (status = 409, description = "The message was sent already, or its expiry passed", body = super::error::ErrorBody),
    ),
)]
pub(super) async fn resend(
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
    if !requeued && message.status == Status::Failed {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "past_expiry",
            format!(
                "message {id} expired at {}; send a new message with a later expires_at",
                message
                    .expires_at
                    .map(crate::message::rfc3339)
                    .unwrap_or_default()
            ),
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
