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
    /// deadline. A query given up on, or whose connection broke, marks the
    /// server as not answering until the watcher's next `RETURN 1` comes
    /// back, so that the requests behind it are refused at once rather
    /// than each waiting out the deadline.
    ///
    /// Such a query may still have been carried out: the server may have
    /// committed it before the connection broke, and the SDK sends what it
    /// holds once it reconnects. Both errors say so
    /// ([`StoreError::outcome_unknown`]); a caller whose message was in
    /// such a write is told it may have been stored, and idempotency keys
    /// and leases make a retry safe.
    pub(super) async fn run<T>(
        &self,
        query: impl Future<Output = surrealdb::Result<T>>,
    ) -> Result<T, StoreError> {
        if !self.reachable.load(Ordering::Acquire) {
            return Err(StoreError::Unreachable);
        }
        let result = match tokio::time::timeout(self.timeout, query).await {
            Ok(answer) => answer.map_err(StoreError::from),
            Err(_) => Err(StoreError::TimedOut(self.timeout)),
        };
        if matches!(
            result,
            Err(StoreError::TimedOut(_) | StoreError::ConnectionLost(_))
        ) {
            self.saw(false);
        }
        result
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

#[cfg(test)]
mod tests {
    use super::*;

    fn link(timeout: Duration) -> Link {
        Link {
            reachable: AtomicBool::new(true),
            timeout,
        }
    }

    /// A query the server never answers: the caller is told the outcome
    /// is unknown (it may have been carried out), and the queries behind
    /// it are refused at once, as not tried.
    #[tokio::test]
    async fn a_query_given_up_on_may_have_been_written_and_the_next_is_refused_untried() {
        let link = link(Duration::from_millis(20));
        let given_up = link
            .run(std::future::pending::<surrealdb::Result<()>>())
            .await
            .expect_err("the deadline passes");
        assert!(matches!(given_up, StoreError::TimedOut(_)), "{given_up:?}");
        assert!(given_up.outcome_unknown());

        let next = link
            .run(async { Ok::<_, surrealdb::Error>(()) })
            .await
            .expect_err("refused while the server does not answer");
        assert!(matches!(next, StoreError::Unreachable), "{next:?}");
        assert!(!next.outcome_unknown());
    }

    /// A connection that broke under a query: as unknown as a deadline,
    /// and the link counts the server as gone.
    #[tokio::test]
    async fn a_broken_connection_may_have_written_and_marks_the_server_gone() {
        let link = link(Duration::from_secs(5));
        let broken = link
            .run(async {
                Err::<(), _>(surrealdb::Error::connection(
                    "Connection reset".into(),
                    surrealdb::types::ConnectionError::ConnectionFailed,
                ))
            })
            .await
            .expect_err("the connection broke");
        assert!(
            matches!(broken, StoreError::ConnectionLost(_)),
            "{broken:?}"
        );
        assert!(broken.outcome_unknown());
        assert!(!link.reachable.load(Ordering::Acquire));
    }

    /// An error the server answered with is not a lost connection: the
    /// transaction did not commit, and the server still counts as there.
    #[tokio::test]
    async fn an_answered_error_is_known_not_written() {
        let link = link(Duration::from_secs(5));
        let refused = link
            .run(async { Err::<(), _>(surrealdb::Error::validation("refused".into(), None)) })
            .await
            .expect_err("the server refused");
        assert!(!refused.outcome_unknown(), "{refused:?}");
        assert!(link.reachable.load(Ordering::Acquire));
    }
}
