//! Scenario 11, second part: what the retention job costs accepting. A
//! fresh durable store gets `count` sent messages; then `count` new ones
//! are accepted in the commit loop's batches, once alone and once while
//! the job (its batches and its pauses, as chirp runs it) redacts and
//! deletes the old ones, the order of the two alternating by round. Five
//! rounds; the median and range of the accept rate and of the process's
//! CPU per accepted message (the job's included in the second).
//!
//! The accepts go straight to the store, in this process, without HTTP:
//! the job competes with accepting for the store, and that is what this
//! measures.

use std::time::{Duration, Instant};

use chirp::config::PrivacyConfig;
use chirp::message::now_millis;
use chirp::phone::Phone;
use chirp::store::Store;

use crate::store_path::{fresh_store, new_message, sent_messages};

/// Rounds, each on a fresh store.
const ROUNDS: usize = 5;
/// The commit loop's batch.
const BATCH: usize = 256;

/// One accept phase: messages per second and CPU µs per message.
type Figure = (f64, f64);

/// Runs the comparison on `count` messages per phase in stores under `dir`.
pub async fn run(count: usize, dir: &std::path::Path, process_cpu: fn() -> Duration) {
    let mut alone = Vec::new();
    let mut with_job = Vec::new();
    let mut job_outlasted = 0;
    for round in 0..ROUNDS {
        let store = fresh_store(dir, &format!("contention-{round}")).await;
        sent_messages(&store, count, false).await;
        let job_first = round % 2 == 1;
        for phase in 0..2 {
            let first_key = (1 + phase) * count;
            if (phase == 0) == job_first {
                let (figure, outlasted) =
                    accept_with_job(&store, first_key, count, process_cpu).await;
                with_job.push(figure);
                job_outlasted += usize::from(outlasted);
            } else {
                alone.push(accept(&store, first_key, count, process_cpu).await);
            }
        }
        let _ = store.close().await;
    }
    for (what, figures) in [("alone", &alone), ("while the job runs", &with_job)] {
        println!(
            "11. accepting {count} messages {what}, {} rounds alternated: median {} msg/s, \
             CPU {} µs per message",
            figures.len(),
            crate::spread(figures.iter().map(|f| f.0), 0),
            crate::spread(figures.iter().map(|f| f.1), 1),
        );
    }
    println!(
        "11. the job was still running when accepting ended in {job_outlasted} of {ROUNDS} rounds"
    );
}

/// Accepts `count` messages with keys from `first_key`, in batches.
async fn accept(
    store: &Store,
    first_key: usize,
    count: usize,
    process_cpu: fn() -> Duration,
) -> Figure {
    let phone = Phone::parse("+919876543210").expect("phone");
    let started = Instant::now();
    let cpu_started = process_cpu();
    for first in (first_key..first_key + count).step_by(BATCH) {
        let batch: Vec<_> = (first..(first + BATCH).min(first_key + count))
            .map(|n| new_message(n, &phone))
            .collect();
        store.insert_batch(&batch).await.expect("insert");
    }
    (
        count as f64 / started.elapsed().as_secs_f64(),
        (process_cpu() - cpu_started).as_secs_f64() * 1e6 / count as f64,
    )
}

/// [`accept`] while the retention job, on a task of its own, redacts and
/// deletes every message accepted before this phase. Returns the figure
/// and whether the job was still running when accepting ended.
async fn accept_with_job(
    store: &Store,
    first_key: usize,
    count: usize,
    process_cpu: fn() -> Duration,
) -> (Figure, bool) {
    let config = PrivacyConfig {
        erasure_key: "unused.key".into(),
        redact_after: Duration::from_secs(86_400),
        redact_marketing_after: Duration::from_secs(86_400),
        delete_after: Duration::from_secs(2 * 86_400),
        retention_interval: Duration::from_secs(3600),
    };
    // Past both periods for every message accepted so far, not for those
    // accepted from now: their ids are after the cutoff.
    let cutoff = now_millis();
    let now = cutoff + 2 * 86_400_000;
    let job = {
        let store = store.clone();
        tokio::spawn(async move {
            chirp::retention::run_passes(&store, &config, &[], now)
                .await
                .expect("retention")
        })
    };
    let figure = accept(store, first_key, count, process_cpu).await;
    let outlasted = !job.is_finished();
    let report = job.await.expect("retention task");
    assert!(report.deleted > 0, "the job had nothing to do");
    (figure, outlasted)
}
