//! The message and its attempts: the domain types every part of chirp
//! speaks, free of HTTP, SurrealDB and wasmtime.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::phone::Phone;

/// Milliseconds since the Unix epoch: how chirp stores and compares time.
pub type Millis = i64;

/// The last instant chirp stores: 9999-12-31T23:59:59.999Z, the last one
/// RFC 3339 can write. Every stored time lies in `0..=MAX_MILLIS`: times
/// from outside (a scheduled send, a rule's hold, a provider's
/// `Retry-After`) are refused or capped on the way in, and times chirp
/// computes saturate here instead of overflowing.
pub const MAX_MILLIS: Millis = 253_402_300_799_999;

/// Whether `at` is a time chirp can store.
pub fn in_range(at: Millis) -> bool {
    (0..=MAX_MILLIS).contains(&at)
}

/// `at` plus `wait`, saturating at [`MAX_MILLIS`].
pub fn after(at: Millis, wait: Duration) -> Millis {
    let wait = Millis::try_from(wait.as_millis()).unwrap_or(Millis::MAX);
    at.saturating_add(wait).min(MAX_MILLIS)
}

/// Now, in [`Millis`].
pub fn now_millis() -> Millis {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as Millis)
        .unwrap_or(0)
}

/// A [`Millis`] instant as RFC 3339 (`2026-11-24T17:45:25.123Z`). Never
/// panics: an instant outside the stored range (which no stored time is)
/// is shown at its edge.
pub fn rfc3339(at: Millis) -> String {
    let time = UNIX_EPOCH + Duration::from_millis(at.clamp(0, MAX_MILLIS) as u64);
    humantime::format_rfc3339_millis(time).to_string()
}

pub use crate::status::Status;

/// Which of the queue's two lanes a message waits in. Transactional
/// messages are claimed first and take the provider's turns first, so a
/// marketing blast, however large, never delays an order's confirmation;
/// both share the provider's pacing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Lane {
    /// Orders, deliveries, payments, free text.
    #[default]
    Transactional,
    /// Promotions: waits while anything transactional is due.
    Marketing,
}

impl Lane {
    /// Both lanes, in the order they are served.
    pub const ALL: [Lane; 2] = [Lane::Transactional, Lane::Marketing];
}

/// The approved provider template a message goes out as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderTemplate {
    /// The name WhatsApp approved.
    pub name: String,
    /// The language of the approved template.
    pub language: String,
    /// Placeholder values in the approved order.
    pub parameters: Vec<String>,
}

/// A route a message can fall back to: a provider on a channel, and what
/// that provider is to send (worked out when the message is accepted, so
/// a hop never needs the variables again).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// `whatsapp` or `sms`.
    pub channel: String,
    /// The provider plugin.
    pub provider: String,
    /// The approved template it sends, if any.
    pub template: Option<ProviderTemplate>,
}

/// One move of a message to its next route, for its timeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hop {
    /// When.
    pub at: Millis,
    /// The provider it left.
    pub from: String,
    /// The provider it moved to.
    pub to: String,
    /// The channel of the route it moved to (`whatsapp`, `sms`).
    pub channel: String,
    /// Why: the failure's code and explanation.
    pub reason: ErrorNote,
}

/// A message's move to its next route: the route becomes its provider
/// (and what that provider sends), its retry budget starts again, and the
/// hop joins its timeline.
#[derive(Debug, Clone)]
pub struct RouteChange {
    /// The route it moves to.
    pub to: Route,
    /// The routes after that one.
    pub rest: Vec<Route>,
    /// Every hop so far, this one last.
    pub hops: Vec<Hop>,
}

/// A message accepted by the API, ready to be stored.
#[derive(Debug, Clone)]
pub struct NewMessage {
    /// A ULID: unique, and sorts by time of acceptance.
    pub id: String,
    /// The recipient.
    pub phone: Phone,
    /// chirp's template (`order_confirmation`), if the message came from one.
    pub template: Option<String>,
    /// The version of the template it was rendered from.
    pub template_version: Option<u32>,
    /// The rendered text.
    pub text: String,
    /// How the provider should send it, for template messages.
    pub provider_template: Option<ProviderTemplate>,
    /// The caller's reference (an order id), if any.
    pub reference_id: Option<String>,
    /// The caller's key, or the message id when the caller gave none.
    pub idempotency_key: String,
    /// The provider plugin that will deliver it.
    pub provider: String,
    /// When it was accepted.
    pub created_at: Millis,
    /// When it may first be sent (now, or later for scheduled sends).
    pub not_before: Millis,
    /// After this it is never sent (`expired`): the caller's time, or its
    /// template's `expire_after` from `not_before`.
    pub expires_at: Option<Millis>,
    /// The lane it waits in (its template's category).
    pub lane: Lane,
    /// The routes it falls back to, in order, after `provider`.
    pub fallbacks: Vec<Route>,
    /// How long after a send it waits for `delivered` before it moves to
    /// its next route (only with a route to move to).
    pub deliver_within_ms: Option<Millis>,
    /// Why it will not be sent at all, if so: it is stored as `skipped`.
    pub skip: Option<ErrorNote>,
    /// The caller let a transactional message through an opt-out; checked
    /// again when it is sent.
    pub override_opt_out: bool,
    /// What the caller asked for, as a [`fingerprint`]: a request that
    /// reuses an idempotency key with something else is refused, not
    /// answered with the first message.
    pub fingerprint: String,
    /// The callback endpoints its changes are reported to.
    pub callbacks: Vec<String>,
}

/// A short, stable digest of what a request asked for (`parts` in order),
/// to tell a retry of a request from another request under the same key.
pub fn fingerprint(parts: &[&str]) -> String {
    use sha2::{Digest, Sha256};
    let mut hash = Sha256::new();
    for part in parts {
        hash.update((part.len() as u64).to_le_bytes());
        hash.update(part.as_bytes());
    }
    hash.finalize()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl NewMessage {
    /// The status it is stored with.
    pub fn initial_status(&self) -> Status {
        if self.skip.is_some() {
            Status::Skipped
        } else {
            Status::Queued
        }
    }
}

impl Message {
    /// Whether its time to be sent has passed at `now`.
    pub fn is_past_expiry(&self, now: Millis) -> bool {
        self.expires_at.is_some_and(|at| now >= at)
    }

    /// Its move to the next route at `now` for `reason`, if it has one.
    pub fn next_route(&self, reason: ErrorNote, now: Millis) -> Option<RouteChange> {
        let (to, rest) = self.fallbacks.split_first()?;
        crate::telemetry::fell_back(&self.provider, &to.provider);
        tracing::info!(message_id = %self.id, from = %self.provider, to = %to.provider, reason = %reason.code, "moving to the next route");
        let mut hops = self.hops.clone();
        hops.push(Hop {
            at: now,
            from: self.provider.clone(),
            to: to.provider.clone(),
            channel: to.channel.clone(),
            reason,
        });
        Some(RouteChange {
            to: to.clone(),
            rest: rest.to_vec(),
            hops,
        })
    }

    /// The channel it goes out on now: its last hop's, or WhatsApp's for
    /// a message still on the provider it was accepted for.
    pub fn channel(&self) -> &str {
        self.hops.last().map_or("whatsapp", |h| h.channel.as_str())
    }

    /// `due`, or the message's expiry if that comes first: a message is
    /// looked at again no later than when it expires, so that it is marked
    /// `expired` then instead of at a later retry's time.
    pub fn due_by_expiry(&self, due: Millis) -> Millis {
        self.expires_at.map_or(due, |at| due.min(at))
    }
}

/// A message as stored, with where it is in its life.
#[derive(Debug, Clone)]
pub struct Message {
    /// A ULID.
    pub id: String,
    /// Where it is in the queue.
    pub status: Status,
    /// The recipient, E.164.
    pub phone: String,
    /// chirp's template, if it came from one.
    pub template: Option<String>,
    /// The version of the template it was rendered from.
    pub template_version: Option<u32>,
    /// The rendered text.
    pub text: String,
    /// The approved template it goes out as, if any.
    pub provider_template: Option<ProviderTemplate>,
    /// The caller's reference, if any.
    pub reference_id: Option<String>,
    /// The caller's key, or the message's id.
    pub idempotency_key: String,
    /// The provider it goes through.
    pub provider: String,
    /// Attempts made so far, over the message's whole life.
    pub attempts: u32,
    /// Attempts made before the last resend; the retry budget counts from
    /// here.
    pub retry_base: u32,
    /// When it was accepted.
    pub created_at: Millis,
    /// When it last changed.
    pub updated_at: Millis,
    /// When the next attempt is due, while `queued`.
    pub due_at: Option<Millis>,
    /// After this it is never sent.
    pub expires_at: Option<Millis>,
    /// The lane it waits in.
    pub lane: Lane,
    /// The routes it may still fall back to, in order.
    pub fallbacks: Vec<Route>,
    /// How long after a send it waits for `delivered` before it moves on.
    pub deliver_within_ms: Option<Millis>,
    /// The routes it left, oldest first.
    pub hops: Vec<Hop>,
    /// When the provider accepted it.
    pub sent_at: Option<Millis>,
    /// The platform's id of it, if the provider gave one.
    pub provider_message_id: Option<String>,
    /// The last attempt's error (or a hold's reason), if any.
    pub last_error: Option<ErrorNote>,
    /// The caller let this transactional message through an opt-out.
    pub override_opt_out: bool,
    /// What the platform's receipts said after the send.
    pub delivery: crate::status::Delivery,
    /// The callback endpoints its changes are reported to.
    pub callbacks: Vec<String>,
    /// The earlier messages the event that made it cancelled.
    pub cancelled_messages: Vec<String>,
}

/// A code and a human explanation, as recorded for a failed attempt or a
/// message waiting for its provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorNote {
    /// A stable code, e.g. `HTTP_500`, `marketing_hours`.
    pub code: String,
    /// What happened, for a human.
    pub message: String,
}

/// A message claimed by a worker, with the token that proves the lease.
#[derive(Debug, Clone)]
pub struct Leased {
    /// The message, as it was claimed.
    pub message: Message,
    /// The token only the holder of the lease has.
    pub lease: String,
    /// An earlier lease of this message ran out (its worker died or hung)
    /// and this claim took the message back.
    pub lease_expired: bool,
}

/// What one provider call came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The provider accepted it.
    Sent {
        /// The platform's id of the message, if given.
        provider_message_id: Option<String>,
    },
    /// Worth another attempt, no sooner than `retry_after` if given.
    Retryable {
        /// What went wrong.
        error: ErrorNote,
        /// The provider's wish for a wait, if any.
        retry_after: Option<Duration>,
    },
    /// Never worth another attempt.
    Permanent {
        /// What went wrong.
        error: ErrorNote,
    },
}

impl Outcome {
    /// `sent`, `retryable` or `permanent`: for the audit trail and metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Sent { .. } => "sent",
            Outcome::Retryable { .. } => "retryable",
            Outcome::Permanent { .. } => "permanent",
        }
    }

    /// The platform's id of a sent message, if it gave one.
    pub fn provider_message_id(&self) -> Option<&String> {
        match self {
            Outcome::Sent {
                provider_message_id,
            } => provider_message_id.as_ref(),
            _ => None,
        }
    }

    /// The wait honoured before the next attempt, in milliseconds (at most
    /// `u64::MAX`), for a retryable outcome that asked for one.
    pub fn retry_after_ms(&self) -> Option<u64> {
        match self {
            Outcome::Retryable { retry_after, .. } => {
                retry_after.map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            }
            _ => None,
        }
    }

    /// The error, unless it was sent.
    pub fn error(&self) -> Option<&ErrorNote> {
        match self {
            Outcome::Sent { .. } => None,
            Outcome::Retryable { error, .. } | Outcome::Permanent { error } => Some(error),
        }
    }
}

/// One provider call, as the audit trail keeps it.
#[derive(Debug, Clone)]
pub struct Attempt {
    /// The message.
    pub message_id: String,
    /// 1 for the first attempt.
    pub number: u32,
    /// When the attempt began.
    pub started_at: Millis,
    /// The provider called.
    pub provider: String,
    /// Its version at the time of the call.
    pub provider_version: String,
    /// What came of it.
    pub outcome: Outcome,
    /// How long the call took.
    pub latency_ms: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_at_the_edges_of_the_range_are_written_and_never_overflow() {
        assert_eq!(rfc3339(MAX_MILLIS), "9999-12-31T23:59:59.999Z");
        assert_eq!(rfc3339(Millis::MAX), "9999-12-31T23:59:59.999Z");
        assert_eq!(rfc3339(-1), "1970-01-01T00:00:00.000Z");
        assert_eq!(after(1_000, Duration::from_millis(u64::MAX)), MAX_MILLIS);
        assert_eq!(after(Millis::MAX, Duration::from_secs(1)), MAX_MILLIS);
        assert_eq!(after(1_000, Duration::MAX), MAX_MILLIS);
        assert_eq!(after(1_000, Duration::from_secs(1)), 2_000);
        assert!(in_range(0) && in_range(MAX_MILLIS));
        assert!(!in_range(-1) && !in_range(MAX_MILLIS + 1));
    }
}
