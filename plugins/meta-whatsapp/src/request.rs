//! Builds the Graph API's request body from a chirp message: a template
//! message (approved name, language code, body parameters in order) or a
//! text message.
//!
//! Pure functions, so the exact wire shape is unit-tested natively.

use serde_json::{Value, json};

/// WhatsApp's limit on a text message's body, in characters.
pub const MAX_TEXT_CHARS: usize = 4096;

/// Why a message cannot be expressed as a Graph API request.
#[derive(Debug, PartialEq, Eq)]
pub enum BodyError {
    /// The recipient is not `+` and 8 to 15 digits.
    InvalidRecipient(String),
    /// A text over [`MAX_TEXT_CHARS`].
    TextTooLong(usize),
}

impl BodyError {
    /// The code recorded in the audit trail.
    pub fn code(&self) -> &'static str {
        match self {
            BodyError::InvalidRecipient(_) => "invalid_recipient",
            BodyError::TextTooLong(_) => "text_too_long",
        }
    }
}

impl std::fmt::Display for BodyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BodyError::InvalidRecipient(r) => write!(f, "{r} is not an E.164 number"),
            BodyError::TextTooLong(n) => write!(
                f,
                "a WhatsApp text is at most {MAX_TEXT_CHARS} characters; this one has {n}"
            ),
        }
    }
}

/// The recipient as the Graph API takes it: digits, no `+`.
pub fn to(recipient: &str) -> Result<&str, BodyError> {
    let digits = recipient
        .strip_prefix('+')
        .filter(|d| (8..=15).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_digit()))
        .ok_or_else(|| BodyError::InvalidRecipient(recipient.into()))?;
    Ok(digits)
}

/// A template message: `name` in `language`, with `parameters` filling
/// the body's `{{1}}`, `{{2}}`, ... in order.
pub fn template(
    recipient: &str,
    name: &str,
    language: &str,
    parameters: &[String],
) -> Result<Value, BodyError> {
    let mut template = json!({
        "name": name,
        "language": { "code": language },
    });
    if !parameters.is_empty() {
        let parameters: Vec<Value> = parameters
            .iter()
            .map(|p| json!({ "type": "text", "text": p }))
            .collect();
        template["components"] = json!([{ "type": "body", "parameters": parameters }]);
    }
    Ok(json!({
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": to(recipient)?,
        "type": "template",
        "template": template,
    }))
}

/// A text message (only inside the customer's 24-hour window).
pub fn text(recipient: &str, body: &str) -> Result<Value, BodyError> {
    let chars = body.chars().count();
    if chars > MAX_TEXT_CHARS {
        return Err(BodyError::TextTooLong(chars));
    }
    Ok(json!({
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": to(recipient)?,
        "type": "text",
        "text": { "preview_url": false, "body": body },
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shape of Meta's "Send a template message" example.
    #[test]
    fn a_template_message_carries_name_language_and_ordered_parameters() {
        let body = template(
            "+919876543210",
            "order_confirmation",
            "en",
            &["Asha".into(), "#1234".into()],
        )
        .unwrap();
        assert_eq!(
            body,
            json!({
                "messaging_product": "whatsapp",
                "recipient_type": "individual",
                "to": "919876543210",
                "type": "template",
                "template": {
                    "name": "order_confirmation",
                    "language": { "code": "en" },
                    "components": [{
                        "type": "body",
                        "parameters": [
                            { "type": "text", "text": "Asha" },
                            { "type": "text", "text": "#1234" }
                        ]
                    }]
                }
            })
        );
        let bare = template("+919876543210", "hello_world", "en_US", &[]).unwrap();
        assert!(bare["template"].get("components").is_none());
    }

    #[test]
    fn a_text_message_is_bounded_and_goes_to_digits() {
        let body = text("+14155550100", "hi").unwrap();
        assert_eq!(body["to"], "14155550100");
        assert_eq!(body["text"]["body"], "hi");
        assert_eq!(
            text("+14155550100", &"x".repeat(MAX_TEXT_CHARS + 1)),
            Err(BodyError::TextTooLong(MAX_TEXT_CHARS + 1))
        );
        assert!(text("+14155550100", &"é".repeat(MAX_TEXT_CHARS)).is_ok());
        for bad in ["919876543210", "+91 98765", "+1234567", "+1234567890123456"] {
            assert!(to(bad).is_err(), "{bad}");
        }
    }
}
