//! The registered callback endpoints (`callback_endpoint`, by ULID), with
//! their secrets: chirp signs with them, so they are kept as given.

use surrealdb::types::{RecordId, SurrealValue};

use crate::callbacks::{Endpoint, Scope, Secret};
use crate::store::messages::message_key;
use crate::store::{Store, StoreError, checked};

#[derive(Debug, Clone, SurrealValue)]
struct SecretRow {
    value: String,
    until: Option<i64>,
}

#[derive(Debug, Clone, SurrealValue)]
struct EndpointRow {
    id: RecordId,
    url: String,
    scope: String,
    secrets: Vec<SecretRow>,
    description: Option<String>,
    created_at: i64,
    created_by: String,
}

impl EndpointRow {
    fn from_endpoint(e: &Endpoint) -> EndpointRow {
        EndpointRow {
            id: RecordId::new("callback_endpoint", e.id.as_str()),
            url: e.url.clone(),
            scope: e.scope.as_str().to_string(),
            secrets: e
                .secrets
                .iter()
                .map(|s| SecretRow {
                    value: s.value.clone(),
                    until: s.until,
                })
                .collect(),
            description: e.description.clone(),
            created_at: e.created_at,
            created_by: e.created_by.clone(),
        }
    }

    fn into_endpoint(self) -> Result<Endpoint, StoreError> {
        Ok(Endpoint {
            id: message_key(&self.id),
            scope: Scope::parse(&self.scope)
                .ok_or_else(|| StoreError::Corrupt(format!("endpoint scope {:?}", self.scope)))?,
            url: self.url,
            secrets: self
                .secrets
                .into_iter()
                .map(|s| Secret {
                    value: s.value,
                    until: s.until,
                })
                .collect(),
            description: self.description,
            created_at: self.created_at,
            created_by: self.created_by,
        })
    }
}

impl Store {
    /// Every registered endpoint, oldest first.
    pub async fn callback_endpoints(&self) -> Result<Vec<Endpoint>, StoreError> {
        let rows: Vec<EndpointRow> = self
            .db
            .query("SELECT * FROM callback_endpoint ORDER BY id")
            .await?
            .take(0)?;
        rows.into_iter().map(EndpointRow::into_endpoint).collect()
    }

    /// Stores `endpoint`, new or changed (a rotated secret).
    pub async fn save_callback_endpoint(&self, endpoint: &Endpoint) -> Result<(), StoreError> {
        let row = EndpointRow::from_endpoint(endpoint);
        self.write(async {
            checked(
                self.db
                    .query("UPSERT $id CONTENT $row RETURN NONE")
                    .bind(("id", row.id.clone()))
                    .bind(("row", row))
                    .await?,
            )
            .map(|_| ())
        })
        .await
    }

    /// Removes endpoint `id`. Returns whether it existed.
    pub async fn remove_callback_endpoint(&self, id: &str) -> Result<bool, StoreError> {
        self.write(async {
            let removed: Vec<EndpointRow> = self
                .db
                .query("DELETE $id RETURN BEFORE")
                .bind(("id", RecordId::new("callback_endpoint", id)))
                .await?
                .take(0)?;
            Ok(!removed.is_empty())
        })
        .await
    }
}
