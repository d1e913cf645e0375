//! Request extractors that answer bad input in chirp's error shape instead
//! of axum's plain-text rejections.

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::error::ApiError;
use crate::message::Millis;

/// A JSON object body. Malformed JSON, a wrong content type or an
/// oversized body become [`ApiError`]s.
pub struct JsonObject(pub Map<String, Value>);

impl<S: Send + Sync> FromRequest<S> for JsonObject {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<Value>::from_request(req, state).await {
            Ok(axum::Json(Value::Object(map))) => Ok(JsonObject(map)),
            Ok(axum::Json(_)) => Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_body",
                "the body must be a JSON object",
            )),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

fn json_rejection(rejection: JsonRejection) -> ApiError {
    match rejection.status() {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            "the request body is larger than chirp accepts",
        ),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the body as JSON with Content-Type: application/json",
        ),
        _ => ApiError::new(
            StatusCode::BAD_REQUEST,
            "malformed_json",
            format!("the body is not valid JSON: {}", rejection.body_text()),
        ),
    }
}

/// Query parameters, with chirp's error shape for ones that do not parse.
pub struct QueryParams<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for QueryParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| QueryParams(q.0))
            .map_err(|e: QueryRejection| {
                ApiError::new(StatusCode::BAD_REQUEST, "invalid_query", e.body_text())
            })
    }
}

/// Reads the fields of a JSON object one by one, so that each error names
/// its field, and refuses fields nobody asked for (a typo such as
/// `variable` for `variables` must not be silently ignored).
pub struct Fields {
    map: Map<String, Value>,
}

impl Fields {
    pub fn new(map: Map<String, Value>) -> Fields {
        Fields { map }
    }

    /// An optional string field; `null` counts as absent.
    pub fn string(&mut self, name: &str) -> Result<Option<String>, ApiError> {
        match self.map.remove(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(ApiError::invalid(
                name,
                "invalid_type",
                format!("{name} must be a string"),
            )),
        }
    }

    /// A string field that must be present and non-empty.
    pub fn required_string(&mut self, name: &str) -> Result<String, ApiError> {
        match self.string(name)? {
            Some(s) if !s.trim().is_empty() => Ok(s),
            _ => Err(ApiError::invalid(
                name,
                "missing_field",
                format!("{name} is required"),
            )),
        }
    }

    /// An optional boolean field.
    pub fn boolean(&mut self, name: &str) -> Result<Option<bool>, ApiError> {
        match self.map.remove(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(b)),
            Some(_) => Err(ApiError::invalid(
                name,
                "invalid_type",
                format!("{name} must be true or false"),
            )),
        }
    }

    /// An optional list of strings.
    pub fn strings(&mut self, name: &str) -> Result<Option<Vec<String>>, ApiError> {
        let wrong = || {
            ApiError::invalid(
                name,
                "invalid_type",
                format!("{name} must be a list of strings"),
            )
        };
        match self.map.remove(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Array(items)) => items
                .into_iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s),
                    _ => Err(wrong()),
                })
                .collect::<Result<_, _>>()
                .map(Some),
            Some(_) => Err(wrong()),
        }
    }

    /// An optional field of any JSON type.
    pub fn value(&mut self, name: &str) -> Option<Value> {
        self.map.remove(name).filter(|v| !v.is_null())
    }

    /// An optional object field.
    pub fn object(&mut self, name: &str) -> Result<Option<Map<String, Value>>, ApiError> {
        match self.map.remove(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Object(m)) => Ok(Some(m)),
            Some(_) => Err(ApiError::invalid(
                name,
                "invalid_type",
                format!("{name} must be an object"),
            )),
        }
    }

    /// Fails on the first field that was not read.
    pub fn finish(self) -> Result<(), ApiError> {
        match self.map.keys().next() {
            None => Ok(()),
            Some(extra) => Err(ApiError::invalid(
                extra.clone(),
                "unknown_field",
                format!("{extra} is not a field of this request"),
            )),
        }
    }
}

/// An RFC 3339 time in a request (a query parameter or a body field), as
/// chirp stores time; anything else is a `422` naming the field.
pub fn parse_time(field: &'static str, text: &str) -> Result<Millis, ApiError> {
    chrono::DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.timestamp_millis())
        .filter(|at| crate::message::in_range(*at))
        .ok_or_else(|| {
            ApiError::invalid(
                field,
                "invalid_time",
                format!(
                    "{field} must be an RFC 3339 time from 1970 to 9999, e.g. 2026-11-24T00:00:00Z"
                ),
            )
        })
}

/// The RFC 3339 times [`parse_time`] takes, for the API's document: from
/// 1970 (a time in 1970 with an offset east of UTC is still refused).
pub const TIME_PATTERN: &str = "^(19[7-9][0-9]|[2-9][0-9]{3})-";
