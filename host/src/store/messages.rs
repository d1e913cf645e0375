//! The `message`, `idempotency`, `waiting` and `attempt` tables: accepting,
//! claiming, completing and reading messages (the layout is described in
//! [`super::schema`]).

use std::collections::HashMap;

use std::ops::Bound;

use surrealdb::types::{Array, RecordId, RecordIdKey, RecordIdKeyRange, SurrealValue, Value};

use super::{Store, StoreError, checked};
use crate::message::{
    Attempt, ErrorNote, Leased, Message, Millis, NewMessage, Outcome, ProviderTemplate, Status,
};

/// The fields of a message as chirp reads them back.
/// How many times a batch of accepted messages is inserted again after
/// another batch stored one of its caller keys first. Each retry sees the
/// keys stored so far, so a second conflict needs yet another writer racing
/// on another of the batch's keys.
const INSERT_CONFLICT_RETRIES: u32 = 8;

const MESSAGE_FIELDS: &str = "id, status, phone, template, template_version, text, wa_template, \
     wa_language, wa_parameters, reference_id, idempotency_key, provider, attempts, created_at, \
     updated_at, due_at, sent_at, provider_message_id, error_code, error_message, retry_base, \
     override_opt_out";

#[derive(Debug, Clone, SurrealValue)]
struct MessageRow {
    id: RecordId,
    status: String,
    phone: String,
    template: Option<String>,
    template_version: Option<i64>,
    text: String,
    wa_template: Option<String>,
    wa_language: Option<String>,
    wa_parameters: Option<Vec<String>>,
    reference_id: Option<String>,
    idempotency_key: String,
    provider: String,
    attempts: i64,
    created_at: i64,
    updated_at: i64,
    due_at: Option<i64>,
    sent_at: Option<i64>,
    provider_message_id: Option<String>,
    error_code: Option<String>,
    error_message: Option<String>,
    retry_base: Option<i64>,
    /// Written only when set.
    override_opt_out: Option<bool>,
}

impl MessageRow {
    fn from_new(m: &NewMessage) -> MessageRow {
        let wa = m.provider_template.as_ref();
        let skipped = m.skip.as_ref();
        MessageRow {
            id: RecordId::new("message", m.id.as_str()),
            status: m.initial_status().as_str().into(),
            phone: m.phone.as_str().into(),
            template: m.template.clone(),
            template_version: m.template_version.map(i64::from),
            text: m.text.clone(),
            wa_template: wa.map(|t| t.name.clone()),
            wa_language: wa.map(|t| t.language.clone()),
            wa_parameters: wa.map(|t| t.parameters.clone()),
            reference_id: m.reference_id.clone(),
            idempotency_key: m.idempotency_key.clone(),
            provider: m.provider.clone(),
            attempts: 0,
            created_at: m.created_at,
            updated_at: m.created_at,
            due_at: skipped.is_none().then_some(m.not_before),
            sent_at: None,
            provider_message_id: None,
            error_code: skipped.map(|s| s.code.clone()),
            error_message: skipped.map(|s| s.message.clone()),
            retry_base: None,
            override_opt_out: m.override_opt_out.then_some(true),
        }
    }

    fn into_message(self) -> Result<Message, StoreError> {
        let status = self.status.parse().map_err(StoreError::Corrupt)?;
        let provider_template = match (self.wa_template, self.wa_language) {
            (Some(name), Some(language)) => Some(ProviderTemplate {
                name,
                language,
                parameters: self.wa_parameters.unwrap_or_default(),
            }),
            _ => None,
        };
        // While a message is `sending`, `due_at` holds when its lease runs
        // out; callers see no next attempt until the attempt is recorded.
        let due_at = if status == Status::Sending {
            None
        } else {
            self.due_at
        };
        let last_error = self.error_code.map(|code| ErrorNote {
            code,
            message: self.error_message.unwrap_or_default(),
        });
        let id = match self.id.key {
            RecordIdKey::String(id) => id,
            other => return Err(StoreError::Corrupt(format!("message id {other:?}"))),
        };
        Ok(Message {
            id,
            status,
            phone: self.phone,
            template: self.template,
            template_version: self.template_version.map(|v| v.max(0) as u32),
            text: self.text,
            provider_template,
            reference_id: self.reference_id,
            idempotency_key: self.idempotency_key,
            provider: self.provider,
            attempts: self.attempts.max(0) as u32,
            retry_base: self.retry_base.unwrap_or(0).max(0) as u32,
            created_at: self.created_at,
            updated_at: self.updated_at,
            due_at,
            sent_at: self.sent_at,
            provider_message_id: self.provider_message_id,
            last_error,
            override_opt_out: self.override_opt_out.unwrap_or(false),
        })
    }
}

/// An attempt as the `attempt` table keeps it. Its record id is
/// `[message_id, number, tag]` ([`attempt_id`]), so a message's audit
/// trail is a range of ids and the table needs no index.
#[derive(Debug, Clone, SurrealValue)]
struct AttemptRow {
    /// Set when inserting; reads omit it.
    id: Option<RecordId>,
    message_id: String,
    number: i64,
    started_at: i64,
    provider: String,
    provider_version: String,
    outcome: String,
    provider_message_id: Option<String>,
    error_code: Option<String>,
    error_message: Option<String>,
    retry_after_ms: Option<i64>,
    latency_ms: i64,
}

/// The record id of an attempt: its message, its number, and a tag that
/// tells apart two attempts with the same number (the lease it was made
/// under: a lease that ran out and its successor can both record one).
fn attempt_id(message_id: &str, number: u32, tag: &str) -> RecordId {
    let key: Vec<Value> = vec![
        message_id.to_string().into_value(),
        i64::from(number).into_value(),
        tag.to_string().into_value(),
    ];
    RecordId::new("attempt", Array::from(key))
}

/// Every attempt id of one message.
fn attempts_of(message_id: &str) -> RecordId {
    let bound = |number: i64| -> RecordIdKey {
        let key: Vec<Value> = vec![message_id.to_string().into_value(), number.into_value()];
        Array::from(key).into()
    };
    RecordId::new(
        "attempt",
        RecordIdKeyRange {
            start: Bound::Included(bound(i64::MIN)),
            end: Bound::Excluded(bound(i64::MAX)),
        },
    )
}

impl AttemptRow {
    fn from_attempt(a: &Attempt, lease: &str) -> AttemptRow {
        let (provider_message_id, retry_after_ms) = match &a.outcome {
            Outcome::Sent {
                provider_message_id,
            } => (provider_message_id.clone(), None),
            Outcome::Retryable { retry_after, .. } => (
                None,
                retry_after.map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX)),
            ),
            Outcome::Permanent { .. } => (None, None),
        };
        let error = a.outcome.error();
        AttemptRow {
            id: Some(attempt_id(&a.message_id, a.number, lease)),
            message_id: a.message_id.clone(),
            number: a.number.into(),
            started_at: a.started_at,
            provider: a.provider.clone(),
            provider_version: a.provider_version.clone(),
            outcome: a.outcome.label().into(),
            provider_message_id,
            error_code: error.map(|e| e.code.clone()),
            error_message: error.map(|e| e.message.clone()),
            retry_after_ms,
            latency_ms: a.latency_ms as i64,
        }
    }

    fn into_attempt(self) -> Result<Attempt, StoreError> {
        let error = ErrorNote {
            code: self.error_code.unwrap_or_default(),
            message: self.error_message.unwrap_or_default(),
        };
        let outcome = match self.outcome.as_str() {
            "sent" => Outcome::Sent {
                provider_message_id: self.provider_message_id,
            },
            "retryable" => Outcome::Retryable {
                error,
                retry_after: self
                    .retry_after_ms
                    .map(|ms| std::time::Duration::from_millis(ms.max(0) as u64)),
            },
            "permanent" => Outcome::Permanent { error },
            other => return Err(StoreError::Corrupt(format!("attempt outcome {other:?}"))),
        };
        Ok(Attempt {
            message_id: self.message_id,
            number: self.number.max(0) as u32,
            started_at: self.started_at,
            provider: self.provider,
            provider_version: self.provider_version,
            outcome,
            latency_ms: self.latency_ms.max(0) as u64,
        })
    }
}

/// What became of one message offered to [`Store::insert_batch`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inserted {
    pub id: String,
    pub status: Status,
    /// The idempotency key was already known: nothing new was stored.
    pub replayed: bool,
    /// The idempotency key was already known for another request (another
    /// phone, template, variables or text): nothing was stored, and `id`
    /// and `status` are this message's own, not the first one's.
    pub key_reused: bool,
}

/// The state a message moves to after an attempt (or a deferral).
#[derive(Debug, Clone)]
pub struct MessagePatch {
    pub status: String,
    pub attempts: i64,
    pub updated_at: i64,
    pub due_at: Option<i64>,
    pub sent_at: Option<i64>,
    pub provider_message_id: Option<String>,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    /// The provider the message waits for, when it is not loaded.
    pub waiting_for: Option<String>,
}

/// One finished piece of work for [`Store::complete`]: the message's new
/// state, applied only if the worker still holds the lease, and the attempt
/// for the audit trail, recorded in any case.
#[derive(Debug, Clone)]
pub struct Completion {
    pub message_id: String,
    pub lease: String,
    pub patch: MessagePatch,
    pub attempt: Option<Attempt>,
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
            status: p.status,
            attempts: p.attempts,
            updated_at: p.updated_at,
            due_at: p.due_at,
            sent_at: p.sent_at,
            provider_message_id: p.provider_message_id,
            error_code: p.error_code,
            error_message: p.error_message,
            waiting_for: p.waiting_for,
            lease: None,
        }
    }
}

/// Filters of `GET /api/notifications/history`. Results come newest first;
/// `before` is the cursor (the id of the last message of the previous page).
#[derive(Debug, Clone, Default)]
pub struct HistoryFilter {
    pub phone: Option<String>,
    pub status: Option<Status>,
    pub template: Option<String>,
    pub reference_id: Option<String>,
    pub from: Option<Millis>,
    pub to: Option<Millis>,
    pub before: Option<String>,
    pub limit: usize,
}

/// A caller-given idempotency key as the `idempotency` table keeps it.
#[derive(Debug, SurrealValue)]
struct KeyRow {
    id: RecordId,
    message: RecordId,
    /// What the request asked for; absent in stores written before chirp
    /// kept it (such a key answers any request).
    fingerprint: Option<String>,
}

/// A known key, read back with the status of its message.
#[derive(Debug, SurrealValue)]
struct KnownKey {
    key: String,
    id: String,
    status: String,
    fingerprint: Option<String>,
}

impl Store {
    /// Stores a batch of accepted messages in one transaction. Messages whose
    /// idempotency key is already known (in the store or earlier in the
    /// batch) are not stored again; they answer with the first one's id.
    ///
    /// Batches may be inserted concurrently. If two carry the same new key,
    /// the store refuses the second's transaction (the key's record exists,
    /// or the commit conflicts) and it is inserted again, now finding the
    /// key: one message per key, whatever the interleaving.
    pub async fn insert_batch(&self, batch: &[NewMessage]) -> Result<Vec<Inserted>, StoreError> {
        self.insert_groups(batch, &vec![1; batch.len()]).await
    }

    /// [`Store::insert_batch`] for a batch made of groups (`groups` gives
    /// their sizes, in order) that are stored whole or not at all: a group
    /// with a key reused for another request stores nothing.
    pub async fn insert_groups(
        &self,
        batch: &[NewMessage],
        groups: &[usize],
    ) -> Result<Vec<Inserted>, StoreError> {
        self.write(async {
            let mut conflicts = 0;
            loop {
                match self.insert_batch_once(batch, groups).await {
                    Err(StoreError::Conflict(e)) if conflicts < INSERT_CONFLICT_RETRIES => {
                        conflicts += 1;
                        tracing::debug!(error = %e, conflicts, "a caller key was stored by another batch first; inserting again");
                    }
                    result => return result,
                }
            }
        })
        .await
    }

    /// One try of [`Store::insert_batch`]. It fails with
    /// [`StoreError::Conflict`] if another writer stored one of the batch's
    /// caller keys between the lookup and the commit.
    async fn insert_batch_once(
        &self,
        batch: &[NewMessage],
        groups: &[usize],
    ) -> Result<Vec<Inserted>, StoreError> {
        let mut known = self.known_keys(batch).await?;
        let mut rows = Vec::with_capacity(batch.len());
        let mut keys = Vec::new();
        let mut results = Vec::with_capacity(batch.len());
        let mut rest = batch;
        for &size in groups {
            let (group, after) = rest.split_at(size.min(rest.len()));
            rest = after;
            // A key reused for another request refuses its whole group
            // (one event's messages): nothing of it is stored.
            let reused = group.iter().any(|m| {
                known
                    .get(&m.idempotency_key)
                    .is_some_and(|(_, print)| print.as_deref().is_some_and(|p| p != m.fingerprint))
            });
            if reused {
                results.extend(group.iter().map(|m| Inserted {
                    id: m.id.clone(),
                    status: m.initial_status(),
                    replayed: false,
                    key_reused: true,
                }));
                continue;
            }
            for m in group {
                if let Some((existing, _)) = known.get(&m.idempotency_key) {
                    results.push(Inserted {
                        replayed: true,
                        ..existing.clone()
                    });
                    continue;
                }
                let inserted = Inserted {
                    id: m.id.clone(),
                    status: m.initial_status(),
                    replayed: false,
                    key_reused: false,
                };
                known.insert(
                    m.idempotency_key.clone(),
                    (inserted.clone(), Some(m.fingerprint.clone())),
                );
                rows.push(MessageRow::from_new(m));
                if m.idempotency_key != m.id {
                    keys.push(KeyRow {
                        id: RecordId::new("idempotency", m.idempotency_key.as_str()),
                        message: RecordId::new("message", m.id.as_str()),
                        fingerprint: Some(m.fingerprint.clone()),
                    });
                }
                results.push(inserted);
            }
        }
        if rows.is_empty() {
            return Ok(results);
        }
        let query = if keys.is_empty() {
            "INSERT INTO message $rows RETURN NONE"
        } else {
            "BEGIN TRANSACTION; \
             INSERT INTO message $rows RETURN NONE; \
             INSERT INTO idempotency $keys RETURN NONE; \
             COMMIT TRANSACTION;"
        };
        checked(
            self.db
                .query(query)
                .bind(("rows", rows))
                .bind(("keys", keys))
                .await?,
        )?;
        Ok(results)
    }

    /// The messages already stored under the caller-given keys of `batch`,
    /// read by record id in one query. Keys chirp generated (equal to the
    /// message id) are new by construction and are not looked up.
    async fn known_keys(
        &self,
        batch: &[NewMessage],
    ) -> Result<HashMap<String, (Inserted, Option<String>)>, StoreError> {
        let ids: Vec<RecordId> = batch
            .iter()
            .filter(|m| m.idempotency_key != m.id)
            .map(|m| RecordId::new("idempotency", m.idempotency_key.as_str()))
            .collect();
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        let rows: Vec<KnownKey> = self
            .db
            .query(
                "SELECT record::id(id) AS key, record::id(message) AS id, message.status AS status, \
                 fingerprint FROM $ids",
            )
            .bind(("ids", ids))
            .await?
            .take(0)?;
        rows.into_iter()
            .map(|row| {
                let status = row.status.parse().map_err(StoreError::Corrupt)?;
                Ok((
                    row.key,
                    (
                        Inserted {
                            id: row.id,
                            status,
                            replayed: true,
                            key_reused: false,
                        },
                        row.fingerprint,
                    ),
                ))
            })
            .collect()
    }

    /// Leases up to `limit` messages due between `floor` and `now`, oldest
    /// due first, in one transaction, until `lease_until`. Each comes back
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
    pub async fn claim_due(
        &self,
        now: Millis,
        floor: Millis,
        limit: usize,
        lease_until: Millis,
        lease: &str,
    ) -> Result<Vec<Leased>, StoreError> {
        self.write(async {
            // RETURN BEFORE: the whole document, one value per message, as
            // it was (its due time, and whether a lease had run out); the
            // fields the claim set are known here.
            let rows: Vec<MessageRow> = self
                .db
                .query(
                    "UPDATE (SELECT VALUE id FROM message WHERE due_at <= $now AND due_at >= $floor \
                       ORDER BY due_at LIMIT $limit) \
                     SET status = 'sending', due_at = $lease_until, lease = $lease, updated_at = $now \
                     WHERE status IN ['queued', 'sending'] \
                     RETURN BEFORE",
                )
                .bind(("now", now))
                .bind(("floor", floor.max(0)))
                .bind(("limit", limit as i64))
                .bind(("lease_until", lease_until))
                .bind(("lease", lease.to_string()))
                .await?
                .take(0)?;
            rows.into_iter()
                .map(|row| {
                    let was_due = row.due_at;
                    let mut message = row.into_message()?;
                    let lease_expired = message.status == Status::Sending;
                    message.status = Status::Sending;
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

    /// When the earliest message due at or after `floor` is due (or its
    /// lease runs out), if any (see [`Store::claim_due`] for the floor).
    pub async fn next_due(&self, floor: Millis) -> Result<Option<Millis>, StoreError> {
        let due: Vec<i64> = self
            .db
            .query(
                "SELECT VALUE due_at FROM message WHERE due_at >= $floor ORDER BY due_at LIMIT 1",
            )
            .bind(("floor", floor.max(0)))
            .await?
            .take(0)?;
        Ok(due.first().copied())
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
            let updates: Vec<CompletionRow> = batch
                .into_iter()
                .map(|c| CompletionRow {
                    id: c.message_id,
                    lease: c.lease,
                    patch: c.patch.into(),
                })
                .collect();
            let results = self
                .db
                .query(
                    "BEGIN TRANSACTION;
                 FOR $c IN $updates {
                     UPDATE type::record('message', $c.id) MERGE $c.patch
                     WHERE lease = $c.lease RETURN NONE;
                 };
                 IF array::len($attempts) > 0 { INSERT IGNORE INTO attempt $attempts RETURN NONE; };
                 FOR $w IN $waiting { UPSERT $w.id SET provider = $w.provider RETURN NONE; };
                 COMMIT TRANSACTION;",
                )
                .bind(("updates", updates))
                .bind(("attempts", attempts))
                .bind(("waiting", waiting))
                .await?;
            checked(results)?;
            Ok(())
        })
        .await
    }

    /// One message, if it exists.
    pub async fn message(&self, id: &str) -> Result<Option<Message>, StoreError> {
        let rows: Vec<MessageRow> = self
            .db
            .query(format!(
                "SELECT {MESSAGE_FIELDS} FROM type::record('message', $id)"
            ))
            .bind(("id", id.to_string()))
            .await?
            .take(0)?;
        rows.into_iter()
            .next()
            .map(MessageRow::into_message)
            .transpose()
    }

    /// The audit trail of one message, oldest attempt first.
    pub async fn attempts(&self, message_id: &str) -> Result<Vec<Attempt>, StoreError> {
        let rows: Vec<AttemptRow> = self
            .db
            .query("SELECT * OMIT id FROM $attempts ORDER BY number, started_at")
            .bind(("attempts", attempts_of(message_id)))
            .await?
            .take(0)?;
        rows.into_iter().map(AttemptRow::into_attempt).collect()
    }

    /// Messages matching `filter`, newest first.
    pub async fn history(&self, filter: &HistoryFilter) -> Result<Vec<Message>, StoreError> {
        let mut conditions = Vec::new();
        if filter.phone.is_some() {
            conditions.push("phone = $phone");
        }
        if filter.status.is_some() {
            conditions.push("status = $status");
        }
        if filter.template.is_some() {
            conditions.push("template = $template");
        }
        if filter.reference_id.is_some() {
            conditions.push("reference_id = $reference_id");
        }
        if filter.from.is_some() {
            conditions.push("created_at >= $from");
        }
        if filter.to.is_some() {
            conditions.push("created_at < $to");
        }
        if filter.before.is_some() {
            conditions.push("id < type::record('message', $before)");
        }
        let where_clause = if conditions.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", conditions.join(" AND "))
        };
        let rows: Vec<MessageRow> = self
            .db
            .query(format!(
                "SELECT {MESSAGE_FIELDS} FROM message {where_clause} ORDER BY id DESC LIMIT $limit"
            ))
            .bind(("phone", filter.phone.clone()))
            .bind(("status", filter.status.map(|s| s.as_str().to_string())))
            .bind(("template", filter.template.clone()))
            .bind(("reference_id", filter.reference_id.clone()))
            .bind(("from", filter.from))
            .bind(("to", filter.to))
            .bind(("before", filter.before.clone()))
            .bind(("limit", filter.limit as i64))
            .await?
            .take(0)?;
        rows.into_iter().map(MessageRow::into_message).collect()
    }

    /// Puts a `failed` message back in the queue, due at `now`, with a fresh
    /// retry budget (attempt numbers go on counting). Returns the message as it is afterwards, or `None`
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
            let mut tries = 0;
            let rows: Vec<MessageRow> = loop {
                let result = self
                    .db
                    .query(format!(
                        "UPDATE type::record('message', $id) SET status = 'queued', due_at = $now, \
                         retry_base = attempts, updated_at = $now \
                     WHERE status = 'failed' RETURN {MESSAGE_FIELDS}"
                    ))
                    .bind(("id", id.to_string()))
                    .bind(("now", now))
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
                       RETURN UPDATE $listed SET due_at = $now, waiting_for = NONE, \
                         updated_at = $now \
                         WHERE status = 'queued' AND waiting_for = $provider \
                         RETURN VALUE record::id(id); \
                     }",
                )
                .bind(("provider", provider.to_string()))
                .bind(("now", now))
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
        let rows: Vec<StatusCount> = self
            .db
            .query(
                "SELECT status, count() AS n FROM message WHERE due_at <= $now AND due_at >= 0 \
                 GROUP BY status",
            )
            .bind(("now", now))
            .await?
            .take(0)?;
        let mut counts = DueCounts::default();
        for row in rows {
            let n = row.n.max(0) as usize;
            match row.status.as_str() {
                "queued" => counts.queued = n,
                "sending" => counts.lease_expired = n,
                _ => {}
            }
        }
        Ok(counts)
    }
}

/// What [`Store::count_due`] found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DueCounts {
    pub queued: usize,
    pub lease_expired: usize,
}

#[derive(Debug, SurrealValue)]
struct StatusCount {
    status: String,
    n: i64,
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::phone::Phone;
    use crate::store::{EmbeddedMemory, ServerAccess};

    /// An empty store in memory.
    pub(crate) async fn memory_store() -> Store {
        Store::open(
            "mem://",
            &ServerAccess::default(),
            EmbeddedMemory::default(),
        )
        .await
        .expect("store")
    }

    /// A plain message with the caller key `key-{n}`, due at `due`.
    pub(crate) fn message(n: i64, due: Millis) -> NewMessage {
        let id = ulid::Ulid::new().to_string();
        NewMessage {
            idempotency_key: format!("key-{n}"),
            id,
            phone: Phone::parse("+919876543210").expect("phone"),
            template: None,
            template_version: None,
            text: format!("message {n}"),
            provider_template: None,
            reference_id: None,
            provider: "myoperator".into(),
            created_at: due,
            not_before: due,
            skip: None,
            override_opt_out: false,
            fingerprint: format!("request-{n}"),
        }
    }

    #[tokio::test]
    async fn claims_start_at_the_floor_and_report_when_each_was_due() {
        let store = memory_store().await;
        let batch: Vec<NewMessage> = (0..6).map(|n| message(n, 1_000 + n * 100)).collect();
        store.insert_batch(&batch).await.expect("insert");
        store
            .insert_batch(&[message(0, 1_000)])
            .await
            .expect("an idempotent replay");

        // From a floor of 1,250 only the three due at 1,300..1,500 qualify.
        let claimed = store
            .claim_due(10_000, 1_250, 10, 20_000, "lease-a")
            .await
            .expect("claim");
        let mut due: Vec<Millis> = claimed.iter().filter_map(|l| l.message.due_at).collect();
        due.sort();
        assert_eq!(due, vec![1_300, 1_400, 1_500]);
        assert!(claimed.iter().all(|l| l.message.status == Status::Sending));
        assert!(
            claimed
                .iter()
                .all(|l| l.lease == "lease-a" && !l.lease_expired)
        );
        // Leased messages are due again when their lease runs out.
        assert_eq!(store.next_due(1_250).await.expect("next"), Some(20_000));

        // From 0 the rest are found, oldest first.
        assert_eq!(store.next_due(0).await.expect("next"), Some(1_000));
        let claimed = store
            .claim_due(10_000, 0, 2, 20_000, "lease-b")
            .await
            .expect("claim");
        let mut due: Vec<Millis> = claimed.iter().filter_map(|l| l.message.due_at).collect();
        due.sort();
        assert_eq!(due, vec![1_000, 1_100]);
    }

    fn sent(message_id: &str, lease: &str, now: Millis) -> Completion {
        Completion {
            message_id: message_id.into(),
            lease: lease.into(),
            patch: MessagePatch {
                status: Status::Sent.as_str().into(),
                attempts: 1,
                updated_at: now,
                due_at: None,
                sent_at: Some(now),
                provider_message_id: Some(format!("sent-under-{lease}")),
                error_code: None,
                error_message: None,
                waiting_for: None,
            },
            attempt: None,
        }
    }

    #[tokio::test]
    async fn a_lease_that_runs_out_is_taken_back_and_only_its_new_holder_completes() {
        let store = memory_store().await;
        store
            .insert_batch(&[message(0, 1_000), message(1, 1_000)])
            .await
            .expect("insert");
        let first = store
            .claim_due(1_000, 0, 10, 5_000, "lease-a")
            .await
            .expect("claim");
        assert_eq!(first.len(), 2);
        let reading = store
            .message(&first[0].message.id)
            .await
            .expect("read")
            .expect("exists");
        assert_eq!(reading.status, Status::Sending);
        assert_eq!(
            reading.due_at, None,
            "no next attempt is shown while sending"
        );

        // Before the lease runs out nothing is due; at its end both are.
        assert!(
            store
                .claim_due(4_999, 0, 10, 9_000, "lease-b")
                .await
                .expect("claim")
                .is_empty()
        );
        let counts = store.count_due(5_000).await.expect("count");
        assert_eq!(
            counts,
            DueCounts {
                queued: 0,
                lease_expired: 2
            }
        );
        let second = store
            .claim_due(5_000, 0, 10, 9_000, "lease-b")
            .await
            .expect("claim");
        assert_eq!(second.len(), 2);
        assert!(
            second
                .iter()
                .all(|l| l.lease_expired && l.lease == "lease-b")
        );
        assert!(second.iter().all(|l| l.message.due_at == Some(5_000)));

        // The first holder's completion comes too late and changes nothing;
        // the second holder's completes the message.
        let id = first[0].message.id.clone();
        store
            .complete(vec![sent(&id, "lease-a", 6_000)])
            .await
            .expect("complete");
        let reading = store.message(&id).await.expect("read").expect("exists");
        assert_eq!(reading.status, Status::Sending);
        store
            .complete(vec![sent(&id, "lease-b", 6_001)])
            .await
            .expect("complete");
        let reading = store.message(&id).await.expect("read").expect("exists");
        assert_eq!(reading.status, Status::Sent);
        assert_eq!(
            reading.provider_message_id.as_deref(),
            Some("sent-under-lease-b")
        );
        // Sent, it is due never again; the other one is due at its lease's end.
        assert_eq!(store.next_due(0).await.expect("next"), Some(9_000));
        assert_eq!(
            store
                .count_due(i64::MAX)
                .await
                .expect("count")
                .lease_expired,
            1
        );
    }

    #[tokio::test]
    async fn a_completion_applied_twice_records_its_attempt_once() {
        // A completion sent to a server whose answer is lost may have been
        // written; the scheduler sends it again, and that must succeed.
        let store = memory_store().await;
        store
            .insert_batch(&[message(1, 1_000)])
            .await
            .expect("insert");
        let leased = store
            .claim_due(2_000, 0, 1, 60_000, "lease-a")
            .await
            .expect("claim");
        let id = leased[0].message.id.clone();
        let mut completion = sent(&id, "lease-a", 3_000);
        completion.attempt = Some(Attempt {
            message_id: id.clone(),
            number: 1,
            started_at: 2_500,
            provider: "myoperator".into(),
            provider_version: "0.1.0".into(),
            outcome: Outcome::Sent {
                provider_message_id: Some("wamid-1".into()),
            },
            latency_ms: 5,
        });
        store
            .complete(vec![completion.clone()])
            .await
            .expect("first");
        store.complete(vec![completion]).await.expect("again");
        assert_eq!(store.attempts(&id).await.expect("attempts").len(), 1);
        let message = store.message(&id).await.expect("read").expect("stored");
        assert_eq!(message.status, Status::Sent);
        assert_eq!(message.attempts, 1);
    }

    #[tokio::test]
    async fn each_message_reads_its_own_attempts_in_order_even_two_with_one_number() {
        let store = memory_store().await;
        let attempt = |message_id: &str, number: u32, started_at: Millis| Attempt {
            message_id: message_id.into(),
            number,
            started_at,
            provider: "myoperator".into(),
            provider_version: "0.1.0".into(),
            outcome: Outcome::Retryable {
                error: ErrorNote {
                    code: "TIMEOUT".into(),
                    message: "timed out".into(),
                },
                retry_after: None,
            },
            latency_ms: 1,
        };
        let with = |lease: &str, a: Attempt| {
            let mut c = sent(&a.message_id, lease, a.started_at);
            c.attempt = Some(a);
            c
        };
        store
            .complete(vec![
                with("lease-2", attempt("m1", 2, 300)),
                with("lease-1", attempt("m1", 1, 100)),
                // The first lease ran out mid-attempt; its successor made
                // attempt 1 again.
                with("lease-1b", attempt("m1", 1, 200)),
                with("lease-1", attempt("m10", 1, 150)),
                with("lease-1", attempt("m", 1, 50)),
            ])
            .await
            .expect("record");
        let trail: Vec<(u32, Millis)> = store
            .attempts("m1")
            .await
            .expect("attempts")
            .iter()
            .map(|a| (a.number, a.started_at))
            .collect();
        assert_eq!(trail, vec![(1, 100), (1, 200), (2, 300)]);
        assert_eq!(store.attempts("m10").await.expect("attempts").len(), 1);
        assert_eq!(store.attempts("m").await.expect("attempts").len(), 1);
        assert!(store.attempts("m2").await.expect("attempts").is_empty());
    }

    #[tokio::test]
    async fn a_caller_key_answers_its_first_message_and_generated_keys_store_nothing_extra() {
        let store = memory_store().await;
        let first = message(7, 1_000);
        let mut generated = message(8, 1_000);
        generated.idempotency_key = generated.id.clone();
        let stored = store
            .insert_batch(&[first.clone(), generated.clone()])
            .await
            .expect("insert");
        assert!(stored.iter().all(|i| !i.replayed));

        // The same key again, in a later batch and twice within one batch.
        let again = message(7, 2_000);
        let replays = store
            .insert_batch(&[again.clone(), again])
            .await
            .expect("replay");
        for replay in &replays {
            assert_eq!(replay.id, first.id);
            assert!(replay.replayed);
            assert_eq!(replay.status, Status::Queued);
        }
        let keys: Vec<String> = store
            .db
            .query("SELECT VALUE record::id(id) FROM idempotency")
            .await
            .expect("query")
            .take(0)
            .expect("keys");
        assert_eq!(keys, vec!["key-7".to_string()]);
    }

    /// A key used again for another request stores nothing and says so,
    /// in a later batch and within one; and an event (a group) with one
    /// such key stores none of its messages. Without the fingerprint check
    /// (checked once) the second request was answered with the first
    /// message, as if it had been sent for it.
    #[tokio::test]
    async fn a_key_used_again_for_another_request_stores_nothing() {
        let store = memory_store().await;
        let first = message(1, 1_000);
        store
            .insert_batch(std::slice::from_ref(&first))
            .await
            .expect("insert");
        let other = NewMessage {
            fingerprint: "another request".into(),
            ..message(1, 1_000)
        };
        let answer = store
            .insert_batch(std::slice::from_ref(&other))
            .await
            .expect("answer");
        assert!(answer[0].key_reused && !answer[0].replayed, "{answer:?}");
        assert_ne!(answer[0].id, first.id, "the first message is not revealed");
        let replay = store
            .insert_batch(&[message(1, 2_000)])
            .await
            .expect("replay");
        assert!(replay[0].replayed && replay[0].id == first.id);

        let both = store
            .insert_batch(&[
                message(2, 1_000),
                NewMessage {
                    fingerprint: "x".into(),
                    ..message(2, 1_000)
                },
            ])
            .await
            .expect("one batch");
        assert!(!both[0].key_reused && both[1].key_reused, "{both:?}");

        let event = [message(3, 1_000), other];
        let answer = store.insert_groups(&event, &[2]).await.expect("group");
        assert!(answer.iter().all(|a| a.key_reused), "{answer:?}");
        assert!(store.message(&event[0].id).await.expect("read").is_none());
    }

    /// A fresh store on each embedded engine, with its URL: `mem://`, and
    /// `surrealkv://` in `dir`. Races are worth trying on both, since each
    /// engine detects conflicts its own way.
    async fn stores_on_both_engines(dir: &std::path::Path) -> Vec<(String, Store)> {
        let mut stores = Vec::new();
        for url in [
            "mem://".to_string(),
            format!("surrealkv://{}", dir.display()),
        ] {
            let store = Store::open(&url, &ServerAccess::default(), EmbeddedMemory::default())
                .await
                .expect("store");
            stores.push((url, store));
        }
        stores
    }

    /// Two committers racing with one new caller key: whichever commits
    /// second is refused by the store and inserts again, finding the key.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn batches_racing_on_one_new_key_store_one_message_and_answer_both_with_it() {
        let dir = tempfile::tempdir().expect("temp dir");
        for (url, store) in stores_on_both_engines(dir.path()).await {
            for n in 0..40 {
                // Each batch also holds a message of its own, which must
                // be stored whichever way the race goes.
                let left = [message(n, 1_000), message(1_000 + n, 1_000)];
                let right = [message(n, 1_000), message(2_000 + n, 1_000)];
                let (left_stored, right_stored) =
                    tokio::join!(store.insert_batch(&left), store.insert_batch(&right));
                let (left_stored, right_stored) = (
                    left_stored.expect("left batch"),
                    right_stored.expect("right batch"),
                );
                assert_eq!(left_stored[0].id, right_stored[0].id, "{url}, key {n}");
                assert_eq!(
                    [left_stored[0].replayed, right_stored[0].replayed]
                        .iter()
                        .filter(|replayed| !**replayed)
                        .count(),
                    1,
                    "{url}, key {n}: exactly one batch stored it"
                );
                for own in [&left_stored[1], &right_stored[1]] {
                    assert!(!own.replayed);
                    assert!(store.message(&own.id).await.expect("read").is_some());
                }
            }
            let counts: Vec<i64> = store
                .db
                .query("RETURN [count(SELECT id FROM message), count(SELECT id FROM idempotency)]")
                .await
                .expect("count")
                .take(0)
                .expect("counts");
            assert_eq!(counts, vec![40 * 3, 40 * 3], "{url}");
        }
    }

    /// Two resends of one failed message at once: the store's optimistic
    /// transactions refuse one, which runs again and finds nothing to do.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_resends_at_once_requeue_a_failed_message_once_and_both_answer() {
        let dir = tempfile::tempdir().expect("temp dir");
        for (url, store) in stores_on_both_engines(dir.path()).await {
            for n in 0..30 {
                let stored = store
                    .insert_batch(&[message(n, 1_000)])
                    .await
                    .expect("insert");
                let id = stored[0].id.clone();
                store
                    .db
                    .query(
                        "UPDATE type::record('message', $id) SET status = 'failed', due_at = NONE",
                    )
                    .bind(("id", id.clone()))
                    .await
                    .expect("fail it")
                    .check()
                    .expect("fail it");
                let (left, right) = tokio::join!(
                    store.requeue_failed(&id, 2_000),
                    store.requeue_failed(&id, 2_000)
                );
                let requeued = [left, right].map(|answer| {
                    let (message, requeued) = answer.expect("answered").expect("exists");
                    assert_eq!(message.status, Status::Queued, "{url}");
                    requeued
                });
                assert_eq!(
                    requeued.iter().filter(|r| **r).count(),
                    1,
                    "{url}, round {n}: {requeued:?}"
                );
            }
        }
    }

    #[tokio::test]
    async fn loading_a_provider_releases_only_the_messages_still_waiting_for_it() {
        let store = memory_store().await;
        let batch: Vec<NewMessage> = (0..3).map(|n| message(n, 1_000)).collect();
        store.insert_batch(&batch).await.expect("insert");
        let claimed = store
            .claim_due(1_000, 0, 10, 5_000, "lease")
            .await
            .expect("claim");
        let deferred: Vec<Completion> = claimed
            .iter()
            .map(|l| {
                let mut c = sent(&l.message.id, "lease", 1_100);
                c.patch.status = Status::Queued.as_str().into();
                c.patch.sent_at = None;
                c.patch.due_at = Some(31_000);
                c.patch.waiting_for = Some("myoperator".into());
                c
            })
            .collect();
        store.complete(deferred).await.expect("defer");
        // One of them is delivered some other way before the provider loads
        // (here: claimed and sent once its recheck came due).
        let rechecked = store
            .claim_due(31_000, 0, 1, 40_000, "recheck")
            .await
            .expect("claim");
        let delivered = rechecked[0].message.id.clone();
        store
            .complete(vec![sent(&delivered, "recheck", 31_500)])
            .await
            .expect("complete");

        assert_eq!(
            store
                .release_waiting("other", 32_000)
                .await
                .expect("release"),
            0
        );
        assert_eq!(
            store
                .release_waiting("myoperator", 32_000)
                .await
                .expect("release"),
            2
        );
        assert_eq!(store.count_due(32_000).await.expect("count").queued, 2);
        assert_eq!(
            store
                .release_waiting("myoperator", 33_000)
                .await
                .expect("release"),
            0
        );
        let delivered = store
            .message(&delivered)
            .await
            .expect("read")
            .expect("exists");
        assert_eq!(delivered.status, Status::Sent);
    }
}
