//! The scheduler: leases due messages to delivery workers and writes back
//! what each attempt came to.
//!
//! It has the shape of mini-redis's expiry task: work out the next instant
//! that matters (the earliest due message or lease expiry), then wait
//! on `select! { sleep_until(that), notified() }`. Enqueues and completed
//! retries notify it, so nothing waits for a polling interval.
//!
//! Claims are batched (one transaction leases as many messages as there are
//! free workers) and so are completions (one task commits whatever finished
//! while the previous batch was committing).
//!
//! **Invariant:** a leased message is completed only by the worker holding
//! its lease; if that worker dies, the lease runs out, the message is due
//! again, and a later claim takes it back. Delivery is therefore at least
//! once, and every attempt of a message carries the same idempotency key.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, Semaphore, mpsc, watch};
use tokio::time::Instant;

use super::before_send::{Pacing, around_open_breaker, hand_back, not_sent, wait_turn};
use super::breaker::{Admission, Breakers};
use super::outcome::{breaker_call, complete};
use super::retry::RetryPolicy;
use crate::delivery::{self, Providers};
use crate::gate::MarketingHours;
use crate::message::{Lane, Millis, after, now_millis};
use crate::plugins::Plugins;
use crate::store::{Completion, Store};
use crate::templates::Templates;

/// The most messages leased in one claim.
const CLAIM_BATCH: usize = 256;

/// How long to back off after the store failed a scheduler query.
const STORE_ERROR_PAUSE: Duration = Duration::from_secs(1);
/// How long after a message's due time its commit may land (a message
/// accepted just before a claim may commit after it): the floor of the next
/// claim stays at least this far below the claim's `now`.
const FLOOR_MARGIN: Duration = Duration::from_secs(10);
/// How often the floor drops back, so that a message committed later than
/// FLOOR_MARGIN after its due time waits at most about this long.
const FLOOR_RESET: Duration = Duration::from_secs(30);
/// How far the wall clock may step back (in milliseconds) before the
/// floor is dropped to 0.
const CLOCK_STEP_TOLERANCE: Millis = 1_000;

/// Everything the scheduler needs. It sends through chirp's plugins; the
/// benchmark gives it a native provider instead (see [`Providers`]).
pub struct Scheduler<P: Providers = Plugins> {
    /// Where messages are claimed and completed.
    pub store: Store,
    /// Who sends.
    pub providers: Arc<P>,
    /// The retry rule.
    pub policy: RetryPolicy,
    /// Woken when something may be due sooner.
    pub wake: Arc<Notify>,
    /// How long a claim holds a message.
    pub lease: Duration,
    /// Provider calls in flight at once.
    pub concurrency: usize,
    /// Sends per second per provider; attempts wait for their turn.
    pub provider_rate: std::num::NonZeroU32,
    /// The longest a provider call may take (its sandbox's wall time).
    pub longest_call: Duration,
    /// The catalog in force, for the checks before each send.
    pub templates: Arc<Templates>,
    /// When marketing may go out, in the recipient's time zone.
    pub marketing_hours: MarketingHours,
    /// The operator's consent policy, checked again before each send.
    pub consent: crate::preferences::Consent,
    /// Told the platform id of each send, for receipts that came first.
    pub inbox: Arc<crate::inbox::Inbox>,
    /// Each provider's circuit breaker: asked before each attempt, told
    /// what came of it.
    pub breakers: Arc<Breakers>,
}

impl<P: Providers> Scheduler<P> {
    /// The scheduler `config` describes, sending through `providers` and
    /// checking messages against `templates` before each send.
    pub fn new(
        config: &crate::Config,
        store: Store,
        providers: Arc<P>,
        wake: Arc<Notify>,
        templates: Arc<Templates>,
    ) -> Scheduler<P> {
        Scheduler {
            store,
            providers,
            policy: config.retry_policy(),
            wake,
            lease: config.delivery.lease,
            concurrency: config.delivery.send_concurrency,
            provider_rate: std::num::NonZeroU32::new(config.delivery.provider_rate)
                .unwrap_or(std::num::NonZeroU32::MIN),
            longest_call: config.longest_plugin_call(),
            templates,
            marketing_hours: config.delivery.marketing_hours,
            consent: config.delivery.consent(),
            inbox: Arc::default(),
            breakers: Arc::new(Breakers::new(config.delivery.breaker)),
        }
    }

    /// Runs until `shutdown` turns true, then waits for the attempts in
    /// flight and their completions to be written.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let (done_tx, done_rx) = mpsc::channel(self.concurrency.max(1) * 2);
        let writer = tokio::spawn(completion_loop(
            self.store.clone(),
            done_rx,
            self.wake.clone(),
            self.lease,
            self.inbox.clone(),
        ));
        let workers = Arc::new(Semaphore::new(self.concurrency));
        let pace = Arc::new(Pacing::new(self.provider_rate));
        let releaser = tokio::spawn(release_on_load(
            self.store.clone(),
            self.providers.subscribe_loaded(),
            self.wake.clone(),
        ));

        // Claims scan the due index from `floor`, not from 0 (see
        // `Store::claim_due`). The first claim starts at 0 and finds
        // everything committed before this start. Every FLOOR_RESET the
        // floor drops back to FLOOR_MARGIN before the previous reset: a
        // message committed since then was due no earlier than that, and
        // anything older was in reach of the previous reset's scan. Not to
        // 0: the scan would walk the index entries of every message claimed
        // since the store's last compaction (hundreds of thousands after a
        // drain), stalling the queue for seconds.
        // Each lane has its own floor (they are disjoint ranges of the
        // index), kept by the same rule.
        let mut floors: [Millis; 2] = [0, 0];
        let mut reset_floor: Millis = 0;
        let mut next_floor_reset = Instant::now();
        let mut last_now = now_millis();

        while !*shutdown.borrow() {
            let now = now_millis();
            if now < last_now - CLOCK_STEP_TOLERANCE {
                // The wall clock stepped back: due times written from now
                // on may lie below any floor. Scan everything again.
                tracing::warn!(
                    stepped_back_ms = last_now - now,
                    "the clock stepped back; scanning the whole queue"
                );
                reset_floor = 0;
                next_floor_reset = Instant::now();
            }
            last_now = now;
            if Instant::now() >= next_floor_reset {
                for floor in &mut floors {
                    *floor = (*floor).min(reset_floor);
                }
                reset_floor = now - FLOOR_MARGIN.as_millis() as Millis;
                next_floor_reset = Instant::now() + FLOOR_RESET;
            }

            let free = workers.available_permits().min(CLAIM_BATCH);
            if free == 0 {
                // Every worker is busy: wait for one to finish.
                tokio::select! {
                    permit = workers.acquire() => drop(permit),
                    _ = shutdown.changed() => {}
                }
                continue;
            }

            let now = now_millis();
            let lease = ulid::Ulid::new().to_string();
            let lease_until = after(now, self.lease);
            // Transactional first; marketing gets the workers left over.
            let mut claimed = Vec::new();
            let mut failed = false;
            for (lane, floor) in Lane::ALL.into_iter().zip(floors.iter_mut()) {
                let left = free - claimed.len();
                if left == 0 {
                    break;
                }
                match self
                    .store
                    .claim_due(lane, now, *floor, left, lease_until, &lease)
                    .await
                {
                    Ok(leased) => {
                        if let Some(newest) = leased.iter().filter_map(|l| l.message.due_at).max() {
                            // The claim took the oldest due first, so
                            // anything due before `newest` that it left was
                            // committed after the claim began, and such a
                            // message was due no earlier than FLOOR_MARGIN
                            // before `now` (a commit takes less than that).
                            // Below the floor lie only the index entries of
                            // claimed messages, which every scan would walk
                            // again.
                            *floor =
                                (*floor).max(newest.min(now - FLOOR_MARGIN.as_millis() as Millis));
                        }
                        claimed.extend(leased);
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "claiming due messages failed");
                        failed = true;
                        break;
                    }
                }
            }
            if failed && claimed.is_empty() {
                tokio::select! {
                    _ = tokio::time::sleep(STORE_ERROR_PAUSE) => {}
                    _ = shutdown.changed() => {}
                }
                continue;
            }
            let full = claimed.len() == free;
            let taken_back = claimed.iter().filter(|l| l.lease_expired).count();
            if taken_back > 0 {
                tracing::warn!(
                    messages = taken_back,
                    "leases ran out; those messages are sent again"
                );
            }
            // A worker must start its call early enough to finish it, and
            // have it recorded, inside the lease: after this, it hands the
            // message back instead of sending it.
            let latest_start =
                lease_until - (self.longest_call + self.lease / 10).as_millis() as Millis;
            let verdicts = self.verdicts(&claimed, now).await;
            for (leased, verdict) in claimed.into_iter().zip(verdicts) {
                if let Some(completion) = not_sent(&leased, verdict, now) {
                    let _ = done_tx.send(completion).await;
                    continue;
                }
                if let Admission::Wait(until) = self.breakers.admit(&leased.message.provider, now) {
                    let _ = done_tx.send(around_open_breaker(&leased, until, now)).await;
                    continue;
                }
                let Ok(permit) = workers.clone().try_acquire_owned() else {
                    break; // cannot happen: we claimed no more than were free
                };
                let providers = self.providers.clone();
                let policy = self.policy.clone();
                let breakers = self.breakers.clone();
                let done = done_tx.clone();
                let pace = pace.clone();
                tokio::spawn(async move {
                    // The provider's rate limit delays the attempt; it never
                    // fails it. The wait must not eat the lease: a message
                    // whose turn comes too late to finish its call inside
                    // the lease goes back to the queue unsent, due when its
                    // turn would have come (without using up the turn), or
                    // another worker could take it back and send it twice.
                    if let Err(turn) = wait_turn(
                        &pace,
                        &leased.message.provider,
                        leased.message.lane,
                        latest_start,
                    )
                    .await
                    {
                        let _ = done.send(hand_back(&leased, turn, now_millis())).await;
                        drop(permit);
                        return;
                    }
                    let span = tracing::info_span!(
                        "attempt",
                        message_id = %leased.message.id,
                        provider = %leased.message.provider,
                        to = %crate::phone::mask(&leased.message.phone),
                        attempt = leased.message.attempts + 1
                    );
                    let delivery = tracing::Instrument::instrument(
                        delivery::attempt(providers.as_ref(), &leased),
                        span,
                    )
                    .await;
                    if let Some(call) = breaker_call(&delivery) {
                        breakers.record(&leased.message.provider, call, now_millis());
                    }
                    let receipts = providers.sends_receipts(&leased.message.provider);
                    let completion = complete(&leased, delivery, &policy, receipts, now_millis());
                    let _ = done.send(completion).await;
                    drop(permit);
                });
            }
            if full {
                continue; // there may be more due right now
            }

            let wake_at = match self.store.next_due(floors).await {
                Ok(Some(due)) => {
                    let wait = Duration::from_millis((due - now_millis()).max(0) as u64);
                    (Instant::now() + wait).min(next_floor_reset)
                }
                Ok(None) => next_floor_reset,
                Err(e) => {
                    tracing::error!(error = %e, "reading the next due time failed");
                    Instant::now() + STORE_ERROR_PAUSE
                }
            };
            tokio::select! {
                _ = tokio::time::sleep_until(wake_at) => {}
                _ = self.wake.notified() => {}
                _ = shutdown.changed() => {}
            }
        }

        // Let the attempts in flight finish; their completions are written
        // before the writer sees its channel close.
        releaser.abort();
        let _ = workers.acquire_many(self.concurrency as u32).await;
        drop(done_tx);
        let _ = writer.await;
    }
}

/// When a provider is loaded, the messages that were waiting for it are
/// due at once.
async fn release_on_load(
    store: Store,
    mut loaded: tokio::sync::broadcast::Receiver<String>,
    wake: Arc<Notify>,
) {
    loop {
        let name = match loaded.recv().await {
            Ok(name) => name,
            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
        };
        match store.release_waiting(&name, now_millis()).await {
            Ok(0) => {}
            Ok(n) => {
                tracing::info!(provider = %name, messages = n, "provider loaded; waiting messages released");
                wake.notify_one();
            }
            Err(e) => {
                tracing::error!(error = %e, "releasing messages waiting for a provider failed")
            }
        }
    }
}

/// Writes completions in batches. A batch the store refuses is retried: its
/// messages are still leased, so nothing else touches them meanwhile, and
/// if chirp dies first the leases run out and the messages are sent again.
///
/// The pause between retries doubles up to a quarter of the lease (at most
/// 5 s). Completions are written in order, so every message sent after the
/// refused batch waits behind it; a pause longer than their leases would
/// let them run out once the store is back, and those messages would be
/// sent again (seen with a 2 s lease and a SurrealDB server restarted
/// under load, RELIABILITY.md part 5).
async fn completion_loop(
    store: Store,
    mut rx: mpsc::Receiver<Completion>,
    wake: Arc<Notify>,
    lease: Duration,
    inbox: Arc<crate::inbox::Inbox>,
) {
    let longest_pause = (lease / 4).clamp(Duration::from_millis(50), Duration::from_secs(5));
    let mut batch = Vec::with_capacity(CLAIM_BATCH);
    while rx.recv_many(&mut batch, CLAIM_BATCH).await > 0 {
        let mut pause = Duration::from_millis(50);
        loop {
            match store.complete(batch.clone()).await {
                Ok(()) => break,
                Err(e) => {
                    tracing::error!(error = %e, completions = batch.len(), "recording attempts failed; retrying");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(longest_pause);
                }
            }
        }
        for completion in &batch {
            if let (Some(attempt), Some(platform_id)) =
                (&completion.attempt, &completion.patch.provider_message_id)
            {
                inbox.sent(&attempt.provider, platform_id);
            }
        }
        batch.clear();
        // A retry may now be due before whatever the scheduler waits for.
        wake.notify_one();
    }
}

#[cfg(test)]
mod tests;
