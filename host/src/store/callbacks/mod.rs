//! Status callbacks in the store: the registered endpoints
//! (`callback_endpoint`, by ULID) and one row per change and endpoint
//! (`callback:[message id, endpoint id, at, rank]`), written in the same
//! transaction as the change it reports. The key makes the write
//! idempotent (a change applied twice is one callback) and puts a
//! message's callbacks to one endpoint in the order they happened, a range
//! of ids. `callback_due` indexes `due_at`, set while a callback waits to
//! be posted; each post is kept in `callback_attempt:[callback key.., n]`.
//!
//! By path: [`rows`] (a change into rows, for the writers of changes),
//! [`outbox`] (the sender's reads and writes, the admin's log and replay),
//! [`endpoints`].

mod endpoints;
mod outbox;
mod rows;

pub use outbox::{CallbackAttempt, CallbackCounts, CallbackFilter, Due, Posted, StoredCallback};
pub(in crate::store) use rows::{CallbackRow, callback_attempts_of, callbacks_of, change_rows};
