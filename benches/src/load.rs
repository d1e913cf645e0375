//! The load generator: `POST /api/notifications/send-message` over a set of
//! keep-alive connections, as fast as chirp answers or at a fixed rate,
//! recording every `202` (its idempotency key, message id and latency).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;

/// What to send.
#[derive(Clone)]
pub struct Spec {
    /// How many requests (an upper bound when `stop` ends the run first).
    pub messages: usize,
    pub connections: usize,
    /// Requests per second; `None`: as fast as chirp answers.
    pub rate: Option<f64>,
    /// Prefix of every idempotency key, so that runs do not collide.
    pub tag: String,
}

/// One accepted message.
#[derive(Debug, Clone)]
pub struct Accepted {
    pub key: String,
    pub id: String,
    /// When the request was due (sent, at full speed).
    pub sent_at: Instant,
}

/// One request answered with an error: its idempotency key, and the
/// error's `code` (empty when chirp gave no answer or no JSON).
#[derive(Debug, Clone)]
pub struct Refusal {
    pub key: String,
    pub code: String,
}

/// What one run measured.
pub struct Report {
    pub accepted: Vec<Accepted>,
    /// Answers other than `202`, by status (0: no answer at all).
    pub refused: Vec<(u16, u64)>,
    /// Every answer other than `202`, one by one.
    pub refusals: Vec<Refusal>,
    pub elapsed: Duration,
    /// Sorted. With a fixed rate, measured from when the request was due,
    /// so a stall shows up as latency rather than as fewer requests.
    pub latencies: Vec<Duration>,
}

impl Report {
    pub fn percentile(&self, p: f64) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        let i = ((self.latencies.len() as f64 - 1.0) * p).round() as usize;
        self.latencies[i]
    }

    pub fn rate(&self) -> f64 {
        self.accepted.len() as f64 / self.elapsed.as_secs_f64()
    }

    pub fn refused_total(&self) -> u64 {
        self.refused.iter().map(|(_, n)| n).sum()
    }

    pub fn print(&self, name: &str) {
        println!(
            "{name}: {} accepted, {} refused in {:.2} s = {:.0} msg/s; latency p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            self.accepted.len(),
            self.refused_total(),
            self.elapsed.as_secs_f64(),
            self.rate(),
            self.percentile(0.50).as_secs_f64() * 1e3,
            self.percentile(0.99).as_secs_f64() * 1e3,
            self.latencies
                .last()
                .copied()
                .unwrap_or_default()
                .as_secs_f64()
                * 1e3,
        );
    }
}

/// A client that carries an admin token for chirp runs started with
/// [`crate::process::SECRET`].
pub fn admin_client(connections: usize) -> reqwest::Client {
    let token = crate::process::admin_token("chirp-bench");
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {token}").parse().expect("header"),
    );
    reqwest::Client::builder()
        .default_headers(headers)
        .pool_max_idle_per_host(connections)
        .timeout(Duration::from_secs(30))
        .build()
        .expect("http client")
}

/// The body of message `n` of a run tagged `tag`.
pub fn message_body(tag: &str, n: usize) -> serde_json::Value {
    json!({
        "phone": format!("+9198{:08}", n % 100_000_000),
        "template": "order_confirmation",
        "variables": {"order_id": format!("{tag}-{n}"), "delivery_date": "25 Nov", "total_amount": 240},
        "reference_id": format!("{tag}-{n}"),
        "idempotency_key": format!("{tag}-{n}"),
    })
}

/// Runs `spec` against chirp at `base` until every request is made or
/// `stop` is raised. Connection failures (chirp down) count as refused
/// with status 0 and are not retried: what matters is what got a `202`.
pub async fn drive(base: &str, spec: &Spec, stop: Option<Arc<AtomicBool>>) -> Report {
    let client = admin_client(spec.connections);
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..spec.connections {
        let client = client.clone();
        let next = next.clone();
        let stop = stop.clone();
        let url = format!("{base}/api/notifications/send-message");
        let spec = spec.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut accepted = Vec::new();
            let mut refused: Vec<(u16, u64)> = Vec::new();
            let mut refusals = Vec::new();
            loop {
                if stop.as_ref().is_some_and(|s| s.load(Ordering::Relaxed)) {
                    break;
                }
                let n = next.fetch_add(1, Ordering::Relaxed) as usize;
                if n >= spec.messages {
                    break;
                }
                let due = match spec.rate {
                    Some(rate) => {
                        let due = started + Duration::from_secs_f64(n as f64 / rate);
                        tokio::time::sleep_until(due.into()).await;
                        due
                    }
                    None => Instant::now(),
                };
                let body = message_body(&spec.tag, n);
                let key = format!("{}-{n}", spec.tag);
                let response = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(body.to_string())
                    .send()
                    .await;
                let (status, code) = match response {
                    Ok(r) => {
                        let status = r.status().as_u16();
                        let answer: serde_json::Value =
                            serde_json::from_slice(&r.bytes().await.unwrap_or_default())
                                .unwrap_or_default();
                        if status == 202
                            && let Some(id) = answer["id"].as_str()
                        {
                            latencies.push(due.elapsed());
                            accepted.push(Accepted {
                                key,
                                id: id.to_string(),
                                sent_at: due,
                            });
                            continue;
                        }
                        (status, answer["code"].as_str().unwrap_or("").to_string())
                    }
                    Err(_) => (0, String::new()),
                };
                refusals.push(Refusal { key, code });
                match refused.iter_mut().find(|(s, _)| *s == status) {
                    Some((_, count)) => *count += 1,
                    None => refused.push((status, 1)),
                }
                if status == 0 {
                    // chirp is down: do not spin.
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
            (latencies, accepted, refused, refusals)
        }));
    }
    let mut report = Report {
        accepted: Vec::with_capacity(spec.messages.min(1 << 20)),
        refused: Vec::new(),
        refusals: Vec::new(),
        elapsed: Duration::ZERO,
        latencies: Vec::with_capacity(spec.messages.min(1 << 20)),
    };
    for task in tasks {
        let (latencies, accepted, refused, refusals) = task.await.expect("load task");
        report.latencies.extend(latencies);
        report.accepted.extend(accepted);
        report.refusals.extend(refusals);
        for (status, n) in refused {
            match report.refused.iter_mut().find(|(s, _)| *s == status) {
                Some((_, count)) => *count += n,
                None => report.refused.push((status, n)),
            }
        }
    }
    report.elapsed = started.elapsed();
    report.latencies.sort();
    report
}
