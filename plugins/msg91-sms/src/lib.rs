//! chirp's provider component for MSG91's SMS flow API, written only
//! against the `chirp:plugin@0.2.0` contract.
//!
//! It sends a DLT-registered template (`POST {base}/api/v5/flow/` with the
//! `authkey` header: the template id is the approved template's name chirp
//! hands over, its variables the parameters in order) and reads MSG91's
//! delivery reports (its webhook, versions 2 and 3, authenticated by a
//! token in the URL).
//!
//! # Layout
//! - [`request`]: message -> flow request body, DLT limits (pure).
//! - [`classify`]: MSG91's answer -> outcome (pure).
//! - [`report`]: webhook request -> delivery reports (pure).
//! - this file: the WIT glue (settings, the host's HTTP call, logging).

pub mod classify;
pub mod report;
pub mod request;

wit_bindgen::generate!({
    path: "../../wit",
    world: "webhook-provider",
});

use chirp::plugin::config;
use chirp::plugin::http;
use chirp::plugin::log::{self, Level};
use chirp::plugin::types::{Descriptor, Failure, Message, Receipt, SendError, Setting};
use exports::chirp::plugin::delivery::Guest as Delivery;
use exports::chirp::plugin::webhooks::{
    Accepted, DeliveryState, Event, Guest as Webhooks, Rejection, StatusUpdate, WebhookRequest,
};

/// MSG91's address.
pub const DEFAULT_BASE_URL: &str = "https://control.msg91.com";
/// Time the host may spend on one request.
const REQUEST_TIMEOUT_MS: u32 = 15_000;

struct Msg91;

impl Delivery for Msg91 {
    fn describe() -> Descriptor {
        Descriptor {
            name: "msg91-sms".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            settings: vec![
                setting("authkey", true, true, None, "MSG91's authentication key."),
                setting(
                    "sender",
                    false,
                    false,
                    None,
                    "The DLT sender id (6 letters), when the flow does not fix one.",
                ),
                setting(
                    "webhook-token",
                    true,
                    true,
                    None,
                    "A secret the delivery-report URL given to MSG91 carries as ?token=.",
                ),
                setting(
                    "base-url",
                    false,
                    false,
                    Some(DEFAULT_BASE_URL),
                    "MSG91's base URL.",
                ),
            ],
            hosts: host_of(&base_url()).into_iter().collect(),
        }
    }

    fn send(msg: Message) -> Result<Receipt, SendError> {
        let authkey = required("authkey")?;
        let sender = config::get("sender");
        let template = msg.template.as_ref();
        let body = request::flow(
            &msg.recipient,
            template.map(|t| t.name.as_str()),
            template.map_or(&[][..], |t| &t.parameters),
            sender.as_deref(),
        )
        .map_err(|e| {
            SendError::Permanent(Failure {
                code: e.code().into(),
                message: e.to_string(),
            })
        })?;
        let req = http::Request {
            method: "POST".into(),
            url: format!("{}/api/v5/flow/", base_url().trim_end_matches('/')),
            headers: vec![
                ("authkey".into(), authkey),
                ("content-type".into(), "application/json".into()),
                ("accept".into(), "application/json".into()),
            ],
            body: body.to_string().into_bytes(),
            timeout_ms: Some(REQUEST_TIMEOUT_MS),
        };
        let outcome = match http::fetch(&req) {
            Ok(resp) => {
                let retry_after = resp
                    .headers
                    .iter()
                    .find(|(n, _)| n == "retry-after")
                    .map(|(_, v)| v.as_str());
                classify::response(resp.status, retry_after, &resp.body)
            }
            Err(err) => transport(err),
        };
        match outcome {
            classify::Outcome::Sent(id) => Ok(Receipt {
                provider_message_id: id,
            }),
            classify::Outcome::Retryable {
                code,
                message,
                delay_ms,
            } => {
                log::log(Level::Warn, &format!("retryable failure {code}: {message}"));
                Err(SendError::Retryable((Failure { code, message }, delay_ms)))
            }
            classify::Outcome::Permanent { code, message } => {
                log::log(Level::Warn, &format!("permanent failure {code}: {message}"));
                Err(SendError::Permanent(Failure { code, message }))
            }
        }
    }
}

impl Webhooks for Msg91 {
    fn handle(request: WebhookRequest) -> Result<Accepted, Rejection> {
        let refused = |r: report::Refusal| match r {
            report::Refusal::Unauthenticated(why) => Rejection::Unauthenticated(why),
            report::Refusal::Malformed(why) => Rejection::Malformed(why),
        };
        let token = config::get("webhook-token").ok_or_else(|| {
            Rejection::Unauthenticated("setting webhook-token is not configured".into())
        })?;
        report::authenticate(&request.query, &token).map_err(refused)?;
        if request.method != "POST" {
            return Err(Rejection::Malformed("MSG91 reports with POST".into()));
        }
        let content_type = request
            .headers
            .iter()
            .find(|(n, _)| n == "content-type")
            .map(|(_, v)| v.as_str());
        let reports = report::reports(&request.body, content_type).map_err(refused)?;
        Ok(Accepted::Events(reports.into_iter().map(event).collect()))
    }
}

export!(Msg91);

fn event(r: report::Report) -> Event {
    let (status, error) = match r.state {
        report::State::Delivered => (DeliveryState::Delivered, None),
        report::State::Failed(code, message) => {
            (DeliveryState::Failed, Some(Failure { code, message }))
        }
    };
    Event::Status(StatusUpdate {
        provider_message_id: r.request_id,
        status,
        at: r.at,
        error,
        event_id: r.event_id,
    })
}

fn transport(err: http::Error) -> classify::Outcome {
    let (code, message) = match err {
        http::Error::Timeout => ("timeout".to_string(), "no answer in time".to_string()),
        http::Error::Connect(why) => ("connect".into(), why),
        http::Error::Denied(why) => ("host_denied".into(), why),
        http::Error::TooLarge(n) => ("too_large".into(), format!("an answer over {n} bytes")),
    };
    classify::Outcome::Retryable {
        code,
        message,
        delay_ms: None,
    }
}

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

fn required(name: &str) -> Result<String, SendError> {
    config::get(name).ok_or_else(|| {
        SendError::Permanent(Failure {
            code: "missing_setting".into(),
            message: format!("setting {name} is not configured"),
        })
    })
}

fn base_url() -> String {
    config::get("base-url").unwrap_or_else(|| DEFAULT_BASE_URL.into())
}

/// `host` or `host:port` of an `http(s)` URL.
fn host_of(url: &str) -> Option<String> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))?;
    let host = rest.split(['/', '?', '#']).next()?;
    (!host.is_empty() && !host.contains('@')).then(|| host.to_ascii_lowercase())
}
