//! One function per section of [`Config`]: each reads its settings with
//! the defaults and ranges below, and refuses a value naming its variable.

use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::time::Duration;

use super::settings::Settings;
use super::value::{self, ANY_DURATION, MAX_DURATION, ValueError};
use super::{ConfigError, LogFormat, PluginSettings, Secret, TokenRules};
use crate::gate::MarketingHours;
use crate::store::{EmbeddedMemory, ServerAccess};

/// The REST API.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// `CHIRP_LISTEN`: where the REST API listens.
    pub listen: SocketAddr,
    /// `CHIRP_MAX_BODY_BYTES`: the largest request body the API reads.
    pub max_body_bytes: usize,
    /// `CHIRP_BATCH_MAX_BODY_BYTES`: the largest body of
    /// `POST /api/notifications/batch` (up to 1,000 messages).
    pub max_batch_body_bytes: usize,
    /// `CHIRP_API_RATE_LIMIT`: requests per second per token; `None` (the
    /// default, or `off`) is no limit.
    pub rate_limit: Option<u32>,
    /// `CHIRP_REQUEST_TIMEOUT`: the longest a request may take before it
    /// is answered `503` `timeout`.
    pub request_timeout: Duration,
}

pub(super) fn api(s: &Settings) -> Result<ApiConfig, ConfigError> {
    Ok(ApiConfig {
        listen: s.read("CHIRP_LISTEN", ([127, 0, 0, 1], 8080).into(), |text| {
            text.trim()
                .parse()
                .map_err(|_| ValueError::Expected("host:port, e.g. 127.0.0.1:8080"))
        })?,
        max_body_bytes: s.whole_number("CHIRP_MAX_BODY_BYTES", 64 * 1024, 1024..=16 << 20)?
            as usize,
        max_batch_body_bytes: s.whole_number(
            "CHIRP_BATCH_MAX_BODY_BYTES",
            8 << 20,
            64 * 1024..=64 << 20,
        )? as usize,
        rate_limit: s.read("CHIRP_API_RATE_LIMIT", None, |text| match text.trim() {
            "off" => Ok(None),
            number => value::whole_number(number, 1..=1_000_000).map(|n| Some(n as u32)),
        })?,
        request_timeout: s.duration(
            "CHIRP_REQUEST_TIMEOUT",
            Duration::from_secs(30),
            Duration::from_secs(1)..=Duration::from_secs(600),
        )?,
    })
}

/// Who may call the API.
#[derive(Debug, Clone)]
pub struct AuthConfig {
    /// `CHIRP_JWT_SECRET` (HS256); `None` only with `insecure_no_auth`.
    pub jwt_secret: Option<Secret>,
    /// What else a token must satisfy, and the previous secret.
    pub token_rules: TokenRules,
    /// `CHIRP_INSECURE_NO_AUTH=true`: every caller is an admin. For local
    /// development only; logged loudly at start.
    pub insecure_no_auth: bool,
}

/// The shortest secret HS256 is given.
const MIN_SECRET_BYTES: usize = 32;

pub(super) fn auth(s: &Settings) -> Result<AuthConfig, ConfigError> {
    let insecure_no_auth = s.boolean("CHIRP_INSECURE_NO_AUTH", false)?;
    let secret = |var: &'static str| match s.text(var) {
        Some(secret) if secret.len() < MIN_SECRET_BYTES => Err(ConfigError::Invalid {
            var,
            value: "<hidden>".into(),
            reason: format!("must be at least {MIN_SECRET_BYTES} bytes"),
        }),
        secret => Ok(secret.map(Secret)),
    };
    let jwt_secret = secret("CHIRP_JWT_SECRET")?;
    if jwt_secret.is_none() && !insecure_no_auth {
        return Err(ConfigError::Invalid {
            var: "CHIRP_JWT_SECRET",
            value: String::new(),
            reason: "is required (HS256 secret, at least 32 bytes); for local development only, \
                     CHIRP_INSECURE_NO_AUTH=true runs without authentication"
                .into(),
        });
    }
    let token_rules = TokenRules {
        previous_secret: secret("CHIRP_JWT_PREVIOUS_SECRET")?,
        max_lifetime: s.read("CHIRP_JWT_MAX_LIFETIME", None, |text| {
            value::duration(text, Duration::from_secs(1)..=MAX_DURATION).map(Some)
        })?,
        issuer: s.non_empty("CHIRP_JWT_ISSUER"),
        audience: s.non_empty("CHIRP_JWT_AUDIENCE"),
    };
    Ok(AuthConfig {
        jwt_secret,
        token_rules,
        insecure_no_auth,
    })
}

/// Where messages are kept.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// `CHIRP_DB`: `surrealkv://path`, `mem://` or `ws://host:port`.
    pub url: String,
    /// `CHIRP_DB_USER` / `CHIRP_DB_PASS`: root credentials for a server;
    /// `CHIRP_STORE_TIMEOUT`: how long a query to it may take.
    pub server: ServerAccess,
    /// `CHIRP_STORE_MEMTABLE_MB` / `CHIRP_STORE_CACHE_MB`: the memory an
    /// embedded store may hold for writes not yet in table files, and for
    /// cached table blocks. Unused with a server.
    pub memory: EmbeddedMemory,
    /// `CHIRP_STORE_COMMITTERS`: transactions of accepted messages that may
    /// be committing at once.
    pub committers: NonZeroUsize,
}

pub(super) fn store(s: &Settings) -> Result<StoreConfig, ConfigError> {
    let url = s.read("CHIRP_DB", "surrealkv://data/chirp".to_string(), |text| {
        let known = ["surrealkv://", "ws://", "wss://"];
        let fits = text == "mem://"
            || known
                .iter()
                .any(|p| text.starts_with(p) && text.len() > p.len());
        fits.then(|| text.to_string()).ok_or(ValueError::Expected(
            "surrealkv://PATH, mem:// or ws://HOST:PORT",
        ))
    })?;
    let credentials = match (s.text("CHIRP_DB_USER"), s.text("CHIRP_DB_PASS")) {
        (Some(user), Some(pass)) => Some((user, pass)),
        (None, None) => None,
        _ => {
            return Err(ConfigError::Invalid {
                var: "CHIRP_DB_USER",
                value: String::new(),
                reason: "CHIRP_DB_USER and CHIRP_DB_PASS go together".into(),
            });
        }
    };
    let server = ServerAccess {
        credentials,
        timeout: s.duration(
            "CHIRP_STORE_TIMEOUT",
            ServerAccess::default().timeout,
            Duration::from_millis(100)..=Duration::from_secs(600),
        )?,
    };
    let defaults = EmbeddedMemory::default();
    let mebibytes = |var, default: u64, range| {
        s.whole_number(var, default >> 20, range)
            .map(|mib| mib << 20)
    };
    let memory = EmbeddedMemory {
        memtable: mebibytes("CHIRP_STORE_MEMTABLE_MB", defaults.memtable, 4..=16 * 1024)?,
        block_cache: mebibytes("CHIRP_STORE_CACHE_MB", defaults.block_cache, 1..=64 * 1024)?,
    };
    let committers = s.whole_number("CHIRP_STORE_COMMITTERS", 2, 1..=64)?;
    Ok(StoreConfig {
        url,
        server,
        memory,
        committers: NonZeroUsize::new(committers as usize).unwrap_or(NonZeroUsize::MIN),
    })
}

/// How and when messages go out.
#[derive(Debug, Clone)]
pub struct DeliveryConfig {
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
    /// `CHIRP_PROVIDER_RATE`: messages per second per provider (a token
    /// bucket that delays, never fails). WhatsApp's default per number is 80.
    pub provider_rate: u32,
    /// `CHIRP_MARKETING_HOURS`: when marketing may go out, in the
    /// recipient's time zone (checked again just before each send).
    pub marketing_hours: MarketingHours,
    /// `CHIRP_LEASE`: how long a claimed message stays with its worker
    /// before another may take it back.
    pub lease: Duration,
    /// `CHIRP_SHUTDOWN_GRACE`: after SIGTERM, how long chirp waits for
    /// attempts in flight to finish and be recorded before it exits
    /// (whatever is still leased then goes back to the queue on the next
    /// start).
    pub shutdown_grace: Duration,
    /// `CHIRP_PAUSE_DELIVERY`: accept and store messages but send none
    /// (during a provider incident, or to build a backlog).
    pub pause: bool,
    /// `CHIRP_MARKETING_NEEDS_OPT_IN`: marketing goes only to recipients
    /// whose preferences record an opt-in.
    pub marketing_needs_opt_in: bool,
    /// `CHIRP_FREE_TEXT_NEEDS_WINDOW`: free text (no template) goes only to
    /// a phone inside its 24-hour customer-service window (its last message
    /// to the business, as a provider's webhook reported it, less than 24
    /// hours before the send), as WhatsApp requires.
    pub free_text_needs_window: bool,
    /// `CHIRP_FALLBACK_CODES`: a provider's permanent failure codes that say
    /// the recipient cannot be reached on its channel (Meta's 131026), so a
    /// message with a fallback route moves on instead of failing.
    pub fallback_codes: Vec<String>,
    /// `CHIRP_BREAKER_FAILURES` (retryable failures in a row that open a
    /// provider's circuit breaker) and `CHIRP_BREAKER_OPEN_FOR` (how long
    /// it stays open before one probe).
    pub breaker: crate::queue::breaker::BreakerSettings,
}

impl DeliveryConfig {
    /// The consent policy these settings give.
    pub fn consent(&self) -> crate::preferences::Consent {
        crate::preferences::Consent {
            marketing_needs_opt_in: self.marketing_needs_opt_in,
            free_text_needs_window: self.free_text_needs_window,
        }
    }
}

pub(super) fn delivery(s: &Settings) -> Result<DeliveryConfig, ConfigError> {
    Ok(DeliveryConfig {
        max_attempts: s.whole_number("CHIRP_MAX_ATTEMPTS", 3, 1..=100)? as u32,
        retry_backoff: s.read(
            "CHIRP_RETRY_BACKOFF",
            [300, 600, 900].map(Duration::from_secs).to_vec(),
            |text| value::durations(text, ANY_DURATION),
        )?,
        max_retry_after: s.duration(
            "CHIRP_MAX_RETRY_AFTER",
            Duration::from_secs(3600),
            ANY_DURATION,
        )?,
        send_concurrency: s.whole_number("CHIRP_SEND_CONCURRENCY", 64, 1..=10_000)? as usize,
        provider_rate: s.whole_number("CHIRP_PROVIDER_RATE", 80, 1..=1_000_000)? as u32,
        marketing_hours: s.read("CHIRP_MARKETING_HOURS", MarketingHours::default(), |text| {
            MarketingHours::parse(text).ok_or(ValueError::Expected("HH:MM-HH:MM, e.g. 09:00-21:00"))
        })?,
        // Shorter than a second, a lease would be taken back mid-send.
        lease: s.duration(
            "CHIRP_LEASE",
            Duration::from_secs(60),
            Duration::from_secs(1)..=MAX_DURATION,
        )?,
        shutdown_grace: s.duration(
            "CHIRP_SHUTDOWN_GRACE",
            Duration::from_secs(15),
            ANY_DURATION,
        )?,
        pause: s.boolean("CHIRP_PAUSE_DELIVERY", false)?,
        marketing_needs_opt_in: s.boolean("CHIRP_MARKETING_NEEDS_OPT_IN", false)?,
        free_text_needs_window: s.boolean("CHIRP_FREE_TEXT_NEEDS_WINDOW", true)?,
        fallback_codes: value::list(
            &s.text("CHIRP_FALLBACK_CODES")
                .unwrap_or_else(|| "131026".into()),
        )
        .into_iter()
        .take(100)
        .collect(),
        breaker: crate::queue::breaker::BreakerSettings {
            failures: s.whole_number("CHIRP_BREAKER_FAILURES", 10, 1..=10_000)? as u32,
            open_for: s.duration(
                "CHIRP_BREAKER_OPEN_FOR",
                Duration::from_secs(30),
                Duration::from_secs(1)..=Duration::from_secs(86_400),
            )?,
        },
    })
}

/// The plugins: where they are, which serve messages and events, and what
/// each is granted.
#[derive(Debug, Clone)]
pub struct PluginsConfig {
    /// `CHIRP_PLUGINS_DIR`: where the `.wasm` components are.
    pub dir: PathBuf,
    /// `CHIRP_PROVIDER`: the provider plugin messages go through.
    pub provider: String,
    /// `CHIRP_RULES`: the rules plugin events go through.
    pub rules: String,
    /// `CHIRP_PLUGIN_CACHE_DIR`: compiled components, keyed by content
    /// hash and engine, so a restart does not recompile.
    pub cache_dir: PathBuf,
    /// `CHIRP_PLUGIN_CACHE_KEY`: the file holding the key that proves the
    /// cache's files are chirp's own (default: the cache directory's name
    /// plus `.key`, outside the directory).
    pub cache_key: PathBuf,
    /// `CHIRP_PLUGIN_MAX_MB`: the largest plugin file chirp reads.
    pub max_file_bytes: u64,
    /// Plugin settings and sandbox policy: `CHIRP_PLUGINS__*` and
    /// `CHIRP_SANDBOX__*` variables, `[plugins.*]` and `[sandbox.*]`.
    pub settings: PluginSettings,
}

pub(super) fn plugins(
    s: &Settings,
    settings: PluginSettings,
) -> Result<PluginsConfig, ConfigError> {
    let cache_dir = s.path("CHIRP_PLUGIN_CACHE_DIR", "data/plugin-cache");
    let cache_key = s
        .text("CHIRP_PLUGIN_CACHE_KEY")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::plugins::cache::Cache::default_key_file(&cache_dir));
    if cache_key.starts_with(&cache_dir) {
        return Err(ConfigError::Invalid {
            var: "CHIRP_PLUGIN_CACHE_KEY",
            value: cache_key.display().to_string(),
            reason: "the key must be kept outside CHIRP_PLUGIN_CACHE_DIR".into(),
        });
    }
    let default_mib = crate::plugins::files::DEFAULT_MAX_FILE_BYTES >> 20;
    Ok(PluginsConfig {
        dir: s.path("CHIRP_PLUGINS_DIR", "data/plugins"),
        provider: s
            .text("CHIRP_PROVIDER")
            .unwrap_or_else(|| "myoperator".into()),
        rules: s
            .text("CHIRP_RULES")
            .unwrap_or_else(|| "rules-earlybird".into()),
        cache_dir,
        cache_key,
        max_file_bytes: s.whole_number("CHIRP_PLUGIN_MAX_MB", default_mib, 1..=1024)? << 20,
        settings,
    })
}

pub(super) fn log_format(s: &Settings) -> Result<LogFormat, ConfigError> {
    s.read("CHIRP_LOG_FORMAT", LogFormat::Text, |text| {
        match text.trim() {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            _ => Err(ValueError::Expected("text or json")),
        }
    })
}

/// Customers' personal data.
#[derive(Debug, Clone)]
pub struct PrivacyConfig {
    /// `CHIRP_ERASURE_KEY`: the file holding the key of the hashes that
    /// name erased phones in the store (made on first start, mode 600;
    /// keep it outside the store and its backups).
    pub erasure_key: PathBuf,
    /// `CHIRP_REDACT_AFTER`: how long a finished transactional message
    /// (and free text) keeps its text, variables, reference and errors.
    pub redact_after: Duration,
    /// `CHIRP_REDACT_MARKETING_AFTER`: the same for marketing messages.
    pub redact_marketing_after: Duration,
    /// `CHIRP_DELETE_AFTER`: how long a finished message is kept at all;
    /// also how long saved preferences without an opt-out are kept.
    pub delete_after: Duration,
    /// `CHIRP_RETENTION_INTERVAL`: how often the retention job runs.
    pub retention_interval: Duration,
}

const DAY: Duration = Duration::from_secs(24 * 3600);

pub(super) fn privacy(s: &Settings) -> Result<PrivacyConfig, ConfigError> {
    let periods = DAY..=DAY * 3650;
    let redact_after = s.duration("CHIRP_REDACT_AFTER", DAY * 90, periods.clone())?;
    let config = PrivacyConfig {
        erasure_key: s.path("CHIRP_ERASURE_KEY", "data/erasure.key"),
        redact_after,
        redact_marketing_after: s.duration(
            "CHIRP_REDACT_MARKETING_AFTER",
            redact_after,
            periods.clone(),
        )?,
        delete_after: s.duration("CHIRP_DELETE_AFTER", DAY * 400, periods)?,
        retention_interval: s.duration(
            "CHIRP_RETENTION_INTERVAL",
            Duration::from_secs(3600),
            Duration::from_secs(1)..=DAY,
        )?,
    };
    if config.delete_after <= config.redact_after.max(config.redact_marketing_after) {
        return Err(ConfigError::Contradiction {
            vars: "CHIRP_DELETE_AFTER, CHIRP_REDACT_AFTER and CHIRP_REDACT_MARKETING_AFTER".into(),
            reason: "messages must be redacted before they are deleted".into(),
        });
    }
    Ok(config)
}

/// `/api/webhooks/{plugin}`: what the host lets a stranger send, whatever
/// the plugin accepts.
#[derive(Debug, Clone)]
pub struct WebhooksConfig {
    /// `CHIRP_WEBHOOK_MAX_BODY_BYTES`: the largest request body.
    pub max_body_bytes: usize,
    /// `CHIRP_WEBHOOK_RATE`: requests per second from one source address
    /// (its burst is as many).
    pub rate_per_source: u32,
    /// `CHIRP_WEBHOOK_MAX_EVENTS`: the most events one request may carry.
    pub max_events: usize,
    /// `CHIRP_WEBHOOK_CONCURRENCY`: the most webhook requests read at once,
    /// from all sources together (each may hold a body of
    /// `max_body_bytes`); past it, `503`.
    pub concurrency: usize,
    /// `CHIRP_WEBHOOK_MAX_UNMATCHED`: the most receipts kept for platform
    /// ids no message has; past it, requests are answered `503` (the
    /// platform retries later).
    pub max_unmatched: usize,
    /// `CHIRP_WEBHOOK_UNMATCHED_FOR`: how long such a receipt is kept.
    pub unmatched_for: Duration,
    /// `CHIRP_OPT_OUT_KEYWORDS`: a customer's message that is one of these
    /// (any case, spaces around ignored) opts their phone out of
    /// marketing.
    pub opt_out_keywords: Vec<String>,
    /// `CHIRP_MARKETING_STOPPED_CODES`: a platform's failure codes that say
    /// the customer stopped marketing messages (Meta's 131050); such a
    /// receipt opts the phone out of marketing.
    pub marketing_stopped_codes: Vec<String>,
}

/// The keywords that opt a phone out of marketing unless the operator
/// says otherwise: English, and Hindi ("stop", "stop it", "close").
const OPT_OUT_KEYWORDS: &str = "STOP, UNSUBSCRIBE, STOP ALL, रोकें, रोको, बंद करें, बंद करो, बंद";

pub(super) fn webhooks(s: &Settings) -> Result<WebhooksConfig, ConfigError> {
    Ok(WebhooksConfig {
        max_body_bytes: s.whole_number("CHIRP_WEBHOOK_MAX_BODY_BYTES", 1 << 20, 1024..=16 << 20)?
            as usize,
        rate_per_source: s.whole_number("CHIRP_WEBHOOK_RATE", 100, 1..=100_000)? as u32,
        max_events: s.whole_number("CHIRP_WEBHOOK_MAX_EVENTS", 1_000, 1..=10_000)? as usize,
        concurrency: s.whole_number("CHIRP_WEBHOOK_CONCURRENCY", 64, 1..=10_000)? as usize,
        max_unmatched: s.whole_number("CHIRP_WEBHOOK_MAX_UNMATCHED", 100_000, 1..=10_000_000)?
            as usize,
        unmatched_for: s.duration(
            "CHIRP_WEBHOOK_UNMATCHED_FOR",
            DAY * 7,
            Duration::from_secs(60)..=DAY * 90,
        )?,
        opt_out_keywords: value::list(
            &s.text("CHIRP_OPT_OUT_KEYWORDS")
                .unwrap_or_else(|| OPT_OUT_KEYWORDS.into()),
        )
        .into_iter()
        .map(|k| k.to_lowercase())
        .take(100)
        .collect(),
        marketing_stopped_codes: value::list(
            &s.text("CHIRP_MARKETING_STOPPED_CODES")
                .unwrap_or_else(|| "131050".into()),
        )
        .into_iter()
        .take(100)
        .collect(),
    })
}
