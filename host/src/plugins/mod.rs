//! Provider plugins: WebAssembly components run by wasmtime.
//!
//! A plugin file is compiled and linked once, when it is loaded; each call
//! then gets a fresh `Store` and a fresh instance from the pre-linked
//! component, so no state leaks from one message to the next and a plugin
//! that traps, loops or runs out of memory spoils only that call.
//!
//! **Invariant:** a plugin failure is an attempt's failure, never the
//! host's: every way a call can go wrong comes back as a [`CallError`].
//!
//! # Layout
//! - [`bindings`]: the host side of the `chirp:plugin` WIT package.
//! - [`host`]: what the host grants a plugin (HTTP, settings, logging).
//! - this file: the engine, loading, the registry of loaded providers, and
//!   one call.

pub mod bindings;
pub mod host;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use serde::Serialize;
use sha2::{Digest, Sha256};
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Engine, Store, UpdateDeadline};

use crate::config::PluginSettings;
use bindings::{Descriptor, Provider, ProviderPre};
pub use host::{Grant, HostState, Limits};

/// How often the engine's epoch advances; the granularity of deadlines.
const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Why a plugin file could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a usable chirp:plugin/provider component: {reason}")]
    Invalid { path: PathBuf, reason: String },
    #[error("plugin {plugin} needs setting {setting}: set {variable}")]
    MissingSetting {
        plugin: String,
        setting: String,
        variable: String,
    },
}

/// Why a call into a plugin did not produce an answer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CallError {
    #[error("plugin trapped: {0}")]
    Trap(String),
    #[error("plugin exceeded its time limit of {0:?}")]
    Timeout(Duration),
}

/// No provider of that name is loaded.
#[derive(Debug, Clone, thiserror::Error)]
#[error("provider {0:?} is not loaded")]
pub struct NotLoaded(pub String);

/// A provider's own answer to `send`.
pub type SendAnswer = Result<bindings::Receipt, bindings::SendError>;

/// A provider ready to be called.
pub struct LoadedProvider {
    pub descriptor: Descriptor,
    pub sha256: String,
    pub path: PathBuf,
    pub loaded_at: std::time::SystemTime,
    grant: Arc<Grant>,
    pre: ProviderPre<HostState>,
}

/// What the API shows of a loaded provider.
#[derive(Debug, Clone, Serialize)]
pub struct ProviderInfo {
    pub name: String,
    pub version: String,
    pub sha256: String,
    pub file: String,
    pub hosts: Vec<String>,
}

/// The engine, the linker and the providers currently loaded.
pub struct Plugins {
    engine: Engine,
    linker: Linker<HostState>,
    http: reqwest::Client,
    limits: Limits,
    settings: PluginSettings,
    providers: RwLock<HashMap<String, Arc<LoadedProvider>>>,
}

impl Plugins {
    /// Builds the engine (with epoch interruption for deadlines) and the
    /// linker, and starts the epoch ticker.
    pub fn new(settings: PluginSettings, limits: Limits) -> Result<Plugins, wasmtime::Error> {
        let mut config = wasmtime::Config::new();
        config.wasm_component_model(true);
        config.epoch_interruption(true);
        let engine = Engine::new(&config)?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        Provider::add_to_linker::<_, HasSelf<_>>(&mut linker, |state| state)?;
        spawn_epoch_ticker(&engine);
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .pool_max_idle_per_host(256)
            .build()
            .map_err(wasmtime::Error::msg)?;
        Ok(Plugins {
            engine,
            linker,
            http,
            limits,
            settings,
            providers: RwLock::new(HashMap::new()),
        })
    }

    /// Loads every `*.wasm` in `dir`. A file that is not a provider is
    /// logged and skipped; a provider missing a required setting stops
    /// start-up, since it could never send.
    pub async fn load_dir(&self, dir: &Path) -> Result<Vec<ProviderInfo>, LoadError> {
        let entries = std::fs::read_dir(dir).map_err(|source| LoadError::Read {
            path: dir.into(),
            source,
        })?;
        let mut paths: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "wasm"))
            .collect();
        paths.sort();
        let mut loaded = Vec::new();
        for path in paths {
            match self.load_file(&path).await {
                Ok(info) => loaded.push(info),
                Err(e @ LoadError::MissingSetting { .. }) => return Err(e),
                Err(e) => tracing::error!(error = %e, "plugin not loaded"),
            }
        }
        Ok(loaded)
    }

    /// Compiles, links and checks one file, then makes it the provider of
    /// its name.
    pub async fn load_file(&self, path: &Path) -> Result<ProviderInfo, LoadError> {
        let bytes = tokio::fs::read(path)
            .await
            .map_err(|source| LoadError::Read {
                path: path.into(),
                source,
            })?;
        let invalid = |reason: String| LoadError::Invalid {
            path: path.into(),
            reason,
        };
        let sha256 = hex(&Sha256::digest(&bytes));
        // Compiling is CPU-bound and can take a while: keep it off the
        // async workers that serve requests.
        let engine = self.engine.clone();
        let component = tokio::task::spawn_blocking(move || Component::new(&engine, &bytes))
            .await
            .map_err(|e| invalid(e.to_string()))?
            .map_err(|e| invalid(format!("{e:#}")))?;
        let instance_pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(|e| invalid(format!("{e:#}")))?;
        let pre = ProviderPre::new(instance_pre).map_err(|e| invalid(format!("{e:#}")))?;

        // First ask who it is, with no settings; then resolve its settings
        // and ask again, since its hosts may depend on them.
        let anonymous = Arc::new(Grant::default());
        let first = self
            .describe(&pre, anonymous)
            .await
            .map_err(|e| invalid(e.to_string()))?;
        let grant = Arc::new(self.resolve_grant(&first)?);
        let mut descriptor = self
            .describe(&pre, grant.clone())
            .await
            .map_err(|e| invalid(e.to_string()))?;
        if descriptor.name != first.name {
            return Err(invalid(
                "describe() changed its name once configured".into(),
            ));
        }
        check_descriptor(&descriptor).map_err(invalid)?;
        descriptor.hosts = descriptor
            .hosts
            .iter()
            .map(|h| h.to_ascii_lowercase())
            .collect();
        let grant = Arc::new(Grant {
            hosts: descriptor.hosts.clone(),
            ..(*grant).clone()
        });
        let provider = Arc::new(LoadedProvider {
            descriptor,
            sha256,
            path: path.into(),
            loaded_at: std::time::SystemTime::now(),
            grant,
            pre,
        });
        let info = provider.info();
        tracing::info!(
            plugin = %info.name,
            version = %info.version,
            sha256 = %info.sha256,
            "provider loaded"
        );
        self.write_providers().insert(info.name.clone(), provider);
        Ok(info)
    }

    /// The settings a plugin declared, with the operator's values.
    fn resolve_grant(&self, descriptor: &Descriptor) -> Result<Grant, LoadError> {
        let mut settings = HashMap::new();
        for setting in &descriptor.settings {
            let value = self
                .settings
                .lookup(&descriptor.name, &setting.name)
                .or_else(|| setting.default_value.clone());
            match value {
                Some(v) => {
                    settings.insert(setting.name.clone(), v);
                }
                None if setting.required => {
                    return Err(LoadError::MissingSetting {
                        plugin: descriptor.name.clone(),
                        setting: setting.name.clone(),
                        variable: PluginSettings::variable(&descriptor.name, &setting.name),
                    });
                }
                None => {}
            }
        }
        Ok(Grant {
            plugin: descriptor.name.clone(),
            settings,
            hosts: Vec::new(),
        })
    }

    async fn describe(
        &self,
        pre: &ProviderPre<HostState>,
        grant: Arc<Grant>,
    ) -> Result<Descriptor, CallError> {
        self.call(pre, grant, async |provider, store| {
            provider.chirp_plugin_delivery().call_describe(store).await
        })
        .await
    }

    /// Sends one message through provider `name`. Returns the version of
    /// the provider that took the call and what the call came to.
    pub async fn send(
        &self,
        name: &str,
        message: &bindings::Message,
    ) -> Result<(String, Result<SendAnswer, CallError>), NotLoaded> {
        let provider = self.provider(name).ok_or_else(|| NotLoaded(name.into()))?;
        let answer = self
            .call(&provider.pre, provider.grant.clone(), async |p, store| {
                p.chirp_plugin_delivery().call_send(store, message).await
            })
            .await;
        Ok((provider.descriptor.version.clone(), answer))
    }

    /// Runs `f` in a fresh instance under the call limits: memory, wall
    /// time (the epoch callback traps a guest that runs past its deadline
    /// and yields to the executor on every tick, so a looping guest never
    /// blocks a worker thread), and the same deadline around host calls.
    async fn call<R>(
        &self,
        pre: &ProviderPre<HostState>,
        grant: Arc<Grant>,
        f: impl AsyncFnOnce(&Provider, &mut Store<HostState>) -> wasmtime::Result<R>,
    ) -> Result<R, CallError> {
        let limit = self.limits.call_timeout;
        let deadline = Instant::now() + limit;
        let mut store = Store::new(
            &self.engine,
            HostState::new(grant, self.http.clone(), &self.limits),
        );
        store.limiter(|state| &mut state.limits);
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |_| {
            if Instant::now() >= deadline {
                Ok(UpdateDeadline::Interrupt)
            } else {
                Ok(UpdateDeadline::Yield(1))
            }
        });
        let run = async {
            let provider = pre.instantiate_async(&mut store).await?;
            f(&provider, &mut store).await
        };
        match tokio::time::timeout(limit, run).await {
            Err(_) => Err(CallError::Timeout(limit)),
            Ok(Err(trap)) if Instant::now() >= deadline => {
                tracing::debug!(error = %format!("{trap:#}"), "plugin interrupted at its deadline");
                Err(CallError::Timeout(limit))
            }
            Ok(Err(trap)) => Err(CallError::Trap(format!("{trap:#}"))),
            Ok(Ok(value)) => Ok(value),
        }
    }

    /// The provider loaded under `name`, if any.
    pub fn provider(&self, name: &str) -> Option<Arc<LoadedProvider>> {
        self.read_providers().get(name).cloned()
    }

    /// Every loaded provider, by name.
    pub fn list(&self) -> Vec<ProviderInfo> {
        let mut list: Vec<_> = self.read_providers().values().map(|p| p.info()).collect();
        list.sort_by(|a, b| a.name.cmp(&b.name));
        list
    }

    // The registry lock is a `std` lock held only to clone or swap an `Arc`,
    // never across an await. A poisoned lock still holds a consistent map
    // (every write is a single insert), so it is used as is.
    fn read_providers(
        &self,
    ) -> std::sync::RwLockReadGuard<'_, HashMap<String, Arc<LoadedProvider>>> {
        self.providers.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write_providers(
        &self,
    ) -> std::sync::RwLockWriteGuard<'_, HashMap<String, Arc<LoadedProvider>>> {
        self.providers.write().unwrap_or_else(|e| e.into_inner())
    }
}

impl LoadedProvider {
    pub fn info(&self) -> ProviderInfo {
        ProviderInfo {
            name: self.descriptor.name.clone(),
            version: self.descriptor.version.clone(),
            sha256: self.sha256.clone(),
            file: self.path.display().to_string(),
            hosts: self.descriptor.hosts.clone(),
        }
    }
}

fn check_descriptor(d: &Descriptor) -> Result<(), String> {
    let name_ok = !d.name.is_empty()
        && d.name.len() <= 64
        && d.name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !name_ok {
        return Err(format!(
            "name {:?} must be 1-64 lower case letters, digits and -",
            d.name
        ));
    }
    if d.version.is_empty() || d.version.len() > 64 {
        return Err("version must be 1-64 characters".into());
    }
    Ok(())
}

/// Advances the engine's epoch every [`EPOCH_TICK`] for as long as the
/// engine lives. A plain thread: it must keep ticking even when every async
/// worker is busy running guests.
fn spawn_epoch_ticker(engine: &Engine) {
    let weak = engine.weak();
    let spawned = std::thread::Builder::new()
        .name("chirp-epoch".into())
        .spawn(move || {
            while let Some(engine) = weak.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(EPOCH_TICK);
            }
        });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "cannot start the epoch ticker; plugin deadlines will not fire");
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
