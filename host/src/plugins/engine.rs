//! The wasmtime engine chirp runs plugins on, and compiling components (with
//! the on-disk cache of [`super::cache`]).
//!
//! The engine uses the pooling allocator when the address space allows it:
//! instance memory and tables are carved out of one reservation made at
//! start, so instantiating a plugin per call costs microseconds instead of
//! `mmap` calls. Epoch interruption gives every call a deadline.

use std::hash::{Hash, Hasher};
use std::time::Duration;

use wasmtime::component::Component;
use wasmtime::{Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

/// How often the engine's epoch advances; the granularity of deadlines.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// The largest linear memory any plugin may be granted; per-plugin limits
/// are at most this.
pub const MAX_PLUGIN_MEMORY: usize = 256 * 1024 * 1024;

/// How much of each pooled memory and table stays resident between
/// instances; past it, slots are reset with madvise.
const KEEP_RESIDENT_BYTES: usize = 2 * 1024 * 1024;

/// Whether instances come from a pool or from the operating system.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Allocator {
    /// Instances come from a pool of reserved slots.
    Pooling,
    /// Instances get memory from the operating system as they start.
    OnDemand,
}

impl Allocator {
    /// Both ways.
    pub const ALL: [Allocator; 2] = [Allocator::Pooling, Allocator::OnDemand];

    /// Its name, as the API spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Allocator::Pooling => "pooling",
            Allocator::OnDemand => "on-demand",
        }
    }
}

/// Builds the engine: pooling sized for `instances` concurrent plugin
/// instances if the address space allows it, on-demand otherwise.
pub fn build(instances: u32) -> Result<(Engine, Allocator), wasmtime::Error> {
    let mut config = base_config();
    if address_space_is_unlimited() {
        let mut pool = PoolingAllocationConfig::new();
        // A Rust wasip2 component holds a handful of core instances,
        // memories and tables (its own module plus the WASI adapter's).
        pool.total_component_instances(instances)
            .total_core_instances(instances * 8)
            .total_memories(instances * 4)
            .total_tables(instances * 8)
            .max_memories_per_module(2)
            .max_tables_per_module(4)
            .max_memory_size(MAX_PLUGIN_MEMORY)
            // A fresh instance per call touches the same few hundred KiB of
            // memory (stack, heap, data) every time. Resetting a slot with
            // madvise gives those pages back, so every call paid a page
            // fault for each of them again; resetting the pages it used
            // with memset keeps them resident (PAGEMAP_SCAN finds which,
            // on Linux 6.7 and later).
            .linear_memory_keep_resident(KEEP_RESIDENT_BYTES)
            .table_keep_resident(KEEP_RESIDENT_BYTES)
            .pagemap_scan(Enabled::Auto);
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        match Engine::new(&config) {
            Ok(engine) => return Ok((engine, Allocator::Pooling)),
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "pooling allocator unavailable; instances will be allocated on demand")
            }
        }
    } else {
        tracing::warn!(
            "the address space is limited (ulimit -v); instances will be allocated on demand"
        );
    }
    Ok((Engine::new(&base_config())?, Allocator::OnDemand))
}

fn base_config() -> Config {
    let mut config = Config::new();
    config.wasm_component_model(true);
    config.epoch_interruption(true);
    config
}

/// The pool reserves address space for every slot up front; with a
/// `ulimit -v` in force that reservation would fail or starve the host.
fn address_space_is_unlimited() -> bool {
    let Ok(limits) = std::fs::read_to_string("/proc/self/limits") else {
        return true; // not Linux: let Engine::new decide
    };
    limits
        .lines()
        .find(|l| l.starts_with("Max address space"))
        .is_none_or(|l| l.contains("unlimited"))
}

/// Advances the engine's epoch every [`EPOCH_TICK`] for as long as the
/// engine lives. A plain thread: it must keep ticking even when every async
/// worker is busy running guests.
pub fn spawn_epoch_ticker(engine: &Engine) {
    let weak = engine.weak();
    let spawned = std::thread::Builder::new()
        .name("chirp-epoch".into())
        .spawn(move || {
            while let Some(engine) = weak.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(EPOCH_TICK);
            }
        });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "cannot start the epoch ticker; plugin deadlines will not fire");
    }
}

/// Where a component came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Compiled from the `.wasm` now.
    Compiled,
    /// Read from the on-disk cache.
    Cache,
}

impl Origin {
    /// Both origins.
    pub const ALL: [Origin; 2] = [Origin::Compiled, Origin::Cache];

    /// Its name, as the API spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::Compiled => "compiled",
            Origin::Cache => "cache",
        }
    }
}

/// Gives back to the operating system the memory a compile used and freed.
///
/// Cranelift compiles on rayon's threads, which then sit idle until the
/// next compile. mimalloc hands a thread's freed pages back only when that
/// same thread allocates again, so each compiling thread kept about 20 MiB
/// resident for as long as chirp ran: chirp's anonymous memory was 90 MiB
/// after a start that compiled its two plugins, 47 MiB after one that read
/// them from the cache.
fn release_compile_memory() {
    rayon::broadcast(|_| crate::allocator::return_freed_memory());
    crate::allocator::return_freed_memory();
}

/// Compiles components, through the compile cache when there is one.
#[derive(Clone)]
pub struct Compiler {
    engine: Engine,
    cache: Option<super::cache::Cache>,
    engine_key: String,
}

impl Compiler {
    /// A compiler for `engine`; `cache`, if any, keeps machine code across
    /// restarts.
    pub fn new(engine: Engine, cache: Option<super::cache::Cache>) -> Compiler {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        Compiler {
            engine_key: format!("{:016x}", hasher.finish()),
            engine,
            cache,
        }
    }

    /// The component for `bytes` (whose sha256 is `sha256`). CPU-bound: call
    /// it off the async workers.
    pub fn compile(&self, bytes: &[u8], sha256: &str) -> Result<(Component, Origin), String> {
        if let Some(cache) = &self.cache
            && let Some(component) = cache.load(&self.engine, &self.engine_key, sha256)
        {
            return Ok((component, Origin::Cache));
        }
        let compiled = Component::new(&self.engine, bytes).map_err(|e| format!("{e:#}"));
        release_compile_memory();
        let component = compiled?;
        if let Some(cache) = &self.cache {
            cache.store(&component, &self.engine_key, sha256);
        }
        Ok((component, Origin::Compiled))
    }
}
