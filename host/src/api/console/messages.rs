//! `/console/messages`: the message list (the history API's filters and
//! cursor paging), one message's timeline, and resend and cancel.

use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderMap;
use axum::response::Response;
use chrono::TimeZone;

use super::session::Operator;
use super::{FormFields, after_post, caller, context, error_page, forged, render};
use crate::api::auth::Admin;
use crate::api::callbacks::{CallbackParams, list_callbacks};
use crate::api::extract::QueryParams;
use crate::api::history::{HistoryParams, history, message};
use crate::api::{ApiError, AppState};

/// The filters a list may carry, as the history API names them.
const FILTERS: [&str; 9] = [
    "status",
    "template",
    "phone",
    "reference_id",
    "provider",
    "from",
    "to",
    "cursor",
    "limit",
];

/// A time from the page's `datetime-local` field (India's time, to the
/// minute) as RFC 3339; any other text is passed on for the API to judge.
fn from_local(text: &str) -> String {
    chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M")
        .ok()
        .and_then(|local| {
            crate::gate::DEFAULT_TIMEZONE
                .from_local_datetime(&local)
                .single()
        })
        .map_or_else(|| text.to_string(), |at| at.to_rfc3339())
}

/// The query's filters that are set, as given (times converted).
fn filters(query: Option<&str>) -> Vec<(String, String)> {
    url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .filter(|(k, v)| !v.trim().is_empty() && FILTERS.contains(&k.as_ref()))
        .map(|(k, v)| {
            let v = v.trim();
            let v = if k == "from" || k == "to" {
                from_local(v)
            } else {
                v.to_string()
            };
            (k.into_owned(), v)
        })
        .collect()
}

/// `GET /console/messages`: the list, filtered.
pub async fn list(
    State(state): State<AppState>,
    operator: Operator,
    RawQuery(query): RawQuery,
) -> Response {
    let given = filters(query.as_deref());
    let encoded = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(&given)
        .finish();
    let uri: axum::http::Uri = match format!("/?{encoded}").parse() {
        Ok(uri) => uri,
        Err(_) => return error_page(Some(&operator), &ApiError::internal("query")),
    };
    let page = match axum::extract::Query::<HistoryParams>::try_from_uri(&uri) {
        Ok(params) => {
            history(
                caller(&operator),
                State(state.clone()),
                QueryParams(params.0),
            )
            .await
        }
        Err(e) => Err(ApiError::new(
            axum::http::StatusCode::BAD_REQUEST,
            "invalid_query",
            e.body_text(),
        )),
    };
    let filter_values: std::collections::BTreeMap<String, String> =
        url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
            .filter(|(k, _)| FILTERS.contains(&k.as_ref()) && k != "cursor")
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
    let page = page.map(|p| serde_json::to_value(&p.0).unwrap_or_default());
    let next = page
        .as_ref()
        .ok()
        .and_then(|p| p["next_cursor"].as_str().map(String::from))
        .map(|cursor| {
            let mut pairs: Vec<(String, String)> = given
                .iter()
                .filter(|(k, _)| k != "cursor")
                .cloned()
                .collect();
            pairs.push(("cursor".into(), cursor));
            url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs(&pairs)
                .finish()
        });
    let (items, problem) = match page {
        Ok(mut page) => (page["items"].take(), None),
        Err(e) => (serde_json::Value::Array(vec![]), Some(e)),
    };
    let problem = problem.map(|e| {
        minijinja::context! { code => e.code, message => e.message, field => e.field }
    });
    let counts = status_counts(&state, &given).await;
    render::page(
        "messages.html",
        context(
            &operator,
            "messages",
            minijinja::context! {
                items => minijinja::Value::from_serialize(&items),
                filters => filter_values,
                next,
                problem,
                statuses => crate::message::Status::ALL.map(|s| s.as_str()),
                templates => state.templates.current().all().map(|d| d.name.clone()).collect::<Vec<_>>(),
                providers => state.plugins.provider_names(),
                counts,
            },
        ),
    )
}

/// Messages by status accepted in the list's time range (the last 24
/// hours when it gives none): its other filters do not narrow them.
async fn status_counts(state: &AppState, given: &[(String, String)]) -> minijinja::Value {
    let time = |key: &str| {
        given
            .iter()
            .find(|(k, _)| k == key)
            .and_then(|(_, v)| chrono::DateTime::parse_from_rfc3339(v).ok())
            .map(|t| t.timestamp_millis())
    };
    let now = crate::message::now_millis();
    let (from, to) = match (time("from"), time("to")) {
        (None, None) => (now - 86_400_000, now),
        (from, to) => (from.unwrap_or(0), to.unwrap_or(now).max(from.unwrap_or(0))),
    };
    let by_status: Vec<(String, u64)> = match state.store.count_by_status(from, to).await {
        Ok(counts) => counts.into_iter().map(|c| (c.key, c.count)).collect(),
        Err(e) => {
            tracing::warn!(error = %e, "counting messages for the console failed");
            Vec::new()
        }
    };
    minijinja::context! {
        since_default => time("from").is_none() && time("to").is_none(),
        by_status,
    }
}

/// `GET /console/messages/{id}`: the message and its timeline.
pub async fn one(
    State(state): State<AppState>,
    operator: Operator,
    Path(id): Path<String>,
) -> Response {
    let view = match message(caller(&operator), State(state.clone()), Path(id.clone())).await {
        Ok(view) => view,
        Err(e) => return error_page(Some(&operator), &e),
    };
    // The status callbacks reported to the caller's backend (the first
    // hundred: a message has a few).
    let query = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("message_id", &id)
        .append_pair("limit", "100")
        .finish();
    let callbacks = match format!("/?{query}")
        .parse::<axum::http::Uri>()
        .ok()
        .and_then(|uri| axum::extract::Query::<CallbackParams>::try_from_uri(&uri).ok())
    {
        Some(params) => list_callbacks(
            Admin(caller(&operator)),
            State(state),
            QueryParams(params.0),
        )
        .await
        .ok()
        .map(|page| serde_json::to_value(&page.0).unwrap_or_default()),
        None => None,
    };
    render::page(
        "message.html",
        context(
            &operator,
            "messages",
            minijinja::context! {
                message => minijinja::Value::from_serialize(&view.0),
                callbacks => minijinja::Value::from_serialize(&callbacks),
            },
        ),
    )
}

/// `POST /console/messages/{id}/{action}`: `resend` a failed message,
/// `cancel` a waiting one.
pub async fn act(
    State(state): State<AppState>,
    operator: Operator,
    Path((id, action)): Path<(String, String)>,
    headers: HeaderMap,
    axum::extract::Form(fields): FormFields,
) -> Response {
    if !operator.may_post(&headers, fields.get("csrf").map_or("", String::as_str)) {
        return forged(&operator);
    }
    let to = format!("/console/messages/{id}");
    let admin = Admin(caller(&operator));
    match action.as_str() {
        "resend" => {
            let answer = crate::api::notifications::resend(admin, State(state), Path(id)).await;
            after_post(&operator, answer, &to)
        }
        "cancel" => {
            let answer = crate::api::cancel::cancel_one(admin, State(state), Path(id)).await;
            after_post(&operator, answer, &to)
        }
        _ => error_page(
            Some(&operator),
            &ApiError::not_found("action", &action.chars().take(32).collect::<String>()),
        ),
    }
}
