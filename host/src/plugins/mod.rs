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
//! - [`registry`]: which file serves which plugin, and its views.
//! - [`call`]: one call, under the grant's limits.
//! - this file: the engine and linker, and bringing files in line.

pub mod bindings;
pub mod cache;
mod call;
pub mod engine;
pub mod files;
pub mod host;
pub mod limits;
mod load;
pub mod names;
pub mod network;
pub mod policy;
mod registry;
pub mod watcher;

pub use call::{CallError, NotLoaded, SendAnswer};
use registry::Registry;
pub use registry::{PluginFile, Rejection};

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::{HasSelf, Linker};

use crate::config::PluginSettings;
use bindings::{Descriptor, Provider, ProviderPre, RulesPre};
use engine::{Allocator, Compiler, Origin};
pub use files::is_plugin_file;
pub use host::{Grant, HostState, Outbound};
pub use limits::Limits;
use network::Clients;

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

/// The worlds chirp knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum World {
    Provider,
    Rules,
}

impl World {
    /// Every world.
    pub const ALL: [World; 2] = [World::Provider, World::Rules];

    /// The world's name, as WIT and the API spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            World::Provider => "provider",
            World::Rules => "rules",
        }
    }
}

/// What is known of a loaded plugin, whatever its world.
#[derive(Debug, Clone)]
pub struct Meta {
    pub name: String,
    pub world: World,
    pub version: String,
    pub sha256: String,
    pub file: PathBuf,
    pub loaded_at: SystemTime,
    /// Whether the machine code came from the cache.
    pub origin: Origin,
    pub hosts: Vec<String>,
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
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
