//! The recipients' preferences as the intake reads them: every send and
//! every event looks up its recipient before rendering, and the lookups of
//! requests that arrive together are answered by one query.
//!
//! Why: one query per request cost about a fifth of chirp's CPU while
//! accepting (a SurrealQL parse, plan and read transaction each time).
//! Coalesced like the queue's commits (whatever arrived while the previous
//! lookup ran), a lookup waits for no timer at low load, and under load one
//! query serves many requests.
//!
//! **Invariant:** every lookup reads the store; nothing is cached, so an
//! opt-out saved by any chirp sharing the store applies to the next request.

use std::collections::HashMap;

use tokio::sync::{mpsc, oneshot};

use crate::preferences::Preferences;
use crate::store::{Store, StoreError};

/// The most lookups answered by one query.
const MAX_BATCH: usize = 256;

/// Lookups waiting for the reader; beyond this, callers wait for room.
const PENDING_CAPACITY: usize = 4 * 1024;

/// One request's lookup and where to answer it.
struct Lookup {
    phone: String,
    reply: oneshot::Sender<Result<Preferences, StoreError>>,
}

/// Why a recipient's preferences could not be read.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LookupError {
    #[error(transparent)]
    /// The store did not answer.
    Store(#[from] StoreError),
    /// chirp is shutting down.
    #[error("chirp is shutting down")]
    Closed,
}

/// The front door of the lookups. Cheap to clone.
#[derive(Clone)]
pub struct Recipients {
    pending: mpsc::Sender<Lookup>,
}

impl Recipients {
    /// Starts the reader task.
    pub fn start(store: Store) -> (Recipients, tokio::task::JoinHandle<()>) {
        let (pending, rx) = mpsc::channel(PENDING_CAPACITY);
        let task = tokio::spawn(read_loop(store, rx));
        (Recipients { pending }, task)
    }

    /// The preferences of `phone`, as saved now (defaults if none were).
    pub async fn preferences(&self, phone: &str) -> Result<Preferences, LookupError> {
        let (reply, answer) = oneshot::channel();
        self.pending
            .send(Lookup {
                phone: phone.to_string(),
                reply,
            })
            .await
            .map_err(|_| LookupError::Closed)?;
        Ok(answer.await.map_err(|_| LookupError::Closed)??)
    }
}

async fn read_loop(store: Store, mut rx: mpsc::Receiver<Lookup>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let mut phones: Vec<String> = batch.iter().map(|l| l.phone.clone()).collect();
        phones.sort_unstable();
        phones.dedup();
        match store.saved_preferences(&phones).await {
            Ok(saved) => answer_all(&mut batch, &saved),
            Err(e) => {
                for lookup in batch.drain(..) {
                    let _ = lookup.reply.send(Err(e.clone()));
                }
            }
        }
    }
}

/// Answers every lookup of `batch` from what was saved (defaults for a
/// phone without a row).
fn answer_all(batch: &mut Vec<Lookup>, saved: &HashMap<String, Preferences>) {
    for lookup in batch.drain(..) {
        let preferences = saved
            .get(&lookup.phone)
            .cloned()
            .unwrap_or_else(|| Preferences::defaults_for(&lookup.phone));
        let _ = lookup.reply.send(Ok(preferences));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::memory_store;

    #[tokio::test]
    async fn concurrent_lookups_each_get_their_own_recipients_preferences() {
        let store = memory_store().await;
        let opted_out = Preferences {
            opt_out_all: true,
            language: Some("hi".into()),
            ..Preferences::defaults_for("+919800000001")
        };
        store.save_preferences(opted_out).await.unwrap();
        let (recipients, _task) = Recipients::start(store.clone());

        // Enough at once that the reader answers several in one query,
        // with the same phone more than once.
        let lookups = (0..200).map(|i| {
            let recipients = recipients.clone();
            let phone = format!("+9198000000{:02}", i % 50);
            tokio::spawn(async move { (phone.clone(), recipients.preferences(&phone).await) })
        });
        for lookup in lookups {
            let (phone, found) = lookup.await.unwrap();
            let found = found.unwrap();
            assert_eq!(found.phone, phone);
            if phone == "+919800000001" {
                assert!(found.opt_out_all);
                assert_eq!(found.language.as_deref(), Some("hi"));
                assert!(found.updated_at.is_some());
            } else {
                assert_eq!(found, Preferences::defaults_for(&phone));
            }
        }
    }

    #[tokio::test]
    async fn an_opt_out_applies_to_the_next_lookup() {
        let store = memory_store().await;
        let (recipients, _task) = Recipients::start(store.clone());
        let phone = "+919800000002";
        assert!(!recipients.preferences(phone).await.unwrap().opt_out_all);
        store
            .save_preferences(Preferences {
                opt_out_all: true,
                ..Preferences::defaults_for(phone)
            })
            .await
            .unwrap();
        assert!(recipients.preferences(phone).await.unwrap().opt_out_all);
    }
}
