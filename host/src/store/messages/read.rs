//! Reading messages: one with its audit trail, and the history, filtered.

use super::rows::{AttemptRow, MESSAGE_FIELDS, MessageRow, attempts_of};
use crate::message::{Attempt, Message, Millis, Status};
use crate::status::DeliveryStatus;
use crate::store::{Store, StoreError};

/// Filters of `GET /api/notifications/history`. Results come newest first;
/// `before` is the cursor (the id of the last message of the previous page).
#[derive(Debug, Clone, Default)]
pub struct HistoryFilter {
    /// Only this recipient.
    pub phone: Option<String>,
    /// Only in this state.
    pub status: Option<Status>,
    /// Only sent messages whose receipts add up to this.
    pub delivery: Option<crate::status::DeliveryStatus>,
    /// Only of this template.
    pub template: Option<String>,
    /// Only with this reference.
    pub reference_id: Option<String>,
    /// Only on this provider now (the route it is on, or that sent it).
    pub provider: Option<String>,
    /// Accepted at or after.
    pub from: Option<Millis>,
    /// Accepted before.
    pub to: Option<Millis>,
    /// Older than this message id (the page before's last).
    pub before: Option<String>,
    /// At most this many.
    pub limit: usize,
}

impl Store {
    /// One message, if it exists.
    pub async fn message(&self, id: &str) -> Result<Option<Message>, StoreError> {
        let rows: Vec<MessageRow> = self
            .db
            .query(format!(
                "SELECT {MESSAGE_FIELDS} FROM type::record('message', $id)"
            ))
            .bind(("id", id.to_string()))
            .await?
            .take(0)?;
        rows.into_iter()
            .next()
            .map(MessageRow::into_message)
            .transpose()
    }

    /// The audit trail of one message, oldest attempt first.
    pub async fn attempts(&self, message_id: &str) -> Result<Vec<Attempt>, StoreError> {
        let rows: Vec<AttemptRow> = self
            .db
            .query("SELECT * OMIT id FROM $attempts ORDER BY number, started_at")
            .bind(("attempts", attempts_of(message_id)))
            .await?
            .take(0)?;
        rows.into_iter().map(AttemptRow::into_attempt).collect()
    }

    /// Messages matching `filter`, newest first.
    pub async fn history(&self, filter: &HistoryFilter) -> Result<Vec<Message>, StoreError> {
        let mut conditions = Vec::new();
        if filter.phone.is_some() {
            conditions.push("phone = $phone");
        }
        if filter.status.is_some() {
            conditions.push("status = $status");
        }
        if filter.template.is_some() {
            conditions.push("template = $template");
        }
        // As `crate::status::Delivery::status` reads the facts.
        match filter.delivery {
            None => {}
            Some(DeliveryStatus::Read) => conditions.push("read_at != NONE"),
            Some(DeliveryStatus::Delivered) => {
                conditions.push("delivered_at != NONE AND read_at = NONE")
            }
            Some(DeliveryStatus::Failed) => {
                conditions.push("delivery_failed_at != NONE AND delivered_at = NONE")
            }
            Some(DeliveryStatus::Sent) => conditions
                .push("sent_at != NONE AND delivered_at = NONE AND delivery_failed_at = NONE"),
        }
        if filter.reference_id.is_some() {
            conditions.push("reference_id = $reference_id");
        }
        if filter.provider.is_some() {
            conditions.push("provider = $provider");
        }
        if filter.from.is_some() {
            conditions.push("created_at >= $from");
        }
        if filter.to.is_some() {
            conditions.push("created_at < $to");
        }
        if filter.before.is_some() {
            conditions.push("id < type::record('message', $before)");
        }
        let where_clause = if conditions.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", conditions.join(" AND "))
        };
        let rows: Vec<MessageRow> = self
            .db
            .query(format!(
                "SELECT {MESSAGE_FIELDS} FROM message {where_clause} ORDER BY id DESC LIMIT $limit"
            ))
            .bind(("phone", filter.phone.clone()))
            .bind(("status", filter.status.map(|s| s.as_str().to_string())))
            .bind(("template", filter.template.clone()))
            .bind(("reference_id", filter.reference_id.clone()))
            .bind(("provider", filter.provider.clone()))
            .bind(("from", filter.from))
            .bind(("to", filter.to))
            .bind(("before", filter.before.clone()))
            .bind(("limit", filter.limit as i64))
            .await?
            .take(0)?;
        rows.into_iter().map(MessageRow::into_message).collect()
    }
}
