//! One customer's data across the tables: read out whole (access), or
//! erased (every message's phone, text, variables, reference, errors and
//! platform ids; their attempts' errors and platform ids; their saved
//! preferences; the fingerprints of their caller keys), with a record of
//! the erasure that names the phone only by a keyed hash.
//!
//! What stays of an erased message is what statistics and the audit trail
//! need and what says nothing of the customer: its id, state, times,
//! template and version, provider, attempt count and codes. Its attempts
//! stay, numbered, so the trail has no holes.

use surrealdb::types::{RecordId, SurrealValue};

use super::rows::{MESSAGE_FIELDS, MessageRow, attempts_of, message_key};
use crate::customers::{CustomerData, ERASED_PHONE, Erased};
use crate::message::Millis;
use crate::status::{Status, Transition};
use crate::store::{Store, StoreError};

/// The most messages one erasure transaction changes; a customer with more
/// is erased in several.
const ERASE_BATCH: usize = 500;

/// An erased message's caller key and whether it was still to be sent.
#[derive(Debug, SurrealValue)]
struct ErasedRow {
    id: RecordId,
    status: String,
    idempotency_key: String,
    provider: String,
    provider_message_id: Option<String>,
}

/// The record of an erasure.
#[derive(Debug, SurrealValue)]
struct ErasureRow {
    at: i64,
}

impl Store {
    /// Everything chirp holds for `phone`: saved preferences, and every
    /// message with its attempts, newest first.
    pub async fn customer_data(
        &self,
        phone: &str,
        erased_name: &str,
    ) -> Result<CustomerData, StoreError> {
        let preferences = self
            .saved_preferences(&[phone.to_string()])
            .await?
            .remove(phone);
        let rows: Vec<MessageRow> = self
            .db
            .query(format!(
                "SELECT {MESSAGE_FIELDS} FROM message WHERE phone = $phone ORDER BY id DESC"
            ))
            .bind(("phone", phone.to_string()))
            .await?
            .take(0)?;
        let mut messages = Vec::with_capacity(rows.len());
        for row in rows {
            let message = row.into_message()?;
            let attempts = self.attempts(&message.id).await?;
            let receipts = self.receipts(&message.id).await?;
            messages.push((message, attempts, receipts));
        }
        let erased: Vec<ErasureRow> = self
            .db
            .query("SELECT at FROM type::record('erasure', $name)")
            .bind(("name", erased_name.to_string()))
            .await?
            .take(0)?;
        Ok(CustomerData {
            preferences,
            messages,
            inbound: self.inbound_of(phone).await?,
            erased_at: erased.first().map(|e| e.at),
        })
    }

    /// Erases what chirp holds for `phone` (see the module's doc), at `now`,
    /// and records the erasure under `erased_name`. Messages still queued
    /// or scheduled are cancelled first. A message accepted while this runs
    /// is erased too: the work goes on until no message has the phone.
    pub async fn erase(
        &self,
        phone: &str,
        erased_name: &str,
        now: Millis,
    ) -> Result<Erased, StoreError> {
        let mut erased = Erased::default();
        loop {
            let batch: Vec<ErasedRow> = self
                .db
                .query("SELECT id, status, idempotency_key, provider, provider_message_id FROM message WHERE phone = $phone LIMIT $limit")
                .bind(("phone", phone.to_string()))
                .bind(("limit", ERASE_BATCH as i64))
                .await?
                .take(0)?;
            if batch.is_empty() {
                break;
            }
            let cancel_from = Transition::Cancel.from_names();
            erased.messages += batch.len();
            erased.cancelled += batch
                .iter()
                .filter(|m| cancel_from.contains(&m.status))
                .count();
            let ids: Vec<RecordId> = batch.iter().map(|m| m.id.clone()).collect();
            let attempts: Vec<RecordId> = batch
                .iter()
                .map(|m| attempts_of(&message_key(&m.id)))
                .collect();
            // Caller keys (a key chirp made is the message's id, and has
            // no record).
            let keys: Vec<RecordId> = batch
                .iter()
                .filter(|m| m.idempotency_key != message_key(&m.id))
                .map(|m| RecordId::new("idempotency", m.idempotency_key.as_str()))
                .collect();
            erased.keys += keys.len();
            let receipts: Vec<RecordId> = batch
                .iter()
                .map(|m| crate::store::webhooks::receipts_of(&message_key(&m.id)))
                .collect();
            let callbacks: Vec<RecordId> = batch
                .iter()
                .map(|m| crate::store::callbacks::callbacks_of(&message_key(&m.id)))
                .collect();
            let sent_ids: Vec<RecordId> = batch
                .iter()
                .filter_map(|m| {
                    Some(crate::store::webhooks::sent_id(
                        &m.provider,
                        m.provider_message_id.as_deref()?,
                    ))
                })
                .collect();
            // One statement (a block), so one transaction.
            let touched: Option<i64> = self
                .write(async {
                    Ok(self
                        .db
                        .query(
                            "{
                                UPDATE $ids SET status = $cancelled, due_at = NONE
                                    WHERE status IN $cancel_from RETURN NONE;
                                UPDATE $ids SET phone = $erased, text = '', wa_parameters = NONE, fallbacks = NONE, hops = NONE,
                                    reference_id = NONE, error_message = NONE,
                                    provider_message_id = NONE, lease = NONE, updated_at = $now
                                    RETURN NONE;
                                FOR $key IN $keys {
                                    UPDATE $key SET fingerprint = 'erased' RETURN NONE;
                                };
                                UPDATE $receipts SET error_message = NONE, event_id = NONE
                                    RETURN NONE;
                                UPDATE $callbacks SET reference_id = NONE, reason = NONE
                                    RETURN NONE;
                                DELETE $sent_ids RETURN NONE;
                                RETURN array::len(UPDATE $attempts SET error_message = NONE,
                                    provider_message_id = NONE RETURN VALUE id);
                            }",
                        )
                        .bind(("ids", ids))
                        .bind(("attempts", attempts))
                        .bind(("keys", keys))
                        .bind(("receipts", receipts))
                        .bind(("callbacks", callbacks))
                        .bind(("sent_ids", sent_ids))
                        .bind(("cancelled", Status::Cancelled.as_str()))
                        .bind(("cancel_from", cancel_from.clone()))
                        .bind(("erased", ERASED_PHONE))
                        .bind(("now", now))
                        .await?
                        .take(0)?)
                })
                .await?;
            erased.attempts += touched.unwrap_or(0).max(0) as usize;
        }
        let had_preferences: Option<bool> = self
            .write(async {
                Ok(self
                    .db
                    .query(
                        "{
                            LET $saved = type::record('preference', $phone);
                            LET $had = record::exists($saved);
                            DELETE $saved RETURN NONE;
                            UPSERT type::record('erasure', $name) SET at = $now RETURN NONE;
                            RETURN $had;
                        }",
                    )
                    .bind(("phone", phone.to_string()))
                    .bind(("name", erased_name.to_string()))
                    .bind(("now", now))
                    .await?
                    .take(0)?)
            })
            .await?;
        erased.preferences = had_preferences.unwrap_or(false);
        erased.inbound = self.erase_inbound(phone).await?;
        Ok(erased)
    }
}

#[cfg(test)]
mod tests;
