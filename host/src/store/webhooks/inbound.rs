//! Customers' messages, kept per phone (`inbound:[phone, at, event id]`):
//! read for the customer's export, deleted on erasure and by retention.

use surrealdb::types::{RecordIdKey, Value};

use super::inbound_range;
use super::rows::InboundRow;
use crate::message::Millis;
use crate::store::{Store, StoreError};

impl Store {
    /// When `phone` last wrote to the business, by the platform's clock.
    pub async fn last_inbound_at(&self, phone: &str) -> Result<Option<Millis>, StoreError> {
        let newest = self.inbound_query(phone, Some(1)).await?;
        Ok(newest.first().map(|message| message.at))
    }

    /// The last `limit` messages `phone` wrote to the business, newest
    /// first.
    pub async fn inbound_recent(
        &self,
        phone: &str,
        limit: usize,
    ) -> Result<Vec<crate::customers::InboundMessage>, StoreError> {
        self.inbound_query(phone, Some(limit)).await
    }

    /// What `phone` wrote to the business, oldest first.
    pub async fn inbound_of(
        &self,
        phone: &str,
    ) -> Result<Vec<crate::customers::InboundMessage>, StoreError> {
        self.inbound_query(phone, None).await
    }

    /// `phone`'s messages: all, oldest first; or the newest `limit`,
    /// newest first.
    async fn inbound_query(
        &self,
        phone: &str,
        newest: Option<usize>,
    ) -> Result<Vec<crate::customers::InboundMessage>, StoreError> {
        let query = match newest {
            None => "SELECT * FROM $range",
            Some(_) => "SELECT * FROM $range ORDER BY id DESC LIMIT $limit",
        };
        let rows: Vec<InboundRow> = self
            .db
            .query(query)
            .bind(("range", inbound_range(phone)))
            .bind(("limit", newest.unwrap_or(0) as i64))
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
    pub(in crate::store) async fn erase_inbound(&self, phone: &str) -> Result<usize, StoreError> {
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
        self.forget_received_before("inbound", before).await
    }
}
