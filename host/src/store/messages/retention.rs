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
mod tests {
    use super::super::tests::{memory_store, message};
    use super::*;
    use crate::message::NewMessage;
    use crate::preferences::Preferences;
    use crate::store::Completion;
    use crate::store::MessagePatch;

    const DAY: Millis = 86_400_000;

    /// A finished message accepted `age` days before day 1,000, of
    /// `template`, with a caller key.
    fn old(n: i64, age: i64, template: &str) -> NewMessage {
        let at = (1_000 - age) * DAY;
        NewMessage {
            id: ulid::Ulid::from_parts(at as u64, n as u128).to_string(),
            template: Some(template.into()),
            reference_id: Some(format!("reference {n}")),
            created_at: at,
            not_before: at,
            ..message(n, at)
        }
    }

    /// Transactional messages lose their text after 90 days, marketing
    /// after 30, and all go after 400 days with their attempts and keys; a
    /// message not finished is left alone, and a second run finds nothing
    /// to do. Preferences without an opt-out are forgotten after 400 days
    /// idle; an opt-out is kept.
    #[tokio::test]
    async fn finished_messages_are_redacted_then_deleted_and_opt_outs_kept() {
        let store = memory_store().await;
        let messages = [
            old(1, 10, "order_confirmation"),  // fresh: kept whole
            old(2, 60, "churn_risk"),          // marketing, 60 days: redacted
            old(3, 60, "order_confirmation"),  // transactional, 60 days: kept
            old(4, 120, "order_confirmation"), // 120 days: redacted
            old(5, 500, "order_confirmation"), // 500 days: deleted
            old(6, 500, "order_confirmation"), // 500 days, still queued: left
        ];
        store.insert_batch(&messages).await.unwrap();
        // All but the last are finished (sent).
        let claimed = store
            .claim_due(
                crate::message::Lane::Transactional,
                1_000 * DAY,
                0,
                10,
                1_001 * DAY,
                "lease",
            )
            .await
            .unwrap();
        let completions: Vec<Completion> = claimed
            .iter()
            .filter(|l| l.message.id != messages[5].id)
            .map(|l| Completion {
                report: None,
                hop: None,
                watch_at: None,
                message_id: l.message.id.clone(),
                lease: l.lease.clone(),
                patch: MessagePatch {
                    status: Status::Sent,
                    attempts: 1,
                    updated_at: l.message.created_at,
                    due_at: None,
                    sent_at: Some(l.message.created_at),
                    provider_message_id: Some("wamid".into()),
                    error_code: None,
                    error_message: None,
                    waiting_for: None,
                    lane: Default::default(),
                },
                attempt: None,
            })
            .collect();
        store.complete(completions).await.unwrap();
        for (phone, opt_out) in [("+919811111111", true), ("+919822222222", false)] {
            store
                .save_preferences(Preferences {
                    opt_out_marketing: opt_out,
                    ..Preferences::defaults_for(phone)
                })
                .await
                .unwrap();
        }

        let config = crate::config::PrivacyConfig {
            erasure_key: "unused".into(),
            redact_after: std::time::Duration::from_secs(90 * 86_400),
            redact_marketing_after: std::time::Duration::from_secs(30 * 86_400),
            delete_after: std::time::Duration::from_secs(400 * 86_400),
            retention_interval: std::time::Duration::from_secs(3600),
        };
        let marketing = vec!["churn_risk".to_string()];
        let now = 1_000 * DAY;
        // One run of every pass, in batches of 2: what it redacted and
        // what it deleted.
        let run = || async {
            let mut run = (0, 0);
            for pass in crate::retention::passes(&config, &marketing, now) {
                let mut count = |changed| match pass.action {
                    Action::Redact => run.0 += changed,
                    Action::Delete => run.1 += changed,
                };
                let mut after = None;
                loop {
                    let (changed, last) =
                        store.retention_revisit(&pass, now, after, 2).await.unwrap();
                    count(changed);
                    let Some(last) = last else { break };
                    after = Some(last);
                }
                loop {
                    let (changed, done) = store.retention_batch(&pass, now, 2).await.unwrap();
                    count(changed);
                    if done {
                        break;
                    }
                }
            }
            run
        };
        let runs = [run().await, run().await];
        // Redacted: messages 2, 4 and 5 (5 on its way to deletion);
        // deleted: 5. The second run finds nothing to do.
        assert_eq!(runs, [(3, 1), (0, 0)]);

        let mut texts = Vec::new();
        for m in &messages {
            texts.push(
                store
                    .message(&m.id)
                    .await
                    .unwrap()
                    .map(|m| (m.text, m.reference_id)),
            );
        }
        let text = |n: usize| texts[n].clone();
        let whole = |n: usize| {
            Some((
                format!("message {}", n + 1),
                Some(format!("reference {}", n + 1)),
            ))
        };
        assert_eq!(text(0), whole(0));
        assert_eq!(text(1), Some((String::new(), None)));
        assert_eq!(text(2), whole(2));
        assert_eq!(text(3), Some((String::new(), None)));
        assert_eq!(text(4), None, "a message past 400 days stayed");
        assert_eq!(text(5), whole(5), "an unfinished message was touched");

        // Message 6 finishes after its passes went by: it was held, and
        // the next run redacts and deletes it. (Without the held list,
        // checked once, the third run found nothing and its text stayed.)
        // (Its first lease, never completed, ran out at day 1,001.)
        let claimed = store
            .claim_due(
                crate::message::Lane::Transactional,
                1_001 * DAY,
                0,
                10,
                1_002 * DAY,
                "lease 2",
            )
            .await
            .unwrap();
        assert_eq!(claimed.len(), 1);
        store
            .complete(vec![Completion {
                report: None,
                hop: None,
                watch_at: None,
                message_id: messages[5].id.clone(),
                lease: claimed[0].lease.clone(),
                patch: MessagePatch {
                    status: Status::Failed,
                    attempts: 1,
                    updated_at: now,
                    due_at: None,
                    sent_at: None,
                    provider_message_id: None,
                    error_code: Some("HTTP_400".into()),
                    error_message: Some("message 6's error".into()),
                    waiting_for: None,
                    lane: Default::default(),
                },
                attempt: None,
            }])
            .await
            .unwrap();
        assert_eq!(run().await, (1, 1));
        assert!(store.message(&messages[5].id).await.unwrap().is_none());
        let held: Vec<surrealdb::types::Value> = store
            .db
            .query("SELECT * FROM retention_held")
            .await
            .unwrap()
            .take(0)
            .unwrap();
        assert!(held.is_empty(), "{held:?}");
        assert_eq!(run().await, (0, 0));

        // Preferences (saved just now): nothing is idle before now; after
        // now, the one without an opt-out goes and the opt-out stays.
        let saved_at = crate::message::now_millis();
        assert_eq!(
            store.forget_idle_preferences(saved_at - DAY).await.unwrap(),
            0
        );
        assert_eq!(
            store.forget_idle_preferences(saved_at + DAY).await.unwrap(),
            1
        );
        let kept = store
            .saved_preferences(&["+919811111111".into(), "+919822222222".into()])
            .await
            .unwrap();
        assert_eq!(kept.keys().collect::<Vec<_>>(), ["+919811111111"]);
    }
}
