//! The retry rule, as a pure function: what happens to a message after an
//! attempt. The seed's rule is three attempts, 5, 10 and 15 minutes apart.
//!
//! A provider may ask for a longer wait (`Retry-After`); chirp honours it
//! up to `max_retry_after` (`CHIRP_MAX_RETRY_AFTER`, 1 h), so that no
//! number a provider or plugin gives can park a message out of sight, and
//! the due time saturates at the last time chirp stores instead of
//! overflowing.

use std::time::Duration;

use crate::message::{Millis, Outcome, after};

/// How many attempts and how far apart.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Attempts per round (a resend starts a new round).
    pub max_attempts: u32,
    /// Wait after the 1st, 2nd, ... failed attempt; the last entry repeats.
    pub backoff: Vec<Duration>,
    /// The longest wait a provider's `Retry-After` can ask for.
    pub max_retry_after: Duration,
    /// Permanent failure codes that say the recipient cannot be reached on
    /// the provider's channel: a message with a fallback route moves on.
    pub fallback_codes: Vec<String>,
}

/// Where a message goes after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// It went; nothing more.
    Sent,
    /// It fails for good.
    Failed,
    /// Another attempt at this time.
    RetryAt(Millis),
}

impl RetryPolicy {
    /// Whether a message that failed with `outcome` (its last attempt)
    /// moves to its next route, if it has one: its retries ran out, or
    /// the provider said the recipient cannot be reached on its channel.
    /// Any other permanent failure (credentials, a template the platform
    /// refused) would fail on the next route's provider no better, or is
    /// the provider's own trouble, and fails the message.
    pub fn falls_back(&self, outcome: &Outcome) -> bool {
        match outcome {
            Outcome::Sent { .. } => false,
            Outcome::Retryable { .. } => true,
            Outcome::Permanent { error } => self.fallback_codes.contains(&error.code),
        }
    }

    /// `attempts` counts the attempt just made.
    pub fn next(&self, attempts: u32, outcome: &Outcome, now: Millis) -> Next {
        match outcome {
            Outcome::Sent { .. } => Next::Sent,
            Outcome::Permanent { .. } => Next::Failed,
            Outcome::Retryable { .. } if attempts >= self.max_attempts => Next::Failed,
            Outcome::Retryable { retry_after, .. } => {
                let index = (attempts.max(1) - 1) as usize;
                let step = self
                    .backoff
                    .get(index)
                    .or(self.backoff.last())
                    .copied()
                    .unwrap_or_default();
                let wait = step.max(self.honoured(*retry_after).unwrap_or_default());
                Next::RetryAt(after(now, wait))
            }
        }
    }

    /// The part of a provider's wish to wait that chirp honours.
    pub fn honoured(&self, retry_after: Option<Duration>) -> Option<Duration> {
        retry_after.map(|wish| wish.min(self.max_retry_after))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::ErrorNote;

    fn seed_policy() -> RetryPolicy {
        RetryPolicy {
            fallback_codes: Vec::new(),
            max_attempts: 3,
            backoff: [5, 10, 15].map(|m| Duration::from_secs(m * 60)).to_vec(),
            max_retry_after: Duration::from_secs(3600),
        }
    }

    fn retryable(retry_after: Option<Duration>) -> Outcome {
        Outcome::Retryable {
            error: ErrorNote {
                code: "http_500".into(),
                message: String::new(),
            },
            retry_after,
        }
    }

    #[test]
    fn retries_follow_the_seed_rule_then_fail() {
        let p = seed_policy();
        assert_eq!(p.next(1, &retryable(None), 0), Next::RetryAt(300_000));
        assert_eq!(p.next(2, &retryable(None), 0), Next::RetryAt(600_000));
        assert_eq!(p.next(3, &retryable(None), 0), Next::Failed);
    }

    #[test]
    fn retry_after_lengthens_but_never_shortens_the_wait() {
        let p = seed_policy();
        let long = Some(Duration::from_secs(3600));
        assert_eq!(p.next(1, &retryable(long), 10), Next::RetryAt(3_600_010));
        let short = Some(Duration::from_secs(1));
        assert_eq!(p.next(1, &retryable(short), 10), Next::RetryAt(300_010));
    }

    /// `Retry-After` at the limits of u64 (what a plugin can answer): the
    /// wait is capped at an hour. Without the cap, `now + wait` overflowed
    /// (a panic here; in a release build a negative due time below every
    /// claim's floor, so the message was never seen again).
    #[test]
    fn retry_after_at_the_limits_of_u64_waits_at_most_the_cap() {
        let p = seed_policy();
        let now = 1_795_500_000_000;
        for wish in [u64::MAX, u64::MAX / 2, i64::MAX as u64, 1 << 63] {
            assert_eq!(
                p.next(1, &retryable(Some(Duration::from_millis(wish))), now),
                Next::RetryAt(now + 3_600_000),
                "{wish}"
            );
        }
        let lax = RetryPolicy {
            max_retry_after: Duration::MAX,
            ..seed_policy()
        };
        assert_eq!(
            lax.next(1, &retryable(Some(Duration::MAX)), now),
            Next::RetryAt(crate::message::MAX_MILLIS)
        );
    }

    #[test]
    fn permanent_errors_fail_at_once() {
        let outcome = Outcome::Permanent {
            error: ErrorNote {
                code: "http_401".into(),
                message: String::new(),
            },
        };
        assert_eq!(seed_policy().next(1, &outcome, 0), Next::Failed);
    }

    #[test]
    fn the_last_step_repeats_when_attempts_outnumber_steps() {
        let p = RetryPolicy {
            max_attempts: 5,
            backoff: vec![Duration::from_millis(10)],
            max_retry_after: Duration::from_secs(3600),
            fallback_codes: Vec::new(),
        };
        assert_eq!(p.next(4, &retryable(None), 0), Next::RetryAt(10));
    }
}
