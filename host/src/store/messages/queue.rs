//! The queue's side of the `message` and `waiting` tables: claiming due
//! messages with a lease, completing them (their attempts into `attempt`),
//! putting failed ones back, releasing those that waited for a provider,
//! and counting what is due.

use surrealdb::types::{RecordId, SurrealValue};

use super::rows::{
    AttemptRow, HopRow, MARKETING, MARKETING_LANE, MESSAGE_FIELDS, MessageRow, RouteRow,
    lane_offset, lane_range, unshifted,
};
use crate::callbacks::State;
use crate::message::{Attempt, ErrorNote, Lane, Leased, Message, Millis, RouteChange};
use crate::status::{Status, Transition};
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
    /// Leases up to `limit` messages of `lane` due between `floor` and
    /// `now`, oldest due first, in one transaction, until `lease_until`. Each comes back
    /// with the lease token that its completion must present, and with
    /// `due_at` set to when it was due (so the caller can raise its floor).
    ///
    /// A leased message is due again at `lease_until`: if its worker dies
    /// or hangs, a later claim takes it back (and reports that its lease
    /// ran out). A completion in time moves `due_at` on.
    ///
    /// `floor` exists because a claimed message's index entry is deleted,
    /// and the store's index scan walks every deleted entry before the
    /// first live one: scanning from 0 slows down with every message ever
    /// claimed. Pass 0 now and then to pick up anything below the floor.
    ///
    /// A leased message's lease runs out in the transactional lane's range
    /// of the index, whatever its lane: taking back a message whose worker
    /// died is never held behind anything.
    pub async fn claim_due(
        &self,
        lane: Lane,
        now: Millis,
        floor: Millis,
        limit: usize,
        lease_until: Millis,
        lease: &str,
    ) -> Result<Vec<Leased>, StoreError> {
        let (floor, now_in_lane) = lane_range(lane, floor, now);
        self.write(async {
            // RETURN BEFORE: the whole document, one value per message, as
            // it was (its due time, and whether a lease had run out); the
            // fields the claim set are known here.
            let rows: Vec<MessageRow> = self
                .db
                .query(
                    "UPDATE (SELECT VALUE id FROM message WHERE due_at <= $due_by AND due_at >= $floor \
                       ORDER BY due_at LIMIT $limit) \
                     SET status = $to, due_at = $lease_until, lease = $lease, updated_at = $now \
                     WHERE status IN $from \
                     RETURN BEFORE",
                )
                .bind(("from", Transition::Claim.from_names()))
                .bind(("to", Transition::Claim.to().as_str()))
                .bind(("now", now))
                .bind(("due_by", now_in_lane))
                .bind(("floor", floor))
                .bind(("limit", limit as i64))
                .bind(("lease_until", lease_until))
                .bind(("lease", lease.to_string()))
                .await?
                .take(0)?;
            rows.into_iter()
                .map(|row| {
                    let was_due = row.due_at.map(unshifted);
                    let mut message = row.into_message()?;
                    let lease_expired = message.status == Status::Sending;
                    message.status = Transition::Claim.to();
                    message.due_at = was_due;
                    message.updated_at = now;
                    Ok(Leased {
                        message,
                        lease: lease.to_string(),
                        lease_expired,
                    })
                })
                .collect()
        })
        .await
    }

    /// When the earliest message due at or after its lane's floor is due
    /// (or its lease runs out), if any (see [`Store::claim_due`] for the
    /// floor): `floors` by lane, in [`Lane::ALL`]'s order.
    pub async fn next_due(&self, floors: [Millis; 2]) -> Result<Option<Millis>, StoreError> {
        let mut response = self
            .db
            .query(
                "SELECT VALUE due_at FROM message WHERE due_at >= $floor AND due_at < $marketing \
                   ORDER BY due_at LIMIT 1; \
                 SELECT VALUE due_at FROM message WHERE due_at >= $marketing_floor \
                   ORDER BY due_at LIMIT 1;",
            )
            .bind(("floor", lane_range(Lane::Transactional, floors[0], 0).0))
            .bind(("marketing", MARKETING_LANE))
            .bind((
                "marketing_floor",
                lane_range(Lane::Marketing, floors[1], 0).0,
            ))
            .await?;
        let transactional: Vec<i64> = response.take(0)?;
        let marketing: Vec<i64> = response.take(1)?;
        Ok(transactional
            .into_iter()
            .chain(marketing.into_iter().map(|due| due - MARKETING_LANE))
            .min())
    }

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

    /// Puts a `failed` message back in the queue, due at `now`, with a fresh
    /// retry budget (attempt numbers go on counting), unless its expiry has
    /// passed. Returns the message as it is afterwards, or `None`
    /// if it does not exist. Only a failed message moves: the status check
    /// and the change are one statement, so two concurrent resends queue it
    /// once.
    pub async fn requeue_failed(
        &self,
        id: &str,
        now: Millis,
    ) -> Result<Option<(Message, bool)>, StoreError> {
        self.write(async {
            // Two resends at once conflict in the store's optimistic
            // transactions; the statement is idempotent (it moves only a failed
            // message), so the loser simply runs it again and finds nothing to do.
            let why = ErrorNote {
                code: "resent".into(),
                message: "put back in the queue by an admin".into(),
            };
            let callbacks = self
                .change_reports(&[RecordId::new("message", id)], State::Queued, now, &why)
                .await?;
            let mut tries = 0;
            let rows: Vec<MessageRow> = loop {
                let result = self
                    .db
                    .query(format!(
                        "{{ \
                           LET $moved = (UPDATE type::record('message', $id) SET status = $to, \
                             due_at = IF lane = $marketing {{ $now + $offset }} ELSE {{ $now }}, \
                             retry_base = attempts, updated_at = $now \
                             WHERE status IN $from AND (expires_at = NONE OR expires_at > $now) \
                             RETURN {MESSAGE_FIELDS}); \
                           IF array::len($moved) > 0 AND array::len($callbacks) > 0 {{ \
                             INSERT IGNORE INTO callback $callbacks RETURN NONE; \
                           }}; \
                           RETURN $moved; \
                         }}"
                    ))
                    .bind(("callbacks", callbacks.clone()))
                    .bind(("from", Transition::Resend.from_names()))
                    .bind(("to", Transition::Resend.to().as_str()))
                    .bind(("id", id.to_string()))
                    .bind(("now", now))
                    .bind(("marketing", MARKETING))
                    .bind(("offset", MARKETING_LANE))
                    .await
                    .and_then(|mut r| Ok(r.take(0)?));
                match result {
                    Ok(rows) => break rows,
                    Err(StoreError::Conflict(e)) if tries < 5 => {
                        tries += 1;
                        tracing::debug!(error = %e, "resend conflicted; retrying");
                        tokio::time::sleep(std::time::Duration::from_millis(5 * tries)).await;
                    }
                    Err(e) => return Err(e),
                }
            };
            if let Some(row) = rows.into_iter().next() {
                return Ok(Some((row.into_message()?, true)));
            }
            Ok(self.message(id).await?.map(|m| (m, false)))
        })
        .await
    }

    /// Makes the messages waiting for `provider` due at `now` (it has just
    /// been loaded) and empties its list. Returns how many.
    pub async fn release_waiting(&self, provider: &str, now: Millis) -> Result<usize, StoreError> {
        self.write(async {
            // One statement (a block), so one transaction.
            let ids: Vec<String> = self
                .db
                .query(
                    "{ \
                       LET $listed = (SELECT VALUE type::record('message', record::id(id)) \
                         FROM waiting WHERE provider = $provider); \
                       DELETE waiting WHERE provider = $provider; \
                       RETURN UPDATE $listed \
                         SET due_at = IF lane = $marketing { $now + $offset } ELSE { $now }, \
                         waiting_for = NONE, updated_at = $now \
                         WHERE status = $queued AND waiting_for = $provider \
                         RETURN VALUE record::id(id); \
                     }",
                )
                .bind(("provider", provider.to_string()))
                .bind(("now", now))
                .bind(("queued", Status::Queued.as_str()))
                .bind(("marketing", MARKETING))
                .bind(("offset", MARKETING_LANE))
                .await?
                .take(0)?;
            Ok(ids.len())
        })
        .await
    }

    /// The messages with a due time at or before `now`: `queued` ones due
    /// to be sent, and `sending` ones whose lease ran out (the next claim
    /// takes them back).
    pub async fn count_due(&self, now: Millis) -> Result<DueCounts, StoreError> {
        let mut response = self
            .db
            .query(
                "SELECT status, count() AS n FROM message WHERE due_at <= $now AND due_at >= 0 \
                   GROUP BY status; \
                 SELECT status, count() AS n FROM message \
                   WHERE due_at <= $marketing_now AND due_at >= $marketing GROUP BY status;",
            )
            .bind(("now", lane_range(Lane::Transactional, 0, now).1))
            .bind(("marketing", MARKETING_LANE))
            .bind(("marketing_now", lane_range(Lane::Marketing, 0, now).1))
            .await?;
        let mut rows: Vec<StatusCount> = response.take(0)?;
        rows.extend(response.take::<Vec<StatusCount>>(1)?);
        let mut counts = DueCounts::default();
        for row in rows {
            let n = row.n.max(0) as usize;
            match row.status.parse() {
                Ok(Status::Queued) => counts.queued += n,
                Ok(Status::Sending) => counts.lease_expired += n,
                _ => {}
            }
        }
        Ok(counts)
    }
}

/// What [`Store::count_due`] found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DueCounts {
    /// Queued messages due now.
    pub queued: usize,
    /// Leased messages whose lease ran out.
    pub lease_expired: usize,
}

#[derive(Debug, SurrealValue)]
struct StatusCount {
    status: String,
    n: i64,
}
