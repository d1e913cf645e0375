//! Reading what webhooks reported: a message's receipts, and the receipts
//! still waiting for their message (for admins and the applier's sweep).

use surrealdb::types::{RecordId, RecordIdKey, Value};

use super::rows::ReceiptRow;
use super::{StoredReceipt, UnmatchedReceipt, parse_state, receipts_of};
use crate::message::{ErrorNote, Millis};
use crate::store::{Store, StoreError};
use crate::webhooks::Reported;

impl Store {
    /// The message a platform id of `plugin` names, if chirp stored it.
    pub async fn message_of_platform_id(
        &self,
        plugin: &str,
        platform_id: &str,
    ) -> Result<Option<crate::message::Message>, StoreError> {
        let messages: Vec<RecordId> = self
            .db
            .query("SELECT VALUE message FROM $id")
            .bind(("id", super::sent_id(plugin, platform_id)))
            .await?
            .take(0)?;
        match messages.into_iter().next() {
            Some(id) => {
                self.message(&crate::store::messages::message_key(&id))
                    .await
            }
            None => Ok(None),
        }
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
        self.forget_received_before("receipt_unmatched", before)
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
pub(super) fn unmatched_key(id: &RecordId) -> Result<(String, Reported, Millis), StoreError> {
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
