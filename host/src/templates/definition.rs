//! A template as an operator writes it (`templates/NAME.toml`, and each
//! saved version in the store): its name, category, variables, WhatsApp
//! mapping and texts, and the checks a definition must pass before any
//! text is compiled.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::DEFAULT_LANGUAGE;

/// Whether a message is a service message or promotion (opt-outs and quiet
/// hours apply to marketing only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Category {
    /// A service message: orders, deliveries, payments.
    Transactional,
    /// A promotion.
    Marketing,
}

impl Category {
    /// Both categories.
    pub const ALL: [Category; 2] = [Category::Transactional, Category::Marketing];

    /// Its name, as files, the store and the API spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Category::Transactional => "transactional",
            Category::Marketing => "marketing",
        }
    }
}

/// The WhatsApp-approved template a chirp template maps to.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WhatsappTemplate {
    /// The name WhatsApp approved.
    pub template: String,
    /// chirp variables in the order of the approved placeholders.
    pub parameters: Vec<String>,
}

/// The template a provider's platform approved for a chirp template: its
/// name there, the language codes it was approved in, and chirp's
/// variables in the order of its placeholders.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderTemplateDef {
    /// The approved name on the provider's platform.
    pub template: String,
    /// The language codes it was approved in (at least one).
    pub languages: Vec<String>,
    /// chirp variables in the order of the approved placeholders.
    pub parameters: Vec<String>,
    /// Cut each parameter to this many characters for this provider (an
    /// SMS template registered on India's DLT holds 30 per variable).
    /// None: send them whole, and a provider that cannot take one
    /// refuses the message rather than send it changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub truncate_to: Option<usize>,
}

/// One template file, as written in `templates/NAME.toml`; the store keeps
/// each saved version in the same shape.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TemplateDef {
    /// The template's name, e.g. `order_confirmation`.
    pub name: String,
    /// Service or promotion.
    pub category: Category,
    #[serde(default)]
    /// What it is for, for operators.
    pub description: String,
    /// Every variable a caller must give.
    pub variables: Vec<String>,
    #[serde(default = "enabled_by_default")]
    /// Whether messages may use it.
    pub enabled: bool,
    /// The approved template it maps to, for every provider not named in
    /// `providers`.
    pub whatsapp: WhatsappTemplate,
    /// The approved template per provider (plugin name). Once a template
    /// names any, a provider it does not name cannot send it: each
    /// platform account has its own approved templates.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub providers: BTreeMap<String, ProviderTemplateDef>,
    /// Text per language code; `en` is required.
    pub text: BTreeMap<String, String>,
    /// Example values of the variables, for previews.
    #[serde(default)]
    pub sample: BTreeMap<String, Value>,
    /// The routes a message falls back to, in order, after the provider
    /// it was accepted for (`sms:msg91-sms`): when that provider says the
    /// recipient cannot be reached on its channel, or its retries run
    /// out. Each names a provider with an approved template in
    /// `providers`. None: no fallback (a marketing template falls back
    /// only if it says so here).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fallback: Vec<String>,
    /// How long after its send a message that has a fallback route waits
    /// for the platform's `delivered` before it moves on (`15m`;
    /// [`MIN_DELIVER_WITHIN`] to [`MAX_DELIVER_WITHIN`]). Default: 15
    /// minutes for transactional templates, never for marketing. Only
    /// providers that report receipts (their plugin reads webhooks) are
    /// waited on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deliver_within: Option<String>,
    /// How long after its time to be sent a message of this template may
    /// still go out (`2h`, `30m`; [`MIN_EXPIRE_AFTER`] to
    /// [`MAX_EXPIRE_AFTER`]); after that it is `expired`. None: never.
    /// A send request's `expires_at` overrides it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expire_after: Option<String>,
    /// The saved version this definition is (1 for the seed from the file).
    #[serde(default)]
    pub version: u32,
}

fn enabled_by_default() -> bool {
    true
}

/// The channels a route may name.
pub const CHANNELS: [&str; 2] = ["whatsapp", "sms"];
/// The most routes a template falls back to.
pub const MAX_FALLBACKS: usize = 3;

/// A fallback route as written: `channel:provider`.
pub fn parse_route(route: &str) -> Option<(&str, &str)> {
    let (channel, provider) = route.split_once(':')?;
    (CHANNELS.contains(&channel) && crate::plugins::names::is_valid(provider))
        .then_some((channel, provider))
}

/// The shortest `deliver_within`.
pub const MIN_DELIVER_WITHIN: std::time::Duration = std::time::Duration::from_secs(1);
/// The longest `deliver_within`.
pub const MAX_DELIVER_WITHIN: std::time::Duration = std::time::Duration::from_secs(7 * 86_400);
/// `deliver_within` for a transactional template that says none.
pub const DEFAULT_DELIVER_WITHIN: std::time::Duration = std::time::Duration::from_secs(15 * 60);

/// The shortest `expire_after` a template may say.
pub const MIN_EXPIRE_AFTER: std::time::Duration = std::time::Duration::from_secs(60);
/// The longest: a year and a day.
pub const MAX_EXPIRE_AFTER: std::time::Duration = std::time::Duration::from_secs(366 * 86_400);

impl TemplateDef {
    /// How long a message with a fallback route waits for `delivered`
    /// before it moves on, if it waits at all.
    pub fn deliver_within(&self) -> Option<std::time::Duration> {
        match &self.deliver_within {
            Some(text) => humantime::parse_duration(text.trim()).ok(),
            None if self.category == Category::Transactional => Some(DEFAULT_DELIVER_WITHIN),
            None => None,
        }
    }

    /// Its `expire_after`, read; `None` when it has none or it does not
    /// read (which [`check_definition`] refuses before a definition is
    /// used).
    pub fn expire_after(&self) -> Option<std::time::Duration> {
        self.expire_after
            .as_deref()
            .and_then(|text| humantime::parse_duration(text.trim()).ok())
    }
}

/// What is wrong with a template definition: the field (`text.hi`,
/// `variables`), the line of the text if the problem is in one, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}{}: {reason}", line.map(|l| format!(" line {l}")).unwrap_or_default())]
pub struct TemplateProblem {
    /// The field at fault, e.g. `text.hi`.
    pub field: String,
    /// The line of the text, if the problem is on one.
    pub line: Option<usize>,
    /// Why.
    pub reason: String,
}

impl TemplateProblem {
    pub(super) fn new(field: impl Into<String>, reason: impl Into<String>) -> TemplateProblem {
        TemplateProblem {
            field: field.into(),
            line: None,
            reason: reason.into(),
        }
    }
}

pub(super) fn valid_language(code: &str) -> bool {
    (2..=8).contains(&code.len()) && code.bytes().all(|b| b.is_ascii_alphabetic() || b == b'-')
}

/// A platform's language code: `en`, `hi`, `en_US`.
fn valid_approved_language(code: &str) -> bool {
    (2..=8).contains(&code.len())
        && code
            .bytes()
            .all(|b| b.is_ascii_alphabetic() || b == b'-' || b == b'_')
}

pub(super) fn check_definition(def: &TemplateDef) -> Result<(), TemplateProblem> {
    let valid_name = !def.name.is_empty()
        && def
            .name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if !valid_name {
        return Err(TemplateProblem::new(
            "name",
            format!("{:?} must be lower case letters, digits and _", def.name),
        ));
    }
    if !def.text.contains_key(DEFAULT_LANGUAGE) {
        return Err(TemplateProblem::new(
            format!("text.{DEFAULT_LANGUAGE}"),
            "every template needs an English text",
        ));
    }
    if let Some(v) = def
        .variables
        .iter()
        .find(|v| v.is_empty() || !v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'))
    {
        return Err(TemplateProblem::new(
            "variables",
            format!("{v:?} is not a variable name (letters, digits, _)"),
        ));
    }
    if let Some(p) = def
        .whatsapp
        .parameters
        .iter()
        .find(|p| !def.variables.contains(p))
    {
        return Err(TemplateProblem::new(
            "whatsapp.parameters",
            format!("names {p:?}, which is not among the variables"),
        ));
    }
    if let Some(text) = &def.expire_after {
        let within = humantime::parse_duration(text.trim())
            .is_ok_and(|d| (MIN_EXPIRE_AFTER..=MAX_EXPIRE_AFTER).contains(&d));
        if !within {
            return Err(TemplateProblem::new(
                "expire_after",
                format!(
                    "{:?} is not a duration from 1m to 366d (such as 2h or 30m)",
                    text.chars().take(64).collect::<String>()
                ),
            ));
        }
    }
    if let Some(text) = &def.deliver_within {
        let within = humantime::parse_duration(text.trim())
            .is_ok_and(|d| (MIN_DELIVER_WITHIN..=MAX_DELIVER_WITHIN).contains(&d));
        if !within {
            return Err(TemplateProblem::new(
                "deliver_within",
                format!(
                    "{:?} is not a duration from 1s to 7d (such as 15m)",
                    text.chars().take(64).collect::<String>()
                ),
            ));
        }
    }
    if def.fallback.len() > MAX_FALLBACKS {
        return Err(TemplateProblem::new(
            "fallback",
            format!("at most {MAX_FALLBACKS} routes"),
        ));
    }
    for (i, route) in def.fallback.iter().enumerate() {
        let field = format!("fallback.{i}");
        let Some((_, provider)) = parse_route(route) else {
            return Err(TemplateProblem::new(
                field,
                format!(
                    "{:?} is not channel:provider (channel whatsapp or sms)",
                    route.chars().take(64).collect::<String>()
                ),
            ));
        };
        if !def.providers.contains_key(provider) {
            return Err(TemplateProblem::new(
                field,
                format!("{provider} has no approved template in providers"),
            ));
        }
        if def.fallback[..i]
            .iter()
            .any(|r| parse_route(r).is_some_and(|(_, p)| p == provider))
        {
            return Err(TemplateProblem::new(
                field,
                format!("{provider} is named twice"),
            ));
        }
    }
    if def.providers.len() > 32 {
        return Err(TemplateProblem::new(
            "providers",
            "at most 32 providers per template",
        ));
    }
    for (provider, approved) in &def.providers {
        let field = |part: &str| format!("providers.{provider}.{part}");
        if !crate::plugins::names::is_valid(provider) {
            return Err(TemplateProblem::new(
                "providers",
                format!(
                    "{:?} is not a provider name ({})",
                    provider.chars().take(64).collect::<String>(),
                    crate::plugins::names::NAME_RULE
                ),
            ));
        }
        if approved.template.is_empty()
            || approved.template.len() > 512
            || approved.template.chars().any(char::is_control)
        {
            return Err(TemplateProblem::new(
                field("template"),
                "the approved name is 1 to 512 printable bytes",
            ));
        }
        if approved.languages.is_empty()
            || approved.languages.len() > 64
            || approved
                .languages
                .iter()
                .any(|l| !valid_approved_language(l))
        {
            return Err(TemplateProblem::new(
                field("languages"),
                "1 to 64 language codes such as en or en_US",
            ));
        }
        if approved
            .truncate_to
            .is_some_and(|n| !(1..=4096).contains(&n))
        {
            return Err(TemplateProblem::new(
                field("truncate_to"),
                "1 to 4096 characters",
            ));
        }
        if let Some(p) = approved
            .parameters
            .iter()
            .find(|p| !def.variables.contains(p))
        {
            return Err(TemplateProblem::new(
                field("parameters"),
                format!("names {p:?}, which is not among the variables"),
            ));
        }
    }
    Ok(())
}
