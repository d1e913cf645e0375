//! The connection to SurrealDB: a datastore chirp opens in its own process
//! (`surrealkv://`, `mem://`), or a SurrealDB server (`ws://`, `wss://`).
//!
//! Why chirp opens the embedded datastore itself instead of letting the SDK
//! do it from the URL: SurrealKV sizes its memtable and block cache from the
//! host's memory (a 1 GiB memtable and a cache of half the memory less
//! 1 GiB on a 24 GiB machine), and the SDK's `connect` passes no settings
//! through. Building the datastore here lets the operator bound its memory
//! ([`EmbeddedMemory`]), keeps SurrealKV's flushes and compactions off
//! chirp's threads ([`super::background`]), and lets [`Database::close`]
//! flush and close it while the runtime is still there to do it.
//!
//! The price: the SDK's way in for an open datastore,
//! `Surreal::unstable_from_datastore`, is exempt from semver, so SurrealDB is
//! pinned to an exact version in `host/Cargo.toml`.

use std::collections::BTreeMap;
use std::future::IntoFuture;
use std::sync::Arc;

use surrealdb::engine::any::Any;
use surrealdb::engine::local::Db;
use surrealdb::method::Query;
use surrealdb::opt::auth::Root;
use surrealdb::opt::capabilities::Capabilities;
use surrealdb::types::{SurrealValue, Value};
use surrealdb::{IndexedResults, Surreal};
use surrealdb_cnf::ConfigMap;
use surrealdb_engine_local::Datastore;

use super::StoreError;
use super::background::BackgroundThreads;
use super::link::{Link, ServerAccess};

/// How much memory the embedded SurrealKV store may hold, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EmbeddedMemory {
    /// Writes are gathered here before they are flushed to a table file.
    pub memtable: u64,
    /// Table-file blocks kept in memory for reads.
    pub block_cache: u64,
}

impl Default for EmbeddedMemory {
    /// Measured (BENCHMARKS.md): against SurrealKV's host-sized defaults and against
    /// 64 / 32 MiB, the drain and accept rates are within run-to-run noise
    /// and the drain's memory stays flat, about 75 MiB lower than at 64 / 32.
    fn default() -> Self {
        EmbeddedMemory {
            memtable: 16 << 20,
            block_cache: 16 << 20,
        }
    }
}

/// An open connection, embedded or to a server. Not `Clone`: a clone of
/// a `Surreal` handle is a new session (see [`super::Store`]).
pub(super) enum Database {
    Embedded {
        db: Surreal<Db>,
        datastore: Arc<Datastore>,
        /// Where SurrealKV flushes and compacts; dropped after the
        /// datastore (fields drop in order). `None` for `mem://`.
        _background: Option<BackgroundThreads>,
    },
    Server {
        db: Surreal<Any>,
        link: Arc<Link>,
    },
}

/// A query being built: SurrealQL with its bound variables. A query to a
/// server runs under the link's deadline, unless it has none (start-up).
pub(super) enum Statement<'a> {
    Embedded(Query<'a, Db>),
    Server(Query<'a, Any>, Option<&'a Link>),
}

impl Database {
    /// Opens `url`: `surrealkv://` and `mem://` in this process, with
    /// `memory` bounding SurrealKV; anything else through the SDK, as
    /// `server` says.
    pub(super) async fn open(
        url: &str,
        server: &ServerAccess,
        memory: EmbeddedMemory,
    ) -> Result<Database, StoreError> {
        let connect_error =
            |source: Box<dyn std::error::Error + Send + Sync>| StoreError::Connect {
                url: url.to_string(),
                source: source.into(),
            };
        if let Some(path) = url.strip_prefix("surrealkv://")
            && let Some(parent) =
                std::path::Path::new(path.split('?').next().unwrap_or(path)).parent()
            && !parent.as_os_str().is_empty()
        {
            // SurrealKV creates its own directory but not the ones above it.
            let _ = std::fs::create_dir_all(parent);
        }
        if url.starts_with("surrealkv://") || url.starts_with("mem://") {
            let (datastore, background) =
                open_embedded(url, memory).await.map_err(connect_error)?;
            let db = Surreal::<Db>::unstable_from_datastore(datastore.clone(), None)
                .await
                .map_err(|e| connect_error(e.into()))?;
            use_chirp(&db).await.map_err(|e| connect_error(e.into()))?;
            Ok(Database::Embedded {
                db,
                datastore,
                _background: background,
            })
        } else {
            let db = surrealdb::engine::any::connect(url)
                .await
                .map_err(|e| connect_error(e.into()))?;
            if let Some((username, password)) = server.credentials.clone() {
                db.signin(Root { username, password })
                    .await
                    .map_err(|e| connect_error(e.into()))?;
            }
            use_chirp(&db).await.map_err(|e| connect_error(e.into()))?;
            // A clone is a session of its own, signed in as this one.
            let link = Link::watch(db.clone(), server.timeout);
            Ok(Database::Server { db, link })
        }
    }

    /// Starts a query, as `Surreal::query` does; to a server, under the
    /// link's deadline.
    pub(super) fn query(&self, sql: impl Into<String>) -> Statement<'_> {
        let sql = sql.into();
        match self {
            Database::Embedded { db, .. } => Statement::Embedded(db.query(sql)),
            Database::Server { db, link } => Statement::Server(db.query(sql), Some(link)),
        }
    }

    /// Starts a query with no deadline, for start-up work whose length
    /// depends on the store's size (the layout's upgrade).
    pub(super) fn query_without_deadline(&self, sql: impl Into<String>) -> Statement<'_> {
        match self.query(sql) {
            Statement::Server(q, _) => Statement::Server(q, None),
            embedded => embedded,
        }
    }

    /// The whole database as SurrealQL, streamed from one read of it; an
    /// embedded store only (a server has its own export).
    pub(super) async fn export(&self) -> Result<surrealdb::method::Backup, StoreError> {
        match self {
            Database::Embedded { db, .. } => Ok(db.export(()).await?),
            Database::Server { .. } => Err(StoreError::NotEmbedded),
        }
    }

    /// Runs the SurrealQL in `file` (a backup) against this database.
    pub(super) async fn import(&self, file: &std::path::Path) -> Result<(), StoreError> {
        match self {
            Database::Embedded { db, .. } => Ok(db.import(file).await?),
            Database::Server { .. } => Err(StoreError::NotEmbedded),
        }
    }

    /// Flushes and closes an embedded datastore (a server keeps running).
    /// Call it last: nothing can be written afterwards, and the SDK handle
    /// must not be dropped after it (see [`super::Store::close`]).
    pub(super) async fn close(&self) -> Result<(), StoreError> {
        if let Database::Embedded { datastore, .. } = self {
            datastore.shutdown().await.map_err(|e| {
                let source: Box<dyn std::error::Error + Send + Sync> = e.into();
                StoreError::Close(source.into())
            })?;
        }
        Ok(())
    }
}

/// Selects the namespace and database chirp keeps its tables in.
async fn use_chirp<C: surrealdb::Connection>(db: &Surreal<C>) -> surrealdb::Result<()> {
    db.use_ns("chirp").use_db("chirp").await.map(drop)
}

/// Builds the embedded datastore the way the SDK's local engine does, with
/// SurrealKV's memory set by chirp and its background work on threads of
/// its own (see [`super::background`]).
async fn open_embedded(
    url: &str,
    memory: EmbeddedMemory,
) -> Result<(Arc<Datastore>, Option<BackgroundThreads>), Box<dyn std::error::Error + Send + Sync>> {
    let settings = ConfigMap::empty()
        .with_key_value("surrealkv_max_memtable_size", memory.memtable.to_string())
        .with_key_value(
            "surrealkv_block_cache_capacity",
            memory.block_cache.to_string(),
        );
    let builder = Datastore::builder()
        .with_config(settings)
        .with_capabilities(Capabilities::new().into())
        // As in the SDK: the maintenance tasks write, so they start only
        // once the version check has stamped a new datastore.
        .without_maintenance_tasks();
    let (datastore, background) = if url.starts_with("surrealkv://") {
        let background = BackgroundThreads::start()?;
        let datastore = background
            .spawning_here(builder.build_with_path(url))
            .await?;
        (datastore, Some(background))
    } else {
        (builder.build_with_path(url).await?, None)
    };
    datastore.check_version().await?;
    datastore.bootstrap().await?;
    datastore.start_maintenance_tasks();
    Ok((datastore, background))
}

impl Statement<'_> {
    /// Appends another statement, as `Query::query` does.
    pub(super) fn query(self, sql: impl Into<String>) -> Self {
        let sql = sql.into();
        match self {
            Statement::Embedded(q) => Statement::Embedded(q.query(sql)),
            Statement::Server(q, link) => Statement::Server(q.query(sql), link),
        }
    }

    /// Binds `$name` to `value`.
    ///
    /// Handed a `(name, value)` tuple, the SDK converts it to a
    /// two-element array and then clones the value out of it: for a batch
    /// of 1,024 rows, a deep copy of every row. A one-entry map is moved
    /// instead.
    pub(super) fn bind(self, (name, value): (&str, impl SurrealValue)) -> Self {
        let vars: BTreeMap<String, Value> =
            BTreeMap::from([(name.to_string(), value.into_value())]);
        match self {
            Statement::Embedded(q) => Statement::Embedded(q.bind(vars)),
            Statement::Server(q, link) => Statement::Server(q.bind(vars), link),
        }
    }
}

impl<'a> IntoFuture for Statement<'a> {
    type Output = Result<IndexedResults, StoreError>;
    type IntoFuture = std::pin::Pin<Box<dyn Future<Output = Self::Output> + Send + 'a>>;

    fn into_future(self) -> Self::IntoFuture {
        match self {
            Statement::Embedded(q) => Box::pin(async { Ok(q.await?) }),
            Statement::Server(q, Some(link)) => Box::pin(link.run(q.into_future())),
            Statement::Server(q, None) => Box::pin(async { Ok(q.await?) }),
        }
    }
}
