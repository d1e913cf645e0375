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
    /// Their consent to marketing, if they gave it.
    pub opt_in: Option<OptIn>,
    /// How and when they opted out of marketing, if chirp knows: a caller
    /// (`api`), a keyword they sent (`keyword:STOP`), or the platform
    /// refusing marketing for them (`platform:131050`).
    pub marketing_opt_out_by: Option<OptOutNote>,
    /// When they were last saved; `None` until then.
    pub updated_at: Option<Millis>,
}

/// Where an opt-out from marketing came from, and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OptOutNote {
    /// `api`, `keyword:<the keyword>` or `platform:<its code>`.
    pub source: String,
    /// When chirp recorded it.
    pub at: Millis,
}

/// A recipient's consent to marketing, as WhatsApp asks businesses to
/// keep it: where it was given, when, and to which wording.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OptIn {
    /// Where it was given, e.g. `app-signup`.
    pub source: String,
    /// When it was recorded.
    pub at: Millis,
    /// The version of the wording the recipient agreed to.
    pub wording: String,
}

/// The operator's consent policy (`CHIRP_MARKETING_NEEDS_OPT_IN`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Consent {
    /// Marketing goes only to recipients who opted in to it.
    pub marketing_needs_opt_in: bool,
    /// Free text goes only to a phone inside its customer-service window.
    pub free_text_needs_window: bool,
}

/// WhatsApp's customer-service window: free text may follow a customer's
/// own message for this long.
pub const SERVICE_WINDOW: Millis = 24 * 3600 * 1000;

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
