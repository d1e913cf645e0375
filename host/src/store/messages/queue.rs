//! The queue's side of the `message` and `waiting` tables: claiming due
//! messages with a lease (completing them is `complete.rs`), putting
//! failed ones back, releasing those that waited for a provider, and
//! counting what is due.

use surrealdb::types::{RecordId, SurrealValue};

use super::rows::{MARKETING, MARKETING_LANE, MESSAGE_FIELDS, MessageRow, lane_range, unshifted};
use crate::callbacks::State;
use crate::message::{ErrorNote, Lane, Leased, Message, Millis};
use crate::status::{Status, Transition};
use crate::store::{Store, StoreError};

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
