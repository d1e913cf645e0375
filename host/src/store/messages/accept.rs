//! Accepting: a batch of messages stored in one transaction, one message
//! per caller key however many batches race on it, and a key used again
//! for another request refused.

use std::collections::HashMap;

use surrealdb::types::{RecordId, SurrealValue};

use super::rows::MessageRow;
use crate::callbacks::{Change, State};
use crate::message::{NewMessage, Status};
use crate::store::callbacks::change_rows;
use crate::store::{Store, StoreError, checked};

/// How many times a batch of accepted messages is inserted again after
/// another batch stored one of its caller keys first. Each retry sees the
/// keys stored so far, so a second conflict needs yet another writer racing
/// on another of the batch's keys.
const INSERT_CONFLICT_RETRIES: u32 = 8;

/// What became of one message offered to [`Store::insert_batch`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inserted {
    /// The message's id (the first message's, for a key seen before).
    pub id: String,
    /// Its status as stored.
    pub status: Status,
    /// The idempotency key was already known: nothing new was stored.
    pub replayed: bool,
    /// The idempotency key was already known for another request (another
    /// phone, template, variables or text): nothing was stored, and `id`
    /// and `status` are this message's own, not the first one's.
    pub key_reused: bool,
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
        let mut callbacks = Vec::new();
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
                callbacks.extend(change_rows(&accepted(m), &m.callbacks));
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
        let query = match (keys.is_empty(), callbacks.is_empty()) {
            (true, true) => "INSERT INTO message $rows RETURN NONE",
            (false, true) => {
                "BEGIN TRANSACTION; \
                 INSERT INTO message $rows RETURN NONE; \
                 INSERT INTO idempotency $keys RETURN NONE; \
                 COMMIT TRANSACTION;"
            }
            (_, false) => {
                "BEGIN TRANSACTION; \
                 INSERT INTO message $rows RETURN NONE; \
                 IF array::len($keys) > 0 { INSERT INTO idempotency $keys RETURN NONE; }; \
                 INSERT IGNORE INTO callback $callbacks RETURN NONE; \
                 COMMIT TRANSACTION;"
            }
        };
        checked(
            self.db
                .query(query)
                .bind(("rows", rows))
                .bind(("keys", keys))
                .bind(("callbacks", callbacks))
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
                let status = row
                    .status
                    .parse()
                    .map_err(|e: crate::status::UnknownStatus| {
                        StoreError::Corrupt(e.to_string())
                    })?;
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
}

/// The change a message's acceptance reports: `accepted`, or `skipped`
/// with its reason.
fn accepted(m: &NewMessage) -> Change {
    Change {
        message_id: m.id.clone(),
        reference_id: m.reference_id.clone(),
        template: m.template.clone(),
        state: if m.skip.is_some() {
            State::Skipped
        } else {
            State::Accepted
        },
        at: m.created_at,
        reason: m.skip.as_ref().map(|s| s.message.clone()),
        error_code: m.skip.as_ref().map(|s| s.code.clone()),
    }
}
