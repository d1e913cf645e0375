//! The compile cache: machine code of compiled plugins on disk, so that a
//! restart with unchanged plugins does not recompile them.
//!
//! A cache file is native code that chirp maps and runs, so chirp loads only
//! files it wrote itself and can prove unchanged: each file carries an
//! HMAC-SHA256 over its contents, the engine it was compiled for and the
//! sha256 of the plugin it was compiled from, under a key kept outside the
//! cache directory (`CHIRP_PLUGIN_CACHE_KEY`, by default the cache
//! directory's name plus `.key`), created with owner-only permissions. A
//! file that fails the check (tampered with, copied from another plugin,
//! written under another key) is refused with a log line and compiled
//! again, never run. The file is read into memory once, checked, and
//! loaded from those bytes, so it cannot change between check and load.
//!
//! A key file that others may read or write, or that another user owns,
//! is not used: chirp then runs without the cache and says so.

use std::io::{Read as _, Write as _};
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use wasmtime::Engine;
use wasmtime::component::Component;

use super::files::{FileError, open_regular};

/// The first bytes of every cache file chirp writes.
const MAGIC: &[u8] = b"chirp-compiled-plugin-1\n";
/// Length of the key and of the tag.
use crate::keyfile::KEY_BYTES;
/// The largest cache file chirp reads.
const MAX_CACHE_FILE_BYTES: u64 = 1024 * 1024 * 1024;

/// Why the cache cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// The key file cannot be read, made, or trusted.
    #[error("cannot use the cache key {path}: {reason}")]
    Key {
        /// The key file.
        path: PathBuf,
        /// Why not.
        reason: String,
    },
}

/// Where compiled plugins are kept, and the key that proves them.
#[derive(Clone)]
pub struct Cache {
    dir: PathBuf,
    key: Arc<[u8; KEY_BYTES]>,
}

impl Cache {
    /// The cache in `dir`, proven with the key in `key_file` (created if
    /// missing).
    pub fn open(dir: &Path, key_file: &Path) -> Result<Cache, CacheError> {
        let key = crate::keyfile::read_or_create(key_file).map_err(|reason| CacheError::Key {
            path: key_file.into(),
            reason,
        })?;
        Ok(Cache {
            dir: dir.into(),
            key: Arc::new(key),
        })
    }

    /// The default key file of cache directory `dir`: beside it, named
    /// after it (`data/plugin-cache` -> `data/plugin-cache.key`).
    pub fn default_key_file(dir: &Path) -> PathBuf {
        let mut name = dir.as_os_str().to_owned();
        name.push(".key");
        PathBuf::from(name)
    }

    fn path(&self, engine_key: &str, sha256: &str) -> PathBuf {
        self.dir.join(format!("{sha256}-{engine_key}.cwasm"))
    }

    /// The tag of a cache file's `payload` for plugin `sha256` compiled by
    /// engine `engine_key`.
    fn tag(&self, engine_key: &str, sha256: &str, payload: &[u8]) -> Hmac<Sha256> {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.key[..])
            .unwrap_or_else(|_| unreachable!("HMAC takes a key of any length"));
        mac.update(MAGIC);
        mac.update(engine_key.as_bytes());
        mac.update(&[0]);
        mac.update(sha256.as_bytes());
        mac.update(&[0]);
        mac.update(payload);
        mac
    }

    /// The cached component for plugin `sha256`, if a cache file for it
    /// exists and proves to be chirp's own, unchanged.
    pub fn load(&self, engine: &Engine, engine_key: &str, sha256: &str) -> Option<Component> {
        let path = self.path(engine_key, sha256);
        let bytes = match read_bounded(&path) {
            Ok(Some(bytes)) => bytes,
            Ok(None) => return None,
            Err(e) => {
                tracing::warn!(file = %path.display(), error = %e, "cannot read the compile cache file; compiling");
                return None;
            }
        };
        let verified = bytes
            .strip_prefix(MAGIC)
            .filter(|rest| rest.len() >= KEY_BYTES)
            .map(|rest| rest.split_at(KEY_BYTES))
            .filter(|(tag, payload)| {
                self.tag(engine_key, sha256, payload)
                    .verify_slice(tag)
                    .is_ok()
            })
            .map(|(_, payload)| payload);
        let Some(payload) = verified else {
            tracing::error!(
                file = %path.display(),
                "a compile cache file failed its integrity check (changed since chirp wrote it, or not written by this chirp); it is not loaded, and the plugin is compiled again"
            );
            let _ = std::fs::remove_file(&path);
            return None;
        };
        // SAFETY: `payload` is what `Component::serialize` produced for an
        // engine with this compatibility hash (both are under the tag, which
        // only a holder of the key can make), and it was read into memory
        // before it was checked, so it cannot have changed since.
        match unsafe { Component::deserialize(engine, payload) } {
            Ok(component) => Some(component),
            Err(e) => {
                tracing::warn!(file = %path.display(), error = %format!("{e:#}"), "unusable cache entry; recompiling");
                let _ = std::fs::remove_file(&path);
                None
            }
        }
    }

    /// Writes `component`, compiled from plugin `sha256`, to the cache.
    /// A failure is logged: the cache only saves time.
    pub fn store(&self, component: &Component, engine_key: &str, sha256: &str) {
        if let Err(e) = self.try_store(component, engine_key, sha256) {
            tracing::warn!(dir = %self.dir.display(), error = %e, "cannot cache the compiled plugin");
        }
    }

    fn try_store(
        &self,
        component: &Component,
        engine_key: &str,
        sha256: &str,
    ) -> Result<(), String> {
        let payload = component.serialize().map_err(|e| format!("{e:#}"))?;
        let tag = self
            .tag(engine_key, sha256, &payload)
            .finalize()
            .into_bytes();
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)
            .map_err(|e| e.to_string())?;
        let path = self.path(engine_key, sha256);
        // Write then rename, so a crash never leaves half a file under the
        // final name.
        let partial = path.with_extension(format!("partial-{}", std::process::id()));
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&partial)
            .map_err(|e| e.to_string())?;
        file.write_all(MAGIC)
            .and_then(|()| file.write_all(&tag))
            .and_then(|()| file.write_all(&payload))
            .map_err(|e| e.to_string())?;
        std::fs::rename(&partial, &path).map_err(|e| e.to_string())
    }
}

/// A cache file's bytes, `None` if there is none.
fn read_bounded(path: &Path) -> Result<Option<Vec<u8>>, FileError> {
    let Some((file, _)) = open_regular(path)? else {
        return Ok(None);
    };
    let mut bytes = Vec::new();
    file.take(MAX_CACHE_FILE_BYTES).read_to_end(&mut bytes)?;
    Ok(Some(bytes))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    fn engine() -> Engine {
        let mut config = wasmtime::Config::new();
        config.wasm_component_model(true);
        Engine::new(&config).unwrap()
    }

    /// A component that exports a function answering `n`.
    fn component(n: u32) -> Vec<u8> {
        wat::parse_str(format!(
            r#"(component
                (core module $m (func (export "f") (result i32) i32.const {n}))
                (core instance $i (instantiate $m))
                (func (export "f") (result u32) (canon lift (core func $i "f"))))"#
        ))
        .unwrap()
    }

    fn answer(engine: &Engine, component: &Component) -> u32 {
        let mut store = wasmtime::Store::new(engine, ());
        let linker = wasmtime::component::Linker::new(engine);
        let instance = linker.instantiate(&mut store, component).unwrap();
        let f = instance
            .get_typed_func::<(), (u32,)>(&mut store, "f")
            .unwrap();
        f.call(&mut store, ()).unwrap().0
    }

    #[test]
    fn a_file_chirp_wrote_is_loaded_and_a_changed_one_never_is() {
        let dir = tempfile::tempdir().unwrap();
        let cache_dir = dir.path().join("cache");
        let cache = Cache::open(&cache_dir, &Cache::default_key_file(&cache_dir)).unwrap();
        let engine = engine();
        let one = Component::new(&engine, component(1)).unwrap();
        cache.store(&one, "e", "sha-one");
        let loaded = cache.load(&engine, "e", "sha-one").expect("cached");
        assert_eq!(answer(&engine, &loaded), 1);

        // One byte changed in the machine code.
        let path = cache.path("e", "sha-one");
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        assert!(cache.load(&engine, "e", "sha-one").is_none());
        assert!(!path.exists(), "the tampered file is removed");
    }

    /// The attack: another component's genuine machine code put under the
    /// name of the plugin being loaded. Without the tag (checked once with
    /// `load` reading the payload unverified) chirp ran component 2 for
    /// plugin one; with it, the file is refused.
    #[test]
    fn another_plugins_code_under_this_plugins_name_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let cache_dir = dir.path().join("cache");
        let cache = Cache::open(&cache_dir, &Cache::default_key_file(&cache_dir)).unwrap();
        let engine = engine();
        let two = Component::new(&engine, component(2)).unwrap();
        cache.store(&two, "e", "sha-two");
        std::fs::copy(cache.path("e", "sha-two"), cache.path("e", "sha-one")).unwrap();
        assert!(cache.load(&engine, "e", "sha-one").is_none());

        // Nor is a file written under another key.
        let elsewhere = tempfile::tempdir().unwrap();
        let other = Cache::open(&cache_dir, &elsewhere.path().join("other.key")).unwrap();
        other.store(&two, "e", "sha-three");
        assert!(cache.load(&engine, "e", "sha-three").is_none());
    }

    #[test]
    fn a_key_others_may_read_is_not_used() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("cache.key");
        Cache::open(&dir.path().join("cache"), &key).unwrap();
        let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = Cache::open(&dir.path().join("cache"), &key).err().unwrap();
        assert!(err.to_string().contains("644"), "{err}");
        std::fs::write(&key, b"short").unwrap();
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(Cache::open(&dir.path().join("cache"), &key).is_err());
    }
}
