//! Scenario 15: what a marketing blast does to transactional messages.
//! chirp paces the provider at WhatsApp's 80 messages a second; order
//! confirmations are offered open loop at a fixed rate, first with the
//! queue empty, then, round after round, while a backlog of marketing
//! messages (accepted in batches beforehand) drains at that pacing. Each
//! confirmation's latency runs from its request to its arrival at the
//! provider (the mock's first success for its key); per round the p50,
//! p99 and max, the marketing messages the provider got meanwhile, and
//! chirp's CPU per message sent.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;

use chirp_harness::mock::faulty::Mock;

use crate::load::{admin_client, message_body};
use crate::spread;

/// Rounds with the backlog draining.
const ROUNDS: usize = 5;
/// Confirmations offered per second.
const OFFERED_PER_SEC: u32 = 5;
/// How long each round offers them.
const ROUND: Duration = Duration::from_secs(60);
/// Marketing messages per batch request when filling the backlog.
const FILL_BATCH: usize = 1_000;

/// One round's figures.
struct Round {
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    marketing_per_sec: f64,
    cpu_us_per_sent: f64,
}

/// Runs the scenario against chirp at `base` (pacing the provider at 80/s
/// and sending marketing at any hour) delivering to `mock`.
pub async fn run(base: &str, mock: &Mock, chirp_cpu: impl Fn() -> Duration, backlog: usize) {
    let empty = round(base, mock, &chirp_cpu, "alone").await;
    print("no backlog", &[empty]);
    let started = Instant::now();
    fill(base, backlog).await;
    println!(
        "15. {backlog} marketing messages accepted in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let mut rounds = Vec::new();
    for n in 0..ROUNDS {
        rounds.push(round(base, mock, &chirp_cpu, &format!("blast-{n}")).await);
    }
    print(&format!("{backlog} marketing messages draining"), &rounds);
}

fn print(what: &str, rounds: &[Round]) {
    println!(
        "15. order confirmations offered at {OFFERED_PER_SEC}/s for {} s, {what} ({} round(s)): accept to provider p50 {} ms, p99 {} ms, max {} ms; marketing reaching the provider {} msg/s; chirp CPU {} µs per message sent",
        ROUND.as_secs(),
        rounds.len(),
        spread(rounds.iter().map(|r| r.p50_ms), 0),
        spread(rounds.iter().map(|r| r.p99_ms), 0),
        spread(rounds.iter().map(|r| r.max_ms), 0),
        spread(rounds.iter().map(|r| r.marketing_per_sec), 1),
        spread(rounds.iter().map(|r| r.cpu_us_per_sent), 0),
    );
}

/// Accepts `backlog` marketing messages in batches.
async fn fill(base: &str, backlog: usize) {
    let client = admin_client(4);
    let url = format!("{base}/api/notifications/batch");
    let mut first = 0;
    while first < backlog {
        let last = (first + FILL_BATCH).min(backlog);
        let messages: Vec<serde_json::Value> = (first..last)
            .map(|n| {
                json!({"phone": format!("+9197{:08}", n % 100_000_000),
                       "template": "new_product",
                       "variables": {"product": "A2 ghee", "availability_date": "1 Dec"},
                       "idempotency_key": format!("marketing-{n}")})
            })
            .collect();
        crate::batch_accept::post_messages(&client, &url, messages).await;
        first = last;
    }
}

/// Offers confirmations open loop for [`ROUND`]; waits for each to reach
/// the provider.
async fn round(base: &str, mock: &Mock, chirp_cpu: &impl Fn() -> Duration, tag: &str) -> Round {
    let client = admin_client(16);
    let url = format!("{base}/api/notifications/send-message");
    let count = (OFFERED_PER_SEC as u64 * ROUND.as_secs()) as usize;
    let every = Duration::from_secs(1) / OFFERED_PER_SEC;
    let sent_before = mock.count();
    let cpu = chirp_cpu();
    let started = Instant::now();
    let asked = Arc::new(std::sync::Mutex::new(HashMap::new()));
    let mut tasks = Vec::new();
    for n in 0..count {
        let due = started + every * n as u32;
        let (client, url, asked) = (client.clone(), url.clone(), asked.clone());
        let body = message_body(tag, n);
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep_until(due.into()).await;
            let key = body["idempotency_key"].as_str().expect("key").to_string();
            asked.lock().expect("asked").insert(key, Instant::now());
            let status = client
                .post(&url)
                .header("content-type", "application/json")
                .body(body.to_string())
                .send()
                .await
                .expect("POST send-message")
                .status();
            assert_eq!(status.as_u16(), 202, "a confirmation was refused");
        }));
    }
    for task in tasks {
        task.await.expect("send task");
    }
    // Every confirmation reaches the provider (or the round says so).
    let deadline = Instant::now() + Duration::from_secs(120);
    let latencies = loop {
        let delivered = mock.first_delivered();
        let asked = asked.lock().expect("asked").clone();
        let latencies: Vec<Duration> = asked
            .iter()
            .filter_map(|(key, at)| delivered.get(key).map(|got| got.duration_since(*at)))
            .collect();
        if latencies.len() == asked.len() || Instant::now() > deadline {
            assert_eq!(
                latencies.len(),
                asked.len(),
                "confirmations never reached the provider"
            );
            break latencies;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let elapsed = started.elapsed();
    let sent = mock.count() - sent_before;
    let mut latencies = latencies;
    latencies.sort();
    let at = |p: f64| latencies[((latencies.len() - 1) as f64 * p).round() as usize];
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    Round {
        p50_ms: ms(at(0.5)),
        p99_ms: ms(at(0.99)),
        max_ms: ms(latencies[latencies.len() - 1]),
        marketing_per_sec: sent.saturating_sub(count as u64) as f64 / elapsed.as_secs_f64(),
        cpu_us_per_sent: (chirp_cpu() - cpu).as_secs_f64() * 1e6 / sent.max(1) as f64,
    }
}
