//! `chirp import`: the settings of the system chirp replaces, from a
//! `mongoexport` of its `notification_settings` collection (one JSON
//! document per line, or `--jsonArray`), into recipients' preferences;
//! and the `active` flags of its `notification_templates`, into the
//! enabled state of chirp's templates of the same name. Which field holds
//! what is a mapping (defaults below, or a TOML file). Importing the same
//! export again changes nothing.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

use crate::phone::Phone;
use crate::preferences::Preferences;

/// The largest export read.
pub const MAX_EXPORT_BYTES: u64 = 256 << 20;

/// Which field of a `notification_settings` document holds what. A field
/// named with a leading `!` is a flag read inverted (`!marketing_enabled`:
/// opted out of marketing when `marketing_enabled` is false). A field a
/// document lacks leaves the setting at its default (opted in).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SettingsMapping {
    /// The recipient's phone.
    pub phone: String,
    /// The old system's user id (only reported).
    pub user_id: String,
    /// Opted out of everything.
    pub opt_out_all: String,
    /// Opted out of marketing.
    pub opt_out_marketing: String,
    /// A list of template names opted out of.
    pub opt_out_templates: String,
    /// Language code.
    pub language: String,
    /// IANA time zone.
    pub timezone: String,
}

impl Default for SettingsMapping {
    fn default() -> SettingsMapping {
        SettingsMapping {
            phone: "phone".into(),
            user_id: "user_id".into(),
            opt_out_all: "!notifications_enabled".into(),
            opt_out_marketing: "!marketing_enabled".into(),
            opt_out_templates: "disabled_templates".into(),
            language: "language".into(),
            timezone: "timezone".into(),
        }
    }
}

/// Which field of a `notification_templates` document holds what.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TemplatesMapping {
    /// The template's name (the seed's `type`).
    pub name: String,
    /// Whether it is in use.
    pub enabled: String,
}

impl Default for TemplatesMapping {
    fn default() -> TemplatesMapping {
        TemplatesMapping {
            name: "type".into(),
            enabled: "active".into(),
        }
    }
}

/// The whole mapping file: `[settings]` and `[templates]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Mapping {
    /// For `notification_settings`.
    pub settings: SettingsMapping,
    /// For `notification_templates`.
    pub templates: TemplatesMapping,
}

/// A document that was not imported, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skip {
    /// Its line (1-based) or place in the array.
    pub at: usize,
    /// Why.
    pub reason: String,
}

/// Why an export cannot be read at all.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// Neither JSON lines nor a JSON array of objects.
    #[error("not a mongoexport of JSON documents: {0}")]
    NotAnExport(String),
}

/// The documents of an export: a JSON array, or one object per line.
pub fn documents(text: &str) -> Result<Vec<Value>, ImportError> {
    let trimmed = text.trim_start();
    if trimmed.starts_with('[') {
        return match serde_json::from_str(trimmed) {
            Ok(Value::Array(items)) => Ok(items),
            Ok(_) => Err(ImportError::NotAnExport("expected an array".into())),
            Err(e) => Err(ImportError::NotAnExport(e.to_string())),
        };
    }
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(n, line)| {
            serde_json::from_str(line)
                .map_err(|e| ImportError::NotAnExport(format!("line {}: {e}", n + 1)))
        })
        .collect()
}

/// A field's value, with mongoexport's extended JSON unwrapped
/// (`{"$numberLong": "1"}`, `{"$date": ...}`).
fn field<'a>(document: &'a Value, name: &str) -> Option<&'a Value> {
    let value = document.get(name)?;
    match value.as_object() {
        Some(object) if object.len() == 1 => object.values().next(),
        _ => Some(value),
    }
    .filter(|v| !v.is_null())
}

/// A flag by `spec` (`name`, or `!name` inverted); `None` when absent or
/// not a boolean.
fn flag(document: &Value, spec: &str) -> Result<Option<bool>, String> {
    let (name, inverted) = match spec.strip_prefix('!') {
        Some(name) => (name, true),
        None => (spec, false),
    };
    match field(document, name) {
        None => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b != inverted)),
        Some(other) => Err(format!("{name} is {other}, not true or false")),
    }
}

fn text(document: &Value, name: &str) -> Result<Option<String>, String> {
    match field(document, name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(other) => Err(format!("{name} is {other}, not text")),
    }
}

/// The preferences `documents` give under `mapping`, by phone, and the
/// documents skipped with why. A phone given twice keeps its first
/// document; later ones are skipped.
pub fn settings(
    documents: &[Value],
    mapping: &SettingsMapping,
) -> (BTreeMap<String, Preferences>, Vec<Skip>) {
    let mut read = BTreeMap::new();
    let mut skipped = Vec::new();
    for (n, document) in documents.iter().enumerate() {
        let at = n + 1;
        let one = || -> Result<Preferences, String> {
            let raw =
                text(document, &mapping.phone)?.ok_or_else(|| format!("no {}", mapping.phone))?;
            // The old system kept Indian numbers with or without +91.
            let digits: String = raw.chars().filter(|c| c.is_ascii_digit()).collect();
            let candidate = match (raw.trim_start().starts_with('+'), digits.len()) {
                (true, _) => format!("+{digits}"),
                (false, 10) => format!("+91{digits}"),
                (false, _) => format!("+{digits}"),
            };
            let phone = Phone::parse(&candidate).map_err(|e| format!("phone {raw:?}: {e}"))?;
            let templates = match field(document, &mapping.opt_out_templates) {
                None => Vec::new(),
                Some(Value::Array(items)) => items
                    .iter()
                    .map(|t| t.as_str().map(String::from))
                    .collect::<Option<Vec<_>>>()
                    .ok_or_else(|| {
                        format!("{} holds a non-text entry", mapping.opt_out_templates)
                    })?,
                Some(other) => {
                    return Err(format!(
                        "{} is {other}, not a list",
                        mapping.opt_out_templates
                    ));
                }
            };
            Ok(Preferences {
                opt_out_all: flag(document, &mapping.opt_out_all)?.unwrap_or(false),
                opt_out_marketing: flag(document, &mapping.opt_out_marketing)?.unwrap_or(false),
                opt_out_templates: templates,
                language: text(document, &mapping.language)?,
                timezone: text(document, &mapping.timezone)?,
                ..Preferences::defaults_for(phone.as_str())
            })
        };
        match one() {
            Ok(prefs) if read.contains_key(&prefs.phone) => skipped.push(Skip {
                at,
                reason: format!("{} was given before", crate::phone::mask(&prefs.phone)),
            }),
            Ok(prefs) => {
                read.insert(prefs.phone.clone(), prefs);
            }
            Err(reason) => skipped.push(Skip { at, reason }),
        }
    }
    (read, skipped)
}

/// The enabled state per template name `documents` give under `mapping`,
/// and the documents skipped with why.
pub fn templates(
    documents: &[Value],
    mapping: &TemplatesMapping,
) -> (BTreeMap<String, bool>, Vec<Skip>) {
    let mut read = BTreeMap::new();
    let mut skipped = Vec::new();
    for (n, document) in documents.iter().enumerate() {
        let found = text(document, &mapping.name).and_then(|name| {
            let name = name.ok_or_else(|| format!("no {}", mapping.name))?;
            let enabled = flag(document, &mapping.enabled)?
                .ok_or_else(|| format!("no {}", mapping.enabled))?;
            Ok((name, enabled))
        });
        match found {
            Ok((name, enabled)) => {
                read.insert(name, enabled);
            }
            Err(reason) => skipped.push(Skip { at: n + 1, reason }),
        }
    }
    (read, skipped)
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXPORT: &str = r#"
{"_id":{"$oid":"65a1"},"user_id":"u1","phone":"9876543210","notifications_enabled":true,"marketing_enabled":false,"language":"hi"}
{"_id":{"$oid":"65a2"},"user_id":{"$numberLong":"2"},"phone":"+14155550100","disabled_templates":["churn_risk"]}
{"_id":{"$oid":"65a3"},"user_id":"u3","phone":"12"}
{"_id":{"$oid":"65a4"},"user_id":"u4","phone":"+919876543210","notifications_enabled":false}
{"_id":{"$oid":"65a5"},"user_id":"u5","phone":"+919812345678","marketing_enabled":"no"}
{"_id":{"$oid":"65a6"},"user_id":"u6"}
"#;

    /// Each document becomes preferences as the mapping says, or is
    /// skipped with why: a phone that is no phone, a phone given twice, a
    /// flag that is not a boolean, no phone at all.
    #[test]
    fn an_export_reads_into_preferences_and_says_what_it_skipped() {
        let lines = documents(EXPORT).unwrap();
        let (read, skipped) = settings(&lines, &SettingsMapping::default());
        assert_eq!(read.len(), 2, "{read:?}");
        let indian = &read["+919876543210"];
        assert!(indian.opt_out_marketing && !indian.opt_out_all);
        assert_eq!(indian.language.as_deref(), Some("hi"));
        assert_eq!(read["+14155550100"].opt_out_templates, ["churn_risk"]);
        let at: Vec<usize> = skipped.iter().map(|s| s.at).collect();
        assert_eq!(at, [3, 4, 5, 6], "{skipped:?}");
        assert!(skipped[1].reason.contains("given before"), "{skipped:?}");
        assert!(
            !skipped[1].reason.contains("9876543210"),
            "a phone in the report"
        );
    }

    #[test]
    fn a_json_array_and_another_mapping_read_the_same() {
        let mapping: Mapping =
            toml::from_str("[settings]\nphone = \"mobile\"\nopt_out_marketing = \"no_promos\"\n")
                .unwrap();
        let array = documents(r#"[{"mobile": "+919876543210", "no_promos": true}]"#).unwrap();
        let (read, skipped) = settings(&array, &mapping.settings);
        assert!(skipped.is_empty());
        assert!(read["+919876543210"].opt_out_marketing);
        let (states, _) = templates(
            &documents(r#"{"type": "churn_risk", "active": false}"#).unwrap(),
            &TemplatesMapping::default(),
        );
        assert!(!states["churn_risk"]);
        assert!(documents("not json").is_err());
    }
}
