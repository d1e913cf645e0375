//! `/console/preferences`: look a phone up, see and change its opt-outs,
//! language and time zone (through the preferences API, which checks
//! every field).

use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::session::Operator;
use super::{caller, context, error_page, forged, render};
use crate::api::AppState;
use crate::api::extract::JsonObject;
use crate::api::preferences::{read, replace};

/// The phone looked up.
#[derive(Deserialize)]
pub struct Lookup {
    phone: Option<String>,
}

/// `GET /console/preferences?phone=`.
pub async fn page(
    State(state): State<AppState>,
    operator: Operator,
    Query(lookup): Query<Lookup>,
) -> Response {
    let phone = lookup
        .phone
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty());
    let found = match &phone {
        None => None,
        Some(phone) => match read(
            caller(&operator),
            State(state.clone()),
            axum::extract::Path(phone.clone()),
        )
        .await
        {
            Ok(view) => Some(serde_json::to_value(&view.0).unwrap_or_default()),
            Err(e) => return error_page(Some(&operator), &e),
        },
    };
    let templates: Vec<String> = state
        .templates
        .current()
        .all()
        .map(|d| d.name.clone())
        .collect();
    render::page(
        "preferences.html",
        context(
            &operator,
            "preferences",
            minijinja::context! {
                phone,
                preferences => minijinja::Value::from_serialize(&found),
                templates,
            },
        ),
    )
}

/// `POST /console/preferences`: the form's opt-outs, language and time
/// zone replace the phone's; its consent record is kept.
pub async fn save(
    State(state): State<AppState>,
    operator: Operator,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let pairs: Vec<(String, String)> = url::form_urlencoded::parse(&body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let field = |name: &str| {
        pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.trim().to_string())
    };
    if !operator.may_post(&headers, &field("csrf").unwrap_or_default()) {
        return forged(&operator);
    }
    let phone = field("phone").unwrap_or_default();
    let current = match read(
        caller(&operator),
        State(state.clone()),
        axum::extract::Path(phone.clone()),
    )
    .await
    {
        Ok(view) => serde_json::to_value(&view.0).unwrap_or_default(),
        Err(e) => return error_page(Some(&operator), &e),
    };
    let templates: Vec<&str> = pairs
        .iter()
        .filter(|(k, _)| k == "opt_out_templates")
        .map(|(_, v)| v.as_str())
        .collect();
    let mut edit = json!({
        "opt_out_all": field("opt_out_all").is_some(),
        "opt_out_marketing": field("opt_out_marketing").is_some(),
        "opt_out_templates": templates,
        "language": field("language").filter(|v| !v.is_empty()),
        "timezone": field("timezone").filter(|v| !v.is_empty()),
    });
    if let Value::Object(opt_in) = &current["opt_in"] {
        edit["opt_in"] = json!({"source": opt_in.get("source"), "wording": opt_in.get("wording")});
    }
    let Value::Object(body) = edit else {
        return error_page(Some(&operator), &crate::api::ApiError::internal("form"));
    };
    match replace(
        caller(&operator),
        State(state),
        axum::extract::Path(phone.clone()),
        JsonObject(body),
    )
    .await
    {
        Ok(_) => {
            let query = url::form_urlencoded::Serializer::new(String::new())
                .append_pair("phone", &phone)
                .finish();
            Redirect::to(&format!("/console/preferences?{query}")).into_response()
        }
        Err(e) => error_page(Some(&operator), &e),
    }
}
