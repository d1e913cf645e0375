//! Host-side bindings of the `chirp:plugin` WIT package, generated from the
//! same files the guests use: one module per world. The `rules` world's
//! imports (logging) are the provider world's, so the host implements them
//! once.

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

pub use provider::chirp::plugin::log::Level;
pub use provider::chirp::plugin::types::{
    Descriptor, Failure, Message, Receipt, SendError, TemplateRef,
};
pub use provider::chirp::plugin::{config, http, log, types};
pub use provider::{Provider, ProviderPre};
pub use rules::chirp::plugin::event_types::{Decision, Event, Profile, RulesDescriptor};
pub use rules::{Rules, RulesPre};
