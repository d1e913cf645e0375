//! Receipts onto messages: the platform id's message found through
//! `sent_id`, the receipt put on the message's timeline and its delivery
//! facts moved forward (`crate::status::Delivery`), all in one
//! transaction; a receipt whose platform id names no message yet waits in
//! `receipt_unmatched` and is moved when the id lands.

use std::collections::HashMap;

use surrealdb::types::{RecordId, RecordIdKey, SurrealValue, Value};

use super::read::unmatched_key;
use super::rows::{DeliveryNow, DeliveryRow, InboundRow, ReceiptRow, SentIdRow};
use super::{Applied, keyed, range_of, sent_id};
use crate::callbacks::{Change, State};
use crate::message::{ErrorNote, Millis, now_millis};
use crate::status::{Delivery, DeliveryStatus, Receipt};
use crate::store::callbacks::{CallbackRow, change_rows};
use crate::store::messages::message_key;
use crate::store::{Store, StoreError, checked};
use crate::webhooks::{Reported, StatusEvent};

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

/// A status event with where it came from.
pub(super) struct Status<'a> {
    pub(super) plugin: &'a str,
    pub(super) event: &'a StatusEvent,
    pub(super) received_at: Millis,
}

impl Status<'_> {
    pub(super) fn receipt(&self, message_id: &str) -> ReceiptRow {
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

    pub(super) fn unmatched(&self) -> ReceiptRow {
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

/// Receipts waiting for their platform ids, and the messages those ids
/// name now ([`Store::waiting_receipts`]).
pub struct WaitingReceipts {
    plugin: String,
    waiting: Vec<(RecordId, StatusEvent, Millis)>,
    owners: HashMap<(String, String), String>,
}

impl WaitingReceipts {
    /// The message `event`'s platform id names, if any.
    fn owner(&self, event: &StatusEvent) -> Option<&str> {
        self.owners
            .get(&(self.plugin.clone(), event.provider_message_id.clone()))
            .map(String::as_str)
    }

    /// The failures among them whose message is known: `(message id,
    /// platform's error code)`.
    pub fn failures(&self) -> Vec<(String, String)> {
        self.waiting
            .iter()
            .filter_map(|(_, event, _)| {
                let code = &event.error.as_ref()?.code;
                Some((self.owner(event)?.to_string(), code.clone()))
            })
            .collect()
    }
}

impl Store {
    /// Receipts kept for platform ids of `plugin`, read with the messages
    /// those ids now name (their sends completed). Nothing is moved until
    /// [`Store::match_waiting`].
    pub async fn waiting_receipts(
        &self,
        plugin: &str,
        provider_message_ids: &[String],
    ) -> Result<WaitingReceipts, StoreError> {
        let mut waiting: Vec<(RecordId, StatusEvent, Millis)> = Vec::new();
        for id in provider_message_ids {
            let range = range_of(
                "receipt_unmatched",
                vec![plugin.to_string().into_value(), id.clone().into_value()],
            );
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
        let owners = if waiting.is_empty() {
            HashMap::new()
        } else {
            self.owners(waiting.iter().map(|(_, event, _)| (plugin, event)))
                .await?
        };
        Ok(WaitingReceipts {
            plugin: plugin.to_string(),
            waiting,
            owners,
        })
    }

    /// Moves the receipts of `waiting` whose message is known onto the
    /// messages' timelines, and out of the waiting list, in one
    /// transaction. Returns what it did.
    pub async fn match_waiting(&self, waiting: WaitingReceipts) -> Result<Applied, StoreError> {
        let plugin = waiting.plugin.as_str();
        let mut matched = Vec::new();
        let mut released = Vec::new();
        let statuses: Vec<(RecordId, String, Status)> = waiting
            .waiting
            .iter()
            .filter_map(|(id, event, received_at)| {
                let message = waiting.owner(event)?;
                Some((
                    id.clone(),
                    message.to_string(),
                    Status {
                        plugin,
                        event,
                        received_at: *received_at,
                    },
                ))
            })
            .collect();
        if statuses.is_empty() {
            return Ok(Applied::default());
        }
        for (id, message, status) in &statuses {
            matched.push((message.clone(), status));
            released.push(id.clone());
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
    pub(super) async fn owners<'a>(
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
    pub(super) async fn deliver(
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
        let current: Vec<DeliveryNow> = if message_ids.is_empty() {
            Vec::new()
        } else {
            self.db
                .query(
                    "SELECT id, delivered_at, read_at, delivery_failed_at, delivery_error_code, \
                     reference_id, template, callbacks FROM $ids",
                )
                .bind(("ids", message_ids))
                .await?
                .take(0)?
        };
        let mut reports: HashMap<String, (Change, Vec<String>)> = HashMap::new();
        let mut deliveries: HashMap<String, (Delivery, bool)> = current
            .into_iter()
            .map(|row| {
                let id = message_key(&row.id);
                let delivery = Delivery {
                    delivered_at: row.delivered_at,
                    read_at: row.read_at,
                    failed: row.delivery_failed_at.zip(row.delivery_error_code),
                };
                if let Some(endpoints) = row.callbacks.filter(|e| !e.is_empty()) {
                    let change = Change {
                        message_id: id.clone(),
                        reference_id: row.reference_id,
                        template: row.template,
                        // Replaced below by what the receipts make it.
                        state: State::Sent,
                        at: now_millis(),
                        reason: None,
                        error_code: None,
                    };
                    reports.insert(id.clone(), (change, endpoints));
                }
                (id, (delivery, false))
            })
            .collect();
        let before: HashMap<String, DeliveryStatus> = deliveries
            .iter()
            .map(|(id, (d, _))| (id.clone(), d.status()))
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
            applied
                .states
                .push((status.plugin.to_string(), status.event.state));
        }
        applied.receipts = receipts.len();
        let deliveries_after: HashMap<String, Delivery> = deliveries
            .iter()
            .filter(|(_, (_, changed))| *changed)
            .map(|(id, (d, _))| (id.clone(), d.clone()))
            .collect();
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
        // A delivery status that moved is reported to the message's
        // callback endpoints (a fact that leaves the status as it was,
        // such as a failure after a read, is not).
        let callbacks: Vec<CallbackRow> = deliveries_after
            .iter()
            .filter_map(|(id, after)| {
                let (mut change, endpoints) = reports.remove(id)?;
                if before.get(id) == Some(&after.status()) {
                    return None;
                }
                change.state = match after.status() {
                    DeliveryStatus::Delivered => State::Delivered,
                    DeliveryStatus::Read => State::Read,
                    DeliveryStatus::Failed => State::Failed,
                    DeliveryStatus::Sent => return None,
                };
                if let Some((_, code)) = after
                    .failed
                    .as_ref()
                    .filter(|_| change.state == State::Failed)
                {
                    change.reason = Some("the platform could not deliver it".into());
                    change.error_code = Some(code.clone());
                }
                Some(change_rows(&change, &endpoints))
            })
            .flatten()
            .collect();
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
                         IF array::len($callbacks) > 0 {
                             INSERT IGNORE INTO callback $callbacks RETURN NONE;
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
                    .bind(("callbacks", callbacks))
                    .bind(("inbound", inbound))
                    .bind(("done", done))
                    .bind(("released", released))
                    .await?,
            )
        })
        .await?;
        Ok(applied)
    }
}
