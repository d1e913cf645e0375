//! Scenario 11: the retention job's own cost. A fresh durable store gets
//! `count` messages, all sent, then the job's three passes run as if their
//! periods were over (every message redacted, then deleted), in the job's
//! batches, without its pauses. Five rounds, each on a fresh store; the
//! median and the range of each phase's rate and CPU per message.

use std::time::{Duration, Instant};

use chirp::config::PrivacyConfig;
use chirp::message::now_millis;
use chirp::store::Action;

use crate::store_path::{fresh_store, sent_messages};

/// The job's batch.
const BATCH: usize = 500;
/// Rounds, each on a fresh store.
const ROUNDS: usize = 5;

/// Runs the scenario on `count` messages per round in stores under `dir`.
pub async fn run(count: usize, dir: &std::path::Path, process_cpu: fn() -> Duration) {
    let mut redact = Vec::new();
    let mut delete = Vec::new();
    for round in 0..ROUNDS {
        let store = fresh_store(dir, &format!("store-{round}")).await;
        sent_messages(&store, count, false).await;
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
