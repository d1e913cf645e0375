//! `/console/sign-in` and `/console/sign-out`: an admin's JWT exchanged
//! once for a session cookie that ends with the token.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};

use super::session::{self, Operator};
use super::{FormFields, render};
use crate::api::{ApiError, AppState};

/// The longest token the form takes, in bytes.
const MAX_TOKEN_LEN: usize = 8192;

/// `GET /console/sign-in`.
pub async fn form() -> Response {
    render::page("sign_in.html", minijinja::context! {})
}

fn refused(status: StatusCode, message: &str) -> Response {
    let mut response = render::page("sign_in.html", minijinja::context! { problem => message });
    *response.status_mut() = status;
    response
}

/// `POST /console/sign-in`: `token`, an admin's JWT.
pub async fn sign_in(
    State(state): State<AppState>,
    headers: HeaderMap,
    axum::extract::Form(fields): FormFields,
) -> Response {
    // A page on another site must not sign a browser in to a session of
    // its choosing.
    if !session::same_origin(&headers) {
        return refused(
            StatusCode::FORBIDDEN,
            "sign in from this console's own page",
        );
    }
    let token = fields.get("token").map(|t| t.trim()).unwrap_or_default();
    if token.is_empty() || token.len() > MAX_TOKEN_LEN {
        return refused(
            StatusCode::UNPROCESSABLE_ENTITY,
            "paste an admin's token (for example from `chirp token --role admin`)",
        );
    }
    let (caller, expires_at) = match state.auth.verify_token(token) {
        Ok(verified) => verified,
        Err(ApiError { message, .. }) => {
            return refused(StatusCode::UNAUTHORIZED, &message);
        }
    };
    if !caller.is_admin() {
        return refused(
            StatusCode::FORBIDDEN,
            "the console is for admins: it shows every customer's messages; a user's token cannot sign in",
        );
    }
    let Some((id, _)) = state.console.start(&caller, expires_at) else {
        return refused(
            StatusCode::SERVICE_UNAVAILABLE,
            "no session could be made (the system's random generator failed)",
        );
    };
    tracing::info!(subject = %caller.subject, "console sign-in");
    let secure = headers
        .get("x-forwarded-proto")
        .is_some_and(|v| v.as_bytes() == b"https");
    (
        [(header::SET_COOKIE, session::cookie(&id, expires_at, secure))],
        Redirect::to("/console"),
    )
        .into_response()
}

/// `POST /console/sign-out`.
pub async fn sign_out(
    State(state): State<AppState>,
    operator: Operator,
    headers: HeaderMap,
    axum::extract::Form(fields): FormFields,
) -> Response {
    let csrf = fields.get("csrf").map(String::as_str).unwrap_or_default();
    if !operator.may_post(&headers, csrf) {
        return super::forged(&operator);
    }
    state.console.end(&operator.id);
    (
        [(header::SET_COOKIE, session::cleared_cookie())],
        Redirect::to("/console/sign-in"),
    )
        .into_response()
}
