//! Scenario 11: the retention job's own cost. A fresh durable store gets
//! `count` messages, all sent, then the job's three passes run as if their
//! periods were over (every message redacted, then deleted), in the job's
//! batches, without its pauses. Five rounds, each on a fresh store; the
//! median and the range of each phase's rate and CPU per message.

use std::time::{Duration, Instant};

use chirp::config::PrivacyConfig;
use chirp::message::{Status, now_millis};
use chirp::phone::Phone;
use chirp::store::{Action, Completion, MessagePatch, ServerAccess, Store};

use crate::store_path::{new_message, store_memory};

/// The job's batch.
const BATCH: usize = 500;
/// Rounds, each on a fresh store.
const ROUNDS: usize = 5;

/// Runs the scenario on `count` messages per round in stores under `dir`.
pub async fn run(count: usize, dir: &std::path::Path, process_cpu: fn() -> Duration) {
    let mut redact = Vec::new();
    let mut delete = Vec::new();
    for round in 0..ROUNDS {
        let url = format!(
            "surrealkv://{}",
            dir.join(format!("store-{round}")).display()
        );
        let store = Store::open(&url, &ServerAccess::default(), store_memory())
            .await
            .expect("open the store");
        fill(&store, count).await;
        let config = PrivacyConfig {
            erasure_key: dir.join("unused.key"),
            redact_after: Duration::from_secs(86_400),
            redact_marketing_after: Duration::from_secs(86_400),
            delete_after: Duration::from_secs(2 * 86_400),
            retention_interval: Duration::from_secs(3600),
        };
        // Every message is past both periods three days from now.
        let now = now_millis() + 3 * 86_400_000;
        for pass in chirp::retention::passes(&config, &["churn_risk".to_string()], now) {
            let started = Instant::now();
            let cpu_started = process_cpu();
            let mut changed = 0;
            loop {
                let (n, done) = store
                    .retention_batch(&pass, now, BATCH)
                    .await
                    .expect("pass");
                changed += n;
                if done {
                    break;
                }
            }
            let figure = (
                changed as f64 / started.elapsed().as_secs_f64(),
                (process_cpu() - cpu_started).as_secs_f64() * 1e6 / changed.max(1) as f64,
            );
            match pass.action {
                Action::Redact if changed > 0 => redact.push(figure),
                Action::Delete => delete.push(figure),
                Action::Redact => {}
            }
        }
        let _ = store.close().await;
    }
    for (what, figures) in [("redact", &redact), ("delete", &delete)] {
        println!(
            "11. retention, {what} {count} messages, {} rounds: median {} msg/s, \
             CPU {} µs per message",
            figures.len(),
            crate::spread(figures.iter().map(|f| f.0), 0),
            crate::spread(figures.iter().map(|f| f.1), 0),
        );
    }
}

/// `count` messages, inserted and completed as sent in chirp's batches.
pub async fn fill(store: &Store, count: usize) {
    let phone = Phone::parse("+919876543210").expect("phone");
    for first in (0..count).step_by(256) {
        let batch: Vec<_> = (first..(first + 256).min(count))
            .map(|n| new_message(n, &phone))
            .collect();
        store.insert_batch(&batch).await.expect("insert");
    }
    loop {
        let now = now_millis();
        let claimed = store
            .claim_due(now, 0, 256, now + 60_000, "lease")
            .await
            .expect("claim");
        if claimed.is_empty() {
            break;
        }
        let completions = claimed
            .into_iter()
            .map(|leased| Completion {
                message_id: leased.message.id.clone(),
                lease: leased.lease,
                patch: MessagePatch {
                    status: Status::Sent,
                    attempts: 1,
                    updated_at: now,
                    due_at: None,
                    sent_at: Some(now),
                    provider_message_id: Some(format!("wamid.{}", leased.message.id)),
                    error_code: None,
                    error_message: None,
                    waiting_for: None,
                },
                attempt: None,
            })
            .collect();
        store.complete(completions).await.expect("complete");
    }
}
