//! The scheduler's completion rule and loops, on a store in memory.

use std::collections::HashMap;
use std::sync::Mutex;

use super::*;
use crate::message::Status;
use crate::plugins::bindings::{self, Receipt};
use crate::plugins::{CallError, NotLoaded, SendAnswer};
use crate::store::{memory_store, test_message};
use crate::templates::Catalog;

/// A provider that answers at once and counts the sends of each
/// message.
#[derive(Default)]
struct Counting {
    sends: Mutex<HashMap<String, usize>>,
    loaded: Option<tokio::sync::broadcast::Sender<String>>,
}

impl Providers for Counting {
    async fn send(
        &self,
        _name: &str,
        message: &bindings::Message,
    ) -> Result<(String, Result<SendAnswer, CallError>), NotLoaded> {
        *self
            .sends
            .lock()
            .unwrap()
            .entry(message.id.clone())
            .or_default() += 1;
        let receipt = Receipt {
            provider_message_id: Some(format!("sent-{}", message.id)),
        };
        Ok(("1".into(), Ok(Ok(receipt))))
    }

    fn subscribe_loaded(&self) -> tokio::sync::broadcast::Receiver<String> {
        self.loaded
            .clone()
            .unwrap_or_else(|| tokio::sync::broadcast::channel(1).0)
            .subscribe()
    }
}

/// 24 messages due at once, 4 sends a second, 24 workers and a 1.5 s
/// lease: most wait their turn longer than their lease. A later claim
/// takes each such message back, and without the check before the wait
/// (checked once, waiting as governor's `until_key_ready` does) the
/// first worker sent it too: 16 of the 24 went 2 to 10 times. With it,
/// each is sent once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_its_turn_never_outlasts_a_lease_and_sends_twice() {
    let store = memory_store().await;
    let now = now_millis();
    let batch: Vec<_> = (0..24).map(|n| test_message(n, now)).collect();
    let ids: Vec<String> = batch.iter().map(|m| m.id.clone()).collect();
    store.insert_batch(&batch).await.expect("insert");
    let providers = Arc::new(Counting::default());
    let catalog =
        Catalog::load(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../templates"))
            .expect("catalog");
    let scheduler = Scheduler {
        store: store.clone(),
        providers: providers.clone(),
        policy: RetryPolicy {
            max_attempts: 3,
            backoff: vec![Duration::from_millis(50)],
            max_retry_after: Duration::from_secs(1),
            fallback_codes: Vec::new(),
        },
        wake: Arc::new(Notify::new()),
        lease: Duration::from_millis(1500),
        concurrency: 24,
        provider_rate: std::num::NonZeroU32::new(4).expect("rate"),
        longest_call: Duration::from_millis(500),
        templates: Arc::new(Templates::new(catalog)),
        marketing_hours: MarketingHours::default(),
        consent: crate::preferences::Consent::default(),
        inbox: Arc::default(),
        breakers: Arc::new(crate::queue::breaker::Breakers::new(
            crate::queue::breaker::BreakerSettings {
                failures: 10,
                open_for: Duration::from_secs(30),
            },
        )),
    };
    let (stop, stopped) = watch::channel(false);
    let running = tokio::spawn(scheduler.run(stopped));
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut sent = 0;
        for id in &ids {
            let message = store.message(id).await.expect("read").expect("stored");
            sent += usize::from(message.status == Status::Sent);
        }
        if sent == ids.len() || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = stop.send(true);
    let _ = running.await;
    let sends = providers.sends.lock().unwrap().clone();
    let twice: Vec<_> = sends.values().filter(|n| **n > 1).collect();
    assert!(twice.is_empty(), "sent more than once: {sends:?}");
    assert_eq!(sends.len(), ids.len(), "every message is sent");
}
