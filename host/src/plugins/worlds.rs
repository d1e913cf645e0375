//! The worlds a plugin may be built for, in every version of
//! `chirp:plugin` chirp still loads, behind one shape per kind of plugin:
//! a [`ProviderComponent`] sends and describes itself whichever version it
//! was built against, and a [`RulesComponent`] decides.
//!
//! Why: a plugin author should not have to rebuild a working plugin
//! because chirp learned something new. A 0.1.0 component imports
//! `chirp:plugin/http@0.1.0` and exports `chirp:plugin/delivery@0.1.0`;
//! the linker serves those names with the same host functions as 0.2.0's
//! ([`link_released_imports`]), and the calls below pick the export by
//! version.

use wasmtime::Store;
use wasmtime::component::{InstancePre, Linker};

use super::bindings::{
    self, CancelRequest, CancellingRulesPre, Decision, Descriptor, Event, Message, RouteChoice,
    RoutingRulesPre, RulesDescriptor, WebhookProviderPre, http, log, provider_0_1, rules_0_1,
};
use super::call::{Instantiate, SendAnswer};
use super::host::HostState;

/// A provider component, as built.
#[derive(Clone)]
pub enum ProviderComponent {
    /// Against 0.2.0: `provider`, or `webhook-provider` (then `webhooks`
    /// is its webhook export).
    Current {
        /// Its `delivery` export.
        delivery: bindings::ProviderPre<HostState>,
        /// Its `webhooks` export, if it has one.
        webhooks: Option<WebhookProviderPre<HostState>>,
    },
    /// Against 0.1.0: sends only.
    Released0_1(provider_0_1::ProviderPre<HostState>),
}

/// An instance of a [`ProviderComponent`].
pub enum ProviderInstance {
    /// Built against 0.2.0.
    Current(bindings::Provider),
    /// Built against 0.1.0.
    Released0_1(provider_0_1::Provider),
}

impl ProviderComponent {
    /// The provider world `pre` was built for, if any.
    pub fn find(pre: &InstancePre<HostState>) -> Option<ProviderComponent> {
        if let Ok(delivery) = bindings::ProviderPre::new(pre.clone()) {
            let webhooks = WebhookProviderPre::new(pre.clone()).ok();
            return Some(ProviderComponent::Current { delivery, webhooks });
        }
        provider_0_1::ProviderPre::new(pre.clone())
            .ok()
            .map(ProviderComponent::Released0_1)
    }

    /// The `chirp:plugin` version it was built against.
    pub fn version(&self) -> &'static str {
        match self {
            ProviderComponent::Current { .. } => "0.2",
            ProviderComponent::Released0_1(_) => "0.1.0",
        }
    }

    /// Its `webhooks` export, if it has one.
    pub fn webhooks(&self) -> Option<&WebhookProviderPre<HostState>> {
        match self {
            ProviderComponent::Current { webhooks, .. } => webhooks.as_ref(),
            ProviderComponent::Released0_1(_) => None,
        }
    }
}

impl Instantiate for ProviderComponent {
    type Bindings = ProviderInstance;
    async fn instantiate(
        &self,
        store: &mut Store<HostState>,
    ) -> wasmtime::Result<ProviderInstance> {
        Ok(match self {
            ProviderComponent::Current { delivery, .. } => {
                ProviderInstance::Current(delivery.instantiate_async(store).await?)
            }
            ProviderComponent::Released0_1(pre) => {
                ProviderInstance::Released0_1(pre.instantiate_async(store).await?)
            }
        })
    }
}

impl ProviderInstance {
    /// `delivery.describe`.
    pub async fn describe(&self, store: &mut Store<HostState>) -> wasmtime::Result<Descriptor> {
        match self {
            ProviderInstance::Current(p) => p.chirp_plugin_delivery().call_describe(store).await,
            ProviderInstance::Released0_1(p) => {
                p.chirp_plugin_delivery().call_describe(store).await
            }
        }
    }

    /// `delivery.send`.
    pub async fn send(
        &self,
        store: &mut Store<HostState>,
        message: &Message,
    ) -> wasmtime::Result<SendAnswer> {
        match self {
            ProviderInstance::Current(p) => {
                p.chirp_plugin_delivery().call_send(store, message).await
            }
            ProviderInstance::Released0_1(p) => {
                p.chirp_plugin_delivery().call_send(store, message).await
            }
        }
    }
}

impl Instantiate for WebhookProviderPre<HostState> {
    type Bindings = bindings::WebhookProvider;
    async fn instantiate(
        &self,
        store: &mut Store<HostState>,
    ) -> wasmtime::Result<bindings::WebhookProvider> {
        self.instantiate_async(store).await
    }
}

/// A rules component, as built.
#[derive(Clone)]
pub enum RulesComponent {
    /// Against 0.2.2's `routing-rules`: decides, cancels, and routes.
    Routing(RoutingRulesPre<HostState>),
    /// Against 0.2.1's `cancelling-rules`: decides, and cancels.
    Cancelling(CancellingRulesPre<HostState>),
    /// Against 0.2.x's `rules`.
    Current(bindings::RulesPre<HostState>),
    /// Against 0.1.0.
    Released0_1(rules_0_1::RulesPre<HostState>),
}

/// An instance of a [`RulesComponent`].
pub enum RulesInstance {
    /// Built against 0.2.2's `routing-rules`.
    Routing(bindings::RoutingRules),
    /// Built against 0.2.1's `cancelling-rules`.
    Cancelling(bindings::CancellingRules),
    /// Built against 0.2.x's `rules`.
    Current(bindings::Rules),
    /// Built against 0.1.0.
    Released0_1(rules_0_1::Rules),
}

impl RulesComponent {
    /// The rules world `pre` was built for, if any.
    pub fn find(pre: &InstancePre<HostState>) -> Option<RulesComponent> {
        if let Ok(rules) = RoutingRulesPre::new(pre.clone()) {
            return Some(RulesComponent::Routing(rules));
        }
        if let Ok(rules) = CancellingRulesPre::new(pre.clone()) {
            return Some(RulesComponent::Cancelling(rules));
        }
        if let Ok(rules) = bindings::RulesPre::new(pre.clone()) {
            return Some(RulesComponent::Current(rules));
        }
        rules_0_1::RulesPre::new(pre.clone())
            .ok()
            .map(RulesComponent::Released0_1)
    }
}

impl Instantiate for RulesComponent {
    type Bindings = RulesInstance;
    async fn instantiate(&self, store: &mut Store<HostState>) -> wasmtime::Result<RulesInstance> {
        Ok(match self {
            RulesComponent::Routing(pre) => {
                RulesInstance::Routing(pre.instantiate_async(store).await?)
            }
            RulesComponent::Cancelling(pre) => {
                RulesInstance::Cancelling(pre.instantiate_async(store).await?)
            }
            RulesComponent::Current(pre) => {
                RulesInstance::Current(pre.instantiate_async(store).await?)
            }
            RulesComponent::Released0_1(pre) => {
                RulesInstance::Released0_1(pre.instantiate_async(store).await?)
            }
        })
    }
}

impl RulesInstance {
    /// `selection.describe`.
    pub async fn describe(
        &self,
        store: &mut Store<HostState>,
    ) -> wasmtime::Result<RulesDescriptor> {
        match self {
            RulesInstance::Routing(r) => r.chirp_plugin_selection().call_describe(store).await,
            RulesInstance::Cancelling(r) => r.chirp_plugin_selection().call_describe(store).await,
            RulesInstance::Current(r) => r.chirp_plugin_selection().call_describe(store).await,
            RulesInstance::Released0_1(r) => r.chirp_plugin_selection().call_describe(store).await,
        }
    }

    /// `selection.decide`.
    pub async fn decide(
        &self,
        store: &mut Store<HostState>,
        event: &Event,
    ) -> wasmtime::Result<Result<Vec<Decision>, String>> {
        match self {
            RulesInstance::Routing(r) => r.chirp_plugin_selection().call_decide(store, event).await,
            RulesInstance::Cancelling(r) => {
                r.chirp_plugin_selection().call_decide(store, event).await
            }
            RulesInstance::Current(r) => r.chirp_plugin_selection().call_decide(store, event).await,
            RulesInstance::Released0_1(r) => {
                r.chirp_plugin_selection().call_decide(store, event).await
            }
        }
    }
}

impl RulesInstance {
    /// `cancellation.cancels`; none for a component without it.
    pub async fn cancels(
        &self,
        store: &mut Store<HostState>,
        event: &Event,
    ) -> wasmtime::Result<Result<Vec<CancelRequest>, String>> {
        match self {
            // The same record in another world's bindings.
            RulesInstance::Routing(r) => Ok(r
                .chirp_plugin_cancellation()
                .call_cancels(store, event)
                .await?
                .map(|requests| {
                    requests
                        .into_iter()
                        .map(|r| CancelRequest {
                            templates: r.templates,
                            reason: r.reason,
                        })
                        .collect()
                })),
            RulesInstance::Cancelling(r) => {
                r.chirp_plugin_cancellation()
                    .call_cancels(store, event)
                    .await
            }
            RulesInstance::Current(_) | RulesInstance::Released0_1(_) => Ok(Ok(Vec::new())),
        }
    }

    /// `routing.routes`; none for a component without it.
    pub async fn routes(
        &self,
        store: &mut Store<HostState>,
        event: &Event,
    ) -> wasmtime::Result<Result<Vec<RouteChoice>, String>> {
        match self {
            RulesInstance::Routing(r) => r.chirp_plugin_routing().call_routes(store, event).await,
            _ => Ok(Ok(Vec::new())),
        }
    }

    /// The world it was built for.
    pub fn world(&self) -> &'static str {
        match self {
            RulesInstance::Routing(_) => "routing-rules",
            RulesInstance::Cancelling(_) => "cancelling-rules",
            RulesInstance::Current(_) | RulesInstance::Released0_1(_) => "rules",
        }
    }
}

/// Serves the imports of `chirp:plugin@0.1.0` (`http`, `config`, `log`,
/// and the type-only `types` and `event-types`) with today's host
/// functions: their shapes did not change.
pub fn link_released_imports(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.instance("chirp:plugin/types@0.1.0")?;
    linker.instance("chirp:plugin/event-types@0.1.0")?;
    linker
        .instance("chirp:plugin/http@0.1.0")?
        .func_wrap_async("fetch", |mut store, (request,): (http::Request,)| {
            Box::new(async move { Ok((http::Host::fetch(store.data_mut(), request).await,)) })
        })?;
    linker
        .instance("chirp:plugin/config@0.1.0")?
        .func_wrap_async("get", |mut store, (name,): (String,)| {
            Box::new(
                async move { Ok((bindings::config::Host::get(store.data_mut(), name).await,)) },
            )
        })?;
    linker.instance("chirp:plugin/log@0.1.0")?.func_wrap_async(
        "log",
        |mut store, (level, message): (log::Level, String)| {
            Box::new(async move {
                log::Host::log(store.data_mut(), level, message).await;
                Ok(())
            })
        },
    )?;
    Ok(())
}
