//! What the parts share: starting chirp, reading messages back, steady
//! load, sends whose outcome is checked, and the tables they print.

use crate::prelude::*;

/// A plugins directory with the MyOperator component.
pub(crate) fn plugins_dir(options: &Options, dir: &Path) -> PathBuf {
    let plugins = dir.join("plugins");
    std::fs::create_dir_all(&plugins).expect("plugins dir");
    std::fs::copy(&options.plugin, plugins.join("myoperator.wasm")).expect("copy plugin");
    plugins
}

pub(crate) fn start(setup: &Setup) -> ChirpProcess {
    setup.start().unwrap_or_else(|e| panic!("{e}"))
}

/// A small pseudo-random generator (the kill moments need no more).
pub(crate) struct Random(u64);

impl Random {
    pub(crate) fn new() -> Random {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(42);
        Random(seed | 1)
    }

    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// A response's JSON body (`null` if it has none).
pub(crate) async fn json_of(response: reqwest::Response) -> Value {
    serde_json::from_slice(&response.bytes().await.unwrap_or_default()).unwrap_or_default()
}

/// Every message in the store: idempotency key -> (id, status).
pub(crate) async fn all_messages(
    client: &reqwest::Client,
    base: &str,
) -> HashMap<String, (String, String)> {
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
pub(crate) async fn count_status(client: &reqwest::Client, base: &str, status: &str) -> usize {
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
pub(crate) async fn settle(client: &reqwest::Client, base: &str, timeout: Duration) -> bool {
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
pub(crate) fn missing_and_unfinished(
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
pub(crate) struct SteadyLoad {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<load::Report>,
}

impl SteadyLoad {
    pub(crate) fn start(options: &Options, base: &str, tag: &str) -> SteadyLoad {
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
    pub(crate) async fn finish(
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

/// Polls a message until it is `sent` or `failed`.
pub(crate) async fn final_message(client: &reqwest::Client, base: &str, id: &str) -> Value {
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

pub(crate) use chirp_bench::process::quietly as sh;

/// What [`send_some`] saw.
pub(crate) struct Sent {
    /// The keys answered `202`.
    pub(crate) accepted: Vec<String>,
    /// Every other answer, by status (0: none).
    pub(crate) other: HashMap<u16, usize>,
    /// The keys answered otherwise, each with the error's `code`.
    pub(crate) refused: Vec<(String, String)>,
}

/// Sends `n` messages, one after another.
pub(crate) async fn send_some(client: &reqwest::Client, base: &str, tag: &str, n: usize) -> Sent {
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
pub(crate) async fn recovery(
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
pub(crate) struct StepTable {
    held: bool,
}

impl StepTable {
    pub(crate) fn start() -> StepTable {
        println!("| step | sent | 202 | other answers | chirp alive | held |");
        println!("|---|---|---|---|---|---|");
        StepTable { held: true }
    }

    pub(crate) fn row(
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
    pub(crate) async fn healthy(
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
    pub(crate) fn accounting(
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
    pub(crate) fn verdict(&self, part: &str) -> bool {
        println!("\n{part}: {}", if self.held { "HELD" } else { "BROKEN" });
        self.held
    }
}

/// The refusals' codes, counted: `store_unavailable x 18, ...`.
pub(crate) fn codes(refused: &[(String, String)]) -> String {
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
