//! How a setting's text is read: one way for every number, duration, list
//! and store URL, each error naming the variable.

use std::time::Duration;

use super::ConfigError;

pub(super) fn check_db_url(db: &str) -> Result<(), ConfigError> {
    let known = ["surrealkv://", "mem://", "ws://", "wss://"];
    if db == "mem://"
        || known
            .iter()
            .any(|p| db.starts_with(p) && db.len() > p.len())
    {
        Ok(())
    } else {
        Err(ConfigError::Invalid {
            var: "CHIRP_DB",
            value: db.into(),
            reason: "expected surrealkv://PATH, mem:// or ws://HOST:PORT".into(),
        })
    }
}

pub(super) fn parse_number(
    var: &'static str,
    text: Option<String>,
    default: u64,
    range: std::ops::RangeInclusive<u64>,
) -> Result<u64, ConfigError> {
    let Some(text) = text else {
        return Ok(default);
    };
    match text.trim().parse::<u64>() {
        Ok(n) if range.contains(&n) => Ok(n),
        _ => Err(ConfigError::Invalid {
            var,
            value: text,
            reason: format!(
                "expected a whole number from {} to {}",
                range.start(),
                range.end()
            ),
        }),
    }
}

/// The longest duration any setting takes: anything longer is a mistake,
/// and would overflow the times chirp computes from it.
const MAX_DURATION: Duration = Duration::from_secs(365 * 24 * 3600);

pub(super) fn parse_duration(var: &'static str, text: &str) -> Result<Duration, ConfigError> {
    let parsed = humantime::parse_duration(text.trim()).map_err(|e| ConfigError::Invalid {
        var,
        value: text.into(),
        reason: format!("{e}; expected e.g. 30s, 5m, 250ms"),
    })?;
    if parsed > MAX_DURATION {
        return Err(ConfigError::Invalid {
            var,
            value: text.into(),
            reason: "longer than a year".into(),
        });
    }
    Ok(parsed)
}

/// `5m,10m,15m` -> three durations.
pub fn parse_backoff(text: &str) -> Result<Vec<Duration>, ConfigError> {
    let steps = text
        .split(',')
        .map(|part| parse_duration("CHIRP_RETRY_BACKOFF", part))
        .collect::<Result<Vec<_>, _>>()?;
    if steps.is_empty() {
        return Err(ConfigError::Invalid {
            var: "CHIRP_RETRY_BACKOFF",
            value: text.into(),
            reason: "needs at least one duration".into(),
        });
    }
    Ok(steps)
}
