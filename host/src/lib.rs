//! chirp: a notification engine. Messages come in over a REST API, wait in
//! a durable SurrealDB queue, are rendered from templates, and go out
//! through provider plugins that run as sandboxed WebAssembly components.
//!
//! # Layout
//! The data path, top-down:
//! - [`api`]: the REST API (axum). Validates requests into domain types.
//! - [`recipients`]: the recipient's preferences, read before rendering;
//!   concurrent requests' lookups coalesced into one query.
//! - [`intake`]: a send request or an event -> messages to store
//!   (rendering, rules, preferences).
//! - [`templates`]: the template catalog and strict rendering (no I/O).
//! - [`queue`]: group-committed acceptance, the scheduler (leases, retries).
//! - [`gate`]: the checks made again just before a send (opt-outs,
//!   disabled templates, marketing hours).
//! - [`delivery`]: one attempt of one message through its provider.
//! - [`plugins`]: wasmtime, the provider components and what they may do.
//! - [`store`]: SurrealDB, the only module that speaks SurrealQL.
//!
//! Around it:
//! - [`config`]: environment + `chirp.toml` -> validated [`Config`].
//! - [`message`]: the domain types (message, attempt, outcome).
//! - [`default_provider`]: the provider new messages go through, changed at
//!   run time by an admin.
//! - [`customers`]: a customer's personal data as a whole: access, erasure.
//! - [`status`]: the message's state machine and its delivery receipts.
//! - [`webhooks`]: what providers' webhooks report (receipts, replies),
//!   checked and bounded.
//! - [`phone`]: E.164 phone numbers.
//! - [`keyfile`]: secret keys kept in files outside the store.
//! - [`preferences`]: a recipient's opt-outs, language and time zone.
//! - [`tools`]: `chirp plugin check` and `chirp plugin send`.
//! - [`admin`]: `chirp backup`, `chirp restore` and `chirp import`.
//! - [`import`]: reading the old system's mongoexport.
//! - [`inbox`]: applies what webhooks reported to messages and phones.
//! - [`callbacks`]: signed status callbacks to the caller's backend.
//! - [`retention`]: the job that redacts, then deletes, what was kept long
//!   enough.
//! - [`telemetry`]: the Prometheus series.
//! - [`allocator`]: chirp's requests of mimalloc (purge delay, returning
//!   freed pages).
//!
//! [`start`] wires the parts together; [`Chirp::serve`] runs them until
//! shutdown.

#![warn(missing_docs)]

pub mod admin;
pub mod allocator;
pub mod api;
pub mod callbacks;
pub mod config;
pub mod customers;
pub mod default_provider;
pub mod delivery;
pub mod gate;
pub mod import;
pub mod inbox;
pub mod intake;
pub mod keyfile;
pub mod message;
pub mod phone;
pub mod plugins;
pub mod preferences;
pub mod queue;
pub mod recipients;
pub mod retention;
pub mod status;
pub mod store;
pub mod telemetry;
pub mod templates;
pub mod tools;
pub mod webhooks;

pub use config::Config;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};

use crate::plugins::{Limits, Plugins};
use crate::queue::Queue;
use crate::queue::scheduler::Scheduler;
use crate::recipients::Recipients;
use crate::store::Store;
use crate::templates::{Catalog, Templates};

/// Why chirp could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    /// A setting cannot be used.
    Config(#[from] config::ConfigError),
    #[error(transparent)]
    /// The store cannot be opened or prepared.
    Store(#[from] store::StoreError),
    #[error(transparent)]
    /// The template files cannot be read.
    Templates(#[from] templates::CatalogError),
    #[error(transparent)]
    /// A plugin cannot work as configured.
    Plugin(#[from] plugins::LoadError),
    /// wasmtime refused the engine's configuration.
    #[error("cannot start the WebAssembly engine: {0:#}")]
    Engine(wasmtime::Error),
    /// The erasure key (`CHIRP_ERASURE_KEY`) cannot be read, made or
    /// trusted.
    #[error("cannot use the erasure key {path}: {reason}")]
    ErasureKey {
        /// The key file.
        path: std::path::PathBuf,
        /// Why not.
        reason: String,
    },
    /// The API's address cannot be bound.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// A started chirp: store open, templates and plugins loaded, socket bound.
pub struct Chirp {
    config: Config,
    listener: TcpListener,
    state: api::AppState,
    wake: Arc<Notify>,
    commit_tasks: tokio::task::JoinSet<()>,
    lookup_task: tokio::task::JoinHandle<()>,
}

/// Opens the store, loads templates and plugins and binds the socket.
/// Every configuration problem surfaces here, before anything is served.
pub async fn start(config: Config) -> Result<Chirp, StartError> {
    let metrics = telemetry::install();
    let erasure_key =
        customers::ErasureKey::open(&config.privacy.erasure_key).map_err(|reason| {
            StartError::ErasureKey {
                path: config.privacy.erasure_key.clone(),
                reason,
            }
        })?;
    // The files seed the store; from then on the store is the truth.
    let files = Catalog::load(&config.templates_dir)?;
    let store = Store::open(&config.store.url, &config.store.server, config.store.memory).await?;
    let seeded = store
        .seed_templates(&files.all().cloned().collect::<Vec<_>>())
        .await?;
    if seeded > 0 {
        tracing::info!(templates = seeded, "templates seeded from files");
    }
    let (catalog, refused) = Catalog::from_stored(store.templates().await?);
    for (template, problem) in refused {
        tracing::error!(%template, %problem, "a stored template fails this chirp's checks; it is disabled until it is saved again (PUT /api/notifications/templates/{{type}})");
    }
    let templates = Arc::new(Templates::new(catalog));
    let limits = Limits {
        // A call must end well before its lease does, or another worker
        // could take the message while it is still being sent.
        call_timeout: config.plugin_call_timeout(),
        ..Limits::default()
    };
    let plugins = Arc::new(
        Plugins::new(plugins::Setup {
            settings: config.plugins.settings.clone(),
            defaults: limits,
            cache: Some((
                config.plugins.cache_dir.clone(),
                config.plugins.cache_key.clone(),
            )),
            concurrency: config.delivery.send_concurrency,
            max_file_bytes: config.plugins.max_file_bytes,
        })
        .map_err(StartError::Engine)?,
    );
    std::fs::create_dir_all(&config.plugins.dir).map_err(|e| {
        StartError::Plugin(plugins::LoadError::Read {
            path: config.plugins.dir.clone(),
            reason: e.to_string(),
        })
    })?;
    for error in plugins.sync_dir(&config.plugins.dir).await? {
        // A plugin that can never work as configured stops start-up; a bad
        // file is only refused (and shown by GET /api/plugins).
        if matches!(
            error,
            plugins::LoadError::MissingSetting { .. }
                | plugins::LoadError::RenamedSetting { .. }
                | plugins::LoadError::Policy { .. }
        ) {
            return Err(error.into());
        }
    }
    if plugins.provider(&config.plugins.provider).is_none() {
        tracing::warn!(
            provider = %config.plugins.provider,
            dir = %config.plugins.dir.display(),
            "the configured provider is not loaded; messages will wait in the queue"
        );
    }
    // An admin's choice of default provider, stored, outlives
    // CHIRP_PROVIDER.
    let provider = match store.setting(api::PROVIDER_SETTING).await {
        Ok(Some(stored)) => {
            if stored != config.plugins.provider {
                tracing::info!(provider = %stored, configured = %config.plugins.provider, "the default provider an admin chose is in force");
            }
            stored
        }
        Ok(None) => config.plugins.provider.clone(),
        Err(e) => return Err(StartError::Store(e)),
    };
    let callbacks = Arc::new(
        callbacks::registry::Registry::load(store.clone(), config.callbacks.clone()).await?,
    );
    let wake = Arc::new(Notify::new());
    let (queue, commit_tasks) = Queue::start(store.clone(), wake.clone(), config.store.committers);
    let (recipients, lookup_task) = Recipients::start(store.clone());
    let listener = TcpListener::bind(config.api.listen)
        .await
        .map_err(|source| StartError::Listen {
            addr: config.api.listen,
            source,
        })?;
    let state = api::AppState {
        store,
        queue,
        recipients,
        plugins,
        templates,
        provider: default_provider::DefaultProvider::new(provider),
        rules: config.plugins.rules.clone(),
        metrics,
        console: Arc::new(api::ConsoleSessions::default()),
        auth: Arc::new(match &config.auth.jwt_secret {
            Some(secret) => api::Auth::hs256(&secret.0, &config.auth.token_rules),
            None => {
                tracing::error!(
                    "AUTHENTICATION IS OFF (CHIRP_INSECURE_NO_AUTH): every caller is an admin; never run this way in production"
                );
                api::Auth::Disabled
            }
        }),
        plugins_dir: config.plugins.dir.clone(),
        erasure_key: Arc::new(erasure_key),
        consent: config.delivery.consent(),
        webhooks: api::WebhookDesk::new(config.webhooks.clone(), Arc::new(inbox::Inbox::default())),
        callbacks,
        breakers: Arc::new(queue::breaker::Breakers::new(config.delivery.breaker)),
    };
    Ok(Chirp {
        config,
        listener,
        state,
        wake,
        commit_tasks,
        lookup_task,
    })
}

impl Chirp {
    /// The address the API listens on (useful with port 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves the API and runs the scheduler until `shutdown` resolves;
    /// then stops accepting, lets attempts in flight finish (up to a grace
    /// period) and returns.
    pub async fn serve(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let Chirp {
            config,
            listener,
            state,
            wake,
            mut commit_tasks,
            lookup_task,
        } = self;
        let shutdown_grace = config.delivery.shutdown_grace;
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut scheduler = Scheduler::new(
            &config,
            state.store.clone(),
            state.plugins.clone(),
            wake,
            state.templates.clone(),
        );
        scheduler.inbox = state.webhooks.inbox.clone();
        scheduler.breakers = state.breakers.clone();
        let window_wake = scheduler.wake.clone();
        let watcher = plugins::watcher::spawn(
            state.plugins.clone(),
            &config.plugins.dir,
            stop_tx.subscribe(),
        );
        if let Err(e) = &watcher {
            tracing::error!(error = %e, dir = %config.plugins.dir.display(), "cannot watch the plugins directory; use POST /api/plugins/reload");
        }
        let scheduler_task = if config.delivery.pause {
            tracing::warn!(
                "delivery is paused (CHIRP_PAUSE_DELIVERY): messages are stored, not sent"
            );
            tokio::spawn(async {})
        } else {
            tokio::spawn(scheduler.run(stop_rx))
        };
        let window_task = tokio::spawn(queue::delivery_window::run(
            state.store.clone(),
            window_wake,
            stop_tx.subscribe(),
        ));
        let retention_task = tokio::spawn(retention::run(
            state.store.clone(),
            config.privacy.clone(),
            state.templates.clone(),
            stop_tx.subscribe(),
        ));
        let inbox_task = tokio::spawn(inbox::run(
            state.store.clone(),
            state.webhooks.inbox.clone(),
            config.webhooks.clone(),
            stop_tx.subscribe(),
        ));
        let callbacks_task = match plugins::network::Clients::new() {
            Ok(clients) => tokio::spawn(callbacks::sender::run(
                state.store.clone(),
                state.callbacks.clone(),
                clients,
                stop_tx.subscribe(),
            )),
            Err(e) => {
                tracing::error!(error = %e, "cannot build the HTTP client for status callbacks; none will be posted");
                tokio::spawn(async {})
            }
        };
        let store = state.store.clone();
        let app =
            api::router(state, &config.api).into_make_service_with_connect_info::<SocketAddr>();

        let mut http_stop = stop_tx.subscribe();
        let server = axum::serve(listener, app).with_graceful_shutdown(async move {
            let _ = http_stop.wait_for(|stop| *stop).await;
        });
        let server_task = tokio::spawn(async move { server.await });

        shutdown.await;
        tracing::info!("shutting down: no new requests, finishing attempts in flight");
        let _ = stop_tx.send(true);
        let finished = tokio::time::timeout(shutdown_grace, async {
            let served = server_task.await;
            let _ = scheduler_task.await;
            let _ = retention_task.await;
            let _ = window_task.await;
            let _ = inbox_task.await;
            let _ = callbacks_task.await;
            served
        })
        .await;
        commit_tasks.abort_all();
        lookup_task.abort();
        if let Err(e) = store.close().await {
            tracing::warn!(error = %e, "the store did not close cleanly; it recovers its log on the next start");
        }
        match finished {
            Ok(Ok(result)) => result,
            Ok(Err(join)) => Err(std::io::Error::other(join)),
            Err(_) => {
                tracing::warn!(
                    "grace period over; leased messages return to the queue on next start"
                );
                Ok(())
            }
        }
    }
}
