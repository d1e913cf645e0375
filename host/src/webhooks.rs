//! What providers' webhooks tell chirp, once the provider plugin has
//! checked the request: receipts for messages it sent, and customers'
//! replies. The plugin answers in the WIT's shapes; these are chirp's own,
//! checked and bounded (`from_plugin`), so that nothing a stranger sent
//! reaches the store unbounded.

use crate::message::{ErrorNote, Millis};
use crate::phone::Phone;
use crate::plugins::bindings;

/// The longest id (event or message) chirp keeps from a webhook.
pub const MAX_ID_LEN: usize = 256;
/// The longest text of a customer's message chirp keeps, in characters
/// (WhatsApp's own limit is 4,096).
pub const MAX_TEXT_CHARS: usize = 4096;
/// The longest error code or explanation chirp keeps.
pub const MAX_ERROR_LEN: usize = 1024;

/// Where a sent message is on the customer's side, as the platform said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reported {
    /// The platform sent it on.
    Sent,
    /// On the customer's phone.
    Delivered,
    /// Opened.
    Read,
    /// The platform gave up on it.
    Failed,
}

impl Reported {
    /// Every state, in the order above.
    pub const ALL: [Reported; 4] = [
        Reported::Sent,
        Reported::Delivered,
        Reported::Read,
        Reported::Failed,
    ];

    /// The name the API and the store use.
    pub fn as_str(self) -> &'static str {
        match self {
            Reported::Sent => "sent",
            Reported::Delivered => "delivered",
            Reported::Read => "read",
            Reported::Failed => "failed",
        }
    }
}

/// A receipt for a message a provider sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusEvent {
    /// The platform's id of this event (unique per plugin).
    pub event_id: String,
    /// The platform's id of the message.
    pub provider_message_id: String,
    /// What the platform reported.
    pub state: Reported,
    /// When, by the platform's clock.
    pub at: Millis,
    /// For a failure: the platform's code and explanation.
    pub error: Option<ErrorNote>,
}

/// A message a customer sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundEvent {
    /// The platform's id of this event (unique per plugin).
    pub event_id: String,
    /// The sender.
    pub from: Phone,
    /// What they wrote.
    pub text: String,
    /// When, by the platform's clock.
    pub at: Millis,
    /// The platform's id of the message it replies to, if any.
    pub reply_to: Option<String>,
}

/// One thing a webhook reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebhookEvent {
    /// A receipt.
    Status(StatusEvent),
    /// A customer's message.
    Inbound(InboundEvent),
}

impl WebhookEvent {
    /// The event's id.
    pub fn event_id(&self) -> &str {
        match self {
            WebhookEvent::Status(s) => &s.event_id,
            WebhookEvent::Inbound(i) => &i.event_id,
        }
    }
}

/// Why the host refused what a plugin accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    /// More events in one request than the operator allows.
    #[error("{count} events in one request; at most {max}")]
    TooMany {
        /// How many the plugin answered.
        count: usize,
        /// The operator's bound.
        max: usize,
    },
    /// An event the host cannot keep.
    #[error("event {index}: {problem}")]
    Unusable {
        /// Its place in the plugin's answer.
        index: usize,
        /// What is wrong with it.
        problem: String,
    },
}

/// The plugin's events as chirp's, checked: at most `max` of them, ids of
/// at most [`MAX_ID_LEN`] bytes and not empty, a sender that is a phone
/// number, text and errors within bounds, times that fit.
pub fn from_plugin(
    events: Vec<bindings::WebhookEvent>,
    max: usize,
) -> Result<Vec<WebhookEvent>, EventError> {
    if events.len() > max {
        return Err(EventError::TooMany {
            count: events.len(),
            max,
        });
    }
    events
        .into_iter()
        .enumerate()
        .map(|(index, event)| {
            convert(event).map_err(|problem| EventError::Unusable { index, problem })
        })
        .collect()
}

fn convert(event: bindings::WebhookEvent) -> Result<WebhookEvent, String> {
    let id = |what: &str, value: String| {
        if value.is_empty() || value.len() > MAX_ID_LEN || value.chars().any(char::is_control) {
            Err(format!(
                "{what} is empty, longer than {MAX_ID_LEN} bytes or unprintable"
            ))
        } else {
            Ok(value)
        }
    };
    let at = |ms: u64| {
        // Up to the year 9999: a time the store and the API can write.
        Millis::try_from(ms)
            .ok()
            .filter(|ms| *ms <= 253_402_300_799_999)
            .ok_or_else(|| format!("time {ms} ms is past the year 9999"))
    };
    Ok(match event {
        bindings::WebhookEvent::Status(s) => {
            let error = match s.error {
                Some(e) if e.code.len() > MAX_ERROR_LEN || e.message.len() > MAX_ERROR_LEN => {
                    return Err(format!("an error over {MAX_ERROR_LEN} bytes"));
                }
                Some(e) => Some(ErrorNote {
                    code: e.code,
                    message: e.message,
                }),
                None => None,
            };
            WebhookEvent::Status(StatusEvent {
                event_id: id("event id", s.event_id)?,
                provider_message_id: id("provider message id", s.provider_message_id)?,
                state: match s.status {
                    bindings::DeliveryState::Sent => Reported::Sent,
                    bindings::DeliveryState::Delivered => Reported::Delivered,
                    bindings::DeliveryState::Read => Reported::Read,
                    bindings::DeliveryState::Failed => Reported::Failed,
                },
                at: at(s.at)?,
                error,
            })
        }
        bindings::WebhookEvent::Inbound(i) => {
            if i.text.chars().count() > MAX_TEXT_CHARS {
                return Err(format!("a text over {MAX_TEXT_CHARS} characters"));
            }
            WebhookEvent::Inbound(InboundEvent {
                event_id: id("event id", i.event_id)?,
                from: Phone::parse(&i.from)
                    .map_err(|e| format!("sender {:?}: {e}", truncate(&i.from)))?,
                text: i.text,
                at: at(i.at)?,
                reply_to: i.reply_to.map(|r| id("reply-to id", r)).transpose()?,
            })
        }
    })
}

/// The first 64 characters of `s`, for an error message.
fn truncate(s: &str) -> String {
    s.chars().take(64).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(event_id: &str, at: u64) -> bindings::WebhookEvent {
        bindings::WebhookEvent::Status(bindings::StatusUpdate {
            provider_message_id: "wamid.1".into(),
            status: bindings::DeliveryState::Delivered,
            at,
            error: None,
            event_id: event_id.into(),
        })
    }

    #[test]
    fn what_a_plugin_accepted_is_bounded_again_by_the_host() {
        assert_eq!(from_plugin(vec![status("e1", 1_000)], 10).unwrap().len(), 1);
        assert_eq!(
            from_plugin(vec![status("e", 1); 11], 10),
            Err(EventError::TooMany { count: 11, max: 10 })
        );
        for bad in [
            status("", 1),
            status(&"x".repeat(MAX_ID_LEN + 1), 1),
            status("a\nb", 1),
            status("e", u64::MAX),
            bindings::WebhookEvent::Inbound(bindings::InboundMessage {
                from: "not a phone".into(),
                text: "hi".into(),
                at: 1,
                event_id: "e".into(),
                reply_to: None,
            }),
            bindings::WebhookEvent::Inbound(bindings::InboundMessage {
                from: "+919876543210".into(),
                text: "x".repeat(MAX_TEXT_CHARS + 1),
                at: 1,
                event_id: "e".into(),
                reply_to: None,
            }),
        ] {
            let refused = from_plugin(vec![status("ok", 1), bad.clone()], 10);
            assert!(
                matches!(refused, Err(EventError::Unusable { index: 1, .. })),
                "{bad:?}: {refused:?}"
            );
        }
    }
}
