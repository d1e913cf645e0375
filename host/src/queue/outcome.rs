//! What an attempt comes to: the message's next state under the retry
//! policy (sent, retried, failed, or moved to its next route), what its
//! callback endpoints hear of it, and what its provider's breaker learns.
//! Pure.

use std::time::Duration;

use super::before_send::untouched;
use super::breaker::Call;
use super::retry::{Next, RetryPolicy};
use crate::callbacks::{Change, Report, State as CallbackState};
use crate::delivery::Delivery;
use crate::message::{ErrorNote, Leased, Message, Millis, RouteChange, Status, after};
use crate::store::{Completion, MessagePatch};

/// How long a message waits before chirp looks again for its provider when
/// the provider is not loaded (a load of that provider releases it sooner).
const PROVIDER_MISSING_RECHECK: Duration = Duration::from_secs(30);

/// The message's next state after `delivery`, per the retry policy; a
/// send through a provider that reports receipts (`receipts`) of a
/// message with a route left is watched for `delivered`.
pub fn complete(
    leased: &Leased,
    delivery: Delivery,
    policy: &RetryPolicy,
    receipts: bool,
    now: Millis,
) -> Completion {
    let message = &leased.message;
    let mut hop = None;
    // An attempt says its own error, or none.
    let mut patch = MessagePatch {
        error_code: None,
        error_message: None,
        ..untouched(leased, now)
    };
    let attempt = match delivery {
        Delivery::Deferred(note) => {
            patch.due_at = Some(message.due_by_expiry(after(now, PROVIDER_MISSING_RECHECK)));
            patch.waiting_for = Some(message.provider.clone());
            patch.error_code = Some(note.code);
            patch.error_message = Some(note.message);
            None
        }
        Delivery::Attempted(mut attempt) => {
            // The audit trail keeps the wait chirp honoured, not the
            // provider's wish (which can be any u64).
            if let crate::message::Outcome::Retryable { retry_after, .. } = &mut attempt.outcome {
                *retry_after = policy.honoured(*retry_after);
            }
            patch.attempts = attempt.number.into();
            let made_this_round = attempt.number.saturating_sub(message.retry_base);
            match policy.next(made_this_round, &attempt.outcome, now) {
                Next::Sent => {
                    crate::telemetry::sent();
                    patch.status = Status::Sent;
                    patch.sent_at = Some(now);
                    if let crate::message::Outcome::Sent {
                        provider_message_id,
                    } = &attempt.outcome
                    {
                        patch.provider_message_id = provider_message_id.clone();
                    }
                }
                Next::Failed => {
                    let reason = attempt.outcome.error().cloned().unwrap_or(ErrorNote {
                        code: "failed".into(),
                        message: String::new(),
                    });
                    hop = message
                        .next_route(reason, now)
                        .filter(|_| policy.falls_back(&attempt.outcome));
                    if hop.is_some() {
                        patch.due_at = Some(message.due_by_expiry(now));
                    } else {
                        crate::telemetry::failed();
                        patch.status = Status::Failed;
                    }
                }
                Next::RetryAt(at) => {
                    crate::telemetry::retry();
                    patch.due_at = Some(message.due_by_expiry(at));
                }
            }
            if let Some(error) = attempt.outcome.error() {
                patch.error_code = Some(error.code.clone());
                patch.error_message = Some(error.message.clone());
            }
            Some(attempt)
        }
    };
    let report = match &hop {
        Some(change) => fallback_report(message, change, now),
        None => report(message, &patch, now),
    };
    let watch_at = message
        .deliver_within_ms
        .filter(|_| receipts && patch.status == Status::Sent && !message.fallbacks.is_empty())
        .map(|within| now.saturating_add(within).min(crate::message::MAX_MILLIS));
    Completion {
        message_id: message.id.clone(),
        lease: leased.lease.clone(),
        patch,
        attempt,
        report,
        hop,
        watch_at,
    }
}

/// The change `patch` makes to `message` that its callback endpoints hear
/// of: sent, failed or skipped (a retry is no change for them).
pub(super) fn report(message: &Message, patch: &MessagePatch, now: Millis) -> Option<Report> {
    if message.callbacks.is_empty() || patch.status == Status::Queued {
        return None;
    }
    let state = CallbackState::of_status(patch.status)?;
    Some(Report {
        change: Change {
            message_id: message.id.clone(),
            reference_id: message.reference_id.clone(),
            template: message.template.clone(),
            state,
            at: now,
            reason: patch.error_message.clone(),
            error_code: patch.error_code.clone(),
        },
        endpoints: message.callbacks.clone(),
    })
}

/// What an attempt tells the provider's breaker: nothing if no call was
/// made (the provider is not loaded).
pub(super) fn breaker_call(delivery: &Delivery) -> Option<Call> {
    match delivery {
        Delivery::Deferred(_) => None,
        Delivery::Attempted(attempt) => Some(match attempt.outcome {
            crate::message::Outcome::Retryable { .. } => Call::Failed,
            _ => Call::Answered,
        }),
    }
}

/// The move to the next route, for the message's callback endpoints.
pub(crate) fn fallback_report(
    message: &Message,
    change: &RouteChange,
    now: Millis,
) -> Option<Report> {
    let hop = change.hops.last()?;
    (!message.callbacks.is_empty()).then(|| Report {
        change: Change {
            message_id: message.id.clone(),
            reference_id: message.reference_id.clone(),
            template: message.template.clone(),
            state: CallbackState::FellBack,
            at: now,
            reason: Some(format!(
                "moved from {} to {}:{}: {}",
                hop.from, change.to.channel, hop.to, hop.reason.message
            )),
            error_code: Some(hop.reason.code.clone()),
        },
        endpoints: message.callbacks.clone(),
    })
}
