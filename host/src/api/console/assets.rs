//! The console's stylesheet and script, compiled into the binary and
//! served by chirp itself: the console works on a machine with no
//! internet, and its Content-Security-Policy allows no other origin.
//!
//! Each URL carries a digest of the file, so a browser may keep it for a
//! year: a new build changes the URL.

use std::sync::OnceLock;

use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

/// Every asset: name, content type, content.
const ASSETS: [(&str, &str, &str); 2] = [
    (
        "console.css",
        "text/css; charset=utf-8",
        include_str!("assets/console.css"),
    ),
    (
        "console.js",
        "text/javascript; charset=utf-8",
        include_str!("assets/console.js"),
    ),
];

/// The first 16 hex digits of each asset's SHA-256, in `ASSETS`' order.
fn digests() -> &'static [String] {
    static DIGESTS: OnceLock<Vec<String>> = OnceLock::new();
    DIGESTS.get_or_init(|| {
        ASSETS
            .iter()
            .map(|(_, _, body)| {
                let digest = Sha256::digest(body.as_bytes());
                digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
            })
            .collect()
    })
}

/// The URL of asset `name` (a view's `asset("console.css")`).
pub fn url(name: String) -> String {
    match ASSETS.iter().position(|(n, _, _)| *n == name) {
        Some(i) => format!("/console/assets/{name}?v={}", digests()[i]),
        None => format!("/console/assets/{name}"),
    }
}

/// `GET /console/assets/{name}`.
pub async fn serve(Path(name): Path<String>) -> Response {
    match ASSETS.iter().find(|(n, _, _)| *n == name) {
        Some((_, content_type, body)) => (
            [
                (header::CONTENT_TYPE, *content_type),
                (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
            ],
            *body,
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "no such asset").into_response(),
    }
}
