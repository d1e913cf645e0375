//! `POST /api/notifications/batch`: up to 1,000 `send-message` bodies in
//! one request, so a backend hands over a day's reminders in a few calls.
//! Each item is checked on its own and answered on its own (its id, or its
//! error naming `messages[i].field`); the good ones are committed together
//! in one transaction, each idempotent by its own key.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::Admin;
use super::extract::{Fields, JsonObject};
use super::notifications::{SendRequest, draft, key_reused};
use super::{ApiError, AppState};
use crate::message::Status;

/// The most messages in one batch.
pub const MAX_BATCH: usize = 1_000;

/// The route, reading bodies of up to `max_body_bytes` (a batch is larger
/// than the API's other bodies).
pub fn router(max_body_bytes: usize) -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(send_batch))
        .layer(axum::extract::DefaultBodyLimit::max(max_body_bytes))
}

/// The body of a batch.
#[derive(ToSchema)]
#[allow(dead_code)] // read field by field by the handler; this is its schema
struct BatchRequest {
    /// 1 to 1,000 messages, each as `send-message` takes it.
    #[schema(min_items = 1, max_items = 1000)]
    messages: Vec<super::notifications::SendMessageRequest>,
}

/// One item's error, in the one error shape.
#[derive(Serialize, ToSchema)]
struct ItemError {
    code: &'static str,
    message: String,
    /// `messages[i].field`, when a field is at fault.
    field: Option<String>,
}

/// What became of one item.
#[derive(Serialize, ToSchema)]
struct ItemResult {
    /// Its place in `messages`, from 0.
    index: usize,
    /// `202` stored (or found stored, for a known idempotency key), or the
    /// status the item alone would have been answered with.
    status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<String>,
    /// The message's state as stored.
    #[serde(skip_serializing_if = "Option::is_none")]
    state: Option<Status>,
    /// The idempotency key was known: this is the first message.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    replayed: bool,
    /// Why the message was stored `skipped`.
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<ItemError>,
}

/// The answer to a batch.
#[derive(Serialize, ToSchema)]
struct BatchAnswer {
    /// Items stored now (queued, scheduled or skipped).
    accepted: usize,
    /// Items whose idempotency key was known (nothing new stored).
    replayed: usize,
    /// Items refused.
    rejected: usize,
    /// One per item, in order.
    results: Vec<ItemResult>,
}

/// `POST /api/notifications/batch`.
#[utoipa::path(
    post,
    path = "/api/notifications/batch",
    tag = "notifications",
    description = "Queues up to 1,000 messages (admin). Each item is checked and answered \
        on its own; the accepted ones are committed together, and the answer comes once \
        they are durably stored. A store failure refuses the whole batch (nothing stored).",
    request_body(content = BatchRequest, example = json!({"messages": [
        {"phone": "+919876543210", "template": "delivery_reminder",
         "variables": {"delivery_date": "25 Nov"}, "reference_id": "SUB-2041",
         "idempotency_key": "reminder-SUB-2041-2026-11-25"},
        {"phone": "+919812345678", "template": "delivery_reminder",
         "variables": {"delivery_date": "25 Nov"}, "reference_id": "SUB-2042"}
    ]})),
    responses((status = 200, description = "Each item's result", body = BatchAnswer)),
)]
async fn send_batch(
    Admin(caller): Admin,
    State(state): State<AppState>,
    JsonObject(body): JsonObject,
) -> Result<Json<BatchAnswer>, ApiError> {
    let mut fields = Fields::new(body);
    let items = match fields.value("messages") {
        Some(Value::Array(items)) => items,
        Some(_) => return Err(invalid_messages("messages must be a list of messages")),
        None => {
            return Err(ApiError::invalid(
                "messages",
                "missing_field",
                "messages is required",
            ));
        }
    };
    fields.finish()?;
    if items.is_empty() || items.len() > MAX_BATCH {
        return Err(invalid_messages(format!(
            "messages must hold 1 to {MAX_BATCH} messages; send more in several batches"
        )));
    }

    // Every item's checks and render, concurrently (the preference lookups
    // of many requests share a query).
    let drafted = futures::future::join_all(items.into_iter().map(|item| async {
        let Value::Object(item) = item else {
            return Err(ApiError::invalid(
                "",
                "invalid_body",
                "each message must be a JSON object",
            ));
        };
        draft(&state, SendRequest::read(item)?).await
    }))
    .await;
    let mut results: Vec<Option<ItemResult>> = Vec::with_capacity(drafted.len());
    let mut good = Vec::new();
    let mut places = Vec::new();
    for (index, drafted) in drafted.into_iter().enumerate() {
        match drafted {
            Ok(message) => {
                places.push(index);
                good.push(message);
                results.push(None);
            }
            // A failure of chirp's own (the store) is the whole batch's.
            Err(e) if e.status.is_server_error() => return Err(e),
            Err(e) => results.push(Some(refused(index, e))),
        }
    }
    let reasons: Vec<Option<String>> = good
        .iter()
        .map(|m| m.skip.as_ref().map(|s| s.message.clone()))
        .collect();
    let keys: Vec<String> = good.iter().map(|m| m.idempotency_key.clone()).collect();
    let stored = state.queue.enqueue_each(good).await?;

    let (mut accepted, mut replayed, mut skipped) = (0, 0, 0);
    for (((index, inserted), reason), key) in places.into_iter().zip(stored).zip(reasons).zip(keys)
    {
        results[index] = Some(if inserted.key_reused {
            refused(index, key_reused(&key))
        } else {
            if inserted.replayed {
                replayed += 1;
            } else if inserted.status == Status::Skipped {
                skipped += 1;
            } else {
                accepted += 1;
            }
            ItemResult {
                index,
                status: StatusCode::ACCEPTED.as_u16(),
                id: Some(inserted.id),
                state: Some(inserted.status),
                replayed: inserted.replayed,
                reason: reason.filter(|_| !inserted.replayed),
                error: None,
            }
        });
    }
    crate::telemetry::accepted(accepted as u64);
    crate::telemetry::skipped(skipped as u64);
    let results: Vec<ItemResult> = results.into_iter().flatten().collect();
    let rejected = results.iter().filter(|r| r.error.is_some()).count();
    tracing::debug!(by = %caller.subject, accepted, skipped, replayed, rejected, "batch accepted");
    Ok(Json(BatchAnswer {
        accepted: accepted + skipped,
        replayed,
        rejected,
        results,
    }))
}

/// Item `index`'s error, its field named within the batch.
fn refused(index: usize, e: ApiError) -> ItemResult {
    let field = match e.field.as_deref() {
        None => None,
        Some("") => Some(format!("messages[{index}]")),
        Some(name) => Some(format!("messages[{index}].{name}")),
    };
    ItemResult {
        index,
        status: e.status.as_u16(),
        id: None,
        state: None,
        replayed: false,
        reason: None,
        error: Some(ItemError {
            code: e.code,
            message: e.message,
            field,
        }),
    }
}

fn invalid_messages(message: impl Into<String>) -> ApiError {
    ApiError::invalid("messages", "invalid_messages", message)
}
