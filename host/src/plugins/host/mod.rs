//! What a plugin may ask of the host: outbound HTTP ([`http`]), its own
//! settings (here), and logging ([`log`]). One [`HostState`] lives in each
//! plugin call's `Store`.
//!
//! **Invariant:** deny by default. A plugin's only way out of its sandbox
//! is `http.fetch`, which refuses every host the plugin did not declare,
//! never follows redirects (a redirect could leave the declared hosts),
//! and caps time, sizes and the number of requests. Every import a plugin
//! can call in a loop is bounded per call ([`Limits`]). WASI is linked only
//! because Rust's standard library imports it; its context grants no
//! files, environment, sockets or name lookups, and its stdout and stderr
//! go nowhere.

mod http;
mod log;

use std::collections::HashMap;
use std::sync::Arc;

use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::bindings::{config, types};
use super::limits::{Limits, MemoryMeter};
use super::network::Clients;

/// What a plugin was granted: its resolved settings, the hosts it may
/// reach (declared by it and allowed by the operator) and its limits.
#[derive(Debug, Clone, Default)]
pub struct Grant {
    /// The plugin's name.
    pub plugin: String,
    /// The settings it declared, with the operator's values.
    pub settings: HashMap<String, String>,
    /// `host` or `host:port`, lower case. Empty: no HTTP at all.
    pub hosts: Vec<String>,
    /// Whether the operator lets it reach private and loopback addresses.
    pub allow_private: bool,
    /// What one call may use.
    pub limits: Limits,
}

/// Where a plugin's HTTP requests go.
#[derive(Clone)]
pub enum Outbound {
    /// Over the network, through the host's clients.
    Network(Clients),
    /// Nowhere: every request is answered `503` without leaving the host.
    /// Used to self-test a plugin before it is swapped in.
    SelfTest,
}

/// The per-call state of a plugin's `Store`.
pub struct HostState {
    wasi: WasiCtx,
    table: ResourceTable,
    /// Memory of the whole call (the store's limiter).
    pub(in crate::plugins) memory: MemoryMeter,
    grant: Arc<Grant>,
    outbound: Outbound,
    /// HTTP requests made in this call (the self-test reports them).
    pub(in crate::plugins) requests: usize,
    /// Log lines and bytes kept from this call, and whether the excess
    /// was noted.
    log: log::LogMeter,
    /// The first request the host refused in this call: a plugin that
    /// tried to leave its sandbox does not get to call the attempt a
    /// success.
    pub(in crate::plugins) denied: Option<String>,
}

impl HostState {
    /// The state of one call under `grant`.
    pub fn new(grant: Arc<Grant>, outbound: Outbound) -> HostState {
        let wasi = WasiCtx::builder()
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        HostState {
            wasi,
            table: ResourceTable::new(),
            memory: MemoryMeter::new(grant.limits.memory_bytes),
            grant,
            outbound,
            requests: 0,
            log: log::LogMeter::default(),
            denied: None,
        }
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl types::Host for HostState {}

impl config::Host for HostState {
    /// Only the settings the plugin declared, with the operator's values
    /// for this plugin; any other name answers `none`.
    async fn get(&mut self, name: String) -> Option<String> {
        self.grant.settings.get(&name).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_plugin_reads_only_its_own_settings() {
        let grant = Grant {
            plugin: "p".into(),
            settings: HashMap::from([("api-key".to_string(), "k".to_string())]),
            ..Grant::default()
        };
        let mut s = HostState::new(Arc::new(grant), Outbound::SelfTest);
        assert_eq!(
            config::Host::get(&mut s, "api-key".into()).await.as_deref(),
            Some("k")
        );
        for other in ["PATH", "CHIRP_JWT_SECRET", "jwt-secret", ""] {
            assert_eq!(config::Host::get(&mut s, other.into()).await, None);
        }
    }
}
