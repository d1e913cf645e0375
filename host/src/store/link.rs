//! The link to a SurrealDB server (`ws://`): a deadline on every query, and
//! a watcher that knows whether the server answers, so that chirp answers
//! `503` at once while it does not.
//!
//! Why a module of its own: the SDK's WebSocket engine holds every query
//! while it reconnects to a server that went away, and keeps trying for as
//! long as the server is gone. Without a deadline, every request that
//! touches the store, health and readiness included, would hang until the
//! server came back (measured by `chirp-reliability --only server`: 30 s
//! client timeouts, and no `503`). An embedded store has no link and no
//! deadline: its queries cannot be stranded by a network.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use surrealdb::Surreal;
use surrealdb::engine::any::Any;

use super::StoreError;

/// How often the watcher asks the server `RETURN 1`.
const WATCH_INTERVAL: Duration = Duration::from_secs(1);

/// How chirp talks to a SurrealDB server; unused by an embedded store.
#[derive(Clone)]
pub struct ServerAccess {
    /// `CHIRP_DB_USER` / `CHIRP_DB_PASS`: root credentials.
    pub credentials: Option<(String, String)>,
    /// `CHIRP_STORE_TIMEOUT`: how long a query may take before chirp gives
    /// up on it and answers `503`, and how long the watcher's `RETURN 1`
    /// may take before the server counts as gone.
    pub timeout: Duration,
}

impl std::fmt::Debug for ServerAccess {
    /// Names the user, never the password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerAccess")
            .field("user", &self.credentials.as_ref().map(|(user, _)| user))
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl Default for ServerAccess {
    fn default() -> Self {
        ServerAccess {
            credentials: None,
            timeout: Duration::from_secs(5),
        }
    }
}

/// Whether the server answers, as the watcher last saw it, and the deadline
/// on each query. Shared by the connection and its watcher.
pub(super) struct Link {
    reachable: AtomicBool,
    timeout: Duration,
}

impl Link {
    /// A link to a server that has just answered, watched through `probe`
    /// (a session of its own on the same connection) until the link is
    /// dropped.
    pub(super) fn watch(probe: Surreal<Any>, timeout: Duration) -> Arc<Link> {
        let link = Arc::new(Link {
            reachable: AtomicBool::new(true),
            timeout,
        });
        let watched = Arc::downgrade(&link);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(WATCH_INTERVAL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(link) = watched.upgrade() else {
                    return;
                };
                let answered = matches!(
                    tokio::time::timeout(link.timeout, probe.query("RETURN 1")).await,
                    Ok(Ok(_))
                );
                link.saw(answered);
            }
        });
        link
    }

    /// Runs `query` if the server is answering, giving up after the
    /// deadline. A query given up on marks the server as not answering
    /// until the watcher's next `RETURN 1` comes back, so that the requests
    /// behind it are refused at once rather than each waiting out the
    /// deadline.
    ///
    /// A query given up on may still reach the server later (the SDK sends
    /// what it holds once it reconnects): what callers were told failed may
    /// have been written, which idempotency keys and leases are there to
    /// make safe.
    pub(super) async fn run<T>(
        &self,
        query: impl Future<Output = surrealdb::Result<T>>,
    ) -> Result<T, StoreError> {
        if !self.reachable.load(Ordering::Acquire) {
            return Err(StoreError::Unreachable);
        }
        match tokio::time::timeout(self.timeout, query).await {
            Ok(result) => result.map_err(StoreError::from),
            Err(_) => {
                self.saw(false);
                Err(StoreError::TimedOut(self.timeout))
            }
        }
    }

    /// Records whether the server answered, logging each change.
    fn saw(&self, answered: bool) {
        let was = self.reachable.swap(answered, Ordering::AcqRel);
        match (was, answered) {
            (true, false) => tracing::error!(
                timeout = ?self.timeout,
                "the SurrealDB server does not answer; store requests are refused until it does"
            ),
            (false, true) => tracing::info!("the SurrealDB server answers again"),
            _ => {}
        }
    }
}
