//! MyOperator's send written natively in Rust, for the benchmark only: the
//! component's own request and classification code (its `request` and
//! `classify` modules, compiled here from the plugin's sources against the
//! host's bindings of the same WIT types), over the HTTP client the host
//! gives components, with no sandbox around it.
//!
//! Why: the issue asks what the sandbox costs in a drain. Draining through
//! chirp's scheduler once with the component and once with this, on the
//! same machine in the same run, answers it; everything but the sandbox is
//! the same code.

use std::time::Duration;

use chirp::delivery::Providers;
use chirp::plugins::bindings::{self, Failure, SendError};
use chirp::plugins::network::Clients;
use chirp::plugins::{CallError, Limits, NotLoaded, SendAnswer};
use tokio::sync::broadcast;

/// The WIT types `request` and `classify` read (`super::wire` in the
/// plugin), here from the host's bindings.
mod wire {
    #[cfg(test)]
    pub use chirp::plugins::bindings::TemplateRef;
    pub use chirp::plugins::bindings::{Failure, Message, Receipt, SendError, http};
}

#[path = "../../plugins/myoperator/src/classify.rs"]
mod classify;
// `host_of` serves the component's `describe`, which a native send does
// without.
#[allow(dead_code)]
#[path = "../../plugins/myoperator/src/request.rs"]
mod request;

/// The component's time limit for one request.
const REQUEST_TIMEOUT: Duration = Duration::from_millis(15_000);

/// The MyOperator provider without the sandbox, configured as the
/// component would be.
pub struct NativeMyOperator {
    client: reqwest::Client,
    base_url: String,
    api_key: String,
    account_id: String,
    phone_number_id: String,
    timeout: Duration,
    loaded: broadcast::Sender<String>,
}

impl NativeMyOperator {
    /// A provider that sends to `base_url` with these credentials, through
    /// the host's client for plugins allowed private addresses (the mock
    /// is on loopback).
    pub fn new(
        base_url: &str,
        api_key: &str,
        account_id: &str,
        phone_number_id: &str,
    ) -> NativeMyOperator {
        let clients = Clients::new().expect("HTTP client");
        NativeMyOperator {
            client: clients.any_address,
            base_url: base_url.trim_end_matches('/').to_string(),
            api_key: api_key.into(),
            account_id: account_id.into(),
            phone_number_id: phone_number_id.into(),
            timeout: REQUEST_TIMEOUT.min(Limits::default().http_timeout),
            loaded: broadcast::channel(1).0,
        }
    }

    /// What the component's `send` does, step for step.
    async fn send_one(&self, msg: &bindings::Message) -> SendAnswer {
        let body = request::body(msg, &self.phone_number_id).map_err(|e| {
            SendError::Permanent(Failure {
                code: e.code().into(),
                message: e.to_string(),
            })
        })?;
        let response = self
            .client
            .post(format!("{}/chat/messages", self.base_url))
            .timeout(self.timeout)
            .header("authorization", format!("Bearer {}", self.api_key))
            .header("x-myop-company-id", &self.account_id)
            .header("content-type", "application/json")
            .header("accept", "application/json")
            .body(body)
            .send()
            .await;
        let outcome = match response {
            Ok(response) => {
                let status = response.status().as_u16();
                let retry_after = response
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string);
                match response.bytes().await {
                    Ok(body) => classify::response(status, retry_after.as_deref(), &body),
                    Err(e) => classify::transport(&transport_error(&e)),
                }
            }
            Err(e) => classify::transport(&transport_error(&e)),
        };
        outcome.into_answer()
    }
}

fn transport_error(e: &reqwest::Error) -> bindings::http::Error {
    if e.is_timeout() {
        bindings::http::Error::Timeout
    } else {
        bindings::http::Error::Connect(e.to_string())
    }
}

impl Providers for NativeMyOperator {
    async fn send(
        &self,
        name: &str,
        message: &bindings::Message,
    ) -> Result<(String, Result<SendAnswer, CallError>), NotLoaded> {
        if name != "myoperator" {
            return Err(NotLoaded(name.into()));
        }
        Ok(("native".into(), Ok(self.send_one(message).await)))
    }

    fn subscribe_loaded(&self) -> broadcast::Receiver<String> {
        self.loaded.subscribe()
    }
}
