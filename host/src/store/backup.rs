//! Backups of the embedded store while chirp runs, and restores into a new
//! store while it does not. A backup is SurrealQL (tables, indexes and
//! every record) written from one read transaction of the store, so it is
//! a consistent copy: every message acknowledged before the backup began
//! is in it. A SurrealDB server is backed up with its own export.

use std::path::Path;

use futures::{Stream, StreamExt};

use super::database::Database;
use super::{EmbeddedMemory, ServerAccess, Store, StoreError};

impl Store {
    /// The store as SurrealQL, in chunks, from one read of it.
    pub async fn backup(
        &self,
    ) -> Result<impl Stream<Item = Result<Vec<u8>, StoreError>> + Send + use<>, StoreError> {
        let stream = self.db.export().await?;
        Ok(stream.map(|chunk| chunk.map_err(StoreError::from)))
    }

    /// Restores the backup in `file` into the embedded store at `url`,
    /// which must be new or empty; chirp must not be running on it. The
    /// store's layout comes with the backup, and is upgraded as usual when
    /// chirp next opens it.
    pub async fn restore(url: &str, memory: EmbeddedMemory, file: &Path) -> Result<(), StoreError> {
        if !url.starts_with("surrealkv://") {
            return Err(StoreError::NotEmbedded);
        }
        let db = Database::open(url, &ServerAccess::default(), memory).await?;
        let tables: Vec<String> = db
            .query("RETURN object::keys((INFO FOR DB).tables)")
            .await?
            .take(0)?;
        let result = if tables.is_empty() {
            db.import(file).await
        } else {
            Err(StoreError::NotEmpty(url.to_string()))
        };
        db.close().await?;
        // As in `Store::close`: the process ends after a restore, and
        // dropping the handle would shut the closed datastore down again.
        std::mem::forget(db);
        result
    }
}
