//! chirp's provider component for Meta's WhatsApp Business Cloud API,
//! written only against the `chirp:plugin@0.2.0` contract, as a plugin
//! author outside chirp would write it.
//!
//! It sends (`POST {base}/{version}/{phone-number-id}/messages` with the
//! access token) and reads Meta's webhooks (`GET` subscription check,
//! `POST` notifications signed with the app secret).
//!
//! # Layout
//! - [`request`]: message -> Graph API request body (pure).
//! - [`classify`]: Graph API answer -> outcome (pure).
//! - [`webhook`]: webhook request -> events, signature and challenge
//!   (pure).
//! - this file: the WIT glue (settings, the host's HTTP call, logging).

pub mod classify;
pub mod request;
pub mod webhook;

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
    Accepted, DeliveryState, Event, Guest as Webhooks, InboundMessage, Rejection, StatusUpdate,
    WebhookRequest,
};

/// The Graph API's address.
pub const DEFAULT_BASE_URL: &str = "https://graph.facebook.com";
/// The Graph API version used unless the operator says otherwise.
pub const DEFAULT_API_VERSION: &str = "v21.0";
/// Time the host may spend on one request.
const REQUEST_TIMEOUT_MS: u32 = 15_000;

struct Meta;

impl Delivery for Meta {
    fn describe() -> Descriptor {
        Descriptor {
            name: "meta-whatsapp".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            settings: vec![
                setting(
                    "access-token",
                    true,
                    true,
                    None,
                    "Bearer token of the business's system user.",
                ),
                setting(
                    "phone-number-id",
                    true,
                    false,
                    None,
                    "Id of the WhatsApp business number that sends.",
                ),
                setting(
                    "app-secret",
                    true,
                    true,
                    None,
                    "The Meta app's secret: webhooks are signed with it (X-Hub-Signature-256).",
                ),
                setting(
                    "verify-token",
                    true,
                    true,
                    None,
                    "The token Meta's subscription check must present (hub.verify_token).",
                ),
                setting(
                    "api-version",
                    false,
                    false,
                    Some(DEFAULT_API_VERSION),
                    "Graph API version.",
                ),
                setting(
                    "base-url",
                    false,
                    false,
                    Some(DEFAULT_BASE_URL),
                    "Graph API base URL.",
                ),
            ],
            hosts: host_of(&base_url()).into_iter().collect(),
        }
    }

    fn send(msg: Message) -> Result<Receipt, SendError> {
        let token = required("access-token")?;
        let number = required("phone-number-id")?;
        let body = match &msg.template {
            Some(t) => request::template(&msg.recipient, &t.name, &t.language, &t.parameters),
            None => request::text(&msg.recipient, &msg.text),
        }
        .map_err(|e| {
            SendError::Permanent(Failure {
                code: e.code().into(),
                message: e.to_string(),
            })
        })?;
        let version = config::get("api-version").unwrap_or_else(|| DEFAULT_API_VERSION.into());
        let req = http::Request {
            method: "POST".into(),
            url: format!(
                "{}/{version}/{number}/messages",
                base_url().trim_end_matches('/')
            ),
            headers: vec![
                ("authorization".into(), format!("Bearer {token}")),
                ("content-type".into(), "application/json".into()),
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

impl Webhooks for Meta {
    fn handle(request: WebhookRequest) -> Result<Accepted, Rejection> {
        let refused = |r: webhook::Refusal| match r {
            webhook::Refusal::Unauthenticated(why) => Rejection::Unauthenticated(why),
            webhook::Refusal::Malformed(why) => Rejection::Malformed(why),
        };
        let setting = |name: &str| {
            config::get(name).ok_or_else(|| {
                Rejection::Unauthenticated(format!("setting {name} is not configured"))
            })
        };
        if request.method == "GET" {
            return webhook::challenge(&request.query, &setting("verify-token")?)
                .map(Accepted::Verification)
                .map_err(refused);
        }
        let signature = request
            .headers
            .iter()
            .find(|(n, _)| n == "x-hub-signature-256")
            .map(|(_, v)| v.as_str());
        webhook::verify_signature(signature, &request.body, &setting("app-secret")?)
            .map_err(refused)?;
        let events =
            webhook::events(&request.body, &setting("phone-number-id")?).map_err(refused)?;
        Ok(Accepted::Events(events.into_iter().map(event).collect()))
    }
}

export!(Meta);

fn event(e: webhook::Event) -> Event {
    match e {
        webhook::Event::Status(s) => Event::Status(StatusUpdate {
            provider_message_id: s.message_id,
            status: match s.state {
                webhook::State::Sent => DeliveryState::Sent,
                webhook::State::Delivered => DeliveryState::Delivered,
                webhook::State::Read => DeliveryState::Read,
                webhook::State::Failed => DeliveryState::Failed,
            },
            at: s.at,
            error: s.error.map(|(code, message)| Failure { code, message }),
            event_id: s.event_id,
        }),
        webhook::Event::Inbound(i) => Event::Inbound(InboundMessage {
            from: i.from,
            text: i.text,
            at: i.at,
            event_id: i.event_id,
            reply_to: i.reply_to,
        }),
    }
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
