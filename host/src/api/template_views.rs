//! How `/api/notifications/templates` shows a template: the definition
//! as the API writes it, with the approved template of each provider.

use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use crate::templates::{Category, TemplateDef};

/// A template as the API shows it.
#[derive(Serialize, ToSchema)]
#[schema(as = TemplateDef)]
pub(super) struct TemplateView {
    name: String,
    category: Category,
    description: String,
    /// Every variable a caller must give.
    variables: Vec<String>,
    enabled: bool,
    whatsapp: WhatsappTemplateView,
    /// The approved template per provider (plugin name). Once any is
    /// named, a provider not named cannot send this template (`422`
    /// `not_approved_for_provider`); with none, `whatsapp` serves every
    /// provider.
    providers: std::collections::BTreeMap<String, ApprovedTemplateView>,
    /// Text per language code; `en` is always there.
    text: std::collections::BTreeMap<String, String>,
    /// Example values of the variables, for previews.
    #[schema(value_type = Object)]
    sample: std::collections::BTreeMap<String, Value>,
    /// How long after its time to be sent a message may still go out;
    /// after that it is `expired`. Absent: messages do not expire unless
    /// the caller says when.
    #[serde(skip_serializing_if = "Option::is_none")]
    expire_after: Option<String>,
    /// The routes a message falls back to after its provider, in order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    fallback: Vec<String>,
    /// How long after a send a message with a route left waits for
    /// `delivered` (absent: 15 minutes for transactional, never for
    /// marketing).
    #[serde(skip_serializing_if = "Option::is_none")]
    deliver_within: Option<String>,
    /// The saved version in force.
    version: u32,
}

/// The WhatsApp-approved template a chirp template maps to.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = WhatsappTemplate)]
pub(super) struct WhatsappTemplateView {
    /// The name WhatsApp approved.
    template: String,
    /// chirp variables in the order of the approved placeholders.
    parameters: Vec<String>,
}

/// The template a provider's platform approved.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = ApprovedTemplate)]
pub(super) struct ApprovedTemplateView {
    /// The approved name on the provider's platform.
    #[schema(min_length = 1, max_length = 512)]
    template: String,
    /// The language codes it was approved in; a message in another
    /// language goes in the first of them.
    #[schema(min_items = 1, max_items = 64)]
    languages: Vec<String>,
    /// chirp variables in the order of the approved placeholders.
    parameters: Vec<String>,
    /// Each parameter cut to this many characters for this provider (30
    /// for a DLT-registered SMS); absent: sent whole, or refused by a
    /// provider that cannot take it.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 4096)]
    truncate_to: Option<usize>,
}

impl From<TemplateDef> for TemplateView {
    fn from(def: TemplateDef) -> TemplateView {
        TemplateView {
            name: def.name,
            category: def.category,
            description: def.description,
            variables: def.variables,
            enabled: def.enabled,
            whatsapp: WhatsappTemplateView {
                template: def.whatsapp.template,
                parameters: def.whatsapp.parameters,
            },
            providers: def
                .providers
                .into_iter()
                .map(|(provider, approved)| {
                    (
                        provider,
                        ApprovedTemplateView {
                            template: approved.template,
                            languages: approved.languages,
                            parameters: approved.parameters,
                            truncate_to: approved.truncate_to,
                        },
                    )
                })
                .collect(),
            text: def.text,
            sample: def.sample,
            expire_after: def.expire_after,
            fallback: def.fallback,
            deliver_within: def.deliver_within,
            version: def.version,
        }
    }
}
