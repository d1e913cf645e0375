//! Start-up configuration: environment variables and an optional `chirp.toml`
//! turned, once, into a validated [`Config`].
//!
//! Two stages, as in ripgrep's flags: [`RawConfig`] is what the operator
//! wrote (every field optional, strings as given), [`Config`] is what the
//! engine runs on (typed, defaulted, checked). Environment variables win over
//! the file. Nothing else in chirp reads the environment, so tests build a
//! `Config` from their own variable map and can run many instances in one
//! process.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::store::{EmbeddedMemory, ServerAccess};

mod parse;
mod plugins;
mod timing;
pub use parse::parse_backoff;
use parse::{check_db_url, parse_duration, parse_number};
pub use plugins::{PluginSettings, SANDBOX_PREFIX, SETTINGS_PREFIX};

/// Why the configuration cannot be used. Each variant names what to fix.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{var}={value:?} is not valid: {reason}")]
    Invalid {
        var: &'static str,
        value: String,
        reason: String,
    },
    #[error("cannot read {path}: {source}")]
    ReadFile {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A plugin setting or sandbox variable (or `chirp.toml` entry) that
    /// names no valid (plugin, setting) pair; never shows the value.
    #[error("{var} is not valid: {reason}")]
    Plugin { var: String, reason: String },
    /// Settings each valid alone that cannot hold together.
    #[error("{vars} contradict each other: {reason}")]
    Contradiction { vars: String, reason: String },
    #[error("{path} is not valid TOML for chirp: {source}")]
    ParseFile {
        path: PathBuf,
        source: Box<toml::de::Error>,
    },
}

/// What the operator wrote in `chirp.toml`. Keys are the environment
/// variables' names without `CHIRP_`, in lower case.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub listen: Option<String>,
    pub db: Option<String>,
    pub db_user: Option<String>,
    pub db_pass: Option<String>,
    pub store_timeout: Option<String>,
    pub store_memtable_mb: Option<String>,
    pub store_cache_mb: Option<String>,
    pub store_committers: Option<String>,
    pub plugins_dir: Option<PathBuf>,
    pub templates_dir: Option<PathBuf>,
    pub max_attempts: Option<String>,
    pub retry_backoff: Option<String>,
    pub max_retry_after: Option<String>,
    pub marketing_hours: Option<String>,
    pub send_concurrency: Option<String>,
    pub lease: Option<String>,
    pub shutdown_grace: Option<String>,
    pub provider: Option<String>,
    pub rules: Option<String>,
    pub max_body_bytes: Option<String>,
    pub log_format: Option<String>,
    pub pause_delivery: Option<String>,
    pub jwt_secret: Option<String>,
    pub jwt_previous_secret: Option<String>,
    pub jwt_max_lifetime: Option<String>,
    pub jwt_issuer: Option<String>,
    pub jwt_audience: Option<String>,
    pub provider_rate: Option<String>,
    pub api_rate_limit: Option<String>,
    pub insecure_no_auth: Option<String>,
    pub plugin_cache_dir: Option<PathBuf>,
    pub plugin_cache_key: Option<PathBuf>,
    pub plugin_max_mb: Option<String>,
    /// `[plugins.<name>]` tables: settings per plugin, e.g.
    /// `[plugins.myoperator] api-key = "..."`.
    #[serde(default)]
    pub plugins: HashMap<String, HashMap<String, toml::Value>>,
    /// `[sandbox.<name>]` tables: the operator's limits per plugin, e.g.
    /// `[sandbox.myoperator] allow_hosts = ["publicapi.myoperator.co"]`.
    #[serde(default)]
    pub sandbox: HashMap<String, HashMap<String, toml::Value>>,
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
    Text,
    Json,
}

/// The validated configuration chirp runs on.
#[derive(Debug, Clone)]
pub struct Config {
    /// `CHIRP_LISTEN`: where the REST API listens.
    pub listen: SocketAddr,
    /// `CHIRP_DB`: `surrealkv://path`, `mem://` or `ws://host:port`.
    pub db: String,
    /// `CHIRP_DB_USER` / `CHIRP_DB_PASS`: root credentials for a server;
    /// `CHIRP_STORE_TIMEOUT`: how long a query to it may take.
    pub server: ServerAccess,
    /// `CHIRP_STORE_MEMTABLE_MB` / `CHIRP_STORE_CACHE_MB`: the memory an
    /// embedded store may hold for writes not yet in table files, and for
    /// cached table blocks. Unused with a server.
    pub store_memory: EmbeddedMemory,
    /// `CHIRP_STORE_COMMITTERS`: transactions of accepted messages that may
    /// be committing at once.
    pub store_committers: NonZeroUsize,
    /// `CHIRP_PLUGINS_DIR`: where the `.wasm` provider components are.
    pub plugins_dir: PathBuf,
    /// `CHIRP_TEMPLATES_DIR`: where the message templates are.
    pub templates_dir: PathBuf,
    /// `CHIRP_MAX_ATTEMPTS`: attempts per message before it fails.
    pub max_attempts: u32,
    /// `CHIRP_RETRY_BACKOFF`: wait after the 1st, 2nd, ... failed attempt;
    /// the last entry repeats.
    pub retry_backoff: Vec<Duration>,
    /// `CHIRP_MAX_RETRY_AFTER`: the longest wait a provider's `Retry-After`
    /// (or any delay a plugin gives) can ask for.
    pub max_retry_after: Duration,
    /// `CHIRP_SEND_CONCURRENCY`: provider calls in flight at once.
    pub send_concurrency: usize,
    /// `CHIRP_MARKETING_HOURS`: when marketing may go out, in the
    /// recipient's time zone (checked again just before each send).
    pub marketing_hours: crate::gate::MarketingHours,
    /// `CHIRP_LEASE`: how long a claimed message stays with its worker
    /// before another may take it back.
    pub lease: Duration,
    /// `CHIRP_SHUTDOWN_GRACE`: after SIGTERM, how long chirp waits for
    /// attempts in flight to finish and be recorded before it exits
    /// (whatever is still leased then goes back to the queue on the next
    /// start).
    pub shutdown_grace: Duration,
    /// `CHIRP_PROVIDER`: the provider plugin messages go through.
    pub provider: String,
    /// `CHIRP_RULES`: the rules plugin events go through.
    pub rules: String,
    /// `CHIRP_MAX_BODY_BYTES`: the largest request body the API reads.
    pub max_body_bytes: usize,
    /// `CHIRP_LOG_FORMAT`: `text` or `json`.
    pub log_format: LogFormat,
    /// `CHIRP_PAUSE_DELIVERY`: accept and store messages but send none
    /// (during a provider incident, or to build a backlog).
    pub pause_delivery: bool,
    /// `CHIRP_JWT_SECRET` (HS256); `None` only with `insecure_no_auth`.
    pub jwt_secret: Option<Secret>,
    /// What else a token must satisfy, and the previous secret.
    pub token_rules: TokenRules,
    /// `CHIRP_PROVIDER_RATE`: messages per second per provider (a token
    /// bucket that delays, never fails). WhatsApp's default per number is 80.
    pub provider_rate: u32,
    /// `CHIRP_API_RATE_LIMIT`: requests per second per token; `None` (the
    /// default) is no limit.
    pub api_rate_limit: Option<u32>,
    /// `CHIRP_INSECURE_NO_AUTH=true`: every caller is an admin. For local
    /// development only; logged loudly at start.
    pub insecure_no_auth: bool,
    /// `CHIRP_PLUGIN_CACHE_DIR`: compiled components, keyed by content
    /// hash and engine, so a restart does not recompile.
    pub plugin_cache_dir: PathBuf,
    /// `CHIRP_PLUGIN_CACHE_KEY`: the file holding the key that proves the
    /// cache's files are chirp's own (default: the cache directory's name
    /// plus `.key`, outside the directory).
    pub plugin_cache_key: PathBuf,
    /// `CHIRP_PLUGIN_MAX_MB`: the largest plugin file chirp reads.
    pub plugin_max_bytes: u64,
    /// Plugin settings and sandbox policy: `CHIRP_PLUGINS__*` and
    /// `CHIRP_SANDBOX__*` variables, `[plugins.*]` and `[sandbox.*]`.
    pub plugin_settings: PluginSettings,
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
    pub fn from_parts(
        mut raw: RawConfig,
        env: HashMap<String, String>,
    ) -> Result<Config, ConfigError> {
        let var = |name: &str| env.get(name).cloned();
        let pick = |name: &'static str, file: Option<String>| var(name).or(file);

        let listen_text =
            pick("CHIRP_LISTEN", raw.listen.take()).unwrap_or_else(|| "127.0.0.1:8080".into());
        let listen = listen_text.parse().map_err(|e| ConfigError::Invalid {
            var: "CHIRP_LISTEN",
            value: listen_text.clone(),
            reason: format!("{e}; expected host:port, e.g. 127.0.0.1:8080"),
        })?;

        let db = pick("CHIRP_DB", raw.db.take()).unwrap_or_else(|| "surrealkv://data/chirp".into());
        check_db_url(&db)?;
        let db_credentials = match (
            pick("CHIRP_DB_USER", raw.db_user.take()),
            pick("CHIRP_DB_PASS", raw.db_pass.take()),
        ) {
            (Some(u), Some(p)) => Some((u, p)),
            (None, None) => None,
            (Some(_), None) | (None, Some(_)) => {
                return Err(ConfigError::Invalid {
                    var: "CHIRP_DB_USER",
                    value: String::new(),
                    reason: "CHIRP_DB_USER and CHIRP_DB_PASS go together".into(),
                });
            }
        };
        let store_timeout = match pick("CHIRP_STORE_TIMEOUT", raw.store_timeout.take()) {
            None => ServerAccess::default().timeout,
            Some(text) => parse_duration("CHIRP_STORE_TIMEOUT", &text)?,
        };
        if !(Duration::from_millis(100)..=Duration::from_secs(600)).contains(&store_timeout) {
            return Err(ConfigError::Invalid {
                var: "CHIRP_STORE_TIMEOUT",
                value: format!("{store_timeout:?}"),
                reason: "expected between 100ms and 10m".into(),
            });
        }
        let server = ServerAccess {
            credentials: db_credentials,
            timeout: store_timeout,
        };

        let default_memory = EmbeddedMemory::default();
        let mebibytes = |var, file, default: u64, range| {
            parse_number(var, pick(var, file), default >> 20, range).map(|mib| mib << 20)
        };
        let store_memory = EmbeddedMemory {
            memtable: mebibytes(
                "CHIRP_STORE_MEMTABLE_MB",
                raw.store_memtable_mb.take(),
                default_memory.memtable,
                4..=16 * 1024,
            )?,
            block_cache: mebibytes(
                "CHIRP_STORE_CACHE_MB",
                raw.store_cache_mb.take(),
                default_memory.block_cache,
                1..=64 * 1024,
            )?,
        };

        let store_committers = parse_number(
            "CHIRP_STORE_COMMITTERS",
            pick("CHIRP_STORE_COMMITTERS", raw.store_committers.take()),
            2,
            1..=64,
        )?;
        let store_committers =
            NonZeroUsize::new(store_committers as usize).unwrap_or(NonZeroUsize::MIN);

        let plugins_dir = var("CHIRP_PLUGINS_DIR")
            .map(PathBuf::from)
            .or(raw.plugins_dir.take())
            .unwrap_or_else(|| PathBuf::from("data/plugins"));
        let templates_dir = var("CHIRP_TEMPLATES_DIR")
            .map(PathBuf::from)
            .or(raw.templates_dir.take())
            .unwrap_or_else(|| PathBuf::from("templates"));

        let max_attempts = parse_number(
            "CHIRP_MAX_ATTEMPTS",
            pick("CHIRP_MAX_ATTEMPTS", raw.max_attempts.take()),
            3,
            1..=100,
        )? as u32;
        let backoff_text = pick("CHIRP_RETRY_BACKOFF", raw.retry_backoff.take())
            .unwrap_or_else(|| "5m,10m,15m".into());
        let retry_backoff = parse_backoff(&backoff_text)?;
        let max_retry_after = match pick("CHIRP_MAX_RETRY_AFTER", raw.max_retry_after.take()) {
            None => Duration::from_secs(3600),
            Some(text) => parse_duration("CHIRP_MAX_RETRY_AFTER", &text)?,
        };
        let send_concurrency = parse_number(
            "CHIRP_SEND_CONCURRENCY",
            pick("CHIRP_SEND_CONCURRENCY", raw.send_concurrency.take()),
            64,
            1..=10_000,
        )? as usize;
        let marketing_hours = match pick("CHIRP_MARKETING_HOURS", raw.marketing_hours.take()) {
            None => crate::gate::MarketingHours::default(),
            Some(text) => {
                crate::gate::MarketingHours::parse(&text).ok_or_else(|| ConfigError::Invalid {
                    var: "CHIRP_MARKETING_HOURS",
                    value: text.clone(),
                    reason: "expected HH:MM-HH:MM, e.g. 09:00-21:00".into(),
                })?
            }
        };
        let lease = match pick("CHIRP_LEASE", raw.lease.take()) {
            None => Duration::from_secs(60),
            Some(text) => parse_duration("CHIRP_LEASE", &text)?,
        };
        if lease < Duration::from_secs(1) {
            return Err(ConfigError::Invalid {
                var: "CHIRP_LEASE",
                value: format!("{lease:?}"),
                reason: "a lease shorter than a second would be taken back mid-send".into(),
            });
        }
        let shutdown_grace = match pick("CHIRP_SHUTDOWN_GRACE", raw.shutdown_grace.take()) {
            None => Duration::from_secs(15),
            Some(text) => parse_duration("CHIRP_SHUTDOWN_GRACE", &text)?,
        };
        let provider =
            pick("CHIRP_PROVIDER", raw.provider.take()).unwrap_or_else(|| "myoperator".into());
        let rules =
            pick("CHIRP_RULES", raw.rules.take()).unwrap_or_else(|| "rules-earlybird".into());
        let max_body_bytes = parse_number(
            "CHIRP_MAX_BODY_BYTES",
            pick("CHIRP_MAX_BODY_BYTES", raw.max_body_bytes.take()),
            64 * 1024,
            1024..=16 * 1024 * 1024,
        )? as usize;
        let log_format = match pick("CHIRP_LOG_FORMAT", raw.log_format.take()).as_deref() {
            None | Some("text") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some(other) => {
                return Err(ConfigError::Invalid {
                    var: "CHIRP_LOG_FORMAT",
                    value: other.into(),
                    reason: "expected text or json".into(),
                });
            }
        };

        let insecure_no_auth = matches!(
            pick("CHIRP_INSECURE_NO_AUTH", raw.insecure_no_auth.take()).as_deref(),
            Some("true" | "1" | "yes")
        );
        let jwt_secret = pick("CHIRP_JWT_SECRET", raw.jwt_secret.take());
        match &jwt_secret {
            None if !insecure_no_auth => {
                return Err(ConfigError::Invalid {
                    var: "CHIRP_JWT_SECRET",
                    value: String::new(),
                    reason: "is required (HS256 secret, at least 32 bytes); for local development only, CHIRP_INSECURE_NO_AUTH=true runs without authentication".into(),
                });
            }
            Some(secret) if secret.len() < 32 => {
                return Err(ConfigError::Invalid {
                    var: "CHIRP_JWT_SECRET",
                    value: "<hidden>".into(),
                    reason: "must be at least 32 bytes".into(),
                });
            }
            _ => {}
        }
        let previous_secret = pick("CHIRP_JWT_PREVIOUS_SECRET", raw.jwt_previous_secret.take());
        if previous_secret.as_ref().is_some_and(|s| s.len() < 32) {
            return Err(ConfigError::Invalid {
                var: "CHIRP_JWT_PREVIOUS_SECRET",
                value: "<hidden>".into(),
                reason: "must be at least 32 bytes".into(),
            });
        }
        let token_rules = TokenRules {
            previous_secret: previous_secret.map(Secret),
            max_lifetime: pick("CHIRP_JWT_MAX_LIFETIME", raw.jwt_max_lifetime.take())
                .map(|text| parse_duration("CHIRP_JWT_MAX_LIFETIME", &text))
                .transpose()?,
            issuer: pick("CHIRP_JWT_ISSUER", raw.jwt_issuer.take()).filter(|s| !s.is_empty()),
            audience: pick("CHIRP_JWT_AUDIENCE", raw.jwt_audience.take()).filter(|s| !s.is_empty()),
        };
        let provider_rate = parse_number(
            "CHIRP_PROVIDER_RATE",
            pick("CHIRP_PROVIDER_RATE", raw.provider_rate.take()),
            80,
            1..=1_000_000,
        )? as u32;
        let api_rate_limit = match pick("CHIRP_API_RATE_LIMIT", raw.api_rate_limit.take()) {
            None => None,
            Some(text) if text == "off" => None,
            Some(text) => {
                Some(parse_number("CHIRP_API_RATE_LIMIT", Some(text), 0, 1..=1_000_000)? as u32)
            }
        };
        let plugin_cache_dir = var("CHIRP_PLUGIN_CACHE_DIR")
            .map(PathBuf::from)
            .or(raw.plugin_cache_dir.take())
            .unwrap_or_else(|| PathBuf::from("data/plugin-cache"));
        let plugin_cache_key = var("CHIRP_PLUGIN_CACHE_KEY")
            .map(PathBuf::from)
            .or(raw.plugin_cache_key.take())
            .unwrap_or_else(|| crate::plugins::cache::Cache::default_key_file(&plugin_cache_dir));
        if plugin_cache_key.starts_with(&plugin_cache_dir) {
            return Err(ConfigError::Invalid {
                var: "CHIRP_PLUGIN_CACHE_KEY",
                value: plugin_cache_key.display().to_string(),
                reason: "the key must be kept outside CHIRP_PLUGIN_CACHE_DIR".into(),
            });
        }
        let plugin_max_bytes = parse_number(
            "CHIRP_PLUGIN_MAX_MB",
            pick("CHIRP_PLUGIN_MAX_MB", raw.plugin_max_mb.take()),
            crate::plugins::files::DEFAULT_MAX_FILE_BYTES >> 20,
            1..=1024,
        )? << 20;
        let pause_delivery =
            match pick("CHIRP_PAUSE_DELIVERY", raw.pause_delivery.take()).as_deref() {
                None | Some("0" | "false" | "no") => false,
                Some("1" | "true" | "yes") => true,
                Some(other) => {
                    return Err(ConfigError::Invalid {
                        var: "CHIRP_PAUSE_DELIVERY",
                        value: other.into(),
                        reason: "expected true or false".into(),
                    });
                }
            };

        let config = Config {
            listen,
            db,
            server,
            store_memory,
            store_committers,
            plugins_dir,
            templates_dir,
            max_attempts,
            retry_backoff,
            max_retry_after,
            send_concurrency,
            marketing_hours,
            lease,
            shutdown_grace,
            provider,
            rules,
            max_body_bytes,
            log_format,
            pause_delivery,
            jwt_secret: jwt_secret.map(Secret),
            token_rules,
            provider_rate,
            api_rate_limit,
            insecure_no_auth,
            plugin_cache_dir,
            plugin_cache_key,
            plugin_max_bytes,
            plugin_settings: PluginSettings::new(&env, raw.plugins, raw.sandbox)?,
        };
        config.check_contradictions()?;
        Ok(config)
    }
}

impl Config {
    /// The retry rule these settings give.
    pub fn retry_policy(&self) -> crate::queue::retry::RetryPolicy {
        crate::queue::retry::RetryPolicy {
            max_attempts: self.max_attempts,
            backoff: self.retry_backoff.clone(),
            max_retry_after: self.max_retry_after,
        }
    }
}

impl RawConfig {
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
