//! A secret key kept in a file outside the store, made on first use:
//! 32 random bytes, owner-only. The plugin compile cache proves its files
//! with one; erasure records name an erased phone by a keyed hash made with
//! another, so that a copy of the store alone cannot tell which phones
//! were erased.

use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use crate::plugins::files::open_regular;

/// The length of every key.
pub const KEY_BYTES: usize = 32;

/// The key in `path`, or a new random one written there with owner-only
/// permissions. An existing key must be a regular file of this user that
/// no one else may read or write.
pub fn read_or_create(path: &Path) -> Result<[u8; KEY_BYTES], String> {
    match open_regular(path).map_err(|e| e.to_string())? {
        Some((mut file, meta)) => {
            // SAFETY: geteuid has no preconditions and cannot fail.
            let me = unsafe { libc::geteuid() };
            if meta.uid() != me {
                return Err(format!(
                    "owned by user {}, not by chirp's ({me})",
                    meta.uid()
                ));
            }
            if meta.permissions().mode() & 0o077 != 0 {
                return Err(format!(
                    "its permissions are {:o}; only its owner may read or write it (chmod 600)",
                    meta.permissions().mode() & 0o777
                ));
            }
            let mut key = [0u8; KEY_BYTES];
            let mut rest = Vec::new();
            file.read_exact(&mut key)
                .and_then(|()| file.read_to_end(&mut rest))
                .map_err(|e| format!("{e}; expected {KEY_BYTES} bytes"))?;
            if !rest.is_empty() {
                return Err(format!("expected {KEY_BYTES} bytes"));
            }
            Ok(key)
        }
        None => {
            let mut key = [0u8; KEY_BYTES];
            std::fs::File::open("/dev/urandom")
                .and_then(|mut random| random.read_exact(&mut key))
                .map_err(|e| format!("cannot read /dev/urandom: {e}"))?;
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent).map_err(|e| e.to_string())?;
            }
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
                .map_err(|e| e.to_string())?;
            file.write_all(&key)
                .and_then(|()| file.sync_all())
                .map_err(|e| e.to_string())?;
            Ok(key)
        }
    }
}
