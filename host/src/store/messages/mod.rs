//! The `message`, `idempotency`, `waiting` and `attempt` tables (the
//! layout is described in [`super::schema`]), by path:
//! - [`accept`]: accepted messages in, one per caller key.
//! - [`queue`]: claims with a lease, completions, resends, release.
//! - [`cancel`]: messages taken back before they are sent.
//! - [`read`]: a message and its audit trail, the history.
//! - [`customers`]: one customer's data across the tables: read out,
//!   erased.
//! - [`retention`]: redacting, then deleting, what has been kept long
//!   enough.
//! - [`rows`]: the rows as chirp writes and reads them.

mod accept;
mod cancel;
mod complete;
mod customers;
mod queue;
mod read;
mod retention;
mod rows;
mod watch;

pub use accept::Inserted;
pub use cancel::CancelledByReference;
pub use complete::{Completion, MessagePatch};
pub use queue::DueCounts;
pub use read::HistoryFilter;
pub use retention::{Action, Pass};
pub(in crate::store) use rows::message_key;
pub use watch::DueWatch;

#[cfg(test)]
mod lanes_tests;
#[cfg(test)]
pub(crate) mod tests;
