//! The per-caller rate limit (`CHIRP_API_RATE_LIMIT`): a token bucket per
//! verified subject, and one shared by every request without a valid token.

use std::sync::Arc;

use axum::http::StatusCode;

use super::{ApiError, auth, openapi};

/// The per-caller rate limit: a token bucket per verified subject, and one
/// shared by every request without a valid token.
pub(super) struct RateLimit {
    limiter: governor::DefaultKeyedRateLimiter<String>,
    /// Requests since the table was last pruned.
    since_prune: std::sync::atomic::AtomicU32,
}

/// How many requests pass between two prunings of the limiter's table. A
/// bucket is full again at most a second after its caller's last request
/// (the burst is one second's rate), so after a pruning the table holds
/// the callers of the last second; between prunings it gains at most this
/// many keys.
const PRUNE_EVERY: u32 = 4096;

impl RateLimit {
    pub(super) fn new(per_second: std::num::NonZeroU32) -> RateLimit {
        RateLimit {
            limiter: governor::RateLimiter::keyed(governor::Quota::per_second(per_second)),
            since_prune: std::sync::atomic::AtomicU32::new(0),
        }
    }

    /// Checks `key`; now and then drops the buckets that are full again
    /// (those callers are as if never seen), so the table holds only
    /// callers seen lately.
    pub(super) fn check(&self, key: &str) -> Result<(), std::time::Duration> {
        use std::sync::atomic::Ordering;
        if self.since_prune.fetch_add(1, Ordering::Relaxed) >= PRUNE_EVERY {
            self.since_prune.store(0, Ordering::Relaxed);
            self.limiter.retain_recent();
            self.limiter.shrink_to_fit();
        }
        self.limiter
            .check_key(&key.to_string())
            .map_err(|not_until| {
                not_until.wait_time_from(governor::clock::Clock::now(
                    &governor::clock::DefaultClock::default(),
                ))
            })
    }
}

/// Answers `429` with `Retry-After` to a caller over its rate, counted by
/// the token's verified subject (so no spelling of a header buys a fresh
/// bucket, and garbage tokens share one); the public routes (health,
/// readiness, metrics, the API document) are never limited, and webhooks
/// have a limit of their own per source address.
pub(super) async fn limit(
    limiter: Option<Arc<RateLimit>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let path = request.uri().path();
    let exempt =
        openapi::PUBLIC_PATHS.contains(&path) || path.starts_with(openapi::WEBHOOKS_PREFIX);
    if let (Some(limiter), false) = (limiter, exempt) {
        let key = match request.extensions().get::<auth::Verified>() {
            Some(auth::Verified(Ok(caller))) => format!("sub:{}", caller.subject),
            _ => "unauthenticated".to_string(),
        };
        if let Err(wait) = limiter.check(&key) {
            let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            let mut response = ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                format!("too many requests for this token; retry in {seconds} s"),
            )
            .into_response();
            if let Ok(value) = seconds.max(1).to_string().parse() {
                response
                    .headers_mut()
                    .insert(axum::http::header::RETRY_AFTER, value);
            }
            return response;
        }
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Callers seen once are pruned: 50,000 subjects, one request each,
    /// leave the table with at most what a pruning leaves plus one
    /// interval's worth. (Without pruning, checked once, it held all.)
    #[test]
    fn the_rate_limit_table_forgets_callers_it_has_not_seen_lately() {
        let limit = RateLimit::new(std::num::NonZeroU32::new(1000).unwrap());
        for n in 0..50_000 {
            let _ = limit.check(&format!("sub:{n}"));
        }
        assert!(
            limit.limiter.len() <= PRUNE_EVERY as usize + 1_000,
            "{} keys",
            limit.limiter.len()
        );
    }
}
