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
