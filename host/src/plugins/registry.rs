//! The registry: which file serves which plugin, what was refused and why,
//! and the plugins loaded under each name; installing a loaded plugin (an
//! atomic swap), unloading one, and the views of it.
//!
//! **Invariant:** a file that would change the name or world its file
//! serves, or take a name another file serves, never replaces the version
//! serving.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use super::{LoadError, Loaded, LoadedProvider, LoadedRules, Meta, Plugins, World, files};

/// A file that was offered and refused.
#[derive(Debug, Clone)]
pub struct Rejection {
    /// The refused content's sha256.
    pub sha256: String,
    /// Why it was refused.
    pub error: String,
    /// When.
    pub at: SystemTime,
}

/// What the registry knows of one file in the plugins directory.
#[derive(Debug, Clone, Default)]
pub(super) struct FileEntry {
    /// The plugin this file is serving, if any.
    pub(super) active: Option<Meta>,
    /// The last version of the file that was refused, if it is the
    /// file's current content.
    pub(super) rejected: Option<Rejection>,
}

/// One file of the plugins directory and what became of it.
#[derive(Debug, Clone)]
pub struct PluginFile {
    /// The file.
    pub file: PathBuf,
    /// The plugin this file serves, if any.
    pub active: Option<Meta>,
    /// Its current content, if that was refused.
    pub rejected: Option<Rejection>,
}

/// Files -> their state; names -> the plugin loaded under it.
#[derive(Default)]
pub(super) struct Registry {
    pub(super) files: BTreeMap<PathBuf, FileEntry>,
    pub(super) providers: HashMap<String, Arc<LoadedProvider>>,
    pub(super) rules: HashMap<String, Arc<LoadedRules>>,
}

impl Plugins {
    /// Records that `path`'s content `sha256` was refused. The registry
    /// holds at most [`files::MAX_FILES`] files: a refusal of one more new
    /// file is logged only.
    pub(super) fn record_rejection(&self, path: &Path, sha256: String, error: &LoadError) {
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
    pub(super) fn install(&self, path: &Path, loaded: Loaded) -> Result<Meta, LoadError> {
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
    pub(super) fn unload(&self, path: &Path) -> Option<String> {
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

    /// What the operator granted loaded plugin `name` (a provider's or a
    /// rules plugin's), settings left out: hosts, private addresses, and
    /// limits.
    pub fn grant_of(&self, name: &str) -> Option<(Vec<String>, bool, super::limits::Limits)> {
        let registry = self.read();
        let grant = registry
            .providers
            .get(name)
            .map(|p| p.grant.clone())
            .or_else(|| registry.rules.get(name).map(|r| r.grant.clone()))?;
        Some((
            grant.hosts.clone(),
            grant.allow_private,
            grant.limits.clone(),
        ))
    }

    /// The names of the loaded providers, sorted.
    pub fn provider_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.read().providers.keys().cloned().collect();
        names.sort();
        names
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
    pub fn files(&self) -> Vec<PluginFile> {
        self.read()
            .files
            .iter()
            .map(|(file, entry)| PluginFile {
                file: file.clone(),
                active: entry.active.clone(),
                rejected: entry.rejected.clone(),
            })
            .collect()
    }

    // The registry lock is a `std` lock held only to read or swap entries,
    // never across an await. A poisoned lock still holds a consistent map
    // (no write panics half-way), so it is used as is.
    pub(super) fn read(&self) -> std::sync::RwLockReadGuard<'_, Registry> {
        self.registry.read().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn write(&self) -> std::sync::RwLockWriteGuard<'_, Registry> {
        self.registry.write().unwrap_or_else(|e| e.into_inner())
    }
}
