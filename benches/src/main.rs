//! `chirp-bench`: measures chirp on loopback.
//!
//! It starts a mock MyOperator API in this process, starts the `chirp`
//! binary on a fresh `surrealkv://` store (durable: every `202` has been
//! committed with fsync) with the MyOperator component, drives
//! `POST /api/notifications/send-message` with a fixed number of concurrent
//! keep-alive connections, and reports:
//!
//! 1. accept: delivery paused, how fast messages are accepted and the
//!    latency of each `202` (p50, p99, max);
//! 2. drain: delivery resumed on the same store, how fast the backlog
//!    reaches the mock through the WebAssembly component;
//! 3. mixed: accepting and draining at the same time;
//!
//! 4. hot swap: the time from a changed plugin file landing in the plugins
//!    directory to the new version serving;
//! 5. sandbox cost: one provider call through the sandbox (new store,
//!    instantiate, call, the host's HTTP function) against the same request
//!    made natively, both to the mock, one at a time;
//!
//! plus chirp's peak RSS and the store's size on disk. Every run is bounded
//! by its message count and a timeout, and stops by itself.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::post;
use serde_json::json;

struct Options {
    chirp: PathBuf,
    plugin: PathBuf,
    messages: usize,
    connections: usize,
    provider_latency: Duration,
}

fn usage() -> ! {
    eprintln!(
        "usage: chirp-bench --chirp PATH --plugin PATH [--messages N] [--connections N] [--provider-latency-ms N]"
    );
    std::process::exit(2)
}

fn parse_args() -> Options {
    let mut options = Options {
        chirp: PathBuf::from("target/release/chirp"),
        plugin: PathBuf::from("target/wasm32-wasip2/release/myoperator.wasm"),
        messages: 20_000,
        connections: 64,
        provider_latency: Duration::ZERO,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().unwrap_or_else(|| usage());
        match flag.as_str() {
            "--chirp" => options.chirp = value.into(),
            "--plugin" => options.plugin = value.into(),
            "--messages" => options.messages = value.parse().unwrap_or_else(|_| usage()),
            "--connections" => options.connections = value.parse().unwrap_or_else(|_| usage()),
            "--provider-latency-ms" => {
                options.provider_latency =
                    Duration::from_millis(value.parse().unwrap_or_else(|_| usage()))
            }
            _ => usage(),
        }
    }
    for path in [&options.chirp, &options.plugin] {
        if !path.exists() {
            eprintln!(
                "chirp-bench: {} does not exist (see BENCHMARKS.md)",
                path.display()
            );
            std::process::exit(2);
        }
    }
    options
}

#[tokio::main]
async fn main() {
    let options = parse_args();
    let work = tempfile::tempdir().expect("temp dir");
    let plugins = work.path().join("plugins");
    std::fs::create_dir_all(&plugins).expect("plugins dir");
    std::fs::copy(&options.plugin, plugins.join("myoperator.wasm")).expect("copy plugin");
    let store = work.path().join("store");
    let mock = Mock::start(options.provider_latency).await;

    println!(
        "chirp-bench: {} messages, {} connections, provider latency {:?}, store surrealkv (fsync on commit)",
        options.messages, options.connections, options.provider_latency
    );

    // 1. Accept only: delivery paused.
    let chirp = Chirp::start(&options, &plugins, &store, &mock, true);
    let accept = load(&chirp.base, options.messages, options.connections, "a").await;
    let accept_rss = chirp.peak_rss_kib();
    chirp.stop();
    accept.print("accept (delivery paused)");
    println!("  chirp peak RSS: {} MiB", accept_rss / 1024);
    let bytes = dir_size(&store);
    println!(
        "  store on disk: {:.1} MiB for {} messages ({:.0} MiB per million)",
        bytes as f64 / 1048576.0,
        options.messages,
        bytes as f64 / 1048576.0 * 1e6 / options.messages as f64
    );

    // 2. Drain the backlog through the WebAssembly component.
    let chirp = Chirp::start(&options, &plugins, &store, &mock, false);
    let started = Instant::now();
    let drained = mock
        .wait_for(options.messages as u64, Duration::from_secs(600))
        .await;
    let elapsed = started.elapsed();
    let drain_rss = chirp.peak_rss_kib();
    println!(
        "drain of the backlog: {} messages in {:.2} s = {:.0} msg/s (chirp peak RSS {} MiB)",
        drained,
        elapsed.as_secs_f64(),
        drained as f64 / elapsed.as_secs_f64(),
        drain_rss / 1024
    );

    // 3. Accept and drain together.
    let before = mock.count();
    let started = Instant::now();
    let mixed = load(&chirp.base, options.messages, options.connections, "m").await;
    let delivered = mock
        .wait_for(before + options.messages as u64, Duration::from_secs(600))
        .await
        - before;
    let elapsed = started.elapsed();
    mixed.print("accept while draining");
    println!(
        "  delivered {} in {:.2} s from the first request = {:.0} msg/s end to end (chirp peak RSS {} MiB)",
        delivered,
        elapsed.as_secs_f64(),
        delivered as f64 / elapsed.as_secs_f64(),
        chirp.peak_rss_kib() / 1024
    );

    // 4. Hot swap on the running server.
    hot_swap(&chirp, &plugins.join("myoperator.wasm")).await;
    chirp.stop();

    // 5. The sandbox's cost per call.
    sandbox_cost(&options.plugin, &mock, work.path()).await;
}

/// Rewrites the plugin file with a different custom section (same code, a
/// new sha256) five times and reports how long each took to serve.
async fn hot_swap(chirp: &Chirp, file: &Path) {
    let client = admin_client(1);
    let original = std::fs::read(file).expect("plugin file");
    let mut times = Vec::new();
    for n in 0..5u8 {
        let mut bytes = original.clone();
        // A custom section: id 0, size, name "bench", one payload byte.
        bytes.extend_from_slice(&[0, 7, 5, b'b', b'e', b'n', b'c', b'h', n]);
        let sha = sha256_hex(&bytes);
        let landed = Instant::now();
        std::fs::write(file, &bytes).expect("write plugin");
        loop {
            let list: serde_json::Value = serde_json::from_str(
                &client
                    .get(format!("{}/api/plugins", chirp.base))
                    .send()
                    .await
                    .expect("GET /api/plugins")
                    .text()
                    .await
                    .expect("body"),
            )
            .expect("json");
            let serving = list["items"].as_array().is_some_and(|items| {
                items
                    .iter()
                    .any(|row| row["sha256"] == sha.as_str() && row["state"] == "active")
            });
            if serving {
                break;
            }
            assert!(
                landed.elapsed() < Duration::from_secs(30),
                "swap never happened"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        times.push(landed.elapsed());
    }
    times.sort();
    println!(
        "hot swap (file written -> new version serving, 5 swaps, 200 ms of it is the write-settling debounce): median {:.0} ms, max {:.0} ms",
        times[2].as_secs_f64() * 1e3,
        times[4].as_secs_f64() * 1e3
    );
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// One provider call through the sandbox against the same HTTP request
/// made natively; sequential, so the difference is the sandbox's cost.
async fn sandbox_cost(plugin: &Path, mock: &Mock, work: &Path) {
    use chirp::config::PluginSettings;
    use chirp::plugins::{Limits, Plugins, bindings};
    use std::collections::HashMap;

    const CALLS: u32 = 2000;
    let env: HashMap<String, String> = [
        ("MYOPERATOR_API_KEY", "bench-token"),
        ("MYOPERATOR_ACCOUNT_ID", "bench-company"),
        ("MYOPERATOR_PHONE_NUMBER_ID", "bench-number"),
        ("MYOPERATOR_BASE_URL", mock.base.as_str()),
        ("CHIRP_SANDBOX_MYOPERATOR_ALLOW_PRIVATE", "true"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let settings = PluginSettings::new(env, HashMap::new(), HashMap::new());
    let plugins =
        Plugins::new(settings, Limits::default(), &work.join("sandbox-cache"), 4).expect("engine");
    plugins.sync_file(plugin).await.expect("load plugin");
    let message = |n: u32| bindings::Message {
        id: format!("bench-{n}"),
        recipient: "+919876543210".into(),
        text: "Order #1 confirmed".into(),
        template: Some(bindings::TemplateRef {
            name: "order_confirmation".into(),
            language: "en".into(),
            parameters: vec!["1".into(), "25 Nov".into(), "240".into()],
        }),
        idempotency_key: format!("bench-{n}"),
    };
    // Warm both paths (connection pools, caches).
    for n in 0..100 {
        let _ = plugins.send("myoperator", &message(n)).await;
    }
    let started = Instant::now();
    for n in 0..CALLS {
        let (_, answer) = plugins
            .send("myoperator", &message(n))
            .await
            .expect("loaded");
        assert!(
            matches!(answer, Ok(Ok(_))),
            "sandboxed send failed: {answer:?}"
        );
    }
    let sandboxed = started.elapsed() / CALLS;

    let client = reqwest::Client::new();
    let native = |n: u32| {
        let client = client.clone();
        let url = format!("{}/chat/messages", mock.base);
        async move {
            let body = json!({
                "phone_number_id": "bench-number",
                "customer_country_code": "91",
                "customer_number": "9876543210",
                "data": {"type": "template", "context": {
                    "template_name": "order_confirmation", "language": "en",
                    "body": {"1": "1", "2": "25 Nov", "3": "240"}}},
                "myop_ref_id": format!("bench-{n}"),
            });
            let response = client
                .post(url)
                .header("authorization", "Bearer bench-token")
                .header("x-myop-company-id", "bench-company")
                .header("content-type", "application/json")
                .body(body.to_string())
                .send()
                .await
                .expect("native send");
            let status = response.status();
            let answer: serde_json::Value =
                serde_json::from_slice(&response.bytes().await.expect("body")).expect("json");
            assert!(status.is_success() && answer["status"] == "success");
        }
    };
    for n in 0..100 {
        native(n).await;
    }
    let started = Instant::now();
    for n in 0..CALLS {
        native(n).await;
    }
    let direct = started.elapsed() / CALLS;
    println!(
        "sandbox cost ({CALLS} sequential sends, allocator {:?}): through the component {:.1} µs, native {:.1} µs, overhead {:.1} µs per send",
        plugins.allocator(),
        sandboxed.as_secs_f64() * 1e6,
        direct.as_secs_f64() * 1e6,
        (sandboxed.as_secs_f64() - direct.as_secs_f64()) * 1e6
    );
}

/// What one load run measured.
struct LoadReport {
    accepted: usize,
    errors: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

impl LoadReport {
    fn print(&self, name: &str) {
        let pct = |p: f64| {
            let i = ((self.latencies.len() as f64 - 1.0) * p).round() as usize;
            self.latencies.get(i).copied().unwrap_or_default()
        };
        println!(
            "{name}: {} accepted, {} errors in {:.2} s = {:.0} msg/s; latency p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            self.accepted,
            self.errors,
            self.elapsed.as_secs_f64(),
            self.accepted as f64 / self.elapsed.as_secs_f64(),
            pct(0.50).as_secs_f64() * 1e3,
            pct(0.99).as_secs_f64() * 1e3,
            self.latencies
                .last()
                .copied()
                .unwrap_or_default()
                .as_secs_f64()
                * 1e3,
        );
    }
}

const BENCH_SECRET: &str = "chirp-bench-secret-of-32-bytes-or-more";

/// An admin token for the benchmark's chirp.
fn admin_client(connections: usize) -> reqwest::Client {
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
        + 24 * 3600;
    let token = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &json!({"sub": "chirp-bench", "role": "admin", "exp": exp}),
        &jsonwebtoken::EncodingKey::from_secret(BENCH_SECRET.as_bytes()),
    )
    .expect("token");
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {token}").parse().expect("header"),
    );
    reqwest::Client::builder()
        .default_headers(headers)
        .pool_max_idle_per_host(connections)
        .build()
        .expect("http client")
}

/// Sends `messages` send-message requests over `connections` concurrent
/// keep-alive connections, as fast as chirp answers.
async fn load(base: &str, messages: usize, connections: usize, tag: &str) -> LoadReport {
    let client = admin_client(connections);
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let client = client.clone();
        let next = next.clone();
        let url = format!("{base}/api/notifications/send-message");
        let tag = tag.to_string();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut errors = 0;
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed) as usize;
                if n >= messages {
                    break;
                }
                let body = json!({
                    "phone": format!("+9198{:08}", n % 100_000_000),
                    "template": "order_confirmation",
                    "variables": {"order_id": format!("{tag}-{n}"), "delivery_date": "25 Nov", "total_amount": 240},
                    "reference_id": format!("{tag}-{n}"),
                });
                let sent = Instant::now();
                let response = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(body.to_string())
                    .send()
                    .await;
                match response {
                    Ok(r) if r.status().as_u16() == 202 => {
                        let _ = r.bytes().await;
                        latencies.push(sent.elapsed());
                    }
                    _ => errors += 1,
                }
            }
            (latencies, errors)
        }));
    }
    let mut latencies = Vec::with_capacity(messages);
    let mut errors = 0;
    for task in tasks {
        let (l, e) = task.await.expect("load task");
        latencies.extend(l);
        errors += e;
    }
    let elapsed = started.elapsed();
    latencies.sort();
    LoadReport {
        accepted: latencies.len(),
        errors,
        elapsed,
        latencies,
    }
}

/// A mock MyOperator API that answers success after a set latency and
/// counts what it received.
struct Mock {
    base: String,
    received: Arc<AtomicU64>,
}

impl Mock {
    async fn start(latency: Duration) -> Mock {
        let received = Arc::new(AtomicU64::new(0));
        let counter = received.clone();
        let app = Router::new().route(
            "/chat/messages",
            post(move || {
                let counter = counter.clone();
                async move {
                    if !latency.is_zero() {
                        tokio::time::sleep(latency).await;
                    }
                    let n = counter.fetch_add(1, Ordering::Relaxed) + 1;
                    axum::Json(
                        json!({"status": "success", "data": {"message_id": format!("wamid.{n}")}}),
                    )
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind mock");
        let base = format!("http://{}", listener.local_addr().expect("mock addr"));
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Mock { base, received }
    }

    fn count(&self) -> u64 {
        self.received.load(Ordering::Relaxed)
    }

    /// Waits until the mock has received `n` requests (or `timeout`).
    async fn wait_for(&self, n: u64, timeout: Duration) -> u64 {
        let deadline = Instant::now() + timeout;
        while self.count() < n && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        self.count()
    }
}

/// The chirp process under test.
struct Chirp {
    child: Child,
    base: String,
}

impl Chirp {
    fn start(options: &Options, plugins: &Path, store: &Path, mock: &Mock, paused: bool) -> Chirp {
        use std::io::{BufRead, BufReader};
        let mut child = Command::new(&options.chirp)
            .env_clear()
            .env("CHIRP_LISTEN", "127.0.0.1:0")
            .env("CHIRP_DB", format!("surrealkv://{}", store.display()))
            .env("CHIRP_PLUGINS_DIR", plugins)
            .env("CHIRP_TEMPLATES_DIR", templates_dir())
            .env(
                "CHIRP_PAUSE_DELIVERY",
                if paused { "true" } else { "false" },
            )
            .env("CHIRP_LOG", "warn")
            .env("CHIRP_JWT_SECRET", BENCH_SECRET)
            // The mock has no per-number limit; measure chirp, not the pacing.
            .env("CHIRP_PROVIDER_RATE", "1000000")
            .env("MYOPERATOR_API_KEY", "bench-token")
            .env("MYOPERATOR_ACCOUNT_ID", "bench-company")
            .env("MYOPERATOR_PHONE_NUMBER_ID", "bench-number")
            .env("MYOPERATOR_BASE_URL", &mock.base)
            // The mock is on loopback, which plugins reach only when allowed.
            .env("CHIRP_SANDBOX_MYOPERATOR_ALLOW_PRIVATE", "true")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start chirp");
        let stdout = child.stdout.take().expect("chirp stdout");
        let mut lines = BufReader::new(stdout).lines();
        let base = loop {
            match lines.next() {
                Some(Ok(line)) => {
                    if let Some(url) = line.strip_prefix("chirp listening on ") {
                        break url.to_string();
                    }
                }
                _ => panic!("chirp exited before listening"),
            }
        };
        Chirp { child, base }
    }

    /// Peak resident set size (VmHWM) in KiB.
    fn peak_rss_kib(&self) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("VmHWM:"))
                    .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
            })
            .unwrap_or(0)
    }

    /// SIGTERM, then wait for a clean exit.
    fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

fn templates_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../templates")
}

fn dir_size(path: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_size(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}
