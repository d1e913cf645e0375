//! One call into a plugin: a fresh `Store` and instance from the
//! pre-linked component, under the grant's limits, and every way it can go
//! wrong turned into a [`CallError`].
//!
//! **Invariant:** a plugin failure is an attempt's failure, never the
//! host's.

use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmtime::{Store, UpdateDeadline};

use super::Plugins;
use super::bindings;
use super::host::{Grant, HostState, Outbound};

/// Longest string a plugin may hand back in a field chirp stores.
const MAX_FIELD_LEN: usize = 4096;

/// Why a call into a plugin did not produce a usable answer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CallError {
    #[error("plugin trapped: {0:#}")]
    /// The plugin trapped (or ran out of memory): wasmtime's error, shared
    /// by the clones of this one.
    Trap(std::sync::Arc<wasmtime::Error>),
    #[error("plugin exceeded its time limit of {0:?}")]
    /// The call ran past its wall time.
    Timeout(Duration),
    #[error("plugin answered something chirp cannot use: {0}")]
    /// The plugin answered what chirp does not take.
    Garbage(String),
    #[error("plugin tried to reach what it may not: {0}")]
    /// The plugin asked the host for what it may not have.
    Denied(String),
}

/// No plugin of that name is loaded.
#[derive(Debug, Clone, thiserror::Error)]
#[error("plugin {0:?} is not loaded")]
pub struct NotLoaded(pub String);

/// What a provider made of a webhook request, with its version.
#[derive(Debug)]
pub struct WebhookAnswer {
    /// The version of the provider that read it.
    pub version: String,
    /// A verification reply, or the events it carried (not yet bounded by
    /// the host: see `crate::webhooks::from_plugin`).
    pub accepted: bindings::Accepted,
}

/// Why a webhook request got no events.
#[derive(Debug, thiserror::Error)]
pub enum WebhookCallError {
    /// No provider of that name is loaded.
    #[error(transparent)]
    NotLoaded(NotLoaded),
    /// The provider does not read webhooks (built for `provider`, not
    /// `webhook-provider`, or for 0.1.0).
    #[error("plugin {0:?} does not read webhooks")]
    NoWebhooks(String),
    /// The plugin refused the request.
    #[error("the plugin refused the request: {0:?}")]
    Rejected(bindings::Rejection),
    /// The call went wrong.
    #[error(transparent)]
    Call(CallError),
}

/// A provider's own answer to `send`.
pub type SendAnswer = Result<bindings::Receipt, bindings::SendError>;

/// What a rules plugin answered for one event.
#[derive(Debug, Clone)]
pub struct RulesAnswer {
    /// Its decisions, in order.
    pub decisions: Vec<bindings::Decision>,
    /// What it takes back.
    pub cancels: Vec<bindings::CancelRequest>,
    /// The fallback chains it chose (a plugin built for `routing-rules`;
    /// none otherwise).
    pub routes: Vec<bindings::RouteChoice>,
}

impl Plugins {
    /// Sends one message through provider `name`. Returns the version of
    /// the provider that took the call and what the call came to.
    pub async fn send(
        &self,
        name: &str,
        message: &bindings::Message,
    ) -> Result<(String, Result<SendAnswer, CallError>), NotLoaded> {
        let provider = self.provider(name).ok_or_else(|| NotLoaded(name.into()))?;
        let grant = provider.grant.clone();
        let answer = self
            .call(&provider.pre, grant, async |p, store| {
                p.send(store, message).await
            })
            .await
            .and_then(|answer| check_answer(&answer).map(|()| answer));
        Ok((provider.meta.version.clone(), answer))
    }

    /// The decisions of rules plugin `name` for `event`, what it takes
    /// back (a plugin built for `cancelling-rules` or later; none
    /// otherwise) and the routes it chose (`routing-rules`), with the
    /// version that made them. All come from one instance.
    pub async fn decide(
        &self,
        name: &str,
        event: &bindings::Event,
    ) -> Result<(String, Result<Result<RulesAnswer, String>, CallError>), NotLoaded> {
        let rules = self
            .read()
            .rules
            .get(name)
            .cloned()
            .ok_or_else(|| NotLoaded(name.into()))?;
        let grant = rules.grant.clone();
        let answer = self
            .call(&rules.pre, grant, async |r, store| {
                let decisions = match r.decide(store, event).await? {
                    Ok(decisions) => decisions,
                    Err(problem) => return Ok(Err(problem)),
                };
                let cancels = match r.cancels(store, event).await? {
                    Ok(cancels) => cancels,
                    Err(problem) => return Ok(Err(problem)),
                };
                Ok(r.routes(store, event).await?.map(|routes| RulesAnswer {
                    decisions,
                    cancels,
                    routes,
                }))
            })
            .await;
        Ok((rules.meta.version.clone(), answer))
    }

    /// Whether provider `name` is loaded and reads its platform's webhooks
    /// (so reports delivery receipts).
    pub fn reads_webhooks(&self, name: &str) -> bool {
        self.provider(name)
            .is_some_and(|provider| provider.pre.webhooks().is_some())
    }

    /// Hands one webhook request to provider `name`'s `webhooks` export.
    pub async fn handle_webhook(
        &self,
        name: &str,
        request: &bindings::WebhookRequest,
    ) -> Result<WebhookAnswer, WebhookCallError> {
        let provider = self
            .provider(name)
            .ok_or_else(|| WebhookCallError::NotLoaded(NotLoaded(name.into())))?;
        let webhooks = provider
            .pre
            .webhooks()
            .ok_or_else(|| WebhookCallError::NoWebhooks(name.into()))?;
        let answer = self
            .call(webhooks, provider.grant.clone(), async |p, store| {
                p.chirp_plugin_webhooks().call_handle(store, request).await
            })
            .await
            .map_err(WebhookCallError::Call)?;
        match answer {
            Ok(bindings::Accepted::Verification(reply)) if reply.len() > MAX_FIELD_LEN => {
                Err(WebhookCallError::Call(CallError::Garbage(format!(
                    "a verification reply of {} bytes",
                    reply.len()
                ))))
            }
            Ok(accepted) => Ok(WebhookAnswer {
                version: provider.meta.version.clone(),
                accepted,
            }),
            Err(rejection) => Err(WebhookCallError::Rejected(rejection)),
        }
    }

    pub(super) async fn call<P: Instantiate, R>(
        &self,
        pre: &P,
        grant: Arc<Grant>,
        f: impl AsyncFnOnce(P::Bindings, &mut Store<HostState>) -> wasmtime::Result<R>,
    ) -> Result<R, CallError> {
        self.call_with(pre, grant, Outbound::Network(self.clients.clone()), f)
            .await
    }

    /// Runs `f` in a fresh instance under the grant's limits: memory (the
    /// store's limiter, for all the call's memories and tables together),
    /// wall time (the epoch callback traps a guest that runs past its
    /// deadline and yields to the executor on every tick, so a looping
    /// guest never blocks a worker thread; a timeout covers host calls).
    pub(super) async fn call_with<P: Instantiate, R>(
        &self,
        pre: &P,
        grant: Arc<Grant>,
        outbound: Outbound,
        f: impl AsyncFnOnce(P::Bindings, &mut Store<HostState>) -> wasmtime::Result<R>,
    ) -> Result<R, CallError> {
        let limit = grant.limits.call_timeout;
        let deadline = Instant::now() + limit;
        let mut store = Store::new(&self.engine, HostState::new(grant, outbound));
        store.limiter(|state| &mut state.memory);
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |_| {
            if Instant::now() >= deadline {
                Ok(UpdateDeadline::Interrupt)
            } else {
                Ok(UpdateDeadline::Yield(1))
            }
        });
        let run = async {
            let bindings = pre.instantiate(&mut store).await?;
            f(bindings, &mut store).await
        };
        let result = tokio::time::timeout(limit, run).await;
        if let Some(reason) = store.data_mut().denied.take() {
            return Err(CallError::Denied(reason));
        }
        match result {
            Err(_) => Err(CallError::Timeout(limit)),
            Ok(Err(_)) if Instant::now() >= deadline => Err(CallError::Timeout(limit)),
            Ok(Err(trap)) => Err(CallError::Trap(std::sync::Arc::new(trap))),
            Ok(Ok(value)) => Ok(value),
        }
    }
}

/// A pre-linked component of some world that can be instantiated.
pub trait Instantiate {
    /// The instance's bindings.
    type Bindings;
    /// A fresh instance in `store`.
    async fn instantiate(&self, store: &mut Store<HostState>) -> wasmtime::Result<Self::Bindings>;
}

/// Refuses answers chirp would have to store but cannot: oversized ids,
/// codes or messages.
pub(super) fn check_answer(answer: &SendAnswer) -> Result<(), CallError> {
    let too_long = |what: &str, s: &str| {
        (s.len() > MAX_FIELD_LEN)
            .then(|| CallError::Garbage(format!("{what} of {} bytes", s.len())))
    };
    let problem = match answer {
        Ok(receipt) => receipt
            .provider_message_id
            .as_deref()
            .and_then(|id| too_long("provider message id", id)),
        Err(bindings::SendError::Retryable((f, _)) | bindings::SendError::Permanent(f)) => {
            too_long("error code", &f.code).or_else(|| too_long("error message", &f.message))
        }
    };
    problem.map_or(Ok(()), Err)
}
