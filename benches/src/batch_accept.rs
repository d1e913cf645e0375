//! Scenario 14: accepting through `POST /api/notifications/batch` against
//! one `send-message` per message, on one chirp with delivery paused (so
//! only accepting is measured). Closed loop, the two alternated for five
//! rounds: `messages` single requests over the run's connections, then
//! the same number in batches of [`BATCH`] over [`BATCH_CONNECTIONS`]
//! connections; the median and range of messages per second and of chirp's
//! CPU per message. Then open loop: batches offered at a fixed rate for a
//! fixed time, with the latency of each batch from when it was due. Last,
//! what status callbacks cost: batches with one callback endpoint
//! registered (every message's `accepted` callback written in its
//! transaction and posted to a receiver on loopback) against none,
//! alternated; CPU counted until the receiver has every callback.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;

use chirp_harness::mock::faulty::Mock;

use crate::load::{Spec, admin_client, drive, message_body};
use crate::spread;

/// Rounds of each variant, alternated.
const ROUNDS: usize = 5;
/// Messages per batch request.
pub const BATCH: usize = 500;
/// Batch requests in flight at once.
const BATCH_CONNECTIONS: usize = 4;
/// The open-loop run: batches per second, and for how long.
const OFFERED_BATCHES_PER_SEC: u64 = 8;
const OFFERED_FOR: Duration = Duration::from_secs(10);

/// What one closed-loop run measured.
struct Run {
    rate: f64,
    cpu_us: f64,
}

/// Runs the scenario against chirp at `base` (delivery paused), whose CPU
/// `chirp_cpu` reads; `receiver` takes its callbacks (chirp allows its
/// address).
pub async fn run(
    base: &str,
    chirp_cpu: impl Fn() -> Duration,
    messages: usize,
    connections: usize,
    receiver: &Mock,
) {
    let mut single = Vec::new();
    let mut batched = Vec::new();
    for round in 0..ROUNDS {
        // Alternate which goes first, so that a store growing through the
        // run does not favour one.
        for variant in [round % 2, 1 - round % 2] {
            let cpu = chirp_cpu();
            let started = Instant::now();
            let accepted = if variant == 0 {
                let spec = Spec {
                    messages,
                    connections,
                    rate: None,
                    tag: format!("single-{round}"),
                };
                let report = drive(base, &spec, None).await;
                assert_eq!(report.refused_total(), 0, "single sends refused");
                report.accepted.len()
            } else {
                batches(base, messages, &format!("batch-{round}")).await
            };
            let run = Run {
                rate: accepted as f64 / started.elapsed().as_secs_f64(),
                cpu_us: (chirp_cpu() - cpu).as_secs_f64() * 1e6 / accepted.max(1) as f64,
            };
            if variant == 0 {
                single.push(run);
            } else {
                batched.push(run);
            }
        }
    }
    for (name, runs) in [
        (
            format!("one send-message per message, {connections} connections"),
            &single,
        ),
        (
            format!("batches of {BATCH}, {BATCH_CONNECTIONS} connections"),
            &batched,
        ),
    ] {
        println!(
            "14. accept, {name}: {} msg/s, chirp CPU {} µs per message ({ROUNDS} rounds, {messages} messages each)",
            spread(runs.iter().map(|r| r.rate), 0),
            spread(runs.iter().map(|r| r.cpu_us), 1),
        );
    }
    open_loop(base, &chirp_cpu).await;
    callbacks_cost(base, &chirp_cpu, messages, receiver).await;
}

/// Batches with one callback endpoint against none, alternated.
async fn callbacks_cost(
    base: &str,
    chirp_cpu: &impl Fn() -> Duration,
    messages: usize,
    receiver: &Mock,
) {
    let client = admin_client(1);
    let mut without = Vec::new();
    let mut with = Vec::new();
    for round in 0..ROUNDS {
        for with_endpoint in [round % 2 == 0, round % 2 == 1] {
            let endpoint = if with_endpoint {
                let answer = client
                    .post(format!("{base}/api/callbacks/endpoints"))
                    .header("content-type", "application/json")
                    .body(json!({"url": format!("{}/callbacks", receiver.base)}).to_string())
                    .send()
                    .await
                    .expect("register an endpoint")
                    .text()
                    .await
                    .expect("answer");
                let answer: serde_json::Value = serde_json::from_str(&answer).expect("JSON");
                Some(answer["id"].as_str().expect("endpoint id").to_string())
            } else {
                None
            };
            let before = receiver.count();
            let cpu = chirp_cpu();
            let started = Instant::now();
            let accepted = batches(base, messages, &format!("cb-{round}-{with_endpoint}")).await;
            let accepting = started.elapsed();
            if endpoint.is_some() {
                let got = receiver
                    .wait_for(before + accepted as u64, Duration::from_secs(600))
                    .await;
                assert_eq!(got, before + accepted as u64, "callbacks missing");
            }
            let run = Run {
                rate: accepted as f64 / accepting.as_secs_f64(),
                cpu_us: (chirp_cpu() - cpu).as_secs_f64() * 1e6 / accepted.max(1) as f64,
            };
            if let Some(id) = endpoint {
                client
                    .delete(format!("{base}/api/callbacks/endpoints/{id}"))
                    .send()
                    .await
                    .expect("remove the endpoint");
                with.push((run, started.elapsed()));
            } else {
                without.push((run, accepting));
            }
        }
    }
    for (name, runs) in [
        ("no callback endpoint", &without),
        ("one callback endpoint, every callback posted", &with),
    ] {
        println!(
            "14. accept in batches of {BATCH}, {name}: {} msg/s accepted, chirp CPU {} µs per message, all callbacks posted after {} s ({ROUNDS} rounds, {messages} messages each)",
            spread(runs.iter().map(|(r, _)| r.rate), 0),
            spread(runs.iter().map(|(r, _)| r.cpu_us), 1),
            spread(runs.iter().map(|(_, t)| t.as_secs_f64()), 2),
        );
    }
}

/// Sends `messages` messages in batches over [`BATCH_CONNECTIONS`]
/// connections as fast as chirp answers; returns how many were accepted.
async fn batches(base: &str, messages: usize, tag: &str) -> usize {
    let client = admin_client(BATCH_CONNECTIONS);
    let next = Arc::new(AtomicUsize::new(0));
    let url = format!("{base}/api/notifications/batch");
    let mut tasks = Vec::new();
    for _ in 0..BATCH_CONNECTIONS {
        let (client, next, url, tag) = (client.clone(), next.clone(), url.clone(), tag.to_string());
        tasks.push(tokio::spawn(async move {
            let mut accepted = 0;
            loop {
                let first = next.fetch_add(BATCH, Ordering::Relaxed);
                if first >= messages {
                    return accepted;
                }
                let last = (first + BATCH).min(messages);
                accepted += post_batch(&client, &url, &tag, first..last).await;
            }
        }));
    }
    let mut accepted = 0;
    for task in tasks {
        accepted += task.await.expect("batch task");
    }
    accepted
}

/// Posts messages `range` of run `tag` as one batch; returns how many were
/// accepted (every one, or the run stops).
async fn post_batch(
    client: &reqwest::Client,
    url: &str,
    tag: &str,
    range: std::ops::Range<usize>,
) -> usize {
    post_messages(client, url, range.map(|n| message_body(tag, n)).collect()).await
}

/// Posts `messages` as one batch to `url`; returns how many were accepted
/// (every one, or the run stops).
pub async fn post_messages(
    client: &reqwest::Client,
    url: &str,
    messages: Vec<serde_json::Value>,
) -> usize {
    let count = messages.len();
    let body = json!({ "messages": messages });
    let answer = client
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .expect("POST batch")
        .text()
        .await
        .expect("batch answer");
    let answer: serde_json::Value = serde_json::from_str(&answer).expect("batch answer is JSON");
    let accepted = answer["accepted"].as_u64().unwrap_or(0) as usize;
    assert_eq!(accepted, count, "a batch was not accepted whole: {answer}");
    accepted
}

/// Batches offered at a fixed rate: the rate reached and each batch's
/// latency from when it was due.
async fn open_loop(base: &str, chirp_cpu: &impl Fn() -> Duration) {
    let client = admin_client(64);
    let url = format!("{base}/api/notifications/batch");
    let count = (OFFERED_BATCHES_PER_SEC * OFFERED_FOR.as_secs()) as usize;
    let every = Duration::from_secs(1) / OFFERED_BATCHES_PER_SEC as u32;
    let started = Instant::now();
    let cpu = chirp_cpu();
    let mut tasks = Vec::new();
    for n in 0..count {
        let due = started + every * n as u32;
        let (client, url) = (client.clone(), url.clone());
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep_until(due.into()).await;
            let first = n * BATCH;
            post_batch(&client, &url, "open", first..first + BATCH).await;
            due.elapsed()
        }));
    }
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.push(task.await.expect("batch task"));
    }
    let elapsed = started.elapsed();
    latencies.sort();
    let at = |p: f64| latencies[((latencies.len() - 1) as f64 * p).round() as usize];
    let messages = count * BATCH;
    println!(
        "14. accept, batches of {BATCH} offered at {} msg/s for {} s: {:.0} msg/s, batch latency p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms; chirp CPU {:.1} µs per message",
        OFFERED_BATCHES_PER_SEC as usize * BATCH,
        OFFERED_FOR.as_secs(),
        messages as f64 / elapsed.as_secs_f64(),
        at(0.5).as_secs_f64() * 1e3,
        at(0.99).as_secs_f64() * 1e3,
        latencies.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
        (chirp_cpu() - cpu).as_secs_f64() * 1e6 / messages as f64,
    );
}
