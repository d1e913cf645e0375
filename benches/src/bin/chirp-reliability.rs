//! `chirp-reliability`: what chirp survives, measured on loopback.
//!
//! 1. crash: steady load while chirp is killed with SIGKILL at random
//!    moments and restarted on the same store; afterwards every message that
//!    got a `202` must be `sent` or `failed`, none missing, and duplicate
//!    deliveries (counted by idempotency key at the mock) must not exceed
//!    the messages in flight at the kills;
//! 2. provider faults: timeouts, resets, 500s, 429 with `Retry-After`, slow
//!    bodies, malformed JSON, `CHAT_4001`; each must end as the
//!    classification promises, with every attempt recorded;
//! 3. store faults: the store's disk fills up (a small tmpfs), and its file
//!    system turns read-only under the running chirp (ext4 on a loop image,
//!    `errors=remount-ro`, after an error); both need root and are skipped
//!    otherwise. chirp must answer `503` rather than `202`, keep what it
//!    accepted, and recover when the fault clears (for read-only: after the
//!    operator's umount, fsck, mount and restart);
//! 4. schemathesis (from pip, in a virtual environment under the user's
//!    cache) against the running chirp's OpenAPI document: no `5xx`, no
//!    answer outside the schema (skipped if pip cannot install it);
//! 5. the SurrealDB server goes away: chirp on `ws://` under steady load
//!    while the server (built from crates.io on first use) is, in turn,
//!    killed with SIGKILL and started again on the same store, or frozen
//!    with SIGSTOP (its connections stay open, nothing answers) and let go.
//!    chirp must notice (health says the store is unreachable), then answer
//!    `503` at once while the server is gone, take traffic again once it is
//!    back without being restarted, lose nothing it accepted, and store
//!    nothing it said it had not accepted.
//!
//! Prints a table per part and exits non-zero if anything was lost or
//! broke its promise. `--short` is the version CI runs.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use chirp_bench::load::{self, Spec, admin_client};
use chirp_bench::process::{ChirpProcess, Setup, free_port};
use chirp_bench::surreal_server::{self, SurrealServer};
use chirp_harness::mock::faulty::{Fault, Mock, Plan};
use serde_json::Value;

/// chirp-reliability: crash, fault and hostile-input proof
/// (RELIABILITY.md).
#[derive(clap::Parser)]
struct Arguments {
    /// The chirp binary under test.
    #[arg(long, default_value = "target/release/chirp")]
    chirp: PathBuf,
    /// The MyOperator component.
    #[arg(long, default_value = "target/wasm32-wasip2/release/myoperator.wasm")]
    plugin: PathBuf,
    /// EarlyBird's rules component.
    #[arg(
        long,
        default_value = "target/wasm32-wasip2/release/rules_earlybird.wasm"
    )]
    rules_plugin: PathBuf,
    /// Run only this part.
    #[arg(long, value_parser = ["crash", "faults", "store", "schemathesis", "server"])]
    only: Option<String>,
    /// SIGKILLs under load in part 1 (default 10, or 3 with --short).
    #[arg(long)]
    kills: Option<u32>,
    /// Outages of the SurrealDB server in part 5, kills and freezes in
    /// turn (default 5, or 2 with --short).
    #[arg(long)]
    outages: Option<u32>,
    /// A `surreal` binary for part 5; built from `tests/surreal-server`
    /// when not given.
    #[arg(long)]
    surreal: Option<PathBuf>,
    /// The short version CI runs: fewer kills and outages, 20 schemathesis
    /// examples per operation instead of 100.
    #[arg(long)]
    short: bool,
}

struct Options {
    chirp: PathBuf,
    plugin: PathBuf,
    rules_plugin: PathBuf,
    only: Option<String>,
    kills: u32,
    outages: u32,
    surreal: Option<PathBuf>,
    /// The load during part 1's kills, messages per second.
    rate: f64,
    schemathesis_examples: u32,
}

fn parse_args() -> Options {
    let args = <Arguments as clap::Parser>::parse();
    let options = Options {
        kills: args.kills.unwrap_or(if args.short { 3 } else { 10 }),
        outages: args.outages.unwrap_or(if args.short { 2 } else { 5 }),
        schemathesis_examples: if args.short { 20 } else { 100 },
        rate: 300.0,
        chirp: args.chirp,
        plugin: args.plugin,
        rules_plugin: args.rules_plugin,
        only: args.only,
        surreal: args.surreal,
    };
    for path in [&options.chirp, &options.plugin, &options.rules_plugin] {
        if !path.exists() {
            eprintln!(
                "chirp-reliability: {} does not exist (see RELIABILITY.md)",
                path.display()
            );
            std::process::exit(2);
        }
    }
    options
}

/// A plugins directory with the MyOperator component.
fn plugins_dir(options: &Options, dir: &Path) -> PathBuf {
    let plugins = dir.join("plugins");
    std::fs::create_dir_all(&plugins).expect("plugins dir");
    std::fs::copy(&options.plugin, plugins.join("myoperator.wasm")).expect("copy plugin");
    plugins
}

fn start(setup: &Setup) -> ChirpProcess {
    setup.start().unwrap_or_else(|e| panic!("{e}"))
}

/// A small pseudo-random generator (the kill moments need no more).
struct Random(u64);

impl Random {
    fn new() -> Random {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(42);
        Random(seed | 1)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// A response's JSON body (`null` if it has none).
async fn json_of(response: reqwest::Response) -> Value {
    serde_json::from_slice(&response.bytes().await.unwrap_or_default()).unwrap_or_default()
}

/// Every message in the store: idempotency key -> (id, status).
async fn all_messages(client: &reqwest::Client, base: &str) -> HashMap<String, (String, String)> {
    let mut messages = HashMap::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut url = format!("{base}/api/notifications/history?limit=500");
        if let Some(c) = &cursor {
            url.push_str(&format!("&cursor={c}"));
        }
        let page: Value = match client.get(&url).send().await {
            Ok(r) => json_of(r).await,
            Err(_) => Value::Null,
        };
        for m in page["items"].as_array().into_iter().flatten() {
            messages.insert(
                m["idempotency_key"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                (
                    m["id"].as_str().unwrap_or_default().to_string(),
                    m["status"].as_str().unwrap_or_default().to_string(),
                ),
            );
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => return messages,
        }
    }
}

/// How many messages are in `status` (through the history, all pages).
async fn count_status(client: &reqwest::Client, base: &str, status: &str) -> usize {
    let mut count = 0;
    let mut cursor: Option<String> = None;
    loop {
        let mut url = format!("{base}/api/notifications/history?limit=500&status={status}");
        if let Some(c) = &cursor {
            url.push_str(&format!("&cursor={c}"));
        }
        let page: Value = match client.get(&url).send().await {
            Ok(r) => json_of(r).await,
            Err(_) => return count,
        };
        count += page["items"].as_array().map_or(0, Vec::len);
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => return count,
        }
    }
}

/// Waits until nothing is queued or sending (or `timeout`).
async fn settle(client: &reqwest::Client, base: &str, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        let stats: Value = match client
            .get(format!("{base}/api/notifications/statistics"))
            .send()
            .await
        {
            Ok(r) => json_of(r).await,
            Err(_) => Value::Null,
        };
        let open: u64 = stats["by_status"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|c| c["key"] == "queued" || c["key"] == "sending")
            .map(|c| c["count"].as_u64().unwrap_or(0))
            .sum();
        if stats.is_object() && open == 0 {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    false
}

/// Of the `accepted` keys: how many are not in `stored`, and how many are
/// there but neither `sent` nor `failed`.
fn missing_and_unfinished(
    accepted: &HashSet<&str>,
    stored: &HashMap<String, (String, String)>,
) -> (usize, usize) {
    let missing = accepted
        .iter()
        .filter(|k| !stored.contains_key(**k))
        .count();
    let unfinished = accepted
        .iter()
        .filter(|k| {
            stored
                .get(**k)
                .is_some_and(|(_, s)| s != "sent" && s != "failed")
        })
        .count();
    (missing, unfinished)
}

/// The steady load of parts 1 and 5: `--rate` messages a second from 16
/// connections, keys tagged `tag`, until [`SteadyLoad::finish`].
struct SteadyLoad {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<load::Report>,
}

impl SteadyLoad {
    fn start(options: &Options, base: &str, tag: &str) -> SteadyLoad {
        let stop = Arc::new(AtomicBool::new(false));
        let spec = Spec {
            messages: usize::MAX,
            connections: 16,
            rate: Some(options.rate),
            tag: tag.into(),
        };
        let base = base.to_string();
        let flag = stop.clone();
        let task = tokio::spawn(async move { load::drive(&base, &spec, Some(flag)).await });
        SteadyLoad { stop, task }
    }

    /// Two more seconds of load, then stops it, waits until chirp at
    /// `base` has nothing queued or sending (whether it got there), and
    /// reads every message back.
    async fn finish(
        self,
        client: &reqwest::Client,
        base: &str,
    ) -> (load::Report, bool, HashMap<String, (String, String)>) {
        tokio::time::sleep(Duration::from_secs(2)).await;
        self.stop.store(true, Ordering::Relaxed);
        let report = self.task.await.expect("load");
        let settled = settle(client, base, Duration::from_secs(180)).await;
        let stored = all_messages(client, base).await;
        (report, settled, stored)
    }
}

/// Part 1. Returns whether it held.
async fn crash(options: &Options) -> bool {
    println!(
        "\n## 1. SIGKILL under steady load ({} kills)\n",
        options.kills
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let plugins = plugins_dir(options, dir.path());
    let mock = Mock::start(Plan {
        latency: Duration::from_millis(5),
        ..Plan::success()
    })
    .await;
    let port = free_port();
    let mut setup = Setup::new(
        &options.chirp,
        &plugins,
        format!("surrealkv://{}", dir.path().join("store").display()),
        &mock.base,
    )
    .set("CHIRP_LEASE", "2s")
    .set("CHIRP_RETRY_BACKOFF", "200ms");
    setup.listen = format!("127.0.0.1:{port}");
    let base = format!("http://127.0.0.1:{port}");
    let client = admin_client(4);

    let mut chirp = start(&setup);
    let load = SteadyLoad::start(options, &base, "crash");
    let mut random = Random::new();
    let mut in_flight = Vec::new();
    for _ in 0..options.kills {
        tokio::time::sleep(Duration::from_millis(800 + random.below(2200))).await;
        chirp.kill();
        chirp = start(&setup);
        // Leased at the kill and not yet taken back: what may go twice.
        in_flight.push(count_status(&client, &base, "sending").await);
    }
    let (report, settled, stored) = load.finish(&client, &base).await;
    chirp.stop();

    let accepted: HashSet<&str> = report.accepted.iter().map(|a| a.key.as_str()).collect();
    let (missing, unfinished) = missing_and_unfinished(&accepted, &stored);
    let sent = stored.values().filter(|(_, s)| s == "sent").count();
    let failed = stored.values().filter(|(_, s)| s == "failed").count();
    let delivered = mock.delivered();
    let duplicates: u32 = delivered.values().map(|n| n.saturating_sub(1)).sum();
    let duplicated_keys = delivered.values().filter(|n| **n > 1).count();
    let unknown = delivered
        .keys()
        .filter(|k| !stored.contains_key(k.as_str()))
        .count();
    let in_flight_total: usize = in_flight.iter().sum();
    let not_delivered = stored
        .iter()
        .filter(|(k, (_, s))| s == "sent" && !delivered.contains_key(k.as_str()))
        .count();
    let held = settled
        && missing == 0
        && unfinished == 0
        && unknown == 0
        && not_delivered == 0
        && duplicates as usize <= in_flight_total;
    println!("| what | count |\n|---|---|");
    println!(
        "| kills (SIGKILL, restart on the same store) | {} |",
        options.kills
    );
    println!("| requests answered 202 | {} |", accepted.len());
    println!(
        "| requests not answered 202 (chirp down or killed mid-request) | {} |",
        report.refused_total()
    );
    println!("| messages in the store | {} |", stored.len());
    println!("| ... sent / failed | {sent} / {failed} |");
    println!("| 202 but missing from the store | {missing} |");
    println!("| 202 but not finished after settling | {unfinished} |");
    println!("| `sent` but never delivered to the mock | {not_delivered} |");
    println!("| delivered keys unknown to the store | {unknown} |");
    println!("| leased (in flight) at the kills, per kill | {in_flight:?} = {in_flight_total} |");
    println!(
        "| duplicate deliveries (same idempotency key) | {duplicates} on {duplicated_keys} keys |"
    );
    println!("\ncrash: {}", if held { "HELD" } else { "BROKEN" });
    held
}

/// Polls a message until it is `sent` or `failed`.
async fn final_message(client: &reqwest::Client, base: &str, id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let message = client
            .get(format!("{base}/api/notifications/{id}"))
            .send()
            .await
            .expect("GET message");
        let message = json_of(message).await;
        let status = message["status"].as_str().unwrap_or_default();
        if status == "sent" || status == "failed" || Instant::now() > deadline {
            return message;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Part 2. Returns whether every fault ended as promised.
async fn provider_faults(options: &Options) -> bool {
    println!("\n## 2. Provider faults\n");
    let dir = tempfile::tempdir().expect("temp dir");
    let plugins = plugins_dir(options, dir.path());
    let mock = Mock::start(Plan::success()).await;
    let setup = Setup::new(&options.chirp, &plugins, "mem://".into(), &mock.base)
        .set("CHIRP_SANDBOX__MYOPERATOR__HTTP_TIMEOUT", "500ms")
        .set("CHIRP_RETRY_BACKOFF", "100ms")
        .set("CHIRP_MAX_ATTEMPTS", "3");
    let chirp = start(&setup);
    let client = admin_client(4);
    let cases: [(&str, Fault, u32, &str, u32, &str); 7] = [
        (
            "timeout (answer after 2 s)",
            Fault::Timeout {
                after: Duration::from_secs(2),
            },
            2,
            "sent",
            3,
            "timeout",
        ),
        ("connection reset", Fault::Reset, 2, "sent", 3, "connect"),
        ("500", Fault::ServerError, 2, "sent", 3, "http_500"),
        (
            "429 Retry-After: 1",
            Fault::RateLimited {
                retry_after_secs: 1,
            },
            1,
            "sent",
            2,
            "http_429",
        ),
        (
            "slow body (1 byte / 100 ms)",
            Fault::SlowBody,
            2,
            "sent",
            3,
            "timeout",
        ),
        (
            "malformed JSON on 200",
            Fault::Malformed,
            2,
            "sent",
            3,
            "malformed_response",
        ),
        (
            "CHAT_4001 (empty wallet)",
            Fault::Chat4001,
            1,
            "failed",
            1,
            "CHAT_4001",
        ),
    ];
    const PER_CASE: usize = 5;
    let mut all_held = true;
    println!("| fault | messages | expected | ended | attempts | first error code | held |");
    println!("|---|---|---|---|---|---|---|");
    for (name, fault, times, expected, attempts, code) in cases {
        mock.set_plan(Plan {
            fault: Some((fault, times)),
            ..Plan::success()
        });
        let tag = format!("fault-{}", code.to_lowercase());
        let mut ids = Vec::new();
        for n in 0..PER_CASE {
            let answer = client
                .post(format!("{}/api/notifications/send-message", chirp.base))
                .header("content-type", "application/json")
                .body(load::message_body(&tag, n).to_string())
                .send()
                .await
                .expect("send");
            let answer = json_of(answer).await;
            ids.push(answer["id"].as_str().unwrap_or_default().to_string());
        }
        let mut ended = HashMap::<String, usize>::new();
        let mut attempt_counts = HashSet::new();
        let mut codes = HashSet::new();
        let mut held = true;
        for (n, id) in ids.iter().enumerate() {
            let message = final_message(&client, &chirp.base, id).await;
            let status = message["status"].as_str().unwrap_or("?").to_string();
            let trail = message["attempts"].as_array().cloned().unwrap_or_default();
            attempt_counts.insert(trail.len());
            let first_code = trail
                .first()
                .and_then(|a| a["error_code"].as_str())
                .unwrap_or("-")
                .to_string();
            held &= status == expected
                && trail.len() == attempts as usize
                && first_code == code
                && message["attempt_count"] == attempts;
            if let Fault::RateLimited { retry_after_secs } = fault {
                // The retry waited for Retry-After, not for the 100 ms backoff.
                let arrivals = mock.requests_of(&format!("{tag}-{n}"));
                held &= arrivals.len() == 2
                    && arrivals[1] - arrivals[0] >= Duration::from_secs(retry_after_secs);
            }
            codes.insert(first_code);
            *ended.entry(status).or_default() += 1;
        }
        all_held &= held;
        println!(
            "| {name} | {PER_CASE} | {expected} after {attempts} | {ended:?} | {attempt_counts:?} | {codes:?} | {} |",
            if held { "yes" } else { "NO" }
        );
    }
    chirp.stop();
    println!(
        "\nprovider faults: {}",
        if all_held { "HELD" } else { "BROKEN" }
    );
    all_held
}

fn sh(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// What [`send_some`] saw.
struct Sent {
    /// The keys answered `202`.
    accepted: Vec<String>,
    /// Every other answer, by status (0: none).
    other: HashMap<u16, usize>,
    /// The keys answered otherwise, each with the error's `code`.
    refused: Vec<(String, String)>,
}

/// Sends `n` messages, one after another.
async fn send_some(client: &reqwest::Client, base: &str, tag: &str, n: usize) -> Sent {
    let mut sent = Sent {
        accepted: Vec::new(),
        other: HashMap::new(),
        refused: Vec::new(),
    };
    for i in 0..n {
        let key = format!("{tag}-{i}");
        let answer = client
            .post(format!("{base}/api/notifications/send-message"))
            .header("content-type", "application/json")
            .body(load::message_body(tag, i).to_string())
            .send()
            .await;
        let (status, code) = match answer {
            Ok(r) => (r.status().as_u16(), json_of(r).await["code"].clone()),
            Err(_) => (0, Value::Null),
        };
        if status == 202 {
            sent.accepted.push(key);
        } else {
            *sent.other.entry(status).or_default() += 1;
            sent.refused
                .push((key, code.as_str().unwrap_or_default().to_string()));
        }
    }
    sent
}

/// Sends one probe message a second until one is accepted (or `timeout`);
/// returns how long recovery took.
async fn recovery(
    client: &reqwest::Client,
    base: &str,
    tag: &str,
    timeout: Duration,
) -> Option<(Duration, String)> {
    let started = Instant::now();
    let mut n = 0;
    while started.elapsed() < timeout {
        let sent = send_some(client, base, &format!("{tag}-probe{n}"), 1).await;
        if let Some(key) = sent.accepted.into_iter().next() {
            return Some((started.elapsed(), key));
        }
        n += 1;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    None
}

/// The table both store faults print: one row per step, each held or not.
struct StepTable {
    held: bool,
}

impl StepTable {
    fn start() -> StepTable {
        println!("| step | sent | 202 | other answers | chirp alive | held |");
        println!("|---|---|---|---|---|---|");
        StepTable { held: true }
    }

    fn row(
        &mut self,
        step: &str,
        sent: usize,
        ok: usize,
        other: &HashMap<u16, usize>,
        alive: bool,
        good: bool,
    ) {
        self.held &= good;
        println!(
            "| {step} | {sent} | {ok} | {other:?} | {alive} | {} |",
            if good { "yes" } else { "NO" }
        );
    }

    /// A step with nothing wrong: 50 messages tagged `tag`, each must get
    /// `202`; the accepted keys join `accepted`.
    async fn healthy(
        &mut self,
        step: &str,
        chirp: &mut ChirpProcess,
        client: &reqwest::Client,
        tag: &str,
        accepted: &mut Vec<String>,
    ) {
        let sent = send_some(client, &chirp.base, tag, 50).await;
        let ok = sent.accepted.len();
        accepted.extend(sent.accepted);
        let alive = chirp.alive();
        self.row(step, 50, ok, &sent.other, alive, ok == 50);
    }

    /// The last row of a store fault, once chirp has settled (`settled`)
    /// and `stored` was read back: of the `accepted` keys, none lost and
    /// all sent; of those `refused` during the fault, none refused as not
    /// stored (`store_unavailable`) is in the store (a refusal that may
    /// have been stored says `store_unconfirmed`).
    fn accounting(
        &mut self,
        accepted: &[String],
        refused: &[(String, String)],
        stored: &HashMap<String, (String, String)>,
        settled: bool,
    ) {
        let lost = accepted.iter().filter(|k| !stored.contains_key(*k)).count();
        let unsent = accepted
            .iter()
            .filter(|k| stored.get(*k).is_some_and(|(_, s)| s != "sent"))
            .count();
        let refused_yet_stored = refused
            .iter()
            .filter(|(key, code)| code == "store_unavailable" && stored.contains_key(key))
            .count();
        self.row(
            &format!(
                "afterwards: {} accepted in all, lost {lost}, not sent {unsent}; refused during the fault as `store_unavailable`, yet stored: {refused_yet_stored}",
                accepted.len()
            ),
            0,
            0,
            &HashMap::new(),
            true,
            settled && lost == 0 && unsent == 0 && refused_yet_stored == 0,
        );
    }

    /// Prints the part's verdict; returns whether every row held.
    fn verdict(&self, part: &str) -> bool {
        println!("\n{part}: {}", if self.held { "HELD" } else { "BROKEN" });
        self.held
    }
}

/// chirp on a store under `mount`, on a fixed port (it is restarted).
fn store_setup(options: &Options, dir: &Path, mount: &str, mock: &Mock) -> Setup {
    let plugins = plugins_dir(options, dir);
    let mut setup = Setup::new(
        &options.chirp,
        &plugins,
        format!("surrealkv://{mount}/store"),
        &mock.base,
    )
    .set("CHIRP_RETRY_BACKOFF", "200ms");
    setup.listen = format!("127.0.0.1:{}", free_port());
    setup
}

/// The refusals' codes, counted: `store_unavailable x 18, ...`.
fn codes(refused: &[(String, String)]) -> String {
    let mut counts: Vec<(&str, usize)> = Vec::new();
    for (_, code) in refused {
        match counts.iter_mut().find(|(c, _)| c == code) {
            Some((_, n)) => *n += 1,
            None => counts.push((code, 1)),
        }
    }
    counts
        .iter()
        .map(|(code, n)| format!("`{code}` x {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Part 3a. The disk fills up. Returns whether it held (`true` when
/// skipped). (The read-only fault is part 3b, on ext4: a tmpfs cannot be
/// remounted read-only under a running writer.)
async fn store_disk_full(options: &Options) -> bool {
    println!("\n## 3a. Store fault: the disk fills (tmpfs of 64 MiB)\n");
    let dir = tempfile::tempdir().expect("temp dir");
    let mount = dir.path().join("mnt");
    std::fs::create_dir_all(&mount).expect("mount point");
    let mount_text = mount.display().to_string();
    if !sh(
        "mount",
        &["-t", "tmpfs", "-o", "size=64m", "tmpfs", &mount_text],
    ) {
        println!("disk full: SKIPPED (cannot mount a tmpfs; needs root)");
        return true;
    }
    let mock = Mock::start(Plan::success()).await;
    let setup = store_setup(options, dir.path(), &mount_text, &mock);
    let mut chirp = start(&setup);
    let client = admin_client(4);
    let base = chirp.base.clone();
    let mut accepted: Vec<String> = Vec::new();
    let mut table = StepTable::start();

    table
        .healthy("healthy", &mut chirp, &client, "before", &mut accepted)
        .await;
    // Let delivery go idle, so that while the disk is full only accepting
    // writes: its own failure must latch the store.
    settle(&client, &base, Duration::from_secs(30)).await;

    // Disk full.
    let filler = mount.join("filler");
    let filled = Command::new("dd")
        .args(["if=/dev/zero", &format!("of={}", filler.display()), "bs=1M"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok();
    let Sent {
        accepted: keys,
        other,
        refused: refused_during_fault,
    } = send_some(&client, &base, "full", 20).await;
    let ok = keys.len();
    accepted.extend(keys);
    let alive = chirp.alive();
    // A message may still fit in space the store had already allocated: a
    // `202` is fine as long as it is kept (checked at the end); anything
    // else must be a `503`, and the fault must have been felt.
    let refused = other.get(&503).copied().unwrap_or(0);
    // A failed log write latches: chirp reports itself not live (as a
    // supervisor's liveness probe would see) until it is restarted.
    let health = json_of(
        client
            .get(format!("{base}/api/notifications/health"))
            .send()
            .await
            .expect("GET health"),
    )
    .await;
    let latched = health["store"] == "needs_restart";
    table.row(
        &format!(
            "disk full (then liveness says `needs_restart`); refused: {}",
            codes(&refused_during_fault)
        ),
        20,
        ok,
        &other,
        alive,
        filled && refused > 0 && ok + refused == 20 && latched,
    );
    let _ = std::fs::remove_file(&filler);
    if latched {
        chirp.stop();
        chirp = start(&setup);
        println!(
            "| space freed; liveness said `needs_restart`, so chirp was restarted (the supervisor's part) | | | | | |"
        );
    }
    match recovery(&client, &base, "after-full", Duration::from_secs(30)).await {
        Some((took, key)) => {
            accepted.push(key);
            println!(
                "| space freed: first 202 after | {:.1} s | | | | |",
                took.as_secs_f64()
            );
        }
        None => {
            let alive = chirp.alive();
            table.row(
                "space freed: no 202 within 30 s",
                0,
                0,
                &HashMap::new(),
                alive,
                false,
            );
        }
    }
    table
        .healthy("healthy again", &mut chirp, &client, "after", &mut accepted)
        .await;

    // Everything accepted is delivered, and survives a restart.
    if !chirp.alive() {
        chirp = start(&setup);
    }
    let settled = settle(&client, &chirp.base, Duration::from_secs(60)).await;
    chirp.stop();
    let chirp = start(&setup);
    let stored = all_messages(&client, &chirp.base).await;
    chirp.stop();
    table.accounting(&accepted, &refused_during_fault, &stored, settled);
    sh("umount", &[&mount_text]);
    table.verdict("disk full")
}

/// Part 3b. The store's file system turns read-only under a running chirp,
/// the way ext4 does after an I/O error (`errors=remount-ro`), triggered
/// through ext4's `trigger_fs_error` on a loop-mounted image. The operator's
/// repair (stop chirp, unmount, `e2fsck`, mount, start chirp) is the
/// recovery. Returns whether it held (`true` when it cannot be set up).
async fn store_read_only(options: &Options) -> bool {
    println!("\n## 3b. Store fault: the file system turns read-only (ext4 errors=remount-ro)\n");
    let dir = tempfile::tempdir().expect("temp dir");
    let image = dir.path().join("store.ext4");
    let mount = dir.path().join("mnt");
    std::fs::create_dir_all(&mount).expect("mount point");
    let (image_text, mount_text) = (image.display().to_string(), mount.display().to_string());
    let mount_image = || {
        sh(
            "mount",
            &["-o", "loop,errors=remount-ro", &image_text, &mount_text],
        )
    };
    if !(sh("truncate", &["-s", "256M", &image_text])
        && sh("mkfs.ext4", &["-q", "-F", &image_text])
        && mount_image())
    {
        println!("read-only file system: SKIPPED (needs root, loop devices and mkfs.ext4)");
        return true;
    }
    let device = Command::new("findmnt")
        .args(["-no", "SOURCE", &mount_text])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let trigger = format!(
        "/sys/fs/ext4/{}/trigger_fs_error",
        device.rsplit('/').next().unwrap_or_default()
    );
    let mock = Mock::start(Plan::success()).await;
    let setup = store_setup(options, dir.path(), &mount_text, &mock);
    let mut chirp = start(&setup);
    let client = admin_client(4);
    let base = chirp.base.clone();
    let mut accepted: Vec<String> = Vec::new();
    let mut table = StepTable::start();

    table
        .healthy("healthy", &mut chirp, &client, "before-ro", &mut accepted)
        .await;

    let injected = std::fs::write(&trigger, "chirp-reliability").is_ok()
        && std::fs::write(mount.join("probe"), "x").is_err();
    let Sent {
        accepted: keys,
        other,
        refused: refused_during_fault,
    } = send_some(&client, &base, "readonly", 20).await;
    let ok = keys.len();
    accepted.extend(keys);
    let alive = chirp.alive();
    table.row(
        &format!(
            "file system read-only (EROFS on every write); refused: {}",
            codes(&refused_during_fault)
        ),
        20,
        ok,
        &other,
        alive,
        injected && alive && ok == 0 && other.get(&503) == Some(&20),
    );

    // The operator's repair.
    chirp.stop();
    let repaired = sh("umount", &[&mount_text])
        && Command::new("e2fsck")
            .args(["-fy", &image_text])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.code().is_some_and(|c| c <= 1))
        && mount_image();
    if !repaired {
        table.row(
            "repair (umount, e2fsck, mount) failed",
            0,
            0,
            &HashMap::new(),
            false,
            false,
        );
        sh("umount", &[&mount_text]);
        return table.verdict("read-only file system");
    }
    chirp = start(&setup);
    table
        .healthy(
            "repaired (umount, e2fsck, mount) and chirp restarted",
            &mut chirp,
            &client,
            "after-ro",
            &mut accepted,
        )
        .await;
    let settled = settle(&client, &base, Duration::from_secs(60)).await;
    let stored = all_messages(&client, &base).await;
    chirp.stop();
    table.accounting(&accepted, &refused_during_fault, &stored, settled);
    sh("umount", &[&mount_text]);
    table.verdict("read-only file system")
}

/// Part 4. Returns whether it held (`true` when skipped).
async fn schemathesis(options: &Options) -> bool {
    println!("\n## 4. schemathesis against the OpenAPI document\n");
    let home = std::env::var("HOME").unwrap_or_else(|_| "/tmp".into());
    let venv = Path::new(&home).join(".cache/chirp-reliability/venv");
    let st = venv.join("bin/st");
    if !st.exists() {
        let venv_text = venv.display().to_string();
        let pip = venv.join("bin/pip").display().to_string();
        if !(sh("python3", &["-m", "venv", &venv_text])
            && sh(
                &pip,
                &[
                    "install",
                    "--quiet",
                    "--disable-pip-version-check",
                    "schemathesis",
                ],
            ))
        {
            println!("schemathesis: SKIPPED (could not install it with pip)");
            return true;
        }
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let plugins = plugins_dir(options, dir.path());
    std::fs::copy(&options.rules_plugin, plugins.join("rules-earlybird.wasm"))
        .expect("copy rules plugin");
    let mock = Mock::start(Plan::success()).await;
    let setup = Setup::new(&options.chirp, &plugins, "mem://".into(), &mock.base);
    let chirp = start(&setup);
    let token = chirp_bench::process::admin_token("chirp-reliability");
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("schemathesis.toml");
    let output = Command::new(&st)
        .args([
            "--config-file",
            &config.display().to_string(),
            "run",
            &format!("{}/api/openapi.json", chirp.base),
            "--checks",
            "all",
            "--max-examples",
            &options.schemathesis_examples.to_string(),
            "--header",
            &format!("Authorization: Bearer {token}"),
        ])
        .output();
    let alive = {
        let mut chirp = chirp;
        let alive = chirp.alive();
        chirp.stop();
        alive
    };
    let Ok(output) = output else {
        println!("schemathesis: could not run {}", st.display());
        return false;
    };
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        println!("    {line}");
    }
    let held = output.status.success() && alive;
    println!(
        "\nschemathesis: {} (exit {:?}, chirp alive afterwards: {alive})",
        if held { "HELD" } else { "BROKEN" },
        output.status.code()
    );
    held
}

/// The SurrealDB server part 5 runs: `--surreal`, or built from
/// `tests/surreal-server` under the cargo target directory.
async fn surreal_binary(options: &Options) -> Result<PathBuf, String> {
    if let Some(path) = &options.surreal {
        return Ok(path.clone());
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("target"))
        .join("surreal-server");
    println!(
        "(building SurrealDB's server, tests/surreal-server, under {})\n",
        target.display()
    );
    tokio::task::spawn_blocking(move || surreal_server::build(&target))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("cannot build the SurrealDB server: {e}"))
}

/// Part 5. Returns whether it held.
async fn server_goes_away(options: &Options) -> bool {
    println!(
        "\n## 5. The SurrealDB server goes away ({} outages, `ws://`)\n",
        options.outages
    );
    let surreal = match surreal_binary(options).await {
        Ok(path) => path,
        Err(e) => {
            println!("server: BROKEN ({e})");
            return false;
        }
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let plugins = plugins_dir(options, dir.path());
    let server_store = format!("surrealkv://{}", dir.path().join("server-store").display());
    let server_log = dir.path().join("surreal.log");
    let started = tokio::task::block_in_place(|| {
        SurrealServer::start(&surreal, &server_store, free_port(), &server_log)
    });
    let mut server = match started {
        Ok(server) => server,
        Err(e) => {
            println!("server: BROKEN ({e})");
            return false;
        }
    };
    let mock = Mock::start(Plan {
        latency: Duration::from_millis(5),
        ..Plan::success()
    })
    .await;
    let mut setup = server
        .chirp_setup(&options.chirp, &plugins, &mock.base)
        .set("CHIRP_LEASE", "2s")
        .set("CHIRP_RETRY_BACKOFF", "200ms");
    setup.listen = format!("127.0.0.1:{}", free_port());
    let mut chirp = start(&setup);
    let base = chirp.base.clone();
    let client = admin_client(4);

    let load = SteadyLoad::start(options, &base, "outage");
    const PROBES: usize = 10;
    let mut random = Random::new();
    let mut in_flight = Vec::new();
    // Each outage, from the kill or freeze until the first `202` after it.
    let mut outages: Vec<(Instant, Instant)> = Vec::new();
    let mut held = true;
    println!(
        "| outage | server | health says `unreachable` after | then {PROBES} requests: answers | slowest | chirp alive | first `202` after the server is back | held |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for outage in 1..=options.outages {
        tokio::time::sleep(Duration::from_millis(2000 + random.below(2000))).await;
        // Leased when the server goes: what may be sent twice (a lease
        // runs out while its completion cannot be written).
        in_flight.push(count_status(&client, &base, "sending").await);
        let kind = if outage % 2 == 1 {
            server.kill();
            "killed"
        } else {
            if let Err(e) = server.freeze() {
                println!("server: BROKEN ({e})");
                return false;
            }
            "frozen"
        };
        let went = Instant::now();
        // Until chirp's health says the store is unreachable: requests in
        // this window wait for CHIRP_STORE_TIMEOUT at most.
        let noticed = loop {
            let answer = client
                .get(format!("{base}/api/notifications/health"))
                .send()
                .await;
            if let Ok(r) = answer
                && r.status().as_u16() == 503
                && json_of(r).await["store"] == "unreachable"
            {
                break Some(went.elapsed());
            }
            if went.elapsed() > Duration::from_secs(30) {
                break None;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let mut answers: HashMap<u16, usize> = HashMap::new();
        let mut slowest = Duration::ZERO;
        for n in 0..PROBES {
            let started = Instant::now();
            let status = client
                .post(format!("{base}/api/notifications/send-message"))
                .header("content-type", "application/json")
                .body(load::message_body(&format!("down{outage}"), n).to_string())
                .send()
                .await
                .map(|r| r.status().as_u16())
                .unwrap_or(0);
            slowest = slowest.max(started.elapsed());
            *answers.entry(status).or_default() += 1;
        }
        // The server stays down a little longer, under the load.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let restarted = if kind == "killed" {
            tokio::task::block_in_place(|| server.restart())
        } else {
            server.thaw()
        };
        if let Err(e) = restarted {
            println!("server: BROKEN ({e})");
            return false;
        }
        let restarted_at = Instant::now();
        let back = recovery(
            &client,
            &base,
            &format!("back{outage}"),
            Duration::from_secs(60),
        )
        .await;
        outages.push((
            went,
            back.as_ref()
                .map_or_else(Instant::now, |(after, _)| restarted_at + *after),
        ));
        let alive = chirp.alive();
        let good =
            noticed.is_some() && answers.get(&503) == Some(&PROBES) && alive && back.is_some();
        held &= good;
        println!(
            "| {outage} | {kind} | {} | {answers:?} | {:.0} ms | {alive} | {} | {} |",
            noticed.map_or("never (30 s)".into(), |after| format!(
                "{:.1} s",
                after.as_secs_f64()
            )),
            slowest.as_secs_f64() * 1e3,
            back.map_or("never (60 s)".into(), |(after, _)| format!(
                "{:.1} s",
                after.as_secs_f64()
            )),
            if good { "yes" } else { "NO" }
        );
    }
    let (report, settled, stored) = load.finish(&client, &base).await;
    // chirp restarted on the same server: it must find what it accepted.
    chirp.stop();
    chirp = start(&setup);
    let stored_after_restart = all_messages(&client, &chirp.base).await;
    chirp.stop();

    let accepted: HashSet<&str> = report.accepted.iter().map(|a| a.key.as_str()).collect();
    let (missing, _) = missing_and_unfinished(&accepted, &stored_after_restart);
    let (_, unfinished) = missing_and_unfinished(&accepted, &stored);
    let delivered = mock.delivered();
    let duplicates: u32 = delivered
        .iter()
        .filter(|(k, _)| k.starts_with("outage-"))
        .map(|(_, n)| n.saturating_sub(1))
        .sum();
    // A duplicate is expected only of a message sent while its completion
    // could not be written: first delivered just before the server went or during
    // the outage, and sent again once its lease (2 s) ran out afterwards.
    let first_delivered = mock.first_delivered();
    let unexplained = delivered
        .iter()
        .filter(|(_, n)| **n > 1)
        .filter(|(key, _)| {
            first_delivered.get(*key).is_none_or(|first| {
                !outages
                    .iter()
                    .any(|(went, back)| *first + Duration::from_secs(1) >= *went && *first <= *back)
            })
        })
        .count();
    if std::env::var_os("CHIRP_RELIABILITY_DEBUG").is_some() {
        print_duplicates_against_outages(&outages, &delivered, &first_delivered);
    }
    // A refusal either says nothing was stored (`store_unavailable`) or
    // that the store did not confirm (`store_unconfirmed`). Only the
    // second may be found in the store afterwards.
    let stored_though_refused = |code: &str| {
        report
            .refusals
            .iter()
            .filter(|r| r.code == code && stored_after_restart.contains_key(&r.key))
            .count()
    };
    let refused_yet_stored = stored_though_refused("store_unavailable");
    let unconfirmed_and_stored = stored_though_refused("store_unconfirmed");
    let unconfirmed = report
        .refusals
        .iter()
        .filter(|r| r.code == "store_unconfirmed")
        .count();
    let not_delivered = stored
        .iter()
        .filter(|(k, (_, s))| s == "sent" && !delivered.contains_key(k.as_str()))
        .count();
    let in_flight_total: usize = in_flight.iter().sum();
    held &= settled
        && missing == 0
        && unfinished == 0
        && not_delivered == 0
        && unexplained == 0
        && refused_yet_stored == 0;
    println!("\n| what | count |\n|---|---|");
    println!(
        "| server outages (odd: SIGKILL, restart on the same store; even: SIGSTOP, SIGCONT) | {} |",
        options.outages
    );
    println!("| load: requests answered 202 | {} |", accepted.len());
    println!(
        "| load: other answers, by status (0: none) | {:?} |",
        report.refused
    );
    println!("| messages in the store | {} |", stored.len());
    println!(
        "| refused as not stored (`store_unavailable`), yet in the store | {refused_yet_stored} |"
    );
    println!(
        "| refused as unconfirmed (`store_unconfirmed`) | {unconfirmed}, of which {unconfirmed_and_stored} in the store |"
    );
    println!("| 202 but missing from the store (read after restarting chirp) | {missing} |");
    println!("| 202 but not finished after settling | {unfinished} |");
    println!("| `sent` but never delivered to the mock | {not_delivered} |");
    println!("| leased (in flight) when the server went | {in_flight:?} = {in_flight_total} |");
    println!("| duplicate deliveries of the load (same idempotency key) | {duplicates} |");
    println!(
        "| ... of messages first delivered outside an outage (from 1 s before the server went to the first `202` after it) | {unexplained} |"
    );
    println!("\nserver: {}", if held { "HELD" } else { "BROKEN" });
    held
}

/// For `CHIRP_RELIABILITY_DEBUG`: each outage and each duplicated key's
/// first delivery, in seconds from the first kill, to see which outage (if
/// any) a duplicate belongs to.
fn print_duplicates_against_outages(
    outages: &[(Instant, Instant)],
    delivered: &HashMap<String, u32>,
    first_delivered: &HashMap<String, Instant>,
) {
    let t0 = outages.first().map(|o| o.0).unwrap_or_else(Instant::now);
    let secs = |t: Instant| {
        t.checked_duration_since(t0).map_or_else(
            || -(t0.duration_since(t).as_secs_f64()),
            |d| d.as_secs_f64(),
        )
    };
    for (went, back) in outages {
        eprintln!("outage: went {:.2} back {:.2}", secs(*went), secs(*back));
    }
    let mut duplicates: Vec<_> = delivered
        .iter()
        .filter(|(_, n)| **n > 1)
        .filter_map(|(k, n)| Some((secs(*first_delivered.get(k)?), k, n)))
        .collect();
    duplicates.sort_by(|a, b| a.0.total_cmp(&b.0));
    for (first, key, n) in duplicates {
        eprintln!("duplicate {key} x{n}, first delivered at {first:.2}");
    }
}

#[tokio::main]
async fn main() {
    let options = parse_args();
    println!(
        "# chirp-reliability: {} kills at {} msg/s, chirp {}",
        options.kills,
        options.rate,
        options.chirp.display()
    );
    let wanted = |part: &str| options.only.as_deref().is_none_or(|only| only == part);
    let mut results = Vec::new();
    if wanted("crash") {
        results.push(("crash", crash(&options).await));
    }
    if wanted("faults") {
        results.push(("provider faults", provider_faults(&options).await));
    }
    if wanted("store") {
        results.push(("store: disk full", store_disk_full(&options).await));
        results.push(("store: read-only", store_read_only(&options).await));
    }
    if wanted("schemathesis") {
        results.push(("schemathesis", schemathesis(&options).await));
    }
    if wanted("server") {
        results.push((
            "SurrealDB server goes away",
            server_goes_away(&options).await,
        ));
    }
    println!("\n## Summary\n");
    for (name, held) in &results {
        println!("- {name}: {}", if *held { "held" } else { "BROKEN" });
    }
    if results.iter().any(|(_, held)| !held) {
        std::process::exit(1);
    }
}
