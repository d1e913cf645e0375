//! Taking messages back before they are sent: one by id, or every pending
//! one of a caller's reference (optionally of some templates only). Only a
//! `queued` message moves (`Transition::Cancel`); the status check and the
//! change are one statement, so a claim racing the cancel either takes the
//! message first (it is then in flight) or finds it cancelled.

use surrealdb::types::{RecordId, SurrealValue};

use super::rows::{MESSAGE_FIELDS, MessageRow, message_key};
use crate::callbacks::State;
use crate::message::{ErrorNote, Message, Millis};
use crate::status::{Status, Transition};
use crate::store::{Store, StoreError};

/// Messages of one reference looked at per transaction.
const CANCEL_BATCH: usize = 500;

/// What cancelling a reference's messages did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CancelledByReference {
    /// The messages now `cancelled`.
    pub cancelled: Vec<String>,
    /// Messages being sent as this ran: they may still be delivered.
    pub in_flight: Vec<String>,
    /// Messages already past the queue (sent, failed, skipped, cancelled
    /// or expired), left as they were.
    pub finished: usize,
    /// More messages of the reference than one call looks at (`limit`)
    /// were left for another call.
    pub more: bool,
}

impl Store {
    /// Cancels message `id` if it is still queued, with `why` as its note.
    /// Returns the message as it is afterwards and whether this call
    /// cancelled it, or `None` if there is no such message.
    pub async fn cancel_message(
        &self,
        id: &str,
        why: &ErrorNote,
        now: Millis,
    ) -> Result<Option<(Message, bool)>, StoreError> {
        let cancelled = self
            .cancel_queued(vec![RecordId::new("message", id)], why, now)
            .await?;
        if let Some(row) = cancelled.into_iter().next() {
            return Ok(Some((row.into_message()?, true)));
        }
        Ok(self.message(id).await?.map(|m| (m, false)))
    }

    /// Cancels the queued messages of `reference_id` (of `templates` only,
    /// if given; never those in `except`), looking at no more than `limit`
    /// of them.
    pub async fn cancel_reference(
        &self,
        reference_id: &str,
        templates: Option<&[String]>,
        except: &[String],
        why: &ErrorNote,
        now: Millis,
        limit: usize,
    ) -> Result<CancelledByReference, StoreError> {
        #[derive(Debug, SurrealValue)]
        struct Row {
            id: RecordId,
            status: String,
            template: Option<String>,
        }
        let rows: Vec<Row> = self
            .db
            .query(
                "SELECT id, status, template FROM message WHERE reference_id = $reference \
                 ORDER BY id LIMIT $limit",
            )
            .bind(("reference", reference_id.to_string()))
            .bind(("limit", limit as i64 + 1))
            .await?
            .take(0)?;
        let mut done = CancelledByReference {
            more: rows.len() > limit,
            ..CancelledByReference::default()
        };
        let mut pending = Vec::new();
        for row in rows.into_iter().take(limit) {
            let wanted = templates
                .is_none_or(|names| row.template.as_ref().is_some_and(|t| names.contains(t)))
                && !except.contains(&message_key(&row.id));
            if !wanted {
                continue;
            }
            match row.status.parse::<Status>() {
                Ok(Status::Queued) => pending.push(row.id),
                Ok(Status::Sending) => done.in_flight.push(message_key(&row.id)),
                Ok(_) => done.finished += 1,
                Err(e) => return Err(StoreError::Corrupt(e.to_string())),
            }
        }
        for chunk in pending.chunks(CANCEL_BATCH) {
            let cancelled = self.cancel_queued(chunk.to_vec(), why, now).await?;
            let moved: Vec<String> = cancelled.iter().map(|r| message_key(&r.id)).collect();
            // Claimed between the read and the cancel: in flight now.
            for id in chunk.iter().map(message_key) {
                if !moved.contains(&id) {
                    done.in_flight.push(id);
                }
            }
            done.cancelled.extend(moved);
        }
        Ok(done)
    }

    /// Moves those of `ids` that are queued to `cancelled` (off the
    /// schedule and any provider's waiting list) and reports each to its
    /// callback endpoints, in one transaction. Returns the messages it
    /// moved, as they are afterwards.
    async fn cancel_queued(
        &self,
        ids: Vec<RecordId>,
        why: &ErrorNote,
        now: Millis,
    ) -> Result<Vec<MessageRow>, StoreError> {
        let callbacks = self
            .change_reports(&ids, State::Cancelled, now, why)
            .await?;
        self.write(async {
            // One statement (a block), so one transaction; the statement
            // moves only queued messages, so running it twice changes
            // nothing the second time, and only the messages it moved get
            // their callbacks.
            let rows: Vec<MessageRow> = self
                .db
                .query(format!(
                    "{{ \
                       LET $moved = (UPDATE $ids SET status = $to, due_at = NONE, \
                         error_code = $code, error_message = $why, updated_at = $now \
                         WHERE status IN $from RETURN {MESSAGE_FIELDS}); \
                       FOR $m IN $moved {{ \
                         DELETE type::record('waiting', record::id($m.id)) RETURN NONE; \
                       }}; \
                       LET $changed = $moved.id; \
                       FOR $c IN $callbacks {{ \
                         IF $c.message IN $changed {{ \
                           INSERT IGNORE INTO callback $c RETURN NONE; \
                         }}; \
                       }}; \
                       RETURN $moved; \
                     }}"
                ))
                .bind(("ids", ids))
                .bind(("callbacks", callbacks))
                .bind(("from", Transition::Cancel.from_names()))
                .bind(("to", Transition::Cancel.to().as_str()))
                .bind(("code", why.code.clone()))
                .bind(("why", why.message.clone()))
                .bind(("now", now))
                .await?
                .take(0)?;
            Ok(rows)
        })
        .await
    }

    /// Records on `messages` (an event's) the messages the event
    /// `cancelled`.
    pub async fn note_cancelled(
        &self,
        messages: &[String],
        cancelled: &[String],
    ) -> Result<(), StoreError> {
        let ids: Vec<RecordId> = messages
            .iter()
            .map(|id| RecordId::new("message", id.as_str()))
            .collect();
        self.write(async {
            crate::store::checked(
                self.db
                    .query("UPDATE $ids SET cancelled_messages = $cancelled RETURN NONE")
                    .bind(("ids", ids))
                    .bind(("cancelled", cancelled.to_vec()))
                    .await?,
            )
            .map(|_| ())
        })
        .await
    }
}
