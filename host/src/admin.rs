//! The operator's commands on a store: `chirp backup FILE` asks the chirp
//! that runs on the configuration's address for a consistent copy of its
//! embedded store (`GET /api/backup`, with a token minted from the
//! configured secret) and writes it to FILE whole or not at all;
//! `chirp restore FILE` brings a copy back into the configured store,
//! which must be new, while chirp is stopped; `chirp import` brings the
//! old system's settings and template states in ([`crate::import`]).

use std::io::Write as _;
use std::path::Path;
use std::time::Duration;

use crate::api::{Role, TokenRequest, mint_token};
use crate::config::Config;
use crate::preferences::Preferences;
use crate::store::{Store, StoreError};

/// Why a backup or restore did not happen.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// No token could be minted to ask for the backup.
    #[error("cannot make a token for the backup: {0}")]
    Token(#[from] crate::api::MintError),
    /// The running chirp could not be asked, or did not answer whole.
    #[error("cannot get the backup from {url}: {source}")]
    Request {
        /// Where it was asked.
        url: String,
        /// Why.
        source: reqwest::Error,
    },
    /// The running chirp refused.
    #[error("{url} answered {status}: {body}")]
    Refused {
        /// Where it was asked.
        url: String,
        /// Its status.
        status: u16,
        /// Its answer.
        body: String,
    },
    /// The file could not be written.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The store refused the restore or the import.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// An export or mapping file could not be read.
    #[error("cannot read {path}: {reason}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// The export is not one.
    #[error(transparent)]
    Import(#[from] crate::import::ImportError),
}

/// What `chirp import` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportKind {
    /// `notification_settings`: recipients' preferences.
    Settings,
    /// `notification_templates`: templates' enabled states.
    Templates,
}

/// Imports the export in `file` into the store `config` names (chirp
/// stopped, for an embedded store); `mapping`, a TOML file, says which
/// field holds what. Returns the report: what was imported, unchanged and
/// skipped, and why.
pub async fn import(
    config: &Config,
    kind: ImportKind,
    file: &Path,
    mapping: Option<&Path>,
) -> Result<String, AdminError> {
    use std::fmt::Write as _;
    let read = |path: &Path| -> Result<String, AdminError> {
        let fail = |reason: String| AdminError::Read {
            path: path.display().to_string(),
            reason,
        };
        let size = std::fs::metadata(path)
            .map_err(|e| fail(e.to_string()))?
            .len();
        if size > crate::import::MAX_EXPORT_BYTES {
            return Err(fail(format!(
                "{size} bytes, over the {} chirp reads",
                crate::import::MAX_EXPORT_BYTES
            )));
        }
        std::fs::read_to_string(path).map_err(|e| fail(e.to_string()))
    };
    let mapping: crate::import::Mapping = match mapping {
        None => crate::import::Mapping::default(),
        Some(path) => toml::from_str(&read(path)?).map_err(|e| AdminError::Read {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?,
    };
    let documents = crate::import::documents(&read(file)?)?;
    let store = Store::open(&config.store.url, &config.store.server, config.store.memory).await?;
    let (mut imported, mut unchanged) = (0, 0);
    let skipped = match kind {
        ImportKind::Settings => {
            let (read, skipped) = crate::import::settings(&documents, &mapping.settings);
            // What is saved already, read a thousand phones a query.
            let phones: Vec<String> = read.keys().cloned().collect();
            let mut saved = std::collections::HashMap::new();
            for chunk in phones.chunks(1_000) {
                saved.extend(store.saved_preferences(chunk).await?);
            }
            for (phone, mut prefs) in read {
                let current = saved.get(&phone);
                // Consent recorded in chirp stays; the old system had none.
                prefs.opt_in = current.and_then(|c| c.opt_in.clone());
                let same = current.is_some_and(|c| {
                    Preferences {
                        updated_at: None,
                        ..c.clone()
                    } == prefs
                });
                if same {
                    unchanged += 1;
                } else {
                    store.save_preferences(prefs).await?;
                    imported += 1;
                }
            }
            skipped
        }
        ImportKind::Templates => {
            let (states, mut skipped) = crate::import::templates(&documents, &mapping.templates);
            let stored = store.templates().await?;
            for (name, enabled) in states {
                match stored.iter().find(|t| t.name == name) {
                    None => skipped.push(crate::import::Skip {
                        at: 0,
                        reason: format!(
                            "no template {name:?} in this store (start chirp once to seed it)"
                        ),
                    }),
                    Some(def) if def.enabled == enabled => unchanged += 1,
                    Some(def) => {
                        let next = crate::templates::TemplateDef {
                            enabled,
                            ..def.clone()
                        };
                        store.save_template(&next, def.version).await?;
                        imported += 1;
                    }
                }
            }
            skipped
        }
    };
    store.close().await?;
    let mut report = format!(
        "{imported} imported, {unchanged} unchanged, {} skipped\n",
        skipped.len()
    );
    for skip in &skipped {
        let _ = writeln!(report, "  skipped #{}: {}", skip.at, skip.reason);
    }
    Ok(report)
}

/// Writes a backup of the chirp running under `config` to `file`; returns
/// its size in bytes.
pub async fn backup(config: &Config, file: &Path) -> Result<u64, AdminError> {
    let token = mint_token(
        &config.auth,
        &TokenRequest {
            role: Role::Admin,
            subject: "chirp-backup".into(),
            phone: None,
            ttl: Duration::from_secs(3600),
        },
    )?;
    let mut addr = config.api.listen;
    if addr.ip().is_unspecified() {
        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    let url = format!("http://{addr}/api/backup");
    let request_error = |source| AdminError::Request {
        url: url.clone(),
        source,
    };
    let mut response = reqwest::Client::new()
        .get(&url)
        .bearer_auth(token)
        .send()
        .await
        .map_err(request_error)?;
    if !response.status().is_success() {
        return Err(AdminError::Refused {
            url: url.clone(),
            status: response.status().as_u16(),
            body: response.text().await.unwrap_or_default(),
        });
    }
    let write_error = |source| AdminError::Write {
        path: file.display().to_string(),
        source,
    };
    // Written beside the file and renamed over it once whole and synced.
    let mut partial = file.as_os_str().to_owned();
    partial.push(".partial");
    let partial = std::path::PathBuf::from(partial);
    let mut out = std::fs::File::create(&partial).map_err(write_error)?;
    let mut size = 0;
    while let Some(chunk) = response.chunk().await.map_err(request_error)? {
        out.write_all(&chunk).map_err(write_error)?;
        size += chunk.len() as u64;
    }
    out.sync_all().map_err(write_error)?;
    std::fs::rename(&partial, file).map_err(write_error)?;
    Ok(size)
}

/// Restores the backup in `file` into the store `config` names.
pub async fn restore(config: &Config, file: &Path) -> Result<(), AdminError> {
    Ok(Store::restore(&config.store.url, config.store.memory, file).await?)
}
