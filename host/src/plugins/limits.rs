//! What one plugin call may use, and the meter that holds it to that.
//!
//! Every limit is per call (a call is one fresh instance): memory for all
//! of the call's linear memories and tables together, wall time, and each
//! host import a plugin can reach in a loop (HTTP requests, request and
//! response bodies, log lines and bytes). A plugin cannot fill the host's
//! memory, disk or log pipeline however it is written.

use std::time::Duration;

use wasmtime::ResourceLimiter;

/// Limits on what one plugin call may use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Memory of one call: every linear memory and table of every instance
    /// the call creates, together.
    pub memory_bytes: usize,
    /// Wall time of one call, host HTTP included.
    pub call_timeout: Duration,
    /// Longest a single HTTP request may take.
    pub http_timeout: Duration,
    /// Largest HTTP response body handed to the plugin.
    pub http_max_response_bytes: usize,
    /// HTTP requests one call may make.
    pub http_max_requests: usize,
    /// Largest HTTP request body a plugin may send.
    pub http_max_request_bytes: usize,
    /// Log lines kept from one call; the rest are dropped with one note.
    pub log_max_lines: usize,
    /// Log bytes kept from one call; the rest are dropped with one note.
    pub log_max_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory_bytes: 64 * 1024 * 1024,
            call_timeout: Duration::from_secs(10),
            http_timeout: Duration::from_secs(10),
            http_max_response_bytes: 1024 * 1024,
            http_max_requests: 8,
            http_max_request_bytes: 1024 * 1024,
            log_max_lines: 32,
            log_max_bytes: 16 * 1024,
        }
    }
}

/// Core instances one call may create. A Rust `wasm32-wasip2` component
/// holds a handful (its module, WASI's glue).
const MAX_INSTANCES: usize = 16;
/// Linear memories and tables one call may create.
const MAX_MEMORIES: usize = 8;
const MAX_TABLES: usize = 16;
/// What wasmtime keeps per table element (a pointer's worth).
const TABLE_ELEMENT_BYTES: usize = std::mem::size_of::<usize>();

/// The memory meter of one call: wasmtime asks it before any linear memory
/// or table is created or grows, and it answers for their sum. (wasmtime's
/// own `StoreLimits` caps each memory on its own: a component with two
/// memories could use twice its limit.)
#[derive(Debug)]
pub struct MemoryMeter {
    limit: usize,
    used: usize,
}

impl MemoryMeter {
    /// A meter that refuses growth past `limit` bytes in all.
    pub fn new(limit: usize) -> MemoryMeter {
        MemoryMeter { limit, used: 0 }
    }

    /// Bytes of memories and tables this call holds now.
    pub fn used(&self) -> usize {
        self.used
    }

    fn grow(&mut self, by: usize) -> wasmtime::Result<bool> {
        match self.used.checked_add(by) {
            Some(total) if total <= self.limit => {
                self.used = total;
                Ok(true)
            }
            // An error, not `false`: the guest traps at once with a reason,
            // instead of seeing a failed `memory.grow` and aborting later.
            _ => Err(wasmtime::Error::msg(format!(
                "plugin exceeded its memory limit of {} MiB (memories and tables of the whole call)",
                self.limit / (1024 * 1024)
            ))),
        }
    }
}

impl ResourceLimiter for MemoryMeter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.grow(desired.saturating_sub(current))
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.grow(
            desired
                .saturating_sub(current)
                .saturating_mul(TABLE_ELEMENT_BYTES),
        )
    }

    fn instances(&self) -> usize {
        MAX_INSTANCES
    }

    fn memories(&self) -> usize {
        MAX_MEMORIES
    }

    fn tables(&self) -> usize {
        MAX_TABLES
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: usize = 1024 * 1024;

    #[test]
    fn the_meter_answers_for_every_memory_of_the_call_together() {
        let mut meter = MemoryMeter::new(64 * MIB);
        // Two memories of 40 MiB each: each alone is under the limit (what
        // a per-memory cap checks), together they are not.
        assert!(meter.memory_growing(0, 40 * MIB, None).unwrap());
        assert!(meter.memory_growing(0, 40 * MIB, None).is_err());
        assert_eq!(meter.used(), 40 * MIB);
        // Growing the first by 24 MiB fills the limit exactly.
        assert!(meter.memory_growing(40 * MIB, 64 * MIB, None).unwrap());
        assert!(meter.memory_growing(0, 64 * 1024, None).is_err());
        assert!(meter.table_growing(0, 1, None).is_err());
    }

    /// A component whose module has two linear memories of 40 MiB each,
    /// instantiated in a store limited to 64 MiB. wasmtime's own limiter,
    /// which caps each memory on its own, lets it in (80 MiB, the attack);
    /// the meter does not.
    #[test]
    fn two_memories_cannot_together_pass_the_limit_of_one_call() {
        let wat = r#"(component
            (core module $m
                (memory $a 640)
                (memory $b 640)
                (func (export "f") (result i32) i32.const 1))
            (core instance $i (instantiate $m))
            (func (export "f") (result u32) (canon lift (core func $i "f"))))"#;
        let mut config = wasmtime::Config::new();
        config.wasm_component_model(true).wasm_multi_memory(true);
        let engine = wasmtime::Engine::new(&config).unwrap();
        let component =
            wasmtime::component::Component::new(&engine, wat::parse_str(wat).unwrap()).unwrap();

        let mut per_memory = wasmtime::Store::new(
            &engine,
            wasmtime::StoreLimitsBuilder::new()
                .memory_size(64 * MIB)
                .build(),
        );
        per_memory.limiter(|limits| limits);
        let linker_limits = wasmtime::component::Linker::new(&engine);
        assert!(
            linker_limits
                .instantiate(&mut per_memory, &component)
                .is_ok(),
            "a per-memory cap lets two memories of 40 MiB in"
        );

        let mut metered = wasmtime::Store::new(&engine, MemoryMeter::new(64 * MIB));
        metered.limiter(|meter| meter);
        let linker_metered = wasmtime::component::Linker::new(&engine);
        let refused = linker_metered.instantiate(&mut metered, &component);
        assert!(refused.is_err(), "the meter let 80 MiB in");
    }

    #[test]
    fn sizes_that_would_overflow_are_refused() {
        let mut meter = MemoryMeter::new(64 * MIB);
        assert!(meter.table_growing(0, usize::MAX, None).is_err());
        assert!(meter.memory_growing(0, usize::MAX, None).is_err());
    }
}
