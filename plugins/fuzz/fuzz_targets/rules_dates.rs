//! EarlyBird's rules (the component's own `decide.rs`, compiled natively)
//! on any delivery date, time zone and clock: they never panic (a panic in
//! the component traps, and every event is refused), and any hold they
//! decide lies after now and within the times chirp stores (1970 to 9999).
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value, json};

#[path = "../../rules-earlybird/src/decide.rs"]
mod decide;

/// 9999-12-31T23:59:59.999Z, the last time chirp stores.
const MAX_MILLIS: u64 = 253_402_300_799_999;

fuzz_target!(|input: (&str, Option<&str>, u64, bool)| {
    let (date, timezone, now_ms, marketing) = input;
    let recipient = decide::Recipient {
        language: None,
        timezone: timezone.map(str::to_string),
        opt_outs: vec![],
    };
    let payload: Map<String, Value> = json!({
        "order_id": "A-1", "delivery_date": date, "total_amount": 1
    })
    .as_object()
    .cloned()
    .unwrap_or_default();
    let kind = if marketing {
        "customer.churn_risk"
    } else {
        "order.created"
    };
    // The host's clock, as chirp passes it: a time it stores.
    let now_ms = now_ms % (MAX_MILLIS + 1);
    if let Ok(decisions) = decide::decide(kind, &payload, &recipient, now_ms) {
        for decision in decisions {
            if let decide::Decision::Send {
                not_before_ms: Some(at),
                ..
            } = decision
            {
                assert!(at <= MAX_MILLIS, "{date:?} held until {at}");
                assert!(at > now_ms, "{date:?} held until {at}, not after {now_ms}");
            }
        }
    }
});
