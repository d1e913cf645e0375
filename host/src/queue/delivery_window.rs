//! The delivery window: a message sent through a provider that reports
//! receipts, with a route left, waits a while (its template's
//! `deliver_within`) for the platform's `delivered`. If none came, it
//! moves to its next route (WhatsApp to SMS), once; a `delivered` or
//! `read` that lands first keeps it where it is, and the store's condition
//! makes the two exclusive.
//!
//! One task looks every [`LOOK_EVERY`] at the watches that came due
//! (`store/messages/watch.rs`) and wakes the scheduler when it moved any.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, watch};

use crate::message::{ErrorNote, Message, Millis, now_millis, rfc3339};
use crate::status::Status;
use crate::store::{DueWatch, Store};

/// How often due watches are looked at.
pub const LOOK_EVERY: Duration = Duration::from_secs(1);
/// The most watches handled per look.
const PER_LOOK: usize = 200;

/// Runs until `shutdown` turns true.
pub async fn run(store: Store, wake: Arc<Notify>, mut shutdown: watch::Receiver<bool>) {
    while !*shutdown.borrow() {
        tokio::select! {
            _ = tokio::time::sleep(LOOK_EVERY) => {}
            _ = shutdown.changed() => {}
        }
        match look(&store, now_millis()).await {
            Ok(0) => {}
            Ok(moved) => {
                tracing::info!(
                    messages = moved,
                    "no delivery receipt in time: moved to the next route"
                );
                wake.notify_one();
            }
            Err(e) => tracing::error!(error = %e, "looking at sends waiting for delivery failed"),
        }
    }
}

/// Handles the watches due at `now`; returns how many messages moved.
pub async fn look(store: &Store, now: Millis) -> Result<usize, crate::store::StoreError> {
    let mut moved = 0;
    for watch in store.undelivered_due(now, PER_LOOK).await? {
        let message = store.message(&watch.message_id).await?;
        moved += usize::from(decide(store, &watch, message, now).await?);
    }
    Ok(moved)
}

async fn decide(
    store: &Store,
    watch: &DueWatch,
    message: Option<Message>,
    now: Millis,
) -> Result<bool, crate::store::StoreError> {
    let undelivered = message.filter(|m| {
        m.status == Status::Sent
            && m.delivery.delivered_at.is_none()
            && m.delivery.read_at.is_none()
    });
    let Some(message) = undelivered else {
        return store.fall_back_undelivered(watch, None, None, now).await;
    };
    let reason = ErrorNote {
        code: "not_delivered".into(),
        message: format!(
            "{} reported no delivery since the send at {}",
            message.provider,
            message.sent_at.map(rfc3339).unwrap_or_default()
        ),
    };
    let change = message.next_route(reason, now);
    let report = change
        .as_ref()
        .and_then(|change| super::outcome::fallback_report(&message, change, now));
    store
        .fall_back_undelivered(watch, change, report, now)
        .await
}
