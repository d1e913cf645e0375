//! `/api/preferences/{phone}`: what a recipient opted out of, and their
//! language and time zone.

use axum::Json;
use axum::extract::{Path, State};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::Caller;
use super::extract::{Fields, JsonObject};
use super::{ApiError, AppState};
use crate::phone::Phone;
use crate::preferences::{OptIn, OptOutNote, Preferences};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(read, replace))
}

pub(super) fn phone(text: &str) -> Result<Phone, ApiError> {
    Phone::parse(text)
        .map_err(|e| ApiError::invalid("phone", "invalid_phone", format!("phone {e}")))
}

#[utoipa::path(
    get,
    path = "/api/preferences/{phone}",
    tag = "preferences",
    description = "A recipient's preferences (a user: their own phone).",
    params(("phone" = String, Path, description = "The recipient, E.164 (`+` and 8 to 15 digits)", pattern = r"^\+[1-9][0-9]{7,14}$")),
    responses((status = 200, description = "Success", body = PreferencesView)),
)]
pub(super) async fn read(
    caller: Caller,
    State(state): State<AppState>,
    Path(text): Path<String>,
) -> Result<Json<PreferencesView>, ApiError> {
    let phone = phone(&text)?;
    caller.may_access(phone.as_str())?;
    Ok(Json(state.store.preferences(phone.as_str()).await?.into()))
}

/// Replaces the preferences; fields left out take their defaults (opted
/// in, language and time zone unknown).
#[utoipa::path(
    put,
    path = "/api/preferences/{phone}",
    tag = "preferences",
    description = "Replaces a recipient's preferences (a user: their own phone).",
    params(("phone" = String, Path, description = "The recipient, E.164 (`+` and 8 to 15 digits)", pattern = r"^\+[1-9][0-9]{7,14}$")),
    request_body(content = PreferencesEdit, example = json!({
        "opt_out_marketing": true, "language": "hi", "timezone": "Asia/Kolkata"
    })),
    responses((status = 200, description = "Success", body = PreferencesView)),
)]
pub(super) async fn replace(
    caller: Caller,
    State(state): State<AppState>,
    Path(text): Path<String>,
    JsonObject(body): JsonObject,
) -> Result<Json<PreferencesView>, ApiError> {
    let phone = phone(&text)?;
    // Users edit their own preferences; an admin edits anyone's.
    caller.may_access(phone.as_str())?;
    let mut fields = Fields::new(body);
    let prefs = Preferences {
        phone: phone.as_str().into(),
        opt_out_all: fields.boolean("opt_out_all")?.unwrap_or(false),
        opt_out_marketing: fields.boolean("opt_out_marketing")?.unwrap_or(false),
        opt_out_templates: fields.strings("opt_out_templates")?.unwrap_or_default(),
        language: fields.string("language")?,
        timezone: fields.string("timezone")?,
        opt_in: None,
        marketing_opt_out_by: None,
        updated_at: None,
    };
    let opt_in = fields.object("opt_in")?;
    fields.finish()?;
    let mut prefs = prefs;
    if let Some(opt_in) = opt_in {
        let mut opt_in = Fields::new(opt_in);
        let text = |name: &'static str, value: String| {
            if (1..=MAX_OPT_IN_TEXT).contains(&value.chars().count()) {
                Ok(value)
            } else {
                Err(ApiError::invalid(
                    format!("opt_in.{name}"),
                    "invalid_length",
                    format!("opt_in.{name} must be 1 to {MAX_OPT_IN_TEXT} characters"),
                ))
            }
        };
        let source = text("source", opt_in.required_string("source")?)?;
        let wording = text("wording", opt_in.required_string("wording")?)?;
        opt_in.finish().map_err(|mut e| {
            e.field = e.field.map(|f| format!("opt_in.{f}"));
            e
        })?;
        // The same consent saved again keeps the time it was first given.
        let given = state
            .store
            .preferences(phone.as_str())
            .await?
            .opt_in
            .filter(|o| o.source == source && o.wording == wording)
            .map_or_else(crate::message::now_millis, |o| o.at);
        prefs.opt_in = Some(OptIn {
            source,
            at: given,
            wording,
        });
    }
    let catalog = state.templates.current();
    if let Some(unknown) = prefs
        .opt_out_templates
        .iter()
        .find(|t| catalog.get(t).is_none())
    {
        return Err(ApiError::invalid(
            "opt_out_templates",
            "unknown_template",
            format!("{unknown:?} is not a template"),
        ));
    }
    if let Some(language) = &prefs.language
        && !(2..=8).contains(&language.chars().count())
    {
        return Err(ApiError::invalid(
            "language",
            "invalid_language",
            "language is a code such as en or hi",
        ));
    }
    if let Some(tz) = &prefs.timezone
        && (tz.chars().count() > 64 || !tz.contains('/') && tz != "UTC")
    {
        return Err(ApiError::invalid(
            "timezone",
            "invalid_timezone",
            "timezone is an IANA name such as Asia/Kolkata",
        ));
    }
    // An opt-out from marketing that stands keeps where it came from; a
    // new one came from this caller.
    if prefs.opt_out_marketing {
        let before = state.store.preferences(phone.as_str()).await?;
        prefs.marketing_opt_out_by = before
            .marketing_opt_out_by
            .filter(|_| before.opt_out_marketing)
            .or(Some(OptOutNote {
                source: "api".into(),
                at: crate::message::now_millis(),
            }));
    }
    Ok(Json(state.store.save_preferences(prefs).await?.into()))
}

/// The body of a preferences edit, as the OpenAPI document shows it; the
/// handler reads exactly these fields.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // read field by field by the handler; this is its schema
struct PreferencesEdit {
    opt_out_all: Option<bool>,
    /// Opt out of `marketing` templates.
    opt_out_marketing: Option<bool>,
    /// Template names to opt out of.
    opt_out_templates: Option<Vec<String>>,
    /// Language code, e.g. `hi`.
    #[schema(min_length = 2, max_length = 8)]
    language: Option<String>,
    /// IANA time zone, e.g. `Asia/Kolkata`.
    #[schema(max_length = 64, pattern = "^(UTC|[^/]*/.*)$")]
    timezone: Option<String>,
    /// Consent to marketing: where it was given and the version of the
    /// wording agreed to (chirp records when). Left out: no consent.
    opt_in: Option<OptInEdit>,
}

/// Consent to marketing, as given.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // read field by field by the handler; this is its schema
struct OptInEdit {
    /// Where it was given, e.g. `app-signup`.
    #[schema(min_length = 1, max_length = 64)]
    source: String,
    /// The version of the wording agreed to, e.g. `marketing-v3`.
    #[schema(min_length = 1, max_length = 64)]
    wording: String,
}

/// Consent to marketing, as recorded.
#[derive(serde::Serialize, ToSchema)]
#[schema(as = OptIn)]
pub(super) struct OptInView {
    source: String,
    /// When it was recorded.
    #[schema(format = DateTime)]
    at: String,
    wording: String,
}

/// Where an opt-out from marketing came from, as recorded.
#[derive(serde::Serialize, ToSchema)]
#[schema(as = OptOut)]
pub(super) struct OptOutView {
    source: String,
    /// When chirp recorded it.
    #[schema(format = DateTime)]
    at: String,
}

/// The longest opt-in source or wording version, in characters.
const MAX_OPT_IN_TEXT: usize = 64;

/// A recipient's preferences as the API shows them.
#[derive(serde::Serialize, ToSchema)]
#[schema(as = Preferences)]
pub(super) struct PreferencesView {
    phone: String,
    /// Opted out of every message.
    opt_out_all: bool,
    /// Opted out of marketing (`category = "marketing"` templates).
    opt_out_marketing: bool,
    /// Opted out of these templates.
    opt_out_templates: Vec<String>,
    language: Option<String>,
    timezone: Option<String>,
    /// Consent to marketing, if given.
    opt_in: Option<OptInView>,
    /// Where the opt-out from marketing came from (`api`,
    /// `keyword:<keyword>`, `platform:<code>`) and when, if recorded.
    opt_out_marketing_by: Option<OptOutView>,
    /// Milliseconds since the Unix epoch; `null` until first saved.
    updated_at: Option<i64>,
}

impl From<Preferences> for PreferencesView {
    fn from(p: Preferences) -> PreferencesView {
        PreferencesView {
            phone: p.phone,
            opt_out_all: p.opt_out_all,
            opt_out_marketing: p.opt_out_marketing,
            opt_out_templates: p.opt_out_templates,
            language: p.language,
            timezone: p.timezone,
            opt_in: p.opt_in.map(|o| OptInView {
                source: o.source,
                at: crate::message::rfc3339(o.at),
                wording: o.wording,
            }),
            opt_out_marketing_by: p.marketing_opt_out_by.map(|o| OptOutView {
                source: o.source,
                at: crate::message::rfc3339(o.at),
            }),
            updated_at: p.updated_at,
        }
    }
}
