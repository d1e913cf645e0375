//! The settings that must hold together: a lease must hold a provider
//! call and the wait for a turn at the provider's rate, or a message could
//! be taken back mid-send by another worker and sent twice. Each is valid
//! alone; together they are checked once, at start, and refused with the
//! variables named.

use std::time::Duration;

use super::{Config, ConfigError, PluginSettings};

impl Config {
    /// The wall time of a plugin call when its sandbox policy sets none:
    /// 10 s, or half the lease if that is shorter.
    pub fn plugin_call_timeout(&self) -> Duration {
        crate::plugins::Limits::default()
            .call_timeout
            .min(self.delivery.lease / 2)
    }

    /// The longest a provider call may take under any plugin's policy.
    pub fn longest_plugin_call(&self) -> Duration {
        sandbox_timeouts(&self.plugins.settings)
            .map(|(_, timeout)| timeout)
            .fold(self.plugin_call_timeout(), Duration::max)
    }

    /// The longest an attempt may wait for its turn at a provider's rate:
    /// the bucket holds a second's sends, so with more workers than that
    /// the last waits for the rest.
    pub fn longest_pacing_wait(&self) -> Duration {
        let beyond_burst = self
            .delivery
            .send_concurrency
            .saturating_sub(self.delivery.provider_rate as usize);
        Duration::from_secs_f64(beyond_burst as f64 / f64::from(self.delivery.provider_rate.max(1)))
    }

    /// Refuses settings that cannot hold together: an attempt must be able
    /// to wait its turn at the provider's rate and make its call inside its
    /// lease (less a tenth, for recording it), or another worker could take
    /// the message back mid-send and send it again.
    pub(super) fn check_contradictions(&self) -> Result<(), ConfigError> {
        let pacing = self.longest_pacing_wait();
        let room = self.delivery.lease - self.delivery.lease / 10;
        let mut calls = vec![(
            "the default plugin call timeout (10s, or half of CHIRP_LEASE)".to_string(),
            self.plugin_call_timeout(),
        )];
        calls.extend(
            sandbox_timeouts(&self.plugins.settings)
                .map(|(plugin, t)| (PluginSettings::sandbox_variable(plugin, "timeout"), t)),
        );
        for (what, call) in calls {
            if call + pacing > room {
                return Err(ConfigError::Contradiction {
                    vars: format!(
                        "CHIRP_LEASE, {what}, CHIRP_SEND_CONCURRENCY and CHIRP_PROVIDER_RATE"
                    ),
                    reason: format!(
                        "an attempt may wait {pacing:?} for its turn at the provider's rate and \
                         then call for up to {call:?}, more than nine tenths of the {:?} lease; \
                         lengthen CHIRP_LEASE, shorten the timeout, or lower the concurrency \
                         relative to the rate",
                        self.delivery.lease
                    ),
                });
            }
        }
        Ok(())
    }
}

/// Every `timeout` an operator set in a sandbox policy, read as the policy
/// reads it (one that does not read is refused when its plugin loads).
fn sandbox_timeouts(settings: &PluginSettings) -> impl Iterator<Item = (&String, Duration)> {
    settings.sandboxes().filter_map(|(plugin, keys)| {
        let timeout = crate::plugins::policy::call_duration(keys.get("timeout")?).ok()?;
        Some((plugin, timeout))
    })
}
