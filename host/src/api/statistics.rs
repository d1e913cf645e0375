//! `GET /api/notifications/statistics`: counts, rates and latencies of the
//! messages accepted in a range, and the queue as it is now.

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::Caller;
use super::extract::{QueryParams, parse_time};
use super::{ApiError, AppState};
use crate::message::Millis;
use crate::store::{Count, ProviderOutcomes, Statistics};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(statistics))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct RangeParams {
    /// Accepted at or after this RFC 3339 time.
    #[param(format = DateTime)]
    from: Option<String>,
    /// Accepted before this RFC 3339 time.
    #[param(format = DateTime)]
    to: Option<String>,
}

/// `GET /api/notifications/statistics?from=&to=`: counts, rates and
/// latencies of the messages accepted in the range (default: all time),
/// and the queue as it is now.
#[utoipa::path(
    get,
    path = "/api/notifications/statistics",
    tag = "notifications",
    params(RangeParams),
    responses((status = 200, description = "Success", body = StatisticsView)),
)]
pub(super) async fn statistics(
    _caller: Caller,
    State(state): State<AppState>,
    QueryParams(range): QueryParams<RangeParams>,
) -> Result<Json<StatisticsView>, ApiError> {
    let from = range
        .from
        .map(|t| parse_time("from", &t))
        .transpose()?
        .unwrap_or(0);
    let to = range
        .to
        .map(|t| parse_time("to", &t))
        .transpose()?
        .unwrap_or(Millis::MAX);
    // A range that ends before it starts holds no messages.
    let to = to.max(from);
    let mut view: StatisticsView = state.store.statistics(from, to).await?.into();
    let callbacks = state.store.count_callbacks().await?;
    view.callbacks = CallbacksView {
        pending: callbacks.pending,
        delivered: callbacks.delivered,
        failed: callbacks.failed,
        dropped: callbacks.dropped,
    };
    Ok(Json(view))
}

/// One count of a group.
#[derive(Serialize, ToSchema)]
#[schema(as = Count)]
struct CountView {
    key: String,
    count: u64,
}

/// Outcomes of a provider's attempts.
#[derive(Serialize, ToSchema)]
#[schema(as = ProviderOutcomes)]
struct ProviderOutcomesView {
    provider: String,
    outcome: String,
    count: u64,
}

/// Statistics of the messages accepted in the range.
#[derive(Serialize, ToSchema)]
#[schema(as = Statistics)]
pub(super) struct StatisticsView {
    total: u64,
    by_status: Vec<CountView>,
    by_template: Vec<CountView>,
    /// Days as `YYYY-MM-DD` (UTC).
    by_day: Vec<CountView>,
    /// sent / (sent + failed); `null` when nothing has finished.
    success_rate: Option<f64>,
    /// Mean attempts of finished (sent or failed) messages.
    average_attempts: Option<f64>,
    /// Time from acceptance to `sent`, in milliseconds.
    accept_to_sent_p50_ms: Option<i64>,
    accept_to_sent_p95_ms: Option<i64>,
    /// Queued now (any time range), and the age of the oldest of them.
    queue_depth: u64,
    oldest_queued_age_ms: Option<i64>,
    provider_outcomes: Vec<ProviderOutcomesView>,
    /// Attempts in the range by provider: how long the calls took.
    provider_latency: Vec<ProviderLatencyView>,
    /// Sent messages' receipts, by provider and template.
    delivery: Vec<DeliveryCountsView>,
    /// Status callbacks by outcome (all time, whatever the range).
    callbacks: CallbacksView,
}

/// Status callbacks by outcome.
/// How long one provider's calls took in the range.
#[derive(Serialize, ToSchema)]
#[schema(as = ProviderLatency)]
struct ProviderLatencyView {
    provider: String,
    attempts: u64,
    /// The median attempt, from the call to its answer, in milliseconds.
    p50_ms: Option<i64>,
    p95_ms: Option<i64>,
}

#[derive(Serialize, ToSchema, Default)]
#[schema(as = CallbackCounts)]
struct CallbacksView {
    /// Waiting to be posted (again).
    pending: u64,
    /// Taken by their receivers.
    delivered: u64,
    /// Given up.
    failed: u64,
    /// Not posted: their endpoint was removed or is no longer allowed.
    dropped: u64,
}

/// What the receipts of one provider's and template's sent messages add
/// up to.
#[derive(Serialize, ToSchema)]
#[schema(as = DeliveryCounts)]
struct DeliveryCountsView {
    provider: String,
    /// `none` for free text.
    template: String,
    sent: u64,
    /// A read is also a delivery.
    delivered: u64,
    read: u64,
    /// delivered / sent.
    delivered_rate: f64,
    /// read / sent.
    read_rate: f64,
    /// Time from acceptance to the first delivery, in milliseconds.
    accept_to_delivered_p50_ms: Option<i64>,
    accept_to_delivered_p95_ms: Option<i64>,
}

fn counts(counts: Vec<Count>) -> Vec<CountView> {
    counts
        .into_iter()
        .map(|c| CountView {
            key: c.key,
            count: c.count,
        })
        .collect()
}

impl From<Statistics> for StatisticsView {
    fn from(s: Statistics) -> StatisticsView {
        StatisticsView {
            total: s.total,
            by_status: counts(s.by_status),
            by_template: counts(s.by_template),
            by_day: counts(s.by_day),
            success_rate: s.success_rate,
            average_attempts: s.average_attempts,
            accept_to_sent_p50_ms: s.accept_to_sent_p50_ms,
            accept_to_sent_p95_ms: s.accept_to_sent_p95_ms,
            queue_depth: s.queue_depth,
            oldest_queued_age_ms: s.oldest_queued_age_ms,
            provider_outcomes: s
                .provider_outcomes
                .into_iter()
                .map(|p: ProviderOutcomes| ProviderOutcomesView {
                    provider: p.provider,
                    outcome: p.outcome,
                    count: p.count,
                })
                .collect(),
            provider_latency: s
                .provider_latency
                .into_iter()
                .map(|p| ProviderLatencyView {
                    provider: p.provider,
                    attempts: p.attempts,
                    p50_ms: p.p50_ms,
                    p95_ms: p.p95_ms,
                })
                .collect(),
            delivery: s
                .delivery
                .into_iter()
                .map(|d| DeliveryCountsView {
                    delivered_rate: d.delivered as f64 / d.sent.max(1) as f64,
                    read_rate: d.read as f64 / d.sent.max(1) as f64,
                    provider: d.provider,
                    template: d.template,
                    sent: d.sent,
                    delivered: d.delivered,
                    read: d.read,
                    accept_to_delivered_p50_ms: d.accept_to_delivered_p50_ms,
                    accept_to_delivered_p95_ms: d.accept_to_delivered_p95_ms,
                })
                .collect(),
            callbacks: CallbacksView::default(),
        }
    }
}
