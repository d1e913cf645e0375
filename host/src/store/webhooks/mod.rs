//! What providers' webhooks reported, in the store: the inbox (events a
//! provider accepted, kept before the platform is answered `200`), receipts
//! on messages' timelines and the delivery facts on the message, receipts
//! for platform ids no message has yet, customers' messages, and the map
//! from a platform's message id to chirp's (`sent_id`, written when a send
//! completes).
//!
//! Every write here is idempotent by its record id, so an event applied
//! twice (the platform retried, or chirp stopped between storing and
//! answering) changes nothing the second time:
//! - `receipt:[message id, state, at]`: a message's receipts; a range of
//!   ids per message, no index.
//! - `receipt_unmatched:[plugin, platform id, state, at]`: receipts waiting
//!   for the platform id to land; a range per platform id.
//! - `inbound:[phone, at, event id]`: customers' messages; a range per
//!   phone (timeline, erasure, the 24-hour window).
//! - `sent_id:[plugin, platform id]`: the message a platform id names.
//!
//! By path: [`inbox`] (stored before `200`, then applied), [`deliver`]
//! (receipts onto messages: timeline and delivery facts, or kept until
//! their platform id lands), [`inbound`] (customers' messages), [`read`]
//! (a message's receipts, the receipts still waiting), [`rows`].

mod deliver;
mod inbound;
mod inbox;
mod read;
mod rows;

pub use deliver::WaitingReceipts;

use std::ops::Bound;

use surrealdb::types::{Array, RecordId, RecordIdKey, RecordIdKeyRange, SurrealValue, Value};

use super::StoreError;
use crate::message::{ErrorNote, Millis};
use crate::webhooks::{Reported, WebhookEvent};

/// An event in the inbox, waiting to be applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboxEvent {
    /// Its place in the inbox (a ULID: the order of arrival).
    pub id: String,
    /// The plugin that accepted it.
    pub plugin: String,
    /// What it says.
    pub event: WebhookEvent,
    /// When chirp stored it.
    pub received_at: Millis,
}

/// What applying a batch of events did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Applied {
    /// Receipts put on a message's timeline.
    pub receipts: usize,
    /// Each of those receipts' plugin and state.
    pub states: Vec<(String, Reported)>,
    /// Receipts whose platform id no message has (yet).
    pub unmatched: usize,
    /// Customers' messages stored.
    pub inbound: usize,
    /// Messages whose delivery facts changed.
    pub messages_changed: usize,
}

/// A receipt on a message's timeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredReceipt {
    /// What the platform reported.
    pub state: Reported,
    /// When, by the platform's clock.
    pub at: Millis,
    /// The platform's error, for a failure.
    pub error: Option<ErrorNote>,
    /// The plugin that read it.
    pub plugin: String,
    /// When chirp received it.
    pub received_at: Millis,
}

/// A receipt no message has claimed yet, for admins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnmatchedReceipt {
    /// The plugin that read it.
    pub plugin: String,
    /// The platform's message id it names.
    pub provider_message_id: String,
    /// What it reported.
    pub state: Reported,
    /// When, by the platform's clock.
    pub at: Millis,
    /// When chirp received it.
    pub received_at: Millis,
}

/// A record id whose key is an array of `parts`.
pub(in crate::store) fn keyed(table: &str, parts: Vec<Value>) -> RecordId {
    RecordId::new(table, Array::from(parts))
}

/// Every id of `table` whose key is an array starting with `prefix`.
pub(in crate::store) fn range_of(table: &str, prefix: Vec<Value>) -> RecordId {
    let bound = |last: Value| {
        let mut key = prefix.clone();
        key.push(last);
        RecordIdKey::from(Array::from(key))
    };
    RecordId::new(
        table,
        RecordIdKeyRange {
            start: Bound::Included(bound(Value::None)),
            end: Bound::Included(bound(Value::Object(Default::default()))),
        },
    )
}

/// The `sent_id` record of a platform id.
pub(in crate::store) fn sent_id(plugin: &str, provider_message_id: &str) -> RecordId {
    keyed(
        "sent_id",
        vec![
            plugin.to_string().into_value(),
            provider_message_id.to_string().into_value(),
        ],
    )
}

/// Every receipt of message `id`.
pub(in crate::store) fn receipts_of(message_id: &str) -> RecordId {
    range_of("receipt", vec![message_id.to_string().into_value()])
}

/// Every customer's message from `phone`.
pub(super) fn inbound_range(phone: &str) -> RecordId {
    range_of("inbound", vec![phone.to_string().into_value()])
}

pub(super) fn parse_state(name: &str) -> Result<Reported, StoreError> {
    Reported::ALL
        .into_iter()
        .find(|s| s.as_str() == name)
        .ok_or_else(|| StoreError::Corrupt(format!("delivery state {name:?}")))
}

impl super::Store {
    /// Deletes the rows of `table` (`inbound` or `receipt_unmatched`)
    /// received before `before`. Returns how many.
    async fn forget_received_before(
        &self,
        table: &'static str,
        before: Millis,
    ) -> Result<usize, StoreError> {
        self.write(async {
            // The ids first, then a delete by id: one statement (a block).
            let deleted: Option<i64> = self
                .db
                .query(
                    "{
                        LET $old = (SELECT VALUE id FROM type::table($table)
                            WHERE received_at < $before);
                        DELETE $old RETURN NONE;
                        RETURN array::len($old);
                    }",
                )
                .bind(("table", table))
                .bind(("before", before))
                .await?
                .take(0)?;
            Ok(deleted.unwrap_or(0).max(0) as usize)
        })
        .await
    }
}
