//! Host-side bindings of the `chirp:plugin` WIT package, generated once for
//! the whole host from the same files the guests use.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "provider",
    imports: { default: async },
    exports: { default: async },
});

pub use chirp::plugin::http;
pub use chirp::plugin::log::Level;
pub use chirp::plugin::types::{Descriptor, Failure, Message, Receipt, SendError, TemplateRef};
