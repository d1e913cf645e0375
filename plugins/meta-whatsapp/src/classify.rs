//! Reads the Graph API's answer to a send: the platform's message id, or
//! its `error` object classified by `code` as worth retrying or not.
//!
//! Retryable: rate limits (130429 throughput, 131056 pair rate, 80007
//! account rate), any 5xx, and transport failures; the platform's delay
//! (`Retry-After`) is honoured. Permanent: 131026 (undeliverable), 131047
//! (outside the 24-hour window), 132000 and 132001 (template parameters,
//! or the template missing in that language), 190 (the token), and any
//! other 4xx. The platform's code is kept as the failure's code.

use serde::Deserialize;

/// The Graph API's error codes that say "slow down".
pub const RATE_LIMITED: [i64; 3] = [130429, 131056, 80007];

/// What a send came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Accepted, with the platform's id of the message.
    Sent(Option<String>),
    /// Try again, no sooner than the delay (ms) if given.
    Retryable {
        /// The platform's code, or `http_<status>`, `timeout`, ...
        code: String,
        /// What it said.
        message: String,
        /// The platform's wish, in milliseconds.
        delay_ms: Option<u64>,
    },
    /// Trying again will not help.
    Permanent {
        /// The platform's code.
        code: String,
        /// What it said.
        message: String,
    },
}

#[derive(Deserialize)]
struct Success {
    #[serde(default)]
    messages: Vec<SentMessage>,
}

#[derive(Deserialize)]
struct SentMessage {
    id: String,
}

#[derive(Deserialize)]
struct Failure {
    error: ErrorObject,
}

#[derive(Deserialize)]
struct ErrorObject {
    code: Option<i64>,
    #[serde(default)]
    message: String,
    error_data: Option<ErrorData>,
}

#[derive(Deserialize)]
struct ErrorData {
    details: Option<String>,
}

/// The longest explanation kept from the platform.
const MAX_MESSAGE: usize = 512;

/// Classifies one HTTP answer.
pub fn response(status: u16, retry_after: Option<&str>, body: &[u8]) -> Outcome {
    let delay_ms = retry_after
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(|s| s.saturating_mul(1000));
    if (200..300).contains(&status) {
        return match serde_json::from_slice::<Success>(body) {
            Ok(ok) => Outcome::Sent(ok.messages.into_iter().next().map(|m| m.id)),
            // Accepted, but an answer we cannot read: the message went; we
            // just do not know its id.
            Err(_) => Outcome::Sent(None),
        };
    }
    let error = serde_json::from_slice::<Failure>(body)
        .ok()
        .map(|f| f.error);
    let (code, message) = match &error {
        Some(e) => {
            let details = e.error_data.as_ref().and_then(|d| d.details.as_deref());
            let message = match details {
                Some(d) if !d.is_empty() => format!("{} ({d})", e.message),
                _ => e.message.clone(),
            };
            (
                e.code
                    .map_or_else(|| format!("http_{status}"), |c| c.to_string()),
                clip(&message),
            )
        }
        None => (format!("http_{status}"), format!("HTTP {status}")),
    };
    let rate_limited = error
        .as_ref()
        .and_then(|e| e.code)
        .is_some_and(|c| RATE_LIMITED.contains(&c));
    if rate_limited || status >= 500 || status == 429 {
        Outcome::Retryable {
            code,
            message,
            delay_ms,
        }
    } else {
        Outcome::Permanent { code, message }
    }
}

fn clip(s: &str) -> String {
    s.chars().take(MAX_MESSAGE).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(code: i64) -> Vec<u8> {
        format!(
            r#"{{"error":{{"message":"(#{code}) Something","type":"OAuthException","code":{code},"error_data":{{"messaging_product":"whatsapp","details":"more"}},"fbtrace_id":"A"}}}}"#
        )
        .into_bytes()
    }

    #[test]
    fn the_message_id_comes_from_messages_0() {
        let body = br#"{"messaging_product":"whatsapp","contacts":[{"input":"16505555555","wa_id":"16505555555"}],"messages":[{"id":"wamid.HBgLMTY1MDUwNzY1MjAVAgARGBI5QTNDQTVCM0Q0Q0Q2RTY3RTcA"}]}"#;
        assert_eq!(
            response(200, None, body),
            Outcome::Sent(Some(
                "wamid.HBgLMTY1MDUwNzY1MjAVAgARGBI5QTNDQTVCM0Q0Q0Q2RTY3RTcA".into()
            ))
        );
    }

    #[test]
    fn rate_limits_and_5xx_are_retried_with_the_platform_delay() {
        for code in RATE_LIMITED {
            assert!(
                matches!(
                    response(400, Some("7"), &error(code)),
                    Outcome::Retryable { code: c, delay_ms: Some(7000), .. } if c == code.to_string()
                ),
                "{code}"
            );
        }
        assert!(matches!(
            response(503, None, b"<html>"),
            Outcome::Retryable { code, .. } if code == "http_503"
        ));
        assert!(matches!(
            response(500, None, &error(131000)),
            Outcome::Retryable { code, .. } if code == "131000"
        ));
    }

    #[test]
    fn the_documented_permanent_errors_keep_their_code() {
        for code in [131026, 131047, 132000, 132001, 190, 100] {
            let outcome = response(400, None, &error(code));
            assert!(
                matches!(&outcome, Outcome::Permanent { code: c, message } if c == &code.to_string() && message.contains("more")),
                "{code}: {outcome:?}"
            );
        }
        assert!(matches!(
            response(401, None, b""),
            Outcome::Permanent { code, .. } if code == "http_401"
        ));
    }
}
