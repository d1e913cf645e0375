//! The durable queue: accepting messages with group commit, and the
//! scheduler that leases them to delivery workers and records what became
//! of each attempt.
//!
//! **Invariant:** a message is answered `202` only after the transaction
//! holding it has committed. Accepted messages are written by a few
//! committer tasks in batches (whatever reached a committer while its
//! previous batch was committing), so under load one fsync covers many
//! messages and at low load a message waits for no timer.
//!
//! Why more than one committer: a batch's transaction is mostly SurrealDB's
//! work on one thread, so a single committer leaves the other cores idle
//! while it runs, and every request waits for the batch before its own.
//! With two, one batch is being built while the other commits (8-21 % more
//! accepted at full speed on two cores; BENCHMARKS.md). A request
//! goes to the committer its idempotency key hashes to, so retries of one
//! request meet in one committer; keys that still meet in two (one event's
//! messages carry several) are settled by the store (see
//! [`Store::insert_batch`]).
//!
//! # Layout
//! - [`retry`]: the retry rule (pure).
//! - [`scheduler`]: claim due messages with a lease, deliver, complete.
//! - [`before_send`]: between a claim and a provider call (the gate, the
//!   wait for a turn at the provider's rate).
//! - this file: [`Queue`], the group-committing front door.

mod before_send;
pub mod breaker;
pub mod delivery_window;
pub mod outcome;
pub mod retry;
pub mod scheduler;

use std::hash::{DefaultHasher, Hash, Hasher};
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::{Notify, mpsc, oneshot};
use tokio::task::JoinSet;

use crate::message::NewMessage;
use crate::store::{Inserted, Store, StoreError};
use crate::telemetry;

/// The most messages committed in one transaction.
const MAX_BATCH: usize = 1024;

/// Accepted messages waiting for the committers, all together; beyond
/// this, callers wait for room (back-pressure) rather than memory growing
/// without bound.
const PENDING_CAPACITY: usize = 16 * 1024;

/// Why a message could not be accepted.
#[derive(Debug, Clone, thiserror::Error)]
pub enum QueueError {
    /// The store refused the write; nothing was accepted.
    #[error("the store cannot accept messages now: {0}")]
    Unavailable(#[source] StoreError),
    /// The store was asked to write and did not say whether it did (a
    /// SurrealDB server that did not answer in time or dropped the
    /// connection, or a failed write of the store's log): the messages may
    /// have been stored.
    #[error("the store did not confirm the write: {0}")]
    Unconfirmed(#[source] StoreError),
    /// chirp is shutting down.
    #[error("chirp is shutting down")]
    Closed,
}

impl From<StoreError> for QueueError {
    /// A write that failed is unconfirmed when the store may still have
    /// carried it out, and refused otherwise.
    fn from(e: StoreError) -> QueueError {
        if e.outcome_unknown() {
            QueueError::Unconfirmed(e)
        } else {
            QueueError::Unavailable(e)
        }
    }
}

/// Messages that must be stored together (one event's messages), and where
/// to answer.
struct Pending {
    messages: Vec<NewMessage>,
    /// Stored whole or not at all (one event's messages), or each on its
    /// own (a batch's items: one key reused refuses only its item).
    whole: bool,
    reply: oneshot::Sender<Result<Vec<Inserted>, QueueError>>,
}

/// The front door of the queue. Cheap to clone.
#[derive(Clone)]
pub struct Queue {
    /// One inbox per committer task.
    committers: Arc<[mpsc::Sender<Pending>]>,
    wake: Arc<Notify>,
}

impl Queue {
    /// Starts `committers` committer tasks. `wake` is notified whenever
    /// new messages are committed, so the scheduler looks at once.
    pub fn start(
        store: Store,
        wake: Arc<Notify>,
        committers: NonZeroUsize,
    ) -> (Queue, JoinSet<()>) {
        let capacity = (PENDING_CAPACITY / committers.get()).max(1);
        let mut tasks = JoinSet::new();
        let inboxes = (0..committers.get())
            .map(|_| {
                let (tx, rx) = mpsc::channel(capacity);
                tasks.spawn(commit_loop(store.clone(), rx, wake.clone()));
                tx
            })
            .collect();
        (
            Queue {
                committers: inboxes,
                wake,
            },
            tasks,
        )
    }

    /// The committer for messages whose first idempotency key is `key`.
    fn committer_for(&self, key: &str) -> &mpsc::Sender<Pending> {
        let mut hasher = DefaultHasher::new();
        key.hash(&mut hasher);
        // Truncating the hash is fine: any bits pick a committer evenly.
        let which = hasher.finish() as usize % self.committers.len();
        &self.committers[which]
    }

    /// Stores `message` durably. Returns once it is committed, with its id
    /// (or, for a known idempotency key, the id of the message stored first).
    pub async fn enqueue(&self, message: NewMessage) -> Result<Inserted, QueueError> {
        let mut stored = self.enqueue_all(vec![message]).await?;
        stored.pop().ok_or(QueueError::Closed)
    }

    /// Stores `messages` durably in one transaction: all or none. Answers
    /// in the same order.
    pub async fn enqueue_all(
        &self,
        messages: Vec<NewMessage>,
    ) -> Result<Vec<Inserted>, QueueError> {
        self.enqueue_together(messages, true).await
    }

    /// Stores `messages` durably in one transaction, each on its own: a
    /// key reused for another request refuses that message alone. Answers
    /// in the same order.
    pub async fn enqueue_each(
        &self,
        messages: Vec<NewMessage>,
    ) -> Result<Vec<Inserted>, QueueError> {
        self.enqueue_together(messages, false).await
    }

    async fn enqueue_together(
        &self,
        messages: Vec<NewMessage>,
        whole: bool,
    ) -> Result<Vec<Inserted>, QueueError> {
        let Some(first) = messages.first() else {
            return Ok(Vec::new());
        };
        let committer = self.committer_for(&first.idempotency_key);
        let (reply, answer) = oneshot::channel();
        committer
            .send(Pending {
                messages,
                whole,
                reply,
            })
            .await
            .map_err(|_| QueueError::Closed)?;
        answer.await.map_err(|_| QueueError::Closed)?
    }

    /// Tells the scheduler to look for due work now.
    pub fn wake(&self) {
        self.wake.notify_one();
    }
}

async fn commit_loop(store: Store, mut rx: mpsc::Receiver<Pending>, wake: Arc<Notify>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let messages: Vec<NewMessage> = batch
            .iter()
            .flat_map(|p| p.messages.iter().cloned())
            .collect();
        let groups: Vec<usize> = batch
            .iter()
            .flat_map(|p| match p.whole {
                true => vec![p.messages.len()],
                false => vec![1; p.messages.len()],
            })
            .collect();
        let started = Instant::now();
        let committed = store.insert_groups(&messages, &groups).await;
        let took = started.elapsed();
        tracing::debug!(
            messages = messages.len(),
            took_ms = took.as_secs_f64() * 1e3,
            ok = committed.is_ok(),
            "commit of accepted messages"
        );
        match committed {
            Ok(results) => {
                telemetry::commit_batch(messages.len(), took);
                let any_new = results.iter().any(|r| !r.replayed && !r.key_reused);
                let mut results = results.into_iter();
                for pending in batch.drain(..) {
                    let mine = results.by_ref().take(pending.messages.len()).collect();
                    let _ = pending.reply.send(Ok(mine));
                }
                if any_new {
                    wake.notify_one();
                }
            }
            Err(e) => {
                tracing::error!(error = %e, messages = batch.len(), "cannot commit accepted messages");
                let error = QueueError::from(e);
                for pending in batch.drain(..) {
                    let _ = pending.reply.send(Err(error.clone()));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{memory_store, test_message};

    /// A caller is told "not accepted" only when the store surely did not
    /// write; a deadline, a broken connection or a failed log write leaves
    /// it unconfirmed, and the API says the message may have been stored.
    #[test]
    fn a_write_the_store_may_have_done_is_unconfirmed_not_refused() {
        use crate::api::ApiError;
        let log_failed = surrealdb::Error::internal("WAL error: no space left on device".into());
        for unknown in [
            StoreError::TimedOut(std::time::Duration::from_secs(5)),
            StoreError::LogWrite(Box::new(log_failed)),
            StoreError::WrittenAfterLogFailure,
        ] {
            let unconfirmed = QueueError::from(unknown);
            assert!(
                matches!(unconfirmed, QueueError::Unconfirmed(_)),
                "{unconfirmed:?}"
            );
            assert_eq!(ApiError::from(unconfirmed).code, "store_unconfirmed");
        }

        for untried in [StoreError::Unreachable, StoreError::NeedsRestart] {
            let refused = QueueError::from(untried);
            assert!(matches!(refused, QueueError::Unavailable(_)), "{refused:?}");
            assert_eq!(ApiError::from(refused).code, "store_unavailable");
        }
    }

    /// Requests spread over the committers by their first key, while
    /// their second keys collide across committers: every request is
    /// answered, and each key names one message.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn committers_racing_on_shared_keys_answer_every_request_with_one_message_per_key() {
        let store = memory_store().await;
        let committers = NonZeroUsize::new(4).expect("four");
        let (queue, _tasks) = Queue::start(store.clone(), Arc::new(Notify::new()), committers);
        let requests = (0..200).map(|n| {
            let queue = queue.clone();
            async move {
                let own = test_message(n, 1_000);
                let shared = test_message(10_000 + n % 10, 1_000);
                queue.enqueue_all(vec![own, shared]).await
            }
        });
        let answers = futures::future::join_all(requests).await;

        let mut by_shared_key: std::collections::HashMap<i64, String> = Default::default();
        for (n, answer) in answers.into_iter().enumerate() {
            let stored = answer.expect("accepted");
            assert!(!stored[0].replayed, "request {n}: its own key is new");
            let first = by_shared_key
                .entry(n as i64 % 10)
                .or_insert_with(|| stored[1].id.clone());
            assert_eq!(
                &stored[1].id, first,
                "request {n}: one message per shared key"
            );
        }
        let stored = store.statistics(0, i64::MAX).await.expect("statistics");
        assert_eq!(stored.total, 200 + 10);
    }
}
