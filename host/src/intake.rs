//! Intake: turning a request to send, or a business event, into the
//! messages to store, with the recipient's preferences applied.
//!
//! It decides what the customer will see (rendering) and whether they will
//! see it at all (opt-outs, disabled templates). A message that must not be
//! sent is still stored, as `skipped` with the reason, so history shows
//! what was decided and why. Nothing here does I/O but the call to the
//! rules component; storing is the caller's.

use serde_json::{Map, Value};

use crate::message::{ErrorNote, Millis, NewMessage, fingerprint, in_range};
use crate::phone::Phone;
use crate::plugins::{CallError, NotLoaded, Plugins, bindings};
use crate::preferences::Preferences;
use crate::templates::{Catalog, Category, RenderError};

/// Why a request or event cannot become messages. The API chooses how
/// each is answered (`api/error.rs`).
#[derive(Debug, Clone, thiserror::Error)]
pub enum IntakeError {
    #[error(transparent)]
    /// The template cannot be rendered with what was given.
    Render(#[from] RenderError),
    /// `override_opt_out` on a marketing template.
    #[error("{template} is a marketing template; opt-outs of marketing cannot be overridden")]
    OverrideNotAllowed {
        /// The marketing template.
        template: String,
    },
    /// The rules component found the event's data wrong: its words
    /// (bounded), and the field they name (`data` when they name none).
    #[error("{problem}")]
    EventRefused {
        /// The field the rules name, e.g. `data.order_id`.
        field: String,
        /// What the rules said.
        problem: String,
    },
    /// A template an event leads to needs a variable its data lacks.
    #[error("data.{variable} is required by template {template}")]
    MissingEventData {
        /// The variable, which the event's `data` should carry.
        variable: String,
        /// The template that needs it.
        template: String,
    },
    /// The rules hold a message until after the last time chirp keeps
    /// (they read it from the event's dates).
    #[error(
        "the rules hold {template} until after 9999-12-31T23:59:59.999Z, the last time chirp keeps; check the dates in data"
    )]
    HoldOutOfRange {
        /// The template held.
        template: String,
    },
    /// The rules component is not loaded.
    #[error("rules plugin {0:?} is not loaded")]
    RulesNotLoaded(String),
    /// The call to the rules component failed.
    #[error("the rules component failed: {0}")]
    RulesFailed(#[source] CallError),
    /// The rules component answered something chirp does not take.
    #[error("the rules component answered out of bounds: {0}")]
    RulesOutOfBounds(RulesAnswerError),
}

/// What is wrong with a rules component's answer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RulesAnswerError {
    /// More decisions than one event may lead to.
    #[error("{given} decisions for one event; chirp takes at most {MAX_DECISIONS}")]
    TooManyDecisions {
        /// How many the rules gave.
        given: usize,
    },
    /// A send whose variables are not a JSON object.
    #[error("variables for {template} are not a JSON object")]
    VariablesNotAnObject {
        /// The template of that send.
        template: String,
    },
    /// A skip of a template chirp does not have (its name is not
    /// repeated: it could be anything).
    #[error("a skip of a template chirp does not have ({name_bytes} bytes of name)")]
    UnknownSkippedTemplate {
        /// The length of the name given.
        name_bytes: usize,
    },
}

/// Who a message is for and how to address them.
pub struct Recipient<'a> {
    /// The recipient.
    pub phone: &'a Phone,
    /// Their saved preferences (defaults if none).
    pub preferences: &'a Preferences,
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
    /// Send even if the recipient opted out of all messages or of this
    /// template. Only for transactional templates.
    pub override_opt_out: bool,
    /// What the request asked for, when it is not this draft alone (an
    /// event's messages share the event's); `None`: the draft's phone,
    /// template and variables.
    pub fingerprint: Option<String>,
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
        )
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
        provider_template: Some(rendered.provider_template),
        reference_id: draft.reference_id,
        provider: provider.into(),
        created_at: now,
        not_before: draft.not_before.unwrap_or(now).max(now),
        skip,
        override_opt_out: draft.override_opt_out,
        fingerprint,
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
    /// Send despite an opt-out of everything.
    pub override_opt_out: bool,
}

/// Free text counts as transactional: a service reply inside the
/// customer's conversation window.
pub fn text_message(
    recipient: &Recipient<'_>,
    draft: TextDraft,
    provider: &str,
    now: Millis,
) -> NewMessage {
    let id = ulid::Ulid::new().to_string();
    let skip = opted_out(
        recipient.preferences,
        "",
        Category::Transactional,
        draft.override_opt_out,
    );
    NewMessage {
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
        not_before: draft.not_before.unwrap_or(now).max(now),
        skip,
        override_opt_out: draft.override_opt_out,
    }
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
) -> Option<ErrorNote> {
    let overridden = override_opt_out && category == Category::Transactional;
    if category == Category::Marketing && prefs.opt_out_marketing {
        return Some(note("opted_out", "recipient opted out of marketing".into()));
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

/// A business event as EarlyBird reports it.
pub struct Event<'a> {
    /// The event type, e.g. `order.created`.
    pub kind: &'a str,
    /// What the event is about (an order, a payment).
    pub reference_id: &'a str,
    /// Who it is about.
    pub phone: &'a Phone,
    /// Their name, if given.
    pub name: Option<&'a str>,
    /// Their language, if given (a saved preference wins).
    pub language: Option<&'a str>,
    /// Their time zone, if given (a saved preference wins).
    pub timezone: Option<&'a str>,
    /// The event's facts.
    pub data: &'a Map<String, Value>,
}

/// A decision of the rules not to send a template.
#[derive(Debug, Clone)]
pub struct Skipped {
    /// The template not sent.
    pub template: String,
    /// Why, in the rules' words (bounded).
    pub reason: String,
}

/// The most decisions a rules plugin may give for one event.
const MAX_DECISIONS: usize = 32;
/// The longest text of a rules plugin's that chirp keeps (an error or a
/// reason to skip), in characters.
const MAX_RULES_TEXT: usize = 1024;

/// A rules plugin's text (an error, a reason to skip) as chirp keeps it.
fn rules_text(text: &str) -> String {
    text.chars().take(MAX_RULES_TEXT).collect()
}

/// Asks rules component `rules` what `event` should send, renders every
/// message, and returns them all (skipped ones included) or the first
/// problem: nothing is half-made. The idempotency key of each message is
/// derived from the event, so the same event posted twice stores nothing
/// new.
pub async fn event_messages(
    plugins: &Plugins,
    rules: &str,
    catalog: &Catalog,
    event: &Event<'_>,
    preferences: &Preferences,
    provider: &str,
    now: Millis,
) -> Result<(Vec<NewMessage>, Vec<Skipped>), IntakeError> {
    let call = bindings::Event {
        kind: event.kind.into(),
        reference_id: event.reference_id.into(),
        payload: serde_json::to_string(event.data).unwrap_or_default(),
        recipient: bindings::Profile {
            phone: event.phone.as_str().into(),
            name: event.name.map(Into::into),
            language: event
                .language
                .map(Into::into)
                .or(preferences.language.clone()),
            timezone: event
                .timezone
                .map(Into::into)
                .or(preferences.timezone.clone()),
            opt_outs: preferences.opt_outs(),
        },
        now_ms: now.max(0) as u64,
    };
    let (_, answer) = plugins
        .decide(rules, &call)
        .await
        .map_err(|NotLoaded(name)| IntakeError::RulesNotLoaded(name.to_string()))?;
    let decisions = answer
        .map_err(IntakeError::RulesFailed)?
        .map_err(|problem| {
            // The rules name the field (`data.order_id`) in their message,
            // which is the caller's to read: a plugin's words, bounded.
            let problem = rules_text(&problem);
            let field = problem
                .split_whitespace()
                .find(|w| w.starts_with("data.") || w.starts_with("customer."))
                .unwrap_or("data")
                .trim_matches(|c: char| !c.is_alphanumeric() && c != '.' && c != '_')
                .chars()
                .take(64)
                .collect::<String>();
            IntakeError::EventRefused { field, problem }
        })?;
    // An event leads to a few messages; a plugin that answers thousands
    // would have chirp store them all in one transaction.
    if decisions.len() > MAX_DECISIONS {
        return Err(IntakeError::RulesOutOfBounds(
            RulesAnswerError::TooManyDecisions {
                given: decisions.len(),
            },
        ));
    }

    let recipient = Recipient {
        phone: event.phone,
        preferences,
    };
    let key = |template: &str| format!("event:{}:{}:{template}", event.kind, event.reference_id);
    // Every message of the event carries what the event said, so posting
    // the same (type, reference_id) again with other facts is refused
    // rather than answered with the first event's messages.
    let event_fingerprint =
        fingerprint(&["event", event.kind, event.phone.as_str(), &call.payload]);
    let mut messages = Vec::new();
    let mut skipped = Vec::new();
    for decision in decisions {
        match decision {
            bindings::Decision::Send(send) => {
                let variables = match serde_json::from_str(&send.variables) {
                    Ok(Value::Object(map)) => map,
                    _ => {
                        return Err(IntakeError::RulesOutOfBounds(
                            RulesAnswerError::VariablesNotAnObject {
                                template: send.template.clone(),
                            },
                        ));
                    }
                };
                let not_before = match send.not_before_ms.map(Millis::try_from) {
                    None => None,
                    Some(Ok(at)) if in_range(at) => Some(at),
                    // The rules read the time from the event's data (a
                    // delivery date): the caller's to fix.
                    Some(_) => {
                        return Err(IntakeError::HoldOutOfRange {
                            template: send.template.clone(),
                        });
                    }
                };
                let draft = Draft {
                    template: &send.template,
                    language: Some(&send.language),
                    variables: &variables,
                    reference_id: Some(event.reference_id.into()),
                    idempotency_key: Some(key(&send.template)),
                    not_before,
                    override_opt_out: false,
                    fingerprint: Some(event_fingerprint.clone()),
                };
                let message = template_message(catalog, &recipient, draft, provider, now).map_err(
                    |e| match e {
                        // A variable the template needs comes from the event's data.
                        IntakeError::Render(RenderError::MissingVariable(variable)) => {
                            IntakeError::MissingEventData {
                                variable,
                                template: send.template.clone(),
                            }
                        }
                        other => other,
                    },
                )?;
                if let Some(skip) = &message.skip {
                    skipped.push(Skipped {
                        template: send.template.clone(),
                        reason: skip.message.clone(),
                    });
                }
                messages.push(message);
            }
            bindings::Decision::Skip(skip) => {
                let Some(def) = catalog.get(&skip.template) else {
                    return Err(IntakeError::RulesOutOfBounds(
                        RulesAnswerError::UnknownSkippedTemplate {
                            name_bytes: skip.template.len(),
                        },
                    ));
                };
                let reason = rules_text(&skip.reason);
                // Kept as a skipped message so history shows the decision.
                let text = catalog
                    .render(&skip.template, event.language, event.data)
                    .map(|r| r.text)
                    .unwrap_or_default();
                let id = ulid::Ulid::new().to_string();
                messages.push(NewMessage {
                    id,
                    phone: event.phone.clone(),
                    template: Some(skip.template.clone()),
                    template_version: Some(def.version),
                    text,
                    provider_template: None,
                    reference_id: Some(event.reference_id.into()),
                    idempotency_key: key(&skip.template),
                    provider: provider.into(),
                    created_at: now,
                    not_before: now,
                    skip: Some(note("skipped_by_rules", reason.clone())),
                    override_opt_out: false,
                    fingerprint: event_fingerprint.clone(),
                });
                skipped.push(Skipped {
                    template: skip.template,
                    reason,
                });
            }
        }
    }
    Ok((messages, skipped))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A retry may spell its variables in another order: it is the same
    /// request.
    #[test]
    fn a_requests_fingerprint_ignores_the_order_of_its_variables() {
        let catalog =
            Catalog::load(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../templates"))
                .unwrap();
        let phone = Phone::parse("+919876543210").unwrap();
        let preferences = Preferences::defaults_for(phone.as_str());
        let recipient = Recipient {
            phone: &phone,
            preferences: &preferences,
        };
        let print = |variables: &str| {
            let variables: Map<String, Value> = serde_json::from_str(variables).unwrap();
            let draft = Draft {
                template: "order_confirmation",
                language: None,
                variables: &variables,
                reference_id: None,
                idempotency_key: Some("k".into()),
                not_before: None,
                override_opt_out: false,
                fingerprint: None,
            };
            template_message(&catalog, &recipient, draft, "myoperator", 0)
                .unwrap()
                .fingerprint
        };
        let a = print(r#"{"order_id": "A", "delivery_date": "d", "total_amount": 1}"#);
        let b = print(r#"{"total_amount": 1, "delivery_date": "d", "order_id": "A"}"#);
        let c = print(r#"{"order_id": "B", "delivery_date": "d", "total_amount": 1}"#);
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    fn catalog() -> Catalog {
        Catalog::load(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../templates"))
            .unwrap()
    }

    fn draft<'a>(template: &'a str, variables: &'a Map<String, Value>) -> Draft<'a> {
        Draft {
            template,
            language: None,
            variables,
            reference_id: None,
            idempotency_key: None,
            not_before: None,
            override_opt_out: false,
            fingerprint: None,
        }
    }

    /// Who opted out of what decides, per category, whether a message is
    /// stored to be sent or stored as skipped with the reason; an override
    /// lets transactional messages through and is refused for marketing.
    #[test]
    fn opt_outs_skip_by_category_and_an_override_is_for_transactional_only() {
        let catalog = catalog();
        let phone = Phone::parse("+919876543210").unwrap();
        let eta: Map<String, Value> = serde_json::from_str(r#"{"eta_time": "9 AM"}"#).unwrap();
        let none = Map::new();
        let message = |prefs: &Preferences, template: &str, variables, override_opt_out| {
            let recipient = Recipient {
                phone: &phone,
                preferences: prefs,
            };
            let draft = Draft {
                override_opt_out,
                ..draft(template, variables)
            };
            template_message(&catalog, &recipient, draft, "myoperator", 1_000)
        };
        let marketing_out = Preferences {
            opt_out_marketing: true,
            ..Preferences::defaults_for(phone.as_str())
        };
        let all_out = Preferences {
            opt_out_all: true,
            ..Preferences::defaults_for(phone.as_str())
        };
        // Marketing opt-out: marketing skipped, transactional sent.
        let skipped = message(&marketing_out, "churn_risk", &none, false).unwrap();
        assert!(skipped.skip.is_some(), "{skipped:?}");
        let sent = message(&marketing_out, "delivery_delayed", &eta, false).unwrap();
        assert!(sent.skip.is_none(), "{sent:?}");
        // Everything opted out: transactional skipped too, unless overridden.
        assert!(
            message(&all_out, "delivery_delayed", &eta, false)
                .unwrap()
                .skip
                .is_some()
        );
        assert!(
            message(&all_out, "delivery_delayed", &eta, true)
                .unwrap()
                .skip
                .is_none()
        );
        // Marketing is never overridden.
        assert!(matches!(
            message(&all_out, "churn_risk", &none, true),
            Err(IntakeError::OverrideNotAllowed { .. })
        ));
    }

    /// What the caller gave decides the key and the due time: no key is a
    /// key of its own, and a send time in the past is now.
    #[test]
    fn a_message_without_a_key_gets_its_own_and_is_never_due_before_it_was_accepted() {
        let catalog = catalog();
        let phone = Phone::parse("+919876543210").unwrap();
        let preferences = Preferences::defaults_for(phone.as_str());
        let recipient = Recipient {
            phone: &phone,
            preferences: &preferences,
        };
        let eta: Map<String, Value> = serde_json::from_str(r#"{"eta_time": "9 AM"}"#).unwrap();
        let early = Draft {
            not_before: Some(10),
            ..draft("delivery_delayed", &eta)
        };
        let message = template_message(&catalog, &recipient, early, "myoperator", 5_000).unwrap();
        assert_eq!(message.idempotency_key, message.id);
        assert_eq!(message.not_before, 5_000);
        assert_eq!(message.text, "⏰ Delivery ETA: 9 AM. Sorry for the delay!");
        // A missing variable or an unknown template is an error, not a
        // message with a hole in it.
        let none = Map::new();
        assert!(matches!(
            template_message(
                &catalog,
                &recipient,
                draft("delivery_delayed", &none),
                "m",
                0
            ),
            Err(IntakeError::Render(RenderError::MissingVariable(_)))
        ));
        assert!(matches!(
            template_message(&catalog, &recipient, draft("no_such", &none), "m", 0),
            Err(IntakeError::Render(RenderError::UnknownTemplate(_)))
        ));
    }

    /// Free text is transactional: an opt-out of marketing lets it
    /// through, an opt-out of everything skips it.
    #[test]
    fn free_text_is_skipped_only_by_an_opt_out_of_everything() {
        let phone = Phone::parse("+919876543210").unwrap();
        let text = |prefs: &Preferences| {
            let recipient = Recipient {
                phone: &phone,
                preferences: prefs,
            };
            let draft = TextDraft {
                text: "your milk is coming".into(),
                reference_id: None,
                idempotency_key: Some("k".into()),
                not_before: None,
                override_opt_out: false,
            };
            text_message(&recipient, draft, "myoperator", 0)
        };
        let marketing_out = Preferences {
            opt_out_marketing: true,
            ..Preferences::defaults_for(phone.as_str())
        };
        let all_out = Preferences {
            opt_out_all: true,
            ..Preferences::defaults_for(phone.as_str())
        };
        assert!(text(&marketing_out).skip.is_none());
        assert!(text(&all_out).skip.is_some());
    }
}
