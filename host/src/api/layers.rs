//! The layers every request passes through that are not about who calls:
//! latency per route, the request's span, a deadline, and panics turned
//! into answers.

use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use axum::response::IntoResponse;

use super::ApiError;

/// Records every request's latency under its route template (not its
/// path, so ids do not explode the label space).
pub(super) async fn measure(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let method = crate::telemetry::method_label(request.method().as_str());
    let started = std::time::Instant::now();
    let response = next.run(request).await;
    crate::telemetry::http_request(
        &route,
        method,
        response.status().as_u16(),
        started.elapsed(),
    );
    response
}

/// The span of one request: method and route template, never the path
/// itself (paths carry phone numbers, e.g. `/api/preferences/{phone}`).
pub(super) fn http_span(request: &axum::http::Request<axum::body::Body>) -> tracing::Span {
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map(|p| p.as_str())
        .unwrap_or("unmatched");
    tracing::debug_span!(
        "request",
        method = crate::telemetry::method_label(request.method().as_str()),
        route = %route
    )
}

/// Turns a handler's panic into a `500` in chirp's error shape, logged with
/// what the panic said; the connection stays open for the client's next
/// request. (Without it, hyper drops the connection mid-request.)
pub(super) fn catch_panics<S: Clone + Send + Sync + 'static>(router: Router<S>) -> Router<S> {
    router.layer(tower_http::catch_panic::CatchPanicLayer::custom(
        |panic: Box<dyn std::any::Any + Send>| {
            let said = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic without a message".into());
            ApiError::internal(format!("a request handler panicked: {said}")).into_response()
        },
    ))
}

/// Answers `503` `timeout` to a request still running after `limit`
/// (`CHIRP_REQUEST_TIMEOUT`), so that a stuck store or plugin cannot hold
/// a caller's connection and a server task forever. What the request had
/// started may still finish: a message handed to the queue is committed
/// or not, and the same request again with the same `idempotency_key` (or
/// the same event) finds it.
pub(super) async fn deadline(
    limit: Duration,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            tracing::warn!(?limit, "a request ran out of time");
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "timeout",
                format!(
                    "the request took longer than {}; it may still have been carried out: \
                     send it again with the same idempotency_key",
                    humantime::format_duration(limit)
                ),
            )
            .into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower::ServiceExt as _;

    /// A handler that panics answers `500` in the error shape. Without
    /// the layer (checked once) the same request ends with hyper dropping
    /// the connection, and here `oneshot` itself panics.
    #[tokio::test]
    async fn a_panicking_handler_answers_500_in_the_error_shape() {
        let app: Router = catch_panics(Router::new().route(
            "/boom",
            axum::routing::get(|| async {
                let times: Vec<u64> = Vec::new();
                #[allow(clippy::indexing_slicing)]
                let first = times[std::hint::black_box(0)];
                first.to_string()
            }),
        ));
        let response = app
            .oneshot(
                axum::http::Request::get("/boom")
                    .body(axum::body::Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = axum::body::to_bytes(response.into_body(), 4096)
            .await
            .unwrap();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["code"], "internal");
        assert!(
            !body["message"].as_str().unwrap().contains("9999"),
            "{body}"
        );
    }

    /// A handler slower than the deadline is answered `503` `timeout` in
    /// the error shape when the deadline passes. Without the layer
    /// (checked once) this request waited the handler's full hour.
    #[tokio::test(start_paused = true)]
    async fn a_request_past_its_deadline_answers_503_timeout() {
        let app: Router = Router::new()
            .route(
                "/slow",
                axum::routing::get(|| async {
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                    "done"
                }),
            )
            .layer(axum::middleware::from_fn(|request, next| {
                deadline(Duration::from_secs(2), request, next)
            }));
        let started = tokio::time::Instant::now();
        let response = app
            .oneshot(
                axum::http::Request::get("/slow")
                    .body(axum::body::Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(started.elapsed(), Duration::from_secs(2));
        let body = axum::body::to_bytes(response.into_body(), 4096)
            .await
            .unwrap();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["code"], "timeout");
    }
}
