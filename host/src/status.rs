//! The message's state machine, written down once: the states a message
//! can be in, the transitions between them with the states each may start
//! from, and, beside the queue's state, what the platform reports after a
//! send (delivery receipts). The store takes its conditions from here (a
//! transition applies only to a message in one of its `from` states), so
//! the table below is the rule, not a description of it.
//!
//! ```text
//!                 accept                 claim                 sent
//!   (request) ─────────────▶ queued ─────────────▶ sending ─────────────▶ sent
//!       │                    ▲  │ ▲                │ │ │ │ │                │
//!       │ accept_skipped     │  │ └──── retry ─────┘ │ │ │ │ fall_back      │
//!       ▼                    │  │                    │ │ │ └──────▶ queued ◀┘
//!    skipped ◀───── skip ────┼──┼────────────────────┘ │ │        (next route)
//!                            │  └── cancel ──▶ cancelled │
//!                  resend    │      expired ◀── expire ──┘
//!                  fall_back │                         │ fail
//!    failed ─────────────────┘ ◀───────────────────────┘
//! ```
//!
//! `sending` is also claimed again when its lease runs out (the worker
//! died). `sent`, `skipped`, `cancelled` and `expired` are final for the
//! queue, except that `sent` may fall back to the next route when no
//! delivery receipt comes in time. Receipts never change the queue's state:
//! they move [`Delivery`], which only goes forward.

use std::fmt;
use std::str::FromStr;

use crate::message::Millis;

/// Where a message is in the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Status {
    /// Waiting to be claimed, now or at its due time (a scheduled send, a
    /// retry, a hold, a provider not yet loaded).
    Queued,
    /// Leased to a worker, which is sending it.
    Sending,
    /// The provider accepted it.
    Sent,
    /// Attempts ran out, or the provider refused it for good.
    Failed,
    /// Never to be sent (an opt-out, a disabled template, a rule); kept so
    /// history shows why.
    Skipped,
    /// Taken back before it was sent.
    Cancelled,
    /// Its time to be sent passed before it could be.
    Expired,
}

impl Status {
    /// Every state, in the order above.
    pub const ALL: [Status; 7] = [
        Status::Queued,
        Status::Sending,
        Status::Sent,
        Status::Failed,
        Status::Skipped,
        Status::Cancelled,
        Status::Expired,
    ];

    /// The state's name, as the API and the store spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Queued => "queued",
            Status::Sending => "sending",
            Status::Sent => "sent",
            Status::Failed => "failed",
            Status::Skipped => "skipped",
            Status::Cancelled => "cancelled",
            Status::Expired => "expired",
        }
    }

    /// Whether `transition` may start from this state.
    pub fn allows(self, transition: Transition) -> bool {
        transition.from().contains(&self)
    }

    /// The state after `transition`, or why it cannot happen.
    pub fn after(self, transition: Transition) -> Result<Status, NotAllowed> {
        if self.allows(transition) {
            Ok(transition.to())
        } else {
            Err(NotAllowed {
                from: self,
                transition,
            })
        }
    }

    /// Whether the queue still holds it: waiting to be sent, or being
    /// sent. Any other state is an outcome (which an admin's resend or a
    /// fallback may still reopen).
    pub fn is_in_queue(self) -> bool {
        matches!(self, Status::Queued | Status::Sending)
    }

    /// Whether no transition leaves this state.
    pub fn is_final(self) -> bool {
        Transition::ALL.iter().all(|t| !self.allows(*t))
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A status name that is none of [`Status::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown status {0:?}; expected one of queued, sending, sent, failed, skipped, cancelled, expired"
)]
pub struct UnknownStatus(pub String);

impl FromStr for Status {
    type Err = UnknownStatus;
    fn from_str(s: &str) -> Result<Status, UnknownStatus> {
        Status::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or_else(|| UnknownStatus(s.to_string()))
    }
}

/// What moves a message from one state to another.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transition {
    /// A worker takes a due message (or one whose lease ran out).
    Claim,
    /// The provider accepted it.
    Sent,
    /// Back in the queue for later: a retryable failure, a hold (marketing
    /// hours), a turn at the provider's rate that came too late, a provider
    /// not loaded.
    Retry,
    /// Attempts ran out, or the error was permanent.
    Fail,
    /// The checks just before a send found it must not go (an opt-out or a
    /// disabled template that applies now).
    Skip,
    /// An admin put a failed message back with a fresh retry budget.
    Resend,
    /// Taken back before it was claimed.
    Cancel,
    /// Its expiry passed while it waited: found when it is claimed (a
    /// message is due again no later than its expiry), never sent.
    Expire,
    /// Onto the next route of its chain: the channel cannot reach the
    /// recipient, or no delivery receipt came in time.
    FallBack,
}

impl Transition {
    /// Every transition.
    pub const ALL: [Transition; 9] = [
        Transition::Claim,
        Transition::Sent,
        Transition::Retry,
        Transition::Fail,
        Transition::Skip,
        Transition::Resend,
        Transition::Cancel,
        Transition::Expire,
        Transition::FallBack,
    ];

    /// The states it may start from.
    pub fn from(self) -> &'static [Status] {
        use Status::*;
        match self {
            Transition::Claim => &[Queued, Sending],
            Transition::Sent | Transition::Retry | Transition::Fail | Transition::Skip => {
                &[Sending]
            }
            Transition::Resend => &[Failed],
            Transition::Cancel => &[Queued],
            Transition::Expire => &[Sending],
            Transition::FallBack => &[Sending, Failed, Sent],
        }
    }

    /// The state it ends in.
    pub fn to(self) -> Status {
        match self {
            Transition::Claim => Status::Sending,
            Transition::Sent => Status::Sent,
            Transition::Retry | Transition::Resend | Transition::FallBack => Status::Queued,
            Transition::Fail => Status::Failed,
            Transition::Skip => Status::Skipped,
            Transition::Cancel => Status::Cancelled,
            Transition::Expire => Status::Expired,
        }
    }

    /// The `from` states' names, for a store condition
    /// (`WHERE status IN $from`).
    pub fn from_names(self) -> Vec<String> {
        self.from().iter().map(|s| s.as_str().to_string()).collect()
    }
}

/// A transition asked of a state it does not start from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a {from} message cannot take the {transition:?} transition")]
pub struct NotAllowed {
    /// The state the message was in.
    pub from: Status,
    /// The transition asked of it.
    pub transition: Transition,
}

/// What the platform reported after the send, from its delivery receipts.
/// Receipts arrive late, twice and out of order, so each fact is kept with
/// the time it was first reported, and the status is read from the facts:
/// applying the same receipts in any order, any number of times, gives the
/// same [`Delivery`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Delivery {
    /// When the platform first reported it delivered (or read).
    pub delivered_at: Option<Millis>,
    /// When it first reported it read.
    pub read_at: Option<Millis>,
    /// When the platform gave up, with its code. Kept even after a read,
    /// but it does not hide the read.
    pub failed: Option<(Millis, String)>,
}

/// One receipt's fact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Receipt {
    /// The recipient's phone has the message.
    Delivered {
        /// When, by the platform's clock.
        at: Millis,
    },
    /// The recipient opened it.
    Read {
        /// When, by the platform's clock.
        at: Millis,
    },
    /// The platform gave up on it.
    Failed {
        /// When, by the platform's clock.
        at: Millis,
        /// The platform's error code.
        code: String,
    },
}

/// What [`Delivery`] says, most advanced first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryStatus {
    /// Sent, no receipt yet.
    Sent,
    /// On the recipient's phone.
    Delivered,
    /// Opened by the recipient.
    Read,
    /// The platform gave up after the send (and nothing says it was
    /// delivered).
    Failed,
}

impl DeliveryStatus {
    /// Every status, in the order above.
    pub const ALL: [DeliveryStatus; 4] = [
        DeliveryStatus::Sent,
        DeliveryStatus::Delivered,
        DeliveryStatus::Read,
        DeliveryStatus::Failed,
    ];

    /// Its name, as the API writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Sent => "sent",
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Read => "read",
            DeliveryStatus::Failed => "failed",
        }
    }
}

impl Delivery {
    /// Applies one receipt; returns whether anything changed. The earliest
    /// time of each fact wins; a read is also a delivery.
    pub fn apply(&mut self, receipt: &Receipt) -> bool {
        let before = self.clone();
        let earliest = |slot: &mut Option<Millis>, at: Millis| {
            *slot = Some(slot.map_or(at, |known| known.min(at)));
        };
        match receipt {
            Receipt::Delivered { at } => earliest(&mut self.delivered_at, *at),
            Receipt::Read { at } => {
                earliest(&mut self.read_at, *at);
                earliest(&mut self.delivered_at, *at);
            }
            Receipt::Failed { at, code } => {
                if self.failed.as_ref().is_none_or(|(known, _)| at < known) {
                    self.failed = Some((*at, code.clone()));
                }
            }
        }
        *self != before
    }

    /// The status the facts add up to.
    pub fn status(&self) -> DeliveryStatus {
        match (self.read_at, self.delivered_at, &self.failed) {
            (Some(_), _, _) => DeliveryStatus::Read,
            (None, Some(_), _) => DeliveryStatus::Delivered,
            (None, None, Some(_)) => DeliveryStatus::Failed,
            (None, None, None) => DeliveryStatus::Sent,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The table, written out once more by hand: every (state, transition)
    /// pair, allowed or not. A change to the machine must change this too.
    #[test]
    fn every_transition_starts_only_where_the_table_says() {
        use Status::*;
        use Transition::*;
        let allowed = [
            (Queued, Claim, Sending),
            (Sending, Claim, Sending),
            (Sending, Transition::Sent, Status::Sent),
            (Sending, Retry, Queued),
            (Sending, Fail, Failed),
            (Sending, Skip, Skipped),
            (Failed, Resend, Queued),
            (Queued, Cancel, Cancelled),
            (Sending, Expire, Expired),
            (Sending, FallBack, Queued),
            (Failed, FallBack, Queued),
            (Status::Sent, FallBack, Queued),
        ];
        for status in Status::ALL {
            for transition in Transition::ALL {
                let expected = allowed
                    .iter()
                    .find(|(from, t, _)| *from == status && *t == transition)
                    .map(|(_, _, to)| *to);
                assert_eq!(
                    status.after(transition).ok(),
                    expected,
                    "{status} + {transition:?}"
                );
            }
        }
        let finals: Vec<Status> = Status::ALL.into_iter().filter(|s| s.is_final()).collect();
        assert_eq!(finals, [Skipped, Cancelled, Expired]);
    }

    #[test]
    fn names_read_back_and_unknown_ones_are_refused() {
        for status in Status::ALL {
            assert_eq!(status.as_str().parse(), Ok(status));
        }
        assert!("delivered".parse::<Status>().is_err());
        assert_eq!(Transition::Claim.from_names(), ["queued", "sending"]);
    }

    /// Receipts in every order, and each twice, give the same delivery: a
    /// late `delivered` never moves `read` back, a `failed` after `read` is
    /// kept without hiding it.
    #[test]
    fn receipts_in_any_order_and_any_number_give_the_same_delivery() {
        let receipts = [
            Receipt::Delivered { at: 20 },
            Receipt::Read { at: 30 },
            Receipt::Failed {
                at: 40,
                code: "131026".into(),
            },
        ];
        let mut orders = vec![];
        for a in 0..3 {
            for b in 0..3 {
                for c in 0..3 {
                    if a != b && b != c && a != c {
                        orders.push([a, b, c]);
                    }
                }
            }
        }
        for order in orders {
            let mut delivery = Delivery::default();
            for i in order.iter().chain(order.iter()) {
                delivery.apply(&receipts[*i]);
            }
            assert_eq!(delivery.status(), DeliveryStatus::Read, "{order:?}");
            assert_eq!(delivery.delivered_at, Some(20), "{order:?}");
            assert_eq!(delivery.read_at, Some(30));
            assert_eq!(delivery.failed, Some((40, "131026".to_string())));
        }
        // A read alone is a delivery at the same time; the same again
        // changes nothing.
        let mut delivery = Delivery::default();
        assert!(delivery.apply(&Receipt::Read { at: 7 }));
        assert!(!delivery.apply(&Receipt::Read { at: 7 }));
        assert_eq!(delivery.delivered_at, Some(7));
        let mut failed = Delivery::default();
        failed.apply(&Receipt::Failed {
            at: 5,
            code: "x".into(),
        });
        assert_eq!(failed.status(), DeliveryStatus::Failed);
    }
}
