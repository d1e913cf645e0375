//! chirp's rules component for EarlyBird: which templates a business event
//! leads to, for whom, and when.
//!
//! It exists so that the mapping from events to messages is data an
//! operator can swap while chirp runs, not code in the host. All the logic
//! is in [`decide`]; this file is the WIT glue.

pub mod decide;

wit_bindgen::generate!({
    path: "../../wit",
    world: "routing-rules",
});

use chirp::plugin::event_types::{Decision, Event, RulesDescriptor, Send, Skip};
use exports::chirp::plugin::cancellation::{CancelRequest, Guest as Cancellation};
use exports::chirp::plugin::routing::{Guest as Routing, RouteChoice};
use exports::chirp::plugin::selection::Guest;

struct EarlyBirdRules;

impl Guest for EarlyBirdRules {
    fn describe() -> RulesDescriptor {
        RulesDescriptor {
            name: "rules-earlybird".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            kinds: decide::KINDS.iter().map(|(k, _)| k.to_string()).collect(),
        }
    }

    fn decide(event: Event) -> Result<Vec<Decision>, String> {
        let payload = match serde_json::from_str(&event.payload) {
            Ok(serde_json::Value::Object(map)) => map,
            _ => return Err("data must be a JSON object".into()),
        };
        let recipient = decide::Recipient {
            language: event.recipient.language,
            timezone: event.recipient.timezone,
            opt_outs: event.recipient.opt_outs,
        };
        let decisions = decide::decide(&event.kind, &payload, &recipient, event.now_ms)?;
        Ok(decisions
            .into_iter()
            .map(|d| match d {
                decide::Decision::Send {
                    template,
                    language,
                    variables,
                    not_before_ms,
                } => Decision::Send(Send {
                    template,
                    language,
                    variables: serde_json::Value::Object(variables).to_string(),
                    not_before_ms,
                }),
                decide::Decision::Skip { template, reason } => {
                    Decision::Skip(Skip { template, reason })
                }
            })
            .collect())
    }
}

export!(EarlyBirdRules);

impl Cancellation for EarlyBirdRules {
    fn cancels(event: Event) -> Result<Vec<CancelRequest>, String> {
        Ok(decide::cancels(&event.kind)
            .into_iter()
            .map(|(templates, reason)| CancelRequest {
                templates: templates.into_iter().map(String::from).collect(),
                reason: reason.into(),
            })
            .collect())
    }
}

impl Routing for EarlyBirdRules {
    fn routes(event: Event) -> Result<Vec<RouteChoice>, String> {
        Ok(decide::routes(&event.kind)
            .into_iter()
            .map(|(template, fallback)| RouteChoice {
                template: template.into(),
                fallback: fallback.into_iter().map(String::from).collect(),
            })
            .collect())
    }
}
