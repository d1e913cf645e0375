//! Hot reload: watches the plugins directory and brings the registry in
//! line with it when files change.
//!
//! Editors and `cp` write a file in several steps (truncate, write, write,
//! close; or write a temporary file and rename it over), and each step is an
//! event. The watcher waits until a file has been quiet for [`QUIET`] before
//! loading it, so it loads the finished file once. Loading happens on this
//! task, never on a request's.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use tokio::sync::{mpsc, watch};

use super::{Plugins, Sync, is_plugin_file};

/// How long a file must be left alone before it is loaded.
pub const QUIET: Duration = Duration::from_millis(200);

/// Watches `dir` until `shutdown` turns true. Returns an error only if the
/// directory cannot be watched at all.
pub fn spawn(
    plugins: Arc<Plugins>,
    dir: &Path,
    mut shutdown: watch::Receiver<bool>,
) -> notify::Result<tokio::task::JoinHandle<()>> {
    let (tx, mut rx) = mpsc::unbounded_channel::<PathBuf>();
    let mut watcher =
        notify::recommended_watcher(move |event: notify::Result<notify::Event>| match event {
            Ok(event) => {
                for path in event.paths.into_iter().filter(|p| is_plugin_file(p)) {
                    let _ = tx.send(path);
                }
            }
            Err(e) => tracing::warn!(error = %e, "plugin directory watch error"),
        })?;
    watcher.watch(dir, RecursiveMode::NonRecursive)?;
    let dir = dir.to_path_buf();
    Ok(tokio::spawn(async move {
        // The watcher stops when dropped: it lives as long as this task.
        let _watcher = watcher;
        let mut pending = BTreeSet::new();
        loop {
            let next = if pending.is_empty() {
                tokio::select! {
                    path = rx.recv() => path,
                    _ = shutdown.changed() => None,
                }
            } else {
                tokio::select! {
                    path = rx.recv() => path,
                    _ = tokio::time::sleep(QUIET) => {
                        reload(&plugins, std::mem::take(&mut pending)).await;
                        continue;
                    }
                    _ = shutdown.changed() => None,
                }
            };
            match next {
                Some(path) => {
                    pending.insert(path);
                }
                None => break,
            }
        }
        tracing::debug!(dir = %dir.display(), "plugin watcher stopped");
    }))
}

/// Loads or unloads each settled file. Removals go first, so a plugin
/// renamed from one file to another is not refused as a duplicate.
async fn reload(plugins: &Plugins, paths: BTreeSet<PathBuf>) {
    let (gone, present): (Vec<_>, Vec<_>) = paths.into_iter().partition(|p| !p.exists());
    for path in gone.into_iter().chain(present) {
        match plugins.sync_file(&path).await {
            Ok(Sync::Loaded(meta)) => {
                tracing::info!(plugin = %meta.name, version = %meta.version, file = %path.display(), "plugin file change applied")
            }
            Ok(Sync::Unchanged | Sync::Removed(_)) => {}
            // Already logged and recorded by `sync_file`.
            Err(_) => {}
        }
    }
}
