//! Reads MSG91's answer to a flow request: `{"type": "success",
//! "message": "<request id>"}`, or `{"type": "error", "message", "code"}`
//! (sometimes with HTTP 200), classified by whether trying again can help.
//!
//! Retryable: any 5xx, 429 (honouring `Retry-After`), code 306 (the route
//! is not available at this hour), and transport failures. Permanent:
//! every other error, among them 202 (invalid mobile number: the
//! recipient cannot be reached by SMS), 207 (invalid authkey), 208 and
//! 418 (the caller's IP not allowed), 301 (insufficient balance) and
//! 302/303 (the account expired or banned). MSG91's code is kept as
//! `msg91_<code>`.

use serde::Deserialize;

/// MSG91's codes worth another attempt.
pub const RETRYABLE_CODES: [&str; 1] = ["306"];
/// The code that says the number cannot take an SMS.
pub const INVALID_NUMBER: &str = "202";

/// What a send came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Accepted, with MSG91's request id.
    Sent(Option<String>),
    /// Try again, no sooner than the delay (ms) if given.
    Retryable {
        /// `msg91_<code>`, `http_<status>`, `timeout`, ...
        code: String,
        /// What it said.
        message: String,
        /// The platform's wish, in milliseconds.
        delay_ms: Option<u64>,
    },
    /// Trying again will not help.
    Permanent {
        /// `msg91_<code>` or `http_<status>`.
        code: String,
        /// What it said.
        message: String,
    },
}

#[derive(Deserialize)]
struct Answer {
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    message: Option<Text>,
    #[serde(default)]
    code: Option<Text>,
}

/// A field MSG91 writes as a string or a number.
#[derive(Deserialize)]
#[serde(untagged)]
enum Text {
    String(String),
    Number(i64),
}

impl Text {
    fn into_string(self) -> String {
        match self {
            Text::String(s) => s,
            Text::Number(n) => n.to_string(),
        }
    }
}

/// The longest explanation kept from the platform.
const MAX_MESSAGE: usize = 512;
/// The longest request id taken.
const MAX_ID: usize = 128;

/// Classifies one HTTP answer.
pub fn response(status: u16, retry_after: Option<&str>, body: &[u8]) -> Outcome {
    let delay_ms = retry_after
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(|s| s.saturating_mul(1000));
    let answer = serde_json::from_slice::<Answer>(body).ok();
    let said_error = answer.as_ref().is_some_and(|a| a.kind == "error");
    if (200..300).contains(&status) && !said_error {
        let id = answer
            .and_then(|a| a.message)
            .map(Text::into_string)
            .filter(|id| !id.is_empty() && id.len() <= MAX_ID);
        // Accepted even when the answer does not read: the SMS went; only
        // its request id is unknown.
        return Outcome::Sent(id);
    }
    let (platform_code, message) = match answer {
        Some(a) => (
            a.code.map(Text::into_string),
            a.message.map(Text::into_string).unwrap_or_default(),
        ),
        None => (None, String::new()),
    };
    let message = if message.is_empty() {
        format!("HTTP {status}")
    } else {
        message.chars().take(MAX_MESSAGE).collect()
    };
    let retryable = status >= 500
        || status == 429
        || platform_code
            .as_deref()
            .is_some_and(|c| RETRYABLE_CODES.contains(&c));
    let code = match platform_code {
        Some(c)
            if !c.is_empty() && c.len() <= 32 && c.bytes().all(|b| b.is_ascii_alphanumeric()) =>
        {
            format!("msg91_{c}")
        }
        _ => format!("http_{status}"),
    };
    if retryable {
        Outcome::Retryable {
            code,
            message,
            delay_ms,
        }
    } else {
        Outcome::Permanent { code, message }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_id_comes_from_message() {
        assert_eq!(
            response(
                200,
                None,
                br#"{"message":"5762846b4f8d285d378b4567","type":"success"}"#
            ),
            Outcome::Sent(Some("5762846b4f8d285d378b4567".into()))
        );
        assert_eq!(response(200, None, b"OK"), Outcome::Sent(None));
    }

    #[test]
    fn an_error_with_200_is_an_error_and_keeps_its_code() {
        for (code, body) in [
            (
                "msg91_207",
                r#"{"type":"error","message":"Invalid authkey","code":"207"}"#,
            ),
            (
                "msg91_202",
                r#"{"type":"error","message":"Invalid mobile number","code":202}"#,
            ),
            (
                "msg91_301",
                r#"{"type":"error","message":"Insufficient balance","code":"301"}"#,
            ),
            (
                "msg91_418",
                r#"{"type":"error","message":"IP not whitelisted","code":"418"}"#,
            ),
        ] {
            let outcome = response(200, None, body.as_bytes());
            assert!(
                matches!(&outcome, Outcome::Permanent { code: c, .. } if c == code),
                "{body}: {outcome:?}"
            );
        }
        assert!(matches!(
            response(401, None, br#"{"type":"error","message":"Authentication failure"}"#),
            Outcome::Permanent { code, message } if code == "http_401" && message == "Authentication failure"
        ));
    }

    #[test]
    fn server_errors_rate_limits_and_an_unavailable_route_are_retried() {
        assert!(matches!(
            response(503, None, b"<html>"),
            Outcome::Retryable { code, .. } if code == "http_503"
        ));
        assert!(matches!(
            response(429, Some("4"), b""),
            Outcome::Retryable {
                delay_ms: Some(4000),
                ..
            }
        ));
        assert!(matches!(
            response(200, None, br#"{"type":"error","message":"Route unavailable","code":"306"}"#),
            Outcome::Retryable { code, .. } if code == "msg91_306"
        ));
    }
}
