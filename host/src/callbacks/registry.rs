//! The callback endpoints in force: read from the store at start, changed
//! by admins through the API (each change stored first, then swapped in
//! whole), and read on every accepted message (which endpoints it
//! reports to) and every post (where, and with which secrets).
//!
//! The operator grants, the admin chooses: an endpoint's URL must name one
//! of the operator's `CHIRP_CALLBACK_HOSTS`, over `https` to a public
//! address unless the operator allowed private ones.

use std::sync::{Arc, RwLock};

use super::signature::{self, BadSecret};
use super::{Endpoint, Scope, Secret};
use crate::config::CallbacksConfig;
use crate::message::Millis;
use crate::plugins::network::{authority, is_public, literal_ip};
use crate::store::{Store, StoreError};

/// The most endpoints registered at once.
pub const MAX_ENDPOINTS: usize = 50;
/// The longest URL an endpoint may have.
pub const MAX_URL_BYTES: usize = 2048;

/// Why an endpoint cannot be registered or changed.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// Its URL is not one the operator allowed.
    #[error("{0}")]
    Url(String),
    /// The secret given is not a Standard Webhooks secret.
    #[error(transparent)]
    Secret(#[from] BadSecret),
    /// There are [`MAX_ENDPOINTS`] already.
    #[error("at most {MAX_ENDPOINTS} callback endpoints can be registered; remove one first")]
    TooMany,
    /// No random bytes for a secret.
    #[error("cannot make a secret: {0}")]
    Random(String),
    /// The store failed; nothing changed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The endpoints in force.
pub struct Registry {
    endpoints: RwLock<Arc<Vec<Endpoint>>>,
    config: CallbacksConfig,
    store: Store,
}

impl Registry {
    /// The endpoints the store holds.
    pub async fn load(store: Store, config: CallbacksConfig) -> Result<Registry, StoreError> {
        let endpoints = store.callback_endpoints().await?;
        Ok(Registry {
            endpoints: RwLock::new(Arc::new(endpoints)),
            config,
            store,
        })
    }

    /// The operator's settings.
    pub fn config(&self) -> &CallbacksConfig {
        &self.config
    }

    /// Every endpoint, oldest first.
    pub fn list(&self) -> Arc<Vec<Endpoint>> {
        match self.endpoints.read() {
            Ok(list) => list.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Endpoint `id`, if registered.
    pub fn get(&self, id: &str) -> Option<Endpoint> {
        self.list().iter().find(|e| e.id == id).cloned()
    }

    /// The endpoints a message reports to: every one of scope `all`, and
    /// `named` (which the caller checked exists).
    pub fn targets(&self, named: Option<&str>) -> Vec<String> {
        let list = self.list();
        let mut targets: Vec<String> = list
            .iter()
            .filter(|e| e.scope == Scope::All || Some(e.id.as_str()) == named)
            .map(|e| e.id.clone())
            .collect();
        if let Some(named) = named
            && !targets.iter().any(|t| t == named)
            && list.iter().any(|e| e.id == named)
        {
            targets.push(named.to_string());
        }
        targets
    }

    /// Registers an endpoint; with no `secret`, chirp makes one.
    pub async fn register(
        &self,
        url: &str,
        scope: Scope,
        description: Option<String>,
        secret: Option<String>,
        by: &str,
        now: Millis,
    ) -> Result<Endpoint, RegistryError> {
        self.check_url(url)?;
        if self.list().len() >= MAX_ENDPOINTS {
            return Err(RegistryError::TooMany);
        }
        let secret = match secret {
            Some(given) => {
                signature::key_of(&given)?;
                given
            }
            None => signature::new_secret().map_err(|e| RegistryError::Random(e.to_string()))?,
        };
        let endpoint = Endpoint {
            id: ulid::Ulid::new().to_string(),
            url: url.to_string(),
            scope,
            secrets: vec![Secret {
                value: secret,
                until: None,
            }],
            description,
            created_at: now,
            created_by: by.to_string(),
        };
        self.store.save_callback_endpoint(&endpoint).await?;
        self.swap(|list| list.push(endpoint.clone()));
        Ok(endpoint)
    }

    /// Removes endpoint `id`; its callbacks still waiting are dropped when
    /// their turn comes. Returns whether it existed.
    pub async fn remove(&self, id: &str) -> Result<bool, RegistryError> {
        let removed = self.store.remove_callback_endpoint(id).await?;
        self.swap(|list| list.retain(|e| e.id != id));
        Ok(removed)
    }

    /// A new secret for endpoint `id`; the ones before it keep signing for
    /// the operator's overlap, and those past it are forgotten. Returns the
    /// endpoint afterwards, or `None` if there is no such endpoint.
    pub async fn rotate(&self, id: &str, now: Millis) -> Result<Option<Endpoint>, RegistryError> {
        let Some(mut endpoint) = self.get(id) else {
            return Ok(None);
        };
        let overlap_ends = now.saturating_add(self.config.secret_overlap.as_millis() as i64);
        let mut secrets = vec![Secret {
            value: signature::new_secret().map_err(|e| RegistryError::Random(e.to_string()))?,
            until: None,
        }];
        secrets.extend(
            endpoint
                .secrets
                .into_iter()
                .map(|s| Secret {
                    until: Some(s.until.unwrap_or(overlap_ends).min(overlap_ends)),
                    ..s
                })
                .filter(|s| s.until.is_some_and(|until| until > now))
                .take(4),
        );
        endpoint.secrets = secrets;
        self.store.save_callback_endpoint(&endpoint).await?;
        let changed = endpoint.clone();
        self.swap(|list| {
            if let Some(slot) = list.iter_mut().find(|e| e.id == changed.id) {
                *slot = changed;
            }
        });
        Ok(Some(endpoint))
    }

    /// Checks that `url` is one the operator allows callbacks to.
    pub fn check_url(&self, url: &str) -> Result<reqwest::Url, RegistryError> {
        let refuse = |why: String| Err(RegistryError::Url(why));
        if url.len() > MAX_URL_BYTES {
            return refuse(format!("the URL is longer than {MAX_URL_BYTES} bytes"));
        }
        let parsed = reqwest::Url::parse(url)
            .map_err(|e| RegistryError::Url(format!("invalid URL: {e}")))?;
        match parsed.scheme() {
            "https" => {}
            "http" if self.config.allow_private => {}
            other => {
                return refuse(format!(
                    "scheme {other} is not allowed; callbacks go over https"
                ));
            }
        }
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return refuse("the URL carries user info; callbacks are signed instead".into());
        }
        if parsed.fragment().is_some() {
            return refuse("the URL has a fragment".into());
        }
        let authority =
            authority(&parsed).ok_or_else(|| RegistryError::Url("the URL has no host".into()))?;
        if !self.config.hosts.contains(&authority) {
            return refuse(format!(
                "{authority} is not among the hosts the operator allows callbacks to \
                 (CHIRP_CALLBACK_HOSTS)"
            ));
        }
        if let Some(ip) = literal_ip(&parsed)
            && !self.config.allow_private
            && !is_public(ip)
        {
            return refuse(format!("{ip} is not a public address"));
        }
        Ok(parsed)
    }

    /// The keys that sign a post to `endpoint` at `now`: its newest
    /// secret, and those rotated out less than the overlap ago.
    pub fn signing_keys(endpoint: &Endpoint, now: Millis) -> Vec<Vec<u8>> {
        endpoint
            .secrets
            .iter()
            .filter(|s| s.until.is_none_or(|until| until > now))
            .filter_map(|s| signature::key_of(&s.value).ok())
            .collect()
    }

    fn swap(&self, change: impl FnOnce(&mut Vec<Endpoint>)) {
        let mut guard = match self.endpoints.write() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        let mut list = guard.as_ref().clone();
        change(&mut list);
        *guard = Arc::new(list);
    }
}
