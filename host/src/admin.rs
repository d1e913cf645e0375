//! The operator's commands on a store: `chirp backup FILE` asks the chirp
//! that runs on the configuration's address for a consistent copy of its
//! embedded store (`GET /api/backup`, with a token minted from the
//! configured secret) and writes it to FILE whole or not at all;
//! `chirp restore FILE` brings a copy back into the configured store,
//! which must be new, while chirp is stopped.

use std::io::Write as _;
use std::path::Path;
use std::time::Duration;

use crate::api::{Role, TokenRequest, mint_token};
use crate::config::Config;
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
    /// The store refused the restore.
    #[error(transparent)]
    Store(#[from] StoreError),
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
