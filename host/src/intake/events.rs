//! A business event -> the messages it leads to: the rules component
//! decides which templates, and when; every message is rendered before
//! anything is stored, and the rules' answer is bounded (decisions, texts,
//! times) whatever the plugin gives.

use serde_json::{Map, Value};

use super::{Chain, Draft, IntakeError, Recipient, RulesAnswerError, note, template_message};
use crate::message::{Millis, NewMessage, fingerprint, in_range};
use crate::phone::Phone;
use crate::plugins::{NotLoaded, Plugins, bindings};
use crate::templates::{Catalog, RenderError};

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

/// What the rules take back for an event: the messages of its reference
/// still waiting, of these templates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cancellation {
    /// chirp's template names (each one chirp has).
    pub templates: Vec<String>,
    /// Why, in the rules' words (bounded).
    pub reason: String,
}

/// What an event comes to.
#[derive(Debug)]
pub struct EventOutcome {
    /// Its messages, skipped ones included.
    pub messages: Vec<NewMessage>,
    /// The rules' decisions not to send.
    pub skipped: Vec<Skipped>,
    /// What it takes back.
    pub cancels: Vec<Cancellation>,
}

/// The most decisions a rules plugin may give for one event.
pub(super) const MAX_DECISIONS: usize = 32;
/// The most cancel requests for one event, and templates in one.
pub(super) const MAX_CANCELS: usize = 10;
pub(super) const MAX_CANCELLED_TEMPLATES: usize = 50;
/// The longest reason of a cancel request, in characters.
const MAX_CANCEL_REASON: usize = 500;
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
    recipient: &Recipient<'_>,
    provider: &str,
    now: Millis,
) -> Result<EventOutcome, IntakeError> {
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
                .or(recipient.preferences.language.clone()),
            timezone: event
                .timezone
                .map(Into::into)
                .or(recipient.preferences.timezone.clone()),
            opt_outs: recipient.preferences.opt_outs(),
        },
        now_ms: now.max(0) as u64,
    };
    let (_, answer) = plugins
        .decide(rules, &call)
        .await
        .map_err(|NotLoaded(name)| IntakeError::RulesNotLoaded(name.to_string()))?;
    let answer = answer
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
    let cancels = cancellations(catalog, answer.cancels)?;
    let routes = route_choices(catalog, &answer.routes)?;
    let decisions = answer.decisions;
    // An event leads to a few messages; a plugin that answers thousands
    // would have chirp store them all in one transaction.
    if decisions.len() > MAX_DECISIONS {
        return Err(IntakeError::RulesOutOfBounds(
            RulesAnswerError::TooManyDecisions {
                given: decisions.len(),
            },
        ));
    }

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
                    expires_at: None,

                    override_opt_out: false,
                    fingerprint: Some(event_fingerprint.clone()),
                    chain: routes
                        .iter()
                        .find(|(template, _)| *template == send.template)
                        .map_or(Chain::Template, |(_, fallback)| Chain::Rules(fallback)),
                };
                let message = template_message(catalog, recipient, draft, provider, now).map_err(
                    |e| match e {
                        IntakeError::Route(problem) => {
                            IntakeError::RulesOutOfBounds(RulesAnswerError::Route {
                                template: send.template.clone(),
                                problem,
                            })
                        }
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
                    expires_at: None,
                    lane: Default::default(),
                    fallbacks: Vec::new(),
                    deliver_within_ms: None,
                    skip: Some(note("skipped_by_rules", reason.clone())),
                    override_opt_out: false,
                    fingerprint: event_fingerprint.clone(),
                    callbacks: Vec::new(),
                });
                skipped.push(Skipped {
                    template: skip.template,
                    reason,
                });
            }
        }
    }
    Ok(EventOutcome {
        messages,
        skipped,
        cancels,
    })
}

/// The rules' route choices, checked: at most [`MAX_DECISIONS`], each of
/// a template chirp has, one per template. Each chain is checked with
/// the message it is for.
fn route_choices<'a>(
    catalog: &Catalog,
    choices: &'a [bindings::RouteChoice],
) -> Result<Vec<(&'a str, &'a [String])>, IntakeError> {
    if choices.len() > MAX_DECISIONS {
        return Err(IntakeError::RulesOutOfBounds(
            RulesAnswerError::TooManyRouteChoices {
                given: choices.len(),
            },
        ));
    }
    let mut routes: Vec<(&str, &[String])> = Vec::with_capacity(choices.len());
    for choice in choices {
        if catalog.get(&choice.template).is_none()
            || routes.iter().any(|(t, _)| *t == choice.template)
        {
            return Err(IntakeError::RulesOutOfBounds(
                RulesAnswerError::UnknownRoutedTemplate,
            ));
        }
        routes.push((&choice.template, &choice.fallback));
    }
    Ok(routes)
}

/// The rules' cancel requests, checked: at most [`MAX_CANCELS`], each of 1
/// to [`MAX_CANCELLED_TEMPLATES`] templates chirp has, with a reason.
fn cancellations(
    catalog: &Catalog,
    requests: Vec<bindings::CancelRequest>,
) -> Result<Vec<Cancellation>, IntakeError> {
    let refuse = |e| Err(IntakeError::RulesOutOfBounds(e));
    if requests.len() > MAX_CANCELS {
        return refuse(RulesAnswerError::TooManyCancels {
            given: requests.len(),
        });
    }
    let mut cancels = Vec::with_capacity(requests.len());
    for request in requests {
        if request.templates.is_empty() || request.templates.len() > MAX_CANCELLED_TEMPLATES {
            return refuse(RulesAnswerError::CancelTemplates {
                given: request.templates.len(),
            });
        }
        if let Some(unknown) = request.templates.iter().find(|t| catalog.get(t).is_none()) {
            return refuse(RulesAnswerError::UnknownCancelledTemplate {
                name_bytes: unknown.len(),
            });
        }
        let reason: String = request
            .reason
            .trim()
            .chars()
            .take(MAX_CANCEL_REASON)
            .collect();
        cancels.push(Cancellation {
            templates: request.templates,
            reason: if reason.is_empty() {
                "the rules cancelled it".into()
            } else {
                reason
            },
        });
    }
    Ok(cancels)
}
