//! The one error shape every endpoint answers with:
//! `{"code": "...", "message": "...", "field": "..." | null}`.
//!
//! Internal failures are logged here with their detail and answered with a
//! generic message: a store error's text is for operators, not callers.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::intake::IntakeError;
use crate::queue::QueueError;
use crate::recipients::LookupError;
use crate::store::StoreError;
use crate::templates::RenderError;

/// An API error: status, stable machine code, human message, and the
/// request field at fault when there is one.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// The stable machine code, e.g. `invalid_phone`.
    pub code: &'static str,
    /// What went wrong, for a human.
    pub message: String,
    /// The request field at fault (`customer.phone`), if one is.
    pub field: Option<String>,
}

/// The error body, as sent and as the OpenAPI document shows it.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = Error)]
pub struct ErrorBody<'a> {
    /// Stable machine code, e.g. `invalid_phone`, `unauthorized`.
    code: &'a str,
    /// What went wrong, for a human.
    message: &'a str,
    /// The request field at fault (`customer.phone`), or `null`.
    field: Option<&'a str>,
}

impl ApiError {
    /// An error that names no field.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            field: None,
        }
    }

    /// A 422 about one field of the request.
    pub fn invalid(
        field: impl Into<String>,
        code: &'static str,
        message: impl Into<String>,
    ) -> ApiError {
        ApiError {
            field: Some(field.into()),
            ..ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
        }
    }

    /// A `404` for the `what` named `id`.
    pub fn not_found(what: &str, id: &str) -> ApiError {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no {what} {id:?}"),
        )
    }

    /// A failure of chirp's own; the detail goes to the log only.
    pub fn internal(detail: impl std::fmt::Display) -> ApiError {
        tracing::error!(error = %detail, "request failed");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "chirp could not complete the request; the error is logged",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            code: self.code,
            message: &self.message,
            field: self.field.as_deref(),
        };
        let mut response = (self.status, Json(body)).into_response();
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        if self.status == StatusCode::PAYLOAD_TOO_LARGE {
            // The rest of the body is never read, so the connection cannot
            // carry another request: say so, or a client's next request
            // on it meets a closed socket.
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        if matches!(e, StoreError::NotEmbedded) {
            return ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "not_embedded",
                e.to_string(),
            );
        }
        tracing::error!(error = %e, "store request failed");
        if e.outcome_unknown() {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "store_unconfirmed",
                "the message store could not confirm the request; a change it asked for may \
                 have been made, so read it back before trying again",
            )
        } else {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "store_unavailable",
                "the message store is not available; try again",
            )
        }
    }
}

impl From<LookupError> for ApiError {
    fn from(e: LookupError) -> ApiError {
        match e {
            LookupError::Store(e) => e.into(),
            LookupError::Closed => QueueError::Closed.into(),
        }
    }
}

impl From<QueueError> for ApiError {
    fn from(e: QueueError) -> ApiError {
        match e {
            QueueError::Unavailable(_) => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "store_unavailable",
                "the message could not be stored; it was not accepted, try again",
            ),
            QueueError::Unconfirmed(_) => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "store_unconfirmed",
                "the message store did not confirm the write, so the message may have been \
                 stored; send the same request again with the same idempotency key and it is \
                 stored once",
            ),
            QueueError::Closed => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "shutting_down",
                "chirp is shutting down; the message was not accepted",
            ),
        }
    }
}

impl From<IntakeError> for ApiError {
    fn from(e: IntakeError) -> ApiError {
        let message = e.to_string();
        match e {
            IntakeError::Render(e) => e.into(),
            IntakeError::OverrideNotAllowed { .. } => {
                ApiError::invalid("override_opt_out", "override_not_allowed", message)
            }
            IntakeError::ExpiresBeforeSend { .. } => {
                ApiError::invalid("expires_at", "expires_before_send", message)
            }
            IntakeError::OutsideServiceWindow { .. } => {
                ApiError::invalid("text", "outside_service_window", message)
            }
            IntakeError::EventRefused { field, .. } => {
                ApiError::invalid(field, "invalid_event", message)
            }
            IntakeError::MissingEventData { variable, .. } => {
                ApiError::invalid(format!("data.{variable}"), "missing_variable", message)
            }
            IntakeError::HoldOutOfRange { .. } => {
                ApiError::invalid("data", "time_out_of_range", message)
            }
            IntakeError::Route(problem) => {
                let field = match problem.index() {
                    Some(i) => format!("fallback.{i}"),
                    None => "fallback".into(),
                };
                ApiError::invalid(field, "invalid_fallback", message)
            }
            IntakeError::RulesNotLoaded(_)
            | IntakeError::RulesFailed(_)
            | IntakeError::RulesOutOfBounds(_) => {
                tracing::error!(error = %message, "rules component unavailable");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "rules_unavailable",
                    "the rules component could not decide; nothing was stored, try again",
                )
            }
        }
    }
}

impl From<RenderError> for ApiError {
    fn from(e: RenderError) -> ApiError {
        let (code, field) = match &e {
            RenderError::UnknownTemplate(_) => ("unknown_template", "template".to_string()),
            RenderError::Disabled(_) => ("template_disabled", "template".to_string()),
            RenderError::MissingVariable(v) => ("missing_variable", format!("variables.{v}")),
            RenderError::InvalidVariable { name } => {
                ("invalid_variable", format!("variables.{name}"))
            }
            RenderError::Render(_) => ("render_failed", e.field().to_string()),
            RenderError::TooLarge(_) => ("render_too_large", e.field().to_string()),
            RenderError::NotApprovedFor { .. } => {
                ("not_approved_for_provider", "provider".to_string())
            }
        };
        ApiError::invalid(field, code, e.to_string())
    }
}
