//! A mock MyOperator API on 127.0.0.1 for benchmarks and the reliability
//! suite: a small HTTP/1.1 server of its own (not a framework) so that it
//! can misbehave the ways real networks do: answer late, reset the
//! connection, trickle a body, send broken JSON.
//!
//! It records, per idempotency key (`myop_ref_id`), how many requests came
//! and how many were answered with success: a key answered with success
//! twice is a duplicate delivery.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// A way to fail one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Answer only after `after` (longer than the plugin's HTTP timeout).
    Timeout { after: Duration },
    /// Close the connection with a TCP reset, no answer.
    Reset,
    /// `500` with a JSON error.
    ServerError,
    /// `429` with `Retry-After: seconds`.
    RateLimited { retry_after_secs: u64 },
    /// `200` headers at once, then the body one byte every 100 ms.
    SlowBody,
    /// `200` with a body that is not JSON.
    Malformed,
    /// `400` with MyOperator's empty-wallet code (permanent).
    Chat4001,
}

/// How the mock answers.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    /// Wait before each successful answer.
    pub latency: Duration,
    /// Every n-th request (n > 0) gets a `500`; 0: never.
    pub fail_every: u64,
    /// The first `times` requests of each key get `fault`.
    pub fault: Option<(Fault, u32)>,
}

impl Plan {
    pub fn success() -> Plan {
        Plan {
            latency: Duration::ZERO,
            fail_every: 0,
            fault: None,
        }
    }
}

#[derive(Default)]
struct Keys {
    /// Requests per key, with when each arrived.
    requests: HashMap<String, Vec<Instant>>,
    /// Successful answers per key.
    delivered: HashMap<String, u32>,
    /// When each key was first answered with success.
    first_delivered: HashMap<String, Instant>,
}

struct State {
    plan: Mutex<Plan>,
    received: AtomicU64,
    succeeded: AtomicU64,
    keys: Mutex<Keys>,
}

/// A running mock; it lives as long as the process.
#[derive(Clone)]
pub struct Mock {
    pub base: String,
    state: Arc<State>,
}

impl Mock {
    pub async fn start(plan: Plan) -> Mock {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind mock");
        let base = format!("http://{}", listener.local_addr().expect("mock addr"));
        let state = Arc::new(State {
            plan: Mutex::new(plan),
            received: AtomicU64::new(0),
            succeeded: AtomicU64::new(0),
            keys: Mutex::new(Keys::default()),
        });
        let shared = state.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let _ = stream.set_nodelay(true);
                tokio::spawn(serve(stream, shared.clone()));
            }
        });
        Mock { base, state }
    }

    pub fn set_plan(&self, plan: Plan) {
        *self.state.plan.lock().expect("plan") = plan;
    }

    /// Requests received (any answer).
    pub fn received(&self) -> u64 {
        self.state.received.load(Ordering::Relaxed)
    }

    /// Requests answered with success.
    pub fn count(&self) -> u64 {
        self.state.succeeded.load(Ordering::Relaxed)
    }

    /// Waits until `n` requests were answered with success (or `timeout`).
    pub async fn wait_for(&self, n: u64, timeout: Duration) -> u64 {
        let deadline = Instant::now() + timeout;
        while self.count() < n && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        self.count()
    }

    /// Successful answers per key.
    pub fn delivered(&self) -> HashMap<String, u32> {
        self.state.keys.lock().expect("keys").delivered.clone()
    }

    /// When each key was first answered with success.
    pub fn first_delivered(&self) -> HashMap<String, Instant> {
        self.state
            .keys
            .lock()
            .expect("keys")
            .first_delivered
            .clone()
    }

    /// When each request of `key` arrived.
    pub fn requests_of(&self, key: &str) -> Vec<Instant> {
        self.state
            .keys
            .lock()
            .expect("keys")
            .requests
            .get(key)
            .cloned()
            .unwrap_or_default()
    }
}

/// One request as far as the mock cares.
struct Request {
    key: String,
}

async fn read_request(reader: &mut BufReader<TcpStream>) -> Option<Request> {
    let mut line = String::new();
    let mut length = 0usize;
    // Request line and headers.
    let mut first = true;
    loop {
        line.clear();
        if reader.read_line(&mut line).await.ok()? == 0 {
            return None;
        }
        let trimmed = line.trim_end();
        if first {
            first = false;
            continue;
        }
        if trimmed.is_empty() {
            break;
        }
        if let Some((name, value)) = trimmed.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().ok()?;
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).await.ok()?;
    let key = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v["myop_ref_id"].as_str().map(str::to_string))
        .unwrap_or_default();
    Some(Request { key })
}

fn response(status: &str, extra_headers: &str, body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n{extra_headers}\r\n{body}",
        body.len()
    )
    .into_bytes()
}

async fn serve(stream: TcpStream, state: Arc<State>) {
    let mut reader = BufReader::new(stream);
    while let Some(request) = read_request(&mut reader).await {
        let n = state.received.fetch_add(1, Ordering::Relaxed) + 1;
        let plan = *state.plan.lock().expect("plan");
        let seen = {
            let mut keys = state.keys.lock().expect("keys");
            let list = keys.requests.entry(request.key.clone()).or_default();
            list.push(Instant::now());
            list.len() as u32
        };
        let fault = match plan.fault {
            Some((fault, times)) if seen <= times => Some(fault),
            _ if plan.fail_every > 0 && n.is_multiple_of(plan.fail_every) => {
                Some(Fault::ServerError)
            }
            _ => None,
        };
        let stream = reader.get_mut();
        match fault {
            None => {
                if !plan.latency.is_zero() {
                    tokio::time::sleep(plan.latency).await;
                }
                let id = state.succeeded.fetch_add(1, Ordering::Relaxed) + 1;
                {
                    let mut keys = state.keys.lock().expect("keys");
                    keys.first_delivered
                        .entry(request.key.clone())
                        .or_insert_with(Instant::now);
                    *keys.delivered.entry(request.key).or_default() += 1;
                }
                let body =
                    json!({"status": "success", "data": {"message_id": format!("wamid.{id}")}});
                if stream
                    .write_all(&response("200 OK", "", &body.to_string()))
                    .await
                    .is_err()
                {
                    return;
                }
            }
            Some(Fault::Timeout { after }) => {
                tokio::time::sleep(after).await;
                let _ = stream
                    .write_all(&response("504 Gateway Timeout", "", "{}"))
                    .await;
                return;
            }
            Some(Fault::Reset) => {
                let _ = stream.set_zero_linger();
                return;
            }
            Some(Fault::ServerError) => {
                let body = r#"{"status":"error","message":"internal error"}"#;
                if stream
                    .write_all(&response("500 Internal Server Error", "", body))
                    .await
                    .is_err()
                {
                    return;
                }
            }
            Some(Fault::RateLimited { retry_after_secs }) => {
                let body = r#"{"status":"error","message":"too many requests"}"#;
                let header = format!("retry-after: {retry_after_secs}\r\n");
                if stream
                    .write_all(&response("429 Too Many Requests", &header, body))
                    .await
                    .is_err()
                {
                    return;
                }
            }
            Some(Fault::SlowBody) => {
                let body = r#"{"status":"success","data":{"message_id":"slow"}}"#;
                let head = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
                    body.len()
                );
                if stream.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                for byte in body.bytes() {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    if stream.write_all(&[byte]).await.is_err() {
                        return;
                    }
                }
                return;
            }
            Some(Fault::Malformed) => {
                if stream
                    .write_all(&response("200 OK", "", "{\"status\": \"succ"))
                    .await
                    .is_err()
                {
                    return;
                }
            }
            Some(Fault::Chat4001) => {
                let body = r#"{"status":"error","code":"CHAT_4001","message":"insufficient wallet balance"}"#;
                if stream
                    .write_all(&response("400 Bad Request", "", body))
                    .await
                    .is_err()
                {
                    return;
                }
            }
        }
    }
}
