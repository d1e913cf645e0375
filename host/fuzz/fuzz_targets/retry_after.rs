//! A provider's `Retry-After`, from the header to the due time: the
//! MyOperator component's parser (its own source, compiled natively) on
//! any string, then chirp's retry rule on what it gives. Neither panics
//! nor overflows; the parser answers whole seconds (or saturates); the due
//! time is never before now and never later than the wait chirp honours.
#![no_main]

use std::time::Duration;

use libfuzzer_sys::fuzz_target;

/// The WIT types `classify` reads, from the host's bindings.
mod wire {
    pub use chirp::plugins::bindings::{Failure, Message, Receipt, SendError, http};
}

#[allow(dead_code)]
#[path = "../../../plugins/myoperator/src/classify.rs"]
mod classify;

fuzz_target!(|input: (&str, u32, i64)| {
    let (header, attempt, now) = input;
    let parsed = classify::parse_retry_after(header);
    if let Some(ms) = parsed {
        assert!(header.trim().bytes().all(|b| b.is_ascii_digit()));
        assert!(ms % 1000 == 0 || ms == u64::MAX, "{header:?} -> {ms}");
    }
    let outcome = classify::response(429, Some(header), b"");
    assert!(matches!(outcome, classify::Outcome::Retryable { retry_after_ms, .. } if retry_after_ms == parsed));

    let now = now.clamp(0, chirp::message::MAX_MILLIS);
    let policy = chirp::queue::retry::RetryPolicy {
        max_attempts: 100,
        backoff: vec![Duration::from_secs(300)],
        max_retry_after: Duration::from_secs(3600),
    };
    let retryable = chirp::message::Outcome::Retryable {
        error: chirp::message::ErrorNote {
            code: "http_429".into(),
            message: String::new(),
        },
        retry_after: parsed.map(Duration::from_millis),
    };
    if let chirp::queue::retry::Next::RetryAt(at) = policy.next(attempt.max(1) % 100, &retryable, now) {
        assert!(at >= now, "{at} before {now}");
        assert!(at <= (now + 3_600_000).min(chirp::message::MAX_MILLIS));
        assert!(chirp::message::in_range(at));
    }
});
