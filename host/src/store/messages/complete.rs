//! Completing leased messages: each attempt's (or deferral's) new state,
//! applied only under the lease that made it, with its attempt for the
//! audit trail, the platform id that receipts will name, the callbacks it
//! reports, a move to the next route, and the watch of a send waiting for
//! `delivered`, in one transaction per batch.

use surrealdb::types::{RecordId, SurrealValue};

use super::rows::{AttemptRow, HopRow, RouteRow, lane_offset};
use crate::message::{Attempt, Lane, Millis, RouteChange};
use crate::status::Status;
use crate::store::callbacks::{CallbackRow, change_rows};
use crate::store::{Store, StoreError, checked};

/// The state a message moves to after an attempt (or a deferral).
#[derive(Debug, Clone)]
pub struct MessagePatch {
    /// The new status.
    pub status: Status,
    /// Attempts made so far.
    pub attempts: i64,
    /// Now.
    pub updated_at: i64,
    /// When it is due again, if it is.
    pub due_at: Option<i64>,
    /// When it was sent, if it was.
    pub sent_at: Option<i64>,
    /// The platform's id, if sent with one.
    pub provider_message_id: Option<String>,
    /// The last error's code, if any.
    pub error_code: Option<String>,
    /// The last error's message, if any.
    pub error_message: Option<String>,
    /// The provider the message waits for, when it is not loaded.
    pub waiting_for: Option<String>,
    /// The message's lane, which places `due_at` in the index.
    pub lane: Lane,
}

/// One finished piece of work for [`Store::complete`]: the message's new
/// state, applied only if the worker still holds the lease, and the attempt
/// for the audit trail, recorded in any case.
#[derive(Debug, Clone)]
pub struct Completion {
    /// The message.
    pub message_id: String,
    /// The lease the worker holds.
    pub lease: String,
    /// The message's new state.
    pub patch: MessagePatch,
    /// The attempt, if a provider was called.
    pub attempt: Option<Attempt>,
    /// The change to report to the message's callback endpoints, if any;
    /// written only if this lease still holds the message.
    pub report: Option<crate::callbacks::Report>,
    /// A move to the message's next route, written only if this lease
    /// still holds the message.
    pub hop: Option<RouteChange>,
    /// For a send that waits for `delivered` before the next route: when
    /// to look ([`Store::undelivered_due`]); written only if this lease
    /// still holds the message.
    pub watch_at: Option<Millis>,
}

/// The watch of `message`'s send, due at `at`: its id sorts by time, so
/// the due ones are a range of ids and the table needs no index.
pub(super) fn watch_id(at: Millis, message: &str) -> RecordId {
    let key: Vec<surrealdb::types::Value> = vec![at.into_value(), message.to_string().into_value()];
    RecordId::new("delivery_watch", surrealdb::types::Array::from(key))
}

/// A [`RouteChange`] as written.
#[derive(Debug, Clone, SurrealValue)]
pub(super) struct RouteChangeRow {
    provider: String,
    wa_template: Option<String>,
    wa_language: Option<String>,
    wa_parameters: Option<Vec<String>>,
    rest: Option<Vec<RouteRow>>,
    hops: Vec<HopRow>,
}

impl From<RouteChange> for RouteChangeRow {
    fn from(c: RouteChange) -> RouteChangeRow {
        let to = RouteRow::from(&c.to);
        RouteChangeRow {
            provider: to.provider,
            wa_template: to.wa_template,
            wa_language: to.wa_language,
            wa_parameters: to.wa_parameters,
            rest: (!c.rest.is_empty()).then(|| c.rest.iter().map(RouteRow::from).collect()),
            hops: c.hops.iter().map(HopRow::from).collect(),
        }
    }
}

/// The message a platform's id names.
#[derive(Debug, Clone, SurrealValue)]
struct SentIdRow {
    id: RecordId,
    message: RecordId,
}

/// A message listed as waiting for `provider` to be loaded.
#[derive(Debug, Clone, SurrealValue)]
struct WaitingRow {
    id: RecordId,
    provider: String,
}

#[derive(Debug, Clone, SurrealValue)]
struct CompletionRow {
    id: String,
    lease: String,
    patch: StoredPatch,
    callbacks: Vec<CallbackRow>,
    /// `delivery_watch:[when, message]`, if the send waits for `delivered`.
    watch: Option<RecordId>,
}

#[derive(Debug, Clone, SurrealValue)]
struct HopCompletionRow {
    id: String,
    lease: String,
    patch: StoredPatch,
    callbacks: Vec<CallbackRow>,
    hop: RouteChangeRow,
}

/// A [`MessagePatch`] as merged into the message: one object, so that the
/// store evaluates one expression per message instead of one per field
/// (each evaluation has a cost of its own in SurrealDB 3.3.5). `NONE`
/// values remove their field.
#[derive(Debug, Clone, SurrealValue)]
struct StoredPatch {
    status: String,
    attempts: i64,
    updated_at: i64,
    due_at: Option<i64>,
    sent_at: Option<i64>,
    provider_message_id: Option<String>,
    error_code: Option<String>,
    error_message: Option<String>,
    waiting_for: Option<String>,
    /// Always `NONE`: the lease ends with the attempt.
    lease: Option<String>,
}

impl From<MessagePatch> for StoredPatch {
    fn from(p: MessagePatch) -> StoredPatch {
        StoredPatch {
            status: p.status.as_str().to_string(),
            attempts: p.attempts,
            updated_at: p.updated_at,
            due_at: p.due_at.map(|due| due + lane_offset(p.lane)),
            sent_at: p.sent_at,
            provider_message_id: p.provider_message_id,
            error_code: p.error_code,
            error_message: p.error_message,
            waiting_for: p.waiting_for,
            lease: None,
        }
    }
}

impl Store {
    /// Applies a batch of finished attempts in one transaction. A message
    /// whose worker no longer holds its lease (it ran out and another claim
    /// took the message) is left as it is; its attempt is recorded anyway.
    ///
    /// Applying a batch again changes nothing (an attempt's id is fixed by
    /// its message, number and lease, and a message's patch is the same):
    /// a batch sent to a server whose answer was lost may have been written,
    /// and the scheduler sends it again.
    pub async fn complete(&self, batch: Vec<Completion>) -> Result<(), StoreError> {
        self.write(async {
            let attempts: Vec<AttemptRow> = batch
                .iter()
                .filter_map(|c| {
                    c.attempt
                        .as_ref()
                        .map(|a| AttemptRow::from_attempt(a, &c.lease))
                })
                .collect();
            // Listed so that loading the provider finds them (a stale entry,
            // for a message no longer waiting, is skipped then).
            let waiting: Vec<WaitingRow> = batch
                .iter()
                .filter_map(|c| {
                    c.patch.waiting_for.as_ref().map(|provider| WaitingRow {
                        id: RecordId::new("waiting", c.message_id.as_str()),
                        provider: provider.clone(),
                    })
                })
                .collect();
            // A platform id names its message, for the receipts that will
            // come for it (`super::super::receipts`).
            let sent_ids: Vec<SentIdRow> = batch
                .iter()
                .filter_map(|c| {
                    let attempt = c.attempt.as_ref()?;
                    let platform_id = c.patch.provider_message_id.as_ref()?;
                    Some(SentIdRow {
                        id: crate::store::webhooks::sent_id(&attempt.provider, platform_id),
                        message: RecordId::new("message", c.message_id.as_str()),
                    })
                })
                .collect();
            // A move to the next route, like a report, is written only if
            // the lease still held the message.
            let (hopping, batch): (Vec<Completion>, Vec<Completion>) =
                batch.into_iter().partition(|c| c.hop.is_some());
            let hopped: Vec<HopCompletionRow> = hopping
                .into_iter()
                .filter_map(|c| {
                    Some(HopCompletionRow {
                        callbacks: c
                            .report
                            .as_ref()
                            .map(|r| change_rows(&r.change, &r.endpoints))
                            .unwrap_or_default(),
                        hop: c.hop?.into(),
                        id: c.message_id,
                        lease: c.lease,
                        patch: c.patch.into(),
                    })
                })
                .collect();
            // Completions that report to callback endpoints write their
            // callbacks only if the lease still held the message.
            let (reported, updates): (Vec<CompletionRow>, Vec<CompletionRow>) = batch
                .into_iter()
                .map(|c| CompletionRow {
                    callbacks: c
                        .report
                        .as_ref()
                        .map(|r| change_rows(&r.change, &r.endpoints))
                        .unwrap_or_default(),
                    watch: c.watch_at.map(|at| watch_id(at, &c.message_id)),
                    id: c.message_id,
                    lease: c.lease,
                    patch: c.patch.into(),
                })
                .partition(|c| !c.callbacks.is_empty() || c.watch.is_some());
            let results = self
                .db
                .query(
                    "BEGIN TRANSACTION;
                 FOR $c IN $updates {
                     UPDATE type::record('message', $c.id) MERGE $c.patch
                     WHERE lease = $c.lease RETURN NONE;
                 };
                 FOR $c IN $reported {
                     LET $held = (UPDATE type::record('message', $c.id) MERGE $c.patch
                         WHERE lease = $c.lease RETURN VALUE id);
                     IF array::len($held) > 0 {
                         IF array::len($c.callbacks) > 0 {
                             INSERT IGNORE INTO callback $c.callbacks RETURN NONE;
                         };
                         IF $c.watch != NONE { UPSERT $c.watch RETURN NONE; };
                     };
                 };
                 FOR $c IN $hopped {
                     LET $held = (UPDATE type::record('message', $c.id) MERGE $c.patch
                         WHERE lease = $c.lease RETURN VALUE id);
                     IF array::len($held) > 0 {
                         UPDATE type::record('message', $c.id) SET provider = $c.hop.provider,
                             wa_template = $c.hop.wa_template, wa_language = $c.hop.wa_language,
                             wa_parameters = $c.hop.wa_parameters, fallbacks = $c.hop.rest,
                             hops = $c.hop.hops, retry_base = $c.patch.attempts RETURN NONE;
                         IF array::len($c.callbacks) > 0 {
                             INSERT IGNORE INTO callback $c.callbacks RETURN NONE;
                         };
                     };
                 };
                 IF array::len($attempts) > 0 { INSERT IGNORE INTO attempt $attempts RETURN NONE; };
                 FOR $w IN $waiting { UPSERT $w.id SET provider = $w.provider RETURN NONE; };
                 IF array::len($sent_ids) > 0 { INSERT IGNORE INTO sent_id $sent_ids RETURN NONE; };
                 COMMIT TRANSACTION;",
                )
                .bind(("sent_ids", sent_ids))
                .bind(("updates", updates))
                .bind(("reported", reported))
                .bind(("hopped", hopped))
                .bind(("attempts", attempts))
                .bind(("waiting", waiting))
                .await?;
            checked(results)?;
            Ok(())
        })
        .await
    }
}
