//! The MyOperator component's reading of an answer's `Retry-After` (its
//! own `classify.rs`, compiled natively) on any header: it never panics or
//! overflows, reads only whole seconds (saturating at `u64::MAX`), and
//! `classify::response` passes on exactly what it read. chirp's side (the
//! cap and the due time) is `host/fuzz/fuzz_targets/retry_policy.rs`.
#![no_main]

use libfuzzer_sys::fuzz_target;

/// The WIT types `classify` reads, as plain Rust (the component gets them
/// from wit-bindgen, with the same shapes).
mod wire {
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct Failure {
        pub code: String,
        pub message: String,
    }
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct Receipt {
        pub provider_message_id: Option<String>,
    }
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub enum SendError {
        Retryable((Failure, Option<u64>)),
        Permanent(Failure),
    }
    pub mod http {
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub enum Error {
            Denied(String),
            Timeout,
            Connect(String),
            TooLarge(u64),
        }
    }
}

#[allow(dead_code)]
#[path = "../../myoperator/src/classify.rs"]
mod classify;

fuzz_target!(|input: (&str, u16, &[u8])| {
    let (header, status, body) = input;
    let parsed = classify::parse_retry_after(header);
    if let Some(ms) = parsed {
        assert!(header.trim().bytes().all(|b| b.is_ascii_digit()), "{header:?}");
        assert!(ms % 1000 == 0 || ms == u64::MAX, "{header:?} -> {ms}");
    }
    if let classify::Outcome::Retryable { retry_after_ms, .. } =
        classify::response(429, Some(header), b"")
    {
        assert_eq!(retry_after_ms, parsed);
    }
    // Any status and body: classified, never a panic.
    let _ = classify::response(status, Some(header), body);
});
