//! Taking messages back (admin): `POST /api/notifications/{id}/cancel` for
//! one message, `POST /api/notifications/cancel` for every pending message
//! of a caller's reference (a subscription paused: its scheduled reminders
//! must not go). Only a message still queued or scheduled is cancelled; one
//! whose attempt is in flight is named as such, since the platform may
//! still deliver it.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::Admin;
use super::extract::{Fields, JsonObject};
use super::{ApiError, AppState};
use crate::message::{ErrorNote, Status, now_millis};

/// Messages of one reference one call looks at.
const MAX_PER_REFERENCE: usize = 1_000;
/// Templates one cancel by reference may name.
const MAX_TEMPLATES: usize = 50;
/// Longest `reference_id` and `reason`.
const MAX_REFERENCE_LEN: usize = 200;
const MAX_REASON_LEN: usize = 500;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(cancel_one))
        .routes(routes!(cancel_reference))
}

/// The answer to a cancel of one message.
#[derive(Serialize, ToSchema)]
pub(super) struct CancelledOne {
    id: String,
    status: Status,
    /// `false` when the message had been cancelled already.
    cancelled_now: bool,
}

/// `POST /api/notifications/{id}/cancel`.
#[utoipa::path(
    post,
    path = "/api/notifications/{id}/cancel",
    tag = "notifications",
    description = "Cancels a queued or scheduled message (admin): it is never sent. \
        Cancelling a cancelled message changes nothing. A message whose attempt is \
        in flight, or that is already past the queue, is a 409 saying which.",
    params(("id" = String, Path, description = "The message id")),
    responses(
        (status = 200, description = "Cancelled (now or before)", body = CancelledOne),
        (status = 404, description = "No such message", body = super::error::ErrorBody),
        (status = 409, description = "In flight (it may still be delivered), sent, or otherwise finished", body = super::error::ErrorBody),
    ),
)]
pub(super) async fn cancel_one(
    Admin(caller): Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<CancelledOne>, ApiError> {
    let why = by_admin(&caller.subject, None);
    let (message, cancelled_now) = state
        .store
        .cancel_message(&id, &why, now_millis())
        .await?
        .ok_or_else(|| ApiError::not_found("message", &id))?;
    if cancelled_now {
        crate::telemetry::cancelled(1, "admin");
        tracing::info!(%id, by = %caller.subject, "message cancelled");
    }
    match message.status {
        Status::Cancelled => Ok(Json(CancelledOne {
            id: message.id,
            status: message.status,
            cancelled_now,
        })),
        Status::Sending => Err(ApiError::new(
            StatusCode::CONFLICT,
            "in_flight",
            format!(
                "message {id} is being sent right now and cannot be taken back; the platform \
                 may still deliver it"
            ),
        )),
        Status::Sent => Err(ApiError::new(
            StatusCode::CONFLICT,
            "already_sent",
            format!("message {id} was sent already"),
        )),
        other => Err(ApiError::new(
            StatusCode::CONFLICT,
            "not_pending",
            format!("message {id} is {other}, not waiting to be sent"),
        )),
    }
}

/// The body of a cancel by reference.
#[derive(ToSchema)]
#[allow(dead_code)] // read field by field by the handler; this is its schema
struct CancelReferenceRequest {
    /// The caller's reference the messages were accepted with.
    #[schema(min_length = 1, max_length = 200)]
    reference_id: String,
    /// Only messages of these templates (1 to 50 names); all if absent.
    #[schema(min_items = 1, max_items = 50)]
    templates: Option<Vec<String>>,
    /// Why, for the messages' record (1 to 500 characters, not only
    /// spaces).
    #[schema(min_length = 1, max_length = 500, pattern = r"\S")]
    reason: Option<String>,
}

/// The answer to a cancel by reference.
#[derive(Serialize, ToSchema)]
struct CancelledReference {
    /// The messages cancelled by this call.
    cancelled: Vec<String>,
    /// Messages being sent as this ran: they may still be delivered.
    in_flight: Vec<String>,
    /// Messages of the reference already past the queue, left alone.
    finished: usize,
    /// The reference has more than 1,000 messages: call again for the rest.
    more: bool,
}

/// `POST /api/notifications/cancel`.
#[utoipa::path(
    post,
    path = "/api/notifications/cancel",
    tag = "notifications",
    description = "Cancels every queued or scheduled message of a reference_id (admin), \
        of the named templates only if `templates` is given. Looks at up to 1,000 \
        messages of the reference per call (`more` says whether there are others).",
    request_body(content = CancelReferenceRequest, example = json!({
        "reference_id": "SUB-2041",
        "templates": ["delivery_reminder"],
        "reason": "subscription paused"
    })),
    responses((status = 200, description = "What was cancelled, and what was not", body = CancelledReference)),
)]
async fn cancel_reference(
    Admin(caller): Admin,
    State(state): State<AppState>,
    JsonObject(body): JsonObject,
) -> Result<Json<CancelledReference>, ApiError> {
    let mut fields = Fields::new(body);
    let reference_id = fields.required_string("reference_id")?;
    let templates = fields.strings("templates")?;
    let reason = fields.string("reason")?;
    fields.finish()?;
    if reference_id.is_empty() || reference_id.chars().count() > MAX_REFERENCE_LEN {
        return Err(ApiError::invalid(
            "reference_id",
            "invalid_length",
            format!("reference_id must be 1 to {MAX_REFERENCE_LEN} characters"),
        ));
    }
    // A name no template has matches nothing; the body's size bounds
    // the names' lengths.
    if templates
        .as_ref()
        .is_some_and(|names| names.is_empty() || names.len() > MAX_TEMPLATES)
    {
        return Err(ApiError::invalid(
            "templates",
            "invalid_templates",
            format!("templates must name 1 to {MAX_TEMPLATES} templates"),
        ));
    }
    if let Some(reason) = &reason
        && (reason.trim().is_empty() || reason.chars().count() > MAX_REASON_LEN)
    {
        return Err(ApiError::invalid(
            "reason",
            "invalid_length",
            format!("reason must be 1 to {MAX_REASON_LEN} characters, not only spaces"),
        ));
    }
    let why = by_admin(&caller.subject, reason.as_deref());
    let done = state
        .store
        .cancel_reference(
            &reference_id,
            templates.as_deref(),
            &[],
            &why,
            now_millis(),
            MAX_PER_REFERENCE,
        )
        .await?;
    crate::telemetry::cancelled(done.cancelled.len() as u64, "admin");
    tracing::info!(
        reference = %reference_id,
        cancelled = done.cancelled.len(),
        in_flight = done.in_flight.len(),
        by = %caller.subject,
        "messages of a reference cancelled"
    );
    Ok(Json(CancelledReference {
        cancelled: done.cancelled,
        in_flight: done.in_flight,
        finished: done.finished,
        more: done.more,
    }))
}

/// The note a cancelled message keeps: who, and why if they said.
fn by_admin(subject: &str, reason: Option<&str>) -> ErrorNote {
    ErrorNote {
        code: "cancelled_by_admin".to_string(),
        message: match reason {
            Some(reason) => format!("cancelled by {subject}: {reason}"),
            None => format!("cancelled by {subject}"),
        },
    }
}
