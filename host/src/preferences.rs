//! A recipient's preferences: what they opted out of, their language and
//! time zone. Read before rendering (`recipients`), checked again just
//! before a send (`gate`), and shown to the rules component as opt-outs.

use crate::message::Millis;

/// A recipient's settings. The default (no row) is: opted into everything,
/// language and time zone unknown.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Preferences {
    /// The recipient, E.164.
    pub phone: String,
    /// Opted out of every message.
    pub opt_out_all: bool,
    /// Opted out of marketing (`category = "marketing"` templates).
    pub opt_out_marketing: bool,
    /// Opted out of these templates.
    pub opt_out_templates: Vec<String>,
    /// Their language, e.g. `hi`, if known.
    pub language: Option<String>,
    /// Their IANA time zone, if known.
    pub timezone: Option<String>,
    /// When they were last saved; `None` until then.
    pub updated_at: Option<Millis>,
}

impl Preferences {
    /// The preferences of a recipient who never saved any.
    pub fn defaults_for(phone: &str) -> Preferences {
        Preferences {
            phone: phone.into(),
            ..Preferences::default()
        }
    }

    /// The opt-outs as the rules component sees them: `all`, `marketing`,
    /// template names.
    pub fn opt_outs(&self) -> Vec<String> {
        let mut list = Vec::new();
        if self.opt_out_all {
            list.push("all".to_string());
        }
        if self.opt_out_marketing {
            list.push("marketing".to_string());
        }
        list.extend(self.opt_out_templates.iter().cloned());
        list
    }
}
