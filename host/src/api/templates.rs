//! `/api/notifications/templates`: the templates operators edit live.
//!
//! Every save is checked (the text parses and uses only declared
//! variables) before it is stored, becomes a new version, and is in force
//! for the next message at once. A bad edit is refused with the field, the
//! line and the reason, and the version before keeps serving.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Serialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::{Admin, Caller};
use super::extract::{Fields, JsonObject};
use super::template_views::{ApprovedTemplateView, TemplateView, WhatsappTemplateView};
use super::{ApiError, AppState};
use crate::message::rfc3339;
use crate::templates::{Category, TemplateDef, TemplateProblem};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(one, update))
        .routes(routes!(versions))
        .routes(routes!(rollback))
        .routes(routes!(preview))
}

/// Every template in force.
#[derive(Serialize, ToSchema)]
pub(super) struct TemplateList {
    items: Vec<TemplateView>,
}

#[utoipa::path(
    get,
    path = "/api/notifications/templates",
    tag = "templates",
    responses((status = 200, description = "Success", body = TemplateList)),
)]
pub(super) async fn list(_caller: Caller, State(state): State<AppState>) -> Json<TemplateList> {
    let catalog = state.templates.current();
    Json(TemplateList {
        items: catalog.all().cloned().map(TemplateView::from).collect(),
    })
}

pub(super) fn current(state: &AppState, name: &str) -> Result<TemplateDef, ApiError> {
    state
        .templates
        .current()
        .get(name)
        .cloned()
        .ok_or_else(|| ApiError::not_found("template", name))
}

#[utoipa::path(
    get,
    path = "/api/notifications/templates/{name}",
    tag = "templates",
    params(("name" = String, Path, description = "The template")),
    responses(
        (status = 200, description = "Success", body = TemplateView),
        (status = 404, description = "No such template", body = super::error::ErrorBody),
    ),
)]
async fn one(
    _caller: Caller,
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<TemplateView>, ApiError> {
    current(&state, &name).map(|def| Json(def.into()))
}

/// `PUT`: any of `text` (an object of language -> text, or a string for
/// English), `enabled`, `variables`, `category`, `description`,
/// `whatsapp`, `providers`, `sample`. Fields left out keep their value.
#[utoipa::path(
    put,
    path = "/api/notifications/templates/{name}",
    tag = "templates",
    description = "Edits a template (admin). The edit is checked, saved as a new version \
        and in force for the next message; a bad edit is refused (422 naming the field, \
        the line and the reason) and the version before keeps serving.",
    params(("name" = String, Path, description = "The template")),
    request_body(content = TemplateEdit, example = json!({
        "text": {"en": "Order {{ order_id }} is confirmed: ₹{{ total_amount }}, arriving {{ delivery_date }}."}
    })),
    responses(
        (status = 200, description = "The new version", body = TemplateView),
        (status = 404, description = "No such template", body = super::error::ErrorBody),
    ),
)]
async fn update(
    _admin: Admin,
    State(state): State<AppState>,
    Path(name): Path<String>,
    JsonObject(body): JsonObject,
) -> Result<Json<TemplateView>, ApiError> {
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
    if let Some(providers) = fields.value("providers") {
        def.providers = serde_json::from_value(providers).map_err(|e| {
            ApiError::invalid(
                "providers",
                "invalid_providers",
                format!("providers is provider name -> {{template, languages, parameters}}: {e}"),
            )
        })?;
    }
    if let Some(sample) = fields.object("sample")? {
        def.sample = sample.into_iter().collect();
    }
    if let Some(fallback) = fields.strings("fallback")? {
        def.fallback = fallback;
    }
    match fields.value("deliver_within") {
        None => {}
        Some(Value::Null) => def.deliver_within = None,
        Some(Value::String(within)) => def.deliver_within = Some(within),
        Some(_) => {
            return Err(ApiError::invalid(
                "deliver_within",
                "invalid_type",
                "deliver_within is a duration such as \"15m\", or null for the default",
            ));
        }
    }
    match fields.value("expire_after") {
        None => {}
        Some(Value::Null) => def.expire_after = None,
        Some(Value::String(after)) => def.expire_after = Some(after),
        Some(_) => {
            return Err(ApiError::invalid(
                "expire_after",
                "invalid_type",
                "expire_after is a duration such as \"2h\", or null for none",
            ));
        }
    }
    fields.finish()?;
    save(&state, def).await.map(|def| Json(def.into()))
}

/// The body of a template edit, as the OpenAPI document shows it; every
/// field is optional and the handler reads exactly these.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // read field by field by the handler; this is its schema
struct TemplateEdit {
    /// Language code -> text (minijinja), or one string for English.
    text: Option<TemplateTexts>,
    enabled: Option<bool>,
    /// Every variable a caller must give.
    variables: Option<Vec<String>>,
    description: Option<String>,
    category: Option<Category>,
    whatsapp: Option<WhatsappTemplateView>,
    /// The approved template per provider; replaces the whole map.
    providers: Option<std::collections::BTreeMap<String, ApprovedTemplateView>>,
    /// Example values of the variables, for previews.
    #[schema(value_type = Option<Object>)]
    sample: Option<Map<String, Value>>,
    /// How long after its time a message may still go out (`2h`, 1m to
    /// 366d); `null` removes it.
    #[schema(max_length = 64)]
    expire_after: Option<String>,
    /// The routes a message falls back to after its provider, in order
    /// (`sms:msg91-sms`); each needs an approved template in `providers`.
    #[schema(max_items = 3)]
    fallback: Option<Vec<String>>,
    /// How long after a send a message with a route left waits for
    /// `delivered` before it moves on (`15m`, 1s to 7d); `null`: the
    /// default (15 minutes for transactional templates, never for
    /// marketing).
    #[schema(max_length = 64)]
    deliver_within: Option<String>,
}

/// A template's text: one string (English), or language code -> text.
#[derive(ToSchema)]
#[allow(dead_code)] // the schema of what the handler reads
#[serde(untagged)]
enum TemplateTexts {
    English(String),
    #[schema(value_type = std::collections::BTreeMap<String, String>)]
    ByLanguage(std::collections::BTreeMap<String, String>),
}

/// Checks `def`, stores it as the next version and puts it in force.
pub(super) async fn save(state: &AppState, def: TemplateDef) -> Result<TemplateDef, ApiError> {
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

/// One saved version of a template.
#[derive(Serialize, ToSchema)]
struct VersionView {
    version: u32,
    #[schema(format = DateTime)]
    saved_at: String,
    enabled: bool,
    variables: Vec<String>,
    text: std::collections::BTreeMap<String, String>,
}

/// A template's saved versions, oldest first.
#[derive(Serialize, ToSchema)]
pub(super) struct VersionList {
    items: Vec<VersionView>,
}

#[utoipa::path(
    get,
    path = "/api/notifications/templates/{name}/versions",
    tag = "templates",
    params(("name" = String, Path, description = "The template")),
    responses(
        (status = 200, description = "Success", body = VersionList),
        (status = 404, description = "No such template", body = super::error::ErrorBody),
    ),
)]
pub(super) async fn versions(
    _caller: Caller,
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<VersionList>, ApiError> {
    current(&state, &name)?;
    let versions = state.store.template_versions(&name).await?;
    let items = versions
        .into_iter()
        .map(|v| VersionView {
            version: v.version,
            saved_at: rfc3339(v.saved_at),
            enabled: v.def.enabled,
            variables: v.def.variables,
            text: v.def.text,
        })
        .collect();
    Ok(Json(VersionList { items }))
}

/// Saves an earlier version's content as a new version.
#[utoipa::path(
    post,
    path = "/api/notifications/templates/{name}/rollback/{version}",
    tag = "templates",
    description = "Puts an earlier version's content back in force as a new version (admin).",
    params(
        ("name" = String, Path, description = "The template"),
        ("version" = u32, Path, description = "The version to restore"),
    ),
    responses(
        (status = 200, description = "The new version", body = TemplateView),
        (status = 404, description = "No such template or version", body = super::error::ErrorBody),
    ),
)]
pub(super) async fn rollback(
    _admin: Admin,
    State(state): State<AppState>,
    Path((name, version)): Path<(String, String)>,
) -> Result<Json<TemplateView>, ApiError> {
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
    save(&state, old.def).await.map(|def| Json(def.into()))
}

/// Renders with the given `variables` (or the template's samples) and
/// `language`; sends nothing.
#[utoipa::path(
    post,
    path = "/api/notifications/templates/{name}/preview",
    tag = "templates",
    description = "Renders without sending. An empty body renders the samples.",
    params(("name" = String, Path, description = "The template")),
    request_body(content = Option<PreviewRequest>, example = json!({"language": "hi"})),
    responses(
        (status = 200, description = "Success", body = Preview),
        (status = 404, description = "No such template", body = super::error::ErrorBody),
    ),
)]
async fn preview(
    _caller: Caller,
    State(state): State<AppState>,
    Path(name): Path<String>,
    body: axum::body::Bytes,
) -> Result<Json<Preview>, ApiError> {
    let catalog = state.templates.current();
    let mut variables = catalog
        .sample_variables(&name)
        .ok_or_else(|| ApiError::not_found("template", &name))?;
    let mut language = None;
    if !body.is_empty() {
        let body = match serde_json::from_slice(&body) {
            Ok(Value::Object(map)) => map,
            // `null` is no body: the samples.
            Ok(Value::Null) => Map::new(),
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
    // What the default provider would send, if it may send this template.
    let provider_template = catalog
        .provider_template(&name, &state.provider.get(), &rendered.language, &variables)
        .unwrap_or(rendered.provider_template);
    Ok(Json(Preview {
        template: name,
        version: rendered.version,
        language: rendered.language,
        text: rendered.text,
        provider_template: provider_template.into(),
        variables,
    }))
}

/// What to preview with; both fields are optional.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // read field by field by the handler; this is its schema
struct PreviewRequest {
    /// Values laid over the template's samples.
    #[schema(value_type = Option<Object>)]
    variables: Option<Map<String, Value>>,
    language: Option<String>,
}

/// A rendered template.
#[derive(Serialize, ToSchema)]
struct Preview {
    template: String,
    version: u32,
    /// The language rendered (English when the one asked for is missing).
    language: String,
    text: String,
    provider_template: super::views::ProviderTemplateView,
    /// The variables used.
    #[schema(value_type = Object)]
    variables: Map<String, Value>,
}
