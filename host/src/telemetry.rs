//! Metrics: the series chirp exports in Prometheus text format at
//! `GET /metrics`, and one place that names them.
//!
//! The recorder is process-wide. Code records through the functions here,
//! so a series' name and labels are written once.

use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Installs the Prometheus recorder; `None` if another recorder was
/// installed first (then nothing is exported, and recording is a no-op).
pub fn install() -> Option<PrometheusHandle> {
    let latency_buckets = [
        0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    ];
    let batch_buckets = [
        1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0,
    ];
    let recorder = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &latency_buckets)
        .ok()?
        .set_buckets_for_metric(Matcher::Suffix("_messages".into()), &batch_buckets)
        .ok()?
        .build_recorder();
    let handle = recorder.handle();
    metrics::set_global_recorder(recorder).ok()?;
    describe();
    Some(handle)
}

fn describe() {
    metrics::describe_counter!(
        "chirp_messages_accepted_total",
        "Messages stored to be sent"
    );
    metrics::describe_counter!(
        "chirp_messages_skipped_total",
        "Messages stored as skipped (opt-out, disabled template)"
    );
    metrics::describe_counter!(
        "chirp_messages_sent_total",
        "Messages the provider accepted"
    );
    metrics::describe_counter!(
        "chirp_messages_failed_total",
        "Messages that ran out of attempts or failed permanently"
    );
    metrics::describe_counter!(
        "chirp_messages_cancelled_total",
        "Messages taken back before they were sent, by who asked (admin, event)"
    );
    metrics::describe_counter!(
        "chirp_messages_expired_total",
        "Messages whose expiry passed before they could be sent"
    );
    metrics::describe_counter!(
        "chirp_fallbacks_total",
        "Messages moved from a provider to their next route (from, to)"
    );
    metrics::describe_counter!(
        "chirp_routes_left_out_total",
        "Fallback routes the rules chose that the operator has not approved, left out (template)"
    );
    metrics::describe_gauge!(
        "chirp_provider_breaker_open",
        "1 while a provider's circuit breaker is open or probing, else 0"
    );
    metrics::describe_counter!(
        "chirp_provider_breaker_opened_total",
        "Times a provider's circuit breaker opened"
    );
    metrics::describe_counter!(
        "chirp_callbacks_total",
        "Status callback posts by outcome (delivered, retry, failed: given up, dropped)"
    );
    metrics::describe_counter!(
        "chirp_retries_total",
        "Attempts that failed and will be retried"
    );
    metrics::describe_gauge!("chirp_queue_depth", "Messages queued now");
    metrics::describe_histogram!(
        "chirp_provider_latency_seconds",
        "Time of one provider call through the sandbox"
    );
    metrics::describe_counter!(
        "chirp_plugin_faults_total",
        "Plugin calls that trapped, timed out, answered garbage or were denied"
    );
    metrics::describe_counter!(
        "chirp_receipts_total",
        "Delivery receipts put on messages, by provider and status"
    );
    metrics::describe_counter!(
        "chirp_receipts_unmatched_total",
        "Receipts for platform ids no message had when they came"
    );
    metrics::describe_counter!(
        "chirp_inbound_messages_total",
        "Messages customers sent, as providers' webhooks reported them"
    );
    metrics::describe_counter!(
        "chirp_webhook_rejections_total",
        "Webhook requests refused, by reason"
    );
    metrics::describe_counter!(
        "chirp_plugin_reloads_total",
        "Plugin files loaded or refused"
    );
    metrics::describe_histogram!(
        "chirp_commit_batch_messages",
        "Accepted messages committed together in one transaction (group commit)"
    );
    metrics::describe_histogram!(
        "chirp_commit_duration_seconds",
        "Time to commit one batch of accepted messages, fsync included"
    );
    metrics::describe_histogram!(
        "chirp_http_request_duration_seconds",
        "API request latency by route"
    );
}

/// `n` messages accepted.
pub fn accepted(n: u64) {
    metrics::counter!("chirp_messages_accepted_total").increment(n);
}

/// `n` messages skipped.
pub fn skipped(n: u64) {
    metrics::counter!("chirp_messages_skipped_total").increment(n);
}

/// A provider's circuit breaker opened (`true`) or closed.
pub fn breaker(provider: &str, open: bool) {
    metrics::gauge!("chirp_provider_breaker_open", "provider" => provider.to_string())
        .set(if open { 1.0 } else { 0.0 });
    if open {
        metrics::counter!("chirp_provider_breaker_opened_total", "provider" => provider.to_string())
            .increment(1);
    }
}

/// A message moved from one provider to its next route.
pub fn fell_back(from: &str, to: &str) {
    metrics::counter!("chirp_fallbacks_total", "from" => from.to_string(), "to" => to.to_string())
        .increment(1);
}

/// The rules chose a fallback route for a template the operator has not
/// approved it for; it was left out.
pub fn route_left_out(template: &str) {
    metrics::counter!("chirp_routes_left_out_total", "template" => template.to_string())
        .increment(1);
}

/// A message expired before it could be sent.
pub fn expired() {
    metrics::counter!("chirp_messages_expired_total").increment(1);
}

/// `n` messages cancelled, by whom (`admin`, `event`).
pub fn cancelled(n: u64, by: &'static str) {
    if n > 0 {
        metrics::counter!("chirp_messages_cancelled_total", "by" => by).increment(n);
    }
}

/// A status callback posted: `delivered`, `pending` (to be tried again),
/// `failed` (given up) or `dropped` (its endpoint is gone or no longer
/// allowed).
pub fn callback_posted(outcome: &'static str, retrying: bool) {
    let outcome = if retrying { "retry" } else { outcome };
    metrics::counter!("chirp_callbacks_total", "outcome" => outcome).increment(1);
}

/// A message sent.
pub fn sent() {
    metrics::counter!("chirp_messages_sent_total").increment(1);
}

/// A message failed for good.
pub fn failed() {
    metrics::counter!("chirp_messages_failed_total").increment(1);
}

/// A message queued for another attempt.
pub fn retry() {
    metrics::counter!("chirp_retries_total").increment(1);
}

/// Messages due now.
pub fn queue_depth(n: u64) {
    metrics::gauge!("chirp_queue_depth").set(n as f64);
}

/// One provider call, its outcome and time.
pub fn provider_call(provider: &str, outcome: &'static str, took: Duration) {
    metrics::histogram!("chirp_provider_latency_seconds", "provider" => provider.to_string(), "outcome" => outcome)
        .record(took.as_secs_f64());
}

/// A plugin call that failed in the sandbox (trap, timeout, ...).
pub fn plugin_fault(plugin: &str, kind: &'static str) {
    metrics::counter!("chirp_plugin_faults_total", "plugin" => plugin.to_string(), "kind" => kind)
        .increment(1);
}

/// One group commit of accepted messages: how many, and how long it took.
pub fn commit_batch(messages: usize, took: Duration) {
    metrics::histogram!("chirp_commit_batch_messages").record(messages as f64);
    metrics::histogram!("chirp_commit_duration_seconds").record(took.as_secs_f64());
}

/// What one batch of webhook events came to: receipts applied by
/// provider and state, receipts still waiting for their message,
/// customers' messages.
pub fn webhook_events_applied(applied: &crate::store::Applied) {
    let mut by_series = std::collections::BTreeMap::new();
    for (provider, state) in &applied.states {
        *by_series.entry((provider, state.as_str())).or_insert(0u64) += 1;
    }
    for ((provider, state), receipts) in by_series {
        metrics::counter!(
            "chirp_receipts_total",
            "provider" => provider.clone(),
            "status" => state
        )
        .increment(receipts);
    }
    metrics::counter!("chirp_receipts_unmatched_total").increment(applied.unmatched as u64);
    metrics::counter!("chirp_inbound_messages_total").increment(applied.inbound as u64);
}

/// A webhook request refused, by why (a fixed set of reasons).
pub fn webhook_rejected(reason: &'static str) {
    metrics::counter!("chirp_webhook_rejections_total", "reason" => reason).increment(1);
}

/// A plugin file loaded, refused or removed.
pub fn plugin_reload(outcome: &'static str) {
    metrics::counter!("chirp_plugin_reloads_total", "outcome" => outcome).increment(1);
}

/// The label of an HTTP method: the standard ones by name, anything a
/// client invents as `other`, so that no request can add a series.
pub fn method_label(method: &str) -> &'static str {
    const KNOWN: [&str; 9] = [
        "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
    ];
    KNOWN
        .into_iter()
        .find(|known| *known == method)
        .unwrap_or("other")
}

/// One API request, under its route template (never its path) and the
/// method's label: both bounded.
pub fn http_request(route: &str, method: &'static str, status: u16, took: Duration) {
    metrics::histogram!(
        "chirp_http_request_duration_seconds",
        "route" => route.to_string(),
        "method" => method,
        "status" => status.to_string()
    )
    .record(took.as_secs_f64());
}
