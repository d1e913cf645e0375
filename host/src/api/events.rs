//! `POST /api/events`: EarlyBird's business events in, messages out.
//!
//! The rules component decides which templates an event leads to (and
//! which it must not, e.g. for opted-out recipients, and when, e.g. quiet
//! hours); chirp renders and stores them all in one transaction, or none.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::Admin;
use super::extract::{Fields, JsonObject};
use super::{ApiError, AppState};
use crate::intake::{self, Event, Skipped};
use crate::message::{Status, now_millis, rfc3339};
use crate::phone::Phone;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(accept))
}

/// A business event, as the OpenAPI document shows it; the handler reads
/// exactly these fields.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // read field by field by the handler; this is its schema
struct EventRequest {
    /// The event type, e.g. `order.created` (see the rules plugin).
    #[schema(rename = "type")]
    kind: String,
    /// EarlyBird's id of the thing the event is about (order, payment).
    #[schema(max_length = 200)]
    reference_id: String,
    customer: Customer,
    /// The event's facts, as the templates it leads to need them.
    #[schema(value_type = Option<Object>)]
    data: Option<Map<String, Value>>,
}

/// Who the event is about.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // read field by field by the handler; this is its schema
struct Customer {
    phone: String,
    name: Option<String>,
    /// Language code; the recipient's saved preference wins.
    language: Option<String>,
    /// IANA time zone, e.g. `Asia/Kolkata` (quiet hours).
    timezone: Option<String>,
}

/// What an event led to.
#[derive(Serialize, ToSchema)]
struct EventAccepted {
    #[serde(rename = "type")]
    #[schema(rename = "type")]
    kind: String,
    reference_id: String,
    /// `true` when the same event was accepted before (nothing new stored).
    replayed: bool,
    messages: Vec<EventMessage>,
    /// Templates the rules decided not to send, with why.
    skipped: Vec<SkippedView>,
    /// Earlier messages of the reference the rules took back (cancelled).
    cancelled: Vec<String>,
}

/// The most earlier messages one cancel request of an event looks at.
const MAX_CANCELLED_PER_EVENT: usize = 1_000;

/// One message an event made.
#[derive(Serialize, ToSchema)]
struct EventMessage {
    id: String,
    template: Option<String>,
    status: Status,
    /// When it may be sent (quiet hours and reminders hold it).
    #[schema(format = DateTime)]
    not_before: String,
}

/// `{type, reference_id, customer: {phone, name, language?, timezone?},
/// data}` -> `202 {messages: [{id, template, status}], skipped: [...]}`.
#[utoipa::path(
    post,
    path = "/api/events",
    tag = "events",
    description = "Accepts a business event (admin). The rules plugin decides which \
        templates it leads to; every message is rendered first and all are stored in \
        one transaction, or none. The same (type, reference_id) posted again stores nothing.",
    request_body(content = EventRequest, example = json!({
        "type": "order.created",
        "reference_id": "EB-1001",
        "customer": {"phone": "+919876543210", "name": "Asha", "timezone": "Asia/Kolkata"},
        "data": {"order_id": "EB-1001", "delivery_date": "2026-11-25", "total_amount": 249}
    })),
    responses(
        (status = 202, description = "Accepted and durably stored", body = EventAccepted),
        (status = 409, description = "The same (type, reference_id) was accepted before with other data", body = super::error::ErrorBody),
    ),
)]
async fn accept(
    Admin(caller): Admin,
    State(state): State<AppState>,
    JsonObject(body): JsonObject,
) -> Result<(StatusCode, Json<EventAccepted>), ApiError> {
    let mut fields = Fields::new(body);
    let kind = fields.required_string("type")?;
    let reference_id = fields.required_string("reference_id")?;
    let customer = fields
        .object("customer")?
        .ok_or_else(|| ApiError::invalid("customer", "missing_field", "customer is required"))?;
    let data = fields.object("data")?.unwrap_or_default();
    fields.finish()?;
    if reference_id.chars().count() > 200 {
        return Err(ApiError::invalid(
            "reference_id",
            "invalid_length",
            "reference_id must be at most 200 characters",
        ));
    }

    let mut customer = Fields::new(customer);
    let phone_text = customer.required_string("phone").map_err(|_| {
        ApiError::invalid(
            "customer.phone",
            "missing_field",
            "customer.phone is required",
        )
    })?;
    let name = customer.string("name")?;
    let language = customer.string("language")?;
    let timezone = customer.string("timezone")?;
    customer.finish().map_err(|mut e| {
        e.field = e.field.map(|f| format!("customer.{f}"));
        e
    })?;
    let phone = Phone::parse(&phone_text).map_err(|e| {
        ApiError::invalid(
            "customer.phone",
            "invalid_phone",
            format!("customer.phone {e}"),
        )
    })?;

    let rules = state.plugins.rules(&state.rules).ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "rules_unavailable",
            format!(
                "the rules plugin {} is not loaded; nothing was stored",
                state.rules
            ),
        )
    })?;
    let kinds = state.plugins.rules_kinds(&rules.name);
    if !kinds.contains(&kind) {
        return Err(ApiError::invalid(
            "type",
            "unknown_event_type",
            format!("unknown event type {kind:?}; known: {}", kinds.join(", ")),
        ));
    }

    let preferences = state.recipients.preferences(phone.as_str()).await?;
    let event = Event {
        kind: &kind,
        reference_id: &reference_id,
        phone: &phone,
        name: name.as_deref(),
        language: language.as_deref(),
        timezone: timezone.as_deref(),
        data: &data,
    };
    let catalog = state.templates.current();
    let intake::EventOutcome {
        messages,
        skipped,
        cancels,
    } = intake::event_messages(
        &state.plugins,
        &state.rules,
        &catalog,
        &event,
        &intake::Recipient {
            phone: &phone,
            preferences: &preferences,
            consent: state.consent,
        },
        &state.provider.get(),
        now_millis(),
    )
    .await?;
    let templates: Vec<Option<String>> = messages.iter().map(|m| m.template.clone()).collect();
    let not_before: Vec<i64> = messages.iter().map(|m| m.not_before).collect();
    let callbacks = state.callbacks.targets(None);
    let messages = messages
        .into_iter()
        .map(|m| crate::message::NewMessage {
            callbacks: callbacks.clone(),
            ..m
        })
        .collect();
    let stored = state.queue.enqueue_all(messages).await?;
    if stored.iter().any(|s| s.key_reused) {
        return Err(ApiError {
            field: Some("reference_id".into()),
            ..ApiError::new(
                StatusCode::CONFLICT,
                "event_reused",
                format!(
                    "an event {kind:?} with reference_id {reference_id:?} was accepted before \
                     with another customer or other data; nothing was stored"
                ),
            )
        });
    }
    let cancelled = cancel_earlier(&state, &kind, &reference_id, &stored, &cancels).await?;
    let replayed = stored.iter().all(|s| s.replayed) && !stored.is_empty();
    let fresh = stored.iter().filter(|s| !s.replayed);
    let (skips, sends): (Vec<_>, Vec<_>) =
        fresh.partition(|s| s.status == crate::message::Status::Skipped);
    crate::telemetry::accepted(sends.len() as u64);
    crate::telemetry::skipped(skips.len() as u64);
    tracing::debug!(kind = %kind, reference_id = %reference_id, by = %caller.subject, messages = stored.len(), replayed, "event accepted");
    let messages = stored
        .into_iter()
        .zip(templates)
        .zip(not_before)
        .map(|((s, template), not_before)| EventMessage {
            id: s.id,
            template,
            status: s.status,
            not_before: rfc3339(not_before),
        })
        .collect();
    Ok((
        StatusCode::ACCEPTED,
        Json(EventAccepted {
            kind,
            reference_id,
            replayed,
            messages,
            skipped: skipped.into_iter().map(SkippedView::from).collect(),
            cancelled,
        }),
    ))
}

/// Carries out what the rules take back for an event whose messages are
/// `stored`: the earlier messages of its reference still waiting, of the
/// templates named, never the event's own; each records the event, and the
/// event's messages record them. After the event's messages are stored, so
/// that a refused event cancels nothing; a repeat of the event (a retry
/// after a lost answer or a crash) does it again, which changes nothing
/// once done.
async fn cancel_earlier(
    state: &AppState,
    kind: &str,
    reference_id: &str,
    stored: &[crate::store::Inserted],
    cancels: &[intake::Cancellation],
) -> Result<Vec<String>, ApiError> {
    let own: Vec<String> = stored.iter().map(|s| s.id.clone()).collect();
    let mut cancelled = Vec::new();
    for cancel in cancels {
        let why = crate::message::ErrorNote {
            code: "cancelled_by_event".into(),
            message: format!(
                "cancelled by event {kind} of {reference_id}{}: {}",
                own.first()
                    .map(|id| format!(" (message {id})"))
                    .unwrap_or_default(),
                cancel.reason
            ),
        };
        let done = state
            .store
            .cancel_reference(
                reference_id,
                Some(&cancel.templates),
                &own,
                &why,
                now_millis(),
                MAX_CANCELLED_PER_EVENT,
            )
            .await?;
        cancelled.extend(done.cancelled);
    }
    if !cancelled.is_empty() {
        crate::telemetry::cancelled(cancelled.len() as u64, "event");
        tracing::info!(%kind, %reference_id, cancelled = cancelled.len(), "an event cancelled earlier messages");
        if !own.is_empty() {
            state.store.note_cancelled(&own, &cancelled).await?;
        }
    }
    Ok(cancelled)
}

/// A template the rules decided not to send, with why.
#[derive(Serialize, ToSchema)]
#[schema(as = Skipped)]
struct SkippedView {
    template: String,
    reason: String,
}

impl From<Skipped> for SkippedView {
    fn from(s: Skipped) -> SkippedView {
        SkippedView {
            template: s.template,
            reason: s.reason,
        }
    }
}
