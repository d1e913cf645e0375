//! A change into the rows that report it, one per endpoint, for whichever
//! writer makes the change (accepting, completing, cancelling, resending,
//! applying receipts) to write in its own transaction.

use surrealdb::types::{RecordId, SurrealValue};

use crate::callbacks::{Change, State};
use crate::message::{ErrorNote, Millis};
use crate::store::messages::message_key;
use crate::store::webhooks::{keyed, range_of};
use crate::store::{Store, StoreError};

/// A callback as stored.
#[derive(Debug, Clone, SurrealValue)]
pub(in crate::store) struct CallbackRow {
    pub(in crate::store) id: RecordId,
    /// The message it reports on (a record, so that a writer can keep the
    /// rows of the messages it changed: `WHERE message IN $changed`).
    pub(in crate::store) message: RecordId,
    pub(in crate::store) endpoint: String,
    pub(in crate::store) webhook_id: String,
    pub(in crate::store) state: String,
    pub(in crate::store) at: i64,
    pub(in crate::store) reference_id: Option<String>,
    pub(in crate::store) template: Option<String>,
    pub(in crate::store) reason: Option<String>,
    pub(in crate::store) error_code: Option<String>,
    /// Set while it waits to be posted.
    pub(in crate::store) due_at: Option<i64>,
    /// `pending`, `delivered`, `failed` (given up) or `dropped` (its
    /// endpoint was removed).
    pub(in crate::store) outcome: String,
    pub(in crate::store) attempts: i64,
    pub(in crate::store) first_tried_at: Option<i64>,
    pub(in crate::store) delivered_at: Option<i64>,
}

/// The rows reporting `change` to each of `endpoints`, due at once.
pub(in crate::store) fn change_rows(change: &Change, endpoints: &[String]) -> Vec<CallbackRow> {
    endpoints
        .iter()
        .map(|endpoint| CallbackRow {
            id: keyed(
                "callback",
                vec![
                    change.message_id.clone().into_value(),
                    endpoint.clone().into_value(),
                    change.at.into_value(),
                    change.state.rank().into_value(),
                ],
            ),
            message: RecordId::new("message", change.message_id.as_str()),
            endpoint: endpoint.clone(),
            webhook_id: change.webhook_id(),
            state: change.state.as_str().to_string(),
            at: change.at,
            reference_id: change.reference_id.clone(),
            template: change.template.clone(),
            reason: change.reason.clone(),
            error_code: change.error_code.clone(),
            due_at: Some(change.at),
            outcome: "pending".to_string(),
            attempts: 0,
            first_tried_at: None,
            delivered_at: None,
        })
        .collect()
}

/// Every post of every callback of message `message_id`.
pub(in crate::store) fn callback_attempts_of(message_id: &str) -> RecordId {
    range_of(
        "callback_attempt",
        vec![message_id.to_string().into_value()],
    )
}

/// Every callback of message `message_id` (to any endpoint).
pub(in crate::store) fn callbacks_of(message_id: &str) -> RecordId {
    range_of("callback", vec![message_id.to_string().into_value()])
}

impl Store {
    /// The callbacks that would report `ids` moving to `state` at `at`
    /// with `why` (for the messages that have endpoints), for a writer that
    /// keeps those of the messages it does move.
    pub(in crate::store) async fn change_reports(
        &self,
        ids: &[RecordId],
        state: State,
        at: Millis,
        why: &ErrorNote,
    ) -> Result<Vec<CallbackRow>, StoreError> {
        #[derive(Debug, SurrealValue)]
        struct Row {
            id: RecordId,
            reference_id: Option<String>,
            template: Option<String>,
            callbacks: Option<Vec<String>>,
        }
        let rows: Vec<Row> = self
            .db
            .query("SELECT id, reference_id, template, callbacks FROM $ids WHERE callbacks != NONE")
            .bind(("ids", ids.to_vec()))
            .await?
            .take(0)?;
        Ok(rows
            .into_iter()
            .flat_map(|row| {
                let change = Change {
                    message_id: message_key(&row.id),
                    reference_id: row.reference_id,
                    template: row.template,
                    state,
                    at,
                    reason: Some(why.message.clone()),
                    error_code: Some(why.code.clone()),
                };
                change_rows(&change, &row.callbacks.unwrap_or_default())
            })
            .collect())
    }
}
