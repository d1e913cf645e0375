//! `POST /api/events`: EarlyBird's business events in, messages out.
//!
//! The rules component decides which templates an event leads to (and
//! which it must not, e.g. for opted-out recipients, and when, e.g. quiet
//! hours); chirp renders and stores them all in one transaction, or none.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{Value, json};

use super::auth::Admin;
use super::extract::{Fields, JsonObject};
use super::{ApiError, AppState};
use crate::intake::{self, Event};
use crate::message::now_millis;
use crate::phone::Phone;

pub fn router() -> Router<AppState> {
    Router::new().route("/api/events", post(accept))
}

/// `{type, reference_id, customer: {phone, name, language?, timezone?},
/// data}` -> `202 {messages: [{id, template, status}], skipped: [...]}`.
async fn accept(
    Admin(caller): Admin,
    State(state): State<AppState>,
    JsonObject(body): JsonObject,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let mut fields = Fields::new(body);
    let kind = fields.required_string("type")?;
    let reference_id = fields.required_string("reference_id")?;
    let customer = fields
        .object("customer")?
        .ok_or_else(|| ApiError::invalid("customer", "missing_field", "customer is required"))?;
    let data = fields.object("data")?.unwrap_or_default();
    fields.finish()?;
    if reference_id.len() > 200 {
        return Err(ApiError::invalid(
            "reference_id",
            "invalid_length",
            "reference_id must be at most 200 bytes",
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

    let preferences = state.store.preferences(phone.as_str()).await?;
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
    let (messages, skipped) = intake::event_messages(
        &state.plugins,
        &state.rules,
        &catalog,
        &event,
        &preferences,
        &state.provider,
        now_millis(),
    )
    .await?;
    let templates: Vec<Option<String>> = messages.iter().map(|m| m.template.clone()).collect();
    let not_before: Vec<i64> = messages.iter().map(|m| m.not_before).collect();
    let stored = state.queue.enqueue_all(messages).await?;
    let replayed = stored.iter().all(|s| s.replayed) && !stored.is_empty();
    let fresh = stored.iter().filter(|s| !s.replayed);
    let (skips, sends): (Vec<_>, Vec<_>) =
        fresh.partition(|s| s.status == crate::message::Status::Skipped);
    crate::telemetry::accepted(sends.len() as u64);
    crate::telemetry::skipped(skips.len() as u64);
    tracing::debug!(kind = %kind, reference_id = %reference_id, by = %caller.subject, messages = stored.len(), replayed, "event accepted");
    let items: Vec<Value> = stored
        .iter()
        .zip(templates)
        .zip(not_before)
        .map(|((s, template), not_before)| {
            json!({
                "id": s.id,
                "template": template,
                "status": s.status,
                "not_before": crate::message::rfc3339(not_before),
            })
        })
        .collect();
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({
            "type": kind,
            "reference_id": reference_id,
            "replayed": replayed,
            "messages": items,
            "skipped": skipped,
        })),
    ))
}
