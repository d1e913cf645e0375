//! The plugins directory as a source of untrusted files: which entries are
//! plugin files, and their bytes, read within bounds.
//!
//! A plugin file is a regular file named `<plugin>.wasm` (see
//! [`super::names::of_file`]), at most `CHIRP_PLUGIN_MAX_MB` large, or a
//! symlink to such a file inside the directory (deployment tools stage
//! files in a subdirectory and link them). A FIFO, a device, a directory or
//! a symlink leading out of the directory is refused: opening a FIFO would
//! block a thread until someone wrote to it, a device can be endless, and a
//! link out would let whoever can write the directory load any file chirp
//! can read. Files are opened non-blocking and without following a final
//! symlink, and checked on the opened file, so a swap between the check
//! and the read is caught too.

use std::io::Read as _;
use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// The default cap on one plugin file.
pub const DEFAULT_MAX_FILE_BYTES: u64 = 32 * 1024 * 1024;

/// The most plugin files chirp reads from its directory.
pub const MAX_FILES: usize = 64;

/// Why a file in the plugins directory was not read.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// A FIFO, device, socket or directory.
    #[error("not a regular file (a FIFO, device or directory is never read)")]
    NotRegular,
    /// A link whose target is outside the directory (named here).
    #[error("a symlink that leads out of the plugins directory, to {0}")]
    OutsideDirectory(PathBuf),
    /// Larger than `CHIRP_PLUGIN_MAX_MB`.
    #[error("{size} bytes, over the cap of {cap} bytes (CHIRP_PLUGIN_MAX_MB)")]
    TooLarge {
        /// The file's size.
        size: u64,
        /// The most chirp reads.
        cap: u64,
    },
    /// Opening or reading failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// What identifies one version of a file: if any of it changed between a
/// read and its use, the read is stale.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    inode: u64,
    length: u64,
    modified: Option<SystemTime>,
}

/// The `*.wasm` entries of `dir`, sorted, at most [`MAX_FILES`] of them
/// (with how many more there were).
pub async fn list(dir: &Path) -> std::io::Result<(Vec<PathBuf>, usize)> {
    let dir = dir.to_path_buf();
    blocking(move || {
        let mut found: Vec<PathBuf> = std::fs::read_dir(&dir)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| is_plugin_file(p))
            .collect();
        found.sort();
        let beyond = found.len().saturating_sub(MAX_FILES);
        found.truncate(MAX_FILES);
        Ok((found, beyond))
    })
    .await
}

/// Whether a path names a plugin file (by its extension; its name is
/// checked when it is loaded).
pub fn is_plugin_file(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "wasm")
}

/// The bytes of plugin file `path`, at most `cap` of them, and the stamp
/// of what was read; `None` if the file is gone.
pub async fn read(path: &Path, cap: u64) -> Result<Option<(Vec<u8>, Stamp)>, FileError> {
    let path = path.to_path_buf();
    blocking(move || {
        let Some(target) = resolve(&path)? else {
            return Ok(None);
        };
        let Some((mut file, meta)) = open_regular(&target)? else {
            return Ok(None);
        };
        if meta.len() > cap {
            return Err(FileError::TooLarge {
                size: meta.len(),
                cap,
            });
        }
        let mut bytes = Vec::with_capacity(meta.len() as usize);
        (&mut file).take(cap + 1).read_to_end(&mut bytes)?;
        if bytes.len() as u64 > cap {
            return Err(FileError::TooLarge {
                size: bytes.len() as u64,
                cap,
            });
        }
        Ok(Some((bytes, stamp(&meta))))
    })
    .await
}

/// Opens `path` for reading if it is a regular file: without following a
/// final symlink, without blocking (a FIFO would hold the thread until a
/// writer came), and checked on the opened file, so a swap between a
/// check and the open is caught. `None` if there is no such file. Every
/// file chirp reads from a directory others might write (plugins, the
/// compile cache and its key) is opened this way.
pub fn open_regular(path: &Path) -> Result<Option<(std::fs::File, std::fs::Metadata)>, FileError> {
    let file = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
    {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(FileError::NotRegular);
    }
    Ok(Some((file, meta)))
}

/// The stamp of `path` as it is now, without reading it; `None` if gone.
pub async fn current_stamp(path: &Path) -> Result<Option<Stamp>, FileError> {
    let path = path.to_path_buf();
    blocking(move || {
        let Some(target) = resolve(&path)? else {
            return Ok(None);
        };
        match std::fs::symlink_metadata(&target) {
            Ok(meta) => Ok(Some(stamp(&meta))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    })
    .await
}

/// The file `path` stands for: itself, or for a symlink the file it
/// leads to, which must lie inside `path`'s directory.
fn resolve(path: &Path) -> Result<Option<PathBuf>, FileError> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    if !meta.file_type().is_symlink() {
        return Ok(Some(path.to_path_buf()));
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    let root = std::fs::canonicalize(if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    })?;
    let real = match std::fs::canonicalize(path) {
        Ok(real) => real,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    if !real.starts_with(&root) {
        return Err(FileError::OutsideDirectory(real));
    }
    Ok(Some(real))
}

fn stamp(meta: &std::fs::Metadata) -> Stamp {
    Stamp {
        inode: meta.ino(),
        length: meta.len(),
        modified: meta.modified().ok(),
    }
}

/// Runs file work on tokio's blocking pool, never on an async worker.
async fn blocking<T: Send + 'static, E: From<std::io::Error> + Send + 'static>(
    work: impl FnOnce() -> Result<T, E> + Send + 'static,
) -> Result<T, E> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(std::io::Error::other)?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_regular_file_is_read_within_its_cap() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("p.wasm");
        std::fs::write(&file, b"0123456789").unwrap();
        let (bytes, _) = read(&file, 10).await.unwrap().unwrap();
        assert_eq!(bytes, b"0123456789");
        assert!(matches!(
            read(&file, 9).await,
            Err(FileError::TooLarge { size: 10, cap: 9 })
        ));
        assert!(matches!(
            read(&dir.path().join("gone.wasm"), 10).await,
            Ok(None)
        ));
    }

    /// A FIFO named like a plugin: opening it for reading the ordinary way
    /// blocks until a writer comes (a thread of the blocking pool held for
    /// good); chirp refuses it at once.
    #[tokio::test]
    async fn a_fifo_or_a_directory_is_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo.wasm");
        let c_path = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path; mkfifo only creates a node.
        assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
        let refused = tokio::time::timeout(std::time::Duration::from_secs(5), read(&fifo, 1024))
            .await
            .expect("reading a FIFO blocked");
        assert!(matches!(refused, Err(FileError::NotRegular)), "{refused:?}");

        let sub = dir.path().join("sub.wasm");
        std::fs::create_dir(&sub).unwrap();
        assert!(matches!(read(&sub, 1024).await, Err(FileError::NotRegular)));
    }

    #[tokio::test]
    async fn a_symlink_may_lead_inside_the_directory_only() {
        let outside = tempfile::tempdir().unwrap();
        let secret = outside.path().join("secret.wasm");
        std::fs::write(&secret, b"not for plugins").unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("..data")).unwrap();
        let staged = dir.path().join("..data/p.wasm");
        std::fs::write(&staged, b"staged").unwrap();

        let inside = dir.path().join("p.wasm");
        std::os::unix::fs::symlink(&staged, &inside).unwrap();
        assert_eq!(read(&inside, 1024).await.unwrap().unwrap().0, b"staged");

        let out = dir.path().join("q.wasm");
        std::os::unix::fs::symlink(&secret, &out).unwrap();
        assert!(matches!(
            read(&out, 1024).await,
            Err(FileError::OutsideDirectory(_))
        ));
        let dots = dir.path().join("r.wasm");
        std::os::unix::fs::symlink("../../../../../../../etc/hostname", &dots).unwrap();
        assert!(!matches!(read(&dots, 1024).await, Ok(Some(_))));
    }

    #[tokio::test]
    async fn the_listing_is_capped() {
        let dir = tempfile::tempdir().unwrap();
        for n in 0..MAX_FILES + 3 {
            std::fs::write(dir.path().join(format!("p{n:03}.wasm")), b"x").unwrap();
        }
        std::fs::write(dir.path().join("notes.txt"), b"x").unwrap();
        let (files, beyond) = list(dir.path()).await.unwrap();
        assert_eq!((files.len(), beyond), (MAX_FILES, 3));
    }
}
