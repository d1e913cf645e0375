//! What a plugin may ask of the host: outbound HTTP, its own settings, and
//! logging. One [`HostState`] lives in each plugin call's `Store`.
//!
//! **Invariant:** deny by default. A plugin's only way out of its sandbox
//! is [`http::Host::fetch`], which refuses every host the plugin did not
//! declare, never follows redirects (a redirect could leave the declared
//! hosts), and caps time and response size. WASI is linked only because
//! Rust's standard library imports it; its context grants no files,
//! environment, sockets or name lookups.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use wasmtime::component::ResourceTable;
use wasmtime::{StoreLimits, StoreLimitsBuilder};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::bindings::{Level, http};
use super::bindings::{config, log, types};
use super::network::{Clients, is_public};

/// Limits on what one plugin call may use.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest linear memory a plugin instance may grow to.
    pub memory_bytes: usize,
    /// Wall time of one call, host HTTP included.
    pub call_timeout: Duration,
    /// Longest a single HTTP request may take.
    pub http_timeout: Duration,
    /// Largest HTTP response body handed to the plugin.
    pub http_max_response_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory_bytes: 64 * 1024 * 1024,
            call_timeout: Duration::from_secs(10),
            http_timeout: Duration::from_secs(10),
            http_max_response_bytes: 1024 * 1024,
        }
    }
}

/// What a plugin was granted: its resolved settings, the hosts it may
/// reach (declared by it and allowed by the operator) and its limits.
#[derive(Debug, Clone, Default)]
pub struct Grant {
    pub plugin: String,
    pub settings: HashMap<String, String>,
    /// `host` or `host:port`, lower case. Empty: no HTTP at all.
    pub hosts: Vec<String>,
    /// Whether the operator lets it reach private and loopback addresses.
    pub allow_private: bool,
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
    pub(super) limits: StoreLimits,
    grant: Arc<Grant>,
    outbound: Outbound,
    /// HTTP requests made in this call (the self-test reports them).
    pub(super) requests: u32,
    /// The first request the host refused in this call: a plugin that
    /// tried to leave its sandbox does not get to call the attempt a
    /// success.
    pub(super) denied: Option<String>,
}

impl HostState {
    pub fn new(grant: Arc<Grant>, outbound: Outbound) -> HostState {
        let wasi = WasiCtx::builder()
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        HostState {
            wasi,
            table: ResourceTable::new(),
            limits: StoreLimitsBuilder::new()
                .memory_size(grant.limits.memory_bytes)
                .instances(4)
                .trap_on_grow_failure(true)
                .build(),
            grant,
            outbound,
            requests: 0,
            denied: None,
        }
    }

    /// Checks that `url` may be fetched by this plugin; returns it parsed.
    fn permit(&self, url: &str) -> Result<reqwest::Url, http::Error> {
        let url = reqwest::Url::parse(url)
            .map_err(|e| http::Error::Denied(format!("invalid URL: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(http::Error::Denied(format!(
                "scheme {} is not allowed",
                url.scheme()
            )));
        }
        let host = url
            .host_str()
            .ok_or_else(|| http::Error::Denied("URL has no host".into()))?
            .to_ascii_lowercase();
        let authority = match url.port() {
            Some(port) => format!("{host}:{port}"),
            None => host,
        };
        if !self.grant.hosts.contains(&authority) {
            return Err(http::Error::Denied(format!(
                "{authority} is not among the hosts plugin {} may reach",
                self.grant.plugin
            )));
        }
        let literal_ip = match url.host() {
            Some(url::Host::Ipv4(ip)) => Some(std::net::IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => Some(std::net::IpAddr::V6(ip)),
            _ => None,
        };
        if let Some(ip) = literal_ip
            && !self.grant.allow_private
            && !is_public(ip)
        {
            return Err(http::Error::Denied(format!(
                "{ip} is a private or loopback address; the operator has not allowed plugin {} to reach those",
                self.grant.plugin
            )));
        }
        Ok(url)
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

impl http::Host for HostState {
    async fn fetch(&mut self, req: http::Request) -> Result<http::Response, http::Error> {
        let url = match self.permit(&req.url) {
            Ok(url) => url,
            Err(refusal) => {
                if let http::Error::Denied(reason) = &refusal {
                    tracing::warn!(plugin = %self.grant.plugin, %reason, "plugin request refused");
                    self.denied.get_or_insert_with(|| reason.clone());
                }
                return Err(refusal);
            }
        };
        self.requests += 1;
        let http = match &self.outbound {
            Outbound::SelfTest => {
                return Ok(http::Response {
                    status: 503,
                    headers: vec![("content-type".into(), "application/json".into())],
                    body: br#"{"status":"error","message":"chirp self-test"}"#.to_vec(),
                });
            }
            Outbound::Network(clients) if self.grant.allow_private => &clients.any_address,
            Outbound::Network(clients) => &clients.public_only,
        };
        let limits = &self.grant.limits;
        let method = match req.method.to_ascii_uppercase().as_str() {
            "GET" => reqwest::Method::GET,
            "POST" => reqwest::Method::POST,
            "PUT" => reqwest::Method::PUT,
            "PATCH" => reqwest::Method::PATCH,
            "DELETE" => reqwest::Method::DELETE,
            other => {
                return Err(http::Error::Denied(format!(
                    "method {other} is not allowed"
                )));
            }
        };
        let timeout = req
            .timeout_ms
            .map(|ms| Duration::from_millis(ms.into()))
            .unwrap_or(limits.http_timeout)
            .min(limits.http_timeout);
        let mut builder = http.request(method, url).timeout(timeout);
        for (name, value) in req.headers {
            builder = builder.header(name, value);
        }
        let mut response = builder
            .body(req.body)
            .send()
            .await
            .map_err(transport_error)?;
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string())))
            .collect();
        let cap = limits.http_max_response_bytes;
        if let Some(length) = response.content_length()
            && length > cap as u64
        {
            return Err(http::Error::TooLarge(length));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(transport_error)? {
            if body.len() + chunk.len() > cap {
                return Err(http::Error::TooLarge((body.len() + chunk.len()) as u64));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(http::Response {
            status,
            headers,
            body,
        })
    }
}

fn transport_error(e: reqwest::Error) -> http::Error {
    if e.is_timeout() {
        http::Error::Timeout
    } else {
        http::Error::Connect(e.without_url().to_string())
    }
}

impl config::Host for HostState {
    async fn get(&mut self, name: String) -> Option<String> {
        self.grant.settings.get(&name).cloned()
    }
}

impl log::Host for HostState {
    async fn log(&mut self, level: Level, message: String) {
        let plugin = self.grant.plugin.as_str();
        // What a plugin says while being self-tested against the stub is
        // about the stub's answers, not about real sends: keep it quiet.
        let level = match self.outbound {
            Outbound::SelfTest => Level::Debug,
            Outbound::Network(_) => level,
        };
        match level {
            Level::Trace => tracing::trace!(plugin, "{message}"),
            Level::Debug => tracing::debug!(plugin, "{message}"),
            Level::Info => tracing::info!(plugin, "{message}"),
            Level::Warn => tracing::warn!(plugin, "{message}"),
            Level::Error => tracing::error!(plugin, "{message}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(hosts: &[&str], allow_private: bool) -> HostState {
        let grant = Grant {
            plugin: "p".into(),
            settings: HashMap::from([("api-key".to_string(), "k".to_string())]),
            hosts: hosts.iter().map(|h| h.to_string()).collect(),
            allow_private,
            limits: Limits::default(),
        };
        HostState::new(Arc::new(grant), Outbound::Network(Clients::new().unwrap()))
    }

    #[tokio::test]
    async fn undeclared_hosts_are_denied_without_a_request() {
        let mut s = state(&["api.example.com", "127.0.0.1:4010"], true);
        assert!(s.permit("https://api.example.com/x").is_ok());
        assert!(s.permit("http://127.0.0.1:4010/x").is_ok());
        for url in [
            "https://evil.example.com/x",
            "http://127.0.0.1:4011/x",
            "https://api.example.com:8443/x",
            "file:///etc/passwd",
            "not a url",
        ] {
            assert!(
                matches!(s.permit(url), Err(http::Error::Denied(_))),
                "{url}"
            );
        }
        let req = http::Request {
            method: "GET".into(),
            url: "http://127.0.0.1:9/".into(),
            headers: vec![],
            body: vec![],
            timeout_ms: None,
        };
        assert!(matches!(
            http::Host::fetch(&mut s, req).await,
            Err(http::Error::Denied(_))
        ));
    }

    #[test]
    fn loopback_is_refused_unless_the_operator_allows_it() {
        let s = state(&["127.0.0.1:4010", "[::1]:4010"], false);
        assert!(
            matches!(s.permit("http://127.0.0.1:4010/x"), Err(http::Error::Denied(m)) if m.contains("private"))
        );
        assert!(matches!(
            s.permit("http://[::1]:4010/x"),
            Err(http::Error::Denied(_))
        ));
    }

    #[tokio::test]
    async fn the_self_test_never_leaves_the_host() {
        let grant = Grant {
            plugin: "p".into(),
            hosts: vec!["api.example.com".into()],
            ..Grant::default()
        };
        let mut s = HostState::new(Arc::new(grant), Outbound::SelfTest);
        let req = http::Request {
            method: "POST".into(),
            url: "https://api.example.com/send".into(),
            headers: vec![],
            body: vec![],
            timeout_ms: None,
        };
        let response = http::Host::fetch(&mut s, req).await.unwrap();
        assert_eq!(response.status, 503);
        assert_eq!(s.requests, 1);
    }

    #[tokio::test]
    async fn a_plugin_reads_only_its_own_settings() {
        let mut s = state(&[], false);
        assert_eq!(
            config::Host::get(&mut s, "api-key".into()).await.as_deref(),
            Some("k")
        );
        assert_eq!(config::Host::get(&mut s, "PATH".into()).await, None);
    }
}
