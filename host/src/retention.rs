//! The retention job: on a timer, redacts finished messages whose period
//! is over (transactional and marketing each have theirs), deletes those
//! kept long enough, and forgets saved preferences without an opt-out that
//! no one has touched for as long, and what customers wrote once it is as
//! old as a redacted text. It works in small batches with a pause
//! between them, so that it never holds the store for long.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::config::PrivacyConfig;
use crate::message::{Millis, now_millis};
use crate::store::{Action, Pass, Store};
use crate::templates::{Category, Templates};

/// Messages read per batch.
const BATCH: usize = 500;
/// The pause between two batches.
const PAUSE: Duration = Duration::from_millis(50);

/// The passes the periods in `config` give at `now`, given which templates
/// are marketing.
pub fn passes(config: &PrivacyConfig, marketing: &[String], now: Millis) -> Vec<Pass> {
    let before = |period: Duration| now.saturating_sub(period.as_millis() as Millis);
    vec![
        Pass {
            name: "redact-transactional",
            action: Action::Redact,
            before: before(config.redact_after),
            only: None,
            except: marketing.to_vec(),
        },
        Pass {
            name: "redact-marketing",
            action: Action::Redact,
            before: before(config.redact_marketing_after),
            only: Some(marketing.to_vec()),
            except: Vec::new(),
        },
        Pass {
            name: "delete",
            action: Action::Delete,
            before: before(config.delete_after),
            only: None,
            except: Vec::new(),
        },
    ]
}

/// What one run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunReport {
    /// Messages redacted.
    pub redacted: usize,
    /// Messages deleted.
    pub deleted: usize,
    /// Saved preferences forgotten.
    pub preferences: usize,
    /// Customers' messages forgotten.
    pub inbound: usize,
}

impl RunReport {
    fn count(&mut self, action: Action, messages: usize) {
        match action {
            Action::Redact => self.redacted += messages,
            Action::Delete => self.deleted += messages,
        }
    }
}

/// One run of every pass to its cutoff at `now`, and of the forgetting of
/// idle preferences.
pub async fn run_once(
    store: &Store,
    config: &PrivacyConfig,
    templates: &Templates,
    now: Millis,
) -> Result<RunReport, crate::store::StoreError> {
    let marketing: Vec<String> = templates
        .current()
        .all()
        .filter(|t| t.category == Category::Marketing)
        .map(|t| t.name.clone())
        .collect();
    let mut report = run_passes(store, config, &marketing, now).await?;
    let idle_before = now.saturating_sub(config.delete_after.as_millis() as Millis);
    report.preferences = store.forget_idle_preferences(idle_before).await?;
    // What customers wrote is kept as long as a message's text.
    let inbound_before = now.saturating_sub(config.redact_after.as_millis() as Millis);
    report.inbound = store.forget_inbound(inbound_before).await?;
    Ok(report)
}

/// Every pass over messages to its cutoff at `now`, in the job's batches
/// and pauses, given which templates are marketing.
pub async fn run_passes(
    store: &Store,
    config: &PrivacyConfig,
    marketing: &[String],
    now: Millis,
) -> Result<RunReport, crate::store::StoreError> {
    let mut report = RunReport::default();
    for pass in passes(config, marketing, now) {
        // Messages the pass held unfinished before, then its walk.
        let mut after = None;
        loop {
            let (changed, last) = store.retention_revisit(&pass, now, after, BATCH).await?;
            report.count(pass.action, changed);
            let Some(last) = last else { break };
            after = Some(last);
            tokio::time::sleep(PAUSE).await;
        }
        loop {
            let (changed, done) = store.retention_batch(&pass, now, BATCH).await?;
            report.count(pass.action, changed);
            if done {
                break;
            }
            tokio::time::sleep(PAUSE).await;
        }
    }
    Ok(report)
}

/// Runs the job every `config.retention_interval` until `stop` turns true.
pub async fn run(
    store: Store,
    config: PrivacyConfig,
    templates: Arc<Templates>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        match run_once(&store, &config, &templates, now_millis()).await {
            Ok(report) if report != RunReport::default() => {
                tracing::info!(
                    redacted = report.redacted,
                    deleted = report.deleted,
                    preferences = report.preferences,
                    inbound = report.inbound,
                    "retention: kept no longer than needed"
                );
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "retention run failed; trying again later"),
        }
        tokio::select! {
            _ = tokio::time::sleep(config.retention_interval) => {}
            _ = stop.wait_for(|stop| *stop) => return,
        }
    }
}
