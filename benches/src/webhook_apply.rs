//! Scenario 13: how fast webhook receipts are stored and applied. A fresh
//! durable store gets `count` messages, sent through provider
//! `myoperator` with platform ids; then a `delivered` and a `read` receipt
//! for each are stored as the webhook route stores them (a request of
//! 1,000 events per transaction) and applied by chirp's applier
//! (`chirp::inbox::apply_inbox`: batches of 500, each message's delivery
//! moved and its receipts put on its timeline). Five rounds, each on a
//! fresh store; the median and range of each phase's events per second
//! and CPU per event.

use std::time::{Duration, Instant};

use chirp::inbox::{Inbox, apply_inbox};
use chirp::message::now_millis;
use chirp::webhooks::{Reported, StatusEvent, WebhookEvent};

use crate::store_path::{fresh_store, sent_messages};

/// Rounds, each on a fresh store.
const ROUNDS: usize = 5;
/// Events per webhook request.
const PER_REQUEST: usize = 1_000;

/// Runs the scenario on `count` messages per round in stores under `dir`.
pub async fn run(count: usize, dir: &std::path::Path, process_cpu: fn() -> Duration) {
    let mut stored = Vec::new();
    let mut applied = Vec::new();
    for round in 0..ROUNDS {
        let store = fresh_store(dir, &format!("webhooks-{round}")).await;
        let ids = sent_messages(&store, count, true).await;
        let events: Vec<WebhookEvent> = ids
            .iter()
            .flat_map(|id| {
                [(Reported::Delivered, 1_000), (Reported::Read, 2_000)].map(|(state, later)| {
                    WebhookEvent::Status(StatusEvent {
                        event_id: format!("{id}:{}", state.as_str()),
                        provider_message_id: id.clone(),
                        state,
                        at: now_millis() + later,
                        error: None,
                    })
                })
            })
            .collect();
        let started = Instant::now();
        let cpu = process_cpu();
        for request in events.chunks(PER_REQUEST) {
            store
                .enqueue_webhook_events("myoperator", request, now_millis())
                .await
                .expect("store events");
        }
        stored.push(figure(events.len(), started, process_cpu() - cpu));
        let inbox = Inbox::default();
        let config = webhooks_config();
        let started = Instant::now();
        let cpu = process_cpu();
        apply_inbox(&store, &inbox, &config).await.expect("apply");
        applied.push(figure(events.len(), started, process_cpu() - cpu));
        // Platform ids are `wamid.<message id>`.
        let read = store.message(ids[0].trim_start_matches("wamid.")).await;
        assert!(
            read.ok()
                .flatten()
                .is_some_and(|m| m.delivery.read_at.is_some()),
            "a receipt was not applied"
        );
        let _ = store.close().await;
    }
    for (what, figures) in [
        ("stored (the route's write)", &stored),
        ("applied to messages", &applied),
    ] {
        println!(
            "13. webhook receipts {what}, {} events, {} rounds: median {} events/s, CPU {} µs per event",
            2 * count,
            figures.len(),
            crate::spread(figures.iter().map(|f| f.0), 0),
            crate::spread(figures.iter().map(|f| f.1), 0),
        );
    }
}

fn figure(events: usize, started: Instant, cpu: Duration) -> (f64, f64) {
    (
        events as f64 / started.elapsed().as_secs_f64(),
        cpu.as_secs_f64() * 1e6 / events as f64,
    )
}

/// chirp's default webhook settings.
fn webhooks_config() -> chirp::config::WebhooksConfig {
    let env = [("CHIRP_INSECURE_NO_AUTH".to_string(), "true".to_string())]
        .into_iter()
        .collect();
    chirp::config::Config::from_parts(chirp::config::RawConfig::default(), env)
        .expect("default settings")
        .webhooks
}
