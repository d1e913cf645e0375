//! Host-side bindings of the `chirp:plugin` WIT package, generated from the
//! same files the guests use: one module per world, and one per world of
//! each released version still loaded (`wit/frozen/`).
//!
//! Every version's interfaces that 0.2.x kept unchanged are bound to
//! today's Rust types (`with`): wasmtime checks component types by
//! structure, so a 0.1.0 component's `message` is today's `Message`, and
//! the host has one implementation of each import and one set of types.
//! A 0.2.0 or 0.2.1 component needs no bindings of its own: each 0.2.x
//! only added to the one before, and wasmtime matches its `@0.2.0` or
//! `@0.2.1` names to `@0.2.2`'s.
//! The `rules` world's imports (logging) are the provider world's, so the
//! host implements them once.

/// The `provider` world: `delivery` exported; `http`, `config`, `log`
/// imported. Generated: its items are documented in `wit/provider.wit`.
#[allow(missing_docs)]
pub mod provider {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "provider",
        imports: { default: async },
        exports: { default: async },
    });
}

/// The `webhook-provider` world: `provider`'s, and `webhooks` exported.
/// Generated: its items are documented in `wit/provider.wit`.
#[allow(missing_docs)]
pub mod webhook_provider {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "webhook-provider",
        imports: { default: async },
        exports: { default: async },
        with: {
            "chirp:plugin/types": super::provider::chirp::plugin::types,
            "chirp:plugin/http": super::provider::chirp::plugin::http,
            "chirp:plugin/config": super::provider::chirp::plugin::config,
            "chirp:plugin/log": super::provider::chirp::plugin::log,
        },
    });
}

/// The `rules` world: `selection` exported; `log` imported. Generated:
/// its items are documented in `wit/rules.wit`.
#[allow(missing_docs)]
pub mod rules {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "rules",
        imports: { default: async },
        exports: { default: async },
        with: { "chirp:plugin/log": super::provider::chirp::plugin::log },
    });
}

/// The `cancelling-rules` world: `rules`' exports and `cancellation`.
/// Generated: its items are documented in `wit/rules.wit`.
#[allow(missing_docs)]
pub mod cancelling_rules {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "cancelling-rules",
        imports: { default: async },
        exports: { default: async },
        with: {
            "chirp:plugin/log": super::provider::chirp::plugin::log,
            "chirp:plugin/event-types": super::rules::chirp::plugin::event_types,
        },
    });
}

/// The `routing-rules` world: `cancelling-rules`' exports and `routing`.
/// Generated: its items are documented in `wit/rules.wit`.
#[allow(missing_docs)]
pub mod routing_rules {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "routing-rules",
        imports: { default: async },
        exports: { default: async },
        with: {
            "chirp:plugin/log": super::provider::chirp::plugin::log,
            "chirp:plugin/event-types": super::rules::chirp::plugin::event_types,
        },
    });
}

/// `chirp:plugin@0.1.0`'s `provider` world, bound to today's types.
#[allow(missing_docs)]
pub mod provider_0_1 {
    wasmtime::component::bindgen!({
        path: "../wit/frozen/0.1.0",
        world: "provider",
        imports: { default: async },
        exports: { default: async },
        with: {
            "chirp:plugin/types@0.1.0": super::provider::chirp::plugin::types,
            "chirp:plugin/http@0.1.0": super::provider::chirp::plugin::http,
            "chirp:plugin/config@0.1.0": super::provider::chirp::plugin::config,
            "chirp:plugin/log@0.1.0": super::provider::chirp::plugin::log,
        },
    });
}

/// `chirp:plugin@0.1.0`'s `rules` world, bound to today's types.
#[allow(missing_docs)]
pub mod rules_0_1 {
    wasmtime::component::bindgen!({
        path: "../wit/frozen/0.1.0",
        world: "rules",
        imports: { default: async },
        exports: { default: async },
        with: {
            "chirp:plugin/event-types@0.1.0": super::rules::chirp::plugin::event_types,
            "chirp:plugin/log@0.1.0": super::provider::chirp::plugin::log,
        },
    });
}

pub use cancelling_rules::exports::chirp::plugin::cancellation::CancelRequest;
pub use cancelling_rules::{CancellingRules, CancellingRulesPre};
pub use provider::chirp::plugin::log::Level;
pub use provider::chirp::plugin::types::{
    Descriptor, Failure, Message, Receipt, SendError, TemplateRef,
};
pub use provider::chirp::plugin::{config, http, log, types};
pub use provider::{Provider, ProviderPre};
pub use routing_rules::exports::chirp::plugin::routing::RouteChoice;
pub use routing_rules::{RoutingRules, RoutingRulesPre};
pub use rules::chirp::plugin::event_types::{Decision, Event, Profile, RulesDescriptor};
pub use rules::{Rules, RulesPre};
pub use webhook_provider::exports::chirp::plugin::webhooks::{
    Accepted, DeliveryState, Event as WebhookEvent, InboundMessage, Rejection, StatusUpdate,
    WebhookRequest,
};
pub use webhook_provider::{WebhookProvider, WebhookProviderPre};
