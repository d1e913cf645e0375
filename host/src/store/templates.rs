//! The `template` and `template_version` tables: the templates in force and
//! every saved version of each.
//!
//! The files in `templates/` seed the store the first time a template is
//! seen; after that the store is the truth, so an edit made through the API
//! survives restarts and is never overwritten by the files.

use surrealdb::types::SurrealValue;

use super::{Store, StoreError, checked};
use crate::message::{Millis, now_millis};
use crate::templates::TemplateDef;

#[derive(Debug, Clone, SurrealValue)]
struct TemplateRow {
    name: String,
    version: i64,
    saved_at: i64,
    def: serde_json::Value,
}

/// One saved version of a template.
#[derive(Debug, Clone)]
pub struct TemplateVersion {
    /// Its number, from 1.
    pub version: u32,
    /// When it was saved.
    pub saved_at: Millis,
    /// What was saved.
    pub def: TemplateDef,
}

impl TemplateRow {
    fn new(def: &TemplateDef, saved_at: Millis) -> Result<TemplateRow, StoreError> {
        Ok(TemplateRow {
            name: def.name.clone(),
            version: def.version.into(),
            saved_at,
            def: serde_json::to_value(def).map_err(|e| StoreError::Corrupt(e.to_string()))?,
        })
    }

    fn into_version(self) -> Result<TemplateVersion, StoreError> {
        let mut def: TemplateDef = serde_json::from_value(self.def)
            .map_err(|e| StoreError::Corrupt(format!("template {}: {e}", self.name)))?;
        def.version = self.version.max(0) as u32;
        Ok(TemplateVersion {
            version: def.version,
            saved_at: self.saved_at,
            def,
        })
    }
}

impl Store {
    /// Stores, as version 1, every template of `seed` the store does not
    /// have yet. Returns how many were new.
    pub async fn seed_templates(&self, seed: &[TemplateDef]) -> Result<usize, StoreError> {
        self.write(async {
            let known: Vec<String> = self
                .db
                .query("SELECT VALUE name FROM template")
                .await?
                .take(0)?;
            let now = now_millis();
            let rows = seed
                .iter()
                .filter(|d| !known.contains(&d.name))
                .map(|d| {
                    let mut def = d.clone();
                    def.version = 1;
                    TemplateRow::new(&def, now)
                })
                .collect::<Result<Vec<_>, _>>()?;
            if rows.is_empty() {
                return Ok(0);
            }
            let count = rows.len();
            let results = self
                .db
                .query(
                    "BEGIN TRANSACTION;
                 FOR $row IN $rows {
                     UPSERT type::record('template', $row.name) CONTENT $row;
                     CREATE template_version CONTENT $row;
                 };
                 COMMIT TRANSACTION;",
                )
                .bind(("rows", rows))
                .await?;
            checked(results)?;
            Ok(count)
        })
        .await
    }

    /// The templates in force.
    pub async fn templates(&self) -> Result<Vec<TemplateDef>, StoreError> {
        let rows: Vec<TemplateRow> = self
            .db
            .query("SELECT name, version, saved_at, def FROM template ORDER BY name")
            .await?
            .take(0)?;
        rows.into_iter()
            .map(|r| r.into_version().map(|v| v.def))
            .collect()
    }

    /// Saves `def` as the next version of its template and puts it in
    /// force, in one transaction. Returns the version number, or `None` if
    /// the template's current version is no longer `expected` (another save
    /// came first).
    pub async fn save_template(
        &self,
        def: &TemplateDef,
        expected: u32,
    ) -> Result<Option<u32>, StoreError> {
        self.write(async {
        let mut next = def.clone();
        next.version = expected + 1;
        let row = TemplateRow::new(&next, now_millis())?;
        let mut response = self
            .db
            .query(
                "BEGIN TRANSACTION;
                 LET $current = (SELECT VALUE version FROM ONLY type::record('template', $row.name));
                 IF $current != $expected { THROW 'version conflict' };
                 UPSERT type::record('template', $row.name) CONTENT $row;
                 CREATE template_version CONTENT $row;
                 COMMIT TRANSACTION;",
            )
            .bind(("row", row))
            .bind(("expected", i64::from(expected)))
            .await?;
        let errors = response.take_errors();
        if errors
            .values()
            .any(|e| e.to_string().contains("version conflict"))
        {
            return Ok(None);
        }
        if let Some((_, e)) = errors.into_iter().next() {
            return Err(e.into());
        }
        Ok(Some(next.version))
        })
        .await
    }

    /// Every saved version of a template, newest first.
    pub async fn template_versions(&self, name: &str) -> Result<Vec<TemplateVersion>, StoreError> {
        let rows: Vec<TemplateRow> = self
            .db
            .query(
                "SELECT name, version, saved_at, def FROM template_version \
                 WHERE name = $name ORDER BY version DESC",
            )
            .bind(("name", name.to_string()))
            .await?
            .take(0)?;
        rows.into_iter().map(TemplateRow::into_version).collect()
    }
}
