//! The `preference` table: what each recipient, keyed by phone, opted out
//! of, and their language and time zone.

use surrealdb::types::SurrealValue;

use super::{Store, StoreError};
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
        let rows: Vec<Preferences> = self
            .db
            .query(
                "SELECT phone, opt_out_all, opt_out_marketing, opt_out_templates, language, \
                 timezone, updated_at FROM type::record('preference', $phone)",
            )
            .bind(("phone", phone.to_string()))
            .await?
            .take(0)?;
        Ok(rows.into_iter().next().unwrap_or_else(|| Preferences {
            phone: phone.into(),
            ..Preferences::default()
        }))
    }

    /// Replaces the preferences of `prefs.phone`.
    pub async fn save_preferences(
        &self,
        mut prefs: Preferences,
    ) -> Result<Preferences, StoreError> {
        self.write(async {
            prefs.updated_at = Some(now_millis());
            self.db
                .query("UPSERT type::record('preference', $p.phone) CONTENT $p RETURN NONE")
                .bind(("p", prefs.clone()))
                .await?
                .check()?;
            Ok(prefs)
        })
        .await
    }
}
