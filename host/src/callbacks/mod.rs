//! Status callbacks: chirp posts each change of a message's state to the
//! endpoints an admin registered, signed as Standard Webhooks 1.0 says, so
//! that EarlyBird's backend learns of sends, receipts and cancellations
//! instead of polling.
//!
//! A change is written as one row per endpoint in the same transaction as
//! the change itself (`store::callbacks`), so a change is never without its
//! callbacks and a crash loses none. [`sender`] posts them, oldest first
//! per message and endpoint, retrying with backoff until the operator's
//! give-up time.
//!
//! # Layout
//! - this file: the states, a change, the endpoints as the domain knows
//!   them, the body posted.
//! - [`signature`]: secrets and the `webhook-signature` header (pure).
//! - [`registry`]: the endpoints in force, kept in memory beside the store.
//! - [`sender`]: the task that posts and records.

pub mod registry;
pub mod sender;
pub mod signature;

use serde::Serialize;

use crate::message::{Millis, rfc3339};

/// A state a message reaches that its callbacks report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum State {
    /// Stored, to be sent now or at its time.
    Accepted,
    /// Back in the queue after an admin's resend.
    Queued,
    /// The provider accepted it.
    Sent,
    /// The platform says the phone has it.
    Delivered,
    /// The platform says it was read.
    Read,
    /// Attempts ran out, the provider refused it, or the platform could
    /// not deliver it after the send.
    Failed,
    /// Never to be sent (an opt-out, a disabled template, a rule).
    Skipped,
    /// Taken back before it was sent.
    Cancelled,
    /// Its time passed before it could be sent.
    Expired,
    /// Moved to its next route (another provider or channel), to be sent
    /// there.
    FellBack,
}

impl State {
    /// Every state.
    pub const ALL: [State; 10] = [
        State::Accepted,
        State::Queued,
        State::Sent,
        State::Delivered,
        State::Read,
        State::Failed,
        State::Skipped,
        State::Cancelled,
        State::Expired,
        State::FellBack,
    ];

    /// Its name, as posted and stored.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Accepted => "accepted",
            State::Queued => "queued",
            State::Sent => "sent",
            State::Delivered => "delivered",
            State::Read => "read",
            State::Failed => "failed",
            State::Skipped => "skipped",
            State::Cancelled => "cancelled",
            State::Expired => "expired",
            State::FellBack => "fallback",
        }
    }

    /// The state named `name`.
    pub fn parse(name: &str) -> Option<State> {
        State::ALL.into_iter().find(|s| s.as_str() == name)
    }

    /// Breaks ties between changes of one message in the same
    /// millisecond: the order a message goes through them.
    pub fn rank(self) -> i64 {
        self as i64
    }

    /// The queue's state it reports, for a transition into `status`.
    pub fn of_status(status: crate::status::Status) -> Option<State> {
        use crate::status::Status;
        match status {
            Status::Queued => Some(State::Queued),
            Status::Sending => None,
            Status::Sent => Some(State::Sent),
            Status::Failed => Some(State::Failed),
            Status::Skipped => Some(State::Skipped),
            Status::Cancelled => Some(State::Cancelled),
            Status::Expired => Some(State::Expired),
        }
    }
}

/// One change of one message, to be reported to its endpoints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// chirp's message id.
    pub message_id: String,
    /// The caller's reference, if any.
    pub reference_id: Option<String>,
    /// chirp's template, if any.
    pub template: Option<String>,
    /// What it became.
    pub state: State,
    /// When (chirp's clock; for receipts, when chirp applied them).
    pub at: Millis,
    /// Why, for a failure, skip or cancellation.
    pub reason: Option<String>,
    /// The provider's or platform's code, for a failure.
    pub error_code: Option<String>,
}

/// A change and the endpoints it is reported to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// What happened.
    pub change: Change,
    /// Registered endpoints' ids.
    pub endpoints: Vec<String>,
}

impl Change {
    /// The `webhook-id` of this change: the same for every endpoint and
    /// every retry, so a receiver can drop a repeat.
    pub fn webhook_id(&self) -> String {
        webhook_id(&self.message_id, self.at, self.state)
    }
}

/// The `webhook-id` of message `message_id`'s change to `state` at `at`.
pub fn webhook_id(message_id: &str, at: Millis, state: State) -> String {
    format!("msg_{message_id}_{at}_{}", state.as_str())
}

/// The body posted for `change`: Standard Webhooks' `type`, `timestamp`
/// and `data`. Built the same way every time, so a retry posts the same
/// bytes under the same `webhook-id`.
pub fn body(change: &Change) -> Vec<u8> {
    #[derive(Serialize)]
    struct Body<'a> {
        r#type: String,
        timestamp: String,
        data: Data<'a>,
    }
    #[derive(Serialize)]
    struct Data<'a> {
        message_id: &'a str,
        reference_id: Option<&'a str>,
        template: Option<&'a str>,
        state: &'static str,
        at: String,
        at_ms: Millis,
        reason: Option<&'a str>,
        error_code: Option<&'a str>,
    }
    let body = Body {
        r#type: format!("message.{}", change.state.as_str()),
        timestamp: rfc3339(change.at),
        data: Data {
            message_id: &change.message_id,
            reference_id: change.reference_id.as_deref(),
            template: change.template.as_deref(),
            state: change.state.as_str(),
            at: rfc3339(change.at),
            at_ms: change.at,
            reason: change.reason.as_deref(),
            error_code: change.error_code.as_deref(),
        },
    };
    // A struct of strings and numbers always serialises.
    serde_json::to_vec(&body).unwrap_or_default()
}

/// Which messages an endpoint hears about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Every message accepted while it is registered.
    All,
    /// Only messages that name it when they are sent.
    Named,
}

impl Scope {
    /// Its name, as the API and the store spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::All => "all",
            Scope::Named => "named",
        }
    }

    /// The scope named `name`.
    pub fn parse(name: &str) -> Option<Scope> {
        match name {
            "all" => Some(Scope::All),
            "named" => Some(Scope::Named),
            _ => None,
        }
    }
}

/// A signing secret of an endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Secret {
    /// `whsec_` and the key in base64.
    pub value: String,
    /// Until when it signs (a rotated-out secret); `None`: for as long as
    /// it is the endpoint's newest.
    pub until: Option<Millis>,
}

/// A registered callback endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// A ULID.
    pub id: String,
    /// Where callbacks are posted.
    pub url: String,
    /// Which messages it hears about.
    pub scope: Scope,
    /// Newest first.
    pub secrets: Vec<Secret>,
    /// For admins.
    pub description: Option<String>,
    /// When it was registered.
    pub created_at: Millis,
    /// Who registered it (the admin's token subject).
    pub created_by: String,
}

/// When a callback that has failed `failures` times is tried again: the
/// first wait, doubled after each failure, at most an hour.
pub fn retry_in(first: std::time::Duration, failures: u32) -> std::time::Duration {
    let doubled = first.saturating_mul(1u32 << failures.saturating_sub(1).min(20));
    doubled.min(std::time::Duration::from_secs(3600))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_wait_doubles_to_an_hour() {
        let first = Duration::from_secs(5);
        let waits: Vec<u64> = (1..=12).map(|n| retry_in(first, n).as_secs()).collect();
        assert_eq!(
            waits,
            [5, 10, 20, 40, 80, 160, 320, 640, 1280, 2560, 3600, 3600]
        );
        assert_eq!(retry_in(first, u32::MAX), Duration::from_secs(3600));
    }

    #[test]
    fn a_retry_posts_the_same_bytes_under_the_same_id() {
        let change = Change {
            message_id: "01K".into(),
            reference_id: Some("SUB-1".into()),
            template: None,
            state: State::Cancelled,
            at: 1_750_000_000_000,
            reason: Some("cancelled by ops".into()),
            error_code: None,
        };
        assert_eq!(body(&change), body(&change.clone()));
        assert_eq!(change.webhook_id(), "msg_01K_1750000000000_cancelled");
        let posted: serde_json::Value = serde_json::from_slice(&body(&change)).unwrap();
        assert_eq!(posted["type"], "message.cancelled");
        assert_eq!(posted["data"]["reference_id"], "SUB-1");
    }
}
