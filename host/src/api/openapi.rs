//! The OpenAPI 3.1 document, generated from the handlers' annotations (the
//! router and the document are built from the same `routes!` lists, so a
//! route cannot be served without being documented), and the docs page
//! rendered from it (`console/docs.rs`).
//!
//! Per-route annotations say what is particular to a route (its body, its
//! success answer, its 404 or 409); what is common to every route (the
//! bearer token, and the error answers every authenticated route can
//! give) is added here, once.

use std::sync::Arc;

use axum::extract::State;
use axum::{Json, Router};
use utoipa::OpenApi;
use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{Content, HttpMethod, Ref, RefOr, Response};

use super::{AppState, constraints};

/// Where the document is served.
pub const DOCUMENT_PATH: &str = "/api/openapi.json";
/// Where the docs page is served.
pub const DOCS_PATH: &str = "/api/docs";

/// Where platforms' webhooks come in: no token (the plugin checks the
/// request), and a rate limit of their own per source address.
pub const WEBHOOKS_PREFIX: &str = "/api/webhooks/";

/// Routes anyone may call: no token, never rate limited.
pub const PUBLIC_PATHS: [&str; 5] = [
    "/api/notifications/health",
    "/ready",
    "/metrics",
    DOCUMENT_PATH,
    DOCS_PATH,
];

#[derive(OpenApi)]
#[openapi(
    info(
        title = "chirp",
        description = "The notification engine: a durable queue, templates, template-selection \
            rules and sandboxed provider plugins.\n\n\
            Every route but health, readiness, metrics and this document needs \
            `Authorization: Bearer <JWT>` (HS256; claims `sub`, `exp`, `role` = `admin` or \
            `user`, and `phone` for users). Every error has one shape: `Error`.",
    ),
    tags(
        (name = "notifications", description = "Sending, history, resending, the queue"),
        (name = "events", description = "Business events in, messages out"),
        (name = "templates", description = "Templates, their versions and previews"),
        (name = "preferences", description = "Recipients' opt-outs, language and time zone"),
        (name = "customers", description = "A customer's data: access and erasure"),
        (name = "plugins", description = "Provider and rules components"),
        (name = "callbacks", description = "Signed status callbacks to the caller's backend: endpoints and their log"),
        (name = "operations", description = "Health, readiness, metrics"),
    ),
    components(schemas(super::error::ErrorBody))
)]
struct Base;

/// The document's fixed part, before the routes are added.
pub fn base() -> utoipa::openapi::OpenApi {
    Base::openapi()
}

/// Adds what every route shares: the version, the bearer scheme, and on
/// every authenticated operation the security requirement and the error
/// answers any of them can give.
pub fn finish(mut document: utoipa::openapi::OpenApi) -> utoipa::openapi::OpenApi {
    document.info.version = env!("CARGO_PKG_VERSION").to_string();
    let components = document.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        "bearer",
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .bearer_format("JWT")
                .build(),
        ),
    );
    let mut this = Response::new("The OpenAPI 3.1 document");
    this.content.insert(
        "application/json".to_string(),
        RefOr::T(Content::new(Some(utoipa::openapi::schema::Object::new()))),
    );
    let mut operation = Operation::new();
    operation.tags = Some(vec!["operations".to_string()]);
    operation.description = Some(format!(
        "This document. Public. The interactive page is at `{DOCS_PATH}`."
    ));
    operation
        .responses
        .responses
        .insert("200".to_string(), this.into());
    document
        .paths
        .add_path_operation(DOCUMENT_PATH, vec![HttpMethod::Get], operation);
    for (path, item) in document.paths.paths.iter_mut() {
        let public = PUBLIC_PATHS.contains(&path.as_str()) || path.starts_with(WEBHOOKS_PREFIX);
        for operation in [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
        ]
        .into_iter()
        .flatten()
        {
            if public {
                add_error(operation, "500", "Internal error");
                continue;
            }
            operation.security = Some(vec![SecurityRequirement::new(
                "bearer",
                Vec::<String>::new(),
            )]);
            let has_body = operation.request_body.is_some();
            add_error(operation, "400", "Malformed request (query or JSON)");
            add_error(operation, "401", "Missing, expired or invalid token");
            add_error(
                operation,
                "403",
                "The token's role or phone does not allow this",
            );
            if has_body {
                add_error(operation, "413", "Body larger than chirp accepts");
                add_error(operation, "415", "Body is not application/json");
            }
            add_error(operation, "422", "A field is invalid; `field` names it");
            add_error(
                operation,
                "429",
                "Over the per-token rate (see Retry-After)",
            );
            add_error(operation, "500", "Internal error");
            add_error(
                operation,
                "503",
                "The store or a plugin is unavailable (see Retry-After). `code` \
                 `store_unavailable`: nothing was written. `store_unconfirmed`: the store did \
                 not confirm the write, so it may have been made; retry with the same \
                 idempotency key. `shutting_down`: chirp is stopping",
            );
        }
    }
    document
}

fn add_error(operation: &mut Operation, status: &str, description: &str) {
    operation
        .responses
        .responses
        .entry(status.to_string())
        .or_insert_with(|| {
            let mut response = Response::new(description);
            response.content.insert(
                "application/json".to_string(),
                RefOr::T(Content::new(Some(Ref::from_schema_name("Error")))),
            );
            response.into()
        });
}

/// `GET /api/openapi.json` and the docs page at `/api/docs`. The
/// document is served with the names that exist at the time of the
/// request (`constraints::live`).
pub fn router(document: utoipa::openapi::OpenApi) -> Router<AppState> {
    let mut document = serde_json::to_value(&document).unwrap_or_default();
    constraints::fixed(&mut document);
    let document = Arc::new(document);
    let for_page = document.clone();
    Router::new()
        .route(
            DOCUMENT_PATH,
            axum::routing::get(move |State(state): State<AppState>| {
                let mut document = (*document).clone();
                async move {
                    constraints::live(&mut document, &state);
                    Json(document)
                }
            }),
        )
        .route(
            DOCS_PATH,
            axum::routing::get(move |State(state): State<AppState>| {
                let mut document = (*for_page).clone();
                async move {
                    constraints::live(&mut document, &state);
                    super::console::docs_page(&document)
                }
            })
            .layer(axum::middleware::from_fn(super::console::protect)),
        )
}
