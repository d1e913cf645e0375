//! Aggregates over the `message` and `attempt` tables for
//! `GET /api/notifications/statistics`.

use serde_json::Value;

use super::{Store, StoreError};
use crate::message::{Millis, now_millis};
use crate::status::Status;

/// One count of a group.
#[derive(Debug, Clone)]
pub struct Count {
    /// The group (a status, a template, a day).
    pub key: String,
    /// How many.
    pub count: u64,
}

/// Outcomes of a provider's attempts.
#[derive(Debug, Clone)]
pub struct ProviderOutcomes {
    /// The provider.
    pub provider: String,
    /// `sent`, `retryable` or `permanent`.
    pub outcome: String,
    /// How many attempts.
    pub count: u64,
}

/// How long one provider's calls took (an attempt's wall time, the
/// plugin's HTTP included).
#[derive(Debug, Clone)]
pub struct ProviderLatency {
    /// The provider.
    pub provider: String,
    /// Attempts in the range.
    pub attempts: u64,
    /// The median call, in milliseconds.
    pub p50_ms: Option<i64>,
    /// The 95th percentile.
    pub p95_ms: Option<i64>,
}

/// What the receipts of one provider's and template's sent messages add
/// up to.
#[derive(Debug, Clone)]
pub struct DeliveryCounts {
    /// The provider.
    pub provider: String,
    /// The template (`none` for free text).
    pub template: String,
    /// Messages sent.
    pub sent: u64,
    /// Of those, delivered (a read is also a delivery).
    pub delivered: u64,
    /// Of those, read.
    pub read: u64,
    /// The time from acceptance to the first delivery, in milliseconds:
    /// the median, and the 95th percentile.
    pub accept_to_delivered_p50_ms: Option<i64>,
    /// See above.
    pub accept_to_delivered_p95_ms: Option<i64>,
}

/// Statistics of messages accepted in `[from, to)`.
#[derive(Debug, Clone)]
pub struct Statistics {
    /// Messages accepted in the range.
    pub total: u64,
    /// By status.
    pub by_status: Vec<Count>,
    /// By template (`none` for free text).
    pub by_template: Vec<Count>,
    /// Days as `YYYY-MM-DD` (UTC).
    pub by_day: Vec<Count>,
    /// sent / (sent + failed); `null` when nothing has finished.
    pub success_rate: Option<f64>,
    /// Mean attempts of finished (sent or failed) messages.
    pub average_attempts: Option<f64>,
    /// Time from acceptance to `sent`, in milliseconds.
    pub accept_to_sent_p50_ms: Option<i64>,
    /// The 95th percentile of the same.
    pub accept_to_sent_p95_ms: Option<i64>,
    /// Queued now (any time range), and the age of the oldest of them.
    pub queue_depth: u64,
    /// How long the oldest of them has waited, in milliseconds.
    pub oldest_queued_age_ms: Option<i64>,
    /// Attempts in the range by provider and outcome.
    pub provider_outcomes: Vec<ProviderOutcomes>,
    /// Attempts in the range by provider: how long the calls took.
    pub provider_latency: Vec<ProviderLatency>,
    /// Sent messages' receipts, by provider and template.
    pub delivery: Vec<DeliveryCounts>,
}

fn counts(rows: Vec<Value>, key: &str) -> Vec<Count> {
    rows.into_iter()
        .map(|row| Count {
            key: match &row[key] {
                Value::String(s) => s.clone(),
                Value::Null => "none".into(),
                other => other.to_string(),
            },
            count: row["n"].as_u64().unwrap_or(0),
        })
        .collect()
}

fn percentile(sorted: &[i64], p: f64) -> Option<i64> {
    if sorted.is_empty() {
        return None;
    }
    let index = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted.get(index).copied()
}

/// Messages accepted in `[$from, $to)`, counted by status.
const BY_STATUS: &str = "SELECT status, count() AS n FROM message WHERE created_at >= $from AND created_at < $to GROUP BY status";

impl Store {
    /// The messages accepted in `[from, to)`, counted by status: the
    /// first part of [`Store::statistics`], alone.
    pub async fn count_by_status(
        &self,
        from: Millis,
        to: Millis,
    ) -> Result<Vec<Count>, StoreError> {
        let rows: Vec<Value> = self
            .db
            .query(BY_STATUS)
            .bind(("from", from))
            .bind(("to", to))
            .await?
            .take(0)?;
        Ok(counts(rows, "status"))
    }

    /// Statistics of the messages accepted in `[from, to)`.
    pub async fn statistics(&self, from: Millis, to: Millis) -> Result<Statistics, StoreError> {
        let mut response = self
            .db
            .query(BY_STATUS)
            .query("SELECT template, count() AS n FROM message WHERE created_at >= $from AND created_at < $to GROUP BY template")
            .query("SELECT math::floor(created_at / 86400000) AS day, count() AS n FROM message WHERE created_at >= $from AND created_at < $to GROUP BY day")
            .query("SELECT VALUE sent_at - created_at FROM message WHERE status = $sent AND created_at >= $from AND created_at < $to")
            .query("SELECT math::mean(attempts) AS mean FROM message WHERE (status = $sent OR status = $failed) AND created_at >= $from AND created_at < $to GROUP ALL")
            .query("SELECT count() AS n, math::min(created_at) AS oldest FROM message WHERE due_at >= 0 AND status = $queued GROUP ALL")
            .query("SELECT provider, outcome, count() AS n FROM attempt WHERE started_at >= $from AND started_at < $to GROUP BY provider, outcome")
            .query("SELECT provider, template, created_at, delivered_at, read_at != NONE AS read FROM message WHERE sent_at != NONE AND created_at >= $from AND created_at < $to")
            .query("SELECT provider, latency_ms FROM attempt WHERE started_at >= $from AND started_at < $to")
            .bind(("from", from))
            .bind(("to", to))
            .bind(("sent", Status::Sent.as_str()))
            .bind(("failed", Status::Failed.as_str()))
            .bind(("queued", Status::Queued.as_str()))
            .await?;
        let by_status = counts(response.take::<Vec<Value>>(0)?, "status");
        let by_template = counts(response.take::<Vec<Value>>(1)?, "template");
        let by_day = counts(response.take::<Vec<Value>>(2)?, "day")
            .into_iter()
            .map(|c| Count {
                key: day_name(c.key.parse::<f64>().unwrap_or(0.0) as i64),
                count: c.count,
            })
            .collect();
        let mut latencies: Vec<i64> = response.take(3)?;
        latencies.sort_unstable();
        let mean: Vec<Value> = response.take(4)?;
        let queue: Vec<Value> = response.take(5)?;
        let providers: Vec<Value> = response.take(6)?;
        let delivery = delivery_counts(response.take::<Vec<Value>>(7)?);
        let provider_latency = provider_latency(response.take::<Vec<Value>>(8)?);

        let count_of = |status: &str| {
            by_status
                .iter()
                .find(|c| c.key == status)
                .map_or(0, |c| c.count)
        };
        let (sent, failed) = (
            count_of(Status::Sent.as_str()),
            count_of(Status::Failed.as_str()),
        );
        let queue_depth = queue.first().and_then(|q| q["n"].as_u64()).unwrap_or(0);
        let oldest = queue.first().and_then(|q| q["oldest"].as_i64());
        Ok(Statistics {
            total: by_status.iter().map(|c| c.count).sum(),
            success_rate: (sent + failed > 0).then(|| sent as f64 / (sent + failed) as f64),
            average_attempts: mean.first().and_then(|m| m["mean"].as_f64()),
            accept_to_sent_p50_ms: percentile(&latencies, 0.50),
            accept_to_sent_p95_ms: percentile(&latencies, 0.95),
            queue_depth,
            oldest_queued_age_ms: oldest.map(|t| now_millis() - t),
            provider_outcomes: providers
                .into_iter()
                .map(|row| ProviderOutcomes {
                    provider: row["provider"].as_str().unwrap_or_default().into(),
                    outcome: row["outcome"].as_str().unwrap_or_default().into(),
                    count: row["n"].as_u64().unwrap_or(0),
                })
                .collect(),
            provider_latency,
            by_status,
            by_template,
            by_day,
            delivery,
        })
    }
}

/// Attempts' `(provider, latency)` rows, as percentiles by provider.
fn provider_latency(rows: Vec<Value>) -> Vec<ProviderLatency> {
    let mut groups: std::collections::BTreeMap<String, Vec<i64>> = Default::default();
    for row in rows {
        groups
            .entry(row["provider"].as_str().unwrap_or("none").to_string())
            .or_default()
            .push(row["latency_ms"].as_i64().unwrap_or(0).max(0));
    }
    groups
        .into_iter()
        .map(|(provider, mut latencies)| {
            latencies.sort_unstable();
            ProviderLatency {
                provider,
                attempts: latencies.len() as u64,
                p50_ms: percentile(&latencies, 0.50),
                p95_ms: percentile(&latencies, 0.95),
            }
        })
        .collect()
}

/// Sent messages' `(provider, template, accept -> delivered, read)` rows,
/// added up by provider and template.
fn delivery_counts(rows: Vec<Value>) -> Vec<DeliveryCounts> {
    let mut groups: std::collections::BTreeMap<(String, String), (u64, u64, Vec<i64>)> =
        std::collections::BTreeMap::new();
    for row in rows {
        let text = |key: &str| row[key].as_str().unwrap_or("none").to_string();
        let group = groups
            .entry((text("provider"), text("template")))
            .or_default();
        group.0 += 1;
        if let (Some(delivered), Some(created)) =
            (row["delivered_at"].as_i64(), row["created_at"].as_i64())
        {
            let after = delivered - created;
            // The platform's clock against chirp's: a skew could make it
            // negative.
            group.2.push(after.max(0));
        }
        group.1 += u64::from(row["read"].as_bool().unwrap_or(false));
    }
    groups
        .into_iter()
        .map(|((provider, template), (sent, read, mut delivered))| {
            delivered.sort_unstable();
            DeliveryCounts {
                provider,
                template,
                sent,
                delivered: delivered.len() as u64,
                read,
                accept_to_delivered_p50_ms: percentile(&delivered, 0.50),
                accept_to_delivered_p95_ms: percentile(&delivered, 0.95),
            }
        })
        .collect()
}

/// Days since the epoch as `YYYY-MM-DD`.
fn day_name(day: i64) -> String {
    crate::message::rfc3339(day * 86_400_000)[..10].to_string()
}
