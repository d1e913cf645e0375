//! Keeping messages no longer than their purpose needs: a finished
//! message's personal fields (text, variables, reference, errors, platform
//! ids, and its attempts' errors and platform ids) are redacted after one
//! period, and the whole message, its attempts and its caller key are
//! deleted after a longer one.
//!
//! Message ids are ULIDs, which sort by the time of acceptance, so a pass
//! walks the `message` table by record id from where it stopped (a cursor
//! kept in `retention:<pass>`) up to the id of its cutoff time, in
//! batches: no index is added to `message`, and no row is read twice by
//! the same pass. A message that is not finished when its pass reaches it
//! (scheduled further ahead than the period) is left as it is.

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
}

#[derive(Debug, SurrealValue)]
struct Cursor {
    last: String,
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
            .query(
                "SELECT id, status, template, idempotency_key, redacted_at FROM $range \
                 ORDER BY id LIMIT $limit",
            )
            .bind(("range", range))
            .bind(("limit", limit as i64))
            .await?
            .take(0)?;
        let Some(last) = batch.last().map(|m| message_key(&m.id)) else {
            return Ok((0, true));
        };
        let finished = [
            Status::Sent,
            Status::Failed,
            Status::Skipped,
            Status::Cancelled,
            Status::Expired,
        ];
        let chosen: Vec<&Candidate> = batch
            .iter()
            .filter(|m| {
                finished.iter().any(|s| s.as_str() == m.status)
                    && selected(pass, m.template.as_deref())
                    && !(pass.action == Action::Redact && m.redacted_at.is_some())
            })
            .collect();
        let ids: Vec<RecordId> = chosen.iter().map(|m| m.id.clone()).collect();
        let attempts: Vec<RecordId> = chosen
            .iter()
            .map(|m| attempts_of(&message_key(&m.id)))
            .collect();
        let statement = match pass.action {
            Action::Redact => {
                "UPDATE $ids SET text = '', wa_parameters = NONE, reference_id = NONE,
                     error_message = NONE, provider_message_id = NONE, redacted_at = $now
                     RETURN NONE;
                 UPDATE $attempts SET error_message = NONE, provider_message_id = NONE
                     RETURN NONE;"
            }
            Action::Delete => {
                "DELETE $attempts RETURN NONE;
                 DELETE $keys RETURN NONE;
                 DELETE $waiting RETURN NONE;
                 DELETE $ids RETURN NONE;"
            }
        };
        let keys: Vec<RecordId> = chosen
            .iter()
            .filter(|m| m.idempotency_key != message_key(&m.id))
            .map(|m| RecordId::new("idempotency", m.idempotency_key.as_str()))
            .collect();
        let waiting: Vec<RecordId> = chosen
            .iter()
            .map(|m| RecordId::new("waiting", message_key(&m.id)))
            .collect();
        let changed = ids.len();
        let done = batch.len() < limit;
        self.write(async {
            // One statement (a block), so one transaction: the changes and
            // the cursor that says they were made.
            crate::store::checked(
                self.db
                    .query(format!(
                        "{{ {statement}
                           UPSERT type::record('retention', $pass) SET last = $last RETURN NONE; }}"
                    ))
                    .bind(("ids", ids))
                    .bind(("attempts", attempts))
                    .bind(("keys", keys))
                    .bind(("waiting", waiting))
                    .bind(("now", now))
                    .bind(("pass", pass.name))
                    .bind(("last", last))
                    .await?,
            )
        })
        .await?;
        Ok((changed, done))
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
            .claim_due(1_000 * DAY, 0, 10, 1_001 * DAY, "lease")
            .await
            .unwrap();
        let completions: Vec<Completion> = claimed
            .iter()
            .filter(|l| l.message.id != messages[5].id)
            .map(|l| Completion {
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
        let mut runs = Vec::new();
        for _ in 0..2 {
            let mut run = (0, 0);
            for pass in crate::retention::passes(&config, &marketing, now) {
                loop {
                    let (changed, done) = store.retention_batch(&pass, now, 2).await.unwrap();
                    match pass.action {
                        Action::Redact => run.0 += changed,
                        Action::Delete => run.1 += changed,
                    }
                    if done {
                        break;
                    }
                }
            }
            runs.push(run);
        }
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
