//! Between a claim and a provider call: the gate ([`crate::gate`]) on
//! each claimed message, the wait for a turn at the provider's rate, and
//! the completions of messages that do not go out (skipped, held, or handed
//! back because their turn came too late for their lease).
//!
//! **Invariant:** a provider call starts only if it can finish inside its
//! lease; a message whose turn at the rate would come later goes back to
//! the queue unsent, due at that turn, and the turn is not taken. Waiting
//! out a lease would let another worker take the message back and send it
//! a second time.

use super::scheduler::Scheduler;
use crate::delivery::Providers;
use crate::gate::{self, Verdict};
use crate::message::{ErrorNote, Lane, Leased, Millis, Status, after, now_millis};
use crate::preferences::Preferences;
use crate::store::{Completion, MessagePatch};

/// How long messages are held when the preferences they must be checked
/// against cannot be read.
const PREFERENCES_UNREADABLE_HOLD: std::time::Duration = std::time::Duration::from_secs(1);

impl<P: Providers> Scheduler<P> {
    /// What to do with each claimed message now ([`gate::verdict`]), with
    /// the recipients' preferences read in one query. If they cannot be
    /// read, nothing is sent: every message is held for a moment.
    pub(super) async fn verdicts(&self, claimed: &[Leased], now: Millis) -> Vec<Verdict> {
        let mut phones: Vec<String> = claimed.iter().map(|l| l.message.phone.clone()).collect();
        phones.sort();
        phones.dedup();
        let saved = match self.store.saved_preferences(&phones).await {
            Ok(saved) => saved,
            Err(e) => {
                tracing::error!(error = %e, "reading preferences before sending failed; holding the messages");
                return vec![Verdict::Hold(after(now, PREFERENCES_UNREADABLE_HOLD)); claimed.len()];
            }
        };
        let catalog = self.templates.current();
        claimed
            .iter()
            .map(|leased| {
                let phone = &leased.message.phone;
                let defaults;
                let preferences = match saved.get(phone) {
                    Some(p) => p,
                    None => {
                        defaults = Preferences::defaults_for(phone);
                        &defaults
                    }
                };
                gate::verdict(
                    &leased.message,
                    preferences,
                    &catalog,
                    self.marketing_hours,
                    self.consent,
                    now,
                )
            })
            .collect()
    }
}

/// The completion of a message the gate stopped, or `None` to send it.
pub(super) fn not_sent(leased: &Leased, verdict: Verdict, now: Millis) -> Option<Completion> {
    let mut patch = untouched(leased, now);
    match verdict {
        Verdict::Send => return None,
        Verdict::Skip(note) => {
            crate::telemetry::skipped(1);
            tracing::info!(message_id = %leased.message.id, reason = %note.message, "skipped before sending");
            patch.status = Status::Skipped;
            patch.error_code = Some(note.code);
            patch.error_message = Some(note.message);
        }
        Verdict::Expire(note) => {
            crate::telemetry::expired();
            tracing::info!(message_id = %leased.message.id, reason = %note.message, "expired before sending");
            patch.status = Status::Expired;
            patch.error_code = Some(note.code);
            patch.error_message = Some(note.message);
        }
        Verdict::Hold(at) => {
            patch.due_at = Some(leased.message.due_by_expiry(at));
            patch.error_code = Some("marketing_hours".into());
            patch.error_message = Some(format!(
                "held until {}: marketing goes out only in the recipient's marketing hours",
                crate::message::rfc3339(at)
            ));
        }
    }
    Some(Completion {
        message_id: leased.message.id.clone(),
        lease: leased.lease.clone(),
        report: super::outcome::report(&leased.message, &patch, now),
        hop: None,
        watch_at: None,
        patch,
        attempt: None,
    })
}

/// The provider's pacing, shared by both lanes, and who is waiting for a
/// turn: a marketing message lets every transactional one waiting at the
/// same provider go first.
pub(super) struct Pacing {
    /// One token bucket per provider.
    pub(super) rate: governor::DefaultKeyedRateLimiter<String>,
    /// Transactional messages waiting for a turn, by provider.
    transactional_waiting: std::sync::Mutex<std::collections::HashMap<String, usize>>,
}

/// How long a marketing message steps aside for a transactional one
/// before it looks again.
const STEP_ASIDE: std::time::Duration = std::time::Duration::from_millis(5);

impl Pacing {
    /// `per_second` turns a second for each provider.
    pub(super) fn new(per_second: std::num::NonZeroU32) -> Pacing {
        Pacing {
            rate: governor::RateLimiter::keyed(governor::Quota::per_second(per_second)),
            transactional_waiting: Default::default(),
        }
    }

    fn line(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, usize>> {
        self.transactional_waiting
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// A transactional message joins `provider`'s line.
    fn join(&self, provider: &str) {
        *self.line().entry(provider.to_string()).or_default() += 1;
    }

    /// It leaves the line (its turn came, or it gave up).
    fn leave(&self, provider: &str) {
        let mut line = self.line();
        if let Some(count) = line.get_mut(provider) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                line.remove(provider);
            }
        }
    }

    /// Whether a transactional message waits at `provider`: a read, no
    /// allocation, as marketing asks it every few milliseconds.
    fn transactional_waits(&self, provider: &str) -> bool {
        self.line().contains_key(provider)
    }
}

/// A transactional message's place in the line, given up when dropped.
struct InLine<'a> {
    pacing: &'a Pacing,
    provider: &'a str,
}

impl Drop for InLine<'_> {
    fn drop(&mut self) {
        self.pacing.leave(self.provider);
    }
}

/// Waits for a turn at `provider`'s rate, taking it only if it comes by
/// `latest_start`; otherwise returns, at once, when the turn would come.
/// A marketing message steps aside while a transactional one waits at
/// the same provider.
pub(super) async fn wait_turn(
    pacing: &Pacing,
    provider: &str,
    lane: Lane,
    latest_start: Millis,
) -> Result<(), Millis> {
    let key = provider.to_string();
    let _in_line = (lane == Lane::Transactional).then(|| {
        pacing.join(provider);
        InLine { pacing, provider }
    });
    loop {
        if lane == Lane::Marketing && pacing.transactional_waits(provider) {
            let turn = after(now_millis(), STEP_ASIDE);
            if turn > latest_start {
                return Err(turn);
            }
            tokio::time::sleep(STEP_ASIDE).await;
            continue;
        }
        match pacing.rate.check_key(&key) {
            Ok(()) => return Ok(()),
            Err(not_until) => {
                let wait = not_until.wait_time_from(governor::clock::Clock::now(
                    &governor::clock::DefaultClock::default(),
                ));
                let turn = after(now_millis(), wait);
                if turn > latest_start {
                    return Err(turn);
                }
                tokio::time::sleep(wait).await;
            }
        }
    }
}

/// A message handed back unsent because its turn at the provider's rate
/// comes too late for its lease: due again at `turn`, no attempt made.
pub(super) fn hand_back(leased: &Leased, turn: Millis, now: Millis) -> Completion {
    tracing::debug!(message_id = %leased.message.id, "the provider's pacing leaves too little of the lease for a call; the message goes back to the queue unsent");
    let mut patch = untouched(leased, now);
    patch.due_at = Some(leased.message.due_by_expiry(turn));
    patch.error_code = Some("paced".into());
    patch.error_message = Some(
        "waited its turn at the provider's rate for longer than its lease allows; queued again"
            .into(),
    );
    Completion {
        message_id: leased.message.id.clone(),
        lease: leased.lease.clone(),
        patch,
        attempt: None,
        report: None,
        hop: None,
        watch_at: None,
    }
}

/// A message whose provider's circuit breaker is open, not attempted: it
/// moves at once to its next route if that route is on the same channel
/// (a standby account), or goes back to the queue until the breaker lets
/// a probe through.
pub(super) fn around_open_breaker(leased: &Leased, until: Millis, now: Millis) -> Completion {
    let message = &leased.message;
    let mut patch = untouched(leased, now);
    let reason = ErrorNote {
        code: "breaker_open".into(),
        message: format!(
            "{}'s circuit breaker is open after a run of failures",
            message.provider
        ),
    };
    let standby = message
        .fallbacks
        .first()
        .is_some_and(|route| route.channel == message.channel());
    let hop = if standby {
        message.next_route(reason.clone(), now)
    } else {
        None
    };
    patch.due_at = Some(message.due_by_expiry(if hop.is_some() { now } else { until }));
    patch.error_code = Some(reason.code);
    patch.error_message = Some(reason.message);
    Completion {
        message_id: message.id.clone(),
        lease: leased.lease.clone(),
        report: None,
        hop,
        watch_at: None,
        patch,
        attempt: None,
    }
}

/// The patch that ends a lease and changes nothing else: queued, its
/// attempts and last error as they were, no due time (callers set one).
pub(super) fn untouched(leased: &Leased, now: Millis) -> MessagePatch {
    let message = &leased.message;
    MessagePatch {
        status: Status::Queued,
        attempts: message.attempts.into(),
        updated_at: now,
        due_at: None,
        sent_at: None,
        provider_message_id: None,
        error_code: message.last_error.as_ref().map(|e| e.code.clone()),
        error_message: message.last_error.as_ref().map(|e| e.message.clone()),
        waiting_for: None,
        lane: message.lane,
    }
}
