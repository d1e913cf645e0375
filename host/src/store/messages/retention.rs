//! Keeping messages no longer than their purpose needs: a finished
//! message's personal fields (text, variables, reference, errors, platform
//! ids, its attempts' errors and platform ids, its receipts' error
//! messages, and the map from its platform id) are redacted after one
//! period, and the whole message, its attempts, receipts and caller key
//! are deleted after a longer one.
//!
//! Message ids are ULIDs, which sort by the time of acceptance, so a pass
//! walks the `message` table by record id from where it stopped (a cursor
//! kept in `retention:<pass>`) up to the id of its cutoff time, in
//! batches: no index is added to `message`, and no row is read twice by
//! the walk of the same pass.
//!
//! A message that is not finished when its pass reaches it (scheduled
//! further ahead than the period, or still being retried) is held: its id
//! goes into `retention_held`, keyed `<pass>/<message id>`, and every run
//! looks at the pass's held messages again first, acting on those that
//! have finished since. The list holds only unfinished messages, so it is
//! bounded by the queue.

use std::ops::Bound;

use surrealdb::types::{RecordId, RecordIdKey, RecordIdKeyRange, SurrealValue};

use super::rows::{attempts_of, message_key};
use crate::message::Millis;
use crate::status::Status;
use crate::store::{Store, StoreError};

/// What one pass does to the messages it selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Remove the personal fields; keep the rest.
    Redact,
    /// Delete the message, its attempts, its caller key and its place in
    /// the list of messages waiting for a provider.
    Delete,
}

/// One pass over the messages accepted before a time.
#[derive(Debug, Clone)]
pub struct Pass {
    /// Names the pass's cursor (`redact-transactional`, ...).
    pub name: &'static str,
    /// What it does.
    pub action: Action,
    /// Messages accepted before this time.
    pub before: Millis,
    /// Which templates it takes: `Some(names)` only these, `None` all but
    /// those in `except`.
    pub only: Option<Vec<String>>,
    /// Templates it leaves to another pass.
    pub except: Vec<String>,
}

/// A message as a pass reads it.
#[derive(Debug, SurrealValue)]
struct Candidate {
    id: RecordId,
    status: String,
    template: Option<String>,
    idempotency_key: String,
    redacted_at: Option<i64>,
    provider: String,
    provider_message_id: Option<String>,
}

/// What a pass reads of a message.
const CANDIDATE_FIELDS: &str =
    "id, status, template, idempotency_key, redacted_at, provider, provider_message_id";

#[derive(Debug, SurrealValue)]
struct Cursor {
    last: String,
}

/// What a pass makes of one message it reads.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    /// Act on it now.
    Act,
    /// Act on it once it has finished.
    Hold,
    /// Not this pass's (another category, or already redacted).
    Pass,
}

/// What `pass` makes of `message`.
fn verdict(pass: &Pass, message: &Candidate) -> Verdict {
    if !selected(pass, message.template.as_deref())
        || (pass.action == Action::Redact && message.redacted_at.is_some())
    {
        Verdict::Pass
    } else if message
        .status
        .parse::<Status>()
        .is_ok_and(|status| !status.is_in_queue())
    {
        Verdict::Act
    } else {
        Verdict::Hold
    }
}

/// The `retention_held` record of `message_id` for `pass`.
fn held_record(pass: &Pass, message_id: &str) -> RecordId {
    RecordId::new("retention_held", format!("{}/{message_id}", pass.name))
}

/// The changes one batch makes, in one transaction.
#[derive(Default)]
struct BatchChanges {
    /// Messages the pass acts on.
    act: Vec<RecordId>,
    /// Their caller keys' records (those that differ from the message id).
    keys: Vec<RecordId>,
    /// The records that map their platform ids to them.
    sent_ids: Vec<RecordId>,
    /// Messages newly held.
    hold: Vec<RecordId>,
    /// Held records to drop (acted on, or the message is gone).
    release: Vec<RecordId>,
    /// The walk's new cursor, if the batch was the walk's.
    cursor: Option<String>,
}

impl BatchChanges {
    fn act_on(&mut self, message: &Candidate) {
        self.act.push(message.id.clone());
        if let Some(platform_id) = &message.provider_message_id {
            self.sent_ids.push(crate::store::webhooks::sent_id(
                &message.provider,
                platform_id,
            ));
        }
        if message.idempotency_key != message_key(&message.id) {
            self.keys.push(RecordId::new(
                "idempotency",
                message.idempotency_key.as_str(),
            ));
        }
    }
}

impl Store {
    /// Runs one batch of `pass` (at most `limit` messages read) at `now`.
    /// Returns how many messages it changed, and whether it reached its
    /// cutoff (nothing more to do until time moves on).
    pub async fn retention_batch(
        &self,
        pass: &Pass,
        now: Millis,
        limit: usize,
    ) -> Result<(usize, bool), StoreError> {
        let cursor: Option<Cursor> = self
            .db
            .query("SELECT last FROM type::record('retention', $pass)")
            .bind(("pass", pass.name))
            .await?
            .take(0)?;
        let start = cursor.map_or(Bound::Unbounded, |c| {
            Bound::Excluded(RecordIdKey::String(c.last))
        });
        let end = ulid::Ulid::from_parts(pass.before.max(0) as u64, 0).to_string();
        let range = RecordId::new(
            "message",
            RecordIdKeyRange {
                start,
                end: Bound::Excluded(RecordIdKey::String(end)),
            },
        );
        let batch: Vec<Candidate> = self
            .db
            .query(format!(
                "SELECT {CANDIDATE_FIELDS} FROM $range ORDER BY id LIMIT $limit"
            ))
            .bind(("range", range))
            .bind(("limit", limit as i64))
            .await?
            .take(0)?;
        let Some(last) = batch.last().map(|m| message_key(&m.id)) else {
            return Ok((0, true));
        };
        let mut changes = BatchChanges {
            cursor: Some(last),
            ..BatchChanges::default()
        };
        for message in &batch {
            match verdict(pass, message) {
                Verdict::Act => changes.act_on(message),
                Verdict::Hold => changes
                    .hold
                    .push(held_record(pass, &message_key(&message.id))),
                Verdict::Pass => {}
            }
        }
        let changed = self.apply(pass, now, changes).await?;
        Ok((changed, batch.len() < limit))
    }

    /// Looks again at up to `limit` messages `pass` holds, from after the
    /// held record `after` (`None`: the first): acts on those that have
    /// finished and lets go of those that are gone. Returns how many it
    /// changed and the last held record it looked at (`None`: no more).
    pub async fn retention_revisit(
        &self,
        pass: &Pass,
        now: Millis,
        after: Option<String>,
        limit: usize,
    ) -> Result<(usize, Option<String>), StoreError> {
        let prefix = format!("{}/", pass.name);
        let range = RecordId::new(
            "retention_held",
            RecordIdKeyRange {
                start: Bound::Excluded(RecordIdKey::String(
                    after.unwrap_or_else(|| prefix.clone()),
                )),
                // '0' follows '/': every key with the prefix sorts before it.
                end: Bound::Excluded(RecordIdKey::String(format!("{}0", pass.name))),
            },
        );
        let held: Vec<String> = self
            .db
            .query("SELECT VALUE record::id(id) FROM $range ORDER BY id LIMIT $limit")
            .bind(("range", range))
            .bind(("limit", limit as i64))
            .await?
            .take(0)?;
        let Some(last) = held.last().cloned() else {
            return Ok((0, None));
        };
        let ids: Vec<RecordId> = held
            .iter()
            .map(|key| RecordId::new("message", key.trim_start_matches(&prefix)))
            .collect();
        let messages: Vec<Candidate> = self
            .db
            .query(format!("SELECT {CANDIDATE_FIELDS} FROM $ids"))
            .bind(("ids", ids))
            .await?
            .take(0)?;
        let mut changes = BatchChanges::default();
        let mut present = std::collections::HashSet::new();
        for message in &messages {
            let key = message_key(&message.id);
            match verdict(pass, message) {
                Verdict::Act => {
                    changes.act_on(message);
                    changes.release.push(held_record(pass, &key));
                }
                Verdict::Pass => changes.release.push(held_record(pass, &key)),
                Verdict::Hold => {}
            }
            present.insert(key);
        }
        for key in &held {
            let message_id = key.trim_start_matches(&prefix);
            if !present.contains(message_id) {
                changes.release.push(held_record(pass, message_id));
            }
        }
        let changed = self.apply(pass, now, changes).await?;
        Ok((changed, Some(last)))
    }

    /// Writes one batch's `changes` in one transaction: the action on the
    /// chosen messages, the held list's changes and the walk's cursor, so
    /// that the cursor never says more was done than was. Returns how many
    /// messages it changed.
    async fn apply(
        &self,
        pass: &Pass,
        now: Millis,
        changes: BatchChanges,
    ) -> Result<usize, StoreError> {
        if changes.act.is_empty()
            && changes.hold.is_empty()
            && changes.release.is_empty()
            && changes.cursor.is_none()
        {
            return Ok(0);
        }
        let attempts: Vec<RecordId> = changes
            .act
            .iter()
            .map(|id| attempts_of(&message_key(id)))
            .collect();
        let waiting: Vec<RecordId> = changes
            .act
            .iter()
            .map(|id| RecordId::new("waiting", message_key(id)))
            .collect();
        let receipts: Vec<RecordId> = changes
            .act
            .iter()
            .map(|id| crate::store::webhooks::receipts_of(&message_key(id)))
            .collect();
        let callbacks: Vec<RecordId> = changes
            .act
            .iter()
            .map(|id| crate::store::callbacks::callbacks_of(&message_key(id)))
            .collect();
        let callback_posts: Vec<RecordId> = changes
            .act
            .iter()
            .map(|id| crate::store::callbacks::callback_attempts_of(&message_key(id)))
            .collect();
        let statement = match pass.action {
            Action::Redact => {
                "UPDATE $ids SET text = '', wa_parameters = NONE, fallbacks = NONE, hops = NONE, reference_id = NONE,
                     error_message = NONE, provider_message_id = NONE, redacted_at = $now
                     RETURN NONE;
                 UPDATE $attempts SET error_message = NONE, provider_message_id = NONE
                     RETURN NONE;
                 UPDATE $receipts SET error_message = NONE, event_id = NONE RETURN NONE;
                 UPDATE $callbacks SET reference_id = NONE, reason = NONE RETURN NONE;
                 DELETE $sent_ids RETURN NONE;"
            }
            Action::Delete => {
                "DELETE $attempts RETURN NONE;
                 DELETE $receipts RETURN NONE;
                 DELETE $callbacks RETURN NONE;
                 DELETE $callback_posts RETURN NONE;
                 DELETE $sent_ids RETURN NONE;
                 DELETE $keys RETURN NONE;
                 DELETE $waiting RETURN NONE;
                 DELETE $ids RETURN NONE;"
            }
        };
        let changed = changes.act.len();
        self.write(async {
            // One statement (a block), so one transaction.
            crate::store::checked(
                self.db
                    .query(format!(
                        "{{ {statement}
                           UPSERT $hold RETURN NONE;
                           DELETE $release RETURN NONE;
                           IF $last != NONE {{
                               UPSERT type::record('retention', $pass) SET last = $last
                                   RETURN NONE;
                           }}; }}"
                    ))
                    .bind(("ids", changes.act))
                    .bind(("attempts", attempts))
                    .bind(("keys", changes.keys))
                    .bind(("receipts", receipts))
                    .bind(("callbacks", callbacks))
                    .bind(("callback_posts", callback_posts))
                    .bind(("sent_ids", changes.sent_ids))
                    .bind(("waiting", waiting))
                    .bind(("hold", changes.hold))
                    .bind(("release", changes.release))
                    .bind(("now", now))
                    .bind(("pass", pass.name))
                    .bind(("last", changes.cursor))
                    .await?,
            )
        })
        .await?;
        Ok(changed)
    }

    /// Deletes saved preferences with no opt-out and no opt-in that were
    /// last saved before `before` (an opt-out is kept as long as it
    /// stands, and an opt-in as the record of consent). Returns how many.
    pub async fn forget_idle_preferences(&self, before: Millis) -> Result<usize, StoreError> {
        self.write(async {
            // The ids first, then a delete by id: one statement (a block).
            let deleted: Option<i64> = self
                .db
                .query(
                    "{
                        LET $idle = (SELECT VALUE id FROM preference WHERE updated_at < $before
                            AND opt_out_all = false AND opt_out_marketing = false
                            AND array::len(opt_out_templates) = 0 AND opt_in_at = NONE);
                        DELETE $idle RETURN NONE;
                        RETURN array::len($idle);
                    }",
                )
                .bind(("before", before))
                .await?
                .take(0)?;
            Ok(deleted.unwrap_or(0).max(0) as usize)
        })
        .await
    }
}

/// Whether `pass` takes a message of `template` (`None`: free text).
fn selected(pass: &Pass, template: Option<&str>) -> bool {
    let name = template.unwrap_or_default();
    match &pass.only {
        Some(only) => only.iter().any(|t| t == name),
        None => !pass.except.iter().any(|t| t == name),
    }
}

#[cfg(test)]
mod tests;
