//! The callbacks waiting to be posted and what became of each: what the
//! sender reads and records, and the admin's log, counts and replay.

use surrealdb::types::{RecordId, RecordIdKey, SurrealValue, Value};

use super::rows::CallbackRow;
use crate::callbacks::{Change, State};
use crate::message::Millis;
use crate::store::webhooks::{keyed, range_of};
use crate::store::{Store, StoreError};

/// A callback's place: its message, endpoint, time and state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Due {
    /// What it reports.
    pub change: Change,
    /// Where it goes.
    pub endpoint: String,
    /// Posts made so far.
    pub attempts: u32,
    /// When it was first posted, if it was.
    pub first_tried_at: Option<Millis>,
}

impl Due {
    /// Its id for admins: `{message}.{endpoint}.{at}.{state}`.
    pub fn id(&self) -> String {
        format!(
            "{}.{}.{}.{}",
            self.change.message_id,
            self.endpoint,
            self.change.at,
            self.change.state.as_str()
        )
    }

    fn record(&self) -> RecordId {
        key_of(
            &self.change.message_id,
            &self.endpoint,
            self.change.at,
            self.change.state,
        )
    }
}

/// One post and what comes next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Posted {
    /// When the post started.
    pub at: Millis,
    /// The receiver's HTTP status, if it answered.
    pub status: Option<u16>,
    /// How long the post took.
    pub latency_ms: u64,
    /// Why it failed, if it did.
    pub error: Option<String>,
    /// `None`: done (`outcome` says how); `Some(t)`: post again at `t`.
    pub next: Option<Millis>,
    /// `delivered`, `failed` (given up) or `dropped` when `next` is
    /// `None`; `pending` otherwise.
    pub outcome: &'static str,
}

/// A callback as admins see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCallback {
    /// Where it is and what it says.
    pub due: Due,
    /// `pending`, `delivered`, `failed` or `dropped`.
    pub outcome: String,
    /// When it is posted next, while pending.
    pub due_at: Option<Millis>,
    /// When the receiver took it.
    pub delivered_at: Option<Millis>,
}

/// One post of a callback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallbackAttempt {
    /// 1, 2, ...
    pub number: u32,
    /// When it started.
    pub at: Millis,
    /// The receiver's HTTP status, if it answered.
    pub status: Option<u16>,
    /// How long it took.
    pub latency_ms: u64,
    /// Why it failed, if it did.
    pub error: Option<String>,
}

/// Which callbacks an admin lists.
#[derive(Debug, Clone, Default)]
pub struct CallbackFilter {
    /// Of this message only.
    pub message_id: Option<String>,
    /// To this endpoint only.
    pub endpoint: Option<String>,
    /// In this outcome only.
    pub outcome: Option<String>,
    /// After this callback (its id), in id order.
    pub after: Option<String>,
    /// At most this many.
    pub limit: usize,
}

/// Callbacks by outcome.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallbackCounts {
    /// Waiting to be posted (again).
    pub pending: u64,
    /// Taken by their receivers.
    pub delivered: u64,
    /// Given up after the operator's time.
    pub failed: u64,
    /// Not posted: their endpoint was removed or is no longer allowed.
    pub dropped: u64,
}

#[derive(Debug, Clone, SurrealValue)]
struct AttemptRow {
    id: RecordId,
    at: i64,
    status: Option<i64>,
    latency_ms: i64,
    error: Option<String>,
}

fn key_of(message: &str, endpoint: &str, at: Millis, state: State) -> RecordId {
    keyed(
        "callback",
        vec![
            message.to_string().into_value(),
            endpoint.to_string().into_value(),
            at.into_value(),
            state.rank().into_value(),
        ],
    )
}

/// The record of the admin's id `{message}.{endpoint}.{at}.{state}`.
fn record_of_id(id: &str) -> Option<RecordId> {
    let mut parts = id.split('.');
    let (message, endpoint, at, state) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    Some(key_of(
        message,
        endpoint,
        at.parse().ok()?,
        State::parse(state)?,
    ))
}

impl CallbackRow {
    fn into_stored(self) -> Result<StoredCallback, StoreError> {
        let RecordIdKey::Array(key) = &self.id.key else {
            return Err(StoreError::Corrupt(format!("callback {:?}", self.id.key)));
        };
        let Some(Value::String(message_id)) = key.first() else {
            return Err(StoreError::Corrupt(format!("callback {key:?}")));
        };
        let state = State::parse(&self.state)
            .ok_or_else(|| StoreError::Corrupt(format!("callback state {:?}", self.state)))?;
        Ok(StoredCallback {
            due: Due {
                change: Change {
                    message_id: message_id.clone(),
                    reference_id: self.reference_id,
                    template: self.template,
                    state,
                    at: self.at,
                    reason: self.reason,
                    error_code: self.error_code,
                },
                endpoint: self.endpoint,
                attempts: self.attempts.clamp(0, u32::MAX as i64) as u32,
                first_tried_at: self.first_tried_at,
            },
            outcome: self.outcome,
            due_at: self.due_at,
            delivered_at: self.delivered_at,
        })
    }
}

impl Store {
    /// Callbacks due by `now`, soonest first, at most `limit`.
    pub async fn due_callbacks(&self, now: Millis, limit: usize) -> Result<Vec<Due>, StoreError> {
        let rows: Vec<CallbackRow> = self
            .db
            // `due_at >= 0` leaves out the callbacks done with (`NONE`, which
            // sorts before every number): without it a pass read the first
            // 200 of those again and again and posted nothing more.
            .query(
                "SELECT * FROM callback WHERE due_at <= $now AND due_at >= 0 \
                 ORDER BY due_at LIMIT $limit",
            )
            .bind(("now", now))
            .bind(("limit", limit as i64))
            .await?
            .take(0)?;
        rows.into_iter()
            .map(|row| row.into_stored().map(|s| s.due))
            .collect()
    }

    /// The first callback of `message_id` to `endpoint` still waiting to
    /// be posted, with when it is due: the only one of theirs that may be
    /// posted now.
    pub async fn first_pending_callback(
        &self,
        message_id: &str,
        endpoint: &str,
    ) -> Result<Option<(Due, Millis)>, StoreError> {
        let range = range_of(
            "callback",
            vec![
                message_id.to_string().into_value(),
                endpoint.to_string().into_value(),
            ],
        );
        let rows: Vec<CallbackRow> = self
            .db
            .query("SELECT * FROM $range WHERE outcome = 'pending' LIMIT 1")
            .bind(("range", range))
            .await?
            .take(0)?;
        match rows.into_iter().next() {
            Some(row) => {
                let due_at = row.due_at.unwrap_or(0);
                Ok(Some((row.into_stored()?.due, due_at)))
            }
            None => Ok(None),
        }
    }

    /// Records the posts of one pass and what comes next for each, and
    /// moves the callbacks waiting behind a failed one to its next try, in
    /// one transaction: `posts` are `(callback, its post, the callbacks of
    /// its message and endpoint behind it)`.
    pub async fn record_posts(&self, posts: &[(Due, Posted, Vec<Due>)]) -> Result<(), StoreError> {
        #[derive(SurrealValue)]
        struct PostRow {
            id: RecordId,
            number: i64,
            next: Option<i64>,
            outcome: String,
            at: i64,
            delivered_at: Option<i64>,
            attempt: AttemptRow,
            behind: Vec<RecordId>,
        }
        let mut rows = Vec::with_capacity(posts.len());
        for (due, posted, behind) in posts {
            let id = due.record();
            let number = due.attempts + 1;
            let RecordIdKey::Array(key) = &id.key else {
                return Err(StoreError::Corrupt("callback key".into()));
            };
            let mut attempt_key: Vec<Value> = key.iter().cloned().collect();
            attempt_key.push(i64::from(number).into_value());
            rows.push(PostRow {
                attempt: AttemptRow {
                    id: keyed("callback_attempt", attempt_key),
                    at: posted.at,
                    status: posted.status.map(i64::from),
                    latency_ms: posted.latency_ms.min(i64::MAX as u64) as i64,
                    error: posted.error.clone(),
                },
                id,
                number: i64::from(number),
                next: posted.next,
                outcome: posted.outcome.to_string(),
                at: posted.at,
                delivered_at: (posted.outcome == "delivered").then_some(posted.at),
                // Only a callback to be tried again holds the ones behind.
                behind: match posted.next {
                    Some(_) => behind.iter().map(Due::record).collect(),
                    None => Vec::new(),
                },
            });
        }
        if rows.is_empty() {
            return Ok(());
        }
        self.write(async {
            crate::store::checked(
                self.db
                    .query(
                        "BEGIN TRANSACTION;
                         FOR $p IN $posts {
                             UPDATE $p.id SET attempts = $p.number, due_at = $p.next,
                                 outcome = $p.outcome, first_tried_at = first_tried_at ?? $p.at,
                                 delivered_at = $p.delivered_at RETURN NONE;
                             IF array::len($p.behind) > 0 {
                                 UPDATE $p.behind SET due_at = $p.next
                                     WHERE outcome = 'pending' AND due_at < $p.next RETURN NONE;
                             };
                         };
                         INSERT IGNORE INTO callback_attempt $attempts RETURN NONE;
                         COMMIT TRANSACTION;",
                    )
                    .bind((
                        "attempts",
                        rows.iter().map(|r| r.attempt.clone()).collect::<Vec<_>>(),
                    ))
                    .bind(("posts", rows))
                    .await?,
            )
            .map(|_| ())
        })
        .await
    }

    /// Moves `waiting` (callbacks behind an earlier one of their message
    /// and endpoint) to `until`, when the earlier one is tried next.
    pub async fn defer_callbacks(&self, waiting: &[Due], until: Millis) -> Result<(), StoreError> {
        let ids: Vec<RecordId> = waiting.iter().map(Due::record).collect();
        self.write(async {
            crate::store::checked(
                self.db
                    .query(
                        "UPDATE $ids SET due_at = $until WHERE outcome = 'pending' AND due_at < $until \
                         RETURN NONE",
                    )
                    .bind(("ids", ids))
                    .bind(("until", until))
                    .await?,
            )
            .map(|_| ())
        })
        .await
    }

    /// Callbacks as `filter` asks, in id order.
    pub async fn callbacks(
        &self,
        filter: &CallbackFilter,
    ) -> Result<Vec<StoredCallback>, StoreError> {
        // One message's: a range of ids; otherwise the table, in id order.
        let (from, source) = match &filter.message_id {
            Some(id) => ("$source", Some(super::callbacks_of(id))),
            None => ("callback", None),
        };
        let after = filter.after.as_deref().and_then(record_of_id);
        let rows: Vec<CallbackRow> = self
            .db
            .query(format!(
                "SELECT * FROM {from} WHERE ($endpoint = NONE OR endpoint = $endpoint) \
                 AND ($outcome = NONE OR outcome = $outcome) AND ($after = NONE OR id > $after) \
                 ORDER BY id LIMIT $limit"
            ))
            .bind(("source", source))
            .bind(("endpoint", filter.endpoint.clone()))
            .bind(("outcome", filter.outcome.clone()))
            .bind(("after", after))
            .bind(("limit", filter.limit as i64))
            .await?
            .take(0)?;
        rows.into_iter().map(CallbackRow::into_stored).collect()
    }

    /// The callback an admin names by its id, if it exists.
    pub async fn callback(&self, id: &str) -> Result<Option<StoredCallback>, StoreError> {
        let Some(record) = record_of_id(id) else {
            return Ok(None);
        };
        let rows: Vec<CallbackRow> = self
            .db
            .query("SELECT * FROM $id")
            .bind(("id", record))
            .await?
            .take(0)?;
        rows.into_iter()
            .next()
            .map(CallbackRow::into_stored)
            .transpose()
    }

    /// Every post of callback `due`, in order.
    pub async fn callback_attempts(&self, due: &Due) -> Result<Vec<CallbackAttempt>, StoreError> {
        let record = due.record();
        let RecordIdKey::Array(key) = &record.key else {
            return Err(StoreError::Corrupt("callback key".into()));
        };
        let rows: Vec<AttemptRow> = self
            .db
            .query("SELECT * FROM $range")
            .bind((
                "range",
                range_of("callback_attempt", key.iter().cloned().collect()),
            ))
            .await?
            .take(0)?;
        Ok(rows
            .into_iter()
            .enumerate()
            .map(|(n, row)| CallbackAttempt {
                number: n as u32 + 1,
                at: row.at,
                status: row.status.map(|s| s.clamp(0, u16::MAX as i64) as u16),
                latency_ms: row.latency_ms.max(0) as u64,
                error: row.error,
            })
            .collect())
    }

    /// Puts callback `id` back to be posted at `now`, with a fresh day
    /// before it is given up (its posts so far stay in its log). Returns
    /// it as it is afterwards, or `None` if there is no such callback.
    pub async fn replay_callback(
        &self,
        id: &str,
        now: Millis,
    ) -> Result<Option<StoredCallback>, StoreError> {
        let Some(record) = record_of_id(id) else {
            return Ok(None);
        };
        let rows: Vec<CallbackRow> = self
            .write(async {
                Ok(self
                    .db
                    .query(
                        "UPDATE $id SET outcome = 'pending', due_at = $now, \
                         first_tried_at = NONE, delivered_at = NONE RETURN AFTER",
                    )
                    .bind(("id", record))
                    .bind(("now", now))
                    .await?
                    .take(0)?)
            })
            .await?;
        rows.into_iter()
            .next()
            .map(CallbackRow::into_stored)
            .transpose()
    }

    /// How many callbacks are in each outcome.
    pub async fn count_callbacks(&self) -> Result<CallbackCounts, StoreError> {
        #[derive(SurrealValue)]
        struct Row {
            outcome: String,
            count: i64,
        }
        let rows: Vec<Row> = self
            .db
            .query("SELECT outcome, count() AS count FROM callback GROUP BY outcome")
            .await?
            .take(0)?;
        let mut counts = CallbackCounts::default();
        for row in rows {
            let n = row.count.max(0) as u64;
            match row.outcome.as_str() {
                "pending" => counts.pending += n,
                "delivered" => counts.delivered += n,
                "failed" => counts.failed += n,
                _ => counts.dropped += n,
            }
        }
        Ok(counts)
    }
}
