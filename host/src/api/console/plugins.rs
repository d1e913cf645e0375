//! `/console/plugins`: every plugin file as the API lists it, the sandbox
//! each was granted, each provider's breaker, and a reload.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use serde::Serialize;

use super::session::Operator;
use super::{FormFields, after_post, caller, context, forged, render};
use crate::api::AppState;
use crate::api::auth::Admin;

/// What the operator granted a plugin, for a human.
#[derive(Serialize)]
struct GrantView {
    hosts: Vec<String>,
    allow_private: bool,
    memory_mib: usize,
    timeout: String,
    http_timeout: String,
    max_requests: usize,
    max_response_bytes: usize,
    max_request_bytes: usize,
    max_log_lines: usize,
}

/// `GET /console/plugins`.
pub async fn page(State(state): State<AppState>, operator: Operator) -> Response {
    let list = crate::api::plugins::list(Admin(caller(&operator)), State(state.clone())).await;
    let list = serde_json::to_value(&list.0).unwrap_or_default();
    let mut grants = std::collections::BTreeMap::new();
    for row in list["items"].as_array().into_iter().flatten() {
        let Some(name) = row["serving"]["name"].as_str().or(row["name"].as_str()) else {
            continue;
        };
        if let Some((hosts, allow_private, limits)) = state.plugins.grant_of(name) {
            grants.insert(
                name.to_string(),
                GrantView {
                    hosts,
                    allow_private,
                    memory_mib: limits.memory_bytes / (1024 * 1024),
                    timeout: humantime::format_duration(limits.call_timeout).to_string(),
                    http_timeout: humantime::format_duration(limits.http_timeout).to_string(),
                    max_requests: limits.http_max_requests,
                    max_response_bytes: limits.http_max_response_bytes,
                    max_request_bytes: limits.http_max_request_bytes,
                    max_log_lines: limits.log_max_lines,
                },
            );
        }
    }
    render::page(
        "plugins.html",
        context(
            &operator,
            "plugins",
            minijinja::context! {
                list => minijinja::Value::from_serialize(&list),
                grants => minijinja::Value::from_serialize(&grants),
            },
        ),
    )
}

/// `POST /console/plugins/reload`: reads the plugins directory again.
pub async fn reload(
    State(state): State<AppState>,
    operator: Operator,
    headers: HeaderMap,
    axum::extract::Form(fields): FormFields,
) -> Response {
    if !operator.may_post(&headers, fields.get("csrf").map_or("", String::as_str)) {
        return forged(&operator);
    }
    let answer = crate::api::plugins::reload(Admin(caller(&operator)), State(state)).await;
    after_post(&operator, answer, "/console/plugins")
}
