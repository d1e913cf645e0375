//! `/api/notifications/templates`: the templates operators edit live.
//!
//! Every save is checked (the text parses and uses only declared
//! variables) before it is stored, becomes a new version, and is in force
//! for the next message at once. A bad edit is refused with the field, the
//! line and the reason, and the version before keeps serving.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Map, Value, json};

use super::auth::{Admin, Caller};
use super::extract::{Fields, JsonObject};
use super::{ApiError, AppState};
use crate::message::rfc3339;
use crate::templates::{Category, TemplateDef, TemplateProblem};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/notifications/templates", get(list))
        .route("/api/notifications/templates/{name}", get(one).put(update))
        .route(
            "/api/notifications/templates/{name}/versions",
            get(versions),
        )
        .route(
            "/api/notifications/templates/{name}/rollback/{version}",
            post(rollback),
        )
        .route("/api/notifications/templates/{name}/preview", post(preview))
}

async fn list(_caller: Caller, State(state): State<AppState>) -> Json<Value> {
    let catalog = state.templates.current();
    let templates: Vec<&TemplateDef> = catalog.all().collect();
    Json(json!({ "items": templates }))
}

fn current(state: &AppState, name: &str) -> Result<TemplateDef, ApiError> {
    state
        .templates
        .current()
        .get(name)
        .cloned()
        .ok_or_else(|| ApiError::not_found("template", name))
}

async fn one(
    _caller: Caller,
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<TemplateDef>, ApiError> {
    current(&state, &name).map(Json)
}

/// `PUT`: any of `text` (an object of language -> text, or a string for
/// English), `enabled`, `variables`, `category`, `description`,
/// `whatsapp`, `sample`. Fields left out keep their value.
async fn update(
    _admin: Admin,
    State(state): State<AppState>,
    Path(name): Path<String>,
    JsonObject(body): JsonObject,
) -> Result<Json<TemplateDef>, ApiError> {
    let mut def = current(&state, &name)?;
    let mut fields = Fields::new(body);
    match fields.value("text") {
        None => {}
        Some(Value::String(en)) => {
            def.text.insert("en".into(), en);
        }
        Some(Value::Object(texts)) => {
            def.text = texts
                .into_iter()
                .map(|(lang, text)| match text {
                    Value::String(t) => Ok((lang, t)),
                    _ => Err(ApiError::invalid(
                        format!("text.{lang}"),
                        "invalid_type",
                        "a text must be a string",
                    )),
                })
                .collect::<Result<_, _>>()?;
        }
        Some(_) => {
            return Err(ApiError::invalid(
                "text",
                "invalid_type",
                "text is an object of language -> text, or a string (English)",
            ));
        }
    }
    if let Some(enabled) = fields.boolean("enabled")? {
        def.enabled = enabled;
    }
    if let Some(variables) = fields.strings("variables")? {
        def.variables = variables;
    }
    if let Some(description) = fields.string("description")? {
        def.description = description;
    }
    if let Some(category) = fields.string("category")? {
        def.category = match category.as_str() {
            "transactional" => Category::Transactional,
            "marketing" => Category::Marketing,
            _ => {
                return Err(ApiError::invalid(
                    "category",
                    "invalid_category",
                    "category is transactional or marketing",
                ));
            }
        };
    }
    if let Some(whatsapp) = fields.value("whatsapp") {
        def.whatsapp = serde_json::from_value(whatsapp).map_err(|e| {
            ApiError::invalid(
                "whatsapp",
                "invalid_whatsapp",
                format!("whatsapp is {{template, parameters}}: {e}"),
            )
        })?;
    }
    if let Some(sample) = fields.object("sample")? {
        def.sample = sample.into_iter().collect();
    }
    fields.finish()?;
    save(&state, def).await.map(Json)
}

/// Checks `def`, stores it as the next version and puts it in force.
async fn save(state: &AppState, def: TemplateDef) -> Result<TemplateDef, ApiError> {
    let catalog = state.templates.current();
    let expected = catalog.get(&def.name).map(|d| d.version).unwrap_or(0);
    // Check before storing: a bad text never becomes a version.
    catalog.with(def.clone()).map_err(problem)?;
    let Some(version) = state.store.save_template(&def, expected).await? else {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "version_conflict",
            "the template was changed meanwhile; read it again and retry",
        ));
    };
    let mut saved = def;
    saved.version = version;
    let updated = state
        .templates
        .current()
        .with(saved.clone())
        .map_err(problem)?;
    state.templates.replace(updated);
    tracing::info!(template = %saved.name, version, "template saved");
    Ok(saved)
}

fn problem(p: TemplateProblem) -> ApiError {
    let message = p.to_string();
    let mut error = ApiError::invalid(p.field, "invalid_template", message);
    error.status = StatusCode::UNPROCESSABLE_ENTITY;
    error
}

async fn versions(
    _caller: Caller,
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    current(&state, &name)?;
    let versions = state.store.template_versions(&name).await?;
    let items: Vec<Value> = versions
        .into_iter()
        .map(|v| {
            json!({
                "version": v.version,
                "saved_at": rfc3339(v.saved_at),
                "enabled": v.def.enabled,
                "variables": v.def.variables,
                "text": v.def.text,
            })
        })
        .collect();
    Ok(Json(json!({ "items": items })))
}

/// Saves an earlier version's content as a new version.
async fn rollback(
    _admin: Admin,
    State(state): State<AppState>,
    Path((name, version)): Path<(String, String)>,
) -> Result<Json<TemplateDef>, ApiError> {
    current(&state, &name)?;
    let wanted: u32 = version.parse().map_err(|_| {
        ApiError::invalid("version", "invalid_version", "version is a whole number")
    })?;
    let old = state
        .store
        .template_versions(&name)
        .await?
        .into_iter()
        .find(|v| v.version == wanted)
        .ok_or_else(|| ApiError::not_found("version", &format!("{name}@{wanted}")))?;
    save(&state, old.def).await.map(Json)
}

/// Renders with the given `variables` (or the template's samples) and
/// `language`; sends nothing.
async fn preview(
    _caller: Caller,
    State(state): State<AppState>,
    Path(name): Path<String>,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    let catalog = state.templates.current();
    let mut variables = catalog
        .sample_variables(&name)
        .ok_or_else(|| ApiError::not_found("template", &name))?;
    let mut language = None;
    if !body.is_empty() {
        let body = match serde_json::from_slice(&body) {
            Ok(Value::Object(map)) => map,
            _ => {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "malformed_json",
                    "the body must be a JSON object (or empty for the samples)",
                ));
            }
        };
        let mut fields = Fields::new(body);
        if let Some(given) = fields.object("variables")? {
            let given: Map<String, Value> = given;
            variables.extend(given);
        }
        language = fields.string("language")?;
        fields.finish()?;
    }
    let rendered = catalog.render(&name, language.as_deref(), &variables)?;
    Ok(Json(json!({
        "template": name,
        "version": rendered.version,
        "language": rendered.language,
        "text": rendered.text,
        "provider_template": rendered.provider_template,
        "variables": variables,
    })))
}
