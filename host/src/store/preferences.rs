//! The `preference` table: what each recipient, keyed by phone, opted out
//! of, and their language and time zone.

use std::collections::HashMap;

use surrealdb::types::{RecordId, SurrealValue};

use super::{Store, StoreError, checked};
use crate::message::{Millis, now_millis};

/// A recipient's settings. The default (no row) is: opted into everything,
/// language and time zone unknown.
#[derive(
    Debug, Clone, Default, PartialEq, Eq, SurrealValue, serde::Serialize, utoipa::ToSchema,
)]
pub struct Preferences {
    pub phone: String,
    /// Opted out of every message.
    pub opt_out_all: bool,
    /// Opted out of marketing (`category = "marketing"` templates).
    pub opt_out_marketing: bool,
    /// Opted out of these templates.
    pub opt_out_templates: Vec<String>,
    pub language: Option<String>,
    pub timezone: Option<String>,
    /// Milliseconds since the Unix epoch; `null` until first saved.
    #[schema(value_type = Option<i64>)]
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
        let rows: Vec<Preferences> = self
            .db
            .query(
                "SELECT phone, opt_out_all, opt_out_marketing, opt_out_templates, language, \
                 timezone, updated_at FROM $ids",
            )
            .bind(("ids", ids))
            .await?
            .take(0)?;
        Ok(rows.into_iter().map(|p| (p.phone.clone(), p)).collect())
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
                    .bind(("p", prefs.clone()))
                    .await?,
            )?;
            Ok(prefs)
        })
        .await
    }
}
