//! A message -> the body of MSG91's flow API (`POST /api/v5/flow/`):
//! the DLT-registered template's id, and one recipient with the
//! template's variables `var1`, `var2`, ... in the approved order.
//!
//! India's DLT rules: every SMS goes out as a registered template whose
//! fixed text must match exactly, and each variable (`{#var#}`) holds at
//! most [`MAX_VARIABLE_CHARS`] characters. A value past that would be
//! cut or refused by the operator's network, so it is refused here, as a
//! permanent failure, rather than sent as something other than what the
//! template says. Free text has no registered template and is refused
//! the same way.

use serde_json::{Map, Value, json};

/// The most characters a DLT template variable holds.
pub const MAX_VARIABLE_CHARS: usize = 30;
/// The most variables a template may carry here.
pub const MAX_VARIABLES: usize = 32;
/// The longest template id taken.
const MAX_TEMPLATE_ID: usize = 64;

/// Why a message cannot be put into a flow request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestError {
    /// Free text: SMS in India goes only as a registered template.
    NoTemplate,
    /// The template id is empty, too long or not printable.
    BadTemplateId,
    /// The recipient is not `+` and 8 to 15 digits.
    BadRecipient,
    /// More variables than a template carries.
    TooManyVariables(usize),
    /// A variable longer than DLT allows (1-based position, characters).
    VariableTooLong(usize, usize),
}

impl RequestError {
    /// The failure's code in the audit trail.
    pub fn code(&self) -> &'static str {
        match self {
            RequestError::NoTemplate => "template_required",
            RequestError::BadTemplateId => "invalid_template_id",
            RequestError::BadRecipient => "invalid_recipient",
            RequestError::TooManyVariables(_) => "too_many_variables",
            RequestError::VariableTooLong(..) => "dlt_variable_too_long",
        }
    }
}

impl std::fmt::Display for RequestError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RequestError::NoTemplate => f.write_str(
                "an SMS in India goes out only as a DLT-registered template; free text cannot be sent",
            ),
            RequestError::BadTemplateId => {
                f.write_str("the template id is 1 to 64 printable characters")
            }
            RequestError::BadRecipient => f.write_str("the recipient is not + and 8 to 15 digits"),
            RequestError::TooManyVariables(n) => {
                write!(f, "{n} variables; a template carries at most {MAX_VARIABLES}")
            }
            RequestError::VariableTooLong(position, chars) => write!(
                f,
                "variable {position} has {chars} characters; DLT allows {MAX_VARIABLE_CHARS}"
            ),
        }
    }
}

/// The flow request for `recipient` (E.164) with the registered template
/// `template_id` and its variables in order; `sender` is the DLT sender
/// id, when the flow does not fix one.
pub fn flow(
    recipient: &str,
    template_id: Option<&str>,
    variables: &[String],
    sender: Option<&str>,
) -> Result<Value, RequestError> {
    let template_id = template_id.ok_or(RequestError::NoTemplate)?;
    if template_id.is_empty()
        || template_id.len() > MAX_TEMPLATE_ID
        || template_id
            .chars()
            .any(|c| c.is_control() || c.is_whitespace())
    {
        return Err(RequestError::BadTemplateId);
    }
    let digits = recipient
        .strip_prefix('+')
        .filter(|d| (8..=15).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_digit()))
        .ok_or(RequestError::BadRecipient)?;
    if variables.len() > MAX_VARIABLES {
        return Err(RequestError::TooManyVariables(variables.len()));
    }
    let mut to = Map::new();
    to.insert("mobiles".into(), json!(digits));
    for (i, value) in variables.iter().enumerate() {
        let chars = value.chars().count();
        if chars > MAX_VARIABLE_CHARS {
            return Err(RequestError::VariableTooLong(i + 1, chars));
        }
        to.insert(format!("var{}", i + 1), json!(value));
    }
    let mut body = json!({
        "template_id": template_id,
        "short_url": "0",
        "recipients": [Value::Object(to)],
    });
    if let Some(sender) = sender.filter(|s| !s.is_empty()) {
        body["sender"] = json!(sender);
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_template_goes_as_one_recipient_with_numbered_variables() {
        let body = flow(
            "+919876543210",
            Some("6512a0c5d6fc05"),
            &["A-17".into(), "25 Nov".into()],
            Some("EBIRD"),
        )
        .unwrap();
        assert_eq!(
            body,
            json!({
                "template_id": "6512a0c5d6fc05",
                "short_url": "0",
                "sender": "EBIRD",
                "recipients": [{"mobiles": "919876543210", "var1": "A-17", "var2": "25 Nov"}],
            })
        );
    }

    /// Thirty characters go, in any script; thirty-one never do.
    #[test]
    fn dlt_limits_and_free_text_are_refused_never_sent_wrong() {
        let thirty = "द".repeat(30);
        assert!(
            flow(
                "+919876543210",
                Some("t"),
                std::slice::from_ref(&thirty),
                None
            )
            .is_ok()
        );
        assert_eq!(
            flow(
                "+919876543210",
                Some("t"),
                &["ok".into(), format!("{thirty}x")],
                None
            ),
            Err(RequestError::VariableTooLong(2, 31))
        );
        assert_eq!(
            flow("+919876543210", None, &[], None),
            Err(RequestError::NoTemplate)
        );
        assert_eq!(
            flow("919876543210", Some("t"), &[], None),
            Err(RequestError::BadRecipient)
        );
        assert_eq!(
            flow("+91 98765", Some("t"), &[], None),
            Err(RequestError::BadRecipient)
        );
        assert_eq!(
            flow("+919876543210", Some("a b"), &[], None),
            Err(RequestError::BadTemplateId)
        );
        assert_eq!(
            flow("+919876543210", Some("t"), &vec!["v".to_string(); 33], None),
            Err(RequestError::TooManyVariables(33))
        );
    }
}
