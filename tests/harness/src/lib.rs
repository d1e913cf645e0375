//! What chirp's end-to-end tests (`tests/`) and its benchmark and
//! reliability tools (`benches/`) share, written once:
//! - [`process`]: the `chirp` binary started as a child process with an
//!   environment of the caller's, waited for until it listens, stopped
//!   with SIGTERM or SIGKILL, its memory and CPU read from `/proc`;
//! - [`mock`]: mock MyOperator APIs on 127.0.0.1: [`mock::scripted`]
//!   records every request and answers from a script (tests),
//!   [`mock::faulty`] misbehaves at the socket level and counts deliveries
//!   per idempotency key (benchmarks, reliability);
//! - [`token`]: API tokens signed as chirp checks them;
//! - [`events`]: EarlyBird's event types, the templates each leads to and
//!   data that satisfies all of them.

pub mod events;
pub mod mock;
pub mod process;
pub mod token;

pub use process::{Launch, Process};

/// The templates directory of the repository.
pub fn templates_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../templates")
}

/// The environment that points chirp's MyOperator component at a mock on
/// `base_url` with these credentials (loopback, which plugins reach only
/// when the operator allows it).
pub fn myoperator_env(
    base_url: &str,
    api_key: &str,
    account_id: &str,
    phone_number_id: &str,
) -> Vec<(String, String)> {
    [
        ("CHIRP_PLUGINS__MYOPERATOR__API_KEY", api_key),
        ("CHIRP_PLUGINS__MYOPERATOR__ACCOUNT_ID", account_id),
        (
            "CHIRP_PLUGINS__MYOPERATOR__PHONE_NUMBER_ID",
            phone_number_id,
        ),
        ("CHIRP_PLUGINS__MYOPERATOR__BASE_URL", base_url),
        ("CHIRP_SANDBOX__MYOPERATOR__ALLOW_PRIVATE", "true"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}
