//! A rules component that answers what no honest one would, for chirp's
//! tests: the event's kind says how. The rules world imports nothing a
//! test could configure, so the kind is the only switch.
//!
//! | kind | answer |
//! |---|---|
//! | `flood` | 10,000 decisions to send |
//! | `long-error` | an error of 1 MiB |
//! | `unknown-skip` | a skip of a template chirp does not have, named in 1 MiB |
//! | `far-future` | a send held until `u64::MAX` ms |
//! | `ok` | one send of `delivery_delayed` |
//!
//! Built against `chirp:plugin@0.1.0` (`wit/frozen/0.1.0`) on purpose: every
//! test that loads it also shows that chirp still takes rules plugins built
//! for the first release.

wit_bindgen::generate!({
    path: "../../wit/frozen/0.1.0",
    world: "rules",
});

use chirp::plugin::event_types::{Decision, Event, RulesDescriptor, Send, Skip};
use exports::chirp::plugin::selection::Guest;

struct HostileRules;

fn send(not_before_ms: Option<u64>) -> Decision {
    Decision::Send(Send {
        template: "delivery_delayed".into(),
        language: "en".into(),
        variables: r#"{"eta_time": "9 AM"}"#.into(),
        not_before_ms,
    })
}

impl Guest for HostileRules {
    fn describe() -> RulesDescriptor {
        RulesDescriptor {
            name: "hostile-rules".into(),
            version: "6.6.6".into(),
            kinds: ["ok", "flood", "long-error", "unknown-skip", "far-future"]
                .map(String::from)
                .to_vec(),
        }
    }

    fn decide(event: Event) -> Result<Vec<Decision>, String> {
        match event.kind.as_str() {
            "flood" => Ok((0..10_000).map(|_| send(None)).collect()),
            "long-error" => Err(format!("data.x {}", "e".repeat(1 << 20))),
            "unknown-skip" => Ok(vec![Decision::Skip(Skip {
                template: "t".repeat(1 << 20),
                reason: "r".repeat(1 << 20),
            })]),
            "far-future" => Ok(vec![send(Some(u64::MAX))]),
            _ => Ok(vec![send(None)]),
        }
    }
}

export!(HostileRules);
