//! Reading messages: one message with its audit trail, and pages of the
//! history, filtered, newest first. A user reads only their own phone's.

use axum::Json;
use axum::extract::{Path, State};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::{Caller, Role};
use super::extract::{QueryParams, parse_time};
use super::views::{DeliveryView, ErrorNoteView, InboundView, ProviderTemplateView, ReceiptView};
use super::{ApiError, AppState};
use crate::message::{Attempt, Message, Millis, Status, rfc3339};
use crate::phone::Phone;
use crate::store::HistoryFilter;

const DEFAULT_PAGE: usize = 50;
const MAX_PAGE: usize = 500;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(message))
        .routes(routes!(history))
        .routes(routes!(history_of_phone))
}

/// A message as the API shows it.
#[derive(Serialize, ToSchema)]
#[schema(as = Message)]
pub(super) struct MessageView {
    id: String,
    status: Status,
    phone: String,
    template: Option<String>,
    template_version: Option<u32>,
    text: String,
    provider_template: Option<ProviderTemplateView>,
    reference_id: Option<String>,
    idempotency_key: String,
    provider: String,
    attempt_count: u32,
    created_at: String,
    updated_at: String,
    next_attempt_at: Option<String>,
    /// After this it is never sent (`expired`); absent: it does not expire.
    #[serde(skip_serializing_if = "Option::is_none")]
    expires_at: Option<String>,
    sent_at: Option<String>,
    provider_message_id: Option<String>,
    last_error: Option<ErrorNoteView>,
    /// What the platform reported after the send.
    delivery: DeliveryView,
    /// Earlier messages the event that made this one cancelled.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    cancelled_messages: Vec<String>,
    /// The routes it may still move to, in order (`channel:provider`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    fallbacks: Vec<String>,
    /// The routes it left, oldest first; `provider` is the one it is on.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    hops: Vec<HopView>,
    /// The audit trail, oldest first (only on `GET /api/notifications/{id}`).
    #[serde(skip_serializing_if = "Option::is_none")]
    attempts: Option<Vec<AttemptView>>,
    /// The platform's receipts, in the order it reported them (only on
    /// `GET /api/notifications/{id}`).
    #[serde(skip_serializing_if = "Option::is_none")]
    receipts: Option<Vec<ReceiptView>>,
    /// Attempts and receipts on one timeline, oldest first (only on
    /// `GET /api/notifications/{id}`).
    #[serde(skip_serializing_if = "Option::is_none")]
    timeline: Option<Vec<TimelineEntry>>,
}

/// A move to the next route.
#[derive(Serialize, ToSchema)]
#[schema(as = Hop)]
pub(super) struct HopView {
    at: String,
    from: String,
    to: String,
    /// The channel of `to`.
    channel: String,
    /// The failure that moved it.
    reason: ErrorNoteView,
}

/// One step of a message's life after it was accepted.
#[derive(Serialize, ToSchema)]
pub(super) struct TimelineEntry {
    at: String,
    #[schema(value_type = i64)]
    at_ms: Millis,
    /// `attempt` (chirp called the provider), `receipt` (the platform
    /// reported back) or `hop` (the message moved to its next route,
    /// `provider`).
    kind: &'static str,
    /// An attempt's outcome (`sent`, `retryable`, `permanent`), what a
    /// receipt said (`sent`, `delivered`, `read`, `failed`), or
    /// `fallback`.
    what: &'static str,
    provider: String,
    error_code: Option<String>,
}

/// Attempts (by their start) and receipts (by the platform's time) in
/// one list, oldest first.
fn timeline(
    attempts: &[Attempt],
    receipts: &[crate::store::StoredReceipt],
    hops: &[crate::message::Hop],
) -> Vec<TimelineEntry> {
    let mut entries: Vec<TimelineEntry> = attempts
        .iter()
        .map(|a| TimelineEntry {
            at: rfc3339(a.started_at),
            at_ms: a.started_at,
            kind: "attempt",
            what: a.outcome.label(),
            provider: a.provider.clone(),
            error_code: a.outcome.error().map(|e| e.code.clone()),
        })
        .chain(receipts.iter().map(|r| TimelineEntry {
            at: rfc3339(r.at),
            at_ms: r.at,
            kind: "receipt",
            what: r.state.as_str(),
            provider: r.plugin.clone(),
            error_code: r.error.as_ref().map(|e| e.code.clone()),
        }))
        .chain(hops.iter().map(|h| TimelineEntry {
            at: rfc3339(h.at),
            at_ms: h.at,
            kind: "hop",
            what: "fallback",
            provider: h.to.clone(),
            error_code: Some(h.reason.code.clone()),
        }))
        .collect();
    entries.sort_by_key(|e| e.at_ms);
    entries
}

impl MessageView {
    pub(super) fn new(m: Message, trail: Option<Trail>) -> MessageView {
        let timeline = trail.as_ref().map(|(a, r)| timeline(a, r, &m.hops));
        let (attempts, receipts) = trail.map_or((None, None), |t| (Some(t.0), Some(t.1)));
        MessageView {
            id: m.id,
            status: m.status,
            phone: m.phone,
            template: m.template,
            template_version: m.template_version,
            text: m.text,
            provider_template: m.provider_template.map(Into::into),
            reference_id: m.reference_id,
            idempotency_key: m.idempotency_key,
            provider: m.provider,
            attempt_count: m.attempts,
            created_at: rfc3339(m.created_at),
            updated_at: rfc3339(m.updated_at),
            next_attempt_at: m.due_at.map(rfc3339),
            expires_at: m.expires_at.map(rfc3339),
            sent_at: m.sent_at.map(rfc3339),
            provider_message_id: m.provider_message_id,
            last_error: m.last_error.map(Into::into),
            delivery: DeliveryView::new(m.delivery, m.sent_at.is_some()),
            cancelled_messages: m.cancelled_messages,
            fallbacks: m
                .fallbacks
                .iter()
                .map(|r| format!("{}:{}", r.channel, r.provider))
                .collect(),
            hops: m
                .hops
                .into_iter()
                .map(|h| HopView {
                    at: rfc3339(h.at),
                    from: h.from,
                    to: h.to,
                    channel: h.channel,
                    reason: h.reason.into(),
                })
                .collect(),
            attempts: attempts.map(|list| list.into_iter().map(AttemptView::from).collect()),
            receipts: receipts.map(|list| list.into_iter().map(ReceiptView::from).collect()),
            timeline,
        }
    }
}

/// A message's attempts and receipts.
pub(super) type Trail = (Vec<Attempt>, Vec<crate::store::StoredReceipt>);

/// One attempt as the API shows it.
#[derive(Serialize, ToSchema)]
#[schema(as = Attempt)]
pub(super) struct AttemptView {
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
        let provider_message_id = a.outcome.provider_message_id().cloned();
        let retry_after_ms = a.outcome.retry_after_ms();
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
    description = "One message with every attempt and receipt (a user: only their own).",
    params(("id" = String, Path, description = "The message id")),
    responses(
        (status = 200, description = "Success", body = MessageView),
        (status = 404, description = "No such message", body = super::error::ErrorBody),
    ),
)]
pub(super) async fn message(
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
    let receipts = state.store.receipts(&id).await?;
    Ok(Json(MessageView::new(message, Some((attempts, receipts)))))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct HistoryParams {
    /// Only this recipient (a user: their own phone).
    phone: Option<String>,
    /// Only messages in this state.
    #[param(value_type = Option<Status>)]
    status: Option<String>,
    /// Only sent messages whose receipts add up to this (`sent`: no
    /// receipt yet).
    #[param(value_type = Option<crate::status::DeliveryStatus>)]
    delivery: Option<String>,
    template: Option<String>,
    reference_id: Option<String>,
    /// Only messages on this provider (the route they are on now, or
    /// that sent them).
    provider: Option<String>,
    /// Accepted at or after this RFC 3339 time.
    #[param(format = DateTime)]
    from: Option<String>,
    /// Accepted before this RFC 3339 time.
    #[param(format = DateTime)]
    to: Option<String>,
    /// `next_cursor` of the page before.
    #[param(pattern = "^[0-7][0-9A-HJKMNP-TV-Z]{25}$")]
    cursor: Option<String>,
    /// Page size, 1 to 500 (default 50).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 500)]
    limit: Option<String>,
}

/// A page of messages, newest first.
#[derive(Serialize, ToSchema)]
pub(super) struct Page {
    items: Vec<MessageView>,
    /// What the recipient wrote to the business, newest first, at most
    /// `limit` (only on `GET /api/notifications/history/{phone}`).
    #[serde(skip_serializing_if = "Option::is_none")]
    inbound: Option<Vec<InboundView>>,
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
pub(super) async fn history(
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
    page(&state, filter).await.map(Json)
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
    let limit = filter.limit;
    let mut answer = page(&state, filter).await?;
    answer.inbound = Some(
        state
            .store
            .inbound_recent(phone.as_str(), limit)
            .await?
            .into_iter()
            .map(InboundView::from)
            .collect(),
    );
    Ok(Json(answer))
}

/// The page of messages `filter` selects.
async fn page(state: &AppState, mut filter: HistoryFilter) -> Result<Page, ApiError> {
    let limit = filter.limit;
    filter.limit = limit + 1;
    let mut messages = state.store.history(&filter).await?;
    let next_cursor = if messages.len() > limit {
        messages.truncate(limit);
        messages.last().map(|m| m.id.clone())
    } else {
        None
    };
    Ok(Page {
        items: messages
            .into_iter()
            .map(|m| MessageView::new(m, None))
            .collect(),
        inbound: None,
        next_cursor,
    })
}

fn history_filter(p: HistoryParams) -> Result<HistoryFilter, ApiError> {
    let status = p
        .status
        .map(|s| s.parse::<Status>())
        .transpose()
        .map_err(|e| ApiError::invalid("status", "invalid_status", e.to_string()))?;
    let delivery = p
        .delivery
        .map(|name| {
            crate::status::DeliveryStatus::ALL
                .into_iter()
                .find(|d| d.as_str() == name)
                .ok_or_else(|| {
                    ApiError::invalid(
                        "delivery",
                        "invalid_delivery",
                        format!(
                            "unknown delivery {:?}; expected one of sent, delivered, read, failed",
                            name.chars().take(32).collect::<String>()
                        ),
                    )
                })
        })
        .transpose()?;
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
    // A message id: 26 characters of Crockford's base 32, upper case,
    // within 128 bits (the documented pattern).
    let crockford = |c: char| c.is_ascii_digit() || c.is_ascii_uppercase() && !"ILOU".contains(c);
    if let Some(cursor) = &p.cursor
        && !(cursor.len() == 26
            && cursor.starts_with(|c: char| ('0'..='7').contains(&c))
            && cursor.chars().all(crockford))
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
        delivery,
        template: p.template,
        reference_id: p.reference_id,
        provider: p.provider,
        from: p.from.map(|t| parse_time("from", &t)).transpose()?,
        to: p.to.map(|t| parse_time("to", &t)).transpose()?,
        before: p.cursor,
        limit,
    })
}
