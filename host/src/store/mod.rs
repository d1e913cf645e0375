//! The durable store: SurrealDB, embedded (`surrealkv://`, `mem://`) or a
//! server (`ws://`).
//!
//! **Invariant:** this is the only module that speaks SurrealQL. Everything
//! above it works with the domain types of [`crate::message`]. Writes on the
//! hot paths come in batches (one transaction per batch of accepted
//! messages, per batch of claims, per batch of completed attempts), because
//! a commit with fsync costs about as much as a few hundred rows.

mod messages;
mod preferences;
mod statistics;
mod templates;

pub use messages::{Completion, HistoryFilter, Inserted, MessagePatch};
pub use preferences::Preferences;
pub use statistics::Statistics;
pub use templates::TemplateVersion;

use surrealdb::Surreal;
use surrealdb::engine::any::Any;
use surrealdb::opt::auth::Root;

/// Why the store could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the store at {url}: {source}")]
    Connect {
        url: String,
        source: Box<surrealdb::Error>,
    },
    #[error("store query failed: {0}")]
    Query(Box<surrealdb::Error>),
    #[error("the store returned a record chirp cannot read: {0}")]
    Corrupt(String),
}

impl From<surrealdb::Error> for StoreError {
    fn from(e: surrealdb::Error) -> StoreError {
        StoreError::Query(Box::new(e))
    }
}

/// A handle on the database. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    db: Surreal<Any>,
}

/// Tables and indexes. `IF NOT EXISTS` makes start-up idempotent.
///
/// `due_at` is set only while a message is `queued`, `lease_until` only
/// while it is `sending`, and `waiting_for` only while it waits for a
/// provider that is not loaded, so each index holds just the messages the
/// scheduler may have to look at, not the whole history.
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
    pub async fn open(
        url: &str,
        credentials: Option<(String, String)>,
    ) -> Result<Store, StoreError> {
        if let Some(path) = url.strip_prefix("surrealkv://")
            && let Some(parent) =
                std::path::Path::new(path.split('?').next().unwrap_or(path)).parent()
            && !parent.as_os_str().is_empty()
        {
            // SurrealKV creates its own directory but not the ones above it.
            let _ = std::fs::create_dir_all(parent);
        }
        let connect_error = |source| StoreError::Connect {
            url: url.to_string(),
            source: Box::new(source),
        };
        let db = surrealdb::engine::any::connect(url)
            .await
            .map_err(connect_error)?;
        if let Some((username, password)) = credentials {
            db.signin(Root { username, password })
                .await
                .map_err(connect_error)?;
        }
        db.use_ns("chirp")
            .use_db("chirp")
            .await
            .map_err(connect_error)?;
        db.query(SCHEMA).await?.check()?;
        Ok(Store { db })
    }

    /// Whether the store answers a trivial query.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.db.query("RETURN 1").await?.check()?;
        Ok(())
    }
}
