//! Plugins: WebAssembly components run by wasmtime, hot-swappable.
//!
//! A plugin file is compiled (or read from the compile cache), linked,
//! asked to describe itself and self-tested once, when it is loaded; only a
//! file that passes every step replaces the version serving before it. Each
//! call then gets a fresh `Store` and instance from the pre-linked
//! component, so nothing leaks from one message to the next, a call that
//! started on a version finishes on it, and a plugin that traps, loops or
//! runs out of memory spoils only that call.
//!
//! **Invariant:** a plugin failure is an attempt's failure, never the
//! host's: every way a call can go wrong comes back as a [`CallError`].
//! **Invariant:** a file that fails to load never replaces a working one.
//!
//! # Layout
//! - [`bindings`]: the host side of the `chirp:plugin` WIT package.
//! - [`names`]: plugin and setting names, in file names and variables.
//! - [`files`]: the plugins directory, read within bounds.
//! - [`load`]: one file -> a checked, configured, self-tested plugin.
//! - [`host`]: what the host grants a plugin (HTTP, settings, logging).
//! - [`limits`]: what one call may use, and the memory meter.
//! - [`network`]: which addresses a plugin's HTTP may reach.
//! - [`policy`]: the operator's sandbox policy per plugin.
//! - [`engine`]: the engine (pooling, epochs) and compiling.
//! - [`cache`]: the compile cache, proven by a key chirp keeps.
//! - [`watcher`]: reloads plugins when their files change.
//! - this file: the registry, and one call.

pub mod bindings;
pub mod cache;
pub mod engine;
pub mod files;
pub mod host;
pub mod limits;
mod load;
pub mod names;
pub mod network;
pub mod policy;
pub mod watcher;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;
use sha2::{Digest, Sha256};
use wasmtime::component::{HasSelf, Linker};
use wasmtime::{Engine, Store, UpdateDeadline};

use crate::config::PluginSettings;
use bindings::{Descriptor, Provider, ProviderPre, Rules, RulesPre};
use engine::{Allocator, Compiler, Origin};
pub use files::is_plugin_file;
pub use host::{Grant, HostState, Outbound};
pub use limits::Limits;
use network::Clients;

/// Longest string a plugin may hand back in a field chirp stores.
const MAX_FIELD_LEN: usize = 4096;

/// Why a plugin file could not be loaded.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read {path}: {reason}")]
    Read { path: PathBuf, reason: String },
    #[error("{path} was not loaded: {reason}")]
    Rejected { path: PathBuf, reason: String },
    #[error("plugin {plugin} needs setting {setting}: set {variable}")]
    MissingSetting {
        plugin: String,
        setting: String,
        variable: String,
    },
    #[error(
        "plugin {plugin}: {old} is no longer read (plugin settings are CHIRP_PLUGINS__<PLUGIN>__<SETTING>); set {variable} for setting {setting} instead"
    )]
    RenamedSetting {
        plugin: String,
        setting: String,
        old: String,
        variable: String,
    },
    #[error("plugin {plugin}: {source}")]
    Policy {
        plugin: String,
        source: policy::PolicyError,
    },
}

/// Why a call into a plugin did not produce a usable answer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CallError {
    #[error("plugin trapped: {0}")]
    Trap(String),
    #[error("plugin exceeded its time limit of {0:?}")]
    Timeout(Duration),
    #[error("plugin answered something chirp cannot use: {0}")]
    Garbage(String),
    #[error("plugin tried to reach what it may not: {0}")]
    Denied(String),
}

/// No plugin of that name is loaded.
#[derive(Debug, Clone, thiserror::Error)]
#[error("plugin {0:?} is not loaded")]
pub struct NotLoaded(pub String);

/// A provider's own answer to `send`.
pub type SendAnswer = Result<bindings::Receipt, bindings::SendError>;

/// The worlds chirp knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum World {
    Provider,
    Rules,
}

/// What is known of a loaded plugin, whatever its world.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Meta {
    pub name: String,
    pub world: World,
    pub version: String,
    pub sha256: String,
    #[schema(value_type = String)]
    pub file: PathBuf,
    #[serde(serialize_with = "serialize_time")]
    #[schema(value_type = String, format = DateTime)]
    pub loaded_at: SystemTime,
    /// Whether the machine code came from the cache.
    pub origin: Origin,
    pub hosts: Vec<String>,
}

fn serialize_time<S: serde::Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&humantime::format_rfc3339_millis(*t).to_string())
}

/// A provider ready to be called.
pub struct LoadedProvider {
    pub meta: Meta,
    pub descriptor: Descriptor,
    grant: Arc<Grant>,
    pre: ProviderPre<HostState>,
}

/// A rules plugin ready to be called.
pub struct LoadedRules {
    pub meta: Meta,
    pub kinds: Vec<String>,
    grant: Arc<Grant>,
    pre: RulesPre<HostState>,
}

enum Loaded {
    Provider(Arc<LoadedProvider>),
    Rules(Arc<LoadedRules>),
}

impl Loaded {
    fn meta(&self) -> &Meta {
        match self {
            Loaded::Provider(p) => &p.meta,
            Loaded::Rules(r) => &r.meta,
        }
    }
}

/// A file that was offered and refused.
#[derive(Debug, Clone, Serialize)]
pub struct Rejection {
    pub sha256: String,
    pub error: String,
    #[serde(serialize_with = "serialize_time")]
    pub at: SystemTime,
}

/// What the registry knows of one file in the plugins directory.
#[derive(Debug, Clone, Default)]
struct FileEntry {
    /// The plugin this file is serving, if any.
    active: Option<Meta>,
    /// The last version of the file that was refused, if it is the
    /// file's current content.
    rejected: Option<Rejection>,
}

/// One row of `GET /api/plugins`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PluginStatus {
    pub file: String,
    /// `active`: the file's current content serves. `rejected`: it was
    /// refused (`error` says why); `serving`, if present, is the earlier
    /// version that keeps serving.
    pub state: &'static str,
    pub name: Option<String>,
    pub world: Option<World>,
    pub version: Option<String>,
    pub sha256: Option<String>,
    pub loaded_at: Option<String>,
    pub origin: Option<Origin>,
    pub error: Option<String>,
    pub serving: Option<Meta>,
}

#[derive(Default)]
struct Registry {
    files: BTreeMap<PathBuf, FileEntry>,
    providers: HashMap<String, Arc<LoadedProvider>>,
    rules: HashMap<String, Arc<LoadedRules>>,
}

/// What became of a file offered to [`Plugins::sync_file`].
#[derive(Debug, Clone)]
pub enum Sync {
    Loaded(Meta),
    Unchanged,
    Removed(Option<String>),
}

/// How a [`Plugins`] is set up.
#[derive(Debug, Clone)]
pub struct Setup {
    /// What the operator addressed to each plugin.
    pub settings: PluginSettings,
    /// Limits of a plugin whose sandbox policy does not set its own.
    pub defaults: Limits,
    /// The compile cache (`CHIRP_PLUGIN_CACHE_DIR`) and the key that proves
    /// its files (`CHIRP_PLUGIN_CACHE_KEY`); `None`: compile every time.
    pub cache: Option<(PathBuf, PathBuf)>,
    /// Plugin calls that may run at once.
    pub concurrency: usize,
    /// The largest plugin file read (`CHIRP_PLUGIN_MAX_MB`).
    pub max_file_bytes: u64,
}

impl Setup {
    /// Default limits, a cache in `cache_dir` with its key beside it, room
    /// for a few calls at once: what tools and tests need.
    pub fn new(settings: PluginSettings, cache_dir: &Path) -> Setup {
        Setup {
            settings,
            defaults: Limits::default(),
            cache: Some((cache_dir.into(), cache::Cache::default_key_file(cache_dir))),
            concurrency: 4,
            max_file_bytes: files::DEFAULT_MAX_FILE_BYTES,
        }
    }
}

/// The engine, the linker and the plugins currently loaded.
pub struct Plugins {
    engine: Engine,
    allocator: Allocator,
    compiler: Compiler,
    linker: Linker<HostState>,
    clients: Clients,
    defaults: Limits,
    settings: PluginSettings,
    max_file_bytes: u64,
    registry: RwLock<Registry>,
    /// Serialises loads, so two reloads of one file cannot interleave.
    loading: tokio::sync::Mutex<()>,
    /// Announces the name of every plugin loaded or swapped in.
    loaded: tokio::sync::broadcast::Sender<String>,
}

impl Plugins {
    /// Builds the engine (pooling sized for `concurrency` calls at once),
    /// the linker and the HTTP clients, and starts the epoch ticker.
    pub fn new(setup: Setup) -> Result<Plugins, wasmtime::Error> {
        let slots = (setup.concurrency as u32).saturating_add(32);
        let (engine, allocator) = engine::build(slots)?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        Provider::add_to_linker::<_, HasSelf<_>>(&mut linker, |state| state)?;
        engine::spawn_epoch_ticker(&engine);
        let cache = setup.cache.and_then(|(dir, key)| {
            cache::Cache::open(&dir, &key)
                .map_err(|e| {
                    tracing::error!(error = %e, "the compile cache is off: plugins are compiled at every start")
                })
                .ok()
        });
        Ok(Plugins {
            compiler: Compiler::new(engine.clone(), cache),
            engine,
            allocator,
            linker,
            clients: Clients::new().map_err(wasmtime::Error::msg)?,
            defaults: setup.defaults,
            settings: setup.settings,
            max_file_bytes: setup.max_file_bytes,
            registry: RwLock::new(Registry::default()),
            loading: tokio::sync::Mutex::new(()),
            loaded: tokio::sync::broadcast::channel(64).0,
        })
    }

    pub fn allocator(&self) -> Allocator {
        self.allocator
    }

    /// The names of plugins as they are loaded or swapped in.
    pub fn subscribe_loaded(&self) -> tokio::sync::broadcast::Receiver<String> {
        self.loaded.subscribe()
    }

    /// Brings the registry in line with `dir`: loads new and changed
    /// `*.wasm` files, unloads removed ones. Returns the errors of files
    /// that were refused (they are also in [`Plugins::status`]).
    pub async fn sync_dir(&self, dir: &Path) -> Result<Vec<LoadError>, LoadError> {
        let (present, beyond) = files::list(dir).await.map_err(|e| LoadError::Read {
            path: dir.into(),
            reason: e.to_string(),
        })?;
        let mut errors = Vec::new();
        if beyond > 0 {
            let error = LoadError::Read {
                path: dir.into(),
                reason: format!(
                    "holds {beyond} plugin files more than the {} chirp reads; those were not read",
                    files::MAX_FILES
                ),
            };
            tracing::error!(error = %error, "too many plugin files");
            errors.push(error);
        }
        let known: Vec<PathBuf> = self.read().files.keys().cloned().collect();
        for gone in known.iter().filter(|k| !present.contains(k)) {
            self.sync_file(gone).await.ok();
        }
        for path in present {
            if let Err(e) = self.sync_file(&path).await {
                errors.push(e);
            }
        }
        Ok(errors)
    }

    /// Brings one file in line: loads it if it is new or changed (and
    /// passes every check), unloads it if it is gone.
    ///
    /// The file is read before loads are serialised, so a file that is
    /// slow to read holds up no other load; a read that the file changed
    /// under before its turn came is read again.
    pub async fn sync_file(&self, path: &Path) -> Result<Sync, LoadError> {
        let read_error = |e: files::FileError| LoadError::Read {
            path: path.into(),
            reason: e.to_string(),
        };
        // A file named after no valid plugin is not even read.
        if names::of_file(path).is_none() && std::fs::symlink_metadata(path).is_ok() {
            let error = LoadError::Rejected {
                path: path.into(),
                reason: format!(
                    "a plugin file is named after its plugin, <name>.wasm, where the name is {}",
                    names::NAME_RULE
                ),
            };
            self.record_rejection(path, String::new(), &error);
            return Err(error);
        }
        let mut tries = 0;
        let (_serialised, bytes) = loop {
            let read = files::read(path, self.max_file_bytes).await;
            let serialised = self.loading.lock().await;
            let read = match read {
                Ok(read) => read,
                Err(e) => {
                    let error = read_error(e);
                    self.record_rejection(path, String::new(), &error);
                    return Err(error);
                }
            };
            let now = files::current_stamp(path).await.map_err(read_error)?;
            tries += 1;
            if read.as_ref().map(|(_, stamp)| *stamp) == now || tries >= 3 {
                break (serialised, read);
            }
        };
        let Some((bytes, _)) = bytes else {
            return Ok(Sync::Removed(self.unload(path)));
        };
        let sha256 = hex(&Sha256::digest(&bytes));
        if let Some(entry) = self.read().files.get(path) {
            let serving = entry.active.as_ref().is_some_and(|m| m.sha256 == sha256);
            let refused = entry.rejected.as_ref().is_some_and(|r| r.sha256 == sha256);
            if (serving && entry.rejected.is_none()) || refused {
                return Ok(Sync::Unchanged);
            }
        }
        match self.prepare(path, bytes, &sha256).await {
            Ok(loaded) => {
                let installed = self.install(path, loaded);
                crate::telemetry::plugin_reload(if installed.is_ok() {
                    "loaded"
                } else {
                    "rejected"
                });
                Ok(Sync::Loaded(installed?))
            }
            Err(e) => {
                crate::telemetry::plugin_reload("rejected");
                tracing::error!(file = %path.display(), error = %e, "plugin refused; the previous version, if any, keeps serving");
                self.record_rejection(path, sha256, &e);
                Err(e)
            }
        }
    }

    /// Records that `path`'s content `sha256` was refused. The registry
    /// holds at most [`files::MAX_FILES`] files: a refusal of one more new
    /// file is logged only.
    fn record_rejection(&self, path: &Path, sha256: String, error: &LoadError) {
        let mut registry = self.write();
        if !registry.files.contains_key(path) && registry.files.len() >= files::MAX_FILES {
            return;
        }
        registry.files.entry(path.into()).or_default().rejected = Some(Rejection {
            sha256,
            error: error.to_string(),
            at: SystemTime::now(),
        });
    }

    /// Makes `loaded` the plugin of its name and records it for `path`.
    fn install(&self, path: &Path, loaded: Loaded) -> Result<Meta, LoadError> {
        let meta = loaded.meta().clone();
        let mut registry = self.write();
        if !registry.files.contains_key(path) && registry.files.len() >= files::MAX_FILES {
            return Err(LoadError::Read {
                path: path.into(),
                reason: format!("chirp serves at most {} plugin files", files::MAX_FILES),
            });
        }
        // One file per plugin name, whatever the world: settings are
        // addressed by name.
        let owner = registry
            .files
            .iter()
            .find(|(file, entry)| {
                file.as_path() != path && entry.active.as_ref().is_some_and(|m| m.name == meta.name)
            })
            .map(|(file, _)| file.clone());
        if let Some(owner) = owner {
            let error = LoadError::Rejected {
                path: path.into(),
                reason: format!("{} is already loaded from {}", meta.name, owner.display()),
            };
            registry.files.entry(path.into()).or_default().rejected = Some(Rejection {
                sha256: meta.sha256.clone(),
                error: error.to_string(),
                at: SystemTime::now(),
            });
            return Err(error);
        }
        let entry = registry.files.entry(path.into()).or_default();
        if let Some(serving) = &entry.active
            && (serving.name != meta.name || serving.world != meta.world)
        {
            // Most likely the wrong file copied over a working one: refuse,
            // and keep the plugin that serves. Remove the file first to
            // replace a plugin with another.
            let error = LoadError::Rejected {
                path: path.into(),
                reason: format!(
                    "this file serves {} ({:?}); the new content is {} ({:?})",
                    serving.name, serving.world, meta.name, meta.world
                ),
            };
            entry.rejected = Some(Rejection {
                sha256: meta.sha256.clone(),
                error: error.to_string(),
                at: SystemTime::now(),
            });
            return Err(error);
        }
        let previous = entry.active.replace(meta.clone());
        entry.rejected = None;
        match loaded {
            Loaded::Provider(p) => {
                registry.providers.insert(meta.name.clone(), p);
            }
            Loaded::Rules(r) => {
                registry.rules.insert(meta.name.clone(), r);
            }
        }
        drop(registry);
        let _ = self.loaded.send(meta.name.clone());
        match previous {
            Some(old) => {
                tracing::info!(plugin = %meta.name, from = %old.version, to = %meta.version, sha256 = %meta.sha256, "plugin swapped")
            }
            None => {
                tracing::info!(plugin = %meta.name, world = ?meta.world, version = %meta.version, sha256 = %meta.sha256, origin = ?meta.origin, "plugin loaded")
            }
        }
        Ok(meta)
    }

    /// Forgets `path`; unloads the plugin it was serving. Returns its name.
    fn unload(&self, path: &Path) -> Option<String> {
        let mut registry = self.write();
        let entry = registry.files.remove(path)?;
        let meta = entry.active?;
        match meta.world {
            World::Provider => registry.providers.remove(&meta.name),
            World::Rules => {
                registry.rules.remove(&meta.name);
                None
            }
        };
        tracing::warn!(plugin = %meta.name, file = %path.display(), "plugin file removed; plugin unloaded");
        Some(meta.name)
    }

    /// Sends one message through provider `name`. Returns the version of
    /// the provider that took the call and what the call came to.
    pub async fn send(
        &self,
        name: &str,
        message: &bindings::Message,
    ) -> Result<(String, Result<SendAnswer, CallError>), NotLoaded> {
        let provider = self.provider(name).ok_or_else(|| NotLoaded(name.into()))?;
        let grant = provider.grant.clone();
        let answer = self
            .call(&provider.pre, grant, async |p: Provider, store| {
                p.chirp_plugin_delivery().call_send(store, message).await
            })
            .await
            .and_then(|answer| check_answer(&answer).map(|()| answer));
        Ok((provider.meta.version.clone(), answer))
    }

    /// The decisions of rules plugin `name` for `event`, with the version
    /// that made them.
    pub async fn decide(
        &self,
        name: &str,
        event: &bindings::Event,
    ) -> Result<
        (
            String,
            Result<Result<Vec<bindings::Decision>, String>, CallError>,
        ),
        NotLoaded,
    > {
        let rules = self
            .read()
            .rules
            .get(name)
            .cloned()
            .ok_or_else(|| NotLoaded(name.into()))?;
        let grant = rules.grant.clone();
        let answer = self
            .call(&rules.pre, grant, async |r: Rules, store| {
                r.chirp_plugin_selection().call_decide(store, event).await
            })
            .await;
        Ok((rules.meta.version.clone(), answer))
    }

    async fn call<P: Instantiate, R>(
        &self,
        pre: &P,
        grant: Arc<Grant>,
        f: impl AsyncFnOnce(P::Bindings, &mut Store<HostState>) -> wasmtime::Result<R>,
    ) -> Result<R, CallError> {
        self.call_with(pre, grant, Outbound::Network(self.clients.clone()), f)
            .await
    }

    /// Runs `f` in a fresh instance under the grant's limits: memory (the
    /// store's limiter, for all the call's memories and tables together),
    /// wall time (the epoch callback traps a guest that runs past its
    /// deadline and yields to the executor on every tick, so a looping
    /// guest never blocks a worker thread; a timeout covers host calls).
    async fn call_with<P: Instantiate, R>(
        &self,
        pre: &P,
        grant: Arc<Grant>,
        outbound: Outbound,
        f: impl AsyncFnOnce(P::Bindings, &mut Store<HostState>) -> wasmtime::Result<R>,
    ) -> Result<R, CallError> {
        let limit = grant.limits.call_timeout;
        let deadline = Instant::now() + limit;
        let mut store = Store::new(&self.engine, HostState::new(grant, outbound));
        store.limiter(|state| &mut state.memory);
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |_| {
            if Instant::now() >= deadline {
                Ok(UpdateDeadline::Interrupt)
            } else {
                Ok(UpdateDeadline::Yield(1))
            }
        });
        let run = async {
            let bindings = pre.instantiate(&mut store).await?;
            f(bindings, &mut store).await
        };
        let result = tokio::time::timeout(limit, run).await;
        if let Some(reason) = store.data_mut().denied.take() {
            return Err(CallError::Denied(reason));
        }
        match result {
            Err(_) => Err(CallError::Timeout(limit)),
            Ok(Err(_)) if Instant::now() >= deadline => Err(CallError::Timeout(limit)),
            Ok(Err(trap)) => Err(CallError::Trap(format!("{trap:#}"))),
            Ok(Ok(value)) => Ok(value),
        }
    }

    /// The provider loaded under `name`, if any.
    pub fn provider(&self, name: &str) -> Option<Arc<LoadedProvider>> {
        self.read().providers.get(name).cloned()
    }

    /// The event kinds rules plugin `name` handles (empty if not loaded).
    pub fn rules_kinds(&self, name: &str) -> Vec<String> {
        self.read()
            .rules
            .get(name)
            .map(|r| r.kinds.clone())
            .unwrap_or_default()
    }

    /// Whether messages may name provider `name`: it is loaded, or a file
    /// in the plugins directory serves it (between a file's removal and its
    /// return, messages for it wait).
    pub fn knows_provider(&self, name: &str) -> bool {
        let registry = self.read();
        registry.providers.contains_key(name)
            || registry.files.values().any(|entry| {
                entry
                    .active
                    .as_ref()
                    .is_some_and(|m| m.name == name && m.world == World::Provider)
            })
    }

    /// Whether a rules plugin of that name is loaded.
    pub fn rules(&self, name: &str) -> Option<Meta> {
        self.read().rules.get(name).map(|r| r.meta.clone())
    }

    /// Every loaded plugin.
    pub fn active(&self) -> Vec<Meta> {
        let registry = self.read();
        let mut list: Vec<Meta> = registry
            .providers
            .values()
            .map(|p| p.meta.clone())
            .chain(registry.rules.values().map(|r| r.meta.clone()))
            .collect();
        list.sort_by(|a, b| a.name.cmp(&b.name));
        list
    }

    /// Every file chirp has seen, with its state.
    pub fn status(&self) -> Vec<PluginStatus> {
        self.read()
            .files
            .iter()
            .map(|(file, entry)| {
                let file = file.display().to_string();
                match (&entry.rejected, &entry.active) {
                    (None, Some(m)) => PluginStatus {
                        file,
                        state: "active",
                        name: Some(m.name.clone()),
                        world: Some(m.world),
                        version: Some(m.version.clone()),
                        sha256: Some(m.sha256.clone()),
                        loaded_at: Some(humantime::format_rfc3339_millis(m.loaded_at).to_string()),
                        origin: Some(m.origin),
                        error: None,
                        serving: None,
                    },
                    (rejected, serving) => PluginStatus {
                        file,
                        state: "rejected",
                        name: serving.as_ref().map(|m| m.name.clone()),
                        world: serving.as_ref().map(|m| m.world),
                        version: None,
                        sha256: rejected.as_ref().map(|r| r.sha256.clone()),
                        loaded_at: None,
                        origin: None,
                        error: rejected.as_ref().map(|r| r.error.clone()),
                        serving: serving.clone(),
                    },
                }
            })
            .collect()
    }

    // The registry lock is a `std` lock held only to read or swap entries,
    // never across an await. A poisoned lock still holds a consistent map
    // (no write panics half-way), so it is used as is.
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Registry> {
        self.registry.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Registry> {
        self.registry.write().unwrap_or_else(|e| e.into_inner())
    }
}

/// A pre-linked component of some world that can be instantiated.
trait Instantiate {
    type Bindings;
    async fn instantiate(&self, store: &mut Store<HostState>) -> wasmtime::Result<Self::Bindings>;
}

impl Instantiate for ProviderPre<HostState> {
    type Bindings = Provider;
    async fn instantiate(&self, store: &mut Store<HostState>) -> wasmtime::Result<Provider> {
        self.instantiate_async(store).await
    }
}

impl Instantiate for RulesPre<HostState> {
    type Bindings = Rules;
    async fn instantiate(&self, store: &mut Store<HostState>) -> wasmtime::Result<Rules> {
        self.instantiate_async(store).await
    }
}

/// Refuses answers chirp would have to store but cannot: oversized ids,
/// codes or messages.
fn check_answer(answer: &SendAnswer) -> Result<(), CallError> {
    let too_long = |what: &str, s: &str| {
        (s.len() > MAX_FIELD_LEN)
            .then(|| CallError::Garbage(format!("{what} of {} bytes", s.len())))
    };
    let problem = match answer {
        Ok(receipt) => receipt
            .provider_message_id
            .as_deref()
            .and_then(|id| too_long("provider message id", id)),
        Err(bindings::SendError::Retryable((f, _)) | bindings::SendError::Permanent(f)) => {
            too_long("error code", &f.code).or_else(|| too_long("error message", &f.message))
        }
    };
    problem.map_or(Ok(()), Err)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
