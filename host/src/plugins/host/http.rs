//! `http.fetch`: the one door out of a plugin's sandbox.
//!
//! A request goes out only if every check passes: an `http`/`https` URL of
//! bounded length without user info, whose `host[:port]` the plugin
//! declared and the operator allowed, to a public address unless the
//! operator allowed private ones (literal addresses are checked here,
//! names by the resolver the client connects with, see
//! [`crate::plugins::network`]); one of five methods; headers the plugin
//! may set (never `Host`, `Content-Length`, `Transfer-Encoding` or any
//! hop-by-hop header: those belong to the host's client); within the
//! call's budget of requests and the request body cap. The client never
//! uses a proxy and never follows a redirect.

use std::time::Duration;

use reqwest::header::{HeaderName, HeaderValue};

use super::{HostState, Outbound};
use crate::plugins::bindings::http;
use crate::plugins::network::{authority, is_public, literal_ip};

/// The longest URL a plugin may ask for.
const MAX_URL_BYTES: usize = 8 * 1024;
/// The most headers one request may carry, and their total size.
const MAX_HEADERS: usize = 64;
const MAX_HEADER_BYTES: usize = 16 * 1024;

/// Headers the host's client owns: the target (`host`), the framing of the
/// body (`content-length`, `transfer-encoding`, `te`, `trailer`, `expect`)
/// and the connection (`connection` and the hop-by-hop headers of RFC 9110
/// section 7.6.1, proxies'). A plugin that set them could smuggle a second
/// request into a connection or address another host than the one checked.
const FORBIDDEN_HEADERS: [&str; 12] = [
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authorization",
    "proxy-authenticate",
    "te",
    "trailer",
    "upgrade",
    "expect",
];

impl HostState {
    /// Checks that `url` may be fetched by this plugin; returns it parsed.
    pub(in crate::plugins) fn permit(&self, url: &str) -> Result<reqwest::Url, http::Error> {
        let denied = |reason: String| Err(http::Error::Denied(reason));
        if url.len() > MAX_URL_BYTES {
            return denied(format!("the URL is longer than {MAX_URL_BYTES} bytes"));
        }
        let url = reqwest::Url::parse(url)
            .map_err(|e| http::Error::Denied(format!("invalid URL: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return denied(format!("scheme {} is not allowed", url.scheme()));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return denied("the URL carries user info; send credentials in a header".into());
        }
        let authority =
            authority(&url).ok_or_else(|| http::Error::Denied("URL has no host".into()))?;
        if !self.grant.hosts.contains(&authority) {
            return denied(format!(
                "{authority} is not among the hosts plugin {} may reach",
                self.grant.plugin
            ));
        }
        if let Some(ip) = literal_ip(&url)
            && !self.grant.allow_private
            && !is_public(ip)
        {
            return denied(format!(
                "{ip} is a private or loopback address; the operator has not allowed plugin {} to reach those",
                self.grant.plugin
            ));
        }
        Ok(url)
    }

    /// Everything about `req` but its URL: budget, method, headers, body.
    fn check_request(
        &self,
        req: &http::Request,
    ) -> Result<(reqwest::Method, reqwest::header::HeaderMap), http::Error> {
        let denied = |reason: String| http::Error::Denied(reason);
        let limits = &self.grant.limits;
        if self.requests >= limits.http_max_requests {
            return Err(denied(format!(
                "a call may make {} HTTP requests; this plugin tried more",
                limits.http_max_requests
            )));
        }
        if req.body.len() > limits.http_max_request_bytes {
            return Err(denied(format!(
                "a request body may be {} bytes; this one is {}",
                limits.http_max_request_bytes,
                req.body.len()
            )));
        }
        let method = match req.method.to_ascii_uppercase().as_str() {
            "GET" => reqwest::Method::GET,
            "POST" => reqwest::Method::POST,
            "PUT" => reqwest::Method::PUT,
            "PATCH" => reqwest::Method::PATCH,
            "DELETE" => reqwest::Method::DELETE,
            other => return Err(denied(format!("method {other:?} is not allowed"))),
        };
        if req.headers.len() > MAX_HEADERS {
            return Err(denied(format!("more than {MAX_HEADERS} headers")));
        }
        let size: usize = req.headers.iter().map(|(n, v)| n.len() + v.len()).sum();
        if size > MAX_HEADER_BYTES {
            return Err(denied(format!(
                "headers of more than {MAX_HEADER_BYTES} bytes"
            )));
        }
        let mut headers = reqwest::header::HeaderMap::new();
        for (name, value) in &req.headers {
            let parsed = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| denied(format!("{name:?} is not a header name")))?;
            if FORBIDDEN_HEADERS.contains(&parsed.as_str()) || parsed.as_str().starts_with("proxy-")
            {
                return Err(denied(format!(
                    "header {parsed} is the host's to set, not a plugin's"
                )));
            }
            let value = HeaderValue::from_str(value)
                .map_err(|_| denied(format!("the value of header {parsed} is not valid")))?;
            headers.append(parsed, value);
        }
        Ok((method, headers))
    }

    /// Records a refusal: logged, and remembered so that the call cannot
    /// end as a success.
    fn refuse(&mut self, refusal: http::Error) -> http::Error {
        if let http::Error::Denied(reason) = &refusal {
            tracing::warn!(plugin = %self.grant.plugin, %reason, "plugin request refused");
            self.denied.get_or_insert_with(|| reason.clone());
        }
        refusal
    }
}

impl http::Host for HostState {
    async fn fetch(&mut self, req: http::Request) -> Result<http::Response, http::Error> {
        let checked = self
            .permit(&req.url)
            .and_then(|url| Ok((url, self.check_request(&req)?)));
        let (url, (method, headers)) = match checked {
            Ok(checked) => checked,
            Err(refusal) => return Err(self.refuse(refusal)),
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
        let timeout = req
            .timeout_ms
            .map(|ms| Duration::from_millis(ms.into()))
            .unwrap_or(limits.http_timeout)
            .min(limits.http_timeout);
        let mut response = http
            .request(method, url)
            .timeout(timeout)
            .headers(headers)
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::plugins::Limits;
    use crate::plugins::host::Grant;
    use crate::plugins::network::Clients;

    fn state(hosts: &[&str], allow_private: bool) -> HostState {
        let grant = Grant {
            plugin: "p".into(),
            hosts: hosts.iter().map(|h| h.to_string()).collect(),
            allow_private,
            ..Grant::default()
        };
        HostState::new(Arc::new(grant), Outbound::Network(Clients::new().unwrap()))
    }

    fn request(url: &str, headers: &[(&str, &str)]) -> http::Request {
        http::Request {
            method: "POST".into(),
            url: url.into(),
            headers: headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
            body: vec![],
            timeout_ms: None,
        }
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
        let req = request("http://127.0.0.1:9/", &[]);
        assert!(matches!(
            http::Host::fetch(&mut s, req).await,
            Err(http::Error::Denied(_))
        ));
        assert!(s.denied.is_some(), "a refusal spoils the call");
    }

    /// Every spelling of loopback a plugin could declare as its host. Each
    /// one is refused while private addresses are not allowed; with
    /// `allow_private` (the check switched off) each one is let through,
    /// which shows that the check, not the spelling, is what stops it.
    #[test]
    fn every_spelling_of_a_private_address_is_refused() {
        let spellings = [
            ("http://127.0.0.1:4010/", "127.0.0.1:4010"),
            ("http://2130706433:4010/", "127.0.0.1:4010"), // decimal
            ("http://0x7f000001:4010/", "127.0.0.1:4010"), // hex
            ("http://0177.0.0.1:4010/", "127.0.0.1:4010"), // octal
            ("http://127.1:4010/", "127.0.0.1:4010"),      // short form
            ("http://[::1]:4010/", "[::1]:4010"),
            ("http://[::ffff:127.0.0.1]:4010/", "[::ffff:7f00:1]:4010"), // mapped
            (
                "http://[64:ff9b::127.0.0.1]:4010/",
                "[64:ff9b::7f00:1]:4010",
            ), // NAT64
            ("http://[::127.0.0.1]:4010/", "[::7f00:1]:4010"),           // IPv4-compatible
            ("http://[2002:7f00:1::1]:4010/", "[2002:7f00:1::1]:4010"),  // 6to4
            (
                "http://[64:ff9b::a9fe:a9fe]:8080/",
                "[64:ff9b::a9fe:a9fe]:8080",
            ), // metadata
            ("http://0.0.0.0:4010/", "0.0.0.0:4010"),
            ("http://[::]:4010/", "[::]:4010"),
        ];
        for (url, declared) in spellings {
            let guarded = state(&[declared], false);
            assert!(
                matches!(guarded.permit(url), Err(http::Error::Denied(m)) if m.contains("private")),
                "{url} was let through"
            );
            let open = state(&[declared], true);
            assert!(
                open.permit(url).is_ok(),
                "{url} not understood as {declared}"
            );
        }
    }

    #[test]
    fn user_info_never_reaches_a_request() {
        let s = state(&["127.0.0.1:4010", "api.example.com"], true);
        for url in [
            "http://api.example.com@127.0.0.1:4010/",
            "http://user:pass@api.example.com/",
            "http://:pass@api.example.com/",
        ] {
            assert!(
                matches!(s.permit(url), Err(http::Error::Denied(m)) if m.contains("user info")),
                "{url}"
            );
        }
    }

    #[test]
    fn a_plugin_cannot_set_the_hosts_framing_or_hop_by_hop_headers() {
        let s = state(&["api.example.com"], false);
        let ok = request(
            "https://api.example.com/",
            &[("authorization", "Bearer x"), ("X-Custom", "1")],
        );
        assert!(s.check_request(&ok).is_ok());
        for (name, value) in [
            ("Host", "internal.example"),
            ("content-length", "0"),
            ("Transfer-Encoding", "chunked"),
            ("connection", "keep-alive, x-secret"),
            ("Keep-Alive", "timeout=5"),
            ("TE", "trailers"),
            ("Trailer", "x"),
            ("upgrade", "websocket"),
            ("proxy-authorization", "Basic x"),
            ("proxy-anything", "x"),
            ("expect", "100-continue"),
            ("x-smuggled", "a\r\nHost: other"),
            ("bad name", "x"),
        ] {
            let req = request("https://api.example.com/", &[(name, value)]);
            assert!(
                matches!(s.check_request(&req), Err(http::Error::Denied(_))),
                "{name}: {value:?}"
            );
        }
    }

    #[test]
    fn a_call_has_a_budget_of_requests_and_of_body_bytes() {
        let limits = Limits::default();
        let mut s = state(&["api.example.com"], false);
        let req = request("https://api.example.com/", &[]);
        for _ in 0..limits.http_max_requests {
            assert!(s.check_request(&req).is_ok());
            s.requests += 1;
        }
        assert!(matches!(s.check_request(&req), Err(http::Error::Denied(_))));

        let s = state(&["api.example.com"], false);
        let mut big = request("https://api.example.com/", &[]);
        big.body = vec![0; limits.http_max_request_bytes + 1];
        assert!(matches!(s.check_request(&big), Err(http::Error::Denied(_))));
        let long = format!("https://api.example.com/{}", "a".repeat(MAX_URL_BYTES));
        assert!(matches!(s.permit(&long), Err(http::Error::Denied(_))));
    }

    #[tokio::test]
    async fn the_self_test_never_leaves_the_host() {
        let grant = Grant {
            plugin: "p".into(),
            hosts: vec!["api.example.com".into()],
            ..Grant::default()
        };
        let mut s = HostState::new(Arc::new(grant), Outbound::SelfTest);
        let req = request("https://api.example.com/send", &[]);
        let response = http::Host::fetch(&mut s, req).await.unwrap();
        assert_eq!(response.status, 503);
        assert_eq!(s.requests, 1);
    }
}
