//! `CHIRP_CALLBACK_*`: where chirp may post status callbacks, and how it
//! retries them. The operator grants the hosts; an admin registering an
//! endpoint can only choose among them.

use std::time::Duration;

use super::ConfigError;
use super::settings::Settings;
use super::value;

const DAY: Duration = Duration::from_secs(24 * 3600);

/// Status callbacks to the caller's backend.
#[derive(Debug, Clone)]
pub struct CallbacksConfig {
    /// `CHIRP_CALLBACK_HOSTS`: the `host[:port]`s an endpoint's URL may
    /// name (lower case, exactly as in the URL). Empty (the default): no
    /// endpoint can be registered.
    pub hosts: Vec<String>,
    /// `CHIRP_CALLBACK_ALLOW_PRIVATE`: endpoints may resolve to private
    /// and loopback addresses, and use plain `http` (for development and
    /// tests). Off by default: `https` to public addresses only.
    pub allow_private: bool,
    /// `CHIRP_CALLBACK_TIMEOUT`: how long one post may take.
    pub timeout: Duration,
    /// `CHIRP_CALLBACK_FIRST_RETRY`: the wait after a first failed post;
    /// it doubles after each failure up to an hour.
    pub first_retry: Duration,
    /// `CHIRP_CALLBACK_GIVE_UP_AFTER`: how long after its first try a
    /// callback is retried (at least a day unless the operator says
    /// otherwise).
    pub give_up_after: Duration,
    /// `CHIRP_CALLBACK_SECRET_OVERLAP`: how long an endpoint's previous
    /// secret still signs (beside the new one) after a rotation.
    pub secret_overlap: Duration,
    /// `CHIRP_CALLBACK_CONCURRENCY`: posts in flight at once.
    pub concurrency: usize,
}

pub(super) fn callbacks(s: &Settings) -> Result<CallbacksConfig, ConfigError> {
    Ok(CallbacksConfig {
        hosts: value::list(&s.text("CHIRP_CALLBACK_HOSTS").unwrap_or_default())
            .into_iter()
            .map(|h| h.to_ascii_lowercase())
            .take(100)
            .collect(),
        allow_private: s.boolean("CHIRP_CALLBACK_ALLOW_PRIVATE", false)?,
        timeout: s.duration(
            "CHIRP_CALLBACK_TIMEOUT",
            Duration::from_secs(10),
            Duration::from_millis(100)..=Duration::from_secs(60),
        )?,
        first_retry: s.duration(
            "CHIRP_CALLBACK_FIRST_RETRY",
            Duration::from_secs(5),
            Duration::from_millis(100)..=Duration::from_secs(3600),
        )?,
        give_up_after: s.duration(
            "CHIRP_CALLBACK_GIVE_UP_AFTER",
            Duration::from_secs(26 * 3600),
            Duration::from_secs(60)..=DAY * 7,
        )?,
        secret_overlap: s.duration(
            "CHIRP_CALLBACK_SECRET_OVERLAP",
            DAY,
            Duration::from_secs(0)..=DAY * 30,
        )?,
        concurrency: s.whole_number("CHIRP_CALLBACK_CONCURRENCY", 16, 1..=256)? as usize,
    })
}
