//! Views of domain values that more than one resource shows: how the API
//! writes them in JSON and documents them.

use serde::Serialize;
use utoipa::ToSchema;

use crate::message::{ErrorNote, ProviderTemplate};

/// The approved provider template a message goes out as.
#[derive(Serialize, ToSchema)]
#[schema(as = ProviderTemplate)]
pub(super) struct ProviderTemplateView {
    /// The name WhatsApp approved.
    name: String,
    language: String,
    /// Placeholder values in the approved order.
    parameters: Vec<String>,
}

impl From<ProviderTemplate> for ProviderTemplateView {
    fn from(t: ProviderTemplate) -> ProviderTemplateView {
        ProviderTemplateView {
            name: t.name,
            language: t.language,
            parameters: t.parameters,
        }
    }
}

/// An error a provider (or chirp) gave for a message.
#[derive(Serialize, ToSchema)]
#[schema(as = ErrorNote)]
pub(super) struct ErrorNoteView {
    code: String,
    message: String,
}

impl From<ErrorNote> for ErrorNoteView {
    fn from(e: ErrorNote) -> ErrorNoteView {
        ErrorNoteView {
            code: e.code,
            message: e.message,
        }
    }
}

/// What the platform reported after the send.
#[derive(Serialize, ToSchema)]
#[schema(as = Delivery)]
pub(super) struct DeliveryView {
    /// `null` until the message is sent.
    status: Option<crate::status::DeliveryStatus>,
    delivered_at: Option<String>,
    read_at: Option<String>,
    /// When the platform gave up after accepting it, with its code.
    failed_at: Option<String>,
    error_code: Option<String>,
}

impl DeliveryView {
    pub(super) fn new(d: crate::status::Delivery, sent: bool) -> DeliveryView {
        let rfc3339 = crate::message::rfc3339;
        DeliveryView {
            status: sent.then(|| d.status()),
            delivered_at: d.delivered_at.map(rfc3339),
            read_at: d.read_at.map(rfc3339),
            failed_at: d.failed.as_ref().map(|(at, _)| rfc3339(*at)),
            error_code: d.failed.map(|(_, code)| code),
        }
    }
}

/// One receipt from the platform, as the API shows it.
#[derive(Serialize, ToSchema)]
#[schema(as = Receipt)]
pub(super) struct ReceiptView {
    state: crate::webhooks::Reported,
    /// When, by the platform's clock.
    at: String,
    #[schema(value_type = i64)]
    at_ms: crate::message::Millis,
    error_code: Option<String>,
    error_message: Option<String>,
    /// The plugin that read it.
    provider: String,
    received_at: String,
}

impl From<crate::store::StoredReceipt> for ReceiptView {
    fn from(r: crate::store::StoredReceipt) -> ReceiptView {
        ReceiptView {
            state: r.state,
            at: crate::message::rfc3339(r.at),
            at_ms: r.at,
            error_code: r.error.as_ref().map(|e| e.code.clone()),
            error_message: r.error.map(|e| e.message),
            provider: r.plugin,
            received_at: crate::message::rfc3339(r.received_at),
        }
    }
}

/// A message a customer sent to the business.
#[derive(Serialize, ToSchema)]
#[schema(as = InboundMessage)]
pub(super) struct InboundView {
    text: String,
    #[schema(format = DateTime)]
    at: String,
    /// The platform's id of the message it replied to, if any.
    reply_to: Option<String>,
    /// The provider that received it.
    provider: String,
}

impl From<crate::customers::InboundMessage> for InboundView {
    fn from(m: crate::customers::InboundMessage) -> InboundView {
        InboundView {
            text: m.text,
            at: crate::message::rfc3339(m.at),
            reply_to: m.reply_to,
            provider: m.plugin,
        }
    }
}
