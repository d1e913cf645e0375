//! Scenario 10: the same drain through chirp's scheduler, once through the
//! MyOperator component and once through the same send written natively
//! ([`crate::native_provider`]), in turns, in this process.
//!
//! Why: scenario 7 times the send step alone, where the sandbox's fixed
//! cost per call is most of the work. What an operator pays is the
//! sandbox's share of a whole drain: claim, send, complete, on a durable
//! store. Each round drains a fresh `surrealkv://` store of the same
//! messages with chirp's own scheduler, retry policy, concurrency and
//! batching (its defaults); only the provider differs.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chirp::config::{Config, RawConfig};
use chirp::delivery::Providers;
use chirp::message::{NewMessage, now_millis};
use chirp::phone::Phone;
use chirp::queue::scheduler::Scheduler;
use chirp::store::{ServerAccess, Store};
use chirp::templates::{Catalog, Templates};
use tokio::sync::{Notify, watch};

use crate::native_provider::NativeMyOperator;
use crate::store_path::{new_message, store_memory};
use crate::{ACCOUNT_ID, API_KEY, PHONE_NUMBER_ID, load_component};
use chirp_harness::mock::faulty::Mock;

/// Rounds per provider, taken in turns (component, native, component ...)
/// so that the VM's swings in speed fall on both.
const ROUNDS: usize = 3;

/// One drain's figures.
struct Round {
    rate: f64,
    cpu_per_message: Duration,
}

/// Drains `count` messages per round through each provider and prints the
/// rates, the CPU per message and the component's rate as a share of
/// native.
pub async fn run(
    count: usize,
    plugin: &Path,
    mock: &Mock,
    work: &Path,
    process_cpu: fn() -> Duration,
) {
    let config = chirp_defaults();
    println!(
        "10. {} provider calls in flight (CHIRP_SEND_CONCURRENCY)",
        config.delivery.send_concurrency
    );
    let component =
        Arc::new(load_component(plugin, &mock.base, work, config.delivery.send_concurrency).await);
    let native = Arc::new(NativeMyOperator::new(
        &mock.base,
        API_KEY,
        ACCOUNT_ID,
        PHONE_NUMBER_ID,
    ));
    let mut through_component = Vec::new();
    let mut through_native = Vec::new();
    for round in 0..ROUNDS {
        let dir = work.join(format!("component-{round}"));
        let r = drain(&component, count, &dir, &config, mock, process_cpu).await;
        print_round("component", round, count, &r);
        through_component.push(r);
        let dir = work.join(format!("native-{round}"));
        let r = drain(&native, count, &dir, &config, mock, process_cpu).await;
        print_round("native", round, count, &r);
        through_native.push(r);
    }
    let component = median(&through_component);
    let native = median(&through_native);
    println!(
        "10. drain through chirp's scheduler, medians of {ROUNDS}: component {:.0} msg/s ({:.0} µs CPU per message), native {:.0} msg/s ({:.0} µs): the component drains at {:.0}% of native, and costs {:.0} µs more CPU per message",
        component.rate,
        micros(component.cpu_per_message),
        native.rate,
        micros(native.cpu_per_message),
        component.rate / native.rate * 100.0,
        micros(component.cpu_per_message) - micros(native.cpu_per_message),
    );
}

/// Fills a fresh store with `count` messages, then times chirp's
/// scheduler sending all of them through `providers` and recording every
/// outcome.
async fn drain<P: Providers>(
    providers: &Arc<P>,
    count: usize,
    dir: &Path,
    config: &Config,
    mock: &Mock,
    process_cpu: fn() -> Duration,
) -> Round {
    let url = format!("surrealkv://{}", dir.join("store").display());
    let store = Store::open(&url, &ServerAccess::default(), store_memory())
        .await
        .expect("open the store");
    let phone = Phone::parse("+919876543210").expect("phone");
    let messages: Vec<NewMessage> = (0..count).map(|n| new_message(n, &phone)).collect();
    for batch in messages.chunks(256) {
        store.insert_batch(batch).await.expect("insert");
    }
    let sent_before = mock.count();

    let (stop, stopped) = watch::channel(false);
    let started = Instant::now();
    let cpu_started = process_cpu();
    let templates = Arc::new(Templates::new(
        Catalog::load(&config.templates_dir).expect("the templates"),
    ));
    let scheduler = Scheduler::new(
        config,
        store.clone(),
        providers.clone(),
        Arc::new(Notify::new()),
        templates,
    );
    let running = tokio::spawn(scheduler.run(stopped));
    let target = sent_before + count as u64;
    let reached = mock.wait_for(target, Duration::from_secs(600)).await;
    assert!(
        reached >= target,
        "the drain stalled: {} of {count} sent",
        reached - sent_before
    );
    // The scheduler stops once every completion is written.
    let _ = stop.send(true);
    running.await.expect("scheduler");
    let took = started.elapsed();
    let cpu = process_cpu() - cpu_started;

    let statistics = store
        .statistics(0, now_millis() + 1)
        .await
        .expect("statistics");
    let sent = statistics
        .by_status
        .iter()
        .find(|c| c.key == "sent")
        .map_or(0, |c| c.count);
    assert_eq!(sent, count as u64, "every message ends sent");
    let _ = store.close().await;
    let _ = std::fs::remove_dir_all(dir);
    Round {
        rate: count as f64 / took.as_secs_f64(),
        cpu_per_message: cpu / count as u32,
    }
}

/// chirp's defaults for the scheduler (concurrency, lease, retries), with
/// no provider rate limit: the benchmark measures chirp, not the pacing.
/// `CHIRP_SEND_CONCURRENCY` is honoured as chirp would.
fn chirp_defaults() -> Config {
    let mut env: HashMap<String, String> = [
        ("CHIRP_INSECURE_NO_AUTH", "true"),
        ("CHIRP_PROVIDER_RATE", "1000000"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    if let Ok(concurrency) = std::env::var("CHIRP_SEND_CONCURRENCY") {
        env.insert("CHIRP_SEND_CONCURRENCY".into(), concurrency);
    }
    Config::from_parts(RawConfig::default(), env).expect("chirp's settings")
}

fn print_round(provider: &str, round: usize, count: usize, r: &Round) {
    println!(
        "   round {}, {provider}: {count} drained at {:.0} msg/s, {:.0} µs CPU per message (process, mock included)",
        round + 1,
        r.rate,
        micros(r.cpu_per_message)
    );
}

fn median(rounds: &[Round]) -> Round {
    let mut rates: Vec<f64> = rounds.iter().map(|r| r.rate).collect();
    let mut cpu: Vec<Duration> = rounds.iter().map(|r| r.cpu_per_message).collect();
    rates.sort_by(f64::total_cmp);
    cpu.sort();
    Round {
        rate: rates[rates.len() / 2],
        cpu_per_message: cpu[cpu.len() / 2],
    }
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}
