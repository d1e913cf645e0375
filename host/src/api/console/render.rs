//! The console's pages as minijinja templates compiled into the binary,
//! and the filters they share: times in India's time with UTC beside,
//! phone numbers masked in lists.
//!
//! Why minijinja: chirp already renders messages with it, and a
//! server-rendered page works without a script and with a strict CSP.

use std::sync::OnceLock;

use axum::response::{Html, IntoResponse, Response};
use minijinja::{AutoEscape, Environment, Value};

/// Every page template, by name, as compiled in.
const VIEWS: [(&str, &str); 13] = [
    ("layout.html", include_str!("views/layout.html")),
    ("macros.html", include_str!("views/macros.html")),
    ("sign_in.html", include_str!("views/sign_in.html")),
    ("overview.html", include_str!("views/overview.html")),
    ("messages.html", include_str!("views/messages.html")),
    ("message.html", include_str!("views/message.html")),
    ("plugins.html", include_str!("views/plugins.html")),
    ("templates.html", include_str!("views/templates.html")),
    ("template.html", include_str!("views/template.html")),
    ("preview.html", include_str!("views/preview.html")),
    ("preferences.html", include_str!("views/preferences.html")),
    ("error.html", include_str!("views/error.html")),
    ("docs.html", include_str!("views/docs.html")),
];

fn environment() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        env.set_auto_escape_callback(|_| AutoEscape::Html);
        env.set_undefined_behavior(minijinja::UndefinedBehavior::Chainable);
        for (name, source) in VIEWS {
            // Compiled in and covered by the console's tests: a broken
            // view is a build that never ships.
            if let Err(e) = env.add_template(name, source) {
                tracing::error!(view = name, error = %e, "console view does not compile");
            }
        }
        env.add_filter("ist", ist);
        env.add_filter("mask", mask);
        env.add_filter("duration", duration);
        env.add_function("asset", super::assets::url);
        env
    })
}

/// Renders view `name` with `context`; a view that fails is a 500 page
/// naming no internals.
pub fn page(name: &str, context: Value) -> Response {
    match environment()
        .get_template(name)
        .and_then(|t| t.render(context))
    {
        Ok(html) => Html(html).into_response(),
        Err(e) => {
            tracing::error!(view = name, error = %e, "console view failed");
            (
                axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                Html(
                    "<!doctype html><title>chirp</title><p>This page failed; the log says why.</p>",
                ),
            )
                .into_response()
        }
    }
}

/// An RFC 3339 time as India's time (`06 Dec 2026, 20:14:03 IST`).
fn ist(value: String) -> String {
    match chrono::DateTime::parse_from_rfc3339(&value) {
        Ok(at) => at
            .with_timezone(&crate::gate::DEFAULT_TIMEZONE)
            .format("%d %b %Y, %H:%M:%S IST")
            .to_string(),
        Err(_) => value,
    }
}

/// A phone number with its middle hidden: `+91 98•••••210`.
fn mask(value: String) -> String {
    let chars: Vec<char> = value.chars().collect();
    if chars.len() < 8 {
        return "•".repeat(chars.len());
    }
    let head: String = chars[..5].iter().collect();
    let tail: String = chars[chars.len() - 3..].iter().collect();
    format!("{head}{}{tail}", "•".repeat(chars.len() - 8))
}

/// Milliseconds for a human: `850 ms`, `4.2 s`, `3 min`, `2.5 h`.
fn duration(value: Value) -> String {
    let Some(ms) = value.as_i64() else {
        return "–".into();
    };
    match ms {
        ..1_000 => format!("{ms} ms"),
        1_000..60_000 => format!("{:.1} s", ms as f64 / 1e3),
        60_000..3_600_000 => format!("{} min", ms / 60_000),
        _ => format!("{:.1} h", ms as f64 / 3.6e6),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_view_compiles() {
        let env = environment();
        for (name, _) in VIEWS {
            env.get_template(name).unwrap();
        }
    }

    #[test]
    fn times_are_shown_in_india_and_phones_masked() {
        assert_eq!(
            ist("2026-12-06T14:44:03Z".into()),
            "06 Dec 2026, 20:14:03 IST"
        );
        assert_eq!(mask("+919876543210".into()), "+9198•••••210");
        assert_eq!(duration(Value::from(4200)), "4.2 s");
    }
}
