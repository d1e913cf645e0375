//! The inbox: what a provider accepted from one request, stored in one
//! transaction before the platform is answered, then applied in batches.

use surrealdb::types::{RecordId, SurrealValue};

use super::deliver::Status;
use super::rows::{InboundRow, InboxRow};
use super::{Applied, InboxEvent, keyed, parse_state};
use crate::message::{ErrorNote, Millis};
use crate::phone::Phone;
use crate::store::messages::message_key;
use crate::store::{Store, StoreError, checked};
use crate::webhooks::{InboundEvent, StatusEvent, WebhookEvent};

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

impl Store {
    /// How many events wait in the inbox.
    pub async fn count_webhook_inbox(&self) -> Result<usize, StoreError> {
        let count: Option<i64> = self
            .db
            .query("RETURN count(SELECT id FROM webhook_inbox)")
            .await?
            .take(0)?;
        Ok(count.unwrap_or(0).max(0) as usize)
    }

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
}
