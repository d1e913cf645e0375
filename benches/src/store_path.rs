//! Scenario 9: the queue's store work alone, in this process, with no HTTP,
//! no rendering and no provider: insert in the commit loop's batches, then
//! claim and complete in the scheduler's batches, on a fresh durable
//! `surrealkv://` store.
//!
//! Why: a drain through chirp shares two cores between the store, the
//! component, HTTP and the mock. This says how fast the store's share alone
//! can go, so a drain figure can be read as "store-bound" or not.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use chirp::config::{Config, RawConfig};
use chirp::message::{Attempt, Millis, NewMessage, Outcome, ProviderTemplate, Status, now_millis};
use chirp::phone::Phone;
use chirp::store::{Completion, EmbeddedMemory, MessagePatch, ServerAccess, Store};

/// The batch size of the commit loop and of a claim (chirp's own limits).
const BATCH: usize = 256;

/// What one phase measured.
struct Phase {
    messages: usize,
    took: Duration,
    cpu: Duration,
}

impl Phase {
    fn print(&self, what: &str) {
        let secs = self.took.as_secs_f64();
        println!(
            "9. store alone, {what}: {} in {secs:.2} s = {:.0} msg/s; CPU {:.1} µs per message",
            self.messages,
            self.messages as f64 / secs,
            self.cpu.as_secs_f64() * 1e6 / self.messages as f64,
        );
    }
}

/// Runs the scenario on `count` messages in a store under `dir`.
pub async fn run(count: usize, dir: &std::path::Path, process_cpu: fn() -> Duration) {
    let url = format!("surrealkv://{}", dir.join("store").display());
    let memory = store_memory();
    let store = Store::open(&url, &ServerAccess::default(), memory)
        .await
        .expect("open the store");

    let started = Instant::now();
    let cpu_started = process_cpu();
    let phone = Phone::parse("+919876543210").expect("phone");
    for first in (0..count).step_by(BATCH) {
        let batch: Vec<NewMessage> = (first..(first + BATCH).min(count))
            .map(|n| new_message(n, &phone))
            .collect();
        store.insert_batch(&batch).await.expect("insert");
    }
    Phase {
        messages: count,
        took: started.elapsed(),
        cpu: process_cpu() - cpu_started,
    }
    .print("insert (batches of 256, caller idempotency keys)");

    let started = Instant::now();
    let cpu_started = process_cpu();
    let mut floor: Millis = 0;
    let mut drained = 0;
    let mut claiming = Duration::ZERO;
    while drained < count {
        let claim_started = Instant::now();
        let now = now_millis();
        let lease = format!("lease-{drained}");
        let claimed = store
            .claim_due(
                chirp::message::Lane::Transactional,
                now,
                floor,
                BATCH,
                now + 60_000,
                &lease,
            )
            .await
            .expect("claim");
        claiming += claim_started.elapsed();
        if claimed.is_empty() {
            break;
        }
        if let Some(newest) = claimed.iter().filter_map(|l| l.message.due_at).max() {
            floor = floor.max(newest);
        }
        drained += claimed.len();
        let done = now_millis();
        let completions = claimed
            .into_iter()
            .map(|leased| {
                let number = leased.message.attempts + 1;
                Completion {
                    report: None,
                    hop: None,
                    watch_at: None,
                    message_id: leased.message.id.clone(),
                    lease: leased.lease,
                    patch: MessagePatch {
                        status: Status::Sent,
                        attempts: number.into(),
                        updated_at: done,
                        due_at: None,
                        sent_at: Some(done),
                        provider_message_id: Some(format!("wamid.{}", leased.message.id)),
                        error_code: None,
                        error_message: None,
                        waiting_for: None,
                        lane: Default::default(),
                    },
                    attempt: Some(Attempt {
                        message_id: leased.message.id,
                        number,
                        started_at: now,
                        provider: "myoperator".into(),
                        provider_version: "0.1.0".into(),
                        outcome: Outcome::Sent {
                            provider_message_id: None,
                        },
                        latency_ms: 1,
                    }),
                }
            })
            .collect();
        store.complete(completions).await.expect("complete");
    }
    Phase {
        messages: drained,
        took: started.elapsed(),
        cpu: process_cpu() - cpu_started,
    }
    .print("claim + complete (batches of 256, one after the other)");
    if drained > 0 {
        let per_message = |d: Duration| d.as_secs_f64() * 1e6 / drained as f64;
        println!(
            "   of which claiming {:.0} µs and completing {:.0} µs per message (wall clock)",
            per_message(claiming),
            per_message(started.elapsed().saturating_sub(claiming)),
        );
    }
    if drained != count {
        println!("   (only {drained} of {count} were claimed)");
    }
    let _ = store.close().await;
}

/// The embedded store's memory as chirp would size it from
/// `CHIRP_STORE_MEMTABLE_MB` and `CHIRP_STORE_CACHE_MB` (chirp's own
/// parsing and limits; the rest of chirp's configuration does not matter
/// here).
pub fn store_memory() -> EmbeddedMemory {
    let mut env: HashMap<String, String> = ["CHIRP_STORE_MEMTABLE_MB", "CHIRP_STORE_CACHE_MB"]
        .into_iter()
        .filter_map(|name| {
            std::env::var(name)
                .ok()
                .map(|value| (name.to_string(), value))
        })
        .collect();
    env.insert("CHIRP_INSECURE_NO_AUTH".into(), "true".into());
    Config::from_parts(RawConfig::default(), env)
        .expect("store memory settings")
        .store
        .memory
}

/// A message shaped like the benchmark's `order_confirmation` sends.
pub fn new_message(n: usize, phone: &Phone) -> NewMessage {
    let id = ulid::Ulid::new().to_string();
    let now = now_millis();
    NewMessage {
        idempotency_key: format!("store-{n}"),
        id,
        phone: phone.clone(),
        template: Some("order_confirmation".into()),
        template_version: Some(1),
        text: format!("Your order #{n} is confirmed for delivery on 25 Nov. Total: Rs 240."),
        provider_template: Some(ProviderTemplate {
            name: "order_confirmation".into(),
            language: "en".into(),
            parameters: vec![n.to_string(), "25 Nov".into(), "240".into()],
        }),
        reference_id: Some(format!("order-{n}")),
        provider: "myoperator".into(),
        created_at: now,
        not_before: now,
        expires_at: None,
        lane: Default::default(),
        fallbacks: Vec::new(),
        deliver_within_ms: None,
        skip: None,
        override_opt_out: false,
        fingerprint: format!("order-{n}"),
        callbacks: Vec::new(),
    }
}

/// A fresh durable store named `name` under `dir`, bounded as chirp
/// bounds its own.
pub async fn fresh_store(dir: &std::path::Path, name: &str) -> Store {
    let url = format!("surrealkv://{}", dir.join(name).display());
    Store::open(&url, &ServerAccess::default(), store_memory())
        .await
        .expect("open the store")
}

/// `count` messages inserted, claimed and completed as sent in chirp's
/// batches, each with the platform id `wamid.<message id>`, and, with
/// `attempts`, an attempt through `myoperator` (which maps the platform id
/// to the message, as a real send does). Returns the platform ids.
pub async fn sent_messages(store: &Store, count: usize, attempts: bool) -> Vec<String> {
    let phone = Phone::parse("+919876543210").expect("phone");
    for first in (0..count).step_by(BATCH) {
        let batch: Vec<_> = (first..(first + BATCH).min(count))
            .map(|n| new_message(n, &phone))
            .collect();
        store.insert_batch(&batch).await.expect("insert");
    }
    let mut platform_ids = Vec::with_capacity(count);
    loop {
        let now = now_millis();
        let claimed = store
            .claim_due(
                chirp::message::Lane::Transactional,
                now,
                0,
                BATCH,
                now + 60_000,
                "lease",
            )
            .await
            .expect("claim");
        if claimed.is_empty() {
            return platform_ids;
        }
        let completions = claimed
            .into_iter()
            .map(|leased| {
                let platform_id = format!("wamid.{}", leased.message.id);
                platform_ids.push(platform_id.clone());
                Completion {
                    report: None,
                    hop: None,
                    watch_at: None,
                    message_id: leased.message.id.clone(),
                    lease: leased.lease,
                    patch: MessagePatch {
                        status: Status::Sent,
                        attempts: 1,
                        updated_at: now,
                        due_at: None,
                        sent_at: Some(now),
                        provider_message_id: Some(platform_id.clone()),
                        error_code: None,
                        error_message: None,
                        waiting_for: None,
                        lane: Default::default(),
                    },
                    attempt: attempts.then(|| Attempt {
                        message_id: leased.message.id,
                        number: 1,
                        started_at: now,
                        provider: "myoperator".into(),
                        provider_version: "0.1.0".into(),
                        outcome: Outcome::Sent {
                            provider_message_id: Some(platform_id),
                        },
                        latency_ms: 5,
                    }),
                }
            })
            .collect();
        store.complete(completions).await.expect("complete");
    }
}
