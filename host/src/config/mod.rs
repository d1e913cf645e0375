//! Start-up configuration: environment variables and an optional `chirp.toml`
//! turned, once, into a validated [`Config`].
//!
//! Two stages, as in ripgrep's flags: [`RawConfig`] is what the operator
//! wrote (every field optional, strings as given), [`Config`] is what the
//! engine runs on (typed, defaulted, checked). Environment variables win over
//! the file. Nothing else in chirp reads the environment, so tests build a
//! `Config` from their own variable map and can run many instances in one
//! process.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

mod callbacks;
mod plugins;
mod sections;
mod settings;
mod timing;
pub mod value;
pub use callbacks::CallbacksConfig;
pub use plugins::{PluginSettings, SANDBOX_PREFIX, SETTINGS_PREFIX};
pub use sections::{
    ApiConfig, AuthConfig, DeliveryConfig, PluginsConfig, PrivacyConfig, StoreConfig,
    WebhooksConfig,
};
use settings::Settings;

/// Why the configuration cannot be used. Each variant names what to fix.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{var}={value:?} is not valid: {reason}")]
    /// A setting's value cannot be used.
    Invalid {
        /// The variable.
        var: &'static str,
        /// Its value (`<hidden>` for secrets).
        value: String,
        /// Why, and what it takes.
        reason: String,
    },
    #[error("cannot read {path}: {source}")]
    /// `chirp.toml` (or `CHIRP_CONFIG`) cannot be read.
    ReadFile {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A plugin setting or sandbox variable (or `chirp.toml` entry) that
    /// names no valid (plugin, setting) pair; never shows the value.
    #[error("{var} is not valid: {reason}")]
    Plugin {
        /// The variable, or `[table.plugin] key` of the file.
        var: String,
        /// What is wrong with its name.
        reason: String,
    },
    /// Settings each valid alone that cannot hold together.
    #[error("{vars} contradict each other: {reason}")]
    Contradiction {
        /// The settings that clash.
        vars: String,
        /// Why they cannot hold together, and what to change.
        reason: String,
    },
    /// A key of `chirp.toml` that is no setting of chirp's.
    #[error("{key} in chirp.toml is not a setting; the settings are {known}")]
    UnknownKey {
        /// The key as written.
        key: String,
        /// Every key chirp reads, comma-separated.
        known: String,
    },
    #[error("{path} is not valid TOML for chirp: {source}")]
    /// The file is not TOML of chirp's shape.
    ParseFile {
        /// The file.
        path: PathBuf,
        /// What the TOML reader said.
        source: Box<toml::de::Error>,
    },
}

/// What the operator wrote in `chirp.toml`: its top-level keys are the
/// environment variables' names without `CHIRP_`, in lower case (a key no
/// setting has is refused); `[plugins.<name>]` and `[sandbox.<name>]` are
/// tables per plugin.
#[derive(Debug, Default, Deserialize)]
pub struct RawConfig {
    /// `[plugins.<name>]` tables: settings per plugin, e.g.
    /// `[plugins.myoperator] api-key = "..."`.
    #[serde(default)]
    pub plugins: HashMap<String, HashMap<String, toml::Value>>,
    /// `[sandbox.<name>]` tables: the operator's limits per plugin, e.g.
    /// `[sandbox.myoperator] allow_hosts = ["publicapi.myoperator.co"]`.
    #[serde(default)]
    pub sandbox: HashMap<String, HashMap<String, toml::Value>>,
    /// Every other key, e.g. `lease = "90s"` or `max_attempts = 5`.
    #[serde(flatten)]
    pub settings: BTreeMap<String, toml::Value>,
}

/// A secret that never shows in `Debug` output or logs.
#[derive(Clone)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<hidden>")
    }
}

/// The operator's rules for API tokens, beyond the signing secret.
#[derive(Debug, Clone, Default)]
pub struct TokenRules {
    /// `CHIRP_JWT_PREVIOUS_SECRET`: still accepted while tokens signed with
    /// it are in use (a rotation without downtime).
    pub previous_secret: Option<Secret>,
    /// `CHIRP_JWT_MAX_LIFETIME`: the longest a token may live (`exp` less
    /// `iat`, or less now when it has no `iat`).
    pub max_lifetime: Option<Duration>,
    /// `CHIRP_JWT_ISSUER`: the `iss` every token must carry.
    pub issuer: Option<String>,
    /// `CHIRP_JWT_AUDIENCE`: an `aud` every token must carry.
    pub audience: Option<String>,
}

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Lines for people.
    Text,
    /// One JSON object per line.
    Json,
}

/// The validated configuration chirp runs on, one part per section.
#[derive(Debug, Clone)]
pub struct Config {
    /// The REST API.
    pub api: ApiConfig,
    /// Who may call it.
    pub auth: AuthConfig,
    /// Where messages are kept.
    pub store: StoreConfig,
    /// How and when messages go out.
    pub delivery: DeliveryConfig,
    /// The plugins and what each is granted.
    pub plugins: PluginsConfig,
    /// Customers' personal data.
    pub privacy: PrivacyConfig,
    /// What providers' webhooks may send.
    pub webhooks: WebhooksConfig,
    /// Where status callbacks may go, and their retries.
    pub callbacks: CallbacksConfig,
    /// `CHIRP_TEMPLATES_DIR`: where the message templates are.
    pub templates_dir: PathBuf,
    /// `CHIRP_LOG_FORMAT`: `text` or `json`.
    pub log_format: LogFormat,
}

impl Config {
    /// Reads the process environment and `chirp.toml` (or `CHIRP_CONFIG`).
    pub fn from_process_env() -> Result<Config, ConfigError> {
        let env: HashMap<String, String> = std::env::vars().collect();
        let path = env
            .get("CHIRP_CONFIG")
            .map(PathBuf::from)
            .or_else(|| Some(PathBuf::from("chirp.toml")).filter(|p| p.exists()));
        let raw = match path {
            Some(path) => RawConfig::from_file(&path)?,
            None => RawConfig::default(),
        };
        Config::from_parts(raw, env)
    }

    /// Builds the configuration from a file's contents and a variable map;
    /// variables win.
    pub fn from_parts(raw: RawConfig, env: HashMap<String, String>) -> Result<Config, ConfigError> {
        let file = raw
            .settings
            .into_iter()
            .map(|(key, value)| (key, settings::as_text(value)))
            .collect();
        let s = Settings::new(env, file);
        let plugin_settings = PluginSettings::new(s.env(), raw.plugins, raw.sandbox)?;
        let config = Config {
            api: sections::api(&s)?,
            auth: sections::auth(&s)?,
            store: sections::store(&s)?,
            delivery: sections::delivery(&s)?,
            plugins: sections::plugins(&s, plugin_settings)?,
            privacy: sections::privacy(&s)?,
            webhooks: sections::webhooks(&s)?,
            callbacks: callbacks::callbacks(&s)?,
            templates_dir: s.path("CHIRP_TEMPLATES_DIR", "templates"),
            log_format: sections::log_format(&s)?,
        };
        s.refuse_unknown_keys()?;
        config.check_contradictions()?;
        Ok(config)
    }
}

impl Config {
    /// The retry rule these settings give.
    pub fn retry_policy(&self) -> crate::queue::retry::RetryPolicy {
        crate::queue::retry::RetryPolicy {
            max_attempts: self.delivery.max_attempts,
            backoff: self.delivery.retry_backoff.clone(),
            max_retry_after: self.delivery.max_retry_after,
            fallback_codes: self.delivery.fallback_codes.clone(),
        }
    }
}

impl RawConfig {
    /// Reads and parses `path`.
    pub fn from_file(path: &Path) -> Result<RawConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::ReadFile {
            path: path.into(),
            source,
        })?;
        toml::from_str(&text).map_err(|source| ConfigError::ParseFile {
            path: path.into(),
            source: Box::new(source),
        })
    }
}

#[cfg(test)]
pub(super) mod tests;
