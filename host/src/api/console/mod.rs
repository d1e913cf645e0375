//! The operator console at `/console`: server-rendered pages over the
//! API's own handlers, so that what an operator sees and does in the
//! browser is exactly what the REST API answers and does.
//!
//! Every page needs an admin's session (`session.rs`); every form posts
//! its session's CSRF token from chirp's own origin; every response
//! carries a Content-Security-Policy that allows only chirp's own
//! stylesheet and script (`assets.rs`): no inline script, no other
//! origin.

mod assets;
mod docs;
mod messages;
mod overview;
mod plugins;
mod preferences;
mod render;
mod session;
mod sign_in;
mod templates;

pub use docs::page as docs_page;
pub use session::Sessions;

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::routing::{get, post};
use minijinja::Value;
use serde::Serialize;

use super::auth::{Caller, Role};
use super::{ApiError, AppState};
use session::Operator;

/// What the console's pages and the API docs page may load: only
/// chirp's own files; forms only to chirp; never framed.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
    style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; \
    frame-ancestors 'none'; base-uri 'none'";

/// The console's routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/console", get(overview::page))
        .route(
            "/console/sign-in",
            get(sign_in::form).post(sign_in::sign_in),
        )
        .route("/console/sign-out", post(sign_in::sign_out))
        .route("/console/assets/{name}", get(assets::serve))
        .route("/console/messages", get(messages::list))
        .route("/console/messages/{id}", get(messages::one))
        .route("/console/messages/{id}/{action}", post(messages::act))
        .route("/console/plugins", get(plugins::page))
        .route("/console/plugins/reload", post(plugins::reload))
        .route("/console/templates", get(templates::list))
        .route(
            "/console/templates/{name}",
            get(templates::edit).post(templates::save),
        )
        .route(
            "/console/templates/{name}/preview",
            post(templates::preview),
        )
        .route(
            "/console/templates/{name}/rollback/{version}",
            post(templates::rollback),
        )
        .route(
            "/console/preferences",
            get(preferences::page).post(preferences::save),
        )
        .layer(axum::middleware::from_fn(protect))
}

/// Headers on every console response: the CSP, no framing, no sniffing,
/// no caching of pages (they show customers' data), the Referer only to
/// chirp itself.
pub async fn protect(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let is_asset = request.uri().path().starts_with("/console/assets/");
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "same-origin"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    if !is_asset {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

/// The admin behind a session, as the API's handlers take a caller.
fn caller(operator: &Operator) -> Caller {
    Caller {
        subject: operator.session.subject.clone(),
        role: Role::Admin,
        phone: None,
    }
}

/// A page's context: what `layout.html` needs, and `extra`.
fn context(operator: &Operator, nav: &str, extra: impl Serialize) -> Value {
    let extra = Value::from_serialize(&extra);
    minijinja::context! {
        subject => operator.session.subject.clone(),
        csrf => operator.session.csrf.clone(),
        nav => nav,
        ..extra
    }
}

/// An API error, as a page: its code, message and field.
fn error_page(operator: Option<&Operator>, error: &ApiError) -> axum::response::Response {
    let shown = minijinja::context! {
        code => error.code,
        message => error.message.clone(),
        field => error.field.clone(),
    };
    let ctx = match operator {
        Some(op) => context(op, "", minijinja::context! { error => shown }),
        None => minijinja::context! { error => shown },
    };
    let mut response = render::page("error.html", ctx);
    *response.status_mut() = error.status;
    response
}

/// A form's fields, by name (the last of a repeated one wins).
type FormFields = axum::extract::Form<std::collections::HashMap<String, String>>;

/// The API's answer to a form, as a page: `Ok` redirects to `to` (Post,
/// Redirect, Get: a reload never posts twice), an error is shown.
fn after_post<T>(
    operator: &Operator,
    answer: Result<T, ApiError>,
    to: &str,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    match answer {
        Ok(_) => axum::response::Redirect::to(to).into_response(),
        Err(e) => error_page(Some(operator), &e),
    }
}

/// The refusal of a form without its session's token or from another
/// origin.
fn forged(operator: &Operator) -> axum::response::Response {
    error_page(
        Some(operator),
        &ApiError::new(
            axum::http::StatusCode::FORBIDDEN,
            "csrf",
            "this form did not come from this console (its token or origin is wrong); reload the page and try again",
        ),
    )
}
