//! One attempt at one message: hand it to its provider plugin and turn the
//! answer, whatever it is, into an [`Outcome`] for the audit trail.
//!
//! The plugin's own classification (retryable or permanent) is kept; what
//! the plugin could not classify because it never answered (a trap, a
//! deadline) is retryable, since the next attempt may well succeed.

use std::future::Future;
use std::time::{Duration, Instant};

use tokio::sync::broadcast;

use crate::message::{Attempt, ErrorNote, Leased, Millis, Outcome, now_millis};
use crate::plugins::bindings::{self, SendError};
use crate::plugins::{CallError, NotLoaded, Plugins, SendAnswer};

/// What delivery needs of whatever sends: one message through the provider
/// the message names, and word whenever a provider is loaded.
///
/// chirp's one implementation is [`Plugins`], the sandboxed components.
/// The trait exists so that the benchmark can drive the same scheduler
/// through the same send written natively in Rust, and so measure what
/// the sandbox costs in a whole drain.
pub trait Providers: Send + Sync + 'static {
    /// Sends `message` through provider `name`: the version of the
    /// provider that took the call, and what the call came to.
    fn send(
        &self,
        name: &str,
        message: &bindings::Message,
    ) -> impl Future<Output = Result<(String, Result<SendAnswer, CallError>), NotLoaded>> + Send;

    /// The names of providers as they are loaded or swapped in.
    fn subscribe_loaded(&self) -> broadcast::Receiver<String>;

    /// Whether provider `name` reports delivery receipts (its plugin
    /// reads the platform's webhooks): only then does a message wait for
    /// `delivered` before it moves to its next route.
    fn sends_receipts(&self, name: &str) -> bool {
        let _ = name;
        false
    }
}

impl Providers for Plugins {
    fn send(
        &self,
        name: &str,
        message: &bindings::Message,
    ) -> impl Future<Output = Result<(String, Result<SendAnswer, CallError>), NotLoaded>> + Send
    {
        Plugins::send(self, name, message)
    }

    fn subscribe_loaded(&self) -> broadcast::Receiver<String> {
        Plugins::subscribe_loaded(self)
    }

    fn sends_receipts(&self, name: &str) -> bool {
        self.reads_webhooks(name)
    }
}

/// What came of trying to deliver a leased message.
#[derive(Debug, Clone)]
pub enum Delivery {
    /// The provider was called; the attempt is to be recorded.
    Attempted(Attempt),
    /// The provider is not loaded: no attempt was made, the message waits.
    Deferred(ErrorNote),
}

/// Makes one attempt at `leased` through its provider.
pub async fn attempt(providers: &impl Providers, leased: &Leased) -> Delivery {
    let message = &leased.message;
    let request = bindings::Message {
        id: message.id.clone(),
        recipient: message.phone.clone(),
        text: message.text.clone(),
        template: message
            .provider_template
            .as_ref()
            .map(|t| bindings::TemplateRef {
                name: t.name.clone(),
                language: t.language.clone(),
                parameters: t.parameters.clone(),
            }),
        idempotency_key: message.idempotency_key.clone(),
    };
    let started_at: Millis = now_millis();
    let clock = Instant::now();
    let result = providers.send(&message.provider, &request).await;
    let latency_ms = clock.elapsed().as_millis() as u64;
    let (provider_version, answer) = match result {
        Ok(report) => report,
        Err(NotLoaded(name)) => {
            return Delivery::Deferred(ErrorNote {
                code: "provider_not_loaded".into(),
                message: format!("provider {name:?} is not loaded; the message waits for it"),
            });
        }
    };
    let outcome = match answer {
        Ok(answer) => outcome_of(answer),
        Err(e) => {
            let code = match &e {
                CallError::Timeout(_) => "plugin_timeout",
                CallError::Trap(_) => "plugin_trap",
                CallError::Garbage(_) => "plugin_garbage",
                CallError::Denied(_) => "host_denied",
            };
            crate::telemetry::plugin_fault(&message.provider, code);
            retryable(code, &e)
        }
    };
    crate::telemetry::provider_call(&message.provider, outcome.label(), clock.elapsed());
    Delivery::Attempted(Attempt {
        message_id: message.id.clone(),
        number: message.attempts + 1,
        started_at,
        provider: message.provider.clone(),
        provider_version,
        outcome,
        latency_ms,
    })
}

fn outcome_of(answer: Result<bindings::Receipt, SendError>) -> Outcome {
    match answer {
        Ok(receipt) => Outcome::Sent {
            provider_message_id: receipt.provider_message_id,
        },
        Err(SendError::Retryable((failure, retry_after_ms))) => Outcome::Retryable {
            error: note(failure),
            retry_after: retry_after_ms.map(Duration::from_millis),
        },
        Err(SendError::Permanent(failure)) => Outcome::Permanent {
            error: note(failure),
        },
    }
}

fn note(failure: bindings::Failure) -> ErrorNote {
    ErrorNote {
        code: failure.code,
        message: failure.message,
    }
}

fn retryable(code: &str, error: &CallError) -> Outcome {
    Outcome::Retryable {
        error: ErrorNote {
            code: code.into(),
            message: error.to_string(),
        },
        retry_after: None,
    }
}
