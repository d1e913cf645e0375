//! The provider new messages go through when the caller names none: set at
//! start from the stored choice (or `CHIRP_PROVIDER` if none was stored),
//! changed by an admin while chirp runs (`PUT /api/settings/provider`),
//! stored and audited so that it survives restarts.
//!
//! Why a change cannot lose or duplicate a message: a message keeps the
//! provider it was accepted for, so messages already queued or leased
//! finish where they were headed; only messages accepted after the change
//! go to the new provider.

use std::sync::{Arc, RwLock};

use crate::templates::Catalog;

/// The default provider, shared by every request.
#[derive(Clone, Debug)]
pub struct DefaultProvider(Arc<RwLock<String>>);

/// Why the default provider cannot become the one asked for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SwitchRefused {
    /// No provider plugin of that name is loaded.
    #[error("no provider plugin {0:?} is loaded")]
    NotLoaded(String),
    /// Enabled templates name the approved templates of other providers
    /// and not this one's: their messages would have nothing to go out as.
    #[error(
        "templates {templates} have no approved template for {provider:?}; add one (providers.{provider} in each) first"
    )]
    NotApproved {
        /// The provider asked for.
        provider: String,
        /// The templates, listed.
        templates: String,
    },
}

impl DefaultProvider {
    /// Starting with `name`.
    pub fn new(name: String) -> DefaultProvider {
        DefaultProvider(Arc::new(RwLock::new(name)))
    }

    /// The provider in force.
    pub fn get(&self) -> String {
        self.0
            .read()
            .map(|name| name.clone())
            .unwrap_or_else(|poisoned| poisoned.into_inner().clone())
    }

    /// Puts `name` in force.
    pub fn set(&self, name: String) {
        match self.0.write() {
            Ok(mut current) => *current = name,
            Err(poisoned) => *poisoned.into_inner() = name,
        }
    }
}

/// Whether `provider` (loaded or not, as `loaded` says) can be the default
/// under `catalog`: every enabled template that names providers' approved
/// templates must name this one's.
pub fn check_switch(catalog: &Catalog, provider: &str, loaded: bool) -> Result<(), SwitchRefused> {
    if !loaded {
        return Err(SwitchRefused::NotLoaded(provider.into()));
    }
    let missing: Vec<&str> = catalog
        .all()
        .filter(|t| t.enabled && !t.providers.is_empty() && !t.providers.contains_key(provider))
        .map(|t| t.name.as_str())
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(SwitchRefused::NotApproved {
            provider: provider.into(),
            templates: missing.join(", "),
        })
    }
}
