//! chirp's provider component for MyOperator's WhatsApp API.
//!
//! It exists so that everything MyOperator-specific (URL, headers, body
//! shape, the meaning of its error codes) lives in one sandboxed component
//! that an operator can replace while chirp runs. The host hands it a
//! rendered message; it builds one `POST {base}/chat/messages`, has the host
//! perform it, and classifies the answer as sent, retryable or permanent.
//!
//! # Layout
//! - [`request`]: message -> MyOperator request body (pure).
//! - [`classify`]: MyOperator response -> outcome (pure).
//! - [`wire`]: the WIT types those two use.
//! - this file: the WIT glue (settings, the host's HTTP call, logging).

pub mod classify;
pub mod request;

wit_bindgen::generate!({
    path: "../../wit",
    world: "provider",
});

/// The WIT types the pure modules read, under one path. Here they are the
/// guest's bindings; chirp's benchmark compiles the same two modules
/// natively against the host's bindings of the same types, so that its
/// native provider builds and classifies exactly as this component does.
pub mod wire {
    pub use crate::chirp::plugin::http;
    pub use crate::chirp::plugin::types::{Failure, Message, Receipt, SendError, TemplateRef};
}

use chirp::plugin::config;
use chirp::plugin::http;
use chirp::plugin::log::{self, Level};
use chirp::plugin::types::{Descriptor, Failure, Message, Receipt, SendError, Setting};
use exports::chirp::plugin::delivery::Guest;

/// Default MyOperator API base, as in the original service's settings.
pub const DEFAULT_BASE_URL: &str = "https://publicapi.myoperator.co";

/// Time the host may spend on one request before giving up.
const REQUEST_TIMEOUT_MS: u32 = 15_000;

struct MyOperator;

impl Guest for MyOperator {
    fn describe() -> Descriptor {
        let base = base_url();
        Descriptor {
            name: "myoperator".into(),
            // A build can carry its own version (e.g. a canary), set at
            // compile time; chirp records it with every attempt.
            version: option_env!("MYOPERATOR_BUILD_VERSION")
                .unwrap_or(env!("CARGO_PKG_VERSION"))
                .into(),
            settings: vec![
                setting(
                    "api-key",
                    true,
                    true,
                    None,
                    "Bearer token of the MyOperator API.",
                ),
                setting(
                    "account-id",
                    true,
                    false,
                    None,
                    "Company id, sent as X-MYOP-COMPANY-ID.",
                ),
                setting(
                    "phone-number-id",
                    true,
                    false,
                    None,
                    "Id of the WhatsApp business number that sends.",
                ),
                setting(
                    "base-url",
                    false,
                    false,
                    Some(DEFAULT_BASE_URL),
                    "API base URL.",
                ),
            ],
            hosts: request::host_of(&base).into_iter().collect(),
        }
    }

    fn send(msg: Message) -> Result<Receipt, SendError> {
        let settings = Settings::read()?;
        let body = request::body(&msg, &settings.phone_number_id).map_err(|e| {
            SendError::Permanent(Failure {
                code: e.code().into(),
                message: e.to_string(),
            })
        })?;
        let req = http::Request {
            method: "POST".into(),
            url: format!("{}/chat/messages", settings.base_url.trim_end_matches('/')),
            headers: vec![
                (
                    "authorization".into(),
                    format!("Bearer {}", settings.api_key),
                ),
                ("x-myop-company-id".into(), settings.account_id),
                ("content-type".into(), "application/json".into()),
                ("accept".into(), "application/json".into()),
            ],
            body: body.into_bytes(),
            timeout_ms: Some(REQUEST_TIMEOUT_MS),
        };
        let outcome = match http::fetch(&req) {
            Ok(resp) => classify::response(resp.status, retry_after(&resp.headers), &resp.body),
            Err(err) => classify::transport(&err),
        };
        match &outcome {
            classify::Outcome::Sent { .. } => {}
            classify::Outcome::Retryable { code, message, .. } => {
                log::log(Level::Warn, &format!("retryable failure {code}: {message}"));
            }
            classify::Outcome::Permanent { code, message } => {
                log::log(Level::Warn, &format!("permanent failure {code}: {message}"));
            }
        }
        outcome.into_answer()
    }
}

export!(MyOperator);

fn setting(
    name: &str,
    required: bool,
    secret: bool,
    default_value: Option<&str>,
    description: &str,
) -> Setting {
    Setting {
        name: name.into(),
        required,
        secret,
        default_value: default_value.map(Into::into),
        description: description.into(),
    }
}

fn base_url() -> String {
    config::get("base-url").unwrap_or_else(|| DEFAULT_BASE_URL.into())
}

/// The settings one send needs, read through the host's config interface.
struct Settings {
    api_key: String,
    account_id: String,
    phone_number_id: String,
    base_url: String,
}

impl Settings {
    fn read() -> Result<Self, SendError> {
        let required = |name: &str| {
            config::get(name).ok_or_else(|| {
                SendError::Permanent(Failure {
                    code: "missing_setting".into(),
                    message: format!("setting {name} is not configured"),
                })
            })
        };
        Ok(Settings {
            api_key: required("api-key")?,
            account_id: required("account-id")?,
            phone_number_id: required("phone-number-id")?,
            base_url: base_url(),
        })
    }
}

fn retry_after(headers: &[(String, String)]) -> Option<&str> {
    headers
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case("retry-after"))
        .map(|(_, value)| value.as_str())
}
