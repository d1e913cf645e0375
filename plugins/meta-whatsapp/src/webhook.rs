//! Reads Meta's webhooks for the WhatsApp Business Cloud API: the `GET`
//! subscription challenge, and `POST` notifications signed with the app
//! secret, whose `entry[].changes[].value` carries `statuses[]` (receipts
//! for messages this number sent) and `messages[]` (what customers wrote).
//!
//! Pure functions, so every documented shape is unit-tested natively.

use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;

/// Where a sent message is, as Meta reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Sent on by WhatsApp.
    Sent,
    /// On the customer's phone.
    Delivered,
    /// Opened.
    Read,
    /// WhatsApp gave up.
    Failed,
}

/// A receipt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// The `wamid` the send returned.
    pub message_id: String,
    /// What happened.
    pub state: State,
    /// When, in ms.
    pub at: u64,
    /// For `failed`: the first error's code and explanation.
    pub error: Option<(String, String)>,
    /// The same for the same receipt every time Meta sends it.
    pub event_id: String,
}

/// What a customer wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inbound {
    /// `+` and the sender's digits.
    pub from: String,
    /// The text, a button's or list's title, a media's caption, or empty.
    pub text: String,
    /// When, in ms.
    pub at: u64,
    /// Meta's id of the message.
    pub event_id: String,
    /// The message it replied to.
    pub reply_to: Option<String>,
}

/// One thing a notification reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A receipt.
    Status(Status),
    /// A customer's message.
    Inbound(Inbound),
}

/// Why a request is not Meta's, or not readable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// No valid signature, or a wrong verify token.
    Unauthenticated(String),
    /// Not a shape this plugin knows.
    Malformed(String),
}

/// The longest challenge echoed back.
const MAX_CHALLENGE: usize = 256;

/// Answers the subscription check: `hub.mode=subscribe` and the verify
/// token the operator set, compared in constant time; the reply is
/// `hub.challenge`.
pub fn challenge(query: &[(String, String)], verify_token: &str) -> Result<String, Refusal> {
    let get = |name: &str| {
        query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    if get("hub.mode") != Some("subscribe") {
        return Err(Refusal::Malformed("not a subscription check".into()));
    }
    let given = get("hub.verify_token").unwrap_or_default();
    if !same(given.as_bytes(), verify_token.as_bytes()) {
        return Err(Refusal::Unauthenticated("wrong hub.verify_token".into()));
    }
    let challenge = get("hub.challenge").unwrap_or_default();
    if challenge.is_empty() || challenge.len() > MAX_CHALLENGE {
        return Err(Refusal::Malformed("no usable hub.challenge".into()));
    }
    Ok(challenge.to_string())
}

/// Checks `X-Hub-Signature-256: sha256=<hex>` against the HMAC-SHA256 of
/// the raw body under the app secret, in constant time.
pub fn verify_signature(
    header: Option<&str>,
    body: &[u8],
    app_secret: &str,
) -> Result<(), Refusal> {
    let hex = header
        .and_then(|h| h.trim().strip_prefix("sha256="))
        .ok_or_else(|| Refusal::Unauthenticated("no X-Hub-Signature-256".into()))?;
    let signature = decode_hex(hex)
        .ok_or_else(|| Refusal::Unauthenticated("X-Hub-Signature-256 is not hex".into()))?;
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(app_secret.as_bytes())
        .map_err(|_| Refusal::Unauthenticated("no app secret".into()))?;
    mac.update(body);
    mac.verify_slice(&signature)
        .map_err(|_| Refusal::Unauthenticated("the signature does not match the body".into()))
}

/// The events of a notification for the number `phone_number_id` (other
/// numbers of the same business account are skipped: their messages are
/// not this provider's).
pub fn events(body: &[u8], phone_number_id: &str) -> Result<Vec<Event>, Refusal> {
    let notification: Notification = serde_json::from_slice(body)
        .map_err(|e| Refusal::Malformed(format!("not a Meta notification: {e}")))?;
    if notification.object != "whatsapp_business_account" {
        return Err(Refusal::Malformed(format!(
            "object {:?} is not whatsapp_business_account",
            clip(&notification.object)
        )));
    }
    let mut events = Vec::new();
    for change in notification.entry.into_iter().flat_map(|e| e.changes) {
        let Some(value) = change.value.filter(|_| change.field == "messages") else {
            continue;
        };
        if value
            .metadata
            .as_ref()
            .is_some_and(|m| m.phone_number_id != phone_number_id)
        {
            continue;
        }
        for status in value.statuses {
            let state = match status.status.as_str() {
                "sent" => State::Sent,
                "delivered" => State::Delivered,
                "read" => State::Read,
                "failed" => State::Failed,
                // Other states (e.g. `deleted`, `warning`) say nothing
                // about delivery.
                _ => continue,
            };
            let at = seconds(&status.timestamp)?;
            let error = status.errors.into_iter().next().map(|e| {
                let details = e.error_data.and_then(|d| d.details).unwrap_or_default();
                let message = [
                    e.title.unwrap_or_default(),
                    e.message.unwrap_or_default(),
                    details,
                ]
                .into_iter()
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>()
                .join(": ");
                (
                    e.code.map_or_else(|| "failed".into(), |c| c.to_string()),
                    clip(&message),
                )
            });
            events.push(Event::Status(Status {
                event_id: format!("{}:{}:{}", status.id, status.status, status.timestamp),
                message_id: status.id,
                state,
                at,
                error,
            }));
        }
        for message in value.messages {
            let text = match message.kind.as_str() {
                "text" => message.text.map(|t| t.body),
                "button" => message.button.map(|b| b.text),
                "interactive" => message
                    .interactive
                    .and_then(|i| i.button_reply.or(i.list_reply))
                    .map(|r| r.title),
                _ => message
                    .image
                    .or(message.video)
                    .or(message.document)
                    .and_then(|m| m.caption),
            };
            events.push(Event::Inbound(Inbound {
                from: format!("+{}", message.from),
                text: text.unwrap_or_default(),
                at: seconds(&message.timestamp)?,
                event_id: message.id,
                reply_to: message.context.map(|c| c.id),
            }));
        }
    }
    Ok(events)
}

/// Meta's timestamps: seconds since the epoch, as a string.
fn seconds(timestamp: &str) -> Result<u64, Refusal> {
    timestamp
        .parse::<u64>()
        .ok()
        .and_then(|s| s.checked_mul(1000))
        .ok_or_else(|| Refusal::Malformed(format!("timestamp {:?}", clip(timestamp))))
}

fn same(a: &[u8], b: &[u8]) -> bool {
    // Constant time for equal lengths; the length of a token is not secret.
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn decode_hex(hex: &str) -> Option<Vec<u8>> {
    if hex.len() != 64 {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect()
}

fn clip(s: &str) -> String {
    s.chars().take(256).collect()
}

#[derive(Deserialize)]
struct Notification {
    object: String,
    #[serde(default)]
    entry: Vec<Entry>,
}

#[derive(Deserialize)]
struct Entry {
    #[serde(default)]
    changes: Vec<Change>,
}

#[derive(Deserialize)]
struct Change {
    #[serde(default)]
    field: String,
    value: Option<Value>,
}

#[derive(Deserialize)]
struct Value {
    metadata: Option<Metadata>,
    #[serde(default)]
    statuses: Vec<StatusObject>,
    #[serde(default)]
    messages: Vec<MessageObject>,
}

#[derive(Deserialize)]
struct Metadata {
    phone_number_id: String,
}

#[derive(Deserialize)]
struct StatusObject {
    id: String,
    status: String,
    timestamp: String,
    #[serde(default)]
    errors: Vec<StatusError>,
}

#[derive(Deserialize)]
struct StatusError {
    code: Option<i64>,
    title: Option<String>,
    message: Option<String>,
    error_data: Option<ErrorData>,
}

#[derive(Deserialize)]
struct ErrorData {
    details: Option<String>,
}

#[derive(Deserialize)]
struct MessageObject {
    from: String,
    id: String,
    timestamp: String,
    #[serde(rename = "type", default)]
    kind: String,
    text: Option<Text>,
    button: Option<Button>,
    interactive: Option<Interactive>,
    image: Option<Media>,
    video: Option<Media>,
    document: Option<Media>,
    context: Option<Context>,
}

#[derive(Deserialize)]
struct Text {
    body: String,
}

#[derive(Deserialize)]
struct Button {
    text: String,
}

#[derive(Deserialize)]
struct Interactive {
    button_reply: Option<Reply>,
    list_reply: Option<Reply>,
}

#[derive(Deserialize)]
struct Reply {
    title: String,
}

#[derive(Deserialize)]
struct Media {
    caption: Option<String>,
}

#[derive(Deserialize)]
struct Context {
    id: String,
}

#[cfg(test)]
mod tests;
