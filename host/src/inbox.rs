//! The webhook inbox's applier: one task that moves what providers'
//! webhooks reported from the inbox onto messages and phones (see
//! `store::webhooks`), matches receipts that came before their send's
//! completion once the platform id lands, and forgets receipts that never
//! found their message.
//!
//! **Invariant:** one task writes messages' delivery facts, so two receipts
//! for one message never race (each is read, applied in memory with
//! [`crate::status::Delivery`] and written back).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::{Notify, watch};

use crate::config::WebhooksConfig;
use crate::message::now_millis;
use crate::preferences::OptOutNote;
use crate::store::{InboxEvent, Store, StoreError};
use crate::webhooks::WebhookEvent;

/// Inbox events applied per transaction.
const BATCH: usize = 500;
/// Platform ids of completed sends remembered for matching at once; past
/// it, the next sweep matches them.
const MAX_COMPLETED: usize = 10_000;
/// How often receipts still unmatched are matched again and the old ones
/// forgotten.
const SWEEP: Duration = Duration::from_secs(300);

/// What the API and the scheduler tell the applier.
#[derive(Default)]
pub struct Inbox {
    wake: Notify,
    /// Receipts waiting for their message (an estimate between sweeps:
    /// duplicates count twice until the next sweep counts again).
    unmatched: AtomicUsize,
    /// Events stored and not yet applied (counted from the store at start
    /// and at each sweep, kept up to date between).
    pending: AtomicUsize,
    /// `(plugin, platform id)` of sends completed while receipts wait.
    completed: Mutex<Vec<(String, String)>>,
    /// Completions were dropped past [`MAX_COMPLETED`]: sweep soon.
    overflowed: AtomicBool,
}

impl Inbox {
    /// `events` were stored: apply them.
    pub fn arrived(&self, events: usize) {
        self.pending.fetch_add(events, Ordering::Relaxed);
        self.wake.notify_one();
    }

    /// Events stored and not yet applied, as far as the applier knows.
    pub fn pending(&self) -> usize {
        self.pending.load(Ordering::Relaxed)
    }

    /// Receipts waiting for their message, as far as the applier knows.
    pub fn unmatched(&self) -> usize {
        self.unmatched.load(Ordering::Relaxed)
    }

    /// A send of `plugin` completed with `platform_id`: receipts that came
    /// first can now be matched. Costs nothing while none wait.
    pub fn sent(&self, plugin: &str, platform_id: &str) {
        if self.unmatched() == 0 {
            return;
        }
        if let Ok(mut completed) = self.completed.lock() {
            if completed.len() < MAX_COMPLETED {
                completed.push((plugin.to_string(), platform_id.to_string()));
            } else {
                self.overflowed.store(true, Ordering::Relaxed);
            }
        }
        self.wake.notify_one();
    }
}

/// Applies the inbox until `stop` turns true.
pub async fn run(
    store: Store,
    inbox: Arc<Inbox>,
    config: WebhooksConfig,
    mut stop: watch::Receiver<bool>,
) {
    let mut last_sweep = None;
    loop {
        let due = last_sweep.is_none_or(|at: tokio::time::Instant| at.elapsed() >= SWEEP)
            || inbox.overflowed.swap(false, Ordering::Relaxed);
        if due {
            match sweep(&store, &inbox, &config).await {
                Ok(()) => last_sweep = Some(tokio::time::Instant::now()),
                Err(e) => {
                    tracing::warn!(error = %e, "matching waiting receipts failed; trying again later")
                }
            }
        }
        if let Err(e) = apply_inbox(&store, &inbox, &config).await {
            tracing::warn!(error = %e, "applying webhook events failed; trying again");
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        }
        if let Err(e) = match_completed(&store, &inbox, &config).await {
            tracing::warn!(error = %e, "matching receipts failed; the next sweep tries again");
        }
        tokio::select! {
            _ = inbox.wake.notified() => {}
            _ = tokio::time::sleep(SWEEP) => {}
            _ = stop.wait_for(|stop| *stop) => return,
        }
    }
}

/// Applies everything in the inbox, a batch per transaction, and the
/// opt-outs it carries (`config`'s keywords and platform codes).
pub async fn apply_inbox(
    store: &Store,
    inbox: &Inbox,
    config: &WebhooksConfig,
) -> Result<(), StoreError> {
    loop {
        let batch = store.webhook_inbox(BATCH).await?;
        if batch.is_empty() {
            return Ok(());
        }
        // Before the batch leaves the inbox: a failure here leaves it to
        // be tried again, and an opt-out recorded twice changes nothing.
        opt_outs(store, config, &batch).await?;
        let (applied, unmatched) = store.apply_webhook_events(&batch).await?;
        let _ = inbox
            .pending
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                Some(n.saturating_sub(batch.len()))
            });
        inbox
            .unmatched
            .fetch_add(unmatched.len(), Ordering::Relaxed);
        crate::telemetry::webhook_events_applied(&applied);
        // A send that completed between the lookup above and now told no
        // one (nothing was waiting yet): look once more, now that the
        // count says receipts wait.
        match_ids(store, inbox, config, unmatched).await?;
    }
}

/// Matches the receipts waiting for the platform ids of sends completed
/// since the last time.
async fn match_completed(
    store: &Store,
    inbox: &Inbox,
    config: &WebhooksConfig,
) -> Result<(), StoreError> {
    let completed = match inbox.completed.lock() {
        Ok(mut completed) => std::mem::take(&mut *completed),
        Err(_) => return Ok(()),
    };
    match_ids(store, inbox, config, completed).await
}

/// Matches the receipts waiting for these `(plugin, platform id)`s. A
/// failure among them whose code says the customer stopped marketing opts
/// the phone out before the receipt leaves the waiting list, so a failure
/// here leaves it to the next match.
async fn match_ids(
    store: &Store,
    inbox: &Inbox,
    config: &WebhooksConfig,
    ids: Vec<(String, String)>,
) -> Result<(), StoreError> {
    let mut by_plugin: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (plugin, id) in ids {
        by_plugin.entry(plugin).or_default().push(id);
    }
    for (plugin, mut ids) in by_plugin {
        ids.sort();
        ids.dedup();
        for chunk in ids.chunks(BATCH) {
            let waiting = store.waiting_receipts(&plugin, chunk).await?;
            for (message_id, code) in waiting.failures() {
                if !config.marketing_stopped_codes.contains(&code) {
                    continue;
                }
                if let Some(message) = store.message(&message_id).await? {
                    opt_out(store, &message.phone, format!("platform:{code}")).await?;
                }
            }
            let applied = store.match_waiting(waiting).await?;
            let _ = inbox
                .unmatched
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                    Some(n.saturating_sub(applied.receipts))
                });
            crate::telemetry::webhook_events_applied(&applied);
        }
    }
    Ok(())
}

/// Forgets receipts kept past `unmatched_for`, matches those whose message
/// has come since (a completion this process did not see: before a
/// restart, or past [`MAX_COMPLETED`]), and counts what is left.
async fn sweep(store: &Store, inbox: &Inbox, config: &WebhooksConfig) -> Result<(), StoreError> {
    let before = now_millis().saturating_sub(config.unmatched_for.as_millis() as i64);
    let forgotten = store.forget_unmatched_receipts(before).await?;
    if forgotten > 0 {
        tracing::info!(
            forgotten,
            "receipts that never found their message forgotten"
        );
    }
    let waiting = store.unmatched_receipts(config.max_unmatched).await?;
    let ids = waiting
        .into_iter()
        .map(|r| (r.plugin, r.provider_message_id))
        .collect();
    match_ids(store, inbox, config, ids).await?;
    inbox
        .unmatched
        .store(store.count_unmatched_receipts().await?, Ordering::Relaxed);
    inbox
        .pending
        .store(store.count_webhook_inbox().await?, Ordering::Relaxed);
    Ok(())
}

/// Opts phones out of marketing for what `batch` carries: a customer's
/// message that is one of the keywords, or a failure whose code says the
/// customer stopped marketing, for a message chirp knows (one whose
/// platform id has not landed yet opts out when it is matched, in
/// [`match_ids`]).
async fn opt_outs(
    store: &Store,
    config: &WebhooksConfig,
    batch: &[InboxEvent],
) -> Result<(), StoreError> {
    for event in batch {
        let (phone, source) = match &event.event {
            WebhookEvent::Inbound(message) => {
                let said = message
                    .text
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ")
                    .to_lowercase();
                if !config.opt_out_keywords.contains(&said) {
                    continue;
                }
                (message.from.as_str().to_string(), format!("keyword:{said}"))
            }
            WebhookEvent::Status(status) => {
                let Some(code) = status
                    .error
                    .as_ref()
                    .map(|e| &e.code)
                    .filter(|code| config.marketing_stopped_codes.contains(code))
                else {
                    continue;
                };
                let Some(message) = store
                    .message_of_platform_id(&event.plugin, &status.provider_message_id)
                    .await?
                else {
                    continue;
                };
                (message.phone, format!("platform:{code}"))
            }
        };
        opt_out(store, &phone, source).await?;
    }
    Ok(())
}

/// Opts `phone` out of marketing, recording `source` and the time; a phone
/// already opted out keeps its first record.
async fn opt_out(store: &Store, phone: &str, source: String) -> Result<(), StoreError> {
    if phone == crate::customers::ERASED_PHONE {
        return Ok(());
    }
    let mut preferences = store.preferences(phone).await?;
    if preferences.opt_out_marketing {
        return Ok(());
    }
    preferences.opt_out_marketing = true;
    preferences.marketing_opt_out_by = Some(OptOutNote {
        source: source.clone(),
        at: now_millis(),
    });
    store.save_preferences(preferences).await?;
    tracing::info!(%source, "a phone opted out of marketing");
    Ok(())
}
