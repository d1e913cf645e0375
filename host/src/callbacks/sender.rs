//! The task that posts status callbacks: it reads what is due, posts the
//! first waiting callback of each message and endpoint (the rest of that
//! message's wait behind it, so a receiver sees one message's changes in
//! order), records every post, and tries a failed one again with backoff
//! until the operator's give-up time. It runs beside the queue and never
//! holds up a message's delivery.
//!
//! Delivery is at least once: a post whose answer is lost, or that was in
//! flight when chirp stopped, is posted again under the same `webhook-id`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use tokio::sync::watch;

use super::registry::Registry;
use super::{body, retry_in, signature};
use crate::message::now_millis;
use crate::plugins::network::Clients;
use crate::store::{Due, Posted, Store, StoreError};

/// Callbacks read per pass.
const BATCH: usize = 200;
/// The pause when nothing is due (new callbacks wait at most this long).
const IDLE: Duration = Duration::from_millis(200);
/// The pause after the store failed.
const STORE_PAUSE: Duration = Duration::from_secs(1);
/// The longest error text kept for a post.
const MAX_ERROR_CHARS: usize = 300;

/// Posts callbacks until `stop` turns true.
pub async fn run(
    store: Store,
    registry: Arc<Registry>,
    clients: Clients,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let posted = match pass(&store, &registry, &clients).await {
            Ok(posted) => posted,
            Err(e) => {
                tracing::warn!(error = %e, "posting callbacks failed; trying again");
                tokio::select! {
                    _ = tokio::time::sleep(STORE_PAUSE) => {}
                    _ = stop.wait_for(|stop| *stop) => return,
                }
                continue;
            }
        };
        if posted == 0 {
            tokio::select! {
                _ = tokio::time::sleep(IDLE) => {}
                _ = stop.wait_for(|stop| *stop) => return,
            }
        }
        if *stop.borrow() {
            return;
        }
    }
}

/// One pass over what is due: returns how many callbacks it posted or
/// moved.
async fn pass(store: &Store, registry: &Registry, clients: &Clients) -> Result<usize, StoreError> {
    let now = now_millis();
    let due = store.due_callbacks(now, BATCH).await?;
    if due.is_empty() {
        return Ok(0);
    }
    // A message's callbacks to one endpoint, in the order read.
    let mut groups: Vec<Vec<Due>> = Vec::new();
    let mut index: HashMap<(String, String), usize> = HashMap::new();
    for d in due {
        let key = (d.change.message_id.clone(), d.endpoint.clone());
        match index.get(&key) {
            Some(&i) => groups[i].push(d),
            None => {
                index.insert(key, groups.len());
                groups.push(vec![d]);
            }
        }
    }
    let mut moved = 0;
    let mut jobs = Vec::new();
    for group in groups {
        let (message, endpoint) = (&group[0].change.message_id, &group[0].endpoint);
        let Some((first, first_due)) = store.first_pending_callback(message, endpoint).await?
        else {
            continue;
        };
        let behind: Vec<Due> = group.into_iter().filter(|d| *d != first).collect();
        if first_due > now {
            // The first waits for its retry: the rest wait with it.
            store.defer_callbacks(&behind, first_due).await?;
            moved += behind.len();
            continue;
        }
        jobs.push((first, behind));
    }
    let concurrency = registry.config().concurrency;
    let posted: Vec<(Due, Posted, Vec<Due>)> = futures::stream::iter(jobs)
        .map(|(first, behind)| async move {
            let posted = post(registry, clients, &first).await;
            crate::telemetry::callback_posted(posted.outcome, posted.next.is_some());
            (first, posted, behind)
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    // One transaction for the pass's posts: a commit per post would bound
    // the sender to the store's commits per second.
    store.record_posts(&posted).await?;
    moved += posted
        .iter()
        .map(|(_, _, behind)| 1 + behind.len())
        .sum::<usize>();
    Ok(moved)
}

/// Posts `due` once and says what comes next.
async fn post(registry: &Registry, clients: &Clients, due: &Due) -> Posted {
    let config = registry.config();
    let at = now_millis();
    let done = |outcome: &'static str, error: String| Posted {
        at,
        status: None,
        latency_ms: 0,
        error: Some(error),
        next: None,
        outcome,
    };
    let Some(endpoint) = registry.get(&due.endpoint) else {
        return done("dropped", "the endpoint was removed".into());
    };
    if let Err(e) = registry.check_url(&endpoint.url) {
        return done("dropped", format!("the endpoint is no longer allowed: {e}"));
    }
    let keys = Registry::signing_keys(&endpoint, at);
    if keys.is_empty() {
        return done("dropped", "the endpoint has no secret in force".into());
    }
    let body = body(&due.change);
    let webhook_id = due.change.webhook_id();
    let timestamp = at / 1000;
    let client = if config.allow_private {
        &clients.any_address
    } else {
        &clients.public_only
    };
    let started = Instant::now();
    let answer = client
        .post(&endpoint.url)
        .timeout(config.timeout)
        .header("content-type", "application/json")
        .header("user-agent", concat!("chirp/", env!("CARGO_PKG_VERSION")))
        .header("webhook-id", &webhook_id)
        .header("webhook-timestamp", timestamp.to_string())
        .header(
            "webhook-signature",
            signature::header(&keys, &webhook_id, timestamp, &body),
        )
        .body(body)
        .send()
        .await;
    let latency_ms = started.elapsed().as_millis().min(u64::MAX as u128) as u64;
    let (status, error) = match answer {
        Ok(response) if response.status().is_success() => (Some(response.status().as_u16()), None),
        Ok(response) => (
            Some(response.status().as_u16()),
            Some(format!("the receiver answered {}", response.status())),
        ),
        Err(e) => (None, Some(bounded(&error_chain(&e)))),
    };
    let next = match &error {
        None => None,
        Some(_) => {
            let first = due.first_tried_at.unwrap_or(at);
            let give_up_at = first.saturating_add(config.give_up_after.as_millis() as i64);
            let wait = retry_in(config.first_retry, due.attempts + 1);
            let next = at.saturating_add(wait.as_millis() as i64);
            (next <= give_up_at).then_some(next)
        }
    };
    let outcome = match (&error, next) {
        (None, _) => "delivered",
        (Some(_), Some(_)) => "pending",
        (Some(_), None) => "failed",
    };
    Posted {
        at,
        status,
        latency_ms,
        error,
        next,
        outcome,
    }
}

/// An error with its causes, as one line.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn bounded(text: &str) -> String {
    text.chars().take(MAX_ERROR_CHARS).collect()
}
