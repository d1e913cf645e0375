//! The durable queue: accepting messages with group commit, and the
//! scheduler that leases them to delivery workers and records what became
//! of each attempt.
//!
//! **Invariant:** a message is answered `202` only after the transaction
//! holding it has committed. Accepted messages are written by one task in
//! batches (whatever arrived while the previous batch was committing), so
//! under load one fsync covers many messages and at low load a message
//! waits for no timer.
//!
//! # Layout
//! - [`retry`]: the retry rule (pure).
//! - [`scheduler`]: claim due messages with a lease, deliver, complete.
//! - this file: [`Queue`], the group-committing front door.

pub mod retry;
pub mod scheduler;

use std::sync::Arc;
use std::time::Instant;

use tokio::sync::{Notify, mpsc, oneshot};

use crate::message::NewMessage;
use crate::store::{Inserted, Store};
use crate::telemetry;

/// The most messages committed in one transaction.
const MAX_BATCH: usize = 1024;

/// Accepted messages waiting for the committer; beyond this, callers wait
/// for room (back-pressure) rather than memory growing without bound.
const PENDING_CAPACITY: usize = 16 * 1024;

/// Why a message could not be accepted.
#[derive(Debug, Clone, thiserror::Error)]
pub enum QueueError {
    /// The store refused the write; nothing was accepted.
    #[error("the store cannot accept messages now: {0}")]
    Unavailable(String),
    /// chirp is shutting down.
    #[error("chirp is shutting down")]
    Closed,
}

/// Messages that must be stored together (one event's messages), and where
/// to answer.
struct Pending {
    messages: Vec<NewMessage>,
    reply: oneshot::Sender<Result<Vec<Inserted>, QueueError>>,
}

/// The front door of the queue. Cheap to clone.
#[derive(Clone)]
pub struct Queue {
    pending: mpsc::Sender<Pending>,
    wake: Arc<Notify>,
}

impl Queue {
    /// Starts the committer task. `wake` is notified whenever new messages
    /// are committed, so the scheduler looks at once.
    pub fn start(store: Store, wake: Arc<Notify>) -> (Queue, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(PENDING_CAPACITY);
        let task = tokio::spawn(commit_loop(store, rx, wake.clone()));
        (Queue { pending: tx, wake }, task)
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
        if messages.is_empty() {
            return Ok(Vec::new());
        }
        let (reply, answer) = oneshot::channel();
        self.pending
            .send(Pending { messages, reply })
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
        let started = Instant::now();
        let committed = store.insert_batch(&messages).await;
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
                let any_new = results.iter().any(|r| !r.replayed);
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
                let error = QueueError::Unavailable(e.to_string());
                for pending in batch.drain(..) {
                    let _ = pending.reply.send(Err(error.clone()));
                }
            }
        }
    }
}
