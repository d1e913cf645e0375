//! The rows of the webhook tables, as chirp writes and reads them.

use surrealdb::types::{RecordId, SurrealValue};

#[derive(Debug, Clone, SurrealValue)]
pub(super) struct InboxRow {
    pub(super) id: RecordId,
    pub(super) plugin: String,
    pub(super) event_id: String,
    pub(super) received_at: i64,
    pub(super) at: i64,
    /// A status event's.
    pub(super) provider_message_id: Option<String>,
    pub(super) state: Option<String>,
    pub(super) error_code: Option<String>,
    pub(super) error_message: Option<String>,
    /// An inbound event's.
    pub(super) phone: Option<String>,
    pub(super) text: Option<String>,
    pub(super) reply_to: Option<String>,
}

#[derive(Debug, Clone, SurrealValue)]
pub(super) struct ReceiptRow {
    pub(super) id: RecordId,
    pub(super) plugin: String,
    /// `NONE` once redacted or erased.
    pub(super) event_id: Option<String>,
    pub(super) error_code: Option<String>,
    pub(super) error_message: Option<String>,
    pub(super) received_at: i64,
}

#[derive(Debug, Clone, SurrealValue)]
pub(super) struct InboundRow {
    pub(super) id: RecordId,
    pub(super) plugin: String,
    pub(super) text: String,
    pub(super) reply_to: Option<String>,
    pub(super) received_at: i64,
}

#[derive(Debug, SurrealValue)]
pub(super) struct SentIdRow {
    pub(super) id: RecordId,
    pub(super) message: RecordId,
}

#[derive(Debug, SurrealValue)]
pub(super) struct DeliveryRow {
    pub(super) id: RecordId,
    pub(super) delivered_at: Option<i64>,
    pub(super) read_at: Option<i64>,
    pub(super) delivery_failed_at: Option<i64>,
    pub(super) delivery_error_code: Option<String>,
}

/// A message's delivery facts as the applier reads them, with what its
/// callbacks report.
#[derive(Debug, SurrealValue)]
pub(super) struct DeliveryNow {
    pub(super) id: RecordId,
    pub(super) delivered_at: Option<i64>,
    pub(super) read_at: Option<i64>,
    pub(super) delivery_failed_at: Option<i64>,
    pub(super) delivery_error_code: Option<String>,
    pub(super) reference_id: Option<String>,
    pub(super) template: Option<String>,
    pub(super) callbacks: Option<Vec<String>>,
}
