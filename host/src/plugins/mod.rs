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
//! - [`worlds`]: every world and version a plugin may be built for, behind
//!   one shape per kind of plugin.
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
pub mod worlds;

pub use call::{CallError, NotLoaded, RulesAnswer, SendAnswer, WebhookAnswer, WebhookCallError};
use registry::Registry;
pub use registry::{PluginFile, Rejection};

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::{HasSelf, Linker};

use crate::config::PluginSettings;
use bindings::{Descriptor, Provider};
use engine::{Allocator, Compiler, Origin};
pub use files::is_plugin_file;
pub use host::{Grant, HostState, Outbound};
pub use limits::Limits;
use network::Clients;

/// Why a plugin file could not be loaded.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LoadError {
    /// The file (or directory) could not be read.
    #[error("cannot read {path}: {reason}")]
    Read {
        /// The file or directory.
        path: PathBuf,
        /// Why not.
        reason: String,
    },
    /// The file was read and refused: it failed to compile, link,
    /// describe itself or pass its self-test, or breaks a naming rule.
    #[error("{path} was not loaded: {reason}")]
    Rejected {
        /// The file.
        path: PathBuf,
        /// Why it was refused.
        reason: String,
    },
    /// A setting the plugin requires is not set.
    #[error("plugin {plugin} needs setting {setting}: set {variable}")]
    MissingSetting {
        /// The plugin.
        plugin: String,
        /// Its setting.
        setting: String,
        /// The variable that sets it.
        variable: String,
    },
    #[error(
        "plugin {plugin}: {old} is no longer read (plugin settings are CHIRP_PLUGINS__<PLUGIN>__<SETTING>); set {variable} for setting {setting} instead"
    )]
    /// A setting still given under the variable chirp read before.
    RenamedSetting {
        /// The plugin.
        plugin: String,
        /// Its setting.
        setting: String,
        /// The variable given, no longer read.
        old: String,
        /// The variable to set instead.
        variable: String,
    },
    /// The operator's sandbox policy for the plugin cannot be read.
    #[error("plugin {plugin}: {source}")]
    Policy {
        /// The plugin.
        plugin: String,
        /// What is wrong with the policy.
        source: policy::PolicyError,
    },
}

/// The worlds chirp knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum World {
    /// Sends messages (`delivery`).
    Provider,
    /// Decides events (`selection`).
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
    /// The plugin's name, its file's.
    pub name: String,
    /// What it does.
    pub world: World,
    /// The version it gave.
    pub version: String,
    /// The file's sha256, hex.
    pub sha256: String,
    /// The file.
    pub file: PathBuf,
    /// When this version was loaded.
    pub loaded_at: SystemTime,
    /// Whether the machine code came from the cache.
    pub origin: Origin,
    /// The hosts it may reach.
    pub hosts: Vec<String>,
}

/// A provider ready to be called.
pub struct LoadedProvider {
    /// What is known of it.
    pub meta: Meta,
    /// What it said of itself.
    pub descriptor: Descriptor,
    grant: Arc<Grant>,
    pre: worlds::ProviderComponent,
}

/// A rules plugin ready to be called.
pub struct LoadedRules {
    /// What is known of it.
    pub meta: Meta,
    /// The event kinds it takes.
    pub kinds: Vec<String>,
    grant: Arc<Grant>,
    pre: worlds::RulesComponent,
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
    /// A new version serves.
    Loaded(Meta),
    /// The file did not change.
    Unchanged,
    /// The file is gone; the plugin it served, if any, is unloaded.
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
        worlds::link_released_imports(&mut linker)?;
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

    /// How plugin instances get their memory.
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
