//! The operator's sandbox policy for one plugin: which of its declared
//! hosts it may reach, whether private addresses are allowed, and its
//! limits. Read from `CHIRP_SANDBOX__<PLUGIN>__<KEY>` or `[sandbox.<plugin>]`.
//!
//! | key | default | meaning |
//! |---|---|---|
//! | `allow_hosts` | the hosts it declared | comma list; the plugin may reach only hosts it declared *and* this list names |
//! | `allow_private` | `false` | whether loopback and private addresses may be reached |
//! | `memory_mib` | 64 | memory of one call: all its linear memories and tables together |
//! | `timeout` | 10s | wall time of one call |
//! | `http_timeout` | 10s | one HTTP request |
//! | `max_response_bytes` | 1048576 | one HTTP response body |
//! | `max_requests` | 8 | HTTP requests in one call |
//! | `max_request_bytes` | 1048576 | one HTTP request body |
//! | `max_log_lines` | 32 | log lines kept from one call |
//! | `max_log_bytes` | 16384 | log bytes kept from one call |

use std::time::Duration;

use super::engine::MAX_PLUGIN_MEMORY;
use super::limits::Limits;
use crate::config::PluginSettings;
use crate::config::value::{self, ValueError};

/// Every key of a plugin's sandbox policy.
pub const KEYS: [&str; 10] = [
    "allow_hosts",
    "allow_private",
    "memory_mib",
    "timeout",
    "http_timeout",
    "max_response_bytes",
    "max_requests",
    "max_request_bytes",
    "max_log_lines",
    "max_log_bytes",
];

/// Why a plugin's sandbox policy cannot be used.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{variable}={value:?} is not valid: {reason}")]
pub struct PolicyError {
    /// The variable (`CHIRP_SANDBOX__<PLUGIN>__<KEY>`).
    pub variable: String,
    /// Its value.
    pub value: String,
    /// What is wrong with it.
    pub reason: ValueError,
}

/// A policy's duration (`timeout`, `http_timeout`): from a millisecond to
/// an hour.
pub fn call_duration(text: &str) -> Result<Duration, ValueError> {
    value::duration(text, Duration::from_millis(1)..=Duration::from_secs(3600))
}

/// `key` of `plugin`'s policy read by `parse`, or `default` when unset.
fn read<T>(
    settings: &PluginSettings,
    plugin: &str,
    key: &str,
    default: T,
    parse: &dyn Fn(&str) -> Result<T, ValueError>,
) -> Result<T, PolicyError> {
    match settings.sandbox(plugin, key) {
        None => Ok(default),
        Some(text) => parse(&text).map_err(|reason| PolicyError {
            variable: PluginSettings::sandbox_variable(plugin, key),
            value: text,
            reason,
        }),
    }
}

/// The policy the operator set for one plugin.
#[derive(Debug, Clone)]
pub struct Policy {
    /// `None`: every declared host.
    pub allow_hosts: Option<Vec<String>>,
    /// Whether loopback and private addresses may be reached.
    pub allow_private: bool,
    /// What one call may use.
    pub limits: Limits,
}

impl Policy {
    /// Reads the policy for `plugin`, defaulting to `defaults` limits.
    pub fn read(
        settings: &PluginSettings,
        plugin: &str,
        defaults: &Limits,
    ) -> Result<Policy, PolicyError> {
        let duration =
            |key, default| read(settings, plugin, key, default, &|text| call_duration(text));
        let number = |key, default: usize, max: usize| {
            read(settings, plugin, key, default as u64, &|text| {
                value::whole_number(text, 1..=max as u64)
            })
            .map(|n| n as usize)
        };
        let allow_private = read(settings, plugin, "allow_private", false, &value::boolean)?;
        let allow_hosts = settings.sandbox(plugin, "allow_hosts").map(|list| {
            value::list(&list)
                .into_iter()
                .map(|host| host.to_ascii_lowercase())
                .collect()
        });
        let max_mib = MAX_PLUGIN_MEMORY / (1024 * 1024);
        let limits = Limits {
            memory_bytes: number("memory_mib", defaults.memory_bytes / (1024 * 1024), max_mib)?
                * 1024
                * 1024,
            call_timeout: duration("timeout", defaults.call_timeout)?,
            http_timeout: duration("http_timeout", defaults.http_timeout)?,
            http_max_response_bytes: number(
                "max_response_bytes",
                defaults.http_max_response_bytes,
                64 * 1024 * 1024,
            )?,
            http_max_requests: number("max_requests", defaults.http_max_requests, 1_000)?,
            http_max_request_bytes: number(
                "max_request_bytes",
                defaults.http_max_request_bytes,
                64 * 1024 * 1024,
            )?,
            log_max_lines: number("max_log_lines", defaults.log_max_lines, 10_000)?,
            log_max_bytes: number("max_log_bytes", defaults.log_max_bytes, 16 * 1024 * 1024)?,
        };
        Ok(Policy {
            allow_hosts,
            allow_private,
            limits,
        })
    }

    /// The hosts a plugin that declared `declared` may reach.
    pub fn reachable(&self, declared: &[String]) -> Vec<String> {
        declared
            .iter()
            .map(|h| h.to_ascii_lowercase())
            .filter(|h| {
                self.allow_hosts
                    .as_ref()
                    .is_none_or(|allowed| allowed.contains(h))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn settings(pairs: &[(&str, &str)]) -> PluginSettings {
        let env = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        PluginSettings::new(&env, HashMap::new(), HashMap::new()).unwrap()
    }

    #[test]
    fn defaults_allow_declared_public_hosts_only() {
        let p = Policy::read(&settings(&[]), "myoperator", &Limits::default()).unwrap();
        assert!(!p.allow_private);
        assert_eq!(p.reachable(&["A.example".into()]), ["a.example"]);
        assert_eq!(p.limits.memory_bytes, Limits::default().memory_bytes);
    }

    #[test]
    fn the_operator_narrows_hosts_and_sets_limits() {
        let s = settings(&[
            ("CHIRP_SANDBOX__MYOPERATOR__ALLOW_HOSTS", "a.example"),
            ("CHIRP_SANDBOX__MYOPERATOR__MEMORY_MIB", "16"),
            ("CHIRP_SANDBOX__MYOPERATOR__TIMEOUT", "2s"),
        ]);
        let p = Policy::read(&s, "myoperator", &Limits::default()).unwrap();
        assert_eq!(
            p.reachable(&["a.example".into(), "b.example".into()]),
            ["a.example"]
        );
        assert_eq!(p.limits.memory_bytes, 16 * 1024 * 1024);
        assert_eq!(p.limits.call_timeout, Duration::from_secs(2));
    }

    #[test]
    fn bad_values_name_their_variable() {
        let s = settings(&[("CHIRP_SANDBOX__MYOPERATOR__MEMORY_MIB", "lots")]);
        let err = Policy::read(&s, "myoperator", &Limits::default()).unwrap_err();
        assert_eq!(err.variable, "CHIRP_SANDBOX__MYOPERATOR__MEMORY_MIB");
    }
}
