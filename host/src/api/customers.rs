//! `/api/customers/{phone}`: a customer's rights over their data: access
//! (`GET .../export`: everything chirp holds for the phone) and erasure
//! (`DELETE`: cancel what is still to be sent, remove the rest, and keep a
//! record of the erasure that does not show the phone).

use axum::Json;
use axum::extract::{Path, State};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::{Admin, Caller};
use super::history::MessageView;
use super::preferences::{PreferencesView, phone};
use super::views::InboundView;
use super::{ApiError, AppState};
use crate::customers::Erased;
use crate::message::{now_millis, rfc3339};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(erase))
        .routes(routes!(export))
}

/// Everything chirp holds for one phone.
#[derive(Serialize, ToSchema)]
struct Export {
    phone: String,
    /// When this export was made.
    #[schema(format = DateTime)]
    exported_at: String,
    /// Saved preferences, or `null` if none were saved.
    preferences: Option<PreferencesView>,
    /// Every message to the phone, newest first, each with its attempts
    /// and receipts.
    messages: Vec<MessageView>,
    /// What the customer wrote to the business, oldest first.
    inbound: Vec<InboundView>,
    /// When the phone's data was erased before, if it was.
    #[schema(format = DateTime)]
    erased_at: Option<String>,
}

/// What an erasure did.
#[derive(Serialize, ToSchema)]
struct Erasure {
    /// The record of this erasure: a keyed hash of the phone, the same for
    /// every erasure of it.
    erasure_id: String,
    #[schema(format = DateTime)]
    erased_at: String,
    /// Messages whose phone, text, variables, reference and errors were
    /// removed; their state, times, template and codes stay.
    messages: usize,
    /// Of those, messages still to be sent: cancelled.
    cancelled: usize,
    /// Attempts whose error messages and platform ids were removed.
    attempts: usize,
    /// Whether saved preferences were deleted.
    preferences: bool,
    /// Caller keys whose request fingerprints were removed.
    keys: usize,
    /// Messages the customer sent that were deleted.
    inbound: usize,
}

#[utoipa::path(
    get,
    path = "/api/customers/{phone}/export",
    tag = "customers",
    description = "Everything chirp holds for a phone: preferences, messages and their \
        attempts (admin; a user: their own phone).",
    params(("phone" = String, Path, description = "The customer, E.164")),
    responses((status = 200, description = "Success", body = Export)),
)]
async fn export(
    caller: Caller,
    State(state): State<AppState>,
    Path(text): Path<String>,
) -> Result<Json<Export>, ApiError> {
    let phone = phone(&text)?;
    caller.may_access(phone.as_str())?;
    let name = state.erasure_key.name_of(phone.as_str());
    let data = state.store.customer_data(phone.as_str(), &name).await?;
    Ok(Json(Export {
        phone: phone.as_str().into(),
        exported_at: rfc3339(now_millis()),
        preferences: data.preferences.map(Into::into),
        messages: data
            .messages
            .into_iter()
            .map(|(message, attempts, receipts)| {
                MessageView::new(message, Some((attempts, receipts)))
            })
            .collect(),
        inbound: data.inbound.into_iter().map(InboundView::from).collect(),
        erased_at: data.erased_at.map(rfc3339),
    }))
}

#[utoipa::path(
    delete,
    path = "/api/customers/{phone}",
    tag = "customers",
    description = "Erases a customer (admin): messages still to be sent are cancelled; every \
        message's phone, text, variables, reference, errors and platform ids, their attempts' \
        errors and platform ids, their receipts' error messages, the messages the customer sent, \
        and the saved preferences are removed. What statistics and \
        the audit need stays. The erasure is recorded under a keyed hash of the phone.",
    params(("phone" = String, Path, description = "The customer, E.164")),
    responses((status = 200, description = "Erased", body = Erasure)),
)]
async fn erase(
    Admin(admin): Admin,
    State(state): State<AppState>,
    Path(text): Path<String>,
) -> Result<Json<Erasure>, ApiError> {
    let phone = phone(&text)?;
    let name = state.erasure_key.name_of(phone.as_str());
    let now = now_millis();
    let Erased {
        messages,
        cancelled,
        attempts,
        preferences,
        keys,
        inbound,
    } = state.store.erase(phone.as_str(), &name, now).await?;
    tracing::info!(
        by = %admin.subject,
        erasure = %name,
        messages,
        cancelled,
        "customer erased"
    );
    Ok(Json(Erasure {
        erasure_id: name,
        erased_at: rfc3339(now),
        messages,
        cancelled,
        attempts,
        preferences,
        keys,
        inbound,
    }))
}
