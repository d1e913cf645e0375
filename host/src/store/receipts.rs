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

use std::collections::HashMap;
use std::ops::Bound;

use surrealdb::types::{Array, RecordId, RecordIdKey, RecordIdKeyRange, SurrealValue, Value};

use super::messages::message_key;
use super::{Store, StoreError, checked};
use crate::message::{ErrorNote, Millis};
use crate::phone::Phone;
use crate::status::{Delivery, Receipt};
use crate::webhooks::{InboundEvent, Reported, StatusEvent, WebhookEvent};

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
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Applied {
    /// Receipts put on a message's timeline.
    pub receipts: usize,
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

#[derive(Debug, Clone, SurrealValue)]
struct InboxRow {
    id: RecordId,
    plugin: String,
    event_id: String,
    received_at: i64,
    at: i64,
    /// A status event's.
    provider_message_id: Option<String>,
    state: Option<String>,
    error_code: Option<String>,
    error_message: Option<String>,
    /// An inbound event's.
    phone: Option<String>,
    text: Option<String>,
    reply_to: Option<String>,
}

#[derive(Debug, Clone, SurrealValue)]
struct ReceiptRow {
    id: RecordId,
    plugin: String,
    /// `NONE` once redacted or erased.
    event_id: Option<String>,
    error_code: Option<String>,
    error_message: Option<String>,
    received_at: i64,
}

#[derive(Debug, Clone, SurrealValue)]
struct InboundRow {
    id: RecordId,
    plugin: String,
    text: String,
    reply_to: Option<String>,
    received_at: i64,
}

#[derive(Debug, SurrealValue)]
struct SentIdRow {
    id: RecordId,
    message: RecordId,
}

#[derive(Debug, SurrealValue)]
struct DeliveryRow {
    id: RecordId,
    delivered_at: Option<i64>,
    read_at: Option<i64>,
    delivery_failed_at: Option<i64>,
    delivery_error_code: Option<String>,
}

/// A record id whose key is an array of `parts`.
fn keyed(table: &str, parts: Vec<Value>) -> RecordId {
    RecordId::new(table, Array::from(parts))
}

/// Every id of `table` whose key is an array starting with `prefix`.
fn range_of(table: &str, prefix: Vec<Value>) -> RecordId {
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
fn inbound_range(phone: &str) -> RecordId {
    range_of("inbound", vec![phone.to_string().into_value()])
}

fn parse_state(name: &str) -> Result<Reported, StoreError> {
    Reported::ALL
        .into_iter()
        .find(|s| s.as_str() == name)
        .ok_or_else(|| StoreError::Corrupt(format!("delivery state {name:?}")))
}

/// A receipt's fact for [`Delivery`], if it states one (`sent` does not).
fn fact(status: &StatusEvent) -> Option<Receipt> {
    match status.state {
        Reported::Sent => None,
        Reported::Delivered => Some(Receipt::Delivered { at: status.at }),
        Reported::Read => Some(Receipt::Read { at: status.at }),
        Reported::Failed => Some(Receipt::Failed {
            at: status.at,
            code: status
                .error
                .as_ref()
                .map_or_else(|| "failed".to_string(), |e| e.code.clone()),
        }),
    }
}

impl InboxRow {
    fn new(plugin: &str, event: &WebhookEvent, received_at: Millis) -> InboxRow {
        let mut row = InboxRow {
            id: RecordId::new("webhook_inbox", ulid::Ulid::new().to_string()),
            plugin: plugin.to_string(),
            event_id: event.event_id().to_string(),
            received_at,
            at: 0,
            provider_message_id: None,
            state: None,
            error_code: None,
            error_message: None,
            phone: None,
            text: None,
            reply_to: None,
        };
        match event {
            WebhookEvent::Status(s) => {
                row.at = s.at;
                row.provider_message_id = Some(s.provider_message_id.clone());
                row.state = Some(s.state.as_str().to_string());
                row.error_code = s.error.as_ref().map(|e| e.code.clone());
                row.error_message = s.error.as_ref().map(|e| e.message.clone());
            }
            WebhookEvent::Inbound(i) => {
                row.at = i.at;
                row.phone = Some(i.from.as_str().to_string());
                row.text = Some(i.text.clone());
                row.reply_to = i.reply_to.clone();
            }
        }
        row
    }

    fn into_event(self) -> Result<InboxEvent, StoreError> {
        let event = match (self.provider_message_id, self.state, self.phone) {
            (Some(provider_message_id), Some(state), None) => WebhookEvent::Status(StatusEvent {
                event_id: self.event_id,
                provider_message_id,
                state: parse_state(&state)?,
                at: self.at,
                error: self.error_code.map(|code| ErrorNote {
                    code,
                    message: self.error_message.unwrap_or_default(),
                }),
            }),
            (None, None, Some(phone)) => WebhookEvent::Inbound(InboundEvent {
                event_id: self.event_id,
                from: Phone::parse(&phone).map_err(|e| StoreError::Corrupt(e.to_string()))?,
                text: self.text.unwrap_or_default(),
                at: self.at,
                reply_to: self.reply_to,
            }),
            _ => return Err(StoreError::Corrupt("a webhook event of no kind".into())),
        };
        Ok(InboxEvent {
            id: message_key(&self.id),
            plugin: self.plugin,
            event,
            received_at: self.received_at,
        })
    }
}

/// A status event with where it came from.
struct Status<'a> {
    plugin: &'a str,
    event: &'a StatusEvent,
    received_at: Millis,
}

impl Status<'_> {
    fn receipt(&self, message_id: &str) -> ReceiptRow {
        ReceiptRow {
            id: keyed(
                "receipt",
                vec![
                    message_id.to_string().into_value(),
                    self.event.state.as_str().to_string().into_value(),
                    self.event.at.into_value(),
                ],
            ),
            plugin: self.plugin.to_string(),
            event_id: Some(self.event.event_id.clone()),
            error_code: self.event.error.as_ref().map(|e| e.code.clone()),
            error_message: self.event.error.as_ref().map(|e| e.message.clone()),
            received_at: self.received_at,
        }
    }

    fn unmatched(&self) -> ReceiptRow {
        ReceiptRow {
            id: keyed(
                "receipt_unmatched",
                vec![
                    self.plugin.to_string().into_value(),
                    self.event.provider_message_id.clone().into_value(),
                    self.event.state.as_str().to_string().into_value(),
                    self.event.at.into_value(),
                ],
            ),
            ..self.receipt("")
        }
    }
}

impl Store {
    /// Stores what a provider accepted from one webhook request, in one
    /// transaction. Once this returns, the platform may be answered `200`.
    pub async fn enqueue_webhook_events(
        &self,
        plugin: &str,
        events: &[WebhookEvent],
        received_at: Millis,
    ) -> Result<(), StoreError> {
        if events.is_empty() {
            return Ok(());
        }
        let rows: Vec<InboxRow> = events
            .iter()
            .map(|e| InboxRow::new(plugin, e, received_at))
            .collect();
        self.write(async {
            checked(
                self.db
                    .query("INSERT INTO webhook_inbox $rows RETURN NONE")
                    .bind(("rows", rows))
                    .await?,
            )?;
            Ok(())
        })
        .await
    }

    /// The oldest `limit` events in the inbox.
    pub async fn webhook_inbox(&self, limit: usize) -> Result<Vec<InboxEvent>, StoreError> {
        let rows: Vec<InboxRow> = self
            .db
            .query("SELECT * FROM webhook_inbox ORDER BY id LIMIT $limit")
            .bind(("limit", limit as i64))
            .await?
            .take(0)?;
        rows.into_iter().map(InboxRow::into_event).collect()
    }

    /// Applies `events` from the inbox and removes them from it, in one
    /// transaction: receipts whose platform id names a message go on its
    /// timeline and move its delivery facts; the others wait in
    /// `receipt_unmatched`; customers' messages go to their phone's
    /// timeline. Returns what it did and the `(plugin, platform id)`s left
    /// unmatched.
    pub async fn apply_webhook_events(
        &self,
        events: &[InboxEvent],
    ) -> Result<(Applied, Vec<(String, String)>), StoreError> {
        let statuses: Vec<Status> = events
            .iter()
            .filter_map(|e| match &e.event {
                WebhookEvent::Status(event) => Some(Status {
                    plugin: &e.plugin,
                    event,
                    received_at: e.received_at,
                }),
                WebhookEvent::Inbound(_) => None,
            })
            .collect();
        let owners = self
            .owners(statuses.iter().map(|s| (s.plugin, s.event)))
            .await?;
        let mut matched = Vec::new();
        let mut unmatched = Vec::new();
        let mut left = Vec::new();
        for status in &statuses {
            let key = (
                status.plugin.to_string(),
                status.event.provider_message_id.clone(),
            );
            match owners.get(&key) {
                Some(message) => matched.push((message.clone(), status)),
                None => {
                    unmatched.push(status.unmatched());
                    left.push(key);
                }
            }
        }
        let inbound: Vec<InboundRow> = events
            .iter()
            .filter_map(|e| match &e.event {
                WebhookEvent::Inbound(i) => Some(InboundRow {
                    id: keyed(
                        "inbound",
                        vec![
                            i.from.as_str().to_string().into_value(),
                            i.at.into_value(),
                            i.event_id.clone().into_value(),
                        ],
                    ),
                    plugin: e.plugin.clone(),
                    text: i.text.clone(),
                    reply_to: i.reply_to.clone(),
                    received_at: e.received_at,
                }),
                WebhookEvent::Status(_) => None,
            })
            .collect();
        let done: Vec<RecordId> = events
            .iter()
            .map(|e| RecordId::new("webhook_inbox", e.id.as_str()))
            .collect();
        let applied = Applied {
            unmatched: unmatched.len(),
            inbound: inbound.len(),
            ..Applied::default()
        };
        let applied = self
            .deliver(matched, unmatched, inbound, done, Vec::new(), applied)
            .await?;
        Ok((applied, left))
    }

    /// Receipts kept for platform ids of `plugin` that now name a message
    /// (their sends completed): moved onto the messages' timelines.
    /// Returns what it did.
    pub async fn match_receipts(
        &self,
        plugin: &str,
        provider_message_ids: &[String],
    ) -> Result<Applied, StoreError> {
        let ranges: Vec<RecordId> = provider_message_ids
            .iter()
            .map(|id| {
                range_of(
                    "receipt_unmatched",
                    vec![plugin.to_string().into_value(), id.clone().into_value()],
                )
            })
            .collect();
        let mut waiting: Vec<(RecordId, StatusEvent, Millis)> = Vec::new();
        for range in ranges {
            let rows: Vec<ReceiptRow> = self
                .db
                .query("SELECT * FROM $range")
                .bind(("range", range))
                .await?
                .take(0)?;
            for row in rows {
                let (provider_message_id, state, at) = unmatched_key(&row.id)?;
                waiting.push((
                    row.id,
                    StatusEvent {
                        event_id: row.event_id.unwrap_or_default(),
                        provider_message_id,
                        state,
                        at,
                        error: row.error_code.map(|code| ErrorNote {
                            code,
                            message: row.error_message.unwrap_or_default(),
                        }),
                    },
                    row.received_at,
                ));
            }
        }
        if waiting.is_empty() {
            return Ok(Applied::default());
        }
        let owners = self
            .owners(waiting.iter().map(|(_, event, _)| (plugin, event)))
            .await?;
        let statuses: Vec<(RecordId, Status)> = waiting
            .iter()
            .map(|(id, event, received_at)| {
                (
                    id.clone(),
                    Status {
                        plugin,
                        event,
                        received_at: *received_at,
                    },
                )
            })
            .collect();
        let mut matched = Vec::new();
        let mut released = Vec::new();
        for (id, status) in &statuses {
            if let Some(message) =
                owners.get(&(plugin.to_string(), status.event.provider_message_id.clone()))
            {
                matched.push((message.clone(), status));
                released.push(id.clone());
            }
        }
        self.deliver(
            matched,
            Vec::new(),
            Vec::new(),
            Vec::new(),
            released,
            Applied::default(),
        )
        .await
    }

    /// The messages the platform ids of `statuses` name, by
    /// `(plugin, platform id)`.
    async fn owners<'a>(
        &self,
        statuses: impl Iterator<Item = (&'a str, &'a StatusEvent)>,
    ) -> Result<HashMap<(String, String), String>, StoreError> {
        let ids: Vec<RecordId> = statuses
            .map(|(plugin, s)| sent_id(plugin, &s.provider_message_id))
            .collect();
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        let rows: Vec<SentIdRow> = self
            .db
            .query("SELECT id, message FROM $ids")
            .bind(("ids", ids))
            .await?
            .take(0)?;
        let mut owners = HashMap::new();
        for row in rows {
            let RecordIdKey::Array(key) = &row.id.key else {
                return Err(StoreError::Corrupt(format!("sent_id {:?}", row.id.key)));
            };
            let part = |n: usize| match key.get(n) {
                Some(Value::String(s)) => Ok(s.clone()),
                other => Err(StoreError::Corrupt(format!("sent_id part {other:?}"))),
            };
            owners.insert((part(0)?, part(1)?), message_key(&row.message));
        }
        Ok(owners)
    }

    /// One transaction: `matched` receipts onto their messages (timeline
    /// and delivery facts), `unmatched` and `inbound` stored, the inbox's
    /// `done` and the `released` unmatched receipts removed.
    async fn deliver(
        &self,
        matched: Vec<(String, &Status<'_>)>,
        unmatched: Vec<ReceiptRow>,
        inbound: Vec<InboundRow>,
        done: Vec<RecordId>,
        released: Vec<RecordId>,
        mut applied: Applied,
    ) -> Result<Applied, StoreError> {
        let message_ids: Vec<RecordId> = matched
            .iter()
            .map(|(id, _)| RecordId::new("message", id.as_str()))
            .collect();
        let current: Vec<DeliveryRow> = if message_ids.is_empty() {
            Vec::new()
        } else {
            self.db
                .query(
                    "SELECT id, delivered_at, read_at, delivery_failed_at, delivery_error_code \
                     FROM $ids",
                )
                .bind(("ids", message_ids))
                .await?
                .take(0)?
        };
        let mut deliveries: HashMap<String, (Delivery, bool)> = current
            .into_iter()
            .map(|row| {
                (
                    message_key(&row.id),
                    (
                        Delivery {
                            delivered_at: row.delivered_at,
                            read_at: row.read_at,
                            failed: row.delivery_failed_at.zip(row.delivery_error_code),
                        },
                        false,
                    ),
                )
            })
            .collect();
        let mut receipts = Vec::new();
        for (message_id, status) in &matched {
            // A message deleted since its platform id was mapped keeps no
            // receipt.
            let Some((delivery, changed)) = deliveries.get_mut(message_id) else {
                continue;
            };
            if let Some(fact) = fact(status.event) {
                *changed |= delivery.apply(&fact);
            }
            receipts.push(status.receipt(message_id));
        }
        applied.receipts = receipts.len();
        let updates: Vec<DeliveryRow> = deliveries
            .into_iter()
            .filter(|(_, (_, changed))| *changed)
            .map(|(id, (d, _))| DeliveryRow {
                id: RecordId::new("message", id),
                delivered_at: d.delivered_at,
                read_at: d.read_at,
                delivery_failed_at: d.failed.as_ref().map(|(at, _)| *at),
                delivery_error_code: d.failed.map(|(_, code)| code),
            })
            .collect();
        applied.messages_changed = updates.len();
        self.write(async {
            checked(
                self.db
                    .query(
                        "BEGIN TRANSACTION;
                         IF array::len($receipts) > 0 {
                             INSERT IGNORE INTO receipt $receipts RETURN NONE;
                         };
                         FOR $u IN $updates {
                             UPDATE $u.id SET delivered_at = $u.delivered_at, read_at = $u.read_at,
                                 delivery_failed_at = $u.delivery_failed_at,
                                 delivery_error_code = $u.delivery_error_code RETURN NONE;
                         };
                         IF array::len($unmatched) > 0 {
                             INSERT IGNORE INTO receipt_unmatched $unmatched RETURN NONE;
                         };
                         IF array::len($inbound) > 0 {
                             INSERT IGNORE INTO inbound $inbound RETURN NONE;
                         };
                         DELETE $done RETURN NONE;
                         DELETE $released RETURN NONE;
                         COMMIT TRANSACTION;",
                    )
                    .bind(("receipts", receipts))
                    .bind(("updates", updates))
                    .bind(("unmatched", unmatched))
                    .bind(("inbound", inbound))
                    .bind(("done", done))
                    .bind(("released", released))
                    .await?,
            )
        })
        .await?;
        Ok(applied)
    }

    /// What `phone` wrote to the business, oldest first.
    pub async fn inbound_of(
        &self,
        phone: &str,
    ) -> Result<Vec<crate::customers::InboundMessage>, StoreError> {
        let rows: Vec<InboundRow> = self
            .db
            .query("SELECT * FROM $range")
            .bind(("range", inbound_range(phone)))
            .await?
            .take(0)?;
        rows.into_iter()
            .map(|row| {
                let at = match &row.id.key {
                    RecordIdKey::Array(key) => match key.get(1) {
                        Some(Value::Number(at)) => at.to_int().unwrap_or(0),
                        other => {
                            return Err(StoreError::Corrupt(format!("inbound time {other:?}")));
                        }
                    },
                    other => return Err(StoreError::Corrupt(format!("inbound {other:?}"))),
                };
                Ok(crate::customers::InboundMessage {
                    text: row.text,
                    at,
                    reply_to: row.reply_to,
                    plugin: row.plugin,
                })
            })
            .collect()
    }

    /// Deletes what `phone` wrote to the business, kept or still in the
    /// inbox, in one transaction. Returns how many kept messages went.
    pub(super) async fn erase_inbound(&self, phone: &str) -> Result<usize, StoreError> {
        self.write(async {
            let deleted: Option<i64> = self
                .db
                .query(
                    "{
                        LET $gone = (DELETE $range RETURN BEFORE);
                        DELETE webhook_inbox WHERE phone = $phone RETURN NONE;
                        RETURN array::len($gone);
                    }",
                )
                .bind(("range", inbound_range(phone)))
                .bind(("phone", phone.to_string()))
                .await?
                .take(0)?;
            Ok(deleted.unwrap_or(0).max(0) as usize)
        })
        .await
    }

    /// Deletes customers' messages received before `before`. Returns how
    /// many.
    pub async fn forget_inbound(&self, before: Millis) -> Result<usize, StoreError> {
        self.write(async {
            let deleted: Option<i64> = self
                .db
                .query(
                    "{
                        LET $old = (SELECT VALUE id FROM inbound WHERE received_at < $before);
                        DELETE $old RETURN NONE;
                        RETURN array::len($old);
                    }",
                )
                .bind(("before", before))
                .await?
                .take(0)?;
            Ok(deleted.unwrap_or(0).max(0) as usize)
        })
        .await
    }

    /// Receipts waiting for their message, oldest first, at most `limit`.
    pub async fn unmatched_receipts(
        &self,
        limit: usize,
    ) -> Result<Vec<UnmatchedReceipt>, StoreError> {
        let rows: Vec<ReceiptRow> = self
            .db
            .query("SELECT * FROM receipt_unmatched ORDER BY received_at LIMIT $limit")
            .bind(("limit", limit as i64))
            .await?
            .take(0)?;
        rows.into_iter()
            .map(|row| {
                let (provider_message_id, state, at) = unmatched_key(&row.id)?;
                Ok(UnmatchedReceipt {
                    plugin: row.plugin,
                    provider_message_id,
                    state,
                    at,
                    received_at: row.received_at,
                })
            })
            .collect()
    }

    /// How many receipts wait for their message.
    pub async fn count_unmatched_receipts(&self) -> Result<usize, StoreError> {
        let count: Option<i64> = self
            .db
            .query("RETURN count(SELECT id FROM receipt_unmatched)")
            .await?
            .take(0)?;
        Ok(count.unwrap_or(0).max(0) as usize)
    }

    /// Forgets receipts received before `before` that never found their
    /// message. Returns how many.
    pub async fn forget_unmatched_receipts(&self, before: Millis) -> Result<usize, StoreError> {
        self.write(async {
            let deleted: Option<i64> = self
                .db
                .query(
                    "{
                        LET $old = (SELECT VALUE id FROM receipt_unmatched WHERE received_at < $before);
                        DELETE $old RETURN NONE;
                        RETURN array::len($old);
                    }",
                )
                .bind(("before", before))
                .await?
                .take(0)?;
            Ok(deleted.unwrap_or(0).max(0) as usize)
        })
        .await
    }

    /// Message `id`'s receipts, in the order the platform reported them.
    pub async fn receipts(&self, message_id: &str) -> Result<Vec<StoredReceipt>, StoreError> {
        let rows: Vec<ReceiptRow> = self
            .db
            .query("SELECT * FROM $range")
            .bind(("range", receipts_of(message_id)))
            .await?
            .take(0)?;
        let mut receipts = rows
            .into_iter()
            .map(|row| {
                let RecordIdKey::Array(key) = &row.id.key else {
                    return Err(StoreError::Corrupt(format!("receipt {:?}", row.id.key)));
                };
                let (Some(Value::String(state)), Some(Value::Number(at))) =
                    (key.get(1), key.get(2))
                else {
                    return Err(StoreError::Corrupt(format!("receipt {key:?}")));
                };
                Ok(StoredReceipt {
                    state: parse_state(state)?,
                    at: at.to_int().unwrap_or(0),
                    error: row.error_code.map(|code| ErrorNote {
                        code,
                        message: row.error_message.unwrap_or_default(),
                    }),
                    plugin: row.plugin,
                    received_at: row.received_at,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        receipts.sort_by_key(|r| (r.at, r.state as u8));
        Ok(receipts)
    }
}

/// The platform id, state and time in a `receipt_unmatched` id.
fn unmatched_key(id: &RecordId) -> Result<(String, Reported, Millis), StoreError> {
    let RecordIdKey::Array(key) = &id.key else {
        return Err(StoreError::Corrupt(format!(
            "receipt_unmatched {:?}",
            id.key
        )));
    };
    match (key.get(1), key.get(2), key.get(3)) {
        (Some(Value::String(pmid)), Some(Value::String(state)), Some(Value::Number(at))) => {
            Ok((pmid.clone(), parse_state(state)?, at.to_int().unwrap_or(0)))
        }
        _ => Err(StoreError::Corrupt(format!("receipt_unmatched {key:?}"))),
    }
}
