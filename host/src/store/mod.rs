//! The durable store: SurrealDB, embedded (`surrealkv://`, `mem://`) or a
//! server (`ws://`).
//!
//! **Invariant:** this is the only module that speaks SurrealQL. Everything
//! above it works with the domain types of [`crate::message`]. Writes on the
//! hot paths come in batches (one transaction per batch of accepted
//! messages, per batch of claims, per batch of completed attempts), because
//! a commit with fsync costs about as much as a few hundred rows.

mod background;
mod backup;
mod callbacks;
mod database;
mod layout_1;
mod link;
mod messages;
mod preferences;
mod schema;
mod settings;
mod statistics;
mod templates;
mod webhooks;

pub use callbacks::{CallbackAttempt, CallbackCounts, CallbackFilter, Due, Posted, StoredCallback};
pub use database::EmbeddedMemory;
pub use layout_1::write_layout_1_store;
pub use link::ServerAccess;
pub use messages::{
    Action, CancelledByReference, Completion, DueCounts, DueWatch, HistoryFilter, Inserted,
    MessagePatch, Pass,
};
pub use settings::SettingChange;
pub use statistics::{Count, DeliveryCounts, ProviderLatency, ProviderOutcomes, Statistics};
pub use templates::TemplateVersion;
pub use webhooks::{Applied, InboxEvent, StoredReceipt, UnmatchedReceipt, WaitingReceipts};

/// A plain message with the caller key `key-{n}`, and an empty store in
/// memory, for tests.
#[cfg(test)]
pub(crate) use messages::tests::{memory_store, message as test_message};

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use database::Database;
use surrealdb::IndexedResults;
use surrealdb::types::QueryError;

/// Why the store could not do what was asked. Cloneable, so that one
/// failed batch can answer every request in it.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the store at {url}: {source}")]
    /// The store could not be opened.
    Connect {
        /// The store's URL.
        url: String,
        /// Why.
        source: Arc<dyn std::error::Error + Send + Sync>,
    },
    #[error("cannot close the store: {0}")]
    /// The store could not be closed cleanly.
    Close(Arc<dyn std::error::Error + Send + Sync>),
    #[error("store query failed: {0}")]
    /// A query failed, for a reason none of the kinds above names.
    Query(Box<surrealdb::Error>),
    /// Another transaction wrote one of the same records first (SurrealDB's
    /// transactions are optimistic). Nothing of this one was written; run
    /// it again and it sees what the other wrote.
    #[error("another write changed the same records first: {0}")]
    Conflict(Box<surrealdb::Error>),
    #[error("the store returned a record chirp cannot read: {0}")]
    /// A stored value chirp cannot read.
    Corrupt(String),
    /// Backups and restores are of an embedded store; a SurrealDB server
    /// has its own export and import.
    #[error("backups and restores are of an embedded store; use the SurrealDB server's own export")]
    NotEmbedded,
    /// A restore was asked into a store that already holds data.
    #[error("the store at {0} is not empty; restore into a new one")]
    NotEmpty(String),
    /// The storage engine failed under a write: its log could not be
    /// written (disk full, file system read-only, I/O error), or it failed
    /// in some other way of its own. See [`Store::write`] and
    /// [`is_storage_failure`].
    #[error("the store could not write its log: {0}")]
    LogWrite(Box<surrealdb::Error>),
    /// The SurrealDB server does not answer (see [`link`]); refused without
    /// being tried.
    #[error("the SurrealDB server does not answer")]
    Unreachable,
    /// A query to the SurrealDB server took longer than
    /// `CHIRP_STORE_TIMEOUT`. It may still have been carried out.
    #[error("the SurrealDB server did not answer within {0:?}")]
    TimedOut(std::time::Duration),
    /// The connection to the SurrealDB server broke while a query was on
    /// it. The server may have carried the query out before it went.
    #[error("the connection to the SurrealDB server broke: {0}")]
    ConnectionLost(Box<surrealdb::Error>),
    /// This write went through, but a write of the store's log failed
    /// meanwhile: it may not survive the restart that recovers the log
    /// (see [`Store::write`]).
    #[error("a write of the store's log failed meanwhile; this write may not survive a restart")]
    WrittenAfterLogFailure,
    /// The store answered that it does not know whether the write's
    /// transaction committed (a query error without details: a commit of
    /// unknown outcome on a distributed store, or a transaction that ended
    /// under the write).
    #[error("the store did not say whether the write was made: {0}")]
    Undetermined(Box<surrealdb::Error>),
    /// An earlier log write failed; nothing more is written until chirp is
    /// restarted and the store has recovered its log.
    #[error("the store's log failed earlier; chirp must be restarted to recover it")]
    NeedsRestart,
}

impl StoreError {
    /// Whether a write that failed with this error may still be in the
    /// store: a server was asked and did not say, or the store's log failed
    /// under the write (its record may be whole in the log, or not). Every
    /// other error means the write's transaction did not commit.
    pub fn outcome_unknown(&self) -> bool {
        matches!(
            self,
            StoreError::TimedOut(_)
                | StoreError::ConnectionLost(_)
                | StoreError::LogWrite(_)
                | StoreError::Undetermined(_)
                | StoreError::WrittenAfterLogFailure
        )
    }
}

impl From<surrealdb::Error> for StoreError {
    /// Classifies by the error's kind and code, never by its text: a text
    /// can carry what a caller chose (a record id such as an idempotency
    /// key), and a caller must not be able to make an ordinary refusal
    /// look like a failed log write, which stops every write until chirp
    /// restarts.
    fn from(e: surrealdb::Error) -> StoreError {
        if is_storage_failure(&e) {
            StoreError::LogWrite(Box::new(e))
        } else if e.is_connection() {
            StoreError::ConnectionLost(Box::new(e))
        } else if e.is_already_exists()
            || matches!(e.query_details(), Some(QueryError::TransactionConflict))
        {
            StoreError::Conflict(Box::new(e))
        } else if e.is_query() && e.query_details().is_none() {
            StoreError::Undetermined(Box::new(e))
        } else {
            StoreError::Query(Box::new(e))
        }
    }
}

/// Whether `e`, as a statement's own answer, says the storage engine
/// failed under it. SurrealDB 3.3.5 keeps no code for the engine's own
/// failures (SurrealKV's log writes among them: disk full, read-only file
/// system, I/O error); it reports them as kind `Internal` while a statement
/// runs, and as "not executed" (`QueryError::NotExecuted`) when the commit
/// fails: a commit that fails for any other reason carries a kind of its
/// own (a conflict), or no details (an unknown outcome). chirp's
/// transactions have nothing checked only at commit (no unique index, no
/// event, no assertion), so a commit that fails "not executed" failed in
/// the engine. The causes a caller's input can produce (parse, validation,
/// conflicts, records that exist, limits) all have kinds of their own.
///
/// "Not executed" is also what the other statements of a failed
/// transaction read: [`checked`] looks past those for the one that says
/// why.
fn is_storage_failure(e: &surrealdb::Error) -> bool {
    e.is_internal() || is_not_executed(e)
}

fn is_not_executed(e: &surrealdb::Error) -> bool {
    matches!(e.query_details(), Some(QueryError::NotExecuted))
}

/// The outcome of a query of several statements, with the error that says
/// why it failed. SurrealDB answers every statement of a failed transaction
/// with an error, most of them only "not executed":
/// - a statement that failed carries its own error, and the others and the
///   `COMMIT` read "not executed";
/// - a commit that failed is told by the `COMMIT`'s error, the last, and
///   every statement reads "not executed".
///
/// `IndexedResults::check` returns the first error, often a "not executed"
/// that hides a failed log write or a conflict. This returns the first
/// error a statement failed with on its own (an internal one first), else
/// the last: every answer reads "not executed", so the `COMMIT` itself
/// failed (see [`is_storage_failure`]).
fn checked(mut results: IndexedResults) -> Result<IndexedResults, StoreError> {
    let mut errors: Vec<(usize, surrealdb::Error)> = results.take_errors().into_iter().collect();
    errors.sort_by_key(|(statement, _)| *statement);
    let cause = errors
        .iter()
        .position(|(_, e)| e.is_internal())
        .or_else(|| errors.iter().position(|(_, e)| !is_not_executed(e)))
        .or_else(|| errors.len().checked_sub(1));
    match cause.and_then(|cause| errors.into_iter().nth(cause)) {
        Some((_, e)) => Err(e.into()),
        None => Ok(results),
    }
}

/// A handle on the database. Cheap to clone; clones share the connection
/// and the log-failure latch.
#[derive(Clone)]
pub struct Store {
    /// Shared, never cloned: every clone of an SDK handle (`Surreal`) opens
    /// a new database session, and the API clones its state, store
    /// included, several times per request. Those sessions held 80 MiB of
    /// heap at the accept benchmark's peak (heaptrack).
    db: Arc<Database>,
    log_failed: Arc<AtomicBool>,
}

impl Store {
    /// Opens the store named by `url` and makes sure it has the tables and
    /// the layout this chirp reads (see [`schema`]).
    /// `memory` bounds an embedded store; a server sizes its own, and is
    /// reached as `server` says.
    pub async fn open(
        url: &str,
        server: &ServerAccess,
        memory: EmbeddedMemory,
    ) -> Result<Store, StoreError> {
        let db = Database::open(url, server, memory).await?;
        schema::prepare(&db).await?;
        Ok(Store::over(db))
    }

    /// A handle on an open database whose schema is prepared.
    fn over(db: Database) -> Store {
        Store {
            db: Arc::new(db),
            log_failed: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Flushes and closes an embedded store, so that the next start finds
    /// it closed cleanly. The last thing chirp does with the store.
    pub async fn close(&self) -> Result<(), StoreError> {
        self.db.close().await?;
        // The SDK shuts the datastore down again when its handle is
        // dropped, and that second pass logs an error against the engine
        // closed here. chirp exits after this, so the handle is kept until
        // then (forgetting a reference, not cloning the handle: a clone
        // would open a session).
        std::mem::forget(Arc::clone(&self.db));
        Ok(())
    }

    /// Whether the store answers a trivial query and can still write.
    pub async fn ping(&self) -> Result<(), StoreError> {
        if self.needs_restart() {
            return Err(StoreError::NeedsRestart);
        }
        self.db.query("RETURN 1").await?.check()?;
        Ok(())
    }

    /// Whether a log write failed, so that chirp writes nothing more until
    /// it is restarted.
    pub fn needs_restart(&self) -> bool {
        self.log_failed.load(Ordering::Acquire)
    }

    /// Runs one write. Once a write of the store's log has failed, no
    /// other write is attempted or acknowledged until chirp restarts.
    ///
    /// Why: SurrealKV (0.21) leaves a torn record in its log when a write
    /// fails half way (seen with a full disk), and on the next start it
    /// recovers the log only up to the torn record: every commit made after
    /// it, each of them synced and acknowledged, would be lost. A restart
    /// repairs the log, so chirp answers `503` (and reports itself not
    /// live) until then, and a write that succeeded while another failed
    /// is reported as unconfirmed ([`StoreError::WrittenAfterLogFailure`]):
    /// its caller retries, and idempotency keys make the retry safe.
    async fn write<T>(
        &self,
        work: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        if self.needs_restart() {
            return Err(StoreError::NeedsRestart);
        }
        let result = work.await;
        if let Err(StoreError::LogWrite(e)) = &result
            && !self.log_failed.swap(true, Ordering::AcqRel)
        {
            tracing::error!(
                error = %e,
                "the store could not write its log; writes stop until chirp is restarted"
            );
        }
        match result {
            Ok(_) if self.needs_restart() => Err(StoreError::WrittenAfterLogFailure),
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The attack: a caller's idempotency key that reads like a failed log
    /// write, stored twice. The second insert fails because the record
    /// exists, and its error message carries the key. Classified by text
    /// (as chirp did, checked once), it was a log failure: the store
    /// latched and refused every write until a restart.
    #[tokio::test]
    async fn a_record_id_a_caller_chose_cannot_look_like_a_log_failure() {
        let store = memory_store().await;
        let insert = "CREATE type::record('idempotency', $key) SET message = message:x RETURN NONE";
        let key = "WAL error: no space left on device";
        store
            .write(async {
                checked(store.db.query(insert).bind(("key", key)).await?)?;
                Ok(())
            })
            .await
            .expect("the first insert");
        let again = store
            .write(async {
                checked(store.db.query(insert).bind(("key", key)).await?)?;
                Ok(())
            })
            .await
            .expect_err("the key exists");
        assert!(again.to_string().contains("WAL error"), "{again}");
        assert!(matches!(again, StoreError::Conflict(_)), "{again:?}");
        assert!(!store.needs_restart(), "the store latched");

        let failed = surrealdb::Error::internal("There was a problem with a transaction".into());
        assert!(matches!(StoreError::from(failed), StoreError::LogWrite(_)));
    }

    /// How each answer SurrealDB 3.3.5 gives a failed write is read: by
    /// kind, and for a transaction by which statement failed on its own.
    #[test]
    fn failed_writes_are_classified_by_kind_and_by_which_statement_failed() {
        use surrealdb::types::ValidationError;
        let not_executed = |m: &str| surrealdb::Error::query(m.into(), QueryError::NotExecuted);
        // An auto-committed statement whose commit failed in the engine
        // (seen with a full disk: "There was a problem with a transaction:
        // WAL error ...").
        assert!(matches!(
            StoreError::from(not_executed("commit failed")),
            StoreError::LogWrite(_)
        ));
        assert!(matches!(
            StoreError::from(surrealdb::Error::query("unknown".into(), None)),
            StoreError::Undetermined(_)
        ));
        assert!(matches!(
            StoreError::from(surrealdb::Error::query(
                "conflict".into(),
                QueryError::TransactionConflict
            )),
            StoreError::Conflict(_)
        ));
        assert!(matches!(
            StoreError::from(surrealdb::Error::validation(
                "bad".into(),
                ValidationError::InvalidParams
            )),
            StoreError::Query(_)
        ));
    }

    /// A transaction's answers, as SurrealDB gives them: the statement that
    /// failed says why and the rest read "not executed"; when the commit
    /// failed, every answer reads "not executed", the `COMMIT`'s too.
    #[tokio::test]
    async fn in_a_transaction_the_statement_that_failed_says_why() {
        let store = memory_store().await;
        let exists = "BEGIN TRANSACTION; \
             CREATE idempotency:a SET message = message:x RETURN NONE; \
             CREATE idempotency:a SET message = message:y RETURN NONE; \
             COMMIT TRANSACTION;";
        let answer = checked(store.db.query(exists).await.expect("answered"))
            .expect_err("the second create fails");
        assert!(matches!(answer, StoreError::Conflict(_)), "{answer:?}");
        assert!(!store.needs_restart());
    }
}
