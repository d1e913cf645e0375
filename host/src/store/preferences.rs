//! The `preference` table: what each recipient, keyed by phone, opted out
//! of, and their language and time zone.

use std::collections::HashMap;

use surrealdb::types::{RecordId, SurrealValue};

use super::{Store, StoreError, checked};
use crate::message::{Millis, now_millis};
use crate::preferences::{OptIn, OptOutNote, Preferences};

/// A `preference` row.
#[derive(Debug, Clone, SurrealValue)]
struct PreferenceRow {
    phone: String,
    opt_out_all: bool,
    opt_out_marketing: bool,
    opt_out_templates: Vec<String>,
    language: Option<String>,
    timezone: Option<String>,
    /// The opt-in to marketing, if given: where, when, to which wording.
    opt_in_source: Option<String>,
    opt_in_at: Option<Millis>,
    opt_in_wording: Option<String>,
    /// Where the opt-out from marketing came from, and when.
    opt_out_source: Option<String>,
    opt_out_at: Option<Millis>,
    updated_at: Option<Millis>,
}

impl From<PreferenceRow> for Preferences {
    fn from(row: PreferenceRow) -> Preferences {
        Preferences {
            phone: row.phone,
            opt_out_all: row.opt_out_all,
            opt_out_marketing: row.opt_out_marketing,
            opt_out_templates: row.opt_out_templates,
            language: row.language,
            timezone: row.timezone,
            opt_in: match (row.opt_in_source, row.opt_in_at, row.opt_in_wording) {
                (Some(source), Some(at), Some(wording)) => Some(OptIn {
                    source,
                    at,
                    wording,
                }),
                _ => None,
            },
            marketing_opt_out_by: row
                .opt_out_source
                .zip(row.opt_out_at)
                .map(|(source, at)| OptOutNote { source, at }),
            updated_at: row.updated_at,
        }
    }
}

impl From<Preferences> for PreferenceRow {
    fn from(p: Preferences) -> PreferenceRow {
        PreferenceRow {
            phone: p.phone,
            opt_out_all: p.opt_out_all,
            opt_out_marketing: p.opt_out_marketing,
            opt_out_templates: p.opt_out_templates,
            language: p.language,
            timezone: p.timezone,
            opt_in_source: p.opt_in.as_ref().map(|o| o.source.clone()),
            opt_in_at: p.opt_in.as_ref().map(|o| o.at),
            opt_in_wording: p.opt_in.map(|o| o.wording),
            opt_out_source: p.marketing_opt_out_by.as_ref().map(|o| o.source.clone()),
            opt_out_at: p.marketing_opt_out_by.map(|o| o.at),
            updated_at: p.updated_at,
        }
    }
}

impl Store {
    /// The preferences of `phone` (defaults if none were saved).
    pub async fn preferences(&self, phone: &str) -> Result<Preferences, StoreError> {
        let mut saved = self.saved_preferences(&[phone.to_string()]).await?;
        Ok(saved
            .remove(phone)
            .unwrap_or_else(|| Preferences::defaults_for(phone)))
    }

    /// The preferences saved for any of `phones`, in one query, keyed by
    /// phone; a phone without a row is absent from the answer.
    pub async fn saved_preferences(
        &self,
        phones: &[String],
    ) -> Result<HashMap<String, Preferences>, StoreError> {
        let ids: Vec<RecordId> = phones
            .iter()
            .map(|phone| RecordId::new("preference", phone.as_str()))
            .collect();
        let rows: Vec<PreferenceRow> = self
            .db
            .query(
                "SELECT phone, opt_out_all, opt_out_marketing, opt_out_templates, language, \
                 timezone, opt_in_source, opt_in_at, opt_in_wording, opt_out_source, opt_out_at, updated_at FROM $ids",
            )
            .bind(("ids", ids))
            .await?
            .take(0)?;
        Ok(rows
            .into_iter()
            .map(|row| (row.phone.clone(), Preferences::from(row)))
            .collect())
    }

    /// Replaces the preferences of `prefs.phone`.
    pub async fn save_preferences(
        &self,
        mut prefs: Preferences,
    ) -> Result<Preferences, StoreError> {
        self.write(async {
            prefs.updated_at = Some(now_millis());
            checked(
                self.db
                    .query("UPSERT type::record('preference', $p.phone) CONTENT $p RETURN NONE")
                    .bind(("p", PreferenceRow::from(prefs.clone())))
                    .await?,
            )?;
            Ok(prefs)
        })
        .await
    }
}
