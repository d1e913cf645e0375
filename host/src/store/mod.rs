//! The durable store: SurrealDB, embedded (`surrealkv://`, `mem://`) or a
//! server (`ws://`).
//!
//! **Invariant:** this is the only module that speaks SurrealQL. Everything
//! above it works with the domain types of [`crate::message`]. Writes on the
//! hot paths come in batches (one transaction per batch of accepted
//! messages, per batch of claims, per batch of completed attempts), because
//! a commit with fsync costs about as much as a few hundred rows.

mod database;
mod messages;
mod preferences;
mod statistics;
mod templates;

pub use database::EmbeddedMemory;
pub use messages::{Completion, HistoryFilter, Inserted, MessagePatch};
pub use preferences::Preferences;
pub use statistics::Statistics;
pub use templates::TemplateVersion;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use database::Database;

/// Why the store could not do what was asked. Cloneable, so that one
/// failed batch can answer every request in it.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the store at {url}: {source}")]
    Connect {
        url: String,
        source: Arc<dyn std::error::Error + Send + Sync>,
    },
    #[error("cannot close the store: {0}")]
    Close(Arc<dyn std::error::Error + Send + Sync>),
    #[error("store query failed: {0}")]
    Query(Box<surrealdb::Error>),
    #[error("the store returned a record chirp cannot read: {0}")]
    Corrupt(String),
    /// Writing the store's log failed (disk full, file system read-only,
    /// I/O error). See [`Store::write`].
    #[error("the store could not write its log: {0}")]
    LogWrite(Box<surrealdb::Error>),
    /// An earlier log write failed; nothing more is written until chirp is
    /// restarted and the store has recovered its log.
    #[error("the store's log failed earlier; chirp must be restarted to recover it")]
    NeedsRestart,
}

impl From<surrealdb::Error> for StoreError {
    fn from(e: surrealdb::Error) -> StoreError {
        // SurrealDB reports storage failures only in its message text.
        if e.to_string().contains("WAL error") {
            StoreError::LogWrite(Box::new(e))
        } else {
            StoreError::Query(Box::new(e))
        }
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

/// Tables and indexes. `IF NOT EXISTS` makes start-up idempotent.
///
/// `due_at` is set only while a message is `queued`, `lease_until` only
/// while it is `sending`, and `waiting_for` only while it waits for a
/// provider that is not loaded, so the scheduler's scans of those indexes
/// (a range of times, one provider's name) visit only messages it may have
/// to act on. SurrealDB 3 still gives every other message a `NONE` entry in
/// each index, outside those ranges; every index costs each write of a
/// message (see BENCHMARKS.md), so add one only for a query that needs it.
const SCHEMA: &str = "
DEFINE TABLE IF NOT EXISTS message SCHEMALESS;
DEFINE INDEX IF NOT EXISTS message_due ON message FIELDS due_at;
DEFINE INDEX IF NOT EXISTS message_lease ON message FIELDS lease_until;
DEFINE INDEX IF NOT EXISTS message_idempotency ON message FIELDS idempotency_key UNIQUE;
DEFINE INDEX IF NOT EXISTS message_phone ON message FIELDS phone;
DEFINE INDEX IF NOT EXISTS message_reference ON message FIELDS reference_id;
DEFINE INDEX IF NOT EXISTS message_waiting ON message FIELDS waiting_for;
DEFINE TABLE IF NOT EXISTS template SCHEMALESS;
DEFINE TABLE IF NOT EXISTS template_version SCHEMALESS;
DEFINE INDEX IF NOT EXISTS template_version_name ON template_version FIELDS name, version;
DEFINE TABLE IF NOT EXISTS preference SCHEMALESS;
DEFINE TABLE IF NOT EXISTS attempt SCHEMALESS;
DEFINE INDEX IF NOT EXISTS attempt_message ON attempt FIELDS message_id;
";

impl Store {
    /// Opens the store named by `url` and makes sure the schema exists.
    /// `memory` bounds an embedded store; a server sizes its own.
    pub async fn open(
        url: &str,
        credentials: Option<(String, String)>,
        memory: EmbeddedMemory,
    ) -> Result<Store, StoreError> {
        if let Some(path) = url.strip_prefix("surrealkv://")
            && let Some(parent) =
                std::path::Path::new(path.split('?').next().unwrap_or(path)).parent()
            && !parent.as_os_str().is_empty()
        {
            // SurrealKV creates its own directory but not the ones above it.
            let _ = std::fs::create_dir_all(parent);
        }
        let db = Database::open(url, credentials, memory).await?;
        db.query(SCHEMA).await?.check()?;
        Ok(Store {
            db: Arc::new(db),
            log_failed: Arc::new(AtomicBool::new(false)),
        })
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
    /// is reported as failed: its caller retries, and idempotency keys make
    /// the retry safe.
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
            Ok(_) if self.needs_restart() => Err(StoreError::NeedsRestart),
            other => other,
        }
    }
}
