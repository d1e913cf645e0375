//! chirp's retry rule on any wait a provider asks for (any u64 of
//! milliseconds, as a plugin can answer), any attempt and any stored time:
//! it never panics or overflows, and the due time lies after now, within
//! the wait chirp honours, and within the times chirp stores.
#![no_main]

use std::time::Duration;

use chirp::message::{ErrorNote, MAX_MILLIS, Outcome, in_range};
use chirp::queue::retry::{Next, RetryPolicy};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (Option<u64>, u32, i64, u32, u32)| {
    let (wish_ms, attempt, now, backoff_ms, cap_ms) = input;
    let now = now.rem_euclid(MAX_MILLIS + 1);
    let backoff = Duration::from_millis(u64::from(backoff_ms));
    let cap = Duration::from_millis(u64::from(cap_ms));
    let policy = RetryPolicy {
        max_attempts: 100,
        backoff: vec![backoff],
        max_retry_after: cap,
    };
    let outcome = Outcome::Retryable {
        error: ErrorNote {
            code: "http_429".into(),
            message: String::new(),
        },
        retry_after: wish_ms.map(Duration::from_millis),
    };
    match policy.next(attempt % 100, &outcome, now) {
        Next::RetryAt(at) => {
            assert!(in_range(at), "{at}");
            assert!(at >= now, "{at} before {now}");
            let longest = backoff.max(cap).as_millis() as i64;
            assert!(at <= now.saturating_add(longest).min(MAX_MILLIS), "{at}");
        }
        Next::Failed => panic!("fewer attempts than the 100 allowed"),
        Next::Sent => panic!("a retryable outcome is never sent"),
    }
});
