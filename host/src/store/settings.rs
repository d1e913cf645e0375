//! Settings an admin changes while chirp runs (`setting:<name>`), and the
//! audit of every change (`setting_change:<ULID>`: who, when, from what
//! to what).

use surrealdb::types::{RecordId, SurrealValue};

use super::{Store, StoreError, checked};
use crate::message::Millis;

/// One change of a setting, as audited.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingChange {
    /// The value before (`None`: the configured one was in force).
    pub from: Option<String>,
    /// The value after.
    pub to: String,
    /// When.
    pub at: Millis,
    /// Who (the token's subject).
    pub by: String,
}

#[derive(Debug, SurrealValue)]
struct SettingRow {
    chosen: String,
}

#[derive(Debug, SurrealValue)]
struct ChangeRow {
    id: RecordId,
    setting: String,
    from: Option<String>,
    to: String,
    at: i64,
    by: String,
}

impl Store {
    /// The stored value of setting `name`, if an admin ever set it.
    pub async fn setting(&self, name: &str) -> Result<Option<String>, StoreError> {
        let rows: Vec<SettingRow> = self
            .db
            .query("SELECT chosen FROM type::record('setting', $name)")
            .bind(("name", name.to_string()))
            .await?
            .take(0)?;
        Ok(rows.into_iter().next().map(|row| row.chosen))
    }

    /// Sets `name` to `value` and audits the change, in one transaction.
    pub async fn set_setting(
        &self,
        name: &str,
        value: &str,
        by: &str,
        at: Millis,
    ) -> Result<(), StoreError> {
        let before = self.setting(name).await?;
        let change = ChangeRow {
            id: RecordId::new("setting_change", ulid::Ulid::new().to_string()),
            setting: name.to_string(),
            from: before,
            to: value.to_string(),
            at,
            by: by.to_string(),
        };
        self.write(async {
            checked(
                self.db
                    .query(
                        "BEGIN TRANSACTION;
                         UPSERT type::record('setting', $name) SET chosen = $chosen RETURN NONE;
                         CREATE $change.id CONTENT $change RETURN NONE;
                         COMMIT TRANSACTION;",
                    )
                    .bind(("name", name.to_string()))
                    .bind(("chosen", value.to_string()))
                    .bind(("change", change))
                    .await?,
            )?;
            Ok(())
        })
        .await
    }

    /// The last `limit` changes of setting `name`, newest first.
    pub async fn setting_changes(
        &self,
        name: &str,
        limit: usize,
    ) -> Result<Vec<SettingChange>, StoreError> {
        let rows: Vec<ChangeRow> = self
            .db
            .query(
                "SELECT * FROM setting_change WHERE setting = $name ORDER BY id DESC LIMIT $limit",
            )
            .bind(("name", name.to_string()))
            .bind(("limit", limit as i64))
            .await?
            .take(0)?;
        Ok(rows
            .into_iter()
            .map(|row| SettingChange {
                from: row.from,
                to: row.to,
                at: row.at,
                by: row.by,
            })
            .collect())
    }
}
