//! A circuit breaker per provider: after a run of retryable failures
//! (errors, timeouts, 5xx) in a row, chirp stops calling the provider for
//! a while, and then lets one attempt through to see whether it is back.
//!
//! While a provider's breaker is open its messages are not attempted: a
//! message with a fallback route on the same channel moves there at once
//! (a standby account), any other waits, queued, until the breaker lets a
//! probe through. Nothing is lost and nothing is sent twice: the messages
//! never reach the provider, and go back to the queue under their lease.
//! A permanent failure does not count: the provider answered.
//!
//! Pure: the times are passed in; the scheduler asks before each attempt
//! ([`Breakers::admit`]) and tells it what came of each one
//! ([`Breakers::record`]).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use crate::message::{Millis, after};

/// How soon a message held while a probe is out looks again.
const PROBE_RECHECK: Duration = Duration::from_secs(1);

/// The operator's thresholds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerSettings {
    /// Retryable failures in a row that open the breaker.
    pub failures: u32,
    /// How long it stays open before a probe.
    pub open_for: Duration,
}

/// Where one provider's breaker is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Calls go through; this many retryable failures in a row so far.
    Closed {
        /// The run of failures.
        failures: u32,
    },
    /// No calls until then.
    Open {
        /// When a probe may go.
        until: Millis,
    },
    /// One probe is out, since then; the rest wait.
    HalfOpen {
        /// When the probe went.
        since: Millis,
    },
}

/// Whether an attempt at a provider may go now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Yes.
    Go,
    /// Yes, as the probe of an open breaker.
    Probe,
    /// No: the breaker is open (or its probe is out) until then.
    Wait(Millis),
}

/// What an attempt came to, as far as the breaker cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Call {
    /// The provider answered (sent, or refused for good).
    Answered,
    /// An error, a timeout, a 5xx: the provider may be down.
    Failed,
}

/// Every provider's breaker.
#[derive(Debug)]
pub struct Breakers {
    settings: BreakerSettings,
    states: Mutex<HashMap<String, BreakerState>>,
}

impl Breakers {
    /// All closed, under `settings`.
    pub fn new(settings: BreakerSettings) -> Breakers {
        Breakers {
            settings,
            states: Mutex::default(),
        }
    }

    fn states(&self) -> std::sync::MutexGuard<'_, HashMap<String, BreakerState>> {
        self.states.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether an attempt at `provider` may go at `now`. An open breaker
    /// whose time is up lets exactly one attempt through (the probe); a
    /// probe that never reports back is given up after `open_for`, and
    /// another goes.
    pub fn admit(&self, provider: &str, now: Millis) -> Admission {
        let mut states = self.states();
        let Some(state) = states.get_mut(provider) else {
            return Admission::Go;
        };
        match *state {
            BreakerState::Closed { .. } => Admission::Go,
            BreakerState::Open { until } if now < until => Admission::Wait(until),
            // While the probe is out, look again soon: it usually answers
            // in well under `open_for`, and then the rest may go.
            BreakerState::HalfOpen { since } if now < after(since, self.settings.open_for) => {
                Admission::Wait(after(since, self.settings.open_for).min(after(now, PROBE_RECHECK)))
            }
            BreakerState::Open { .. } | BreakerState::HalfOpen { .. } => {
                *state = BreakerState::HalfOpen { since: now };
                tracing::info!(provider, "circuit breaker half-open: one probe goes");
                Admission::Probe
            }
        }
    }

    /// What an attempt at `provider` came to, at `now`.
    pub fn record(&self, provider: &str, call: Call, now: Millis) {
        let mut states = self.states();
        let state = states
            .entry(provider.to_string())
            .or_insert(BreakerState::Closed { failures: 0 });
        let next = match (*state, call) {
            (_, Call::Answered) => BreakerState::Closed { failures: 0 },
            (BreakerState::Closed { failures }, Call::Failed)
                if failures + 1 < self.settings.failures =>
            {
                BreakerState::Closed {
                    failures: failures + 1,
                }
            }
            // A run long enough, a failed probe, or a failure reported
            // late by an attempt that started before the breaker opened.
            (_, Call::Failed) => BreakerState::Open {
                until: after(now, self.settings.open_for),
            },
        };
        let was_open = !matches!(*state, BreakerState::Closed { .. });
        let is_open = !matches!(next, BreakerState::Closed { .. });
        if was_open != is_open {
            crate::telemetry::breaker(provider, is_open);
            if is_open {
                tracing::warn!(provider, open_for = ?self.settings.open_for, "circuit breaker open: the provider failed too often in a row");
            } else {
                tracing::info!(
                    provider,
                    "circuit breaker closed: the provider answers again"
                );
            }
        }
        *state = next;
    }

    /// Every provider's breaker that has seen an attempt, by name.
    pub fn snapshot(&self) -> Vec<(String, BreakerState)> {
        let mut all: Vec<(String, BreakerState)> = self
            .states()
            .iter()
            .map(|(name, state)| (name.clone(), *state))
            .collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breakers() -> Breakers {
        Breakers::new(BreakerSettings {
            failures: 3,
            open_for: Duration::from_secs(10),
        })
    }

    #[test]
    fn a_run_of_failures_opens_and_one_probe_closes() {
        let b = breakers();
        assert_eq!(b.admit("p", 0), Admission::Go);
        b.record("p", Call::Failed, 1);
        b.record("p", Call::Failed, 2);
        // An answer in between starts the run again.
        b.record("p", Call::Answered, 3);
        b.record("p", Call::Failed, 4);
        b.record("p", Call::Failed, 5);
        assert_eq!(b.admit("p", 6), Admission::Go);
        b.record("p", Call::Failed, 6);
        assert_eq!(b.admit("p", 7), Admission::Wait(10_006));
        assert_eq!(b.admit("other", 7), Admission::Go);
        // Time's up: one probe, the rest still wait.
        assert_eq!(b.admit("p", 10_006), Admission::Probe);
        assert_eq!(b.admit("p", 10_007), Admission::Wait(11_007));
        b.record("p", Call::Answered, 10_100);
        assert_eq!(b.admit("p", 10_101), Admission::Go);
        assert_eq!(
            b.snapshot(),
            [("p".to_string(), BreakerState::Closed { failures: 0 })]
        );
    }

    #[test]
    fn a_failed_probe_opens_again_and_a_lost_probe_is_replaced() {
        let b = breakers();
        for t in 0..3 {
            b.record("p", Call::Failed, t);
        }
        assert_eq!(b.admit("p", 10_002), Admission::Probe);
        b.record("p", Call::Failed, 10_050);
        assert_eq!(b.admit("p", 10_051), Admission::Wait(20_050));
        assert_eq!(b.admit("p", 20_050), Admission::Probe);
        // The probe never reports: after open_for another goes.
        assert_eq!(b.admit("p", 30_049), Admission::Wait(30_050));
        assert_eq!(b.admit("p", 25_000), Admission::Wait(26_000));
        assert_eq!(b.admit("p", 30_050), Admission::Probe);
    }
}
