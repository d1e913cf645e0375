//! Builds MyOperator's request body from a chirp message.
//!
//! Pure functions, so the exact wire shape is unit-tested natively.

use std::fmt;

use serde::Serialize;
use serde::ser::{SerializeMap, Serializer};

use super::wire::Message;

/// Why a message cannot be expressed as a MyOperator request.
#[derive(Debug, PartialEq, Eq)]
pub enum BodyError {
    /// MyOperator's API takes Indian numbers (+91) only.
    UnsupportedCountry(String),
    /// The recipient is not `+91` followed by ten digits.
    InvalidRecipient(String),
}

impl BodyError {
    /// The code recorded in the audit trail.
    pub fn code(&self) -> &'static str {
        match self {
            BodyError::UnsupportedCountry(_) => "unsupported_country",
            BodyError::InvalidRecipient(_) => "invalid_recipient",
        }
    }
}

impl fmt::Display for BodyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BodyError::UnsupportedCountry(r) => {
                write!(f, "MyOperator sends to +91 numbers only, not {r}")
            }
            BodyError::InvalidRecipient(r) => write!(f, "{r} is not a +91 mobile number"),
        }
    }
}

/// Splits `+919876543210` into `("91", "9876543210")`.
pub fn split_recipient(recipient: &str) -> Result<(&'static str, &str), BodyError> {
    let Some(national) = recipient.strip_prefix("+91") else {
        return Err(BodyError::UnsupportedCountry(recipient.into()));
    };
    if national.len() != 10 || !national.bytes().all(|b| b.is_ascii_digit()) {
        return Err(BodyError::InvalidRecipient(recipient.into()));
    }
    Ok(("91", national))
}

/// The JSON body of `POST /chat/messages`.
pub fn body(msg: &Message, phone_number_id: &str) -> Result<String, BodyError> {
    let (customer_country_code, customer_number) = split_recipient(&msg.recipient)?;
    let data = match &msg.template {
        Some(template) => Data::Template {
            template_name: &template.name,
            language: &template.language,
            body: Numbered(&template.parameters),
        },
        None => Data::Text {
            body: &msg.text,
            preview_url: false,
        },
    };
    let body = Body {
        phone_number_id,
        customer_country_code,
        customer_number,
        data,
        myop_ref_id: &msg.idempotency_key,
    };
    // serde_json fails only on a map key that is not a string or on a
    // Serialize impl that errs; this body has neither, so never empty.
    Ok(serde_json::to_string(&body).unwrap_or_default())
}

/// The request body, written straight from the message's fields (a
/// component runs this on every send, so it builds no JSON tree).
#[derive(Serialize)]
struct Body<'a> {
    phone_number_id: &'a str,
    customer_country_code: &'a str,
    customer_number: &'a str,
    data: Data<'a>,
    myop_ref_id: &'a str,
}

/// `{"type": "template" | "text", "context": {...}}`.
#[derive(Serialize)]
#[serde(tag = "type", content = "context", rename_all = "lowercase")]
enum Data<'a> {
    Template {
        template_name: &'a str,
        language: &'a str,
        body: Numbered<'a>,
    },
    Text {
        body: &'a str,
        preview_url: bool,
    },
}

/// Template parameters as MyOperator numbers them: `{"1": .., "2": ..}`.
struct Numbered<'a>(&'a [String]);

impl Serialize for Numbered<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (i, value) in self.0.iter().enumerate() {
            map.serialize_entry(&(i + 1).to_string(), value)?;
        }
        map.end()
    }
}

/// `host` or `host:port` of a base URL, as declared to the host.
pub fn host_of(base_url: &str) -> Option<String> {
    let rest = base_url
        .strip_prefix("https://")
        .or_else(|| base_url.strip_prefix("http://"))?;
    let authority = rest.split(['/', '?', '#']).next()?;
    let authority = authority.rsplit('@').next()?;
    (!authority.is_empty()).then(|| authority.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::super::wire::TemplateRef;
    use super::*;
    use serde_json::{Value, json};

    fn message(template: Option<TemplateRef>) -> Message {
        Message {
            id: "01J".into(),
            recipient: "+919876543210".into(),
            text: "Order #42 confirmed".into(),
            template,
            idempotency_key: "key-1".into(),
        }
    }

    #[test]
    fn template_body_numbers_parameters_in_order() {
        let msg = message(Some(TemplateRef {
            name: "order_confirmation".into(),
            language: "en".into(),
            parameters: vec!["42".into(), "2026-11-25".into()],
        }));
        let body: Value = serde_json::from_str(&body(&msg, "pn-1").unwrap()).unwrap();
        assert_eq!(
            body,
            json!({
                "phone_number_id": "pn-1",
                "customer_country_code": "91",
                "customer_number": "9876543210",
                "data": {"type": "template", "context": {
                    "template_name": "order_confirmation",
                    "language": "en",
                    "body": {"1": "42", "2": "2026-11-25"}
                }},
                "myop_ref_id": "key-1"
            })
        );
    }

    #[test]
    fn text_body_disables_previews() {
        let body: Value = serde_json::from_str(&body(&message(None), "pn-1").unwrap()).unwrap();
        assert_eq!(
            body["data"],
            json!({"type": "text", "context": {"body": "Order #42 confirmed", "preview_url": false}})
        );
    }

    #[test]
    fn recipients_outside_india_are_refused() {
        assert_eq!(
            split_recipient("+14155550100"),
            Err(BodyError::UnsupportedCountry("+14155550100".into()))
        );
        assert!(split_recipient("+91987654321").is_err());
    }

    #[test]
    fn host_of_keeps_ports_and_drops_paths() {
        assert_eq!(
            host_of("https://publicapi.myoperator.co").as_deref(),
            Some("publicapi.myoperator.co")
        );
        assert_eq!(
            host_of("http://127.0.0.1:4010/v1").as_deref(),
            Some("127.0.0.1:4010")
        );
        assert_eq!(host_of("ftp://x"), None);
    }
}
