//! Intake: turning a request to send, or a business event, into the
//! messages to store, with the recipient's preferences applied.
//!
//! It decides what the customer will see (rendering) and whether they will
//! see it at all (opt-outs, disabled templates). A message that must not be
//! sent is still stored, as `skipped` with the reason, so history shows
//! what was decided and why. Nothing here does I/O but the call to the
//! rules component; storing is the caller's.

mod error;
mod events;
mod routes;

pub use error::{IntakeError, RulesAnswerError};
pub use events::{Cancellation, Event, EventOutcome, Skipped, event_messages};
pub use routes::{Chain, RouteProblem, fallback_routes};

use serde_json::{Map, Value};

use crate::message::{ErrorNote, Lane, Millis, NewMessage, Route, after, fingerprint};
use crate::phone::Phone;
use crate::preferences::{Consent, Preferences};
use crate::templates::{Catalog, Category, RenderError};

/// Who a message is for and how to address them.
pub struct Recipient<'a> {
    /// The recipient.
    pub phone: &'a Phone,
    /// Their saved preferences (defaults if none).
    pub preferences: &'a Preferences,
    /// The operator's consent policy.
    pub consent: Consent,
}

/// What a message is made of before it is rendered.
pub struct Draft<'a> {
    /// The template's name.
    pub template: &'a str,
    /// The language asked for; else the recipient's, else English.
    pub language: Option<&'a str>,
    /// The template's variables.
    pub variables: &'a Map<String, Value>,
    /// The caller's reference, if any.
    pub reference_id: Option<String>,
    /// The caller's key; none: the message's id.
    pub idempotency_key: Option<String>,
    /// Not before this time (never before acceptance).
    pub not_before: Option<Millis>,
    /// Never after this time; none: the template's `expire_after` from
    /// `not_before`, if it has one.
    pub expires_at: Option<Millis>,
    /// Send even if the recipient opted out of all messages or of this
    /// template. Only for transactional templates.
    pub override_opt_out: bool,
    /// What the request asked for, when it is not this draft alone (an
    /// event's messages share the event's); `None`: the draft's phone,
    /// template and variables.
    pub fingerprint: Option<String>,
    /// Who chose the routes it falls back to.
    pub chain: Chain<'a>,
}

/// Builds the message for a template `draft`: rendered, and `skip`ped if
/// the template is disabled or the recipient opted out.
pub fn template_message(
    catalog: &Catalog,
    recipient: &Recipient<'_>,
    draft: Draft<'_>,
    provider: &str,
    now: Millis,
) -> Result<NewMessage, IntakeError> {
    let def = catalog
        .get(draft.template)
        .ok_or_else(|| RenderError::UnknownTemplate(draft.template.into()))?;
    if draft.override_opt_out && def.category == Category::Marketing {
        return Err(IntakeError::OverrideNotAllowed {
            template: def.name.clone(),
        });
    }
    let language = draft.language.or(recipient.preferences.language.as_deref());
    let rendered = catalog.render(draft.template, language, draft.variables)?;
    let skip = if !def.enabled {
        Some(note(
            "template_disabled",
            format!("template {} is disabled", def.name),
        ))
    } else {
        opted_out(
            recipient.preferences,
            &def.name,
            def.category,
            draft.override_opt_out,
            recipient.consent,
        )
    };
    let fallbacks = fallback_routes(def, provider, draft.chain)?
        .into_iter()
        .map(|(channel, to)| {
            Ok(Route {
                channel: channel.into(),
                provider: to.into(),
                template: Some(catalog.provider_template(
                    &def.name,
                    to,
                    &rendered.language,
                    draft.variables,
                )?),
            })
        })
        .collect::<Result<Vec<Route>, RenderError>>()?;
    let not_before = draft.not_before.unwrap_or(now).max(now);
    let expires_at = match draft.expires_at {
        Some(at) => Some(expiry(at, not_before)?),
        None => def.expire_after().map(|d| after(not_before, d)),
    };
    let id = ulid::Ulid::new().to_string();
    let fingerprint = draft.fingerprint.unwrap_or_else(|| {
        let variables = serde_json::to_string(draft.variables).unwrap_or_default();
        fingerprint(&["template", recipient.phone.as_str(), &def.name, &variables])
    });
    Ok(NewMessage {
        idempotency_key: draft.idempotency_key.unwrap_or_else(|| id.clone()),
        id,
        phone: recipient.phone.clone(),
        template: Some(def.name.clone()),
        template_version: Some(rendered.version),
        text: rendered.text,
        provider_template: Some(catalog.provider_template(
            &def.name,
            provider,
            &rendered.language,
            draft.variables,
        )?),
        reference_id: draft.reference_id,
        provider: provider.into(),
        created_at: now,
        not_before,
        expires_at,
        lane: match def.category {
            Category::Marketing => Lane::Marketing,
            Category::Transactional => Lane::Transactional,
        },
        deliver_within_ms: def
            .deliver_within()
            .filter(|_| !fallbacks.is_empty())
            .map(|d| d.as_millis() as Millis),
        fallbacks,
        skip,
        override_opt_out: draft.override_opt_out,
        fingerprint,
        callbacks: Vec::new(),
    })
}

/// A free-text message before it is stored.
pub struct TextDraft {
    /// The text.
    pub text: String,
    /// The caller's reference, if any.
    pub reference_id: Option<String>,
    /// The caller's key; none: the message's id.
    pub idempotency_key: Option<String>,
    /// Not before this time (never before acceptance).
    pub not_before: Option<Millis>,
    /// Never after this time.
    pub expires_at: Option<Millis>,
    /// Send despite an opt-out of everything.
    pub override_opt_out: bool,
}

/// Free text counts as transactional: a service reply inside the
/// customer's conversation window. With the operator's consent policy
/// asking for it, the window must be open when the message would go out:
/// `last_inbound` (when the customer last wrote) less than
/// [`SERVICE_WINDOW`](crate::preferences::SERVICE_WINDOW) before it.
pub fn text_message(
    recipient: &Recipient<'_>,
    draft: TextDraft,
    provider: &str,
    now: Millis,
    last_inbound: Option<Millis>,
) -> Result<NewMessage, IntakeError> {
    let not_before = draft.not_before.unwrap_or(now).max(now);
    let expires_at = draft
        .expires_at
        .map(|at| expiry(at, not_before))
        .transpose()?;
    if recipient.consent.free_text_needs_window
        && last_inbound.is_none_or(|at| at + crate::preferences::SERVICE_WINDOW <= not_before)
    {
        return Err(IntakeError::OutsideServiceWindow {
            phone: recipient.phone.as_str().into(),
            last: last_inbound.map_or_else(
                || "never wrote".to_string(),
                |at| format!("last wrote at {}", crate::message::rfc3339(at)),
            ),
        });
    }
    let id = ulid::Ulid::new().to_string();
    let skip = opted_out(
        recipient.preferences,
        "",
        Category::Transactional,
        draft.override_opt_out,
        recipient.consent,
    );
    Ok(NewMessage {
        idempotency_key: draft.idempotency_key.unwrap_or_else(|| id.clone()),
        fingerprint: fingerprint(&["text", recipient.phone.as_str(), &draft.text]),
        id,
        phone: recipient.phone.clone(),
        template: None,
        template_version: None,
        text: draft.text,
        provider_template: None,
        reference_id: draft.reference_id,
        provider: provider.into(),
        created_at: now,
        not_before,
        expires_at,
        lane: Lane::Transactional,
        fallbacks: Vec::new(),
        deliver_within_ms: None,
        skip,
        override_opt_out: draft.override_opt_out,
        callbacks: Vec::new(),
    })
}

/// A caller's expiry, which must leave the message a moment to be sent:
/// one at or before its time to be sent would never go out.
fn expiry(expires_at: Millis, not_before: Millis) -> Result<Millis, IntakeError> {
    if expires_at <= not_before {
        return Err(IntakeError::ExpiresBeforeSend {
            expires_at: crate::message::rfc3339(expires_at),
            not_before: crate::message::rfc3339(not_before),
        });
    }
    Ok(expires_at)
}

fn note(code: &str, message: String) -> ErrorNote {
    ErrorNote {
        code: code.into(),
        message,
    }
}

/// Whether `prefs` keep a message of `template` (`category`) from being
/// sent, and why. Asked at intake and again just before each send
/// ([`crate::gate`]).
pub fn opted_out(
    prefs: &Preferences,
    template: &str,
    category: Category,
    override_opt_out: bool,
    consent: Consent,
) -> Option<ErrorNote> {
    let overridden = override_opt_out && category == Category::Transactional;
    if category == Category::Marketing && prefs.opt_out_marketing {
        return Some(note("opted_out", "recipient opted out of marketing".into()));
    }
    if category == Category::Marketing && consent.marketing_needs_opt_in && prefs.opt_in.is_none() {
        return Some(note(
            "no_opt_in",
            "recipient has not opted in to marketing".into(),
        ));
    }
    if overridden {
        return None;
    }
    if prefs.opt_out_all {
        return Some(note(
            "opted_out",
            "recipient opted out of all messages".into(),
        ));
    }
    if !template.is_empty() && prefs.opt_out_templates.iter().any(|t| t == template) {
        return Some(note(
            "opted_out",
            format!("recipient opted out of {template}"),
        ));
    }
    None
}

#[cfg(test)]
mod tests;
