//! `chirp-bench`: measures chirp on loopback and prints every figure.
//!
//! It starts a mock MyOperator API in this process and the release `chirp`
//! binary on fresh `surrealkv://` stores (durable: every `202` has been
//! committed with fsync) with the MyOperator component, and runs:
//!
//! 1. accept only (delivery paused): a backlog of `--backlog` messages at
//!    full speed, then `--messages` at a fixed rate (`--rate`);
//! 2. drain of that backlog through the WebAssembly component, with chirp's
//!    memory sampled as it goes (is it flat?);
//! 3. accept and drain together;
//! 4. the same with 10% of provider calls answered `500` (retries folded
//!    in);
//! 5. a drain against a provider that takes 200 ms per call;
//! 6. accept and drain with the provider plugin hot-swapped every 5 s;
//! 7. the send step through the sandbox against the same send done
//!    natively in Rust, one at a time and 64 at once;
//! 8. Apprise, installed by this command into a virtual environment,
//!    sending the same number of messages to the same mock through its JSON
//!    webhook target (skipped with `--no-apprise` or without `python3`);
//! 9. the queue's store work alone, in this process: `--backlog` messages
//!    inserted, claimed and completed in chirp's batches, with no HTTP and
//!    no provider (how much of a drain is the store's);
//! 10. the same drain through chirp's scheduler in this process, in turns
//!     through the component and through the same send written natively
//!     (`--messages` per round; what the sandbox costs in a whole drain);
//! 11. the retention job: its own rate and CPU redacting and deleting
//!     `--messages` messages, and accepting as many alone against while
//!     the job runs;
//! 12. the first start on a layout 1 store of `--backlog` messages (the
//!     upgrade) against a start on today's layout;
//! 13. webhook receipts (delivered and read for `--messages` sent
//!     messages) stored as the route stores them, then applied;
//! 14. accepting in batches against one request per message, and what
//!     status callbacks cost;
//! 15. order confirmations offered open loop while `--backlog` marketing
//!     messages drain at 80 a second (the queue's lanes).
//!
//! plus chirp's peak RSS and the store's size on disk. Every run is bounded
//! by its message count and a timeout, and stops by itself.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use chirp_bench::load::{self, Spec, admin_client};
use chirp_bench::process::{ChirpProcess, Setup, dir_size, free_port};
use chirp_bench::sha256_hex;
use chirp_bench::surreal_server::SurrealServer;
use chirp_harness::mock::faulty::{Mock, Plan};
use serde_json::json;

/// chirp's allocator, so that scenario 7 (the component host run in this
/// process) allocates as chirp does.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// chirp-bench: accept and drain rates on loopback against a mock
/// MyOperator (BENCHMARKS.md).
#[derive(clap::Parser)]
struct Options {
    /// The chirp binary to measure.
    #[arg(long, default_value = "target/release/chirp")]
    chirp: PathBuf,
    /// The MyOperator component.
    #[arg(long, default_value = "target/wasm32-wasip2/release/myoperator.wasm")]
    plugin: PathBuf,
    /// Messages queued before the drain scenarios start.
    #[arg(long, default_value_t = 100_000)]
    backlog: usize,
    /// Messages per accept scenario.
    #[arg(long, default_value_t = 20_000)]
    messages: usize,
    /// Client connections.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// The offered rate of the open-loop scenario, messages per second.
    #[arg(long, default_value_t = 2_000.0)]
    rate: f64,
    /// Skip the comparison with Apprise.
    #[arg(long = "no-apprise", action = clap::ArgAction::SetFalse)]
    apprise: bool,
    /// Scenario numbers to run, e.g. 1,5,7 (all when not given).
    #[arg(long, value_delimiter = ',')]
    only: Vec<u8>,
    /// Run chirp on a SurrealDB server (`ws://`) started from this binary,
    /// one per scenario, instead of on its embedded store.
    #[arg(long)]
    surreal: Option<PathBuf>,
}

impl Options {
    fn runs(&self, scenario: u8) -> bool {
        // 7 to 13 do not use chirp's store through a server.
        let fits_store = self.surreal.is_none() || scenario <= 6;
        fits_store && (self.only.is_empty() || self.only.contains(&scenario))
    }
}

fn parse_args() -> Options {
    let options = <Options as clap::Parser>::parse();
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

/// A fresh store and plugins directory for one scenario, and the SurrealDB
/// server on that store with `--surreal`.
struct Stage {
    plugins: PathBuf,
    store: PathBuf,
    server: Option<SurrealServer>,
    /// Dropped last: the server runs on a directory in it.
    _dir: tempfile::TempDir,
}

impl Stage {
    fn new(options: &Options) -> Stage {
        let dir = tempfile::tempdir().expect("temp dir");
        let plugins = dir.path().join("plugins");
        std::fs::create_dir_all(&plugins).expect("plugins dir");
        std::fs::copy(&options.plugin, plugins.join("myoperator.wasm")).expect("copy plugin");
        let store = dir.path().join("store");
        let server = options.surreal.as_ref().map(|binary| {
            SurrealServer::start(
                binary,
                &format!("surrealkv://{}", store.display()),
                free_port(),
                &dir.path().join("surreal.log"),
            )
            .unwrap_or_else(|e| panic!("{e}"))
        });
        Stage {
            plugins,
            store,
            server,
            _dir: dir,
        }
    }

    fn setup(&self, options: &Options, mock: &Mock) -> Setup {
        let embedded = format!("surrealkv://{}", self.store.display());
        let setup = match &self.server {
            None => Setup::new(&options.chirp, &self.plugins, embedded, &mock.base),
            Some(server) => server.chirp_setup(&options.chirp, &self.plugins, &mock.base),
        };
        setup
            // Retries within the run rather than minutes later.
            .set("CHIRP_RETRY_BACKOFF", "200ms")
            // Scenario 4 makes thousands of expected retries, each a warning.
            .set("CHIRP_LOG", "error")
    }

    /// With `--surreal`: the server's peak RSS, to print beside chirp's.
    fn server_rss(&self) -> String {
        self.server.as_ref().map_or_else(String::new, |server| {
            format!(
                "; the SurrealDB server's: {} MiB",
                mib(server.peak_rss_kib())
            )
        })
    }
}

fn start(setup: &Setup) -> ChirpProcess {
    setup.start().unwrap_or_else(|e| panic!("{e}"))
}

fn spec(messages: usize, options: &Options, tag: &str, rate: Option<f64>) -> Spec {
    Spec {
        messages,
        connections: options.connections,
        rate,
        tag: tag.into(),
    }
}

fn mib(kib: u64) -> u64 {
    kib / 1024
}

/// Messages chirp still has to finish (`queued` + `sending`) and those
/// that ended `failed`, from its statistics; `None` if it did not answer.
async fn open_and_failed(client: &reqwest::Client, base: &str) -> Option<(u64, u64)> {
    let answer = client
        .get(format!("{base}/api/notifications/statistics"))
        .send()
        .await
        .ok()?;
    let stats: serde_json::Value = serde_json::from_slice(&answer.bytes().await.ok()?).ok()?;
    let count = |keys: &[&str]| -> u64 {
        stats["by_status"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|c| keys.iter().any(|k| c["key"] == *k))
            .map(|c| c["count"].as_u64().unwrap_or(0))
            .sum()
    };
    Some((count(&["queued", "sending"]), count(&["failed"])))
}

/// What a drain saw.
struct Drained {
    /// Successes at the mock (all of them, not only this drain's).
    delivered: u64,
    /// Messages chirp gave up on (`failed`), from its statistics.
    failed: u64,
    /// When the last delivery happened.
    finished: Instant,
    /// chirp's RSS in KiB, every 250 ms.
    rss_samples: Vec<u64>,
}

/// Waits until the mock counts `target` successes or chirp has nothing
/// left to do (messages that failed every attempt never reach the mock),
/// sampling chirp's RSS every 250 ms.
async fn drain(chirp: &ChirpProcess, mock: &Mock, target: u64, timeout: Duration) -> Drained {
    let client = admin_client(1);
    let started = Instant::now();
    let mut rss_samples = Vec::new();
    let mut last = (mock.count(), started);
    let mut failed = 0;
    while mock.count() < target && started.elapsed() < timeout {
        rss_samples.push(chirp.rss_kib());
        tokio::time::sleep(Duration::from_millis(250)).await;
        let count = mock.count();
        if count != last.0 {
            last = (count, Instant::now());
        } else if last.1.elapsed() > Duration::from_secs(1)
            && let Some((open, gave_up)) = open_and_failed(&client, &chirp.base).await
        {
            failed = gave_up;
            if open == 0 {
                break;
            }
        }
    }
    if mock.count() >= target {
        last.1 = Instant::now();
    }
    Drained {
        delivered: mock.count(),
        failed,
        finished: last.1,
        rss_samples,
    }
}

/// Percentile `p` of sorted `values`.
fn percentile(values: &[Duration], p: f64) -> Duration {
    if values.is_empty() {
        return Duration::ZERO;
    }
    values[((values.len() - 1) as f64 * p).round() as usize]
}

/// Accepts `messages` and waits for all of them to reach the mock (or to
/// fail every attempt); prints the accept figures, the end-to-end rate and
/// the end-to-end latency (request to the mock's first success).
async fn accept_and_drain(
    name: &str,
    chirp: &ChirpProcess,
    mock: &Mock,
    messages: usize,
    options: &Options,
) {
    let before = mock.count();
    let calls_before = mock.received();
    let started = Instant::now();
    // chirp's RSS is sampled while accepting as well as while draining
    // afterwards: when delivery keeps up, nothing is left to drain.
    let mut rss_max_kib = 0;
    let plan = spec(messages, options, name, None);
    let accepting = load::drive(&chirp.base, &plan, None);
    tokio::pin!(accepting);
    let report = loop {
        tokio::select! {
            report = &mut accepting => break report,
            _ = tokio::time::sleep(Duration::from_millis(250)) => {
                rss_max_kib = rss_max_kib.max(chirp.rss_kib());
            }
        }
    };
    let accepted = report.accepted.len() as u64;
    let drained = drain(chirp, mock, before + accepted, Duration::from_secs(900)).await;
    let rss_max_kib = rss_max_kib.max(drained.rss_samples.iter().copied().max().unwrap_or(0));
    let elapsed = drained.finished - started;
    let delivered = drained.delivered - before;
    let first = mock.first_delivered();
    let mut latencies: Vec<Duration> = report
        .accepted
        .iter()
        .filter_map(|a| {
            first
                .get(&a.key)
                .map(|at| at.saturating_duration_since(a.sent_at))
        })
        .collect();
    latencies.sort();
    report.print(&format!("{name}: accept"));
    println!(
        "{name}: delivered {delivered} of {accepted} accepted ({} failed every attempt) in {:.2} s from the first request = {:.0} msg/s end to end; end-to-end latency p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms; provider calls {} ({} answered with an error); chirp RSS max {} MiB, peak {} MiB",
        drained.failed,
        elapsed.as_secs_f64(),
        delivered as f64 / elapsed.as_secs_f64(),
        percentile(&latencies, 0.50).as_secs_f64() * 1e3,
        percentile(&latencies, 0.99).as_secs_f64() * 1e3,
        latencies.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
        mock.received() - calls_before,
        (mock.received() - calls_before) - delivered,
        mib(rss_max_kib),
        mib(chirp.peak_rss_kib()),
    );
}

#[tokio::main]
async fn main() {
    let options = parse_args();
    println!(
        "chirp-bench: backlog {}, messages {}, {} connections, fixed rate {}/s, store {} (fsync on commit)",
        options.backlog,
        options.messages,
        options.connections,
        options.rate,
        if options.surreal.is_some() {
            "a SurrealDB server over ws:// on loopback, on surrealkv (scenarios 1-6 only)"
        } else {
            "surrealkv, embedded"
        }
    );

    // 1. Accept only, then 2. drain the backlog, then 3. both at once.
    if options.runs(1) || options.runs(2) || options.runs(3) {
        let stage = Stage::new(&options);
        let mock = Mock::start(Plan::success()).await;
        let mut setup = stage.setup(&options, &mock);
        setup.paused = true;
        let chirp = start(&setup);
        let cpu_before = chirp.cpu();
        let backlog = load::drive(
            &chirp.base,
            &spec(options.backlog, &options, "a", None),
            None,
        )
        .await;
        let backlog_cpu = chirp.cpu() - cpu_before;
        backlog.print("1. accept, delivery paused, full speed");
        println!(
            "   chirp CPU per accepted message: {:.1} µs",
            per_message(backlog_cpu, backlog.accepted.len())
        );
        let cpu_before = chirp.cpu();
        let fixed = load::drive(
            &chirp.base,
            &spec(options.messages, &options, "f", Some(options.rate)),
            None,
        )
        .await;
        let fixed_cpu = chirp.cpu() - cpu_before;
        fixed.print(&format!(
            "1. accept, delivery paused, fixed rate {}/s",
            options.rate
        ));
        println!(
            "   chirp CPU per accepted message: {:.1} µs",
            per_message(fixed_cpu, fixed.accepted.len())
        );
        println!(
            "   chirp peak RSS while accepting: {} MiB{}",
            mib(chirp.peak_rss_kib()),
            stage.server_rss()
        );
        chirp.stop();
        let total = (backlog.accepted.len() + fixed.accepted.len()) as u64;
        let bytes = dir_size(&stage.store);
        println!(
            "   store on disk: {:.1} MiB for {} messages ({:.0} MiB per million)",
            bytes as f64 / 1048576.0,
            total,
            bytes as f64 / 1048576.0 * 1e6 / total as f64
        );

        setup.paused = false;
        let chirp = start(&setup);
        let drain_started = Instant::now();
        let cpu_before = chirp.cpu();
        let Drained {
            delivered,
            finished,
            rss_samples: samples,
            ..
        } = drain(&chirp, &mock, total, Duration::from_secs(1800)).await;
        let elapsed = finished - drain_started;
        let quarter = |q: usize| {
            samples
                .get(samples.len() * q / 4)
                .or(samples.last())
                .copied()
                .unwrap_or(0)
        };
        println!(
            "2. drain of the {} backlog through the component: {} in {:.2} s = {:.0} msg/s; chirp RSS at 25/50/75/100% of the drain: {} / {} / {} / {} MiB, peak {} MiB{}",
            total,
            delivered,
            elapsed.as_secs_f64(),
            delivered as f64 / elapsed.as_secs_f64(),
            mib(quarter(1)),
            mib(quarter(2)),
            mib(quarter(3)),
            mib(samples.last().copied().unwrap_or(0)),
            mib(chirp.peak_rss_kib()),
            stage.server_rss(),
        );
        println!(
            "   chirp CPU per delivered message: {:.1} µs",
            per_message(chirp.cpu() - cpu_before, delivered as usize)
        );
        let bytes = dir_size(&stage.store);
        println!(
            "   store on disk after delivery: {:.1} MiB ({:.0} MiB per million messages)",
            bytes as f64 / 1048576.0,
            bytes as f64 / 1048576.0 * 1e6 / total as f64
        );

        // 3. Accept and drain together, on the same (now empty) queue.
        accept_and_drain(
            "3. accept and drain together",
            &chirp,
            &mock,
            options.messages,
            &options,
        )
        .await;
        chirp.stop();
    }

    // 4. 10% of provider calls fail with 500.
    if options.runs(4) {
        let stage = Stage::new(&options);
        let mock = Mock::start(Plan {
            fail_every: 10,
            ..Plan::success()
        })
        .await;
        let chirp = start(&stage.setup(&options, &mock));
        accept_and_drain(
            "4. 10% of provider calls answer 500",
            &chirp,
            &mock,
            options.messages,
            &options,
        )
        .await;
        chirp.stop();
    }

    // 5. A provider that takes 200 ms, with the default 64 sends in flight
    // and with 512.
    if options.runs(5) {
        let stage = Stage::new(&options);
        let mock = Mock::start(Plan {
            latency: Duration::from_millis(200),
            ..Plan::success()
        })
        .await;
        let chirp = start(&stage.setup(&options, &mock));
        let messages = options.messages / 4;
        accept_and_drain(
            "5. provider latency 200 ms",
            &chirp,
            &mock,
            messages,
            &options,
        )
        .await;
        println!("   (64 provider calls in flight at 200 ms each bound delivery to 320 msg/s)");
        chirp.stop();

        let stage = Stage::new(&options);
        let chirp = start(
            &stage
                .setup(&options, &mock)
                .set("CHIRP_SEND_CONCURRENCY", "512"),
        );
        accept_and_drain(
            "5. provider latency 200 ms, CHIRP_SEND_CONCURRENCY=512",
            &chirp,
            &mock,
            options.messages,
            &options,
        )
        .await;
        println!("   (512 calls in flight at 200 ms each bound delivery to 2,560 msg/s)");
        chirp.stop();
    }

    // 6. Hot swap every 5 s while accepting and draining.
    if options.runs(6) {
        let stage = Stage::new(&options);
        let mock = Mock::start(Plan::success()).await;
        let chirp = start(&stage.setup(&options, &mock));
        let done = Arc::new(AtomicBool::new(false));
        let swapper = {
            let done = done.clone();
            let file = stage.plugins.join("myoperator.wasm");
            tokio::spawn(async move {
                let original = std::fs::read(&file).expect("plugin file");
                let mut swaps = 0u8;
                while !done.load(Ordering::Relaxed) {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    let mut bytes = original.clone();
                    bytes.extend_from_slice(&[0, 7, 5, b's', b'w', b'a', b'p', b'!', swaps]);
                    std::fs::write(&file, &bytes).expect("write plugin");
                    swaps = swaps.wrapping_add(1);
                }
                swaps
            })
        };
        accept_and_drain(
            "6. hot swap every 5 s",
            &chirp,
            &mock,
            options.messages,
            &options,
        )
        .await;
        done.store(true, Ordering::Relaxed);
        let swaps = swapper.await.unwrap_or(0);
        println!("   swaps during the run: {swaps}");
        hot_swap(&chirp, &stage.plugins.join("myoperator.wasm")).await;
        chirp.stop();
    }

    // 7. The sandbox against native Rust.
    if options.runs(7) {
        let mock = Mock::start(Plan::success()).await;
        let dir = tempfile::tempdir().expect("temp dir");
        sandbox_cost(&options.plugin, &mock, dir.path()).await;
    }

    // 8. Apprise.
    if options.apprise && options.runs(8) {
        apprise(options.messages.min(5_000)).await;
    }

    // 9. The store alone.
    if options.runs(9) {
        let dir = tempfile::tempdir().expect("temp dir");
        chirp_bench::store_path::run(options.backlog, dir.path(), process_cpu).await;
    }

    // 10. A whole drain: the component against native Rust.
    if options.runs(10) {
        let mock = Mock::start(Plan::success()).await;
        let dir = tempfile::tempdir().expect("temp dir");
        chirp_bench::sandbox_drain::run(
            options.messages,
            &options.plugin,
            &mock,
            dir.path(),
            process_cpu,
        )
        .await;
    }

    // 11. The retention job's own cost.
    if options.runs(11) {
        let dir = tempfile::tempdir().expect("temp dir");
        chirp_bench::retention_cost::run(options.messages, dir.path(), process_cpu).await;
        chirp_bench::retention_contention::run(options.messages, dir.path(), process_cpu).await;
    }

    // 12. The upgrade of a large store.
    if options.runs(12) {
        let dir = tempfile::tempdir().expect("temp dir");
        chirp_bench::upgrade_cost::run(options.backlog, dir.path(), process_cpu).await;
    }

    // 13. Webhook receipts stored and applied.
    if options.runs(13) {
        let dir = tempfile::tempdir().expect("temp dir");
        chirp_bench::webhook_apply::run(options.messages, dir.path(), process_cpu).await;
    }

    // 14. Accepting in batches against one request per message.
    if options.runs(14) {
        let stage = Stage::new(&options);
        let mock = Mock::start(Plan::success()).await;
        let receiver = Mock::start(Plan::success()).await;
        let receiver_host = receiver.base.trim_start_matches("http://").to_string();
        let mut setup = stage
            .setup(&options, &mock)
            .set("CHIRP_CALLBACK_HOSTS", &receiver_host)
            .set("CHIRP_CALLBACK_ALLOW_PRIVATE", "true");
        setup.paused = true;
        let chirp = start(&setup);
        chirp_bench::batch_accept::run(
            &chirp.base,
            || chirp.cpu(),
            options.messages,
            options.connections,
            &receiver,
        )
        .await;
        chirp.stop();
    }

    // 15. Order confirmations while a marketing blast drains.
    if options.runs(15) {
        let stage = Stage::new(&options);
        let mock = Mock::start(Plan::success()).await;
        let setup = stage
            .setup(&options, &mock)
            .set("CHIRP_PROVIDER_RATE", "80")
            .set("CHIRP_MARKETING_HOURS", "00:00-00:00");
        let chirp = start(&setup);
        chirp_bench::lanes::run(&chirp.base, &mock, || chirp.cpu(), options.backlog).await;
        chirp.stop();
    }
}

/// Rewrites the plugin file with a different custom section (same code, a
/// new sha256) five times and reports how long each took to serve.
async fn hot_swap(chirp: &ChirpProcess, file: &Path) {
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

/// One provider call through the sandbox against the same HTTP request
/// made natively; sequential, so the difference is the sandbox's cost.
async fn sandbox_cost(plugin: &Path, mock: &Mock, work: &Path) {
    use chirp::plugins::bindings;

    const CALLS: u32 = 2000;
    let plugins = chirp_bench::load_component(plugin, &mock.base, work, 64).await;
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
    let cpu_started = process_cpu();
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
    let sandboxed_cpu = (process_cpu() - cpu_started) / CALLS;

    let client = reqwest::Client::new();
    let mock_url = format!("{}/chat/messages", mock.base);
    let native = move |n: u32| {
        let client = client.clone();
        let url = mock_url.clone();
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
    let cpu_started = process_cpu();
    for n in 0..CALLS {
        native(n).await;
    }
    let direct = started.elapsed() / CALLS;
    let direct_cpu = (process_cpu() - cpu_started) / CALLS;

    // The same, 64 at once: the throughput of the send step either way.
    let plugins = Arc::new(plugins);
    const CONCURRENT: u32 = 20_000;
    let started = Instant::now();
    let cpu_started = process_cpu();
    let mut tasks = Vec::new();
    for worker in 0..64u32 {
        let plugins = plugins.clone();
        tasks.push(tokio::spawn(async move {
            let mut n = worker;
            while n < CONCURRENT {
                let (_, answer) = plugins
                    .send("myoperator", &message(n))
                    .await
                    .expect("loaded");
                assert!(
                    matches!(answer, Ok(Ok(_))),
                    "sandboxed send failed: {answer:?}"
                );
                n += 64;
            }
        }));
    }
    for task in tasks {
        task.await.expect("send task");
    }
    let wasm_rate = f64::from(CONCURRENT) / started.elapsed().as_secs_f64();
    let wasm_cpu = (process_cpu() - cpu_started) / CONCURRENT;
    let started = Instant::now();
    let cpu_started = process_cpu();
    let mut tasks = Vec::new();
    for worker in 0..64u32 {
        let native = native.clone();
        tasks.push(tokio::spawn(async move {
            let mut n = worker;
            while n < CONCURRENT {
                native(n).await;
                n += 64;
            }
        }));
    }
    for task in tasks {
        task.await.expect("send task");
    }
    let native_rate = f64::from(CONCURRENT) / started.elapsed().as_secs_f64();
    let native_cpu = (process_cpu() - cpu_started) / CONCURRENT;
    println!(
        "7. send step, {CONCURRENT} sends 64 at once: through the component {wasm_rate:.0} msg/s, native {native_rate:.0} msg/s: the component runs at {:.0}% of native",
        wasm_rate / native_rate * 100.0
    );
    // CPU time is steadier than wall time on a shared VM; it includes the
    // mock's share, the same for both paths.
    println!(
        "7. CPU time per send (process, mock included), 64 at once: component {:.1} µs, native {:.1} µs; sequential: component {:.1} µs, native {:.1} µs",
        micros(wasm_cpu),
        micros(native_cpu),
        micros(sandboxed_cpu),
        micros(direct_cpu)
    );
    println!(
        "7. sandbox cost ({CALLS} sequential sends, allocator {:?}): through the component {:.1} µs, native {:.1} µs, overhead {:.1} µs per send",
        plugins.allocator(),
        sandboxed.as_secs_f64() * 1e6,
        direct.as_secs_f64() * 1e6,
        (sandboxed.as_secs_f64() - direct.as_secs_f64()) * 1e6
    );
}

/// User plus system CPU time this process has used so far.
fn process_cpu() -> Duration {
    chirp_bench::process::cpu_of("self")
}

/// `cpu` spread over `messages`, in µs.
fn per_message(cpu: Duration, messages: usize) -> f64 {
    micros(cpu) / messages.max(1) as f64
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// The Python script Apprise runs: `count` notifications to the mock's JSON
/// webhook, first one at a time, then from 64 threads; prints the rates.
const APPRISE_SCRIPT: &str = r#"
import sys, time, apprise
from concurrent.futures import ThreadPoolExecutor
url, count = sys.argv[1], int(sys.argv[2])
def send(n):
    a = apprise.Apprise()
    a.add(url)
    return a.notify(title="order", body=f"Order #{n} confirmed: Rs 240, arriving 25 Nov.")
seq = max(count // 5, 1)
t = time.perf_counter()
ok = sum(1 for n in range(seq) if send(n))
print(f"sequential {ok} {time.perf_counter() - t:.3f}")
t = time.perf_counter()
with ThreadPoolExecutor(64) as pool:
    ok = sum(1 for r in pool.map(send, range(count)) if r)
print(f"threads64 {ok} {time.perf_counter() - t:.3f}")
"#;

/// Installs Apprise into a virtual environment under the user's cache (once)
/// and runs [`APPRISE_SCRIPT`] against a fresh mock.
async fn apprise(count: usize) {
    let home = std::env::var("HOME").unwrap_or_else(|_| "/tmp".into());
    let venv = Path::new(&home).join(".cache/chirp-bench/apprise-venv");
    let python = venv.join("bin/python");
    let run = |program: &Path, args: &[&str]| chirp_bench::process::quietly(program, args);
    if !python.exists() {
        let venv_text = venv.display().to_string();
        if !run(Path::new("python3"), &["-m", "venv", &venv_text]) {
            println!("8. Apprise: skipped (python3 -m venv failed)");
            return;
        }
    }
    if !run(&python, &["-c", "import apprise"])
        && !run(
            &python,
            &[
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "apprise",
            ],
        )
    {
        println!("8. Apprise: skipped (pip install apprise failed)");
        return;
    }
    let version = std::process::Command::new(&python)
        .args(["-c", "import apprise; print(apprise.__version__)"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let mock = Mock::start(Plan::success()).await;
    let url = format!("{}/chat/messages", mock.base.replace("http://", "json://"));
    let output = tokio::process::Command::new(&python)
        .args(["-c", APPRISE_SCRIPT, &url, &count.to_string()])
        .output()
        .await;
    let Ok(output) = output else {
        println!("8. Apprise: could not run python");
        return;
    };
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let parts: Vec<&str> = line.split_whitespace().collect();
        if let [mode, ok, secs] = parts[..] {
            let ok: f64 = ok.parse().unwrap_or(0.0);
            let secs: f64 = secs.parse().unwrap_or(f64::NAN);
            println!(
                "8. Apprise {version} ({mode}) to the same mock via json://: {ok} sent in {secs:.2} s = {:.0} msg/s (no queue, nothing stored)",
                ok / secs
            );
        }
    }
    if !output.status.success() {
        println!(
            "8. Apprise failed: {}",
            String::from_utf8_lossy(&output.stderr)
                .lines()
                .last()
                .unwrap_or("")
        );
    }
    println!("   the mock counted {} successful requests", mock.count());
}
