//! What a MyOperator answer means for the message: sent, worth retrying, or
//! hopeless.
//!
//! The rule: network errors, timeouts, 5xx and 429 are retryable (429 and
//! 503 honour `Retry-After`); 400, 401, 403 and the wallet and account codes
//! (`CHAT_4001`, `CHAT_0302`..`CHAT_0304`) are permanent, whatever the status
//! that carried them. Pure functions, unit-tested natively.

use serde_json::Value;

use super::wire::{Failure, Receipt, SendError, http};

/// Error codes that no retry can fix: an empty wallet, a blocked or
/// unverified account.
pub const PERMANENT_CODES: [&str; 4] = ["CHAT_4001", "CHAT_0302", "CHAT_0303", "CHAT_0304"];

/// The classification of one attempt.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    Sent {
        message_id: Option<String>,
    },
    Retryable {
        code: String,
        message: String,
        retry_after_ms: Option<u64>,
    },
    Permanent {
        code: String,
        message: String,
    },
}

impl Outcome {
    /// The answer `delivery.send` gives for this outcome.
    pub fn into_answer(self) -> Result<Receipt, SendError> {
        match self {
            Outcome::Sent { message_id } => Ok(Receipt {
                provider_message_id: message_id,
            }),
            Outcome::Retryable {
                code,
                message,
                retry_after_ms,
            } => Err(SendError::Retryable((
                Failure { code, message },
                retry_after_ms,
            ))),
            Outcome::Permanent { code, message } => {
                Err(SendError::Permanent(Failure { code, message }))
            }
        }
    }
}

/// Classifies a failure to get any response.
pub fn transport(err: &http::Error) -> Outcome {
    let (code, message) = match err {
        http::Error::Timeout => ("timeout".to_string(), "no response in time".to_string()),
        http::Error::Connect(m) => ("connect".to_string(), m.clone()),
        http::Error::TooLarge(n) => ("response_too_large".to_string(), format!("{n} bytes")),
        http::Error::Denied(m) => ("host_denied".to_string(), m.clone()),
    };
    Outcome::Retryable {
        code,
        message,
        retry_after_ms: None,
    }
}

/// Classifies an HTTP response from `POST /chat/messages`.
pub fn response(status: u16, retry_after: Option<&str>, body: &[u8]) -> Outcome {
    let json: Option<Value> = serde_json::from_slice(body).ok();
    let error_code = json.as_ref().and_then(error_code);
    let error_message = json
        .as_ref()
        .and_then(error_message)
        .unwrap_or_else(|| format!("HTTP {status}"));

    if let Some(code) = &error_code
        && PERMANENT_CODES.contains(&code.as_str())
    {
        return Outcome::Permanent {
            code: code.clone(),
            message: error_message,
        };
    }
    let code = error_code.unwrap_or_else(|| format!("http_{status}"));
    match status {
        200..=299 => success(json.as_ref(), status),
        429 | 503 => Outcome::Retryable {
            code,
            message: error_message,
            retry_after_ms: retry_after.and_then(parse_retry_after),
        },
        408 | 500..=599 => Outcome::Retryable {
            code,
            message: error_message,
            retry_after_ms: None,
        },
        _ => Outcome::Permanent {
            code,
            message: error_message,
        },
    }
}

fn success(json: Option<&Value>, status: u16) -> Outcome {
    let Some(json) = json else {
        return Outcome::Retryable {
            code: "malformed_response".into(),
            message: format!("HTTP {status} with a body that is not JSON"),
            retry_after_ms: None,
        };
    };
    if json.get("status").and_then(Value::as_str) != Some("success") {
        return Outcome::Retryable {
            code: "unexpected_response".into(),
            message: format!("HTTP {status} without status \"success\""),
            retry_after_ms: None,
        };
    }
    let message_id = at(json, &["data", "message_id"]).and_then(|v| match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    });
    Outcome::Sent { message_id }
}

/// MyOperator puts its code at `code`, `error.code` or `errors[0].code`.
fn error_code(json: &Value) -> Option<String> {
    first_string(
        json,
        &[
            &["code"],
            &["error", "code"],
            &["errors", "0", "code"],
            &["error_code"],
        ],
    )
    .map(str::to_string)
}

fn error_message(json: &Value) -> Option<String> {
    first_string(
        json,
        &[
            &["message"],
            &["error", "message"],
            &["errors", "0", "message"],
            &["error"],
        ],
    )
    .map(|m| m.chars().take(500).collect())
}

/// The first string found at one of `places`, in order.
fn first_string<'v>(json: &'v Value, places: &[&[&str]]) -> Option<&'v str> {
    places
        .iter()
        .find_map(|path| at(json, path).and_then(Value::as_str))
}

/// The value at `path` (object keys, or array indexes written as numbers):
/// what `Value::pointer` finds, without parsing a pointer string on every
/// look-up.
fn at<'v>(json: &'v Value, path: &[&str]) -> Option<&'v Value> {
    path.iter().try_fold(json, |value, step| match value {
        Value::Object(map) => map.get(*step),
        Value::Array(items) => step.parse::<usize>().ok().and_then(|i| items.get(i)),
        _ => None,
    })
}

/// `Retry-After` in seconds, as milliseconds. Any number of digits is
/// read, saturating at `u64::MAX` rather than overflowing (the host caps
/// the wait it will honour); the HTTP-date form is rare for APIs and is
/// ignored, leaving the host's own backoff in charge.
pub fn parse_retry_after(value: &str) -> Option<u64> {
    let digits = value.trim();
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let seconds = digits.bytes().fold(0u64, |n, digit| {
        n.saturating_mul(10).saturating_add(u64::from(digit - b'0'))
    });
    Some(seconds.saturating_mul(1000))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn retryable(code: &str, retry_after_ms: Option<u64>) -> Outcome {
        Outcome::Retryable {
            code: code.into(),
            message: match code {
                c if c.starts_with("http_") => format!("HTTP {}", &c[5..]),
                _ => String::new(),
            },
            retry_after_ms,
        }
    }

    #[test]
    fn success_carries_the_message_id() {
        let body = br#"{"status":"success","data":{"message_id":"wamid.1"}}"#;
        assert_eq!(
            response(200, None, body),
            Outcome::Sent {
                message_id: Some("wamid.1".into())
            }
        );
    }

    #[test]
    fn server_errors_and_rate_limits_are_retryable() {
        assert_eq!(response(500, None, b""), retryable("http_500", None));
        assert_eq!(response(502, None, b"<html>"), retryable("http_502", None));
        assert_eq!(
            response(429, Some("7"), b""),
            retryable("http_429", Some(7000))
        );
        assert_eq!(
            response(429, Some("Wed, 21 Oct 2026 07:28:00 GMT"), b""),
            retryable("http_429", None)
        );
    }

    #[test]
    fn client_errors_are_permanent() {
        for status in [400, 401, 403] {
            assert!(matches!(
                response(status, None, b"{}"),
                Outcome::Permanent { code, .. } if code == format!("http_{status}")
            ));
        }
    }

    #[test]
    fn wallet_and_account_codes_are_permanent_even_on_5xx() {
        for code in PERMANENT_CODES {
            let body = format!(r#"{{"status":"error","code":"{code}","message":"no"}}"#);
            assert_eq!(
                response(500, None, body.as_bytes()),
                Outcome::Permanent {
                    code: code.into(),
                    message: "no".into()
                }
            );
        }
        let nested = br#"{"error":{"code":"CHAT_4001","message":"Insufficient wallet balance"}}"#;
        assert!(
            matches!(response(402, None, nested), Outcome::Permanent { code, .. } if code == "CHAT_4001")
        );
    }

    #[test]
    fn a_2xx_without_success_is_retried_not_trusted() {
        assert!(matches!(
            response(200, None, b"not json"),
            Outcome::Retryable { code, .. } if code == "malformed_response"
        ));
        assert!(matches!(
            response(200, None, br#"{"status":"queued"}"#),
            Outcome::Retryable { code, .. } if code == "unexpected_response"
        ));
    }

    #[test]
    fn retry_after_saturates_instead_of_overflowing() {
        assert_eq!(parse_retry_after(" 7 "), Some(7_000));
        assert_eq!(parse_retry_after("0"), Some(0));
        assert_eq!(
            parse_retry_after("18446744073709551"),
            Some(18_446_744_073_709_551_000)
        );
        for huge in [
            "18446744073709552",
            "18446744073709551615",
            "99999999999999999999999999999999",
        ] {
            assert_eq!(parse_retry_after(huge), Some(u64::MAX), "{huge}");
        }
        for bad in ["", "-1", "+5", "1.5", "5s", "Wed, 21 Oct 2026 07:28:00 GMT"] {
            assert_eq!(parse_retry_after(bad), None, "{bad}");
        }
    }

    #[test]
    fn transport_failures_are_retryable() {
        assert!(
            matches!(transport(&http::Error::Timeout), Outcome::Retryable { code, .. } if code == "timeout")
        );
        assert!(matches!(
            transport(&http::Error::Connect("refused".into())),
            Outcome::Retryable { code, .. } if code == "connect"
        ));
    }
}
